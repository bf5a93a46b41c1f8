"""The decode benchmark: our loaders beside the peers' loaders and the libavcodec ceiling.

Every backend loads the same manifest split with the same sampling (`ascnet.sampling`, the
config's ClipSpec: speeds, rate, base fps; same seed) and the same augmentations, in one run,
so the figures are comparable as ratios:

- `nvdec`, `dali-cpu`, `pyav`: `ascnet.pipelines.loader.build_pair_loader(backend=...)`;
- the peers (`ascnet.bench.baseline`), a PyTorch DataLoader with persistent workers:
  `baseline` (decord, a `get_batch` per clip, per-frame augmentation: the classic peer),
  `torchcodec` / `torchcodec-approx` (torchcodec's `get_frames_at` for the pair, seek mode
  exact / approximate, per-frame augmentation) and `torchvision` (torchcodec exact, then
  torchvision `transforms.v2` once per uint8 clip: what a user writes today); torchcodec needs
  a CUDA build of torch (`make bench-peers` builds that environment);
- `ceiling`: libavcodec decoding exactly the frames the fastest CPU loader decoded in its timed
  run (the pyav workers' own reader, `FrameReader`, replaying those pairs: the same opens,
  seeks and decoded frames, no colour conversion, no augmentation), on one thread, times the
  processes that loader had, min(workers, CPUs).

How a run is timed, the same for every loader:
- every file is read once before any timing (the page cache is warm for all);
- each loader is built, its first `warmup_batches(workers)` = 2 x workers + 1 batches are
  discarded (what a DataLoader has ready by its first batch: prefetch 2 per worker), then
  batches are timed for `seconds`, inside epoch 0 (`min_videos` makes the epoch outlast
  warm-up and timing; a row whose epoch ended early says so);
- the loaders run interleaved in `rounds` rounds (each loader at every worker count of
  `workers` per round); each worker count's figure is the median over rounds, and each loader
  is reported at its best worker count.

Honest numbers need a quiet machine (`ascnet.bench.common`): the run is refused above
`MAX_LOAD` unless `allow_busy`, and each timed run measures the CPU other processes took
meanwhile; a row where that exceeds `FOREIGN_BUSY` cores is marked busy. CPU time per pair is
given both ways (the loader's process tree, and the whole machine's busy time).

Frames decoded per pair, the decode work independent of the device: counted for pyav (its
workers report what the decoder produced), modelled elsewhere from the manifest's keyframe
table, over the pairs the row timed, following what each decoder does (`modelled_costs`):
DALI sorts the indices and jumps to a keyframe only backwards or more than 10 frames ahead
into another keyframe interval; decord serves both clips from one reader and seeks only
backwards or into another keyframe interval; torchcodec sorts one call's indices, decodes each
once and seeks the same way. decord's and torchcodec's decoded frames cannot be counted from
outside (neither reports them); the models follow their sources. Beside: the ideal, the frames
the two clips' windows span.

Correctness beside speed: for a sample of pairs, each backend runs once more without
augmentation, and every frame is compared with the frame the sampling named, taken from a
PyAV sequential decode of the file in decode order, resized and centre-cropped with DALI's
geometry, at quarter resolution (DALI's RGB differs from PyAV's by 2-3 levels).
"""
from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterator
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
from ascnet.pipelines.decode import FrameReader, key_before
from ascnet.pipelines.loader import build_pair_loader
from ascnet.sampling import PairSample, sample_pair, shard_plan

# the peers' loaders: (decoder, augmentation recipe) of ascnet.bench.baseline
PEERS = {"baseline": ("decord", "per-frame"), "torchcodec": ("torchcodec", "per-frame"),
         "torchcodec-approx": ("torchcodec-approximate", "per-frame"), "torchvision": ("torchcodec", "transforms-v2")}
