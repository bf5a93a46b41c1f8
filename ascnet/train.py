"""ASCNet pretraining: `PretrainConfig` and `pretrain(cfg)`.

One process or many under `torchrun` (DDP: NCCL on GPU, gloo on CPU). Each rank reads its
shard of the manifest; the memory queue is filled with target features gathered from every
rank, so all ranks hold the same queue; only rank 0 writes the run directory:

    RUN_DIR/config.json          the config (also inside every checkpoint)
    RUN_DIR/metrics.jsonl        one line per log interval
    RUN_DIR/checkpoints/step-XXXXXXXX.pt   the last `keep_last`, written atomically
    RUN_DIR/curves.png           loss and lr against step, written at the end

GPU: bf16 autocast, channels_last_3d, fused SGD or AdamW, no host synchronisation inside a step
(losses are read back only at log intervals and checkpoints). CPU: the same code in float32.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist

from ascnet import __version__, atomic, checkpoint
from ascnet.checkpoint import CheckpointError
from ascnet.config import Device, check_choices
from ascnet.losses import OBJECTIVE
from ascnet.method import ASCNet, ascnet_loss, ema_update
from ascnet.models import ARCHS, Arch, build_backbone
from ascnet.pipelines.backends import Backend
from ascnet.queue import MemoryQueue
from ascnet.sampling import Rate
from ascnet.schedule import cosine_lr, ema_momentum, scaled_lr
from ascnet.skips import OnError, SkipLog, read_skipped

Data = Literal["manifest", "synthetic"]
Optimizer = Literal["sgd", "adamw"]
# fields a --resume may change: where the run writes, what it reports, how it is executed, where
# this invocation stops; every other field (and the world size) changes what the run computes
RESUMABLE = ("out", "resume", "progress", "log_every", "ckpt_every", "keep_last", "stop_at", "workers", "device",
             "backend", "compile", "on_error", "max_skip_fraction")
# the run's length may grow (its schedules stretch from the step reached)
GROWABLE = ("epochs", "max_steps")


@dataclass
class PretrainConfig:
    manifest: str = ""
    out: str = "runs/pretrain"
    data: Data = "manifest"  # "synthetic": random clips, to check the compute path without videos
    split: str = "train"
    # clips (DESIGN §1)
    arch: Arch = "r3d18"
    width: int = 64  # base channels; 64 = the published network
    clip_len: int = 16
    crop_size: int = 112
    speeds: tuple[int, ...] = (1, 2, 4, 8)
    rate: Rate = "fixed"  # "fixed": a speed is a real-time rate at base_fps; "native": a frame stride
    base_fps: float = 25.0
    augment: bool = True
    crop_scale: tuple[float, float] = (0.4, 1.0)  # random resized crop: area fraction range
    flip_p: float = 0.5  # horizontal flip probability per clip (0 where left and right are different classes)
    # method [choice]s
    proj_dim: int = 128
    hidden_dim: int = 2048
    scp_weight: float = 1.0  # lambda in L = L_acp + lambda * L_scp, both means over clips: SCP's weight per clip
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

    def check(self) -> "PretrainConfig":
        check_choices(self)
        if self.data == "manifest" and not self.manifest:
            raise ValueError("manifest is empty: pass --manifest M.parquet (or data='synthetic')")
        self.speeds = tuple(int(s) for s in self.speeds)
        if len(set(self.speeds)) < 2 or min(self.speeds) < 1:
            raise ValueError(f"speeds={self.speeds}: need at least two distinct speeds >= 1 (a pair has two)")
        for name in ("width", "clip_len", "crop_size", "batch_size", "epochs", "ckpt_every", "keep_last", "log_every", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (BatchNorm needs more than one sample)")
        if not 0 <= self.max_skip_fraction <= 1:
            raise ValueError(f"max_skip_fraction={self.max_skip_fraction} must be in [0, 1]")
        from ascnet.pipelines.augment import check_crop_scale, check_flip_p  # numpy only: no DALI import

        self.crop_scale = check_crop_scale(self.crop_scale)
        self.flip_p = check_flip_p(self.flip_p)
        return self


# ---- data -----------------------------------------------------------------------------
class SyntheticPairs:
    """Random clip pairs with the PairLoader interface, deterministic in (seed, epoch, step,
    shard): the compute path without any video, for tests and smoke runs."""

    backend = "synthetic"

    def __init__(self, *, batch_size, clip_len, crop_size, speeds, num_videos=64, steps_per_epoch=8,
                 seed=0, shard_id=0, num_shards=1):
        self.batch_size, self.clip_len, self.crop_size = batch_size, clip_len, crop_size
        self.speeds, self.num_videos, self.steps_per_epoch = tuple(speeds), num_videos, steps_per_epoch
        self.seed, self.shard_id, self.num_shards = seed, shard_id, num_shards

    def epoch(self, epoch: int, start_step: int = 0):
        b, shape = self.batch_size, (self.batch_size, 3, self.clip_len, self.crop_size, self.crop_size)
        for step in range(start_step, self.steps_per_epoch):
            g = torch.Generator().manual_seed(((self.seed * 1000 + epoch) * 100_000 + step) * 64 + self.shard_id)
            pick = torch.stack([torch.randperm(len(self.speeds), generator=g)[:2] for _ in range(b)])
            speeds = torch.tensor(self.speeds)[pick]
            yield {
                "clip_a": torch.randn(shape, generator=g),
                "clip_b": torch.randn(shape, generator=g),
                "speed_a": speeds[:, 0],
                "speed_b": speeds[:, 1],
                "video_index": torch.randint(0, self.num_videos, (b,), generator=g),
                "label": torch.full((b,), -1, dtype=torch.long),
            }

    def close(self):
        pass


def build_loader(cfg: PretrainConfig, rank: int, world: int, device: torch.device, exclude=()):
    if cfg.data == "synthetic":
        return SyntheticPairs(batch_size=cfg.batch_size, clip_len=cfg.clip_len, crop_size=cfg.crop_size,
                              speeds=cfg.speeds, seed=cfg.seed, shard_id=rank, num_shards=world)
    from ascnet.manifest import Manifest
    from ascnet.pipelines.loader import build_pair_loader

    return build_pair_loader(
        Manifest.from_parquet(cfg.manifest), split=cfg.split, batch_size=cfg.batch_size, clip_len=cfg.clip_len,
        crop_size=cfg.crop_size, speeds=cfg.speeds, rate=cfg.rate, base_fps=cfg.base_fps, augment=cfg.augment,
        crop_scale=cfg.crop_scale, flip_p=cfg.flip_p, backend=cfg.backend, device=device.type, seed=cfg.seed,
        shard_id=rank, num_shards=world, workers=cfg.workers, on_error=cfg.on_error, exclude=exclude,
    )


# ---- devices and processes ------------------------------------------------------------
@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on CUDA; float32 (no autocast) on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()


def setup_runtime(device: str) -> Runtime:
    want = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but torch sees no CUDA GPU; use --device cpu or auto")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if want == "cuda":
        torch.cuda.set_device(local)
        return Runtime(torch.device("cuda", local), rank, world)
    return Runtime(torch.device("cpu"), rank, world)


def gather(rt: Runtime, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Concatenate each tensor over ranks (rank order), so every rank pushes the same entries."""
    if rt.world == 1:
        return list(tensors)
    out = []
    for t in tensors:
        parts = [torch.empty_like(t) for _ in range(rt.world)]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.cat(parts))
    return out


