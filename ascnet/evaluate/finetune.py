"""Fine-tuning (the paper's Tables 2 and 3): the encoder plus a new linear head, trained end to
end on clips at speed 1 (`clip`: their length and crop, augmented unless `clip.augment` is
False), tested on N evenly spaced clips x {center, three, ten} crops with the logits averaged
per video. Devices, DDP, signals and autocast come from `ascnet.runtime`, as pretraining's do.

Checkpoints (OUT/checkpoint.pt, atomic) hold the model, the optimizer, the step and the epoch's
running sums; the clip loader is deterministic given (seed, epoch) and skips to a step without
decoding, so `--resume` continues the exact run. SIGTERM/SIGINT during training finish the step, write the
checkpoint and return a "stopped" result naming the signal (the CLI exits with 128 + its number).

Under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel and each rank
reads its own shard of the training split (steps per epoch = videos // (batch x ranks)). Every
step all-reduces the loss, correct and seen counts, so the history, the checkpoint's running sums
and the non-finite-loss check cover all ranks and agree on each; a signal stops every rank at the
same step. Only rank 0 writes (checkpoints, results, curves) and runs the test; the other ranks
return after training without waiting for it (rows empty), so a long test cannot time out a
collective.
"""
from __future__ import annotations

import math
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ascnet.checkpoint import CheckpointError, check_resume, load, save_atomic
from ascnet.clips import ClipSpec, Crops
from ascnet.config import Device
from ascnet.evaluate.features import (CROPS_PER_CLIP, ClipSettings, EvalError, check_classes, eval_batches,
                                      load_encoder, run_model, split_of)
from ascnet.evaluate.linear import accuracy_report
from ascnet.evaluate.report import plot_curves, write_results
from ascnet.manifest import Manifest
from ascnet.models import Arch
from ascnet.pipelines.backends import Backend
from ascnet.pipelines.loader import build_clip_loader
from ascnet.runlog import RunRecord, result_metrics
from ascnet.runtime import Runtime, StopRequest, agreed_stop, rng_state, set_rng_state, setup_runtime
from ascnet.schedule import cosine_lr
from ascnet.skips import ON_ERROR, OnError, SkipLog

CHECKPOINT = "checkpoint.pt"
# fields that may change between a run and its --resume (they do not change the result)
RESUMABLE = {"resume", "stop_after_steps", "workers", "checkpoint_every", "test_crops", "test_clips", "on_error",
             "max_skip_fraction", "tensorboard", "wandb"}


@dataclass
class FinetuneConfig:
    """`ascnet-eval finetune`."""

    manifest: str = ""
    out: str = ""
    init: str = "random"  # a checkpoint path or "random"
    arch: Arch | None = None  # with a checkpoint, taken from it
    width: int | None = None
    train_split: str = "train"
    test_split: str = "test"
    clip: ClipSpec = ClipSpec()  # training clips at speed 1 (its speeds are not used); test clips of its length and crop
    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.05  # SGD, cosine to 0 over the run
    momentum: float = 0.9
    weight_decay: float = 5e-4
    test_clips: int = 10
    test_crops: tuple[Crops, ...] = ("center", "three", "ten")
    backend: Backend = "auto"
    workers: int = 2
    device: Device = "auto"
    seed: int = 0
    checkpoint_every: int = 0  # steps; 0: at the end of each epoch only
    stop_after_steps: int = 0  # stop (with a checkpoint) after this many steps of this invocation
    resume: bool = False
    on_error: OnError = "skip"  # a training video that fails to decode: "skip" it (a stand-in takes its place) or "raise"
    max_skip_fraction: float = 0.01  # stop when more than this share of an epoch was skipped
    tensorboard: bool = True  # OUT/events.out.tfevents.* mirror OUT/metrics.jsonl (a row per epoch)
    wandb: str | None = None  # a W&B project: the run is logged there too


class FinetuneModel(nn.Module):
    """Encoder + linear head: (B, 3, T, H, W) -> (B, num_classes) logits.

    The encoder is named `online_encoder` like the pretraining module's, so a fine-tuned
    checkpoint is itself a "run" checkpoint that `load_backbone_state` (and --init) can read.
    """

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.online_encoder = encoder
        self.head = nn.Linear(encoder.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.online_encoder(x))


def lr_at(cfg: FinetuneConfig, step: int, total: int) -> float:
    """Cosine from cfg.lr at step 0 towards 0 at step `total` (no warm-up)."""
    return cosine_lr(step, total + 1, cfg.lr, final_ratio=0.0)