LOADERS = ("nvdec", "dali-cpu", "pyav") + tuple(PEERS)
# "dali-cpu-repeats": dali-cpu sent the pair's 32 indices as they are (the decoder seeks back for
# a repeated one), to show what sending each frame once saves; not a backend of the loaders
VARIANTS = ("dali-cpu-repeats",)
BACKENDS = LOADERS + VARIANTS + ("ceiling",)
DEFAULT_BACKENDS = LOADERS + ("ceiling",)  # the variant only on demand
# the frames model of each backend (modelled_costs); pyav's is counted, its model checks the count
MODEL = {"nvdec": "dali", "dali-cpu": "dali", "dali-cpu-repeats": "dali-repeats", "pyav": "reader",
         "baseline": "decord", "torchcodec": "torchcodec", "torchcodec-approx": "torchcodec", "torchvision": "torchcodec"}
DALI_LEAP = 10  # DALI's decoder reads on to a frame at most this many frames ahead (its MINIMUM_SEEK_LEAP)
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
    seconds: float = 10.0      # timed seconds per run, after the warm-up batches
    rounds: int = 2            # every loader at every worker count once per round, interleaved; medians reported
    clip: ClipSpec = ClipSpec()  # the pairs every loader makes (augmented as it says for the timing, plain for the check)
    seed: int = 0
    check_pairs: int = 16      # pairs per backend compared frame by frame (0: no check)
    min_videos: int = 2048     # a small split is repeated up to this many rows so an epoch outlasts warm-up and timing
    allow_busy: bool = False   # run even when the machine is loaded (rows are marked busy)
    json: str | None = None
    # the method's fairness rules, each switchable to show what it changes (defaults: the fair method)
    warmup: int | None = None  # batches discarded before timing; None: 2 x workers + 1 (`warmup_batches`)
    across_epochs: bool = False  # time on into the next epochs when one ends (with a small --min-videos)
    peers_persistent: bool = True  # the peers' DataLoader keeps its workers from epoch to epoch

    def check(self) -> "DecodeBenchConfig":
        check_backends(self.backends, BACKENDS)
        check_at_least(self, {"batch_size": 1, "check_pairs": 0, "min_videos": 1, "rounds": 1})
        if self.warmup is not None and self.warmup < 0:
            raise ValueError(f"--warmup {self.warmup}: must be 0 or more (default: 2 x workers + 1)")
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
    workers: int = 0                    # the worker count of the best median
    sweep: dict = field(default_factory=dict)   # workers -> median pairs/s over the rounds
    rounds: dict = field(default_factory=dict)  # workers -> pairs/s in each round
    pairs_per_s: float | None = None    # the median at the best worker count
    frames_per_s: float | None = None   # frames delivered (2*T per pair); decoded frames for the ceiling
    ratio: float | None = None          # pairs/s over the fastest peer's, each at its best worker count
    ceiling_share: float | None = None  # pairs/s over the ceiling's, only where the ceiling bounds this row
    pairs: int = 0                      # pairs timed at the best worker count, all rounds
    seconds: float = 0.0
    warmup_batches: int = 0             # batches discarded before the timing (2 x workers + 1)
    epoch_ended: bool = False           # the epoch ran out before `seconds` (raise --min-videos)
    cpu_s_per_pair: float | None = None  # CPU time of this process and its workers per pair (median of rounds)
    machine_cpu_s_per_pair: float | None = None  # the whole machine's busy CPU time per pair (/proc/stat)
    foreign_cores: float | None = None  # the most cores other processes took during a timed run
    load: list = field(default_factory=list)  # 1-min load average before the first and after the last run
    busy: bool = False                  # other work took more than FOREIGN_BUSY cores during a run
    decoded_per_pair: float | None = None  # frames the decoder produces per pair
    decoded_how: str = ""               # counted / model
    ideal_per_pair: float | None = None  # frames the two clips span, overlap counted once
    startup_s: float = 0.0              # build and warm-up batches (median of rounds)
    frames_checked: int = 0
    frames_correct: int = 0
    wrong: list = field(default_factory=list)   # up to 8 (file, named frame, best-matching frame)
    wrong_by_file: dict = field(default_factory=dict)  # file -> [wrong, checked], files with a wrong frame


@dataclass
class Run:
    """One timed run of one loader at one worker count."""

    workers: int
    pairs_per_s: float
    pairs: int
    startup_s: float
    meter: Meter
    videos: list            # video indices of the timed pairs, epoch 0, in order
    decoded: int | None     # frames the decoder produced for them, where it counts
    epoch_ended: bool


