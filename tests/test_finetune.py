"""`ascnet-eval finetune`: exact resume (after --stop-after-steps or SIGTERM), readable refusals, multi-crop test,
the run as an --init, its augmentation settings."""
import math
from dataclasses import replace
import os
import signal
import subprocess
import sys
import time

import torch

from ascnet.clips import ClipSpec
from ascnet.checkpoint import load_backbone_state, save_atomic
from ascnet.evaluate.finetune import FinetuneConfig, FinetuneModel, lr_at
from ascnet.models import build_backbone
from tests.test_eval_cli import dataset, invoke, results  # noqa: F401  (dataset is a fixture)


def test_lr_runs_from_base_to_zero():
    cfg = FinetuneConfig(lr=0.1)
    assert lr_at(cfg, 0, 10) == 0.1
    assert math.isclose(lr_at(cfg, 5, 10), 0.05)
    assert lr_at(cfg, 10, 10) == 0.0 and lr_at(cfg, 12, 10) == 0.0


def test_finetune_checkpoint_is_readable_as_a_backbone(tmp_path):
    enc = build_backbone("r3d18", 4)
    model = FinetuneModel(enc, 3)
    assert model(torch.zeros(2, 3, 8, 32, 32)).shape == (2, 3)
    save_atomic({"kind": "run", "config": {"arch": "r3d18", "width": 4}, "model": model.state_dict()}, tmp_path / "c.pt")
    state = load_backbone_state(tmp_path / "c.pt")
    assert state["arch"] == "r3d18" and set(state["state_dict"]) == set(enc.state_dict())


def finetune_args(init, lr=0.01):
    return ["--init", init, "--epochs", "2", "--batch-size", "2", "--test-clips", "2", "--test-crops", "center,three",
            "--clip-len", "8", "--crop-size", "32", "--lr", lr, "--backend", "dali-cpu"]


def test_finetune_resume_is_exact(dataset, tmp_path):
    import torch

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # starts from a backbone file: arch and width come from it
    net = build_backbone("r3d18", 4)
    save_atomic({"kind": "backbone", "arch": "r3d18", "width": 4, "input_size": [8, 32, 32],
                 "feature_dim": net.feature_dim, "state_dict": net.state_dict()}, tmp_path / "b.pt")
    FT = finetune_args(tmp_path / "b.pt")
    r = invoke("finetune", "--manifest", dataset, "--out", straight, *FT)
    assert r.exit_code == 0, r.output
    # 6 train videos / batch 2 = 3 steps an epoch: stop in the middle of epoch 2, then resume
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *FT, "--stop-after-steps", "4")
    assert r.exit_code == 0 and "stopped at step 4/6; continue with --resume" in r.output
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *FT)
    assert r.exit_code == 2 and "checkpoint.pt exists: pass --resume" in r.output
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *finetune_args(tmp_path / "b.pt", lr=0.02), "--resume")
    assert r.exit_code == 2 and "this run differs from the checkpoint's: lr 0.02 (checkpoint: 0.01)" in r.output
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *FT, "--resume")
    assert r.exit_code == 0, r.output

    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    ra, rb = results(straight), results(resumed)
    assert ra["history"] == rb["history"] and len(ra["history"]) == 2
    assert ra["rows"][0]["metrics"] == rb["rows"][0]["metrics"]
    assert list(ra["rows"][0]["metrics"]) == ["center_top1", "center_top5", "three_top1", "three_top5"]
    assert (straight / "curves.png").stat().st_size > 0
    # the fine-tuning run (its directory) is itself an encoder another evaluation can start from
    r = invoke("retrieval", "--init", straight, "--manifest", dataset, "--out", tmp_path / "ret",
               "--clips-per-video", "1", "--clip-len", "8", "--crop-size", "32")
    assert r.exit_code == 0, r.output
    assert results(tmp_path / "ret")["rows"][0]["arch"] == "r3d18"


def test_clip_loader_passes_crop_scale_and_flip_p(dataset):
    import numpy as np

    from ascnet.manifest import Manifest
    from ascnet.pipelines.loader import build_clip_loader
    from ascnet.pipelines.schedules import TrainSchedule

    m = Manifest.from_parquet(dataset)

    def decisions(**kw):
        with build_clip_loader(m, ClipSpec(clip_len=8, crop_size=32, **kw), batch_size=2, backend="pyav") as L:
            sched = TrainSchedule(**L._sched_args)  # what the loader's source asks the pipeline for
            return np.stack([a for g in range(30) for a in sched.request(g).aug])

    full = decisions(crop_scale=(1.0, 1.0), flip_p=0.0)
    areas = (full[:, 2] - full[:, 0]) * (full[:, 3] - full[:, 1])
    # the whole 64x48 frame (to a pixel of rounding at a ratio next to 4:3), never mirrored
    assert areas.min() >= 0.97 and (full[:, 4] == 0).all()
    default = decisions()
    assert ((default[:, 2] - default[:, 0]) * (default[:, 3] - default[:, 1])).min() < 0.7
    assert (default[:, 4] == 1).any()