# ---- one step --------------------------------------------------------------------------
def train_step(net, model: ASCNet, queue: MemoryQueue, optimizer, batch: dict, rt: Runtime, *,
               lr: float, m: float, scp_weight: float) -> dict:
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


# ---- checkpoints -----------------------------------------------------------------------
def checkpoint_paths(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    return sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"))


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


# ---- signals, logging ------------------------------------------------------------------
class StopRequest:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and returns at the next step."""

    def __init__(self):
        self.signum = 0
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self.previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


def agreed_stop(rt: Runtime, signum: int) -> int:
    """Under DDP every rank must stop at the same step: take the max over ranks."""
    if rt.world == 1:
        return signum
    t = torch.tensor([signum], device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


class TrainingDiverged(FloatingPointError):
    pass


# ---- the run -----------------------------------------------------------------------------
def pretrain(cfg: PretrainConfig, *, loader=None) -> dict:
    """Pretrain ASCNet as configured; returns a summary dict (steps, final loss, paths, speed).

    `loader` (optional) replaces the configured data source; it must offer the PairLoader
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
    skips_known = read_skipped(out) if cfg.resume else {}
    loader = loader or build_loader(cfg, rt.rank, rt.world, rt.device, exclude=skips_known)
    spe = loader.steps_per_epoch
    if spe < 1:
        raise ValueError(f"the loader yields no full batch of {cfg.batch_size} per process: lower --batch-size or add videos")
    total = cfg.max_steps or cfg.epochs * spe
    warmup = min(round(cfg.warmup_epochs * spe), total - 1)
    lr_peak = scaled_lr(cfg.base_lr, cfg.batch_size * rt.world)
    stop_at = min(cfg.stop_at or total, total)
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(out / "config.json", asdict(cfg))
    net = model
    if rt.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    skips = SkipLog(out, max_fraction=cfg.max_skip_fraction, epoch_videos=spe * cfg.batch_size * rt.world, main=rt.main,
                    world=rt.world, device=rt.device)
    take_skips = getattr(loader, "take_skips", list)
    log = RunLog(cfg, rt, total, step, 2 * cfg.batch_size * rt.world, skips, getattr(loader, "num_classes", 0))
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
                                   m=ema_momentum(step, total, cfg.ema_base, cfg.ema_final), scp_weight=cfg.scp_weight)
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
                               ema_momentum(step - 1, total, cfg.ema_base, cfg.ema_final))
                    stopped_by = agreed_stop(rt, stop.signum)
                    if (at_ckpt or stopped_by) and rt.main:
                        last_ckpt = save_checkpoint(cfg, model, queue, optimizer, step, epoch, rt.world)
                if stopped_by:
                    break
            if step == epoch_start and not stopped_by:
                raise RuntimeError(f"the loader yielded no batch for epoch {epoch} from step {first}; "
                                   f"it reports {spe} steps per epoch")
    loader.close()
    log.close()
    curves = plot_curves(out) if rt.main and log.lines else None
    return {"run_dir": str(out), "step": step, "total_steps": total, "final_loss": log.last.get("loss"),
            "checkpoint": str(last_ckpt) if last_ckpt else None, "curves": str(curves) if curves else None,
            "clips_per_s": log.last.get("clips_per_s"), "data_wait": log.last.get("data_wait"),
            "stopped_by": signal.Signals(stopped_by).name if stopped_by else None}


