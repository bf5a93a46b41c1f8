"""ASCNet pretraining: `PretrainConfig` and `pretrain(cfg)`, read top to bottom: the config,
the data, one step, the model, checkpoints, the loop.

One process or many under `torchrun` (`ascnet.runtime`). Each rank reads its shard of the
manifest; the memory queue is filled with target features gathered from every rank, so all
ranks hold the same queue; only rank 0 writes the run directory:

    RUN_DIR/config.json          the config (also inside every checkpoint)
    RUN_DIR/metrics.jsonl        one line per log interval (`ascnet.runlog`)
    RUN_DIR/checkpoints/step-XXXXXXXX.pt   the last `keep_last`, written atomically
    RUN_DIR/curves.png           loss, monitors and lr against step, written at the end
    RUN_DIR/skipped.jsonl        videos that failed to decode (`ascnet.skips`)

GPU: bf16 autocast, channels_last_3d, fused SGD or AdamW, no host synchronisation inside a step
(losses are read back only at log intervals and checkpoints). CPU: the same code in float32.
"""
from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch

from ascnet import __version__, atomic, checkpoint
from ascnet.checkpoint import CheckpointError, checkpoint_paths
from ascnet.clips import ClipSpec
from ascnet.config import Device, check_choices
from ascnet.losses import OBJECTIVE
from ascnet.manifest import Manifest
from ascnet.method import ASCNet, ascnet_loss, ema_update
from ascnet.models import Arch, build_backbone
from ascnet.pipelines.backends import Backend
from ascnet.pipelines.loader import build_pair_loader
from ascnet.pipelines.synthetic import SyntheticPairs
from ascnet.queue import MemoryQueue
from ascnet.runlog import RunLog, plot_run
from ascnet.runtime import Runtime, StopRequest, agreed_stop, gather, rng_state, set_rng_state, setup_runtime
from ascnet.schedule import cosine_lr, ema_momentum, scaled_lr, scp_weight_at
from ascnet.skips import OnError, SkipLog

Data = Literal["manifest", "synthetic"]
Optimizer = Literal["sgd", "adamw"]
# fields a --resume may change: where the run writes, what it reports, how it is executed, where
# this invocation stops; every other field (and the world size) changes what the run computes
RESUMABLE = ("out", "resume", "progress", "log_every", "ckpt_every", "keep_last", "stop_at", "workers", "device",
             "backend", "compile", "on_error", "max_skip_fraction", "tensorboard", "wandb")
# the run's length may grow (its schedules stretch from the step reached)
GROWABLE = ("epochs", "max_steps")


@dataclass
class PretrainConfig:
    manifest: str = ""
    out: str = "runs/pretrain"
    data: Data = "manifest"  # "synthetic": random clips, to check the compute path without videos
    split: str = "train"
    # the network and its clips (DESIGN §1)
    arch: Arch = "r3d18"
    width: int = 64  # base channels; 64 = the published network
    clip: ClipSpec = ClipSpec()
    # method [choice]s
    proj_dim: int = 128
    hidden_dim: int = 2048
    scp_weight: float = 1.0  # lambda in L = L_acp + lambda * L_scp, both means over clips: SCP's weight per clip
    scp_final_ratio: float = 1.0  # lambda cosine-annealed to scp_weight x this at the last step (1: constant)
    scp_start: int = 0  # SCP enters the loss from this step (-1: once the queue is full, queue_size / (2 x global batch))
    queue_size: int = 16384
    ema_base: float = 0.99  # EMA momentum, cosine-annealed to ema_final
    ema_final: float = 1.0
    # optimisation
    epochs: int = 200
    batch_size: int = 64  # pairs per process; the global batch is batch_size x world size
    optimizer: Optimizer = "sgd"  # "sgd" (DESIGN §1, with momentum) or "adamw" (learned the demo's motion where SGD did not)
    base_lr: float = 0.1  # lr = base_lr x global batch / 64
    final_lr_ratio: float = 1e-3  # cosine down to lr x this
    warmup_epochs: float = 5.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 0.0  # > 0: clip the gradients' global norm to this before each step
    # running
    device: Device = "auto"
    backend: Backend = "auto"
    workers: int = 2
    seed: int = 0
    ckpt_every: int = 1000  # steps
    keep_last: int = 3
    log_every: int = 20  # steps
    compile: bool = False
    max_steps: int = 0  # > 0: the run (and its schedules) is this many steps instead of epochs
    stop_at: int = 0  # > 0: checkpoint and stop after this step (the schedules still span the run)
    resume: bool = False
    progress: bool = True
    on_error: OnError = "skip"  # a video that fails to decode: "skip" it (a stand-in takes its place) or "raise"
    max_skip_fraction: float = 0.01  # stop when more than this share of an epoch was skipped
    tensorboard: bool = True  # RUN_DIR/events.out.tfevents.* mirror metrics.jsonl (`ascnet.events`)
    wandb: str | None = None  # a W&B project: the run is logged there too

    def check(self) -> "PretrainConfig":
        check_choices(self)
        if self.data == "manifest" and not self.manifest:
            raise ValueError("manifest is empty: pass --manifest M.parquet (or data='synthetic')")
        self.clip = self.clip.check()
        for name in ("width", "batch_size", "epochs", "ckpt_every", "keep_last", "log_every", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (BatchNorm needs more than one sample)")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip={self.grad_clip} must be >= 0 (0: no clipping)")
        if not 0 <= self.scp_final_ratio <= 1:
            raise ValueError(f"scp_final_ratio={self.scp_final_ratio} must be in [0, 1] (1: lambda constant)")
        if self.scp_start < -1:
            raise ValueError(f"scp_start={self.scp_start} must be a step >= 0, or -1 (once the queue is full)")
        if not 0 <= self.max_skip_fraction <= 1:
            raise ValueError(f"max_skip_fraction={self.max_skip_fraction} must be in [0, 1]")
        return self


