"""What each pipeline sample is, and the `fn.external_source` callables that provide it.

A *schedule* maps a global sample number (0, 1, 2, ... since the pipeline was built) to one
request: which video, which frame indices (from `ascnet.sampling`). The pipeline's source
callable and the loader's bookkeeping read the same schedule, so the batch metadata (speeds,
video indices) never travels through DALI and always matches the frames.

Sources are module-level classes so DALI can send them to worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ascnet.pipelines.augment import CROP_SCALE, FLIP_P, IDENTITY, sample_augment
from ascnet.sampling import eval_clips, sample_pair, shard_plan, steps_per_epoch


class DecodeError(RuntimeError):
    """A video that failed to decode at run time; the message names the file and the frames."""


@dataclass(frozen=True)
class Request:
    video_index: int
    frames: np.ndarray          # (k*T,) int64, clip after clip
    speeds: tuple[int, ...]     # one per clip
    clip_index: int = 0
    aug: np.ndarray | None = None  # (k, 9) float32 per-clip augmentation (augment.PARAMS)


# ---- schedules ---------------------------------------------------------------------------
@dataclass
class TrainSchedule:
    """Endless run of epochs epoch0, epoch0+1, ... starting at step0, `clips` clips per video.

    clips=2: a pair at two speeds (`sample_pair`); clips=1: one speed-1 clip at a random start.
    """

    num_frames: np.ndarray
    fps: np.ndarray
    sizes: np.ndarray           # (N, 2) decoded height, width (0 = unknown)
    names: list[str]
    batch_size: int
    seed: int
    epoch0: int = 0
    step0: int = 0
    shard_id: int = 0
    num_shards: int = 1
    clips: int = 2
    clip_len: int = 16
    speeds: tuple[int, ...] = (1, 2, 4, 8)
    rate: str = "fixed"
    base_fps: float = 25.0
    crop_scale: tuple[float, float] = CROP_SCALE
    flip_p: float = FLIP_P
    _plans: dict = field(default_factory=dict, repr=False)

    @property
    def steps(self) -> int:
        return steps_per_epoch(len(self.num_frames), self.batch_size, self.num_shards)

    def position(self, batch: int) -> tuple[int, int]:
        """(epoch, step) of the `batch`-th batch since the start."""
        e, s = divmod(self.step0 + batch, self.steps)
        return self.epoch0 + e, s

    def plan(self, epoch: int) -> np.ndarray:
        if epoch not in self._plans:
            self._plans = {epoch: shard_plan(len(self.num_frames), seed=self.seed, epoch=epoch, batch_size=self.batch_size,
                                             shard_id=self.shard_id, num_shards=self.num_shards)}
        return self._plans[epoch]

    def request(self, g: int) -> Request:
        batch, row = divmod(g, self.batch_size)
        epoch, step = self.position(batch)
        vi = int(self.plan(epoch)[step, row])
        n, fps = int(self.num_frames[vi]), float(self.fps[vi])
        # the augmentation draws from its own stream, so it never shifts the frames drawn
        rng = np.random.default_rng([self.seed, epoch, vi, 1])
        aug = np.stack([sample_augment(rng, *self.sizes[vi], self.crop_scale, self.flip_p) for _ in range(self.clips)])
        if self.clips == 2:
            p = sample_pair(vi, n, fps, seed=self.seed, epoch=epoch, clip_len=self.clip_len, speeds=self.speeds,
                            rate=self.rate, base_fps=self.base_fps, name=self.names[vi])
            return Request(vi, p.frames, (p.speed_a, p.speed_b), aug=aug)
        start = int(np.random.default_rng([self.seed, epoch, vi]).integers(0, max(n - self.clip_len, 0) + 1))
        return Request(vi, np.minimum(start + np.arange(self.clip_len), n - 1), (1,), aug=aug)


@dataclass
class EvalSchedule:
    """One pass over (video, clip) in order, padded with repeats to whole DALI batches."""

    num_frames: np.ndarray
    clip_len: int
    clips_per_video: int
    batch_size: int

    @property
    def num_items(self) -> int:
        return len(self.num_frames) * self.clips_per_video

    @property
    def padded(self) -> int:
        return -(-self.num_items // self.batch_size) * self.batch_size

    def request(self, g: int) -> Request:
        if g >= self.padded:
            raise StopIteration
        vi, ci = divmod(min(g, self.num_items - 1), self.clips_per_video)
        frames = eval_clips(int(self.num_frames[vi]), self.clip_len, self.clips_per_video)[ci]
        return Request(vi, frames, (1,), ci, aug=IDENTITY[None])


# ---- decoding with PyAV ------------------------------------------------------------------
def _window(frames: np.ndarray) -> str:
    return f"{int(frames.min())}..{int(frames.max())}"


def decode_frames(file: str, frames: np.ndarray, fps: float, *, seek: bool = True) -> np.ndarray:
    """(len(frames), H, W, 3) uint8: the frames at these decode-order indices, in this order.

    One demux pass from the keyframe before the first wanted frame to the last wanted one.
    MP4/WebM/MKV seek by timestamp (frame index = round(t*fps)); AVI is read from frame 0 and
    counted in decode order, since DivX .avi files (HMDB-51) carry unsorted timestamps.
    """
    import av

    frames = np.asarray(frames, dtype=np.int64)
    wanted = set(int(f) for f in frames)
    lo, hi = min(wanted), max(wanted)
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(file, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            by_time = seek and lo > 0 and container.format.name not in ("avi",) and fps > 0 and stream.time_base
            if by_time:
                got = _decode_seeking(container, stream, wanted, lo, hi, fps)
            if not by_time or got is None:
                if by_time:
                    container.seek(0)
                got = {}
                for idx, frame in enumerate(container.decode(stream)):
                    if idx in wanted:
                        got[idx] = frame.to_ndarray(format="rgb24")
                    if idx >= hi:
                        break
    except DecodeError:
        raise
    except Exception as e:  # PyAV raises many types (InvalidDataError, OSError, ...)
        raise DecodeError(f"{file}: cannot decode frames {_window(frames)}: {type(e).__name__}: {e}") from e
    missing = sorted(wanted - set(got))
    if missing:
        raise DecodeError(
            f"{file}: frames {_window(frames)} requested, but frame {missing[0]} is not in the file "
            f"(it ended or is damaged); re-index it (ascnet-index build) so the manifest matches the file"
        )
    return np.stack([got[int(f)] for f in frames])


def _decode_seeking(container, stream, wanted, lo, hi, fps):
    """Frames by timestamp after one seek; None when the seek landed past `lo` (fall back)."""
    t0 = stream.start_time or 0
    target = t0 + int(lo / fps / stream.time_base)
    container.seek(target, stream=stream, backward=True, any_frame=False)
    got = {}
    first = True
    for frame in container.decode(stream):
        if frame.pts is None:
            return None
        idx = int(np.floor(float((frame.pts - t0) * stream.time_base) * fps + 0.5))
        if first and idx > lo:
            return None
        first = False
        if idx in wanted:
            got[idx] = frame.to_ndarray(format="rgb24")
        if idx >= hi:
            break
    return got


# ---- external-source callables -----------------------------------------------------------
class PyAVSource:
    """Sample mode, run in worker processes: (frames (k*T, H, W, 3) uint8, [aug (k, 9),] ok int32).

    `split_pair=True` decodes each clip by its own seek instead of one window covering both.
    With `skip_errors`, a failing video yields a tiny placeholder and ok=0, which the loader
    drops and counts; otherwise the DecodeError propagates and names the file.
    """

    def __init__(self, schedule, files: list[str], fps: np.ndarray, *, with_aug: bool = True, split_pair: bool = False,
                 skip_errors: bool = False):
        self.schedule, self.files, self.fps = schedule, files, fps
        self.with_aug, self.split_pair, self.skip_errors = with_aug, split_pair, skip_errors

    def __call__(self, info):
        req = self.schedule.request(info.idx_in_epoch)
        file, fps = self.files[req.video_index], float(self.fps[req.video_index])
        try:
            if self.split_pair and len(req.speeds) > 1:
                parts = np.split(req.frames, len(req.speeds))
                out = np.concatenate([decode_frames(file, p, fps) for p in parts])
            else:
                out = decode_frames(file, req.frames, fps)
        except DecodeError:
            if not self.skip_errors:
                raise
            out, ok = np.zeros((len(req.frames), 8, 8, 3), np.uint8), 0
        else:
            ok = 1
        return (out, req.aug, np.array(ok, np.int32)) if self.with_aug else (out, np.array(ok, np.int32))


class BytesSource:
    """Sample mode, in the main process: (encoded file bytes uint8, frame indices int32, [aug (k, 9)])."""

    def __init__(self, schedule, files: list[str], *, with_aug: bool = True):
        self.schedule, self.files, self.with_aug = schedule, files, with_aug

    def __call__(self, info):
        req = self.schedule.request(info.idx_in_epoch)
        file = self.files[req.video_index]
        try:
            data = np.fromfile(file, dtype=np.uint8)
        except OSError as e:
            raise DecodeError(f"{file}: cannot read it ({e}); re-index the dataset (ascnet-index build)") from e
        index = req.frames.astype(np.int32)
        return (data, index, req.aug) if self.with_aug else (data, index)
