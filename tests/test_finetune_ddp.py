"""Fine-tuning under torchrun: two CPU processes (gloo) fine-tune a tiny model on their own shards of
the train split; their weights stay identical, the run takes the sharded step count, only rank 0
writes the run directory, a signal to one rank stops both at the same step and --resume continues
exactly."""
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from ascnet.sampling import steps_per_epoch
from tests.test_eval_cli import dataset, results  # noqa: F401  (dataset is a fixture)

WORKER = textwrap.dedent("""
    import hashlib, json, os, signal, sys
    import torch
    import torch.distributed as dist
    import ascnet.evaluate.finetune as ft
    from ascnet.clips import ClipSpec
    import ascnet.evaluate.finetune as loader_module  # the module whose build_clip_loader finetune calls

    manifest, out, report = sys.argv[1:4]
    opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}  # epochs, resume, signal_epoch (rank 1 only)
    rank = int(os.environ["RANK"])
    models, seen, shards = [], [], []

    class Recorded(ft.FinetuneModel):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            models.append(self)

    real = loader_module.build_clip_loader

    def recording_loader(*args, **kw):
        shards.append((kw["shard_id"], kw["num_shards"]))
        loader = real(*args, **kw)
        epoch = loader.epoch

        def batches(e, start_step=0):
            for b in epoch(e, start_step=start_step):
                if rank == 1 and e == opts.get("signal_epoch"):  # one rank only: all must stop at the same step
                    os.kill(os.getpid(), signal.SIGINT)
                seen.append(b["video_index"].tolist())
                yield b

        loader.epoch = batches
        return loader

    ft.FinetuneModel = Recorded
    loader_module.build_clip_loader = recording_loader
    cfg = ft.FinetuneConfig(manifest=manifest, out=out, init="random", arch="r3d18", width=4, clip=ClipSpec(clip_len=8, crop_size=32),
                            epochs=opts.get("epochs", 2), resume=opts.get("resume", False), batch_size=2, lr=0.01,
                            test_clips=1, test_crops=("center",), backend="dali-cpu", workers=1, device="cpu")
    r, table = ft.finetune(cfg)
    assert rank == dist.get_rank()
    (model,) = models
    digest = hashlib.sha256(b"".join(p.detach().contiguous().numpy().tobytes() for p in model.parameters())).hexdigest()
    with open(os.path.join(report, f"rank{rank}.json"), "w") as f:
        json.dump({"model": digest, "seen": seen, "shards": shards, "steps": r.get("steps"), "rows": len(r["rows"]),
                   "stopped": [r.get("stopped_by"), r.get("stopped_at_step")],
                   "world": dist.get_world_size()}, f)
""")


def torchrun(tmp_path, dataset, out, name, **opts) -> tuple[dict, dict]:
    """Run the worker on 2 ranks; returns what each rank reported (in a folder of its own, not in `out`)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    report = tmp_path / name
    report.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(dataset), str(out), str(report), json.dumps(opts)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tuple(json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1))


def written(out):
    """The files of a run directory; exactly one TensorBoard event file (rank 0's) is left out."""
    names = sorted(p.name for p in out.iterdir())
    assert sum(n.startswith("events.out.tfevents.") for n in names) == 1, names
    return [n for n in names if not n.startswith("events.out.tfevents.")]


@pytest.fixture(scope="module")
def straight(dataset, tmp_path_factory):
    """One uninterrupted 4-epoch run on 2 ranks: the sync test's run and the signal test's reference."""
    tmp = tmp_path_factory.mktemp("straight")
    out = tmp / "run"
    return out, torchrun(tmp, dataset, out, "report", epochs=4)


def test_finetune_on_two_cpu_ranks_stays_in_sync(straight):
    out, (r0, r1) = straight
    assert r0["world"] == r1["world"] == 2
    assert (r0["shards"], r1["shards"]) == ([[0, 2]], [[1, 2]])
    # 6 train videos over 2 ranks x batch 2: 1 step an epoch, 4 epochs
    expected = 4 * steps_per_epoch(6, 2, num_shards=2)
    assert r0["steps"] == r1["steps"] == expected == 4
    assert len(r0["seen"]) == len(r1["seen"]) == expected
    assert r0["seen"] != r1["seen"]  # each rank trained on its own shard...
    assert r0["model"] == r1["model"]  # ...and the weights agree bit for bit
    # only rank 0 tested and wrote the run directory
    assert (r0["rows"], r1["rows"]) == (1, 0)
    assert written(out) == ["checkpoint.pt", "curves.png", "metrics.jsonl", "results.json", "results.md"]
    assert [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] == results(out)["history"]
    res = results(out)
    assert res["steps"] == expected and len(res["history"]) == 4
    assert all(math.isfinite(h["loss"]) and 0 <= h["train_top1"] <= 100 for h in res["history"])
    metrics = res["rows"][0]["metrics"]
    assert set(metrics) == {"center_top1", "center_top5"} and all(math.isfinite(v) for v in metrics.values())
    import torch

    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == expected and ckpt["world"] == 2 and ckpt["sums"] == {"loss": 0.0, "correct": 0, "seen": 0}


def test_a_signal_to_one_rank_stops_both_at_the_same_step_and_resume_is_exact(dataset, straight, tmp_path):
    import torch

    straight, stopped = straight[0], tmp_path / "stopped"
    # rank 1 alone gets SIGINT while its 2nd step's batch is made (1 step an epoch): both finish step 2 and stop
    r0, r1 = torchrun(tmp_path, dataset, stopped, "stop", epochs=4, signal_epoch=1)
    assert r0["stopped"] == r1["stopped"] == ["SIGINT", 2]
    assert r0["model"] == r1["model"]
    assert written(stopped) == ["checkpoint.pt", "metrics.jsonl"]  # rank 0's, at the stop
    assert torch.load(stopped / "checkpoint.pt", weights_only=True)["step"] == 2
    r0, r1 = torchrun(tmp_path, dataset, stopped, "resume", epochs=4, resume=True)
    assert r0["steps"] == r1["steps"] == 4 and len(r0["seen"]) == 2  # the resumed run made steps 3 and 4 only
    assert results(straight)["history"] == results(stopped)["history"]
    assert results(straight)["rows"] == results(stopped)["rows"]
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(stopped / "checkpoint.pt", weights_only=True)["model"]
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
