"""What each pipeline sample is, and the `fn.external_source` callables that provide it.

A *schedule* maps a global sample number (0, 1, 2, ... since the pipeline was built) to one
request: which video, which frame indices (from `ascnet.sampling`). The pipeline's source
callable and the loader's bookkeeping read the same schedule, so the batch metadata (speeds,
video indices) never travels through DALI and always matches the frames.

Sources are module-level classes so DALI can send them to worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ascnet.pipelines.augment import CROP_SCALE, FLIP_P, IDENTITY, sample_augment
from ascnet.sampling import eval_clips, sample_pair, shard_plan, steps_per_epoch


class DecodeError(RuntimeError):
    """A video that failed to decode at run time; the message names the file and the frames."""


MAX_STAND_INS = 4  # videos tried for one training sample (its own, then stand-ins) before it is dropped


def first_usable(schedule, g: int, exclude) -> tuple["Request | None", list[int]]:
    """(the first of sample g's candidates whose video is not in `exclude` or None, the videos passed over)."""
    passed = []
    for req in schedule.candidates(g):
        if req.video_index not in exclude:
            return req, passed
        passed.append(req.video_index)
    return None, passed


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

    def candidates(self, g: int):
        """Evaluation has no stand-ins: a test set is complete or says what it lacks."""
        return iter([self.request(g)])  # called, not yielded: StopIteration ends DALI's epoch


# ---- decoding with PyAV ------------------------------------------------------------------
def _window(frames: np.ndarray) -> str:
    return f"{int(frames.min())}..{int(frames.max())}"


def key_before(index: int, keyframes: np.ndarray) -> int:
    """The last keyframe at or before `index` (0 when the table is empty)."""
    if len(keyframes) == 0:
        return 0
    return int(keyframes[max(np.searchsorted(keyframes, index, side="right") - 1, 0)])


class FrameReader:
    """One open video, read forward; `read(frames)` returns the frames at those indices.

    Indices count frames in the order the decoder returns them, from 0, the way the indexer
    counted them. With the file's keyframe table (the manifest's `keyframes`), the reader
    jumps to the keyframe before a wanted frame whenever that skips frames, and reads on
    otherwise; so a pair whose clips lie apart costs two short runs, not one long one, and a
    reader kept open serves the next request from where it stopped. A jump is trusted only when
    the frame it lands on is a keyframe of the table and the timestamps that follow step one
    frame at a time; otherwise (e.g. HMDB-51's DivX .avi files, whose timestamps are out of
    order) the reader goes back to frame 0 and counts, and stops jumping in this file.
    """

    def __init__(self, file: str, fps: float, keyframes=(), *, threads: int = 1):
        import av

        self.file, self.decoded = file, 0  # frames decoded since the reader was opened
        self.keys = np.asarray(keyframes, dtype=np.int64)
        try:
            self.container = av.open(file, metadata_errors="ignore")
            self.stream = self.container.streams.video[0]
        except Exception as e:  # PyAV raises many types (InvalidDataError, OSError, ...)
            raise DecodeError(f"{file}: cannot open it: {type(e).__name__}: {e}") from e
        self.stream.codec_context.thread_count = threads
        self.t0 = self.stream.start_time or 0
        self.scale = float(self.stream.time_base) * fps if fps > 0 and self.stream.time_base else 0.0
        self.can_jump = len(self.keys) > 1 and self.scale > 0
        self.frames, self.pos, self.checked = None, 0, False  # pos: the index the decoder returns next

    def read(self, frames) -> dict:
        """{index: av.VideoFrame} for the distinct indices in `frames`."""
        wanted = sorted(set(int(f) for f in frames))
        got = {}
        try:
            while len(got) < len(wanted):
                t = wanted[len(got)]
                if self.frames is None or t < self.pos or (self.can_jump and key_before(t, self.keys) > self.pos):
                    self._jump(t)
                frame = next(self.frames, None)
                if frame is None:
                    break  # the stream ended; the missing frame is named below
                self.decoded += 1
                if self.checked and not self._trust(frame, t):
                    self.can_jump = False  # count from frame 0 instead, in this file from now on
                    self._jump(t)
                    continue
                if self.pos == t:
                    got[t] = frame
                self.pos += 1
        except DecodeError:
            raise
        except Exception as e:
            raise DecodeError(f"{self.file}: cannot decode frames {_window(np.asarray(wanted))}: {type(e).__name__}: {e}") from e
        missing = [f for f in wanted if f not in got]
        if missing:
            raise DecodeError(
                f"{self.file}: frames {_window(np.asarray(wanted))} requested, but frame {missing[0]} is not in the file "
                f"(it ended or is damaged); re-index it (ascnet-index build) so the manifest matches the file")
        return got

    def _jump(self, t: int) -> None:
        """To the keyframe before frame t (trusted only once its timestamps agree), or to frame 0."""
        key = key_before(t, self.keys) if self.can_jump else 0
        if key > 0:
            self.container.seek(self.t0 + int(round(key / self.scale)), stream=self.stream, backward=True, any_frame=False)
            self.pos, self.checked = None, True
        else:
            if self.frames is not None:
                self.container.seek(0)
            self.pos, self.checked = 0, False
        self.frames = self.container.decode(self.stream)

    def _trust(self, frame, t: int) -> bool:
        """After a jump: the landing frame is a keyframe of the table at or before t, and each frame's
        timestamp says the index the count says."""
        idx = int(np.floor((frame.pts - self.t0) * self.scale + 0.5)) if frame.pts is not None else -1
        if self.pos is None:
            if not (frame.key_frame and idx <= t and idx in self.keys):
                return False
            self.pos = idx
        return idx == self.pos

    def close(self) -> None:
        self.container.close()


def read_frames(file: str, frames, fps: float, keyframes=(), *, threads: int = 1) -> tuple[dict, int]:
    """({index: av.VideoFrame} for the distinct indices in `frames`, frames decoded to get them): one
    `FrameReader`, opened and closed."""
    reader = FrameReader(file, fps, keyframes, threads=threads)
    try:
        return reader.read(frames), reader.decoded
    finally:
        reader.close()


def decode_frames(file: str, frames: np.ndarray, fps: float, keyframes=()) -> np.ndarray:
    """(len(frames), H, W, 3) uint8 RGB: the frames at these indices, in this order (repeats allowed)."""
    got, _ = read_frames(file, frames, fps, keyframes)
    return np.stack([got[int(f)].to_ndarray(format="rgb24") for f in frames])


# ---- what the pyav workers hand to DALI: clips cut and scaled by swscale --------------------
@dataclass(frozen=True)
class Cut:
    """How the pyav workers turn decoded frames into the clips DALI receives.

    mode "augment": each clip's crop box (augment.PARAMS) scaled to size x size, and its colour
    jitter applied (`augment.apply_colour`), in the worker; DALI then flips and normalises.
    mode "center": short side scaled to `size`, centre crop (the un-augmented view).
    mode "short": short side scaled to `size`, nothing cut (evaluation crops are cut in DALI).
    One swscale filter graph per clip crops, scales (bilinear) and converts to RGB (`_graph`
    says in which order), so DALI never resizes on the CPU, its costliest step there.
    """

    mode: str
    size: int


def _graph(frame, box: tuple[int, int, int, int] | None, out_w: int, out_h: int):
    """crop -> scale -> RGB. Scaled in YUV (chroma at half resolution) only when the output is at most half
    the box, so that the chroma plane still has every output pixel; otherwise converted to RGB first, as a
    decoder that hands DALI RGB frames would (on small frames the YUV shortcut smears small coloured
    objects: 1.8 levels off on average on the demo's 32x32 videos, against 0.05 converting first)."""
    import av.filter

    w, h = (box[2], box[3]) if box is not None else (frame.width, frame.height)
    g = av.filter.Graph()
    chain = [g.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=Fraction(1, 25))]
    if w < 2 * out_w or h < 2 * out_h:
        chain.append(g.add("format", "rgb24"))
    if box is not None:
        x, y, bw, bh = box
        chain.append(g.add("crop", f"w={bw}:h={bh}:x={x}:y={y}:exact=1"))
    chain += [g.add("scale", f"{out_w}:{out_h}:flags=bilinear"), g.add("format", "rgb24"), g.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    g.configure()
    return g


def _run_graph(graph, frames) -> np.ndarray:
    out = []
    for k, f in enumerate(frames):
        f.pts = k
        graph.push(f)
        out.append(graph.pull().to_ndarray())
    return np.stack(out)


def cut_clip(frames: list, cut: Cut, params: np.ndarray | None) -> np.ndarray:
    """(T, S, S, 3) uint8 (modes augment/center) or (T, h, w, 3) (short) from T av.VideoFrames."""
    from ascnet.pipelines.augment import apply_colour, center_box, pixel_box, short_side_size

    h, w = frames[0].height, frames[0].width
    if cut.mode == "short":
        ow, oh = short_side_size(w, h, cut.size)
        return _run_graph(_graph(frames[0], None, ow, oh), frames)
    box = pixel_box(params, h, w) if cut.mode == "augment" else center_box(h, w)
    clip = _run_graph(_graph(frames[0], box, cut.size, cut.size), frames)
    return apply_colour(clip, params) if cut.mode == "augment" else clip


# ---- external-source callables -----------------------------------------------------------
MESSAGE_BYTES = 240  # per failed video, the start of its DecodeError message


class PyAVSource:
    """Sample mode, run in worker processes: (clips (k*T, S, S, 3) uint8, [aug (k, 9),] info int32, messages uint8).

    info: [frames decoded, video index, speed per clip (k), videos that failed (n), their indices
    (MAX_STAND_INS, -1 padded)]; messages: (MAX_STAND_INS, MESSAGE_BYTES) the start of each failure's
    message, utf-8, zero padded (empty for a video in `exclude`, known bad). Without `skip_errors` a
    DecodeError propagates and names the file. With it, a video that fails or is excluded gives way
    to the schedule's next candidate (`candidates`), so training batches stay full and a resumed
    run is the same; a sample with no usable candidate comes out with 0 frames decoded, and the
    loader drops it. `split_pair=True` decodes each clip with its own reader, as the peers do (for
    benchmarking).
    """

    def __init__(self, schedule, files: list[str], fps: np.ndarray, keyframes: list, cut: Cut, *,
                 with_aug: bool = True, split_pair: bool = False, skip_errors: bool = False, threads: int = 1,
                 exclude: frozenset = frozenset(), keep_open: bool = False):
        self.schedule, self.files, self.fps, self.keyframes, self.cut = schedule, files, fps, keyframes, cut
        self.with_aug, self.split_pair, self.skip_errors, self.threads = with_aug, split_pair, skip_errors, threads
        self.exclude, self.keep_open = exclude, keep_open
        self._open: FrameReader | None = None  # keep_open: the last video, for the next clip of it (evaluation)

    def _reader(self, vi: int) -> FrameReader:
        if self._open is not None and self._open.file == self.files[vi]:
            return self._open
        if self._open is not None:
            self._open.close()
            self._open = None
        reader = FrameReader(self.files[vi], float(self.fps[vi]), self.keyframes[vi], threads=self.threads)
        if self.keep_open:
            self._open = reader
        return reader

    def _decode(self, req) -> tuple[np.ndarray, int]:
        vi = req.video_index
        clips = np.split(req.frames, len(req.speeds))
        if self.split_pair:
            reads = [read_frames(self.files[vi], c, float(self.fps[vi]), self.keyframes[vi], threads=self.threads)
                     for c in clips]
            got, decoded = [r[0] for r in reads], sum(r[1] for r in reads)
        else:
            reader = self._reader(vi)
            before = reader.decoded
            try:
                got = [reader.read(req.frames)] * len(clips)
            finally:
                if reader is not self._open:
                    reader.close()
            decoded = reader.decoded - before
        aug = req.aug if req.aug is not None else [None] * len(clips)
        return np.concatenate([cut_clip([g[int(f)] for f in c], self.cut, a) for g, c, a in zip(got, clips, aug)]), decoded

    def __call__(self, info):
        failed, messages = [], np.zeros((MAX_STAND_INS, MESSAGE_BYTES), np.uint8)
        out, decoded = None, 0
        for req in self.schedule.candidates(info.idx_in_epoch):
            if req.video_index in self.exclude:
                failed.append(req.video_index)
                continue
            try:
                out, decoded = self._decode(req)
                break
            except DecodeError as e:
                if not self.skip_errors:
                    raise
                text = str(e).encode()[:MESSAGE_BYTES]
                messages[len(failed), :len(text)] = np.frombuffer(text, np.uint8)
                failed.append(req.video_index)
        if out is None:
            out = np.zeros((len(req.frames), self.cut.size, self.cut.size, 3), np.uint8)
        k = len(req.speeds)
        meta = np.full(3 + k + MAX_STAND_INS, -1, np.int32)
        meta[:3 + k] = [decoded, req.video_index, *req.speeds, len(failed)]
        meta[3 + k:3 + k + len(failed)] = failed
        return (out, req.aug, meta, messages) if self.with_aug else (out, meta, messages)


class BytesSource:
    """Sample mode: (encoded file bytes uint8, distinct frame indices int32 increasing, order int32, [aug (k, 9)]).

    `order` rebuilds the request's frames from the distinct ones: frames == distinct[order]. A video
    in `exclude` (it failed to decode before) gives way to the schedule's next candidate.
    distinct=False sends the request's indices as they are (a benchmark of what that costs).
    """

    def __init__(self, schedule, files: list[str], *, with_aug: bool = True, distinct: bool = True,
                 exclude: frozenset = frozenset()):
        self.schedule, self.files, self.with_aug, self.distinct = schedule, files, with_aug, distinct
        self.exclude = exclude

    def __call__(self, info):
        req, _ = first_usable(self.schedule, info.idx_in_epoch, self.exclude)
        if req is None:
            raise DecodeError(f"sample {info.idx_in_epoch}: every candidate video failed to decode earlier in this run")
        file = self.files[req.video_index]
        try:
            data = np.fromfile(file, dtype=np.uint8)
        except OSError as e:
            raise DecodeError(f"{file}: cannot read it ({e}); re-index the dataset (ascnet-index build)") from e
        if self.distinct:
            distinct, order = np.unique(req.frames, return_inverse=True)
        else:
            distinct, order = req.frames, np.arange(len(req.frames))
        out = (data, distinct.astype(np.int32), order.astype(np.int32))
        return (*out, req.aug) if self.with_aug else out