# ---- the manifest as the benchmark uses it ----------------------------------------------------
def pair_of(table, vi: int, cfg: DecodeBenchConfig, epoch: int = 0) -> PairSample:
    """Video `vi`'s pair in `epoch`, sampled as every loader samples it (the whole ClipSpec)."""
    row = table.iloc[vi]
    c = cfg.clip
    return sample_pair(vi, int(row.num_frames), float(row.fps), seed=cfg.seed, epoch=epoch, clip_len=c.clip_len,
                       speeds=c.speeds, rate=c.rate, base_fps=c.base_fps)


def warm_page_cache(files) -> dict:
    """Reads every file once, so that no loader pays for the first read: {files, bytes}."""
    n = total = 0
    for f in dict.fromkeys(files):
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
        n += 1
    return {"files": n, "bytes": total}


def _build(name: str, manifest: Manifest, cfg: DecodeBenchConfig, augment: bool, workers: int):
    clip = replace(cfg.clip, augment=augment and cfg.clip.augment)
    common = dict(split=cfg.split, batch_size=cfg.batch_size, seed=cfg.seed, workers=workers)
    if name in PEERS:
        decoder, recipe = PEERS[name]
        return build_baseline_loader(manifest, clip, decoder=decoder, recipe=recipe, persistent=cfg.peers_persistent,
                                     **common)

    device = "cuda" if name == "nvdec" else "cpu"
    if name == "dali-cpu-repeats":
        return build_pair_loader(manifest, clip, backend="dali-cpu", device=device, distinct_frames=False, **common)
    return build_pair_loader(manifest, clip, backend=name, device=device, **common)


def default_workers(cpus: int) -> tuple[int, ...]:
    """Worker counts to sweep: 1..4 on a small machine, up to twice the cores on a larger one."""
    if cpus <= 2:
        return (1, 2, 3, 4)
    return tuple(sorted({1, 2, 4, cpus, 2 * cpus} | {w for w in (8, 16, 32) if w < 2 * cpus}))


def warmup_batches(workers: int, given: int | None = None) -> int:
    """Batches discarded before timing, for every loader alike: what a DataLoader of `workers`
    workers has ready when its first batch arrives (2 per worker), and one more; `given` (--warmup)
    overrides it."""
    return 2 * workers + 1 if given is None else given


