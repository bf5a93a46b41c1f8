"""Training step time with real batches from the data pipeline against synthetic batches
already on the device (nanoGPT's bench.py idea), same model, same batch size, one run. Their
ratio is what the data path costs the training step (`ascnet-bench train`):

    ascnet-bench train --manifest ucf101.parquet --device cuda --batch-size 64
    ascnet-bench train --manifest demo.parquet --device cpu --width 16 --clip-len 8 --crop-size 64 --batch-size 8

The quiet-machine rule of every benchmark applies (`ascnet.bench.common`): `run_train_bench`
refuses a loaded machine unless `allow_busy`, and a side whose timed steps other work
disturbed is marked busy.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from ascnet.bench.common import Meter, check_at_least, check_quiet, load_average, load_line, write_json_atomic
from ascnet.clips import ClipSpec
from ascnet.config import Device
from ascnet.models import Arch
from ascnet.pipelines.backends import Backend
from ascnet.runtime import setup_runtime
from ascnet.train import PretrainConfig, build_loader, build_model, train_step


@dataclass
class BenchTrainConfig:
    manifest: str = ""  # "" measures the synthetic side only
    split: str = "train"
    arch: Arch = "r3d18"
    width: int = 64
    clip: ClipSpec = ClipSpec()
    batch_size: int = 32
    backend: Backend = "auto"
    device: Device = "auto"
    workers: int = 2
    steps: int = 20  # timed steps per side
    warmup: int = 3  # untimed steps per side
    compile: bool = False
    seed: int = 0
    threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default
    allow_busy: bool = False  # run even when the machine is loaded (sides are marked busy)

    def check(self) -> "BenchTrainConfig":
        check_at_least(self, {"steps": 1, "warmup": 0, "threads": 0})
        return self


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step, batches, n_warmup: int, n_steps: int, device: torch.device) -> dict:
    """Run n_warmup + n_steps steps; time the last n_steps (wall clock, synchronised at both ends)."""
    for _ in range(n_warmup):
        step(next(batches))
    _sync(device)
    waited = 0.0
    with Meter() as meter:
        for _ in range(n_steps):
            t = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - t
            step(batch)
        _sync(device)
    return {"step_s": meter.wall / n_steps, "data_wait": waited / meter.wall, "load": meter.load,
            "foreign_cores": meter.foreign_cores, "busy": meter.busy}


def bench_train(cfg: BenchTrainConfig) -> dict:
    """Both sides' step time, pairs/s and clips/s (2 clips per pair), and real/synthetic ratio."""
    cfg.check()

    pcfg = PretrainConfig(manifest=cfg.manifest, data="manifest" if cfg.manifest else "synthetic", split=cfg.split,
                          arch=cfg.arch, width=cfg.width, clip=cfg.clip, batch_size=cfg.batch_size, backend=cfg.backend,
                          device=cfg.device, workers=cfg.workers, seed=cfg.seed).check()
    rt = setup_runtime(pcfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, queue, optimizer = build_model(pcfg, rt)
    net = torch.compile(model) if cfg.compile else model
    step = lambda b: train_step(net, model, queue, optimizer, b, rt, lr=0.01, m=0.99, scp_weight=1.0)  # noqa: E731

    loader = build_loader(pcfg, rt)
    n = cfg.warmup + cfg.steps

    def real_batches():
        epoch = 0
        while True:
            yield from loader.epoch(epoch)
            epoch += 1

    real_iter = real_batches()
    first = next(real_iter)
    fixed = {k: v.to(rt.device).clone() for k, v in first.items()}  # one batch, resident on the device
    synthetic = _time_steps(step, iter([fixed] * n), cfg.warmup, cfg.steps, rt.device)
    result = {"device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
              "torch_threads": torch.get_num_threads(), "config": asdict(cfg),
              "parameters": sum(p.numel() for p in model.online_encoder.parameters()),
              "backend": getattr(loader, "backend", "?"), "synthetic": synthetic, "real": None, "ratio": None}
    if cfg.manifest:
        result["real"] = _time_steps(step, real_iter, cfg.warmup, cfg.steps, rt.device)
        result["ratio"] = result["real"]["step_s"] / synthetic["step_s"]
    loader.close()
    for side in ("synthetic", "real"):
        if result[side]:
            result[side]["pairs_per_s"] = cfg.batch_size / result[side]["step_s"]
            result[side]["clips_per_s"] = 2 * cfg.batch_size / result[side]["step_s"]
    return result


def format_result(r: dict) -> str:
    """The lines `ascnet-bench train` prints: the setting, one row per side, the ratio."""
    c, clip = r["config"], r["config"]["clip"]
    lines = [f"device {r['device']} ({r['torch_threads']} threads)  {c['arch']} width {c['width']} "
             f"({r['parameters'] / 1e6:.2f} M)  {clip['clip_len']}x{clip['crop_size']}x{clip['crop_size']}  "
             f"batch {c['batch_size']} pairs  data backend {r['backend']}",
             f"{'side':<10}{'step ms':>10}{'pairs/s':>10}{'clips/s':>10}{'data wait':>11}"]
    for side in ("synthetic", "real"):
        s = r[side]
        if s:
            lines.append(f"{side:<10}{1000 * s['step_s']:>10.1f}{s['pairs_per_s']:>10.1f}{s['clips_per_s']:>10.1f}"
                         f"{100 * s['data_wait']:>10.1f}%" + (f"  BUSY ({s['foreign_cores']:.2f} cores of other work)"
                                                               if s["busy"] else ""))
    if r["ratio"] is not None:
        lines.append(f"real/synthetic step time: {r['ratio']:.2f}")
    return "\n".join(lines)


def run_train_bench(cfg: BenchTrainConfig, echo=print, json_out: str | None = None) -> dict:
    """Refuse a loaded machine (unless `allow_busy`), time both sides, print them; returns the result."""
    load_start = check_quiet(cfg.check().allow_busy, echo)
    r = bench_train(cfg)
    r["load_average"] = [load_start, load_average()]
    echo(format_result(r))
    echo(load_line(*r["load_average"], [side for side in ("synthetic", "real") if r[side] and r[side]["busy"]]))
    if json_out:
        write_json_atomic(json_out, r)
    return r
