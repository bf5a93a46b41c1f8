"""Pretraining: schedules, exact resume, checkpoints, signals, divergence, export, CLI, and a run
on the real pair loader over videos whose frames carry their index."""
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from ascnet import checkpoint
from ascnet.checkpoint import CheckpointError
from ascnet.cli.train import main as train_cli
from ascnet.manifest import Manifest
from ascnet.models import build_backbone
from ascnet.schedule import cosine_lr, ema_momentum, scaled_lr, scp_weight_at
from ascnet.checkpoint import checkpoint_paths
from ascnet.clips import ClipSpec
from ascnet.pipelines.synthetic import SyntheticPairs
from ascnet.train import PretrainConfig, TrainingDiverged, pretrain


pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(data="synthetic", arch="r3d18", width=4, clip=ClipSpec(clip_len=4, crop_size=16), batch_size=4, proj_dim=16,
            hidden_dim=32, queue_size=64, warmup_epochs=0.5, progress=False, log_every=2)


def tiny(tmp_path, **kw) -> PretrainConfig:
    """TINY with changes; a ClipSpec field (speeds=...) changes TINY's clip."""
    clip = dataclasses.replace(TINY["clip"], **{k: kw.pop(k) for k in list(kw) if k in ClipSpec.__dataclass_fields__})
    return PretrainConfig(out=str(tmp_path / kw.pop("name", "run")), **{**TINY, **kw, "clip": clip})