def epochs_of(loader, across: bool) -> Iterator[dict]:
    """The loader's batches from epoch 0: that epoch alone, or on through epochs 1, 2, ... (`across`)."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        if not across:
            return
        epoch += 1


def time_loader(name: str, manifest: Manifest, cfg: DecodeBenchConfig, workers: int) -> Run:
    """Pairs/s over `cfg.seconds` inside epoch 0, after the warm-up batches (build and warm-up timed apart)."""
    t0 = time.perf_counter()
    loader = _build(name, manifest, cfg, augment=True, workers=workers)
    it = epochs_of(loader, cfg.across_epochs)
    videos, ended, warmup = [], False, warmup_batches(workers, cfg.warmup)
    try:
        for _ in range(warmup):
            if next(it, None) is None:
                raise ValueError(f"{name}: the epoch of {loader.steps_per_epoch} batches ended during the warm-up "
                                 f"({warmup} batches): raise --min-videos")
        startup = time.perf_counter() - t0
        decoded0 = getattr(loader, "frames_decoded", None)
        with Meter() as meter, tqdm(desc=f"{name:>8} x{workers}", unit="pair", leave=False) as bar:
            while time.perf_counter() - meter._t < cfg.seconds:
                batch = next(it, None)
                if batch is None:
                    ended = True
                    break
                if batch["clip_a"].is_cuda:
                    torch.cuda.synchronize()
                videos += batch["video_index"].tolist()
                bar.update(int(batch["clip_a"].shape[0]))
        decoded = getattr(loader, "frames_decoded", None)
    finally:
        it.close()
        loader.close()
    return Run(workers, len(videos) / meter.wall, len(videos), startup, meter, videos,
               decoded - decoded0 if None not in (decoded, decoded0) else None, ended)


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(name: str, runs: list[Run], table, cfg: DecodeBenchConfig) -> tuple[Row, Run]:
    """The row of one loader from its runs (all rounds, all worker counts), and the run the ceiling may replay."""
    by_w: dict[int, list[Run]] = {}
    for r in runs:
        by_w.setdefault(r.workers, []).append(r)
    sweep = {w: _median([r.pairs_per_s for r in rs]) for w, rs in by_w.items()}
    best = max(sweep, key=sweep.get)
    rs = by_w[best]
    longest = max(rs, key=lambda r: r.pairs)
    per_pair = lambda r, x: x / r.pairs if x is not None and r.pairs else None  # noqa: E731
    foreign = [r.meter.foreign_cores for r in runs if r.meter.foreign_cores is not None]
    row = Row(name, "ok", workers=best, sweep=sweep, rounds={w: [r.pairs_per_s for r in x] for w, x in by_w.items()},
              pairs_per_s=sweep[best], frames_per_s=sweep[best] * 2 * cfg.clip.clip_len, pairs=sum(r.pairs for r in rs),
              seconds=sum(r.meter.wall for r in rs), warmup_batches=warmup_batches(best, cfg.warmup),
              epoch_ended=any(r.epoch_ended for r in runs),
              cpu_s_per_pair=_median([per_pair(r, r.meter.tree_cpu) for r in rs]),
              machine_cpu_s_per_pair=_median([per_pair(r, r.meter.machine_cpu) for r in rs]),
              foreign_cores=max(foreign) if foreign else None, load=[runs[0].meter.load[0], runs[-1].meter.load[1]],
              busy=any(r.meter.busy for r in runs), startup_s=_median([r.startup_s for r in rs]))
    model = model_frames(table, cfg, longest.videos)
    row.ideal_per_pair = model["ideal"]
    if longest.decoded is not None and longest.pairs:
        row.decoded_per_pair, row.decoded_how = longest.decoded / longest.pairs, "counted"
    else:
        row.decoded_per_pair, row.decoded_how = model[MODEL[name]], "model"
    return row, longest


# ---- frames decoded per pair, from the keyframe table ------------------------------------------
def decode_cost(frames, keyframes, *, leap: int = 0, start: int | None = None) -> int:
    """Frames a decoder produces for these indices in this order.

    It reads forward, and jumps to the keyframe before a frame when the frame lies behind the
    position (a repeated index too) or lies more than `leap` frames ahead in a later keyframe
    interval. `start`: the frame the decoder returns first without a jump (None: it jumps first).
    """
    return _cost(frames, np.asarray(keyframes, dtype=np.int64), leap, start)[0]


def _cost(frames, keys, leap: int, pos: int | None) -> tuple[int, int | None]:
    cost = 0
    for t in (int(f) for f in frames):
        k = key_before(t, keys)
        if pos is None or t < pos or (t - pos > leap and k > pos):
            cost, pos = cost + t - k + 1, t + 1
        else:
            cost, pos = cost + t - pos + 1, t + 1
    return cost, pos


def _first_each(frames) -> list[int]:
    return list(dict.fromkeys(int(f) for f in frames))


def modelled_costs(pair: PairSample, keyframes) -> dict:
    """Frames decoded for one pair by each kind of decoder, as its source does it, and the ideal.

    - reader (pyav's FrameReader): the pair's distinct indices sorted, one pass, a jump whenever
      one skips frames; the pyav rows count theirs, this model checks the count;
    - dali: DALI's decoder sorts the indices it gets (ours distinct), reads on up to DALI_LEAP
      frames ahead, jumps to the keyframe otherwise when the frame lies in another interval;
    - dali-repeats: the same for the pair's 32 indices with their repeats (sorted by DALI: a
      repeat lies behind the position and is decoded again from its keyframe);
    - decord: one reader for the pair, clip a's `get_batch` then clip b's, each decoding an index
      once; it seeks only backwards or into another keyframe interval;
    - torchcodec: one `get_frames_at` for the pair, indices sorted and each decoded once, the
      same seeking as decord.
    """
    a, b = pair.frames_a, pair.frames_b
    keys = np.asarray(keyframes, dtype=np.int64)
    spans = set(range(int(a.min()), int(a.max()) + 1)) | set(range(int(b.min()), int(b.max()) + 1))
    cost_a, pos = _cost(_first_each(a), keys, 0, None)
    cost_b, _ = _cost(_first_each(b), keys, 0, pos)
    distinct = np.unique(pair.frames)
    return {"ideal": len(spans),
            "reader": decode_cost(distinct, keys),
            "dali": decode_cost(distinct, keys, leap=DALI_LEAP, start=0),
            "dali-repeats": decode_cost(np.sort(pair.frames), keys, leap=DALI_LEAP, start=0),
            "decord": cost_a + cost_b,
            "torchcodec": decode_cost(distinct, keys)}


def model_frames(table, cfg: DecodeBenchConfig, videos) -> dict:
    """Mean modelled frames per pair over the pairs of these videos in epoch 0."""
    total = Counter()
    for vi in videos:
        total.update(modelled_costs(pair_of(table, int(vi), cfg), table["keyframes"].iat[int(vi)]))
    return {k: v / max(len(videos), 1) for k, v in total.items()}


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
                pair = pair_of(table, vi, cfg)
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
def replay(table, pairs: list[PairSample]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, frames decoded): the pyav workers' decode of these pairs and nothing
    else: per pair a `FrameReader` opened, its distinct frames read (jumps as the keyframe table
    allows), closed; one thread, the frames left in libavcodec's YUV (no conversion, no augmentation)."""
    wall = cpu = 0.0
    decoded = 0
    for p in tqdm(pairs, desc=" ceiling", unit="pair", leave=False):
        row = table.iloc[p.video_index]
        t, c = time.perf_counter(), time.process_time()
        reader = FrameReader(row.file, float(row.fps), row.keyframes)
        try:
            reader.read(p.frames)
        finally:
            reader.close()
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        decoded += reader.decoded
    return wall, cpu, decoded


