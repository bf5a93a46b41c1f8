"""The decode benchmark: our loaders beside the peers' loader and the libavcodec ceiling.

Every backend loads the same manifest split with the same sampling (`ascnet.sampling`, same
seed) and the same augmentations, in one run, so the figures are comparable as ratios:

- `nvdec`, `dali-cpu`, `pyav`: `ascnet.pipelines.loader.build_pair_loader(backend=...)`;
- `baseline`: the peers' decord + DataLoader loader (`ascnet.bench.baseline`);
- `torchcodec`: the same loader with torchcodec's `get_frames_at` (the peer's decoder of today),
  where it loads: its wheel links a CUDA build of torch;
- `ceiling`: libavcodec decode-only frames/s (PyAV, one thread, no colour conversion) on the
  same files, turned into pairs/s from the frames each sampled pair costs to decode: a clip
  holding frames lo..hi costs hi - k + 1 frames, k the last keyframe at or before lo; a pair
  costs the cheaper of two such seeks and one window covering both clips. Scaled to the
  number of cores the loaders get (min(workers, CPUs)).

Each loader runs at every worker count of `workers` (default 1..4 on a 2-core machine, up to
twice the cores elsewhere) and is reported at its own best; the ratio is of bests.

Honest numbers need a quiet machine (`ascnet.bench.common`). The 1-min load average is
printed before and after every timed run, a run that starts above `MAX_LOAD` is refused unless
`allow_busy`, and each timed run measures the CPU that other processes took meanwhile
(machine-wide busy time from /proc/stat minus the loader's own process tree): a row where that
exceeds `FOREIGN_BUSY` cores is marked busy, in the table and the JSON. CPU time per pair is given both ways (the
loader's process tree, and the whole machine's busy time) so the one checks the other.

Frames decoded per pair, the decode work independent of the device: counted for pyav (its
workers report what the decoder produced), modelled from the manifest's keyframe table for
the DALI decoders (the pair's distinct indices in one pass, a jump to the keyframe before a
frame whenever that skips frames) and for the baseline (decord, a seek per clip), beside the
ideal: the frames the two clips' windows span, overlap counted once.

Correctness beside speed: for a sample of pairs, each backend runs once more without
augmentation, and every frame is compared with the frame the sampling named, taken from a
PyAV sequential decode of the file in decode order, resized and centre-cropped with DALI's
geometry, at quarter resolution (DALI's RGB differs from PyAV's by 2-3 levels).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ascnet.bench.baseline import build_baseline_loader, resize_center
from ascnet.bench.common import (BackendRow, Meter, Table, bench_manifest, check_at_least, check_backends,
                                 check_quiet, environment, environment_lines, load_average, load_line, skip_reason,
                                 write_json_atomic)
from ascnet.clips import ClipSpec, denormalize
from ascnet.manifest import Manifest
from ascnet.pipelines.decode import key_before
from ascnet.pipelines.loader import build_pair_loader
from ascnet.sampling import sample_pair

LOADERS = ("nvdec", "dali-cpu", "pyav", "baseline", "torchcodec")
# "dali-cpu-repeats": dali-cpu sent the pair's 32 indices as they are (the decoder seeks back for
# a repeated one), to show what sending each frame once saves; not a backend of the loaders
VARIANTS = ("dali-cpu-repeats",)
BACKENDS = LOADERS + VARIANTS + ("ceiling",)
DEFAULT_BACKENDS = LOADERS + ("ceiling",)  # the variant only on demand
# A returned frame counts as the named one when its mean absolute difference from it (0..255
# levels, quarter resolution) is under FRAME_TOLERANCE (DALI's CPU RGB is 2-3 levels off PyAV's;
# same-geometry resizes agree to < 1) and within MARGIN of the best-matching frame of the whole
# file: a neighbour that matches clearly better means the decoder returned a shifted frame.
FRAME_TOLERANCE = 4.0
MARGIN = 0.3


@dataclass
class DecodeBenchConfig:
    manifest: str
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    split: str = "train"
    batch_size: int = 8
    workers: tuple[int, ...] | None = None  # worker counts to sweep; None: default_workers(CPUs)
    seconds: float = 10.0
    clip: ClipSpec = ClipSpec()  # the pairs every loader makes (augmented as it says for the timing, plain for the check)
    seed: int = 0
    check_pairs: int = 16      # pairs per backend compared frame by frame (0: no check)
    min_videos: int = 256      # a small split is repeated up to this many rows so an epoch outlasts the timing
    ceiling_files: int = 16    # distinct files timed for the ceiling (a seeded sample of larger splits)
    allow_busy: bool = False   # run even when the machine is loaded (rows are marked busy)
    json: str | None = None

    def check(self) -> "DecodeBenchConfig":
        check_backends(self.backends, BACKENDS)
        check_at_least(self, {"batch_size": 1, "check_pairs": 0, "min_videos": 1, "ceiling_files": 1})
        if self.clip.crop_size < 8:
            raise ValueError(f"--crop-size {self.clip.crop_size}: must be 8 or more")
        self.clip = self.clip.check()
        if self.seconds <= 0:
            raise ValueError(f"--seconds {self.seconds:g}: must be above 0")
        if self.workers and min(self.workers) < 1:
            raise ValueError(f"--workers {','.join(map(str, self.workers))}: worker counts must be 1 or more")
        return self


@dataclass
class Row(BackendRow):
    workers: int = 0                    # the worker count of the best run
    sweep: dict = field(default_factory=dict)  # workers -> pairs/s
    pairs_per_s: float | None = None
    frames_per_s: float | None = None   # frames delivered (2*T per pair); decoded frames for the ceiling
    ratio: float | None = None          # pairs/s over the baseline's, each at its best worker count
    pairs: int = 0
    seconds: float = 0.0
    cpu_s_per_pair: float | None = None  # CPU time of this process and its workers per pair
    machine_cpu_s_per_pair: float | None = None  # the whole machine's busy CPU time per pair (/proc/stat)
    foreign_cores: float | None = None  # cores other processes took during the timed run
    load: list = field(default_factory=list)  # 1-min load average before and after the best run
    busy: bool = False                  # other work took more than FOREIGN_BUSY cores meanwhile
    decoded_per_pair: float | None = None  # frames the decoder produces per pair
    decoded_how: str = ""               # counted / model
    ideal_per_pair: float | None = None  # frames the two clips span, overlap counted once
    startup_s: float = 0.0
    frames_checked: int = 0
    frames_correct: int = 0
    wrong: list = field(default_factory=list)   # up to 8 (file, named frame, best-matching frame)
    wrong_by_file: dict = field(default_factory=dict)  # file -> [wrong, checked], files with a wrong frame


# ---- the manifest as the benchmark uses it ----------------------------------------------------
def _build(name: str, manifest: Manifest, cfg: DecodeBenchConfig, augment: bool, workers: int):
    clip = replace(cfg.clip, augment=augment and cfg.clip.augment)
    common = dict(split=cfg.split, batch_size=cfg.batch_size, seed=cfg.seed, workers=workers)
    if name in ("baseline", "torchcodec"):
        return build_baseline_loader(manifest, clip, decoder="decord" if name == "baseline" else name, **common)

    device = "cuda" if name == "nvdec" else "cpu"
    if name == "dali-cpu-repeats":
        return build_pair_loader(manifest, clip, backend="dali-cpu", device=device, distinct_frames=False, **common)
    return build_pair_loader(manifest, clip, backend=name, device=device, **common)


def _batches(loader):
    """Endless batches, epoch after epoch."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def default_workers(cpus: int) -> tuple[int, ...]:
    """Worker counts to sweep: 1..4 on a small machine, up to twice the cores on a larger one."""
    if cpus <= 2:
        return (1, 2, 3, 4)
    return tuple(sorted({1, 2, 4, cpus, 2 * cpus} | {w for w in (8, 16, 32) if w < 2 * cpus}))


