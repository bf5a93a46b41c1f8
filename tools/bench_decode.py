"""The decode benchmark: our loaders beside the peers' loader and the libavcodec ceiling.

Every backend loads the same manifest split with the same sampling (`ascnet.sampling`, same
seed) and the same augmentations, in one run, so the figures are comparable as ratios:

- `nvdec`, `dali-cpu`, `pyav`: `ascnet.pipelines.loader.build_pair_loader(backend=...)`;
- `baseline`: the peers' decord + DataLoader loader (`ascnet.tools.baseline_loader`);
- `ceiling`: libavcodec decode-only frames/s (PyAV, one thread, no colour conversion) on the
  same files, turned into pairs/s from the frames each sampled pair costs to decode: a clip
  holding frames lo..hi costs hi - k + 1 frames, k the last keyframe at or before lo; a pair
  costs the cheaper of two such seeks and one window covering both clips. Scaled to the
  number of cores the loaders get (min(workers, CPUs)).

Besides pairs/s (wall clock), each loader's CPU time per pair is read from /proc for its
whole process tree: on a CPU shared with other work the wall-clock ratios favour whichever
loader runs more threads, while CPU time per pair does not depend on the load.

Correctness beside speed: for a sample of pairs, each backend runs once more without
augmentation, and every frame is compared with the frame the sampling named, taken from a
PyAV sequential decode of the file in decode order, resized and centre-cropped with DALI's
geometry, at quarter resolution (DALI's RGB differs from PyAV's by 2-3 levels).
"""
from __future__ import annotations

import os
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ascnet import atomic
from ascnet.manifest import Manifest, ManifestError
from ascnet.sampling import sample_pair

LOADERS = ("nvdec", "dali-cpu", "pyav", "baseline")
BACKENDS = LOADERS + ("ceiling",)
SPEEDS = (1, 2, 4, 8)
# A returned frame counts as the named one when its mean absolute difference from it (0..255
# levels, quarter resolution) is under FRAME_TOLERANCE (DALI's CPU RGB is 2-3 levels off PyAV's;
# same-geometry resizes agree to < 1) and within MARGIN of the best-matching frame of the whole
# file: a neighbour that matches clearly better means the decoder returned a shifted frame.
FRAME_TOLERANCE = 4.0
MARGIN = 0.3


@dataclass
class DecodeBenchConfig:
    manifest: str
    backends: tuple[str, ...] = BACKENDS
    split: str = "train"
    batch_size: int = 8
    workers: int = 2
    seconds: float = 10.0
    clip_len: int = 16
    crop_size: int = 112
    seed: int = 0
    check_pairs: int = 16      # pairs per backend compared frame by frame (0: no check)
    min_videos: int = 256      # a small split is repeated up to this many rows so an epoch outlasts the timing
    ceiling_files: int = 16    # distinct files timed for the ceiling (a seeded sample of larger splits)
    json: str | None = None


@dataclass
class Row:
    backend: str
    status: str                 # ok / skipped / failed
    reason: str = ""
    pairs_per_s: float | None = None
    frames_per_s: float | None = None   # frames delivered (2*T per pair); decoded frames for the ceiling
    ratio: float | None = None          # pairs/s over the baseline's
    pairs: int = 0
    seconds: float = 0.0
    cpu_s_per_pair: float | None = None  # CPU time of this process and its workers per pair (robust to a shared CPU)
    startup_s: float = 0.0
    frames_checked: int = 0
    frames_correct: int = 0
    wrong: list = field(default_factory=list)   # up to 8 (file, named frame, best-matching frame)
    wrong_by_file: dict = field(default_factory=dict)  # file -> [wrong, checked], files with a wrong frame