def ceiling(table, cfg: DecodeBenchConfig, videos, cores: int, replays: str) -> tuple[Row, dict]:
    """The libavcodec bound in pairs/s: the pairs of `videos` (epoch 0) decoded as the pyav workers
    decode them, on one thread, times `cores` processes; the median of `cfg.rounds` replays."""
    pairs = [pair_of(table, int(vi), cfg) for vi in videos]
    runs = [replay(table, pairs) for _ in range(cfg.rounds)]
    rates = [len(pairs) / max(w, 1e-9) for w, _, _ in runs]
    one_core = _median(rates)
    decoded = runs[0][2]  # the same every replay
    detail = {"cores": cores, "replays": replays, "pairs": len(pairs), "decoded_frames_per_pair": decoded / len(pairs),
              "pairs_per_s_one_core": rates, "decode_frames_per_cpu_s": decoded * len(runs) / max(sum(c for _, c, _ in runs), 1e-9)}
    row = Row("ceiling", "ok", workers=cores, reason=f"libavcodec, the pairs {replays} timed, x {cores} process(es)",
              pairs_per_s=one_core * cores, frames_per_s=one_core * cores * decoded / len(pairs), pairs=len(pairs),
              rounds={cores: [r * cores for r in rates]}, cpu_s_per_pair=_median([c / len(pairs) for _, c, _ in runs]),
              decoded_per_pair=decoded / len(pairs), decoded_how="counted",
              ideal_per_pair=model_frames(table, cfg, videos)["ideal"])
    return row, detail


def bounded(row: Row, top: Row, cpus: int) -> bool:
    """The ceiling bounds this row: a CPU loader that decodes at least the ceiling's frames per pair,
    on no more processes than the ceiling was given (and no more cores than there are)."""
    return (row.status == "ok" and row.backend not in ("nvdec", "ceiling") and row.decoded_per_pair is not None
            and row.decoded_per_pair >= top.decoded_per_pair * (1 - 1e-9) and min(row.workers, cpus) <= top.workers)