def time_loader(name: str, manifest: Manifest, cfg: DecodeBenchConfig, workers: int) -> Row:
    """Pairs/s after the first batch (start-up and worker spawn are timed apart), with its CPU accounting."""
    t0 = time.perf_counter()
    loader = _build(name, manifest, cfg, augment=True, workers=workers)
    it = _batches(loader)
    try:
        next(it)
        startup = time.perf_counter() - t0
        decoded0 = getattr(loader, "frames_decoded", None)
        pairs = 0
        with Meter() as meter, tqdm(desc=f"{name:>8} x{workers}", unit="pair", leave=False) as bar:
            while time.perf_counter() - meter._t < cfg.seconds:
                batch = next(it)
                if batch["clip_a"].is_cuda:
                    torch.cuda.synchronize()
                n = int(batch["clip_a"].shape[0])
                pairs += n
                bar.update(n)
        decoded = getattr(loader, "frames_decoded", None)
    finally:
        it.close()
        loader.close()
    rate = pairs / meter.wall
    per_pair = lambda x: x / pairs if x is not None else None  # noqa: E731
    row = Row(name, "ok", workers=workers, pairs_per_s=rate, frames_per_s=rate * 2 * cfg.clip.clip_len, pairs=pairs,
              seconds=meter.wall, startup_s=startup, cpu_s_per_pair=per_pair(meter.tree_cpu),
              machine_cpu_s_per_pair=per_pair(meter.machine_cpu), foreign_cores=meter.foreign_cores, load=meter.load,
              busy=meter.busy)
    if decoded is not None and decoded0 is not None:
        # counted over the timed batches, which the decoder's workers produced ahead of time: the
        # mean per pair is what matters
        row.decoded_per_pair, row.decoded_how = (decoded - decoded0) / pairs, "counted"
    return row