class RunLog:
    """Progress bar (loss, clips/s, share of time waiting for data) and metrics.jsonl, rank 0."""

    def __init__(self, cfg: PretrainConfig, rt: Runtime, total: int, step: int, clips_per_step: int, skips=None,
                 num_classes: int = 0):
        self.rt, self.clips_per_step, self.lines, self.last, self.skips = rt, clips_per_step, 0, {}, skips
        # where the manifest has labels: the share of SCP positives of the query's class, against chance
        self.chance = 1.0 / num_classes if num_classes else None
        self.path = Path(cfg.out) / "metrics.jsonl"
        self.bar = None
        if rt.main and cfg.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, desc="pretrain")
        self.t0, self.waited, self.steps, self.prev_step = time.perf_counter(), 0.0, 0, step

    def wait(self, batches):
        t = time.perf_counter()
        batch = next(batches, None)
        self.waited += time.perf_counter() - t
        return batch

    def record(self, step: int, epoch: int, stats: dict, lr: float, m: float) -> None:
        now = time.perf_counter()
        elapsed, steps = now - self.t0, step - self.prev_step
        row = {"step": step, "epoch": epoch, **{k: float(v.item()) for k, v in stats.items()},
               "lr": lr, "ema": m, "clips_per_s": steps * self.clips_per_step / max(elapsed, 1e-9),
               "data_wait": self.waited / max(elapsed, 1e-9), "time": time.time()}
        if self.chance is None:
            row.pop("scp_pos_same_class", None)
        else:
            row["scp_pos_chance"] = self.chance
        if self.skips is not None:  # videos passed over this epoch, and every video skipped so far in the run
            row.update(skipped_epoch=self.skips.in_epoch, skipped_videos=len(self.skips.known))
        self.t0, self.waited, self.prev_step, self.last = now, 0.0, step, row
        if not self.rt.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.lines += 1
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", clips_s=f"{row['clips_per_s']:.1f}",
                                 wait=f"{100 * row['data_wait']:.0f}%", scp=f"{row['scp_valid']:.2f}",
                                 spread=f"{row['app_spread']:.2f}", margin=f"{row['acp_margin']:.2f}",
                                 skipped=row.get("skipped_videos", 0),
                                 **({"same_class": f"{row['scp_pos_same_class']:.2f}/{self.chance:.2f}"} if self.chance else {}))

    def close(self):
        if self.bar is not None:
            self.bar.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl rows by step; after a resume the later row of a step wins."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics; is {run_dir} a pretraining run directory?")
    rows = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON line ({e})") from e
            rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]


