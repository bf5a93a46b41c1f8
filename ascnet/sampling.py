"""Which frames a clip holds: the one sampling definition every decoder backend follows.

Pure numpy, no DALI. Everything random is drawn from `np.random.default_rng` seeded by
`(seed, epoch)` for the order of an epoch and by `(seed, epoch, video_index)` for the content
of one video's pair, so a batch depends only on these numbers, never on worker timing.

Playback speed (DESIGN §1). With `rate="fixed"` a clip at speed `s` samples video time
`t0 + k*s/base_fps` (k = 0..T-1) and takes the frame shown then, `round(t*fps)`: "2x" is the
same real-time rate in a 25 fps and a 60 fps video. With `rate="native"` speed `s` is the
plain frame stride `s`. `fps` is the video's average rate: a variable-frame-rate original
(the manifest's `vfr` is 1) is mapped by it too, so its clips drift from the rate asked for
where its frame durations differ from the average; `ascnet-index build --transcode` gives such
videos constant-rate copies at that average, which the pipelines read instead.

Short videos. A window must fit the video. For a pair, the speeds whose window does not fit
are dropped; when fewer than two speeds fit (the two clips of a pair must differ in speed),
the smallest non-fitting speeds make up the pair, start at frame 0, and their indices past the
last frame repeat the last frame (edge padding, never zero frames). A video shorter than one
clip at speed 1 (`num_frames < clip_len`) cannot make a pair and raises `SamplingError`; the
indexer marks such videos `too_short`. Evaluation clips edge-pad any video with >= 1 frame,
so every test video gets a prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Rate = Literal["fixed", "native"]
RATES = ("fixed", "native")


class SamplingError(ValueError):
    """A video that the sampling definition cannot serve; the message names it and the fix."""


def check_speeds(speeds: Sequence[int]) -> tuple[int, ...]:
    """Validated, sorted, distinct positive integer speeds (at least two: a pair needs two)."""
    out = tuple(sorted({int(s) for s in speeds}))
    if len(out) < 2 or out[0] < 1 or any(int(s) != s for s in speeds):
        raise SamplingError(f"speeds={list(speeds)}: need at least two distinct speeds, positive integers (a pair has two)")
    return out


def check_rate(rate: str) -> str:
    if rate not in RATES:
        raise SamplingError(f"unknown rate '{rate}'; allowed: {list(RATES)}")
    return rate


def frame_step(speed: int, fps: float, *, rate: Rate = "fixed", base_fps: float = 25.0) -> float:
    """Frames advanced per clip frame at this speed: `speed * fps / base_fps` or `speed`."""
    if rate == "native":
        return float(speed)
    if not fps > 0:
        raise SamplingError(f"fps is {fps}: a fixed playback rate needs the video's fps (re-index it, or use rate='native')")
    return speed * fps / base_fps


def clip_offsets(speed: int, clip_len: int, fps: float, *, rate: Rate = "fixed", base_fps: float = 25.0) -> np.ndarray:
    """(T,) int64 frame offsets of a clip from its first frame: `round(k * step)`."""
    step = frame_step(speed, fps, rate=rate, base_fps=base_fps)
    # np.rint rounds half to even; floor(x + 0.5) is the round() a reader expects
    return np.floor(np.arange(clip_len) * step + 0.5).astype(np.int64)


def window_len(speed: int, clip_len: int, fps: float, *, rate: Rate = "fixed", base_fps: float = 25.0) -> int:
    """Frames spanned by one clip at this speed (first to last, inclusive)."""
    return int(clip_offsets(speed, clip_len, fps, rate=rate, base_fps=base_fps)[-1]) + 1


@dataclass(frozen=True)
class PairSample:
    """One video's pair: clip a and clip b, each (T,) int64 frame indices into the video."""

    video_index: int
    speed_a: int
    speed_b: int
    frames_a: np.ndarray
    frames_b: np.ndarray

    @property
    def frames(self) -> np.ndarray:
        """(2T,) both clips' indices, a then b: what one decode call of the pair asks for."""
        return np.concatenate([self.frames_a, self.frames_b])