def sweep_loader(name: str, manifest: Manifest, cfg: DecodeBenchConfig, counts: tuple[int, ...]) -> Row:
    """The loader at every worker count; the best run's row, with the whole sweep in `sweep`."""
    runs = [time_loader(name, manifest, cfg, w) for w in counts]
    best = max(runs, key=lambda r: r.pairs_per_s)
    best.sweep = {r.workers: r.pairs_per_s for r in runs}
    best.busy = any(r.busy for r in runs)
    return best


# ---- frames decoded per pair, from the keyframe table ------------------------------------------
def decode_cost(frames, keyframes) -> int:
    """Frames a decoder produces for these indices in this order, reading forward and jumping to the
    keyframe before a frame whenever that skips frames (or when the frame lies behind it)."""

    keys = np.asarray(keyframes, dtype=np.int64)
    cost, pos = 0, None  # pos: the frame the decoder returns next
    for t in (int(f) for f in frames):
        k = key_before(t, keys)
        if pos is None or t < pos or k > pos:
            cost, pos = cost + t - k + 1, t + 1
        else:
            cost, pos = cost + t - pos + 1, t + 1
    return cost


def modelled_costs(pair, keyframes) -> dict:
    """Frames decoded for one pair by each kind of loader, and the ideal (the windows' span)."""
    a, b = pair.frames_a, pair.frames_b
    spans = set(range(int(a.min()), int(a.max()) + 1)) | set(range(int(b.min()), int(b.max()) + 1))
    return {"ideal": len(spans),
            "dali": decode_cost(np.unique(pair.frames), keyframes),          # distinct indices, one pass
            "dali-repeats": decode_cost(np.sort(pair.frames), keyframes),    # as sorted, repeats seek back
            "decord": decode_cost(a, keyframes) + decode_cost(b, keyframes)}  # a reader seek per clip


def model_frames(manifest: Manifest, cfg: DecodeBenchConfig, epochs: int = 4) -> dict:
    """Mean modelled frames per pair over the pairs the loaders visit in their first `epochs` epochs."""
    table = manifest.select(cfg.split).decode_table()
    total, n = Counter(), 0
    for epoch in range(epochs):
        for vi, row in table.iterrows():
            p = sample_pair(int(vi), int(row.num_frames), float(row.fps), seed=cfg.seed, epoch=epoch,
                            clip_len=cfg.clip.clip_len, speeds=cfg.clip.speeds)
            total.update(modelled_costs(p, row.keyframes))
            n += 1
    return {k: v / n for k, v in total.items()}


