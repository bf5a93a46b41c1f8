"""The evaluation benchmark: feature-extraction throughput (videos/s) per decoder backend.

Every loader reads the same manifest split with the same evaluation clips (N evenly spaced
speed-1 clips per video, `ascnet.sampling.eval_clips`, center crop), in one run:

- `nvdec`, `dali-cpu`, `pyav`: `ascnet.pipelines.loader.build_eval_loader(backend=...)`, the
  loader `ascnet-eval linear/retrieval` use;
- `baseline`: what the peers' evaluation scripts do (`ascnet.bench.baseline`, evaluation
  mode): a PyTorch `DataLoader` over videos whose workers open each file with decord (PyAV
  where decord cannot), fetch the N clips by `get_batch`, and resize, centre-crop and
  normalise frame by frame, torchvision-style;
- `torchcodec`: the same with torchcodec (seek mode exact, one `get_frames_at` for a video's
  N clips), where it loads (a CUDA build of torch: `make bench-peers`).

Each loader is timed twice: alone (videos/s it can deliver), and feeding the frozen encoder as
the extraction does (videos/s of features). A `model` row runs the encoder on synthetic clips
already in memory: the ceiling the data path is measured against. Ratios are to the baseline.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ascnet.bench.baseline import build_baseline_eval_loader
from ascnet.bench.common import (BackendRow, Meter, Table, bench_manifest, check_at_least, check_backends,
                                 check_quiet, environment, environment_lines, load_average, load_line, skip_reason,
                                 write_json_atomic)
from ascnet.clips import ClipSpec
from ascnet.config import check_choices
from ascnet.evaluate.features import VIDEO_BAR, resolve_device
from ascnet.manifest import Manifest
from ascnet.models import Arch, build_backbone
from ascnet.pipelines.loader import build_eval_loader

LOADERS = ("nvdec", "dali-cpu", "pyav", "baseline", "torchcodec")
PEERS = {"baseline": "decord", "torchcodec": "torchcodec"}  # backend -> the peers' decoder


@dataclass
class EvalBenchConfig:
    manifest: str
    backends: tuple[str, ...] = LOADERS
    split: str = "test"
    arch: Arch = "r3d18"
    width: int = 64
    clip: ClipSpec = ClipSpec()  # its clip_len and crop_size: clips at speed 1, centre crop
    clips_per_video: int = 10
    batch_size: int = 8  # clips per forward
    workers: int = 2
    min_videos: int = 16  # a small split is repeated up to this many videos
    rounds: int = 1  # each backend and the encoder once per round; medians reported
    allow_busy: bool = False  # run even when the machine is loaded (rows are marked busy)
    json: str | None = None

    def check(self) -> "EvalBenchConfig":
        check_backends(self.backends, LOADERS)
        check_choices(self)
        check_at_least(self, {"width": 1, "clips_per_video": 1, "batch_size": 1, "workers": 0, "min_videos": 1, "rounds": 1})
        if self.clip.crop_size < 8:
            raise ValueError(f"--crop-size {self.clip.crop_size}: must be 8 or more")
        return self


@dataclass
class Row(BackendRow):
    loader_videos_per_s: float | None = None
    features_videos_per_s: float | None = None
    ratio: float | None = None  # features videos/s over the baseline's
    videos: int = 0
    startup_s: float = 0.0
    load: list = field(default_factory=list)  # 1-min load average before and after its runs
    busy: bool = False  # other processes took more than common.FOREIGN_BUSY cores during a run
    extra: dict = field(default_factory=dict)


# ---- timing ----------------------------------------------------------------------------
def _batches(name: str, manifest: Manifest, cfg: EvalBenchConfig):
    if name in PEERS:
        return build_baseline_eval_loader(manifest, cfg.clip, split=cfg.split, batch_size=cfg.batch_size,
                                          clips_per_video=cfg.clips_per_video, workers=cfg.workers, decoder=PEERS[name])

    return build_eval_loader(
        manifest, cfg.clip, split=cfg.split, batch_size=cfg.batch_size, clips_per_video=cfg.clips_per_video, crops="center", backend=name,
        device="cuda" if name == "nvdec" else "cpu", workers=cfg.workers,
    )


def time_pass(name: str, manifest: Manifest, cfg: EvalBenchConfig, model: torch.nn.Module | None, device):
    """(videos/s after the first batch, start-up seconds, videos timed, Meter of the pass) of one full pass."""
    with Meter() as meter:
        rate, startup, videos = _pass(name, manifest, cfg, model, device)
    return rate, startup, videos, meter


def _pass(name: str, manifest: Manifest, cfg: EvalBenchConfig, model: torch.nn.Module | None, device):
    rows_per_video = cfg.clips_per_video
    t0 = time.perf_counter()
    batches = iter(_batches(name, manifest, cfg))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    rows, t1, startup = 0, None, 0.0
    desc = f"{name:>8} {'features' if model is not None else 'loader'}"
    with torch.inference_mode(), autocast, tqdm(
        total=len(manifest) * rows_per_video, desc=desc, unit="video", unit_scale=1 / rows_per_video, leave=False,
        bar_format=VIDEO_BAR,
    ) as bar:  # counts rows, shows videos
        for batch in batches:
            clips = batch["clips"]
            if model is not None:
                feats = model(clips.to(device, non_blocking=True))
                if device.type == "cuda":
                    feats.float().sum().item()  # wait for the GPU
            elif clips.is_cuda:
                torch.cuda.synchronize()
            if t1 is None:  # the first batch carries pipeline build and worker start-up
                t1 = time.perf_counter()
                startup = t1 - t0
            else:
                rows += len(clips)
            bar.update(len(clips))
    elapsed = time.perf_counter() - (t1 or t0)
    videos = rows / rows_per_video
    return videos / max(elapsed, 1e-9), startup, int(round(videos))


def time_model(model, cfg: EvalBenchConfig, device, videos: int) -> float:
    """Videos/s of the encoder alone, on synthetic clips already on the device."""
    x = torch.randn(cfg.batch_size, 3, cfg.clip.clip_len, cfg.clip.crop_size, cfg.clip.crop_size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    steps = max(2, -(-videos * cfg.clips_per_video // cfg.batch_size))
    with torch.inference_mode(), autocast:
        model(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in tqdm(range(steps), desc="   model synthetic", leave=False):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t
    return steps * cfg.batch_size / cfg.clips_per_video / elapsed


def run_eval_bench(cfg: EvalBenchConfig, echo=print) -> dict:
    """Time each asked loader alone and with the encoder; print the table; returns the JSON doc."""

    cfg.check()
    manifest, reps = bench_manifest(cfg.manifest, cfg.split, cfg.min_videos)
    env = environment(manifest.decode_table())
    device = resolve_device("auto")
    load_before = check_quiet(cfg.allow_busy, echo)
    echo(_env_lines(env, cfg, reps, len(manifest)))
    torch.manual_seed(0)
    model = build_backbone(cfg.arch, cfg.width).to(device).eval()
    # rounds: every backend and the encoder alone once per round, medians reported; on a shared
    # machine the load drifts, and interleaving spreads the drift over all of them alike
    runs: dict[str, list] = {name: [] for name in cfg.backends}
    meters: dict[str, list] = {name: [] for name in cfg.backends}
    skipped: dict[str, Row] = {}
    model_rates = []
    for _ in range(cfg.rounds):
        model_rates.append(time_model(model.to(device), cfg, device, len(manifest)))
        for name in cfg.backends:
            reason = skip_reason(name, sorted(env["codecs"]))
            if reason or name in skipped:
                skipped.setdefault(name, Row(name, "skipped", reason=reason))
                continue
            run_device = torch.device("cuda") if name == "nvdec" else (device if name in PEERS else torch.device("cpu"))
            try:
                loader_rate, startup, videos, m1 = time_pass(name, manifest, cfg, None, run_device)
                feat_rate, _, _, m2 = time_pass(name, manifest, cfg, model.to(run_device), run_device)
                runs[name].append((loader_rate, feat_rate, videos, startup))
                meters[name] += [m1, m2]
            except Exception as e:  # one broken backend must not hide the others' figures
                skipped[name] = Row(name, "failed", reason=f"{type(e).__name__}: {e}")
    rows = []
    for name in cfg.backends:
        if name in skipped:
            rows.append(skipped[name])
            continue
        loader_rate, feat_rate, videos, startup = (float(np.median([r[i] for r in runs[name]])) for i in range(4))
        foreign = [m.foreign_cores for m in meters[name] if m.foreign_cores is not None]
        rows.append(Row(name, "ok", loader_videos_per_s=loader_rate, features_videos_per_s=feat_rate, videos=int(videos),
                        startup_s=startup, load=[meters[name][0].load[0], meters[name][-1].load[1]],
                        busy=any(m.busy for m in meters[name]), extra={"rounds": runs[name], "foreign_cores": foreign}))
    model_rate = float(np.median(model_rates))
    rows.append(Row("model", "ok", features_videos_per_s=model_rate, extra={"rounds": model_rates},
                    reason=f"{cfg.arch} width {cfg.width} on synthetic clips ({device.type}); per round "
                           + ", ".join(f"{m:.2f}" for m in model_rates)))
    base = next((r.features_videos_per_s for r in rows if r.backend == "baseline" and r.status == "ok"), None)
    for r in rows:
        if base and r.features_videos_per_s is not None and r.backend != "model":
            r.ratio = r.features_videos_per_s / base
    echo(format_table(rows, model_rate))
    load = load_average()
    busy = [r.backend for r in rows if r.busy]
    echo(load_line(load_before, load, busy, where=f" on {env['cpus']} CPUs"))
    doc = {"config": asdict(cfg), "environment": env, "repeat": reps, "device": str(device),
           "load_average": [load_before, load], "busy": bool(busy), "rows": [asdict(r) for r in rows]}
    if cfg.json:
        write_json_atomic(cfg.json, doc)
    return doc


def _env_lines(env: dict, cfg: EvalBenchConfig, reps: int, videos: int) -> str:
    return environment_lines(env, cfg.manifest, cfg.split, f"rows repeated x{reps} = {videos} videos",
                             f"{cfg.arch} width {cfg.width}, {cfg.clips_per_video} clips x {cfg.clip.clip_len}x{cfg.clip.crop_size} "
                             f"center crop per video, batch {cfg.batch_size} clips, workers {cfg.workers}")


TABLE = Table((("backend", 9), ("loader videos/s", 15), ("features videos/s", 17), ("x baseline", 10),
               ("of model-only", 13)))


def format_table(rows: list[Row], model_rate: float) -> str:
    def ran(r: Row) -> str:
        loader = f"{r.loader_videos_per_s:.2f}" if r.loader_videos_per_s is not None else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        share = f"{100 * r.features_videos_per_s / model_rate:.0f}%" if r.backend != "model" else "100%"
        note = r.reason or f"{r.videos} videos timed after the first batch; start-up {r.startup_s:.1f} s; " + (
            "features videos/s per round " + ", ".join(f"{x[1]:.2f}" for x in r.extra.get("rounds", [])))
        if r.load:
            note += f"; load {r.load[0]:.1f}/{r.load[1]:.1f}" + (" BUSY" if r.busy else "")
        return TABLE.line(r.backend, loader, f"{r.features_videos_per_s:.2f}", ratio, share, note=note)

    return "\n".join(TABLE.render(rows, ran))


__all__ = ["EvalBenchConfig", "run_eval_bench"]