def plot_curves(run_dir: str | Path) -> Path:
    """RUN_DIR/curves.png: total/ACP/SCP loss, the projections' spread (collapse monitor), the ACP
    margin (is ACP matching anything video-specific?), the share of SCP positives of the query's
    class against chance (runs with labels) and the learning rate against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    steps = [r["step"] for r in rows]
    fig, (ax_loss, ax_spread, ax_margin, ax_same, ax_lr) = plt.subplots(5, 1, figsize=(7, 12), sharex=True)
    for key in ("loss", "acp", "scp"):
        ax_loss.plot(steps, [r[key] if math.isfinite(r[key]) else float("nan") for r in rows], label=key)
    ax_loss.set_ylabel("loss (per clip)")
    ax_loss.legend()
    for key in ("app_spread", "speed_spread"):
        if all(key in r for r in rows):  # runs logged before the monitor existed have none
            ax_spread.plot(steps, [r[key] for r in rows], label=key.replace("_", " "))
    ax_spread.set_ylabel("spread (1 = healthy,\n0 = collapsed)")
    ax_spread.set_ylim(bottom=0)
    if ax_spread.lines:
        ax_spread.legend()
    if all("acp_margin" in r for r in rows):
        ax_margin.plot(steps, [r["acp_margin"] for r in rows], color="tab:green")
    ax_margin.axhline(0.0, color="tab:gray", lw=0.8)
    ax_margin.set_ylabel("ACP margin (0 = matches\nnothing video-specific)")
    if rows and all("scp_pos_same_class" in r for r in rows):
        ax_same.plot(steps, [r["scp_pos_same_class"] for r in rows], color="tab:purple", label="same class")
        ax_same.axhline(rows[-1]["scp_pos_chance"], color="tab:gray", lw=0.8, ls="--", label="chance (1/classes)")
        ax_same.set_ylim(0, 1)
        ax_same.legend()
    else:
        ax_same.text(0.5, 0.5, "no labels in the manifest", ha="center", va="center", transform=ax_same.transAxes)
    ax_same.set_ylabel("SCP positives of the\nquery's class")
    ax_lr.plot(steps, [r["lr"] for r in rows], color="tab:gray")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    fig.tight_layout()
    path = atomic.save_figure(fig, Path(run_dir) / "curves.png", dpi=100)
    plt.close(fig)
    return path


def export_backbone(run: str | Path, out: str | Path) -> Path:
    """The online encoder of a run (its newest checkpoint, or a given .pt) as a backbone file:
    kind="backbone", arch, width, input_size [T, H, W], feature_dim, state_dict."""
    run = Path(run)
    if run.is_dir():
        paths = checkpoint_paths(run)
        if not paths:
            raise CheckpointError(f"{run}: no checkpoints/step-*.pt; is it a pretraining run directory?")
        run = paths[-1]
    state = checkpoint.load_backbone_state(run)
    if state.get("arch") not in ARCHS:
        raise CheckpointError(f"{run}: unknown arch {state.get('arch')!r} in its config; allowed: {list(ARCHS)}")
    backbone = build_backbone(state["arch"], int(state["width"]))
    try:
        backbone.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{run}: encoder weights do not fit {state['arch']} width {state['width']} ({e})") from e
    return checkpoint.save_atomic({
        "kind": "backbone", "arch": state["arch"], "width": int(state["width"]), "input_size": list(state["input_size"]),
        "feature_dim": backbone.feature_dim, "state_dict": backbone.state_dict(),
    }, out)


def config_from_dict(d: dict) -> PretrainConfig:
    known = {f.name for f in fields(PretrainConfig)}
    return PretrainConfig(**{k: v for k, v in d.items() if k in known})
