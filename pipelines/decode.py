"""Decoding: PyAV's forward reader, the swscale cut of the pyav workers, and the
`fn.external_source` callables that hand DALI a schedule's samples (decoded clips from PyAV
worker processes, or a file's bytes and frame indices for DALI's own decoders).

Sources are module-level classes so DALI can send them to worker processes.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ascnet.clips import apply_colour, center_box, pixel_box, short_side_size
from ascnet.pipelines.schedules import MAX_STAND_INS, first_usable, place_holder


class DecodeError(RuntimeError):
    """A video that failed to decode at run time; the message names the file and the frames."""


# ---- decoding with PyAV ------------------------------------------------------------------
def _window(frames: np.ndarray) -> str:
    return f"{int(frames.min())}..{int(frames.max())}"


def key_before(index: int, keyframes: np.ndarray) -> int:
    """The last keyframe at or before `index` (0 when the table is empty)."""
    if len(keyframes) == 0:
        return 0
    return int(keyframes[max(np.searchsorted(keyframes, index, side="right") - 1, 0)])


@functools.lru_cache(maxsize=256)
def packet_table(file: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(the presentation time of every frame in decode order, whether its packet is a keyframe), read
    from the container's packets without decoding; None where that cannot stand for the frames (a
    packet without a time, two frames with the same time). `mtime_ns` keys the cache."""
    import av

    try:
        with av.open(file, metadata_errors="ignore") as c:
            stream = c.streams.video[0]
            packets = [(p.pts, p.is_keyframe) for p in c.demux(stream) if p.size and not p.is_discard]
    except Exception:  # the reader's own open names the failure
        return None
    if not packets or any(pts is None for pts, _ in packets):
        return None
    packets.sort()
    pts = np.array([p for p, _ in packets], np.int64)
    if (np.diff(pts) == 0).any():
        return None
    return pts, np.array([k for _, k in packets], bool)


class FrameReader:
    """One open video, read forward; `read(frames)` returns the frames at those indices.

    Indices count frames in the order the decoder returns them, from 0, the way the indexer
    counted them. With the file's keyframe table (the manifest's `keyframes`), the reader
    jumps to the keyframe before a wanted frame whenever that skips frames, and reads on
    otherwise; so a pair whose clips lie apart costs two short runs, not one long one, and a
    reader kept open serves the next request from where it stopped.

    Exactness: a jump goes to the keyframe's own timestamp, taken from the container's packets
    (`packet_table`, read once per file, no decoding), and the frame it lands on is named by
    looking its timestamp up in that table, never by timestamp x fps; each frame after it must
    carry the next time of the table. So a missing timestamp slot, a variable rate, a first
    timestamp that is not 0 or an edit list cannot shift the frames. Where the packets do not
    match the frames the indexer counted (their keyframes differ from the table), or a frame
    disagrees after a jump (e.g. HMDB-51's DivX .avi files, whose packets carry several frames),
    the reader counts from frame 0 instead, and stops jumping in this file.
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
        self.can_jump = len(self.keys) > 1
        self.times: np.ndarray | None = None  # each frame's presentation time, once a jump needs them
        self.frames, self.pos, self.checked = None, 0, False  # pos: the index the decoder returns next
        self.landed = -1  # the keyframe of the last jump: never jumped to twice for one frame

    def read(self, frames) -> dict:
        """{index: av.VideoFrame} for the distinct indices in `frames`."""
        wanted = sorted(set(int(f) for f in frames))
        got = {}
        try:
            while len(got) < len(wanted):
                t = wanted[len(got)]
                if self.frames is None or t < self.pos or self._worth_a_jump(t):
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
        except Exception as e:
            self.frames = None  # a decoder that raised is spent: the next read starts afresh
            if isinstance(e, DecodeError):
                raise
            raise DecodeError(f"{self.file}: cannot decode frames {_window(np.asarray(wanted))}: {type(e).__name__}: {e}") from e
        missing = [f for f in wanted if f not in got]
        if missing:
            self.frames = None
            raise DecodeError(
                f"{self.file}: frames {_window(np.asarray(wanted))} requested, but frame {missing[0]} is not in the file "
                f"(it ended or is damaged); re-index it (ascnet-index build) so the manifest matches the file")
        return got

    def _worth_a_jump(self, t: int) -> bool:
        if not self.can_jump:
            return False
        key = key_before(t, self.keys)
        return key > self.pos and key != self.landed

    def _table(self) -> bool:
        """Whether the packets' times can name the frames: their keyframes are the indexer's."""
        if self.times is None:
            try:
                table = packet_table(self.file, os.stat(self.file).st_mtime_ns)
            except OSError:
                table = None
            ok = table is not None and self.keys[-1] < len(table[0]) and table[1][self.keys].all()
            self.times = table[0] if ok else np.zeros(0, np.int64)
        return len(self.times) > 0

    def _jump(self, t: int) -> None:
        """To the keyframe before frame t (trusted once its time is found in the table), or to frame 0."""
        key = key_before(t, self.keys) if self.can_jump else 0
        if key > 0 and not self._table():
            self.can_jump, key = False, 0
        if key > 0:
            self.container.seek(int(self.times[key]), stream=self.stream, backward=True, any_frame=False)
            self.pos, self.checked, self.landed = None, True, key
        else:
            if self.frames is not None or self.decoded:
                self.container.seek(0)
            self.pos, self.checked, self.landed = 0, False, -1
        self.frames = self.container.decode(self.stream)

    def _trust(self, frame, t: int) -> bool:
        """After a jump: the landing frame's time is in the table at or before t, and each frame after
        it carries the table's next time."""
        if frame.pts is None:
            return False
        if self.pos is None:
            idx = int(np.searchsorted(self.times, frame.pts))
            if idx > t or idx >= len(self.times) or self.times[idx] != frame.pts:
                return False
            self.pos = idx
        return self.pos < len(self.times) and self.times[self.pos] == frame.pts

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