def test_finetune_uses_and_records_its_augmentation_and_resume_checks_it(dataset, tmp_path, monkeypatch):
    import pytest

    import ascnet.evaluate.finetune as loader_module  # the module whose build_clip_loader finetune calls
    from ascnet.checkpoint import CheckpointError
    from ascnet.evaluate.features import EvalError
    from ascnet.evaluate.finetune import FinetuneConfig, finetune

    seen = []
    real = loader_module.build_clip_loader

    def spy(*args, **kw):
        clip = args[1]
        seen.append({k: getattr(clip, k) for k in ("augment", "crop_scale", "flip_p")})
        return real(*args, **kw)

    monkeypatch.setattr(loader_module, "build_clip_loader", spy)
    clip = ClipSpec(clip_len=8, crop_size=32, augment=False, crop_scale=(0.8, 1.0), flip_p=0.0)
    base = dict(manifest=str(dataset), out=str(tmp_path / "ft"), arch="r3d18", width=4, clip=clip,
                epochs=1, batch_size=2, test_clips=1, test_crops=("center",), backend="dali-cpu", workers=1, device="cpu")
    r, _ = finetune(FinetuneConfig(**base, stop_after_steps=1))
    assert r["stopped_at_step"] == 1
    assert seen == [{"augment": False, "crop_scale": (0.8, 1.0), "flip_p": 0.0}]

    for change, name in ((dict(augment=True), "augment"), (dict(flip_p=0.5), "flip_p"),
                         (dict(crop_scale=(0.4, 1.0)), "crop_scale")):
        with pytest.raises(CheckpointError, match=f"this run differs from the checkpoint's: {name} "):
            finetune(FinetuneConfig(**{**base, "clip": replace(clip, **change)}, resume=True))
    with pytest.raises(EvalError, match=r"crop_scale=\(0.0, 1.0\)"):
        finetune(FinetuneConfig(**{**base, "clip": replace(clip, crop_scale=(0.0, 1.0)), "out": str(tmp_path / "bad")}))
    with pytest.raises(EvalError, match="flip_p=1.5"):
        finetune(FinetuneConfig(**{**base, "clip": replace(clip, flip_p=1.5), "out": str(tmp_path / "bad")}))
    assert not (tmp_path / "bad").exists()

    # the same settings resume, a list for the tuple included (as a config read back from JSON has it)
    r, _ = finetune(FinetuneConfig(**{**base, "clip": replace(clip, crop_scale=[0.8, 1.0])}, resume=True))
    assert r["steps"] == 3
    assert {k: list(r["config"]["clip"][k]) if k == "crop_scale" else r["config"]["clip"][k]
            for k in ("augment", "crop_scale", "flip_p")} == {"augment": False, "crop_scale": [0.8, 1.0], "flip_p": 0.0}
    saved = results(tmp_path / "ft")["config"]["clip"]
    assert {k: saved[k] for k in ("augment", "crop_scale", "flip_p")} == {
        "augment": False, "crop_scale": [0.8, 1.0], "flip_p": 0.0}


def test_finetune_cli_passes_the_augmentation_options(tmp_path, monkeypatch):
    import ascnet.cli.evaluate as cli

    got = []
    monkeypatch.setattr(cli, "run_finetune", lambda cfg: (got.append(cfg) or {}, "table\n"))
    common = ["--init", "random", "--manifest", tmp_path / "m.parquet", "--out", tmp_path / "out"]
    r = invoke("finetune", *common, "--no-augment", "--crop-scale", "0.8,1.0", "--flip-p", "0")
    assert r.exit_code == 0, r.output
    clip = got[-1].clip
    assert (clip.augment, clip.crop_scale, clip.flip_p) == (False, (0.8, 1.0), 0.0)
    r = invoke("finetune", *common)
    assert r.exit_code == 0, r.output
    clip = got[-1].clip
    assert (clip.augment, clip.crop_scale, clip.flip_p) == (True, (0.4, 1.0), 0.5)
    for bad in (["--crop-scale", "0.8"], ["--crop-scale", "0.5,1.5"], ["--crop-scale", "a,b"], ["--flip-p", "2"]):
        r = invoke("finetune", *common, *bad)
        assert r.exit_code == 2 and "Invalid value for" in r.output, (bad, r.output)
    assert len(got) == 2