# ---- the manifest as the benchmark uses it ----------------------------------------------------
def bench_manifest(path: str, split: str, min_videos: int) -> tuple[Manifest, int]:
    """(manifest of the split's usable rows, repeated to >= min_videos rows, repeat factor)."""
    m = Manifest.from_parquet(path).select(split)
    if len(m) == 0:
        raise ManifestError(f"{path}: no rows with split '{split}' and status 'ok'; pick another --split")
    reps = max(1, -(-min_videos // len(m)))
    if reps == 1:
        return m, 1
    df = pd.concat([m.df] * reps, ignore_index=True)
    df["video_id"] = [f"{v}#{i // len(m)}" for i, v in enumerate(df["video_id"])]
    return Manifest(df=df, root=m.root, meta=m.meta), reps


def environment(table: pd.DataFrame) -> dict:
    """Device, CPUs, codec mix and library versions, as printed above the table."""
    import av

    from ascnet import __version__
    from ascnet.optional import cuda_available, dali_available

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"ascnet": __version__, "torch": torch.__version__, "numpy": np.__version__, "av": av.__version__,
                "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ())))}
    if dali_available():
        import nvidia.dali

        versions["nvidia-dali"] = nvidia.dali.__version__
    try:
        import decord

        versions["decord"] = decord.__version__
    except ImportError:
        versions["decord"] = "not installed"
    files = table.drop_duplicates("file")
    return {
        "device": torch.cuda.get_device_name(0) if cuda_available() else "cpu only",
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "codecs": dict(Counter(files["codec"])),
        "files": len(files),
        "versions": versions,
    }


# ---- building and timing one loader ----------------------------------------------------------
def _build(name: str, manifest: Manifest, cfg: DecodeBenchConfig, augment: bool):
    common = dict(split=cfg.split, batch_size=cfg.batch_size, clip_len=cfg.clip_len, crop_size=cfg.crop_size,
                  speeds=SPEEDS, augment=augment, seed=cfg.seed, workers=cfg.workers)
    if name == "baseline":
        from ascnet.tools.baseline_loader import build_baseline_loader

        return build_baseline_loader(manifest, **common)
    from ascnet.pipelines.loader import build_pair_loader

    device = "cuda" if name == "nvdec" else "cpu"
    return build_pair_loader(manifest, backend=name, device=device, **common)


def skip_reason(name: str, codecs: list[str]) -> str | None:
    """Why a loader backend cannot run here, or None."""
    from ascnet.optional import cuda_available, dali_available

    if name == "baseline":
        return None
    if name == "nvdec" and not cuda_available():
        return "no CUDA GPU on this machine (NVDEC decodes on the GPU)"

    if not dali_available():
        return "NVIDIA DALI is not installed (pip install 'ascnet[dali]')"
    from ascnet.pipelines.backends import BackendError, choose_backend

    try:
        choose_backend(name, "cuda" if name == "nvdec" else "cpu", codecs)
    except BackendError as e:
        return str(e)
    return None


def _batches(loader):
    """Endless batches, epoch after epoch."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def tree_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and all its descendants (Linux /proc), or None.

    Worker processes (DataLoader's, DALI's) are alive while a loader runs, so the difference
    between two readings is the CPU the loader spent in between, however busy the machine is.
    """
    try:
        stats = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(d.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
    except OSError:
        return None
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [c for c, (ppid, _) in stats.items() if ppid == pid and c not in tree]
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def time_loader(name: str, manifest: Manifest, cfg: DecodeBenchConfig) -> Row:
    """Pairs/s after the first batch (start-up and worker spawn are timed apart)."""
    t0 = time.perf_counter()
    loader = _build(name, manifest, cfg, augment=True)
    it = _batches(loader)
    try:
        next(it)
        startup = time.perf_counter() - t0
        pairs, t1, cpu1 = 0, time.perf_counter(), tree_cpu_seconds()
        with tqdm(desc=f"{name:>8}", unit="pair", leave=False) as bar:
            while time.perf_counter() - t1 < cfg.seconds:
                batch = next(it)
                if batch["clip_a"].is_cuda:
                    torch.cuda.synchronize()
                n = int(batch["clip_a"].shape[0])
                pairs += n
                bar.update(n)
        elapsed = time.perf_counter() - t1
        cpu2 = tree_cpu_seconds()
    finally:
        it.close()
        loader.close()
    rate = pairs / elapsed
    cpu = (cpu2 - cpu1) / pairs if cpu1 is not None and cpu2 is not None else None
    return Row(name, "ok", pairs_per_s=rate, frames_per_s=rate * 2 * cfg.clip_len, pairs=pairs, seconds=elapsed,
               startup_s=startup, cpu_s_per_pair=cpu)


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

            from ascnet.tools.baseline_loader import resize_center

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


def check_frames(name: str, manifest: Manifest, cfg: DecodeBenchConfig, ref: Reference) -> tuple[int, int, list, dict]:
    """(frames checked, frames correct, wrong examples, {file: [wrong, checked]}) on `check_pairs` pairs, un-augmented."""
    from ascnet.pipelines.augment import denormalize

    table = manifest.select(cfg.split).decode_table()
    loader = _build(name, manifest, cfg, augment=False)
    checked = correct = 0
    wrong, per_file = [], {}
    it = loader.epoch(0)
    try:
        for batch in it:
            for r in range(int(batch["clip_a"].shape[0])):
                vi = int(batch["video_index"][r])
                row = table.iloc[vi]
                pair = sample_pair(vi, int(row.num_frames), float(row.fps), seed=cfg.seed, epoch=0,
                                   clip_len=cfg.clip_len, speeds=SPEEDS)
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
                if checked >= cfg.check_pairs * 2 * cfg.clip_len:
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
                            clip_len=cfg.clip_len, speeds=SPEEDS)
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
              pairs_per_s=one_core * cores, frames_per_s=decode_fps * cores, pairs=pairs, cpu_s_per_pair=cpu_seconds / pairs)
    return row, detail


# ---- the run ---------------------------------------------------------------------------------
def run_decode_bench(cfg: DecodeBenchConfig, echo=print) -> dict:
    """Time every asked backend, check its frames, print the table; returns the JSON document."""
    bad = [b for b in cfg.backends if b not in BACKENDS]
    if bad:
        raise ValueError(f"unknown backend(s) {bad}; allowed: {list(BACKENDS)}")
    manifest, reps = bench_manifest(cfg.manifest, cfg.split, cfg.min_videos)
    table = manifest.decode_table()
    env = environment(table)
    codecs = sorted(env["codecs"])
    echo(_env_lines(env, cfg, reps))
    rows, ceiling_detail = [], None
    ref = Reference(cfg.crop_size)
    for name in cfg.backends:
        if name == "ceiling":
            row, ceiling_detail = ceiling(manifest, cfg, cores=max(1, min(cfg.workers, env["cpus"])))
            rows.append(row)
            continue
        reason = skip_reason(name, codecs)
        if reason:
            rows.append(Row(name, "skipped", reason=reason))
            continue
        try:
            row = time_loader(name, manifest, cfg)
            if cfg.check_pairs > 0:
                row.frames_checked, row.frames_correct, row.wrong, row.wrong_by_file = check_frames(name, manifest, cfg, ref)
        except Exception as e:  # one broken backend must not hide the others' figures
            row = Row(name, "failed", reason=f"{type(e).__name__}: {e}")
        rows.append(row)
    base = next((r.pairs_per_s for r in rows if r.backend == "baseline" and r.status == "ok"), None)
    for r in rows:
        if base and r.pairs_per_s is not None:
            r.ratio = r.pairs_per_s / base
    echo(format_table(rows, cfg))
    doc = {"config": asdict(cfg), "environment": env, "repeat": reps, "rows": [asdict(r) for r in rows],
           "ceiling": ceiling_detail}
    if cfg.json:
        write_json_atomic(cfg.json, doc)
    return doc


def environment_lines(env: dict, manifest: str, split: str, rows: str, settings: str) -> str:
    """The header every benchmark prints: device, manifest and codec mix, settings, versions."""
    v = ", ".join(f"{k} {x}" for k, x in env["versions"].items())
    mix = ", ".join(f"{c} x{n}" for c, n in sorted(env["codecs"].items()))
    return (f"device: {env['device']}; CPU: {env['cpu']} ({env['cpus']} available)\n"
            f"manifest: {manifest} split {split}: {env['files']} files ({mix}), {rows}\n{settings}\n{v}")


def _env_lines(env: dict, cfg: DecodeBenchConfig, reps: int) -> str:
    return environment_lines(env, cfg.manifest, cfg.split, f"rows repeated x{reps}",
                             f"batch {cfg.batch_size}, workers {cfg.workers}, {cfg.clip_len}x{cfg.crop_size}, "
                             f"speeds {list(SPEEDS)}, {cfg.seconds:g} s per backend")


def format_table(rows: list[Row], cfg: DecodeBenchConfig) -> str:
    head = (f"{'backend':<9} {'pairs/s':>8} {'frames/s':>9} {'x baseline':>10} {'CPU ms/pair':>11} {'x baseline':>10} "
            f"{'frames correct':>15}  note")
    lines = [head, "-" * len(head)]
    base_cpu = next((r.cpu_s_per_pair for r in rows if r.backend == "baseline" and r.cpu_s_per_pair), None)
    for r in rows:
        if r.status != "ok":
            lines.append(f"{r.backend:<9} {'-':>8} {'-':>9} {'-':>10} {'-':>11} {'-':>10} {'-':>15}  {r.status}: {r.reason}")
            continue
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        cpu = f"{1000 * r.cpu_s_per_pair:.0f}" if r.cpu_s_per_pair else "-"
        cpu_ratio = f"{base_cpu / r.cpu_s_per_pair:.2f}" if base_cpu and r.cpu_s_per_pair else "-"
        check = f"{r.frames_correct}/{r.frames_checked}" if r.frames_checked else "-"
        note = r.reason if r.backend == "ceiling" else f"{r.pairs} pairs in {r.seconds:.1f} s, start-up {r.startup_s:.1f} s"
        if r.wrong_by_file:
            note += "; wrong frames in " + ", ".join(f"{f} ({w}/{n})" for f, (w, n) in r.wrong_by_file.items())
        lines.append(f"{r.backend:<9} {r.pairs_per_s:>8.1f} {r.frames_per_s:>9.0f} {ratio:>10} {cpu:>11} {cpu_ratio:>10} "
                     f"{check:>15}  {note}")
    lines.append("frames/s: frames delivered (2 clips x T per pair); for the ceiling, frames libavcodec decodes. "
                 "CPU ms/pair: CPU time of the loader's processes per pair (x baseline: the baseline's over this).")
    return "\n".join(lines)


write_json_atomic = atomic.write_json
