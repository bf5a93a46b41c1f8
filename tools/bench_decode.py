"""The decode benchmark: our loaders beside the peers' loader and the libavcodec ceiling.

Every backend loads the same manifest split with the same sampling (`ascnet.sampling`, same
seed) and the same augmentations, in one run, so the figures are comparable as ratios:

- `nvdec`, `dali-cpu`, `pyav`: `ascnet.pipelines.loader.build_pair_loader(backend=...)`;
- `baseline`: the peers' decord + DataLoader loader (`ascnet.tools.baseline_loader`);
- `torchcodec`: the same loader with torchcodec's `get_frames_at` (the peer's decoder of today),
  where it loads: its wheel links a CUDA build of torch;
- `ceiling`: libavcodec decode-only frames/s (PyAV, one thread, no colour conversion) on the
  same files, turned into pairs/s from the frames each sampled pair costs to decode: a clip
  holding frames lo..hi costs hi - k + 1 frames, k the last keyframe at or before lo; a pair
  costs the cheaper of two such seeks and one window covering both clips. Scaled to the
  number of cores the loaders get (min(workers, CPUs)).

Each loader runs at every worker count of `workers` (default 1..4 on a 2-core machine, up to
twice the cores elsewhere) and is reported at its own best; the ratio is of bests.

Honest numbers need a quiet machine. The 1-min load average is printed before and after every
timed run, a run that starts above `MAX_LOAD` is refused unless `allow_busy`, and each timed
run measures the CPU that other processes took meanwhile (machine-wide busy time from
/proc/stat minus the loader's own process tree): a row where that exceeds `FOREIGN_BUSY`
cores is marked busy, in the table and the JSON. CPU time per pair is given both ways (the
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

LOADERS = ("nvdec", "dali-cpu", "pyav", "baseline", "torchcodec")
# "dali-cpu-repeats": dali-cpu sent the pair's 32 indices as they are (the decoder seeks back for
# a repeated one), to show what sending each frame once saves; not a backend of the loaders
VARIANTS = ("dali-cpu-repeats",)
BACKENDS = LOADERS + VARIANTS + ("ceiling",)
MAX_LOAD = 0.5       # 1-min load average above which a run is refused (unless allow_busy): a quiet machine
FOREIGN_BUSY = 0.25  # cores taken by other processes during a timed run that mark it busy
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
    workers: tuple[int, ...] | None = None  # worker counts to sweep; None: default_workers(CPUs)
    seconds: float = 10.0
    clip_len: int = 16
    crop_size: int = 112
    seed: int = 0
    check_pairs: int = 16      # pairs per backend compared frame by frame (0: no check)
    min_videos: int = 256      # a small split is repeated up to this many rows so an epoch outlasts the timing
    ceiling_files: int = 16    # distinct files timed for the ceiling (a seeded sample of larger splits)
    allow_busy: bool = False   # run even when the machine is loaded (rows are marked busy)
    json: str | None = None


@dataclass
class Row:
    backend: str
    status: str                 # ok / skipped / failed
    reason: str = ""
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
def _build(name: str, manifest: Manifest, cfg: DecodeBenchConfig, augment: bool, workers: int):
    common = dict(split=cfg.split, batch_size=cfg.batch_size, clip_len=cfg.clip_len, crop_size=cfg.crop_size,
                  speeds=SPEEDS, augment=augment, seed=cfg.seed, workers=workers)
    if name in ("baseline", "torchcodec"):
        from ascnet.tools.baseline_loader import build_baseline_loader

        return build_baseline_loader(manifest, decoder="decord" if name == "baseline" else name, **common)
    from ascnet.pipelines.loader import build_pair_loader

    device = "cuda" if name == "nvdec" else "cpu"
    if name == "dali-cpu-repeats":
        return build_pair_loader(manifest, backend="dali-cpu", device=device, distinct_frames=False, **common)
    return build_pair_loader(manifest, backend=name, device=device, **common)


def skip_reason(name: str, codecs: list[str]) -> str | None:
    """Why a loader backend cannot run here, or None."""
    from ascnet.optional import cuda_available, dali_available

    if name == "baseline":
        return None
    if name == "torchcodec":
        try:
            import torchcodec.decoders  # noqa: F401
        except ImportError as e:
            return f"torchcodec is not installed ({e}); pip install torchcodec (it needs a CUDA build of torch)"
        except Exception as e:  # its libraries fail to load, e.g. libnvrtc beside a CPU build of torch
            return f"needs a CUDA torch: torchcodec's libraries do not load here ({str(e).splitlines()[-1][:160]})"
        return None
    if name == "nvdec" and not cuda_available():
        return "no CUDA GPU on this machine (NVDEC decodes on the GPU)"

    if not dali_available():
        return "NVIDIA DALI is not installed (pip install 'ascnet[dali]')"
    from ascnet.pipelines.backends import BackendError, choose_backend

    try:
        choose_backend(name.replace("-repeats", ""), "cuda" if name == "nvdec" else "cpu", codecs)
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
    """User + system CPU seconds of this process and all its descendants, living or reaped (Linux /proc), or None.

    The difference between two readings is the CPU the loader spent in between, however busy the
    machine is, also when its worker processes ended in between (a pass of the evaluation loader).
    """
    try:
        stats = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # ppid; utime + stime, + cutime + cstime: the children it has reaped (workers that ended)
                stats[int(d.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    except OSError:
        return None
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [c for c, (ppid, _) in stats.items() if ppid == pid and c not in tree]
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat: not idle, not iowait), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


class BusyMachineError(ValueError):
    """The machine is too loaded for a speed figure to mean anything; the message says what to do."""


def check_quiet(allow_busy: bool, echo=print, max_load: float = MAX_LOAD) -> float:
    """The 1-min load average now; refuses a loaded machine unless `allow_busy`."""
    load = load_average()
    if load > max_load and not allow_busy:
        raise BusyMachineError(
            f"the 1-min load average is {load:.2f} (> {max_load}): the machine is not quiet (other work, or a run that "
            "just ended), and a loaded machine flatters whichever loader runs more processes. Stop other work and "
            "wait for the load to fall, or pass --allow-busy to measure anyway (rows are then marked busy)")
    if load > max_load:
        echo(f"warning: load average {load:.2f} > {max_load}; measuring anyway (--allow-busy)")
    return load


@dataclass
class Meter:
    """Wall time, this process tree's CPU, the machine's busy CPU and the load around a timed run."""

    wall: float = 0.0
    tree_cpu: float | None = None
    machine_cpu: float | None = None
    load: list = field(default_factory=list)

    def __enter__(self):
        self._t, self._tree, self._machine = time.perf_counter(), tree_cpu_seconds(), machine_busy_seconds()
        self._load = load_average()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t
        tree, machine = tree_cpu_seconds(), machine_busy_seconds()
        self.tree_cpu = tree - self._tree if None not in (tree, self._tree) else None
        self.machine_cpu = machine - self._machine if None not in (machine, self._machine) else None
        self.load = [self._load, load_average()]

    @property
    def foreign_cores(self) -> float | None:
        """Cores that processes outside this tree kept busy meanwhile (never below 0)."""
        if self.tree_cpu is None or self.machine_cpu is None or self.wall <= 0:
            return None
        return max(0.0, self.machine_cpu - self.tree_cpu) / self.wall


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
    foreign = meter.foreign_cores
    row = Row(name, "ok", workers=workers, pairs_per_s=rate, frames_per_s=rate * 2 * cfg.clip_len, pairs=pairs,
              seconds=meter.wall, startup_s=startup, cpu_s_per_pair=per_pair(meter.tree_cpu),
              machine_cpu_s_per_pair=per_pair(meter.machine_cpu), foreign_cores=foreign, load=meter.load,
              busy=foreign is not None and foreign > FOREIGN_BUSY)
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
    from ascnet.pipelines.sources import key_before

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
                            clip_len=cfg.clip_len, speeds=SPEEDS)
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


def check_frames(name: str, manifest: Manifest, cfg: DecodeBenchConfig, ref: Reference,
                 workers: int = 2) -> tuple[int, int, list, dict]:
    """(frames checked, frames correct, wrong examples, {file: [wrong, checked]}) on `check_pairs` pairs, un-augmented."""
    from ascnet.pipelines.augment import denormalize

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
              pairs_per_s=one_core * cores, frames_per_s=decode_fps * cores, pairs=pairs, cpu_s_per_pair=cpu_seconds / pairs,
              decoded_per_pair=frames / pairs, decoded_how="model")
    return row, detail


# ---- the run ---------------------------------------------------------------------------------
def run_decode_bench(cfg: DecodeBenchConfig, echo=print) -> dict:
    """Time every asked backend at each worker count, check its frames, print the table; returns the JSON document."""
    bad = [b for b in cfg.backends if b not in BACKENDS]
    if bad:
        raise ValueError(f"unknown backend(s) {bad}; allowed: {list(BACKENDS)}")
    manifest, reps = bench_manifest(cfg.manifest, cfg.split, cfg.min_videos)
    table = manifest.decode_table()
    env = environment(table)
    counts = tuple(cfg.workers) if cfg.workers else default_workers(env["cpus"])
    load_start = check_quiet(cfg.allow_busy, echo)
    codecs = sorted(env["codecs"])
    echo(_env_lines(env, cfg, reps, counts))
    model = model_frames(manifest, cfg)
    rows, ceiling_detail = [], None
    ref = Reference(cfg.crop_size)
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
    echo(f"1-min load average {load_start:.2f} at the start, {load_end:.2f} at the end; "
         + (f"BUSY: other processes took more than {FOREIGN_BUSY} cores during {', '.join(busy)}: "
            "these figures are not a result" if busy else "no other work took CPU during the timed runs"))
    doc = {"config": asdict(cfg), "environment": env, "repeat": reps, "worker_counts": list(counts),
           "load_average": [load_start, load_end], "busy": bool(busy), "frames_model": model,
           "rows": [asdict(r) for r in rows], "ceiling": ceiling_detail}
    if cfg.json:
        write_json_atomic(cfg.json, doc)
    return doc


def environment_lines(env: dict, manifest: str, split: str, rows: str, settings: str) -> str:
    """The header every benchmark prints: device, manifest and codec mix, settings, versions."""
    v = ", ".join(f"{k} {x}" for k, x in env["versions"].items())
    mix = ", ".join(f"{c} x{n}" for c, n in sorted(env["codecs"].items()))
    return (f"device: {env['device']}; CPU: {env['cpu']} ({env['cpus']} available)\n"
            f"manifest: {manifest} split {split}: {env['files']} files ({mix}), {rows}\n{settings}\n{v}")


def _env_lines(env: dict, cfg: DecodeBenchConfig, reps: int, counts) -> str:
    return environment_lines(env, cfg.manifest, cfg.split, f"rows repeated x{reps}",
                             f"batch {cfg.batch_size}, workers {', '.join(map(str, counts))} (each loader at its best), "
                             f"{cfg.clip_len}x{cfg.crop_size}, speeds {list(SPEEDS)}, {cfg.seconds:g} s per run")


def format_table(rows: list[Row], cfg: DecodeBenchConfig) -> str:
    head = (f"{'backend':<16} {'workers':>7} {'pairs/s':>8} {'x baseline':>10} {'CPU ms/pair':>11} {'machine':>8} "
            f"{'frames/pair':>13} {'ideal':>6} {'correct':>9} {'load':>9}  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.status != "ok":
            lines.append(f"{r.backend:<16} {'-':>7} {'-':>8} {'-':>10} {'-':>11} {'-':>8} {'-':>13} {'-':>6} {'-':>9} "
                         f"{'-':>9}  {r.status}: {r.reason}")
            continue
        num = lambda x, f: format(x, f) if x is not None else "-"  # noqa: E731
        ms = lambda x: format(1000 * x, ".0f") if x is not None else "-"  # noqa: E731
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
        lines.append(f"{r.backend:<16} {workers:>7} {r.pairs_per_s:>8.1f} {num(r.ratio, '.2f'):>10} "
                     f"{ms(r.cpu_s_per_pair):>11} {ms(r.machine_cpu_s_per_pair):>8} {decoded:>13} "
                     f"{num(r.ideal_per_pair, '.0f'):>6} {check:>9} {load:>9}  {note}")
    lines.append("pairs/s at each loader's best worker count (sweep: workers:pairs/s); x baseline: ratio of bests. "
                 "CPU ms/pair: the loader's process tree; machine: all CPUs' busy time (/proc/stat) per pair. "
                 "frames/pair: frames decoded per pair (counted, or modelled from the keyframe table); ideal: the "
                 "frames the two clips span. load: 1-min load average before/after the best run.")
    return "\n".join(lines)


write_json_atomic = atomic.write_json