def finetune(cfg: FinetuneConfig) -> tuple[dict, str]:
    """Train, checkpoint, test; writes results (and curves) in cfg.out. Returns (results, table)."""
    from tqdm import tqdm


    try:  # before any decoding or model building
        clip = cfg.clip.check()
        rt = setup_runtime(cfg.device)
    except ValueError as e:
        raise EvalError(str(e)) from None
    out = Path(cfg.out)
    manifest = Manifest.from_parquet(cfg.manifest)
    train_rows = split_of(manifest, cfg.train_split, "--train-split", cfg.manifest)
    test_rows = split_of(manifest, cfg.test_split, "--test-split", cfg.manifest)
    check_classes(train_rows, test_rows, cfg.manifest)
    device = rt.device

    encoder, info = load_encoder(cfg.init, cfg.arch, cfg.width, cfg.seed)
    config = {**asdict(cfg), "arch": info.arch, "width": info.width}  # as resolved, so the file names its arch
    ckpt_path = out / CHECKPOINT
    saved = None
    if cfg.resume:
        if not ckpt_path.exists():
            raise CheckpointError(f"{ckpt_path}: nothing to resume; run without --resume first")
        saved = load(ckpt_path)
        # the world size sets the shards, the steps per epoch and the step count
        check_resume(ckpt_path, {**saved.get("config", {}), "WORLD_SIZE": saved.get("world", 1)},
                     {**config, "WORLD_SIZE": rt.world}, free=RESUMABLE)
    elif ckpt_path.exists():
        raise EvalError(f"{ckpt_path} exists: pass --resume to continue that run, or another --out")

    torch.manual_seed(cfg.seed)  # the head's initialisation
    model = FinetuneModel(encoder, manifest.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    step, history, sums = 0, [], {"loss": 0.0, "correct": 0, "seen": 0}
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        step, history, sums = saved["step"], saved["history"], saved["sums"]
        set_rng_state(saved["rng"] if isinstance(saved["rng"], dict) else {"torch": saved["rng"]})

    # a split smaller than one batch (per rank) is refused here, by the loader, with its own message
    if cfg.on_error not in ON_ERROR:
        raise EvalError(f"on_error={cfg.on_error!r} is not allowed; allowed: {list(ON_ERROR)}")
    loader = build_clip_loader(
        manifest, clip, split=cfg.train_split, batch_size=cfg.batch_size, backend=cfg.backend, device=device.type, seed=cfg.seed,
        shard_id=rt.rank, num_shards=rt.world, workers=cfg.workers, on_error=cfg.on_error,
    )
    per_epoch = loader.steps_per_epoch
    skips = SkipLog(cfg.out, max_fraction=cfg.max_skip_fraction, epoch_videos=per_epoch * cfg.batch_size * rt.world,
                    main=rt.main, world=rt.world, device=device)
    total = cfg.epochs * per_epoch
    net = rt.wrap(model)  # what the step runs; `model` (unwrapped) is what is saved and tested

    def save():
        if not rt.main:
            return
        save_atomic({
            "kind": "run", "config": config, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "step": step, "history": history, "sums": sums, "rng": rng_state(), "world": rt.world,
        }, ckpt_path)

    record = RunRecord(out, config=config, kind="finetune", main=rt.main)  # OUT/metrics.jsonl and its mirrors
    done_here = 0
    stopped = False
    stopped_by = 0  # the signal that stopped training, if any
    try:
        # the handlers cover training only: a signal during the test kills the process as usual, and
        # --resume goes straight to the test from the last epoch's checkpoint
        with StopRequest() as stop:
            bar = tqdm(total=total, initial=step, desc=f"finetune {info.init}", unit="step", disable=not rt.main)
            while step < total and not stopped:
                epoch, start = divmod(step, per_epoch)
                net.train()
                for batch in loader.epoch(epoch, start_step=start):
                    for group in opt.param_groups:
                        group["lr"] = lr_at(cfg, step, total)
                    x, y = batch["clips"].to(device, non_blocking=True), batch["label"].to(device)
                    with rt.autocast():
                        logits = net(x)
                    loss = nn.functional.cross_entropy(logits.float(), y)
                    # one host sync a step (this loop is not the fast path); under DDP the same value on every rank
                    value, loss_sum, correct, seen = _step_sums(rt, loss, logits, y)
                    if not math.isfinite(value):
                        raise EvalError(f"loss became {value} at step {step}; lower --lr (the last good checkpoint is {ckpt_path})")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    skips.add(loader.take_skips(), epoch)
                    skips.sync()  # every rank, every step (this loop syncs every step anyway)
                    step += 1
                    done_here += 1
                    sums["loss"] += loss_sum
                    sums["correct"] += correct
                    sums["seen"] += seen
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.3f}", epoch=epoch, skipped=len(skips.known))
                    if step % per_epoch == 0:
                        history.append({
                            "epoch": epoch + 1, "step": step, "loss": sums["loss"] / sums["seen"],
                            "train_top1": 100.0 * sums["correct"] / sums["seen"], "lr": lr_at(cfg, step, total),
                        })
                        sums = {"loss": 0.0, "correct": 0, "seen": 0}
                        record.log(history[-1])
                        save()
                    elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                        save()
                    stopped_by = agreed_stop(rt, stop.signum)  # every rank, every step: the same step everywhere
                    if stopped_by or (cfg.stop_after_steps and done_here >= cfg.stop_after_steps):
                        stopped = True
                        break
            bar.close()
            # a signal that came after the last step (or before the first) still stops here
            # (every rank gets here with the same stopped_by, so all or none take part in the agreement)
            stopped_by = stopped_by or agreed_stop(rt, stop.signum)
    finally:
        loader.close()
    if stopped_by:
        # also at step == total: the checkpoint holds the whole training and --resume only tests
        save()
        name = signal.Signals(stopped_by).name
        record.finish()
        return ({"command": "finetune", "stopped_at_step": step, "stopped_by": name, "checkpoint": str(ckpt_path), "rows": []},
                f"stopped by {name} at step {step}/{total}; continue with --resume\n")
    if stopped and step < total:
        save()
        record.finish()
        return {"command": "finetune", "stopped_at_step": step, "rows": []}, f"stopped at step {step}/{total}; continue with --resume\n"

    if not rt.main:
        # the test, results and curves are rank 0's; this rank has nothing more to do
        return {"command": "finetune", "steps": step, "rank": rt.rank, "rows": []}, ""
    metrics = test_model(model, test_rows, cfg, device)
    rows = [{"init": info.init, "arch": info.arch, "width": info.width, "metrics": metrics}]
    results = {
        "command": "finetune", "config": config, "rows": rows, "history": history, "steps": step,
        "num_classes": manifest.num_classes, "num_train_videos": len(train_rows), "num_test_videos": len(test_rows),
    }
    table = write_results(out, results, f"Fine-tuning: {cfg.test_split} split, {cfg.test_clips} clips/video, video-level accuracy per crop mode")
    if history:
        # the test score sits on the last epoch of the curves
        shown = history[:-1] + [{**history[-1], "test_top1": metrics[f"{cfg.test_crops[0]}_top1"]}]
        plot_curves(shown, [{"keys": ["loss"], "ylabel": "train loss"},
                            {"keys": ["train_top1", "test_top1"], "ylabel": "accuracy (%)", "ylim": (0, 100)}],
                    out / "curves.png", x="epoch", title=f"fine-tuning {info.arch} ({info.init})")
    record.finish(result_metrics(results), {"curves": out / "curves.png" if history else None}, step)
    return results, table