# ---- schedules --------------------------------------------------------------------------
def test_cosine_lr_with_warmup():
    lrs = [cosine_lr(s, 100, 0.4, warmup_steps=10, final_ratio=1e-3) for s in range(100)]
    assert lrs[0] == pytest.approx(0.04) and lrs[9] == pytest.approx(0.4) and lrs[10] == pytest.approx(0.4)
    assert lrs[-1] == pytest.approx(0.4e-3)
    assert lrs[10 + 89 // 2] == pytest.approx(0.4e-3 + (0.4 - 0.4e-3) * 0.5 * (1 + math.cos(math.pi * 44 / 89)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_lr(0, 10, 0.1, warmup_steps=20)


def test_ema_momentum_and_lr_scaling():
    assert ema_momentum(0, 101) == pytest.approx(0.99)
    assert ema_momentum(50, 101) == pytest.approx(0.995)
    assert ema_momentum(100, 101) == 1.0
    assert scaled_lr(0.1, 256) == pytest.approx(0.4)


def test_scp_weight_anneals_from_lambda_to_its_final_share_and_waits_for_its_start():
    w = [scp_weight_at(s, 101, 0.5, final_ratio=0.2) for s in range(101)]
    assert w[0] == 0.5 and w[50] == pytest.approx(0.3) and w[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(w, w[1:]))  # never rises
    assert {scp_weight_at(s, 101, 0.5) for s in range(101)} == {0.5}  # final_ratio 1: constant
    assert [scp_weight_at(s, 101, 0.5, start=3) for s in range(4)] == [0.0, 0.0, 0.0, 0.5]


# ---- runs -------------------------------------------------------------------------------
def states(path):
    ck = torch.load(path, weights_only=True)
    return ck


def test_resume_continues_exactly(tmp_path):
    """2N steps straight == N steps, stop, --resume, N steps: weights, EMA target, optimizer, queue."""
    straight = pretrain(tiny(tmp_path, name="a", max_steps=4, ckpt_every=2))
    first = pretrain(tiny(tmp_path, name="b", max_steps=4, ckpt_every=2, stop_at=2))
    assert first["step"] == 2 and first["checkpoint"].endswith("step-00000002.pt")
    resumed = pretrain(tiny(tmp_path, name="b", max_steps=4, ckpt_every=2, resume=True))
    assert straight["step"] == resumed["step"] == 4
    a, b = states(straight["checkpoint"]), states(resumed["checkpoint"])
    assert a["step"] == b["step"] == 4 and a["epoch"] == b["epoch"] == 0
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["queue"]:
        assert torch.equal(a["queue"][key], b["queue"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # the target moved away from the online network (EMA), identically in both runs
    assert not torch.equal(a["model"]["target_encoder.stem.0.weight"], a["model"]["online_encoder.stem.0.weight"])
    assert straight["final_loss"] == resumed["final_loss"]


def test_adamw_resumes_exactly_and_a_switch_of_optimizer_is_refused(tmp_path):
    kw = dict(max_steps=4, ckpt_every=2, optimizer="adamw", base_lr=0.004)
    straight = pretrain(tiny(tmp_path, name="a", **kw))
    pretrain(tiny(tmp_path, name="b", stop_at=2, **kw))
    resumed = pretrain(tiny(tmp_path, name="b", resume=True, **kw))
    a, b = states(straight["checkpoint"]), states(resumed["checkpoint"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    first = next(iter(a["optimizer"]["state"].values()))
    assert "exp_avg_sq" in first and "momentum_buffer" not in first  # AdamW's state, not SGD's
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    with pytest.raises(CheckpointError, match=r"differs from the checkpoint's: optimizer \"sgd\" \(checkpoint: \"adamw\"\)"):
        pretrain(tiny(tmp_path, name="b", max_steps=6, ckpt_every=2, base_lr=0.004, resume=True))
    with pytest.raises(ValueError, match=r"optimizer='adam' is not allowed; allowed: \['sgd', 'adamw'\]"):
        tiny(tmp_path, optimizer="adam").check()


def test_run_dir_contents(tmp_path):
    cfg = tiny(tmp_path, max_steps=5, ckpt_every=2, keep_last=2, log_every=1)
    summary = pretrain(cfg)
    run = tmp_path / "run"
    assert [p.name for p in checkpoint_paths(run)] == ["step-00000004.pt", "step-00000005.pt"]
    assert json.loads((run / "config.json").read_text()) == json.loads(json.dumps(dataclasses.asdict(cfg)))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["scp_valid"] == 0.0  # the queue is empty at the first step: no SCP positive
    assert rows[1]["scp_valid"] > 0
    assert {"loss", "acp", "scp", "lr", "ema", "clips_per_s", "data_wait", "app_spread", "speed_spread", "acp_margin", "rss_mb"} <= rows[0].keys()
    assert all(0 < r["app_spread"] <= 1.5 and 0 < r["speed_spread"] <= 1.5 for r in rows)
    assert rows[-1]["loss"] == pytest.approx(rows[-1]["acp"] + rows[-1]["scp"])
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG" and summary["curves"]
    ck = checkpoint.load(summary["checkpoint"])
    assert ck["kind"] == "run" and ck["config"]["arch"] == "r3d18" and ck["config"]["width"] == 4
    assert ck["model"]["online_encoder.stem.0.weight"].shape == (4, 3, 7, 7, 7)
    backbone = checkpoint.load_backbone_state(summary["checkpoint"])
    assert backbone["input_size"] == [4, 16, 16]
    build_backbone("r3d18", 4).load_state_dict(backbone["state_dict"])


def test_annealed_scp_weight_is_the_one_in_each_steps_loss(tmp_path):
    pretrain(tiny(tmp_path, max_steps=5, log_every=1, scp_weight=0.5, scp_final_ratio=0.0))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["scp_weight"] for r in rows] == pytest.approx([0.5, 0.4268, 0.25, 0.0732, 0.0], abs=1e-4)
    for r in rows:  # the row of step k holds step k's loss, taken with that step's lambda
        assert r["loss"] == pytest.approx(r["acp"] + r["scp_weight"] * r["scp"], rel=1e-5)
    assert rows[-1]["scp"] > 0 and rows[-1]["loss"] == pytest.approx(rows[-1]["acp"])  # SCP still measured, no longer trained


def test_resume_refuses_a_checkpoint_of_the_old_loss_scale(tmp_path):
    pretrain(tiny(tmp_path, max_steps=2, scp_weight=1.5))
    path = checkpoint_paths(tmp_path / "run")[-1]
    ckpt = torch.load(path, weights_only=True)
    del ckpt["objective"]  # as written before ACP was averaged per clip
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"step-00000002.pt: .*summed its two directions per pair.*another --out; "
                                               r"--scp-weight 0.75 there is the checkpoint's objective"):
        pretrain(tiny(tmp_path, max_steps=4, scp_weight=1.5, resume=True))


def test_resume_errors_are_readable(tmp_path):
    pretrain(tiny(tmp_path, max_steps=2, ckpt_every=1, keep_last=2))
    with pytest.raises(CheckpointError, match="already holds checkpoints: pass --resume"):
        pretrain(tiny(tmp_path, max_steps=2))
    with pytest.raises(CheckpointError, match=r"step-00000002.pt: this run differs from the checkpoint's: arch \"s3dg\" "
                                               r"\(checkpoint: \"r3d18\"\), width 8 \(checkpoint: 4\); resume with the "
                                               r"checkpoint's values, or start a new run in another --out"):
        pretrain(tiny(tmp_path, max_steps=4, arch="s3dg", width=8, resume=True))
    checkpoint_paths(tmp_path / "run")[-1].write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"(?s)step-00000002.pt: not a readable ascnet checkpoint.*delete it to resume from step-00000001.pt"):
        pretrain(tiny(tmp_path, max_steps=4, resume=True))
    with pytest.raises(CheckpointError, match="no checkpoint to resume; drop --resume"):
        pretrain(tiny(tmp_path, name="empty", max_steps=2, resume=True))


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """A run stopped at step 2 of 4, to resume."""
    folder, threads = tmp_path_factory.mktemp("resume"), torch.get_num_threads()
    torch.set_num_threads(1)
    pretrain(tiny(folder, max_steps=4, stop_at=2, ckpt_every=1))
    torch.set_num_threads(threads)
    return folder


# one field of each group that changes what a run computes, and how the refusal names it
@pytest.mark.parametrize("change,named", [
    ({"split": "val"}, 'split "val" (checkpoint: "train")'),                        # data
    ({"speeds": (1, 2)}, "speeds [1, 2] (checkpoint: [1, 2, 4, 8])"),              # sampling
    ({"rate": "native"}, 'rate "native" (checkpoint: "fixed")'),
    ({"crop_scale": (0.5, 1.0)}, "crop_scale [0.5, 1.0] (checkpoint: [0.4, 1.0])"),  # augmentation
    ({"flip_p": 0.0}, "flip_p 0.0 (checkpoint: 0.5)"),
    ({"base_lr": 0.2}, "base_lr 0.2 (checkpoint: 0.1)"),                             # optimiser
    ({"batch_size": 8}, "batch_size 8 (checkpoint: 4)"),
    ({"momentum": 0.8}, "momentum 0.8 (checkpoint: 0.9)"),
    ({"warmup_epochs": 1.0}, "warmup_epochs 1.0 (checkpoint: 0.5)"),                # schedule
    ({"ema_base": 0.9}, "ema_base 0.9 (checkpoint: 0.99)"),
    ({"max_steps": 3}, "max_steps 3 (checkpoint: 4; a run may grow, not shrink)"),
    ({"seed": 1}, "seed 1 (checkpoint: 0)"),                                         # seed
    ({"width": 8}, "width 8 (checkpoint: 4)"),                                       # model
])
def test_resume_refuses_a_changed_run_and_names_the_field(two_steps, change, named):
    with pytest.raises(CheckpointError, match=re.escape(f"this run differs from the checkpoint's: {named}; resume with")):
        pretrain(tiny(two_steps, resume=True, **{"max_steps": 4, **change}))


def test_resume_refuses_another_world_size(tmp_path):
    pretrain(tiny(tmp_path, max_steps=2, ckpt_every=1))
    path = checkpoint_paths(tmp_path / "run")[-1]
    ck = torch.load(path, weights_only=True)
    assert ck["world"] == 1
    checkpoint.save_atomic({**ck, "world": 2}, path)  # as if written under torchrun --nproc-per-node 2
    with pytest.raises(CheckpointError, match=re.escape("differs from the checkpoint's: WORLD_SIZE 1 (checkpoint: 2)")):
        pretrain(tiny(tmp_path, max_steps=4, resume=True))


def test_resume_accepts_bookkeeping_changes_and_a_longer_run(tmp_path):
    pretrain(tiny(tmp_path, max_steps=4, stop_at=2, ckpt_every=1))
    done = pretrain(tiny(tmp_path, max_steps=6, resume=True, ckpt_every=3, keep_last=1, log_every=1, workers=1,
                         epochs=300))
    assert done["step"] == 6 and [p.name for p in checkpoint_paths(tmp_path / "run")] == ["step-00000006.pt"]


class PoisonedPairs(SyntheticPairs):
    """Synthetic pairs whose clips turn to NaN from step `bad_step` on."""

    def __init__(self, bad_step, *args, **kw):
        super().__init__(*args, **kw)
        self.bad_step = bad_step

    def epoch(self, epoch, start_step=0):
        for step, batch in enumerate(super().epoch(epoch, start_step), start_step):
            if epoch * self.steps_per_epoch + step >= self.bad_step:
                batch["clip_a"] = torch.full_like(batch["clip_a"], float("nan"))
            yield batch


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny(tmp_path, max_steps=8, ckpt_every=2, log_every=4)
    loader = PoisonedPairs(5, cfg.clip, batch_size=4)
    with pytest.raises(TrainingDiverged, match=r"step 6: the loss is not finite.*Last good checkpoint: .*step-00000004.pt"):
        pretrain(cfg, loader=loader)
    assert [p.name for p in checkpoint_paths(tmp_path / "run")] == ["step-00000002.pt", "step-00000004.pt"]


def test_config_errors_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"arch='r50' is not allowed; allowed: \['r3d18', 'r2plus1d18', 's3dg'\]"):
        pretrain(tiny(tmp_path, arch="r50"))
    with pytest.raises(ValueError, match="need at least two distinct speeds"):
        pretrain(tiny(tmp_path, speeds=(2,)))
    with pytest.raises(ValueError, match="manifest is empty: pass --manifest"):
        pretrain(tiny(tmp_path, data="manifest"))


def test_sigterm_writes_a_checkpoint_before_exit(tmp_path):
    run = tmp_path / "run"
    args = ["pretrain", "--out", str(run), "--max-steps", "100000", "--log-every", "1", "--ckpt-every", "100000"]
    options = {**{k: v for k, v in TINY.items() if k != "clip"}, **dataclasses.asdict(TINY["clip"])}
    for k, v in options.items():
        if k not in ("progress", "log_every", "augment"):
            args += [f"--{k.replace('_', '-')}", ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    code = f"import sys; from ascnet.cli.train import main; sys.argv = ['ascnet-train'] + {args + ['--no-progress']!r}; main()"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics, deadline = run / "metrics.jsonl", time.time() + 60
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    (path,) = checkpoint_paths(run)
    step = checkpoint.load(path)["step"]
    assert step >= 2 and f"stopped by SIGTERM at step {step}" in err and "--resume" in err


def test_export_loads_with_plain_torch(tmp_path):
    summary = pretrain(tiny(tmp_path, max_steps=2))
    out = tmp_path / "backbone.pt"
    result = CliRunner().invoke(train_cli, ["export", str(tmp_path / "run"), "--out", str(out)])
    assert result.exit_code == 0 and f"wrote {out}" in result.output
    # the README's lines: nothing of this package but build_backbone
    obj = torch.load(out, weights_only=True)
    assert (obj["kind"], obj["arch"], obj["width"], obj["input_size"], obj["feature_dim"]) == ("backbone", "r3d18", 4, [4, 16, 16], 32)
    model = build_backbone(obj["arch"], obj["width"])
    model.load_state_dict(obj["state_dict"])
    # the same features as the run's online encoder
    run_state = torch.load(summary["checkpoint"], weights_only=True)["model"]
    ref = build_backbone("r3d18", 4)
    ref.load_state_dict({k[len("online_encoder."):]: v for k, v in run_state.items() if k.startswith("online_encoder.")})
    x = torch.randn(2, 3, 4, 16, 16)
    assert torch.equal(model.eval()(x), ref.eval()(x))
    bad = CliRunner().invoke(train_cli, ["export", str(tmp_path), "--out", str(out)])
    assert bad.exit_code == 1 and "no checkpoints/step-*.pt; is it a pretraining run directory?" in bad.output


def test_plot_command(tmp_path):
    pretrain(tiny(tmp_path, max_steps=2, log_every=1))
    (tmp_path / "run" / "curves.png").unlink()
    result = CliRunner().invoke(train_cli, ["plot", str(tmp_path / "run")])
    assert result.exit_code == 0 and (tmp_path / "run" / "curves.png").exists()
    result = CliRunner().invoke(train_cli, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "metrics.jsonl: no metrics" in result.output


def test_cli_maps_options_and_checks_them(tmp_path):
    result = CliRunner().invoke(train_cli, ["pretrain", "--data", "synthetic", "--out", str(tmp_path / "r"), "--width", "4",
                                            "--clip-len", "4", "--crop-size", "16", "--batch-size", "4", "--hidden-dim", "32",
                                            "--queue-size", "64", "--speeds", "1,2", "--max-steps", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["clip"]["speeds"] == [1, 2] and saved["width"] == 4 and saved["max_steps"] == 2
    assert "step 2/2" in result.output
    bad = CliRunner().invoke(train_cli, ["pretrain", "--arch", "r50"])
    assert bad.exit_code == 2 and "'r50' is not one of 'r3d18', 'r2plus1d18', 's3dg'" in bad.output
    bad = CliRunner().invoke(train_cli, ["pretrain", "--speeds", "1,x", "--data", "synthetic"])
    assert bad.exit_code == 2 and "give integers separated by commas" in bad.output


def test_pretrain_on_the_real_pair_loader(tmp_path):
    """Pattern videos -> manifest -> the pipelines' pair loader -> two steps of training."""
    pytest.importorskip("nvidia.dali")
    from ascnet.tools.synthetic import write_pattern_video

    rows = []
    for i in range(4):
        p = write_pattern_video(tmp_path / f"v{i}.webm", 48, "vp9", width=64, height=48, fps=25.0)
        rows.append(dict(video_id=p.name, path=p.name, label=i % 2, label_name=f"c{i % 2}", split="train",
                         num_frames=48, fps=25.0, width=64, height=48, codec="vp9", status="ok"))
    Manifest.from_rows(rows, root=tmp_path).write(tmp_path / "m.parquet")
    cfg = tiny(tmp_path, data="manifest", manifest=str(tmp_path / "m.parquet"), batch_size=2, speeds=(1, 2),
               max_steps=3, log_every=1, workers=1, backend="pyav")
    summary = pretrain(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == 3 and [r["epoch"] for r in rows] == [0, 0, 1]  # 4 videos / batch 2 = 2 steps an epoch
    assert all(math.isfinite(r["loss"]) for r in rows) and rows[-1]["scp_valid"] > 0
    # the labels (2 classes) give the monitor of SCP's positives and its chance level; 4 videos of 2
    # classes, and a positive is never the query's own video: at each of its 2 speeds a query finds
    # the other video of its class or one of the other class's two
    assert all(r["scp_pos_chance"] == 0.5 for r in rows)
    assert all(0 <= r["scp_pos_same_class"] <= 1 for r in rows[1:])


@pytest.mark.gpu
def test_pretrain_on_cuda_in_bf16(tmp_path):
    summary = pretrain(tiny(tmp_path, device="cuda", max_steps=3, log_every=1))
    assert summary["step"] == 3 and math.isfinite(summary["final_loss"])
    ck = checkpoint.load(summary["checkpoint"])
    assert ck["model"]["online_encoder.stem.0.weight"].dtype == torch.float32  # bf16 only inside autocast


def test_bench_train_command_reports_both_sides(tmp_path):
    from ascnet.cli.bench import main as bench_cli
    from ascnet.tools.synthetic import write_pattern_video

    rows = []
    for i in range(2):
        p = write_pattern_video(tmp_path / f"v{i}.webm", 40, "vp9", width=64, height=48, fps=25.0)
        rows.append(dict(video_id=p.name, path=p.name, label=0, label_name="c", split="train", num_frames=40, fps=25.0,
                         width=64, height=48, codec="vp9", status="ok"))
    Manifest.from_rows(rows, root=tmp_path).write(tmp_path / "m.parquet")
    args = ["train", "--manifest", str(tmp_path / "m.parquet"), "--device", "cpu", "--width", "4", "--clip-len", "4",
            "--crop-size", "16", "--batch-size", "2", "--speeds", "1,2", "--steps", "2", "--warmup", "1", "--workers", "1",
            "--backend", "pyav", "--threads", "1", "--allow-busy", "--json-out", str(tmp_path / "r.json")]
    result = CliRunner().invoke(bench_cli, args)
    assert result.exit_code == 0, result.output
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["ratio"] == pytest.approx(r["real"]["step_s"] / r["synthetic"]["step_s"])
    assert r["real"]["clips_per_s"] == pytest.approx(2 * r["real"]["pairs_per_s"]) and r["backend"] == "pyav"
    assert "real/synthetic step time:" in result.output and "device cpu (1 threads)" in result.output
    assert len(r["load_average"]) == 2 and all(isinstance(r[s]["busy"], bool) for s in ("synthetic", "real"))
    assert "1-min load average " in result.output.splitlines()[-1]


def test_bench_train_refuses_a_loaded_machine(monkeypatch):
    from ascnet.bench import common
    from ascnet.cli.bench import main as bench_cli

    monkeypatch.setattr(common, "load_average", lambda: 9.0)
    args = ["train", "--device", "cpu", "--width", "4", "--clip-len", "4", "--crop-size", "16", "--batch-size", "2",
            "--steps", "1", "--warmup", "0", "--workers", "0", "--threads", "1"]
    result = CliRunner().invoke(bench_cli, args)
    assert result.exit_code == 1 and "the 1-min load average is 9.00 (> 0.5)" in result.output
    assert "pass --allow-busy to measure anyway" in result.output and "step ms" not in result.output  # nothing measured
    result = CliRunner().invoke(bench_cli, args + ["--allow-busy"])  # the synthetic side only: no --manifest
    assert result.exit_code == 0, result.output
    assert result.output.startswith("warning: load average 9.00 > 0.5; measuring anyway (--allow-busy)")
    assert "synthetic" in result.output and "1-min load average 9.00 at the start, " in result.output