def config_from_dict(d: dict) -> PretrainConfig:
    """A PretrainConfig from its asdict() form (config.json, a checkpoint's "config")."""
    known = {f.name for f in fields(PretrainConfig)}
    clip = ClipSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.get("clip", {}).items()})
    return PretrainConfig(**{k: v for k, v in d.items() if k in known and k != "clip"}, clip=clip)


# ---- the data ----------------------------------------------------------------------------
def build_loader(cfg: PretrainConfig, rt: Runtime):
    """This rank's shard of pairs: the manifest's videos, or random clips (data="synthetic")."""
    if cfg.data == "synthetic":
        return SyntheticPairs(cfg.clip, batch_size=cfg.batch_size, seed=cfg.seed, shard_id=rt.rank, num_shards=rt.world)

    return build_pair_loader(
        Manifest.from_parquet(cfg.manifest), cfg.clip, split=cfg.split, batch_size=cfg.batch_size, backend=cfg.backend,
        device=rt.device.type, seed=cfg.seed, shard_id=rt.rank, num_shards=rt.world, workers=cfg.workers,
        on_error=cfg.on_error,
    )


# ---- one step ----------------------------------------------------------------------------
def train_step(net, model: ASCNet, queue: MemoryQueue, optimizer, batch: dict, rt: Runtime, *,
               lr: float, m: float, scp_weight: float, grad_clip: float = 0.0) -> dict:
    """One SGD step on a batch of pairs; returns device tensors (no host sync).

    batch: clip_a, clip_b (B, 3, T, H, W); speed_a, speed_b, video_index (B,); label (B,), -1
    unknown, only for the `scp_pos_same_class` monitor.
    """
    dev = rt.device
    clips = torch.cat([batch["clip_a"], batch["clip_b"]]).to(dev, non_blocking=True)
    if dev.type == "cuda":
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    speed = torch.cat([batch["speed_a"], batch["speed_b"]]).to(dev, non_blocking=True)
    video = batch["video_index"].to(dev, non_blocking=True).repeat(2)
    label = batch["label"].to(dev, non_blocking=True).repeat(2) if "label" in batch else torch.full_like(video, -1)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with rt.autocast():
        outputs = net(clips)
    stats = ascnet_loss(outputs, queue, speed, video, scp_weight, label)
    optimizer.zero_grad(set_to_none=True)
    stats["loss"].backward()
    if grad_clip > 0:
        stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    ema_update(model.online_modules(), model.target_modules(), m)
    _, _, z_app, z_speed = outputs
    queue.push(*gather(rt, z_app.detach().float(), z_speed.detach().float(), speed, video, label))
    return stats