# ---- the run ---------------------------------------------------------------------------------
def run_decode_bench(cfg: DecodeBenchConfig, echo=print) -> dict:
    """Time every asked backend at each worker count in interleaved rounds, check its frames, print
    the table; returns the JSON document."""
    cfg.check()
    manifest, reps = bench_manifest(cfg.manifest, cfg.split, cfg.min_videos)
    table = manifest.decode_table()
    env = environment(table)
    cpus = env["cpus"]
    counts = tuple(cfg.workers) if cfg.workers else default_workers(cpus)
    load_start = check_quiet(cfg.allow_busy, echo)
    codecs = sorted(env["codecs"])
    echo(_env_lines(env, cfg, reps, counts))
    cache = warm_page_cache(table["file"])
    rows: dict[str, Row] = {}
    loaders = [n for n in cfg.backends if n != "ceiling"]
    for name in loaders:
        reason = skip_reason(name, codecs)
        if reason:
            rows[name] = Row(name, "skipped", reason=reason)
    runs: dict[str, list[Run]] = {n: [] for n in loaders if n not in rows}
    for _ in range(cfg.rounds):  # interleaved: drift in the machine's state spreads over every loader alike
        for name in list(runs):
            for w in counts:
                try:
                    runs[name].append(time_loader(name, manifest, cfg, w))
                except Exception as e:  # one broken backend must not hide the others' figures
                    rows[name] = Row(name, "failed", reason=f"{type(e).__name__}: {e}")
                    del runs[name]
                    break
    replayed = {}
    for name, rs in runs.items():
        rows[name], replayed[name] = summarise(name, rs, table, cfg)
    ref = Reference(cfg.clip.crop_size)
    for name in runs:
        row = rows[name]
        if cfg.check_pairs > 0:
            try:
                row.frames_checked, row.frames_correct, row.wrong, row.wrong_by_file = check_frames(
                    name, manifest, cfg, ref, workers=row.workers)
            except Exception as e:
                rows[name] = Row(name, "failed", reason=f"frame check: {type(e).__name__}: {e}")
    ceiling_detail = None
    if "ceiling" in cfg.backends:
        cpu_rows = [rows[n] for n in runs if n != "nvdec" and rows[n].status == "ok"]
        top = max(cpu_rows, key=lambda r: r.pairs_per_s) if cpu_rows else None
        if top is not None and replayed[top.backend].videos:
            videos, cores, source = replayed[top.backend].videos, min(top.workers, cpus), top.backend
        else:  # no CPU loader timed a pair: the first pairs of epoch 0, on every CPU the sweep would use
            plan = shard_plan(len(table), seed=cfg.seed, epoch=0, batch_size=cfg.batch_size)
            videos, cores, source = plan.reshape(-1)[:256].tolist(), min(max(counts), cpus), "epoch 0's first 256 pairs"
        rows["ceiling"], ceiling_detail = ceiling(table, cfg, videos, cores, source)
        for r in rows.values():
            if bounded(r, rows["ceiling"], cpus):
                r.ceiling_share = r.pairs_per_s / rows["ceiling"].pairs_per_s
    ordered = [rows[n] for n in cfg.backends]
    peers = [r.pairs_per_s for r in ordered if r.backend in PEERS and r.status == "ok"]
    if peers:
        for r in ordered:
            if r.pairs_per_s is not None:
                r.ratio = r.pairs_per_s / max(peers)
    load_end = load_average()
    echo(format_table(ordered, cfg, peer=next((r.backend for r in ordered if r.backend in PEERS and r.status == "ok"
                                                and r.pairs_per_s == max(peers)), None) if peers else None))
    busy = [r.backend for r in ordered if r.busy]
    echo(load_line(load_start, load_end, busy))
    doc = {"config": asdict(cfg), "environment": env, "repeat": reps, "worker_counts": list(counts),
           "page_cache": cache, "load_average": [load_start, load_end], "busy": bool(busy),
           "rows": [asdict(r) for r in ordered], "ceiling": ceiling_detail}
    if cfg.json:
        write_json_atomic(cfg.json, doc)
    return doc


