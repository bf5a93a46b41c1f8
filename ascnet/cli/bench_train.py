"""`ascnet-bench train`: training step time with real batches from the data pipeline against
synthetic batches already on the device (nanoGPT's bench.py idea), same model, same batch
size, one run. Their ratio is what the data path costs the training step.

    ascnet-bench train --manifest ucf101.parquet --device cuda --batch-size 64
    ascnet-bench train --manifest demo.parquet --device cpu --width 16 --clip-len 8 --crop-size 64 --batch-size 8
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields

import click
import torch

from ascnet.models import ARCHS


@dataclass
class BenchTrainConfig:
    manifest: str = ""  # "" measures the synthetic side only
    split: str = "train"
    arch: str = "r3d18"
    width: int = 64
    clip_len: int = 16
    crop_size: int = 112
    batch_size: int = 32
    speeds: tuple[int, ...] = (1, 2, 4, 8)
    rate: str = "fixed"
    backend: str = "auto"
    device: str = "auto"
    workers: int = 2
    steps: int = 20  # timed steps per side
    warmup: int = 3  # untimed steps per side
    compile: bool = False
    seed: int = 0
    threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step, batches, n_warmup: int, n_steps: int, device: torch.device) -> dict:
    """Run n_warmup + n_steps steps; time the last n_steps (wall clock, synchronised at both ends)."""
    for _ in range(n_warmup):
        step(next(batches))
    _sync(device)
    t0, waited = time.perf_counter(), 0.0
    for _ in range(n_steps):
        t = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - t
        step(batch)
    _sync(device)
    elapsed = time.perf_counter() - t0
    return {"step_s": elapsed / n_steps, "data_wait": waited / elapsed}


def bench_train(cfg: BenchTrainConfig) -> dict:
    """Both sides' step time, pairs/s and clips/s (2 clips per pair), and real/synthetic ratio."""
    from ascnet.train import PretrainConfig, build_loader, build_model, setup_runtime, train_step

    pcfg = PretrainConfig(manifest=cfg.manifest, data="manifest" if cfg.manifest else "synthetic", split=cfg.split,
                          arch=cfg.arch, width=cfg.width, clip_len=cfg.clip_len, crop_size=cfg.crop_size,
                          batch_size=cfg.batch_size, speeds=cfg.speeds, rate=cfg.rate, backend=cfg.backend,
                          device=cfg.device, workers=cfg.workers, seed=cfg.seed).check()
    rt = setup_runtime(pcfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, queue, optimizer = build_model(pcfg, rt)
    net = torch.compile(model) if cfg.compile else model
    step = lambda b: train_step(net, model, queue, optimizer, b, rt, lr=0.01, m=0.99, scp_weight=1.0)  # noqa: E731

    loader = build_loader(pcfg, 0, 1, rt.device)
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


def _option(f):
    name = "--" + f.name.replace("_", "-")
    if f.name == "arch":
        return click.option(name, f.name, type=click.Choice(ARCHS), default=f.default, show_default=True)
    if f.name == "device":
        return click.option(name, f.name, type=click.Choice(("auto", "cpu", "cuda")), default=f.default, show_default=True)
    if f.type == "bool":
        return click.option(f"{name}/--no-{f.name.replace('_', '-')}", f.name, default=f.default, show_default=True)
    if f.name == "speeds":
        return click.option(name, f.name, default="1,2,4,8", show_default=True)
    return click.option(name, f.name, type={"int": int, "float": float, "str": str}[f.type], default=f.default, show_default=True)


def _with_options(func):
    for f in reversed(fields(BenchTrainConfig)):
        func = _option(f)(func)
    return func


@click.command("train")
@_with_options
@click.option("--json-out", type=click.Path(dir_okay=False), default=None, help="also write the result as JSON here")
def train(json_out, **options):
    """Training step: real batches from the pipeline vs synthetic batches on the device."""
    options["speeds"] = tuple(int(s) for s in options["speeds"].split(","))
    try:
        r = bench_train(BenchTrainConfig(**options))
    except (ValueError, RuntimeError, ImportError) as e:
        raise click.ClickException(str(e))
    c = r["config"]
    click.echo(f"device {r['device']} ({r['torch_threads']} threads)  {c['arch']} width {c['width']} "
               f"({r['parameters'] / 1e6:.2f} M)  {c['clip_len']}x{c['crop_size']}x{c['crop_size']}  "
               f"batch {c['batch_size']} pairs  data backend {r['backend']}")
    click.echo(f"{'side':<10}{'step ms':>10}{'pairs/s':>10}{'clips/s':>10}{'data wait':>11}")
    for side in ("synthetic", "real"):
        s = r[side]
        if s:
            click.echo(f"{side:<10}{1000 * s['step_s']:>10.1f}{s['pairs_per_s']:>10.1f}{s['clips_per_s']:>10.1f}"
                       f"{100 * s['data_wait']:>10.1f}%")
    if r["ratio"] is not None:
        click.echo(f"real/synthetic step time: {r['ratio']:.2f}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(r, f, indent=2, default=list)