def build_model(cfg: PretrainConfig, rt: Runtime):
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = ASCNet(build_backbone(cfg.arch, cfg.width), cfg.proj_dim, cfg.hidden_dim).to(rt.device)
    queue = MemoryQueue(cfg.queue_size, cfg.proj_dim).to(rt.device)
    if rt.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    params = [p for p in model.parameters() if p.requires_grad]
    extra = {"fused": True} if rt.device.type == "cuda" else {}
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=cfg.base_lr, weight_decay=cfg.weight_decay, **extra)
    else:
        optimizer = torch.optim.SGD(params, lr=cfg.base_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **extra)
    return model, queue, optimizer


# ---- checkpoints -------------------------------------------------------------------------
def save_checkpoint(cfg: PretrainConfig, model, queue, optimizer, step: int, epoch: int, world: int = 1) -> Path:
    path = Path(cfg.out) / "checkpoints" / f"step-{step:08d}.pt"
    checkpoint.save_atomic({
        "kind": "run", "ascnet_version": __version__, "objective": OBJECTIVE, "config": asdict(cfg), "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "queue": queue.state_dict(), "step": step, "epoch": epoch,
        "rng": rng_state(), "world": world,
    }, path)
    for old in checkpoint_paths(cfg.out)[: -cfg.keep_last]:
        old.unlink(missing_ok=True)
    return path