def _env_lines(env: dict, cfg: DecodeBenchConfig, reps: int, counts) -> str:
    c = cfg.clip
    warm = "2 x workers + 1" if cfg.warmup is None else str(cfg.warmup)
    rules = [("timed on across epochs", cfg.across_epochs), ("the peers' workers restart every epoch", not cfg.peers_persistent),
             ("warm-up not 2 x workers + 1", cfg.warmup is not None)]
    changed = "; NOT the fair method: " + ", ".join(what for what, on in rules if on) if any(on for _, on in rules) else ""
    rate = f"rate {c.rate}" + (f" at {c.base_fps:g} fps" if c.rate == "fixed" else "")
    return environment_lines(env, cfg.manifest, cfg.split, f"rows repeated x{reps}",
                             f"batch {cfg.batch_size}, workers {', '.join(map(str, counts))} (each loader at its best), "
                             f"{c.clip_len}x{c.crop_size}, speeds {list(c.speeds)}, {rate}; {cfg.rounds} interleaved "
                             f"round(s) of {cfg.seconds:g} s per run after {warm} warm-up batches, medians; "
                             f"page cache warmed{changed}")


TABLE = Table((("backend", 17), ("workers", 7), ("pairs/s", 8), ("x peer", 6), ("of ceiling", 10), ("CPU ms/pair", 11),
               ("machine", 8), ("frames/pair", 13), ("ideal", 6), ("correct", 9), ("load", 9)))


def format_table(rows: list[Row], cfg: DecodeBenchConfig, peer: str | None = None) -> str:
    num = lambda x, f: format(x, f) if x is not None else "-"  # noqa: E731
    ms = lambda x: format(1000 * x, ".0f") if x is not None else "-"  # noqa: E731

    def ran(r: Row) -> str:
        decoded = f"{num(r.decoded_per_pair, '.0f')} {r.decoded_how[:5]}" if r.decoded_per_pair is not None else "-"
        check = f"{r.frames_correct}/{r.frames_checked}" if r.frames_checked else "-"
        load = f"{r.load[0]:.1f}/{r.load[1]:.1f}" if r.load else "-"
        share = f"{100 * r.ceiling_share:.0f}%" if r.ceiling_share is not None else "-"
        rounds = lambda xs: "/".join(f"{v:.1f}" for v in xs)  # noqa: E731
        if r.backend == "ceiling":
            note = f"{r.reason}; rounds {rounds(r.rounds[r.workers])}"
        else:
            note = "sweep " + ", ".join(f"{w}:{rounds(r.rounds[w])}" for w in r.sweep)
            note += f"; start-up {r.startup_s:.1f} s"
            if r.epoch_ended:
                note += "; EPOCH ENDED inside the timing: raise --min-videos"
            if r.busy:
                note += f"; BUSY ({r.foreign_cores:.2f} cores of other work)"
        if r.wrong_by_file:
            note += "; wrong frames in " + ", ".join(f"{f} ({w}/{n})" for f, (w, n) in r.wrong_by_file.items())
        workers = str(r.workers) if r.workers else "-"
        return TABLE.line(r.backend, workers, f"{r.pairs_per_s:.1f}", num(r.ratio, ".2f"), share, ms(r.cpu_s_per_pair),
                          ms(r.machine_cpu_s_per_pair), decoded, num(r.ideal_per_pair, ".0f"), check, load, note=note)

    lines = TABLE.render(rows, ran)
    lines.append(
        "pairs/s: the median over the rounds at each loader's best worker count (sweep workers:pairs/s per round). "
        f"x peer: over the fastest peers' loader ({peer or 'none ran'}). of ceiling: pairs/s over the ceiling's, shown "
        "only where the ceiling bounds the row (a CPU loader decoding at least the ceiling's frames per pair on no more "
        "processes). CPU ms/pair: the loader's process tree; machine: all CPUs' busy time (/proc/stat) per pair. "
        "frames/pair: frames decoded per pair (counted, or modelled from the keyframe table over the pairs the row timed); "
        "ideal: the frames the two clips span. load: 1-min load average before the first and after the last run.")
    return "\n".join(lines)