def decode_frames(file: str, frames: np.ndarray, fps: float, keyframes=(), rotation: int = 0) -> np.ndarray:
    """(len(frames), H, W, 3) uint8 RGB: the frames at these indices, in this order (repeats allowed),
    upright: turned `rotation` degrees counter-clockwise (the manifest's `rotation`)."""
    got, _ = read_frames(file, frames, fps, keyframes)
    return np.stack([np.rot90(got[int(f)].to_ndarray(format="rgb24"), rotation // 90) for f in frames])


# ---- what the pyav workers hand to DALI: clips cut and scaled by swscale --------------------
@dataclass(frozen=True)
class Cut:
    """How the pyav workers turn decoded frames into the clips DALI receives.

    mode "augment": each clip's crop box (ascnet.clips.PARAMS) scaled to size x size, and its colour
    jitter applied (`ascnet.clips.apply_colour`), in the worker; DALI then flips and normalises.
    mode "center": short side scaled to `size`, centre crop (the un-augmented view).
    mode "short": short side scaled to `size`, nothing cut (evaluation crops are cut in DALI).
    One swscale filter graph per clip turns the frames upright (a display rotation), crops, scales
    (bilinear) and converts to RGB (`_graph` says in which order), so DALI never resizes on the CPU,
    its costliest step there.
    """

    mode: str
    size: int


# a display rotation (degrees counter-clockwise) -> the filters that show the frame upright
TURN = {0: [], 90: [("transpose", "cclock")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "clock")]}


def _graph(frame, box: tuple[int, int, int, int] | None, out_w: int, out_h: int, rotation: int = 0):
    """turn upright -> crop -> scale -> RGB; `box` is on the upright frame. Scaled in YUV (chroma at half resolution) only when the output is at most half
    the box, so that the chroma plane still has every output pixel; otherwise converted to RGB first, as a
    decoder that hands DALI RGB frames would (on small frames the YUV shortcut smears small coloured
    objects: 1.8 levels off on average on the demo's 32x32 videos, against 0.05 converting first)."""
    import av.filter

    w, h = (box[2], box[3]) if box is not None else _shown(frame, rotation)
    g = av.filter.Graph()
    chain = [g.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=Fraction(1, 25))]
    chain += [g.add(name, args) for name, args in TURN[rotation]]
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


def _shown(frame, rotation: int) -> tuple[int, int]:
    """(w, h) of the frame upright."""
    return (frame.height, frame.width) if (rotation // 90) % 2 else (frame.width, frame.height)


def cut_clip(frames: list, cut: Cut, params: np.ndarray | None, rotation: int = 0) -> np.ndarray:
    """(T, S, S, 3) uint8 (modes augment/center) or (T, h, w, 3) (short) from T av.VideoFrames, upright
    (turned `rotation` degrees counter-clockwise: the manifest's `rotation`)."""

    w, h = _shown(frames[0], rotation)
    if cut.mode == "short":
        ow, oh = short_side_size(w, h, cut.size)
        return _run_graph(_graph(frames[0], None, ow, oh, rotation), frames)
    box = pixel_box(params, h, w) if cut.mode == "augment" else center_box(h, w)
    clip = _run_graph(_graph(frames[0], box, cut.size, cut.size, rotation), frames)
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
    benchmarking). `rotations`: each video's display rotation (the decode table's), applied in the cut.
    """

    def __init__(self, schedule, files: list[str], fps: np.ndarray, keyframes: list, cut: Cut, *,
                 with_aug: bool = True, split_pair: bool = False, skip_errors: bool = False, threads: int = 1,
                 exclude: frozenset = frozenset(), keep_open: bool = False, rotations=None):
        self.schedule, self.files, self.fps, self.keyframes, self.cut = schedule, files, fps, keyframes, cut
        self.with_aug, self.split_pair, self.skip_errors, self.threads = with_aug, split_pair, skip_errors, threads
        self.exclude, self.keep_open = exclude, keep_open
        self.rotations = np.zeros(len(files), np.int64) if rotations is None else np.asarray(rotations, np.int64)
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
            except DecodeError:
                if reader is self._open:  # closed below: the video's next clip opens it afresh
                    self._open = None
                raise
            finally:
                if reader is not self._open:
                    reader.close()
            decoded = reader.decoded - before
        aug = req.aug if req.aug is not None else [None] * len(clips)
        turn = int(self.rotations[vi])
        return np.concatenate([cut_clip([g[int(f)] for f in c], self.cut, a, turn) for g, c, a in zip(got, clips, aug)]), decoded

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
    in `exclude` (known bad), or a window in `failed` ((epoch, step, row, video): one the decoder lost
    at this very place before), gives way to the schedule's next candidate. A sample with no usable
    candidate decodes a place holder (`schedules.place_holder`) that the loader drops.
    distinct=False sends the request's indices as they are (a benchmark of what that costs).
    """

    def __init__(self, schedule, files: list[str], *, with_aug: bool = True, distinct: bool = True,
                 exclude: frozenset = frozenset(), failed: frozenset = frozenset()):
        self.schedule, self.files, self.with_aug, self.distinct = schedule, files, with_aug, distinct
        self.exclude, self.failed = exclude, failed

    def __call__(self, info):
        req, _ = first_usable(self.schedule, info.idx_in_epoch, self.exclude, self.failed)
        if req is None:
            req = place_holder(self.schedule, info.idx_in_epoch, self.exclude, self.failed)
        if req is None:
            raise DecodeError(f"sample {info.idx_in_epoch}: no video of the split is left to decode")
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
