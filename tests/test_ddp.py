"""DDP under torchrun: two CPU processes (gloo) train a tiny model on different data; their
weights, EMA targets and memory queues stay identical, and only rank 0 writes the run."""
import json
import os
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent("""
    import hashlib, json, os, sys
    import torch
    import torch.distributed as dist
    from ascnet.clips import ClipSpec
    from ascnet.pipelines.synthetic import SyntheticPairs
    from ascnet.train import PretrainConfig, pretrain

    out = sys.argv[1]
    seen = []

    class Recording(SyntheticPairs):
        def epoch(self, epoch, start_step=0):
            for batch in super().epoch(epoch, start_step):
                seen.append(batch["video_index"].tolist())
                yield batch

    cfg = PretrainConfig(data="synthetic", out=out, arch="r3d18", width=4, clip=ClipSpec(clip_len=4, crop_size=16), batch_size=4,
                         proj_dim=16, hidden_dim=32, queue_size=64, max_steps=3, log_every=1, ckpt_every=3,
                         warmup_epochs=0, progress=False)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    loader = Recording(cfg.clip, batch_size=4, shard_id=rank, num_shards=world)
    captured = {}
    import ascnet.train as train
    build_model = train.build_model
    def keep(cfg, rt):
        captured["objs"] = build_model(cfg, rt)
        return captured["objs"]
    train.build_model = keep
    summary = pretrain(cfg, loader=loader)
    model, queue, _ = captured["objs"]
    digest = lambda ts: hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in ts)).hexdigest()
    # parameters, online and EMA target (BN running statistics are each rank's own between
    # forwards: DDP re-broadcasts rank 0's at the next one)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"model": digest(model.parameters()), "queue": digest(queue.state_dict().values()), "seen": seen,
                   "queue_videos": queue.video.tolist(), "step": summary["step"], "world": dist.get_world_size()}, f)
""")


def test_two_cpu_ranks_stay_in_sync(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(run)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["step"] == r1["step"] == 3
    assert r0["seen"] != r1["seen"]  # each rank trained on its own shard...
    assert r0["model"] == r1["model"]  # ...and the weights (online and EMA target) agree bit for bit
    assert r0["queue"] == r1["queue"]
    # the queue holds both ranks' clips of every step: 3 steps x 2 ranks x 2 clips x 4 pairs = 48 entries
    pushed = [v for step in range(3) for r in (r0, r1) for v in r["seen"][step] * 2]
    assert sorted(r0["queue_videos"][:48]) == sorted(pushed)
    # only rank 0 wrote the run directory, one metrics line per step
    assert (run / "metrics.jsonl").read_text().count("\n") == 3
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000003.pt"]