def _clip(rng: np.random.Generator, num_frames: int, offsets: np.ndarray) -> np.ndarray:
    span = int(offsets[-1]) + 1
    start = int(rng.integers(0, num_frames - span + 1)) if span <= num_frames else 0
    return np.minimum(start + offsets, num_frames - 1)  # edge padding where the window overflows


def sample_pair(
    video_index: int,
    num_frames: int,
    fps: float,
    *,
    seed: int,
    epoch: int,
    clip_len: int = 16,
    speeds: Sequence[int] = (1, 2, 4, 8),
    rate: Rate = "fixed",
    base_fps: float = 25.0,
    name: str = "",
) -> PairSample:
    """Two clips of one video at two different speeds, each at its own random start.

    Deterministic in (seed, epoch, video_index). `name` only labels errors.
    """
    speeds = check_speeds(speeds)
    check_rate(rate)
    if num_frames < clip_len:
        raise SamplingError(
            f"video {name or video_index} has {num_frames} frames, fewer than one clip of {clip_len}: "
            f"re-index with 'ascnet-index build --min-frames {clip_len}' (it marks such videos too_short) or lower clip_len"
        )
    offsets = {s: clip_offsets(s, clip_len, fps, rate=rate, base_fps=base_fps) for s in speeds}
    fitting = [s for s in speeds if offsets[s][-1] < num_frames]
    candidates = fitting if len(fitting) >= 2 else list(speeds[:2])
    rng = np.random.default_rng([seed, epoch, video_index])
    sa, sb = (int(s) for s in rng.choice(candidates, size=2, replace=False))
    fa = _clip(rng, num_frames, offsets[sa])
    fb = _clip(rng, num_frames, offsets[sb])
    return PairSample(video_index, sa, sb, fa, fb)


def eval_clips(num_frames: int, clip_len: int = 16, num_clips: int = 10) -> np.ndarray:
    """(N, T) int64 frame indices of N evenly spaced speed-1 clips, first to last window.

    A video shorter than a clip repeats its last frame (edge padding).
    """
    if num_frames < 1:
        raise SamplingError(f"a video with {num_frames} frames has no clip to evaluate")
    last_start = max(num_frames - clip_len, 0)
    starts = np.floor(np.linspace(0, last_start, num_clips) + 0.5).astype(np.int64)
    return np.minimum(starts[:, None] + np.arange(clip_len)[None, :], num_frames - 1)


def epoch_order(num_videos: int, *, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """(num_videos,) the epoch's visiting order of video indices."""
    if not shuffle:
        return np.arange(num_videos, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(num_videos).astype(np.int64)


def steps_per_epoch(num_videos: int, batch_size: int, num_shards: int = 1) -> int:
    """Full batches per shard and epoch (drop_last, equal on every shard so DDP ranks step together)."""
    return num_videos // (batch_size * num_shards)


def shard_plan(
    num_videos: int, *, seed: int, epoch: int, batch_size: int, shard_id: int = 0, num_shards: int = 1, shuffle: bool = True
) -> np.ndarray:
    """(steps, B) video indices this shard visits in this epoch, batch by batch.

    Shards take interleaved slices of one shared order: disjoint, and together they cover
    all videos but the `num_videos % (B * num_shards)` that drop_last leaves out (a different
    remainder each epoch, since the order is reshuffled).
    """
    if not 0 <= shard_id < num_shards:
        raise SamplingError(f"shard_id {shard_id} is not in [0, num_shards={num_shards})")
    if batch_size < 1:
        raise SamplingError(f"batch_size must be >= 1, got {batch_size}")
    steps = steps_per_epoch(num_videos, batch_size, num_shards)
    order = epoch_order(num_videos, seed=seed, epoch=epoch, shuffle=shuffle)
    mine = order[: steps * batch_size * num_shards][shard_id::num_shards]
    return mine.reshape(steps, batch_size)