# ---- correctness -----------------------------------------------------------------------------
class Reference:
    """Each file decoded once with PyAV, sequentially, frames by decode order, as the truth.

    `scaler` follows the backend's own geometry: "dali" resizes the short side without
    antialiasing and cuts the centre (DALI's resize + crop), "swscale" scales the centred
    square of the short side with antialiasing (what the pyav workers' swscale pass does).
    """

    def __init__(self, crop_size: int):
        self.crop_size = crop_size
        self.cache: dict[tuple[str, str], torch.Tensor] = {}

    def frames(self, file: str, scaler: str = "dali") -> torch.Tensor:
        """(N, 3, S/4, S/4) float 0..255: every frame, resized and centre-cropped like the loaders."""
        if (file, scaler) not in self.cache:
            import av


            def reduce(frames: list) -> torch.Tensor:
                x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
                if scaler == "dali":
                    return _quarter(resize_center(x, self.crop_size, antialias=False))
                h, w = x.shape[-2:]
                side = min(h, w)
                x = x[..., (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
                return _quarter(F.interpolate(x, size=(self.crop_size,) * 2, mode="bilinear", antialias=True))

            parts, chunk = [], []
            with av.open(file, metadata_errors="ignore") as c:
                for f in c.decode(c.streams.video[0]):
                    chunk.append(f.to_ndarray(format="rgb24"))
                    if len(chunk) == 64:  # never the whole file at full size in memory
                        parts.append(reduce(chunk))
                        chunk = []
            if chunk:
                parts.append(reduce(chunk))
            if len(self.cache) >= 64:  # small per file (quarter resolution), but bounded
                self.cache.clear()
            self.cache[file, scaler] = torch.cat(parts)
        return self.cache[file, scaler]


def _quarter(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 4)


def match_frames(got: torch.Tensor, named, truth: torch.Tensor) -> list[int]:
    """For each returned frame: the named index if it is that frame, else the file's best match (-1: none).

    got: (T, 3, h, w) returned frames, truth: (N, 3, h, w) every frame of the file, both 0..255.
    A frame is the named one when it is within FRAME_TOLERANCE of it and no other frame of the
    file matches more than MARGIN better (a clearly closer neighbour means a shifted frame).
    """
    out = []
    for t, k in enumerate(int(k) for k in named):
        diff = (truth - got[t]).abs().mean(dim=(1, 2, 3))
        ok = k < len(truth) and float(diff[k]) <= min(FRAME_TOLERANCE, float(diff.min()) + MARGIN)
        best = int(diff.argmin())
        out.append(k if ok else (best if best != k else -1))  # -1: like no frame of the file
    return out


def check_frames(name: str, manifest: Manifest, cfg: DecodeBenchConfig, ref: Reference,
                 workers: int = 2) -> tuple[int, int, list, dict]:
    """(frames checked, frames correct, wrong examples, {file: [wrong, checked]}) on `check_pairs` pairs, un-augmented."""

    table = manifest.select(cfg.split).decode_table()
    loader = _build(name, manifest, cfg, augment=False, workers=workers)
    checked = correct = 0
    wrong, per_file = [], {}
    it = loader.epoch(0)
    try:
        for batch in it:
            for r in range(int(batch["clip_a"].shape[0])):
                vi = int(batch["video_index"][r])
                row = table.iloc[vi]
                pair = sample_pair(vi, int(row.num_frames), float(row.fps), seed=cfg.seed, epoch=0,
                                   clip_len=cfg.clip.clip_len, speeds=cfg.clip.speeds)
                truth = ref.frames(row.file, "swscale" if name == "pyav" else "dali")
                for clip, named in ((batch["clip_a"][r], pair.frames_a), (batch["clip_b"][r], pair.frames_b)):
                    got = _quarter(denormalize(clip.float().cpu()).permute(1, 0, 2, 3))  # (T, 3, h, w)
                    counts = per_file.setdefault(Path(row.file).name, [0, 0])
                    for k, best in zip(named.tolist(), match_frames(got, named, truth)):
                        checked += 1
                        counts[1] += 1
                        if best == k:
                            correct += 1
                            continue
                        counts[0] += 1
                        if len(wrong) < 8:
                            wrong.append((Path(row.file).name, k, best))
                if checked >= cfg.check_pairs * 2 * cfg.clip.clip_len:
                    break
            else:
                continue
            break
    finally:
        it.close()
        loader.close()
    return checked, correct, wrong, {f: c for f, c in per_file.items() if c[0]}


# ---- the ceiling -----------------------------------------------------------------------------
def decode_only(file: str, min_seconds: float = 0.25) -> tuple[float, float, list[int]]:
    """(decode-only frames/s on one thread, the same per CPU second, keyframe indices) for one file.

    The file is decoded whole, again until `min_seconds` of decoding are timed; opening it
    is not timed, nor any colour conversion (the frames stay in libavcodec's YUV). Wall time
    and this process's CPU time differ only when other work shares the CPU.
    """
    import av

    frames, seconds, cpu, keys = 0, 0.0, 0.0, []
    while seconds < min_seconds:
        with av.open(file, metadata_errors="ignore") as c:
            s = c.streams.video[0]
            s.codec_context.thread_count = 1
            n, keys = 0, []
            t, p = time.perf_counter(), time.process_time()
            for frame in c.decode(s):
                if frame.key_frame:
                    keys.append(n)
                n += 1
            seconds += time.perf_counter() - t
            cpu += time.process_time() - p
        if n == 0:
            raise RuntimeError(f"{file}: PyAV decoded no frames; re-index it (ascnet-index build)")
        frames += n
    return frames / seconds, frames / max(cpu, 1e-9), keys


def clip_cost(lo: int, hi: int, keys: np.ndarray) -> int:
    """Frames libavcodec decodes to reach frames lo..hi after a seek to the keyframe before lo."""
    k = int(keys[np.searchsorted(keys, lo, side="right") - 1]) if len(keys) else 0
    return hi - k + 1


def pair_cost(a: np.ndarray, b: np.ndarray, keys: np.ndarray) -> int:
    """The cheaper of two seeks and one window covering both clips."""
    two = clip_cost(int(a.min()), int(a.max()), keys) + clip_cost(int(b.min()), int(b.max()), keys)
    one = clip_cost(int(min(a.min(), b.min())), int(max(a.max(), b.max())), keys)
    return min(two, one)


def ceiling(manifest: Manifest, cfg: DecodeBenchConfig, cores: int) -> tuple[Row, dict]:
    """The libavcodec decode-only bound, in pairs/s on `cores` cores, and per-file figures."""
    table = manifest.select(cfg.split).decode_table()
    files = table["file"].drop_duplicates()
    if len(files) > cfg.ceiling_files:
        files = files.sample(cfg.ceiling_files, random_state=cfg.seed)
    per_file = {}
    for f in tqdm(files.tolist(), desc=" ceiling", unit="file", leave=False):
        rate, cpu_rate, keys = decode_only(f)
        per_file[f] = (rate, cpu_rate, np.asarray(keys, dtype=np.int64))
    rows = table[table["file"].isin(per_file)]
    seconds = cpu_seconds = frames = pairs = 0
    for epoch in range(4):
        for vi, row in rows.iterrows():
            p = sample_pair(int(vi), int(row.num_frames), float(row.fps), seed=cfg.seed, epoch=epoch,
                            clip_len=cfg.clip.clip_len, speeds=cfg.clip.speeds)
            rate, cpu_rate, keys = per_file[row.file]
            cost = pair_cost(p.frames_a, p.frames_b, keys)
            frames += cost
            seconds += cost / rate
            cpu_seconds += cost / cpu_rate
            pairs += 1
    one_core = pairs / seconds
    decode_fps = frames / seconds
    detail = {
        "cores": cores,
        "decoded_frames_per_pair": frames / pairs,
        "decode_frames_per_s_one_core": decode_fps,
        "decode_frames_per_cpu_s": frames / cpu_seconds,
        "files": {Path(f).name: {"frames_per_s": r, "frames_per_cpu_s": c, "keyframes": len(k)}
                  for f, (r, c, k) in per_file.items()},
    }
    row = Row("ceiling", "ok", reason=f"libavcodec decode-only x {cores} core(s), {frames / pairs:.0f} frames/pair",
              pairs_per_s=one_core * cores, frames_per_s=decode_fps * cores, pairs=pairs, cpu_s_per_pair=cpu_seconds / pairs,
              decoded_per_pair=frames / pairs, decoded_how="model")
    return row, detail


# ---- the run ---------------------------------------------------------------------------------
def run_decode_bench(cfg: DecodeBenchConfig, echo=print) -> dict:
    """Time every asked backend at each worker count, check its frames, print the table; returns the JSON document."""
    cfg.check()
    manifest, reps = bench_manifest(cfg.manifest, cfg.split, cfg.min_videos)
    table = manifest.decode_table()
    env = environment(table)
    counts = tuple(cfg.workers) if cfg.workers else default_workers(env["cpus"])
    load_start = check_quiet(cfg.allow_busy, echo)
    codecs = sorted(env["codecs"])
    echo(_env_lines(env, cfg, reps, counts))
    model = model_frames(manifest, cfg)
    rows, ceiling_detail = [], None
    ref = Reference(cfg.clip.crop_size)
    for name in cfg.backends:
        if name == "ceiling":
            row, ceiling_detail = ceiling(manifest, cfg, cores=env["cpus"])
            row.ideal_per_pair = model["ideal"]
            rows.append(row)
            continue
        reason = skip_reason(name, codecs)
        if reason:
            rows.append(Row(name, "skipped", reason=reason))
            continue
        try:
            row = sweep_loader(name, manifest, cfg, counts)
            if cfg.check_pairs > 0:
                row.frames_checked, row.frames_correct, row.wrong, row.wrong_by_file = check_frames(
                    name, manifest, cfg, ref, workers=row.workers)
        except Exception as e:  # one broken backend must not hide the others' figures
            row = Row(name, "failed", reason=f"{type(e).__name__}: {e}")
        if row.status == "ok" and row.decoded_per_pair is None:
            kind = {"baseline": "decord", "torchcodec": "decord", "dali-cpu-repeats": "dali-repeats"}.get(name, "dali")
            row.decoded_per_pair, row.decoded_how = model[kind], "model"
        row.ideal_per_pair = model["ideal"]
        rows.append(row)
    base = next((r.pairs_per_s for r in rows if r.backend == "baseline" and r.status == "ok"), None)
    for r in rows:
        if base and r.pairs_per_s is not None:
            r.ratio = r.pairs_per_s / base
    load_end = load_average()
    echo(format_table(rows, cfg))
    busy = [r.backend for r in rows if r.busy]
    echo(load_line(load_start, load_end, busy))
    doc = {"config": asdict(cfg), "environment": env, "repeat": reps, "worker_counts": list(counts),
           "load_average": [load_start, load_end], "busy": bool(busy), "frames_model": model,
           "rows": [asdict(r) for r in rows], "ceiling": ceiling_detail}
    if cfg.json:
        write_json_atomic(cfg.json, doc)
    return doc


def _env_lines(env: dict, cfg: DecodeBenchConfig, reps: int, counts) -> str:
    return environment_lines(env, cfg.manifest, cfg.split, f"rows repeated x{reps}",
                             f"batch {cfg.batch_size}, workers {', '.join(map(str, counts))} (each loader at its best), "
                             f"{cfg.clip.clip_len}x{cfg.clip.crop_size}, speeds {list(cfg.clip.speeds)}, {cfg.seconds:g} s per run")


TABLE = Table((("backend", 16), ("workers", 7), ("pairs/s", 8), ("x baseline", 10), ("CPU ms/pair", 11),
               ("machine", 8), ("frames/pair", 13), ("ideal", 6), ("correct", 9), ("load", 9)))


def format_table(rows: list[Row], cfg: DecodeBenchConfig) -> str:
    num = lambda x, f: format(x, f) if x is not None else "-"  # noqa: E731
    ms = lambda x: format(1000 * x, ".0f") if x is not None else "-"  # noqa: E731

    def ran(r: Row) -> str:
        decoded = f"{num(r.decoded_per_pair, '.0f')} {r.decoded_how[:5]}" if r.decoded_per_pair is not None else "-"
        check = f"{r.frames_correct}/{r.frames_checked}" if r.frames_checked else "-"
        load = f"{r.load[0]:.1f}/{r.load[1]:.1f}" if r.load else "-"
        if r.backend == "ceiling":
            note = r.reason
        else:
            note = "sweep " + ", ".join(f"{w}:{v:.1f}" for w, v in r.sweep.items())
            note += f"; start-up {r.startup_s:.1f} s"
            if r.busy:
                note += f"; BUSY ({r.foreign_cores:.2f} cores of other work)"
        if r.wrong_by_file:
            note += "; wrong frames in " + ", ".join(f"{f} ({w}/{n})" for f, (w, n) in r.wrong_by_file.items())
        workers = str(r.workers) if r.workers else "-"
        return TABLE.line(r.backend, workers, f"{r.pairs_per_s:.1f}", num(r.ratio, ".2f"), ms(r.cpu_s_per_pair),
                          ms(r.machine_cpu_s_per_pair), decoded, num(r.ideal_per_pair, ".0f"), check, load, note=note)

    lines = TABLE.render(rows, ran)
    lines.append("pairs/s at each loader's best worker count (sweep: workers:pairs/s); x baseline: ratio of bests. "
                 "CPU ms/pair: the loader's process tree; machine: all CPUs' busy time (/proc/stat) per pair. "
                 "frames/pair: frames decoded per pair (counted, or modelled from the keyframe table); ideal: the "
                 "frames the two clips span. load: 1-min load average before/after the best run.")
    return "\n".join(lines)