def test_sigterm_writes_a_checkpoint_and_resume_continues_exactly(dataset, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    # 16 epochs x 3 steps: long enough to be stopped in the middle, short enough to finish after
    FT = ["--init", "random", "--arch", "r3d18", "--width", "4", "--epochs", "16", "--batch-size", "2", "--test-clips", "1",
          "--test-crops", "center", "--clip-len", "8", "--crop-size", "32", "--lr", "0.01", "--backend", "dali-cpu"]
    args = ["finetune", "--manifest", str(dataset), "--out", str(stopped), *FT, "--checkpoint-every", "1"]
    code = f"import sys; from ascnet.cli.evaluate import main; sys.argv = ['ascnet-eval'] + {args!r}; main()"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err_file:  # a file, not a pipe: the progress bar never blocks the child
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=err_file,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        ckpt, deadline = stopped / "checkpoint.pt", time.time() + 60
        try:
            while not ckpt.exists():  # written after the first step
                assert proc.poll() is None and time.time() < deadline, log.read_text() if proc.poll() is not None else "timeout"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = log.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 1 <= step < 48, step  # stopped in training, not at its end
    assert f"stopped by SIGTERM at step {step}; checkpoint {ckpt} (continue with --resume)" in err, err
    assert not (stopped / "results.json").exists()

    # the rest runs in this process: with the child's one thread, so the sums are bit-identical
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _resume_and_compare(dataset, FT, stopped, straight, ckpt, step)
    finally:
        torch.set_num_threads(threads)


def _resume_and_compare(dataset, FT, stopped, straight, ckpt, step):
    # --resume starts from the saved step, not from 0
    r = invoke("finetune", "--manifest", dataset, "--out", stopped, *FT, "--resume", "--stop-after-steps", "2")
    assert r.exit_code == 0 and f"stopped at step {step + 2}/48; continue with --resume" in r.output, r.output
    r = invoke("finetune", "--manifest", dataset, "--out", stopped, *FT, "--resume")
    assert r.exit_code == 0, r.output
    # and ends where an uninterrupted run ends
    r = invoke("finetune", "--manifest", dataset, "--out", straight, *FT)
    assert r.exit_code == 0, r.output
    ra, rb = results(straight), results(stopped)
    assert ra["steps"] == rb["steps"] == 48
    assert ra["history"] == rb["history"] and len(rb["history"]) == 16
    assert ra["rows"][0]["metrics"] == rb["rows"][0]["metrics"]
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(ckpt, weights_only=True)["model"]
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


def test_a_signal_stops_finetune_at_the_next_step(dataset, tmp_path, monkeypatch):
    """In-process: the handler sets the flag; the step in progress completes, then checkpoint and return."""
    import ascnet.evaluate.finetune as loader_module  # the module whose build_clip_loader finetune calls
    from ascnet.evaluate.finetune import FinetuneConfig, finetune

    real = loader_module.build_clip_loader

    def loader_that_signals(*args, **kw):
        loader = real(*args, **kw)
        epoch = loader.epoch

        def batches(e, start_step=0):
            for i, b in enumerate(epoch(e, start_step=start_step)):
                if e == 1 and start_step + i == 1:  # while the 5th step's batch is being made
                    os.kill(os.getpid(), signal.SIGINT)
                yield b

        loader.epoch = batches
        return loader

    monkeypatch.setattr(loader_module, "build_clip_loader", loader_that_signals)
    base = dict(manifest=str(dataset), out=str(tmp_path / "ft"), arch="r3d18", width=4, clip=ClipSpec(clip_len=8, crop_size=32),
                epochs=3, batch_size=2, test_clips=1, test_crops=("center",), backend="dali-cpu", workers=1, device="cpu")

    def unhandled(signum, frame):  # outside finetune's handler: a plain failure, not a KeyboardInterrupt of the suite
        raise AssertionError(f"{signal.Signals(signum).name} reached the handler that was there before finetune")

    previous = signal.signal(signal.SIGINT, unhandled)
    try:
        r, table = finetune(FinetuneConfig(**base))
        assert signal.getsignal(signal.SIGINT) is unhandled  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (r["stopped_by"], r["stopped_at_step"]) == ("SIGINT", 5) and "stopped by SIGINT at step 5/9" in table
    saved = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)
    # mid-epoch 2: one epoch in the history, the running sums of the epoch's 2 steps (4 clips)
    assert saved["step"] == 5 and len(saved["history"]) == 1 and saved["sums"]["seen"] == 4