def restore(cfg: PretrainConfig, model, queue, optimizer, world: int = 1) -> int:
    """Load the newest checkpoint of cfg.out into the objects; returns its step.

    Refuses a run that would compute something else than the checkpoint's (every field but
    `RESUMABLE`, the world size; `GROWABLE` ones may increase), naming each difference.
    """
    paths = checkpoint_paths(cfg.out)
    if not paths:
        raise CheckpointError(f"{Path(cfg.out) / 'checkpoints'}: no checkpoint to resume; drop --resume to start a new run")
    path = paths[-1]
    try:
        ckpt = checkpoint.load(path)
    except CheckpointError as e:
        hint = f"; delete it to resume from {paths[-2].name}" if len(paths) > 1 else ""
        raise CheckpointError(f"{e}{hint}") from e
    if ckpt["kind"] != "run":
        raise CheckpointError(f"{path}: a '{ckpt['kind']}' file, not a run checkpoint")
    if ckpt.get("objective") != OBJECTIVE:
        old_w = ckpt.get("config", {}).get("scp_weight", 1.0)
        raise CheckpointError(
            f"{path}: written by ascnet {ckpt.get('ascnet_version', '?')}, when ACP summed its two directions per pair "
            f"(range 0-8) instead of averaging them per clip (0-4, as SCP): the loss, and with it the optimizer's "
            f"state, is on another scale, so the run cannot go on exactly. Start a new run in another --out; "
            f"--scp-weight {old_w / 2:g} there is the checkpoint's objective (its scp_weight {old_w:g}) in today's terms")
    # a field newer than the checkpoint had its default then; WORLD_SIZE: the processes under torchrun
    saved = {**asdict(PretrainConfig()), **ckpt.get("config", {}), "WORLD_SIZE": ckpt.get("world", 1)}
    checkpoint.check_resume(path, saved, {**asdict(cfg), "WORLD_SIZE": world}, free=RESUMABLE, may_grow=GROWABLE)
    try:
        model.load_state_dict(ckpt["model"])
        queue.load_state_dict(ckpt["queue"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not fit this model ({e})") from e
    set_rng_state(ckpt["rng"])
    return int(ckpt["step"])


class TrainingDiverged(FloatingPointError):
    pass


# ---- the run -----------------------------------------------------------------------------
def pretrain(cfg: PretrainConfig, *, loader=None) -> dict:
    """Pretrain ASCNet as configured; returns a summary dict (steps, final loss, paths, speed).

    `loader` (optional) replaces the configured data source; it must offer the TrainLoader
    interface: steps_per_epoch, epoch(epoch, start_step), close().
    """
    cfg.check()
    rt = setup_runtime(cfg.device)
    out = Path(cfg.out)
    model, queue, optimizer = build_model(cfg, rt)
    step = 0
    if cfg.resume:
        step = restore(cfg, model, queue, optimizer, rt.world)
    elif checkpoint_paths(out):
        raise CheckpointError(f"{out} already holds checkpoints: pass --resume to continue it, or choose another --out")
    # a video that failed before is tried again wherever it is drawn, as in a run straight through
    loader = loader or build_loader(cfg, rt)
    spe = loader.steps_per_epoch
    if spe < 1:
        raise ValueError(f"the loader yields no full batch of {cfg.batch_size} per process: lower --batch-size or add videos")
    total = cfg.max_steps or cfg.epochs * spe
    warmup = min(round(cfg.warmup_epochs * spe), total - 1)
    lr_peak = scaled_lr(cfg.base_lr, cfg.batch_size * rt.world)
    scp_start = cfg.scp_start if cfg.scp_start >= 0 else -(-cfg.queue_size // (2 * cfg.batch_size * rt.world))
    stop_at = min(cfg.stop_at or total, total)
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(out / "config.json", asdict(cfg))
    net = rt.wrap(model)  # what a step runs; `model` is what is saved
    if cfg.compile:
        net = torch.compile(net)
    skips = SkipLog(out, max_fraction=cfg.max_skip_fraction, epoch_videos=spe * cfg.batch_size * rt.world, main=rt.main,
                    world=rt.world, device=rt.device)
    take_skips = getattr(loader, "take_skips", list)
    log = RunLog(out, main=rt.main, progress=cfg.progress, total=total, step=step, clips_per_step=2 * cfg.batch_size * rt.world,
                 skips=skips, num_classes=getattr(loader, "num_classes", 0), config=asdict(cfg))
    bad = torch.zeros((), dtype=torch.bool, device=rt.device)  # any non-finite loss since the last check
    last_ckpt, stats, stopped_by = None, None, 0
    with StopRequest() as stop:
        while step < stop_at and not stopped_by:
            epoch, first = divmod(step, spe)
            batches, epoch_start = iter(loader.epoch(epoch, first)), step
            while step < stop_at:
                batch = log.wait(batches)
                if batch is None:
                    break
                stats = train_step(net, model, queue, optimizer, batch, rt, lr=cosine_lr(step, total, lr_peak, warmup, cfg.final_lr_ratio),
                                   m=ema_momentum(step, total, cfg.ema_base, cfg.ema_final),
                                   scp_weight=scp_weight_at(step, total, cfg.scp_weight, cfg.scp_final_ratio, scp_start),
                                   grad_clip=cfg.grad_clip)
                bad |= ~torch.isfinite(stats["loss"])
                skips.add(take_skips(), epoch)
                step += 1
                if rt.world == 1:  # under DDP the ranks agree on stopping at log intervals only
                    stopped_by = stop.signum
                at_ckpt = step % cfg.ckpt_every == 0 or step == stop_at
                if step % cfg.log_every == 0 or at_ckpt or stopped_by or step % spe == 0:
                    skips.sync()  # every rank, at the same steps; raises TooManySkipped for all
                if step % cfg.log_every == 0 or at_ckpt or stopped_by:
                    if bool(bad):  # the only host syncs: here, and reading the stats below
                        raise TrainingDiverged(
                            f"step {step}: the loss is not finite (last value {stats['loss'].item()}); training stopped. "
                            f"Last good checkpoint: {last_ckpt or 'none'}. Resume from it with a lower --base-lr, or check the data."
                        )
                    log.record(step, epoch, stats, cosine_lr(step - 1, total, lr_peak, warmup, cfg.final_lr_ratio),
                               ema_momentum(step - 1, total, cfg.ema_base, cfg.ema_final),
                               scp_weight_at(step - 1, total, cfg.scp_weight, cfg.scp_final_ratio, scp_start))
                    stopped_by = agreed_stop(rt, stop.signum)
                    if (at_ckpt or stopped_by) and rt.main:
                        last_ckpt = save_checkpoint(cfg, model, queue, optimizer, step, epoch, rt.world)
                if stopped_by:
                    break
            if step == epoch_start and not stopped_by:
                raise RuntimeError(f"the loader yielded no batch for epoch {epoch} from step {first}; "
                                   f"it reports {spe} steps per epoch")
    loader.close()
    curves = plot_run(out) if rt.main and log.lines else None
    log.close(curves)
    return {"run_dir": str(out), "step": step, "total_steps": total, "final_loss": log.last.get("loss"),
            "checkpoint": str(last_ckpt) if last_ckpt else None, "curves": str(curves) if curves else None,
            "clips_per_s": log.last.get("clips_per_s"), "data_wait": log.last.get("data_wait"),
            "stopped_by": signal.Signals(stopped_by).name if stopped_by else None}
