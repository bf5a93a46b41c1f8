"""What each pipeline sample is: a *schedule* maps a global sample number (0, 1, 2, ... since
the pipeline was built) to one request: which video, which frame indices (`ascnet.sampling`),
which augmentation. The pipeline's source callable (`decode.py`) and the loader's bookkeeping
read the same schedule, so the batch metadata (speeds, video indices) never travels through
DALI and always matches the frames. Numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ascnet.clips import IDENTITY, ClipSpec, sample_augment
from ascnet.sampling import eval_clips, sample_pair, shard_plan, steps_per_epoch

MAX_STAND_INS = 4  # videos tried for one training sample (its own, then stand-ins) before it is dropped


def first_usable(schedule, g: int, exclude, failed=frozenset()) -> tuple["Request | None", list[int]]:
    """(the first of sample g's candidates whose video is not in `exclude` and whose window is not in
    `failed` (epoch, step, row, video: a window a DALI decoder lost), or None; the videos passed over)."""
    where = schedule.where(g) if failed else ()
    passed = []
    for req in schedule.candidates(g):
        if req.video_index not in exclude and (*where, req.video_index) not in failed:
            return req, passed
        passed.append(req.video_index)
    return None, passed


def place_holder(schedule, g: int, exclude, failed=frozenset()) -> "Request | None":
    """For a sample none of whose candidates is usable: frame 0 (repeated) of the first video that is,
    so that the DALI decoders have something to decode; the loader drops the sample (the batch shrinks)."""
    last = list(schedule.candidates(g))[-1]
    where = schedule.where(g) if failed else ()
    for vi in range(len(schedule.num_frames)):
        if vi not in exclude and (*where, vi) not in failed:
            return Request(vi, np.zeros_like(last.frames), last.speeds, aug=last.aug)
    return None


@dataclass(frozen=True)
class Request:
    video_index: int
    frames: np.ndarray          # (k*T,) int64, clip after clip
    speeds: tuple[int, ...]     # one per clip
    clip_index: int = 0
    aug: np.ndarray | None = None  # (k, 9) float32 per-clip augmentation (ascnet.clips.PARAMS)


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
    clip: ClipSpec = ClipSpec()
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

    def where(self, g: int) -> tuple[int, int, int]:
        """(epoch, step, row) of sample g."""
        batch, row = divmod(g, self.batch_size)
        return (*self.position(batch), row)

    def request(self, g: int) -> Request:
        batch, row = divmod(g, self.batch_size)
        epoch, step = self.position(batch)
        return self.video_request(int(self.plan(epoch)[step, row]), epoch)

    def candidates(self, g: int):
        """Sample g's request, then its stand-ins for when a video cannot be decoded (MAX_STAND_INS in all):
        videos drawn from (seed, epoch, step, row, attempt) alone, so a resumed run draws the same ones."""
        batch, row = divmod(g, self.batch_size)
        epoch, step = self.position(batch)
        yield self.video_request(int(self.plan(epoch)[step, row]), epoch)
        for attempt in range(1, MAX_STAND_INS):
            rng = np.random.default_rng([self.seed, epoch, step, row, self.shard_id, attempt, 2])
            yield self.video_request(int(rng.integers(len(self.num_frames))), epoch)

    def video_request(self, vi: int, epoch: int) -> Request:
        """What video `vi` contributes in `epoch`: its pair (or clip) and their augmentation."""
        n, fps = int(self.num_frames[vi]), float(self.fps[vi])
        # the augmentation draws from its own stream, so it never shifts the frames drawn
        rng = np.random.default_rng([self.seed, epoch, vi, 1])
        c = self.clip
        aug = np.stack([sample_augment(rng, *self.sizes[vi], c.crop_scale, c.flip_p) for _ in range(self.clips)])
        if self.clips == 2:
            p = sample_pair(vi, n, fps, seed=self.seed, epoch=epoch, clip_len=c.clip_len, speeds=c.speeds,
                            rate=c.rate, base_fps=c.base_fps, name=self.names[vi])
            return Request(vi, p.frames, (p.speed_a, p.speed_b), aug=aug)
        start = int(np.random.default_rng([self.seed, epoch, vi]).integers(0, max(n - c.clip_len, 0) + 1))
        return Request(vi, np.minimum(start + np.arange(c.clip_len), n - 1), (1,), aug=aug)


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

    def candidates(self, g: int):
        """Evaluation has no stand-ins: a test set is complete or says what it lacks."""
        return iter([self.request(g)])  # called, not yielded: StopIteration ends DALI's epoch