def _step_sums(rt: Runtime, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float, int, int]:
    """(mean loss, loss x clips, correct, clips) of a step: this rank's in one process, all ranks' under DDP."""
    if rt.world == 1:
        value = float(loss.detach())
        return value, value * len(y), int((logits.argmax(1) == y).sum()), len(y)
    t = torch.stack([loss.detach().double() * len(y), (logits.detach().argmax(1) == y).sum().double(),
                     torch.tensor(float(len(y)), dtype=torch.float64, device=loss.device)])
    torch.distributed.all_reduce(t)
    loss_sum, correct, seen = t.tolist()
    return loss_sum / seen, loss_sum, int(correct), int(seen)


def test_model(model: nn.Module, test_rows: Manifest, cfg: FinetuneConfig, device: torch.device) -> dict[str, float]:
    """Video-level top-1/top-5 per crop mode (logits of N clips x crops averaged), in percent."""
    metrics = {}
    for crops in cfg.test_crops:
        settings = ClipSettings(cfg.clip, cfg.test_clips, crops, cfg.backend)
        loader = eval_batches(test_rows, settings, batch_size=cfg.batch_size, device=device, workers=cfg.workers)
        try:
            out = run_model(
                model, loader, len(test_rows), cfg.test_clips * CROPS_PER_CLIP[crops], test_rows.df["label"].to_numpy(),
                test_rows.df["video_id"].tolist(), device, desc=f"test {crops}",
            )
        finally:
            close = getattr(loader, "close", None)
            if close:
                close()
        acc = accuracy_report(out.features, out.clip_labels, out.video_index, out.labels, ks=(1, 5))
        metrics[f"{crops}_top1"] = acc["video_top1"]
        metrics[f"{crops}_top5"] = acc["video_top5"]
    return metrics


__all__ = ["FinetuneConfig", "FinetuneModel", "finetune", "test_model"]
