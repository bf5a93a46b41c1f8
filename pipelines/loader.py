"""Manifest -> DALI pipeline -> dicts of torch tensors: the loaders training and evaluation use.

    loader = build_pair_loader(Manifest.from_parquet("ucf101.parquet"), ClipSpec(), batch_size=8)
    for epoch in range(epochs):
        for batch in loader.epoch(epoch):      # batch["clip_a"]: (B, 3, T, H, W) float32
            ...
    loader.close()

Every batch is copied out of DALI into a fresh torch tensor (CUDA on the GPU path, straight
from device memory), so a batch stays valid after the next one is drawn.

Determinism: a batch is a function of (seed, epoch, step, shard) only. The frames come from
`ascnet.sampling`, the augmentation decisions from `ascnet.clips.sample_augment`, both seeded by
(seed, epoch, video). `epoch(e, start_step=s)` starts at batch s without decoding the ones
before it and yields exactly what running through would have.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable, Iterator, Literal

import numpy as np
import torch

from ascnet.manifest import Manifest, ManifestError
from ascnet.optional import require_dali
from ascnet.clips import CROPS_PER_CLIP, ClipSpec, eval_short_side
from ascnet.pipelines.backends import BackendError, choose_backend
from ascnet.pipelines.decode import BytesSource, Cut, DecodeError, PyAVSource, decode_frames
from ascnet.pipelines.schedules import EvalSchedule, TrainSchedule, first_usable, place_holder
from ascnet.sampling import SamplingError, steps_per_epoch

log = logging.getLogger("ascnet.pipelines")

ON_ERROR = ("raise", "skip")

__all__ = ["build_pair_loader", "build_clip_loader", "build_eval_loader", "TrainLoader", "EvalLoader", "DecodeError"]


# ---- shared plumbing ---------------------------------------------------------------------
def _videos(manifest: Manifest, split: str):
    """The split's `status == ok` rows as a decode table; checks that their files exist."""
    sel = manifest.select(split, status="ok")
    if len(sel) == 0:
        raise ManifestError(f"the manifest has no videos with status 'ok' in split '{split}'")
    table = sel.decode_table()
    missing = [f for f in table["file"] if not os.path.exists(f)]
    if missing:
        raise ManifestError(
            f"{len(missing)} video file(s) of split '{split}' are missing (deleted or moved after indexing), "
            f"e.g. {missing[0]}: restore them or rebuild the manifest (ascnet-index build)"
        )
    return table


def _check_upright(table, backend: str) -> None:
    """The DALI decoders do not read a display matrix: a rotated video needs its upright copy."""
    turned = table[table["rotation"] != 0]
    if backend != "pyav" and len(turned):
        raise BackendError(
            f"{len(turned)} video(s) carry a display rotation that backend '{backend}' does not apply (their frames would "
            f"come out sideways), e.g. {turned['file'].iat[0]} ({turned['rotation'].iat[0]} degrees): re-index with "
            "--transcode (ascnet-index build; the copies are upright), or use backend='pyav'")


def output_device(out) -> str:
    """Where DALI produced a batch: "cuda" for a GPU TensorList, else "cpu" (the pyav `decoded` count
    stays on the CPU even when the clips go to the GPU)."""
    from nvidia.dali.tensors import TensorListGPU

    return "cuda" if isinstance(out, TensorListGPU) else "cpu"


def _to_torch(out) -> torch.Tensor:
    """A dense DALI batch as a new torch tensor on the device DALI produced it on (a copy: DALI reuses its buffers)."""
    from nvidia.dali.plugin.pytorch.torch_utils import feed_ndarray, to_torch_type

    device = output_device(out)
    t = out.as_tensor()
    arr = torch.empty(t.shape(), dtype=to_torch_type[t.dtype], device=device)
    stream = torch.cuda.current_stream() if device == "cuda" else None
    return feed_ndarray(t, arr, cuda_stream=stream)


def default_num_threads() -> int:
    """DALI's own threads (its CPU operators; the mixed decoder's per-sample decoding): the visible CPUs, up to 16."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 16))


def _pipeline_kwargs(batch_size: int, backend: str, device: str, workers: int, num_threads: int | None, seed: int) -> dict:
    """Every backend's source runs in `workers` processes (pyav decodes there; the DALI decoders' sources read
    the files' bytes there, off the training loop's thread)."""
    # fork is fast but unsafe once CUDA is initialised in this process
    start = "spawn" if torch.cuda.is_initialized() else "fork"
    return dict(batch_size=batch_size, num_threads=num_threads or default_num_threads(), seed=seed,
                device_id=torch.cuda.current_device() if device == "cuda" else None,
                py_num_workers=max(1, workers), py_start_method=start)


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} '{value}'; allowed: {list(allowed)}")


class _DaliRunner:
    """One built pipeline and what to do when a batch fails to decode."""

    def __init__(self, make, backend: str, device: str, skip_errors: bool):
        require_dali()
        self.make, self.backend, self.device, self.skip_errors = make, backend, device, skip_errors
        self.pipe = None
        self.skipped = 0

    def build(self, source, batch_size: int):
        self.close()
        self.pipe = self.make(source, batch_size)
        self.pipe.build()

    def run(self, batch) -> list[torch.Tensor] | tuple[int, str]:
        """One batch as torch tensors; or, when a DALI decoder lost it and errors are skipped, (the
        culprit's position in the batch, its message), found by re-reading the batch with PyAV.

        batch(): the batch's (file, frames, fps, keyframes) per sample, to name the culprit of a failure.
        """
        try:
            outs = self.pipe.run()
        except Exception as e:
            text = str(e)
            if self.backend != "pyav" and self.skip_errors and isinstance(e, RuntimeError):
                where, message = _culprit(batch(), text, self.backend)
                if where is not None:  # DALI carries on with the next batch; the caller decides about this one
                    return where, message
            self.close()
            if "DecodeError" in text or "SamplingError" in text:  # raised in a worker: its message names the file
                line = next(ln for ln in reversed(text.splitlines()) if "Error:" in ln)
                raise DecodeError(line.split("Error: ", 1)[1]) from e
            if self.backend == "pyav":
                raise  # not a decoding failure
            raise DecodeError(_culprit(batch(), text, self.backend)[1]) from e
        return [_to_torch(o) for o in outs]

    def close(self):
        if self.pipe is not None:
            pool = getattr(self.pipe, "_py_pool", None)
            if pool is not None:
                pool.close()  # ends the worker processes now, not when garbage collected
            self.pipe = None


def _batch_files(table, requests) -> list[tuple[str, np.ndarray, float, np.ndarray]]:
    return [(table["file"].iat[r.video_index], r.frames, float(table["fps"].iat[r.video_index]),
             table["keyframes"].iat[r.video_index]) for r in requests]


def _dali_reason(text: str) -> str:
    """DALI's own reason: the one line of its message that is neither a header nor a traceback."""
    noise = ("Critical", "Error in", " ", "which", "encountered", "C++", "Current")
    return next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith(noise)), "")


def _dali_alone(file: str, frames: np.ndarray, backend: str) -> str | None:
    """DALI's reason for failing on this one sample decoded alone; None when it decodes."""
    from nvidia.dali import fn, pipeline_def

    data, distinct = np.fromfile(file, dtype=np.uint8), np.unique(frames).astype(np.int32)

    @pipeline_def(batch_size=1, num_threads=1, device_id=torch.cuda.current_device() if backend == "nvdec" else None)
    def alone():
        d, f = fn.external_source(source=lambda: ([data], [distinct]), num_outputs=2, batch=True)
        return fn.decoders.video(d, device="mixed" if backend == "nvdec" else "cpu", frames=f, pad_mode="none")

    pipe = alone()
    try:
        pipe.build()
        pipe.run()
    except Exception as e:
        return _dali_reason(str(e)) or type(e).__name__
    finally:
        del pipe
    return None


def _culprit(samples, dali_text: str, backend: str) -> tuple[int | None, str]:
    """(position in the batch or None, message): which video of a failed DALI batch is bad: the first
    one PyAV cannot decode either, else the first one DALI fails on when it decodes it alone (PyAV
    reads it, DALI's decoder does not: e.g. a VP9 stream whose frame size changes midway).

    DALI loses the whole batch without naming the sample, so each is re-read; where PyAV is not
    installed, DALI's own reason and the batch's files are all there is to say.
    """
    from importlib.util import find_spec

    for i, (file, frames, fps, keyframes) in enumerate(samples if find_spec("av") else []):
        try:
            decode_frames(file, frames, fps, keyframes)
        except DecodeError as e:
            return i, str(e)
    for i, (file, frames, *_) in enumerate(samples if find_spec("av") else []):
        reason = _dali_alone(file, frames, backend)
        if reason is not None:
            return i, (f"{file}: frames {frames.min()}..{frames.max()} decode with PyAV but not with DALI's {backend} "
                       f"decoder ({reason}); re-index with --transcode (ascnet-index build) for a copy it reads, "
                       "or use backend='pyav'")
    listed = ", ".join(f"{f} (frames {fr.min()}..{fr.max()})" for f, fr, *_ in samples)
    return None, f"DALI failed to decode a video among {listed}: {_dali_reason(dali_text)}"


# ---- training: pairs and single clips ----------------------------------------------------
class TrainLoader:
    """Epochs of batches of pairs (clips=2: two speeds of `clip.speeds`) or single clips (clips=1:
    speed 1, at a random start) from one manifest split.

    `steps_per_epoch` full batches per epoch (drop_last), the same on every shard.
    `backend`: the decoder chosen; `skipped`: videos dropped by on_error="skip".
    """

    def __init__(self, manifest: Manifest, clip: ClipSpec, *, clips: int, split: str, batch_size: int, backend: str,
                 device: str, seed: int, shard_id: int, num_shards: int, workers: int, on_error: str, split_pair: bool,
                 num_threads: int | None, distinct_frames: bool = True, exclude: Iterable[str] = ()):
        _check("on_error", on_error, ON_ERROR)
        _check("clips", clips, (1, 2))
        clip = clip.check()
        clip_len, crop_size = clip.clip_len, clip.crop_size
        self.table = _videos(manifest, split)
        short = self.table[self.table["num_frames"] < clip_len]
        if len(short):
            raise SamplingError(
                f"{len(short)} video(s) are shorter than one clip of {clip_len} frames, e.g. {short['file'].iat[0]} "
                f"({short['num_frames'].iat[0]} frames): re-index with 'ascnet-index build --min-frames {clip_len}' (it marks "
                f"such videos too_short) or lower clip_len"
            )
        self.backend, self.reason = choose_backend(backend, device, self.table["codec"])
        _check_upright(self.table, self.backend)
        n = len(self.table)
        self.steps_per_epoch = steps_per_epoch(n, batch_size, num_shards)
        if self.steps_per_epoch == 0:
            raise ManifestError(f"split '{split}' has {n} usable videos, fewer than batch_size x num_shards = "
                                f"{batch_size * num_shards}: lower batch_size")
        self.batch_size, self.clips, self.device = batch_size, clips, device
        self._sched_args = dict(
            num_frames=self.table["num_frames"].to_numpy(), fps=self.table["fps"].to_numpy(),
            sizes=self.table[["height", "width"]].to_numpy(), names=list(self.table["file"]), batch_size=batch_size,
            seed=seed, shard_id=shard_id, num_shards=num_shards, clips=clips, clip=clip)
        augment = clip.augment
        self._split_pair, self._skip_errors, self._augment = split_pair, on_error == "skip", augment
        self._distinct = distinct_frames
        self._cut = Cut("augment" if augment else "center", crop_size)
        # frames the decoder produced for the batches yielded so far (pyav counts them; DALI's decoders do not say)
        self.frames_decoded = 0 if self.backend == "pyav" else None
        self._labels = torch.as_tensor(self.table["label"].to_numpy().copy(), dtype=torch.int64)
        self.num_classes = int(self._labels[self._labels >= 0].unique().numel())  # 0: unlabelled
        known_bad = set(exclude)
        # known bad: their stand-ins are used
        self._exclude = {i for i, v in enumerate(self.table["video_id"]) if v in known_bad} if known_bad else set()
        # windows a DALI decoder lost, (epoch, step, row, video): the stand-in takes that place only, so
        # a resumed run, which finds them again at the same places, is the same as one run through
        self._failed: set[tuple[int, int, int, int]] = set()
        self._skips: list[dict] = []
        self._found: dict[tuple, str] = {}  # those windows -> the culprit's message, until reported

        from ascnet.pipelines.train import clip_pipeline

        kw = _pipeline_kwargs(batch_size, self.backend, device, workers, num_threads, seed)
        make = lambda source, b: clip_pipeline(source=source, backend=self.backend, device=device, clips=clips,  # noqa: E731
                                               clip_len=clip_len, crop_size=crop_size, augment=augment, **kw)
        self._runner = _DaliRunner(make, self.backend, device, self._skip_errors)
        self._sched: TrainSchedule | None = None
        self._next: tuple[int, int] | None = None  # (epoch, step) the built pipeline yields next
        self._done = 0  # batches run since the pipeline was built

    @property
    def skipped(self) -> int:
        return self._runner.skipped

    def take_skips(self) -> list[dict]:
        """The videos passed over since the last call, one dict per occurrence: video_id, file, epoch,
        step, reason ("" for a video already known bad, e.g. from `exclude`)."""
        out, self._skips = self._skips, []
        return out

    def _skip(self, vi: int, epoch: int, step: int, reason: str) -> None:
        self._runner.skipped += 1
        self._skips.append({"video_id": self.table["video_id"].iat[vi], "file": self.table["file"].iat[vi],
                            "epoch": epoch, "step": step, "reason": reason})

    def _build(self, epoch: int, start_step: int) -> None:
        self._sched = TrainSchedule(**self._sched_args, epoch0=epoch, step0=start_step)
        files, fps, exclude = list(self.table["file"]), self._sched_args["fps"], frozenset(self._exclude)
        if self.backend == "pyav":
            source = PyAVSource(self._sched, files, fps, list(self.table["keyframes"]), self._cut, with_aug=self._augment,
                                split_pair=self._split_pair, skip_errors=self._skip_errors, exclude=exclude,
                                rotations=self.table["rotation"].to_numpy())
        else:
            source = BytesSource(self._sched, files, with_aug=self._augment, distinct=self._distinct, exclude=exclude,
                                 failed=frozenset(self._failed))
        self._runner.build(source, self.batch_size)
        self._next, self._done = (epoch, start_step), 0

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
        """Batches `start_step`..steps_per_epoch-1 of this epoch (see the module docstring).

        Pairs: clip_a, clip_b (B, 3, T, crop, crop) float32; speed_a, speed_b, video_index,
        label (B,) int64. Single clips: clips, video_index, label. With on_error="skip" a video
        that fails to decode gives way to a stand-in drawn from the seed and its position (see
        `take_skips`); B shrinks only when every stand-in of a sample failed too.
        """
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step {start_step} is outside 0..{self.steps_per_epoch}")
        for step in range(start_step, self.steps_per_epoch):
            while True:
                if self._next != (epoch, step):
                    self._build(epoch, step)
                g0 = self._done * self.batch_size
                gs = range(g0, g0 + self.batch_size)
                picks = [first_usable(self._sched, g, self._exclude, self._failed) for g in gs]
                # what the DALI decoders get per sample: the pick, or a place holder that is dropped
                sent = [r or place_holder(self._sched, g, self._exclude, self._failed) for (r, _), g in zip(picks, gs)]
                if None in sent:
                    raise DecodeError(f"epoch {epoch} step {step}: every video of the split failed to decode here")
                try:
                    outs = self._runner.run(lambda: _batch_files(self.table, sent))
                except BaseException:
                    self._next = None  # rebuild on the next call
                    raise
                if isinstance(outs, list):
                    break
                # a DALI decoder lost the batch: its culprit's window gives way, and the step is decoded again
                where, message = outs
                window = (*self._sched.where(gs[where]), sent[where].video_index)
                self._failed.add(window)
                self._found[window] = message  # reported with the batch that passes it over
                self._next = None
            self._done += 1
            self._next = self._sched.position(self._done)
            yield self._batch(outs, picks, epoch, step)

    def _batch(self, outs: list[torch.Tensor], picks, epoch: int, step: int) -> dict:
        if self.backend == "pyav":  # the workers say which video each sample holds (a stand-in, maybe)
            info, messages = outs[-2].cpu().numpy(), outs[-1].cpu().numpy()
            k = self.clips
            vi, speeds, ok = info[:, 1], info[:, 2:2 + k], info[:, 0] > 0
            self.frames_decoded += int(info[:, 0].sum())
            for r in range(len(info)):
                for j in range(int(info[r, 2 + k])):
                    text = bytes(messages[r, j]).rstrip(b"\0").decode(errors="replace")
                    self._skip(int(info[r, 3 + k + j]), epoch, step, text)
        else:
            for row, (req, passed) in enumerate(picks):
                for v in passed:
                    self._skip(v, epoch, step, self._found.pop((epoch, step, row, v), ""))
            ok = np.array([req is not None for req, _ in picks])
            vi = np.array([req.video_index if req else -1 for req, _ in picks])
            speeds = np.array([req.speeds if req else (0,) * self.clips for req, _ in picks])
        vi = torch.as_tensor(vi, dtype=torch.int64)
        if self.clips == 2:
            batch = {"clip_a": outs[0], "clip_b": outs[1], "speed_a": torch.as_tensor(speeds[:, 0], dtype=torch.int64),
                     "speed_b": torch.as_tensor(speeds[:, 1], dtype=torch.int64)}
        else:
            batch = {"clips": outs[0]}
        batch.update(video_index=vi, label=self._labels[vi.clamp(min=0)])
        if not ok.all():
            keep = torch.as_tensor(ok)
            batch = {key: v[keep.to(v.device)] for key, v in batch.items()}
        return batch

    def close(self) -> None:
        self._runner.close()
        self._next = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_pair_loader(
    manifest: Manifest,
    clip: ClipSpec = ClipSpec(),
    *,
    split: str = "train",
    batch_size: int = 8,
    backend: Literal["auto", "nvdec", "dali-cpu", "pyav"] = "auto",
    device: Literal["cpu", "cuda"] = "cpu",
    seed: int = 0,
    shard_id: int = 0,
    num_shards: int = 1,
    workers: int = 2,
    on_error: Literal["raise", "skip"] = "raise",
    split_pair: bool = False,
    num_threads: int | None = None,
    distinct_frames: bool = True,
    exclude: Iterable[str] = (),
) -> TrainLoader:
    """Pretraining pairs: two clips per video at two different speeds of `clip.speeds`, each
    augmented on its own as `clip` says.

    Batches: clip_a, clip_b (B, 3, clip_len, crop_size, crop_size) float32 normalised
    (ascnet.clips.MEAN/STD; CUDA tensors for device="cuda"); speed_a, speed_b, video_index (row of
    manifest.select(split)), label: (B,) int64. on_error="skip" passes over (and counts in
    `.skipped`) a video that fails to decode instead of raising DecodeError. split_pair=True
    decodes the two clips by two seeks instead of one window (pyav; for benchmarking).
    distinct_frames=False sends the DALI decoders the pair's indices with their repeats (benchmarking).
    exclude: video_ids known not to decode: their stand-ins are used wherever they are drawn. A video
    that fails at run time is not excluded: it is tried wherever it is drawn, and gives way to its
    stand-in where it fails (README, "Bad files").
    """
    return TrainLoader(manifest, clip, clips=2, split=split, batch_size=batch_size, backend=backend, device=device,
                       seed=seed, shard_id=shard_id, num_shards=num_shards, workers=workers, on_error=on_error,
                       split_pair=split_pair, num_threads=num_threads, distinct_frames=distinct_frames, exclude=exclude)


def build_clip_loader(
    manifest: Manifest,
    clip: ClipSpec = ClipSpec(),
    *,
    split: str = "train",
    batch_size: int = 8,
    backend: str = "auto",
    device: str = "cpu",
    seed: int = 0,
    shard_id: int = 0,
    num_shards: int = 1,
    workers: int = 2,
    on_error: str = "raise",
    num_threads: int | None = None,
    exclude: Iterable[str] = (),
) -> TrainLoader:
    """Fine-tuning clips: one speed-1 clip per video at a random start, augmented as `clip` says
    (its speeds are not used).

    Batches: clips (B, 3, clip_len, crop_size, crop_size) float32, video_index, label (B,) int64.
    """
    return TrainLoader(manifest, clip, clips=1, split=split, batch_size=batch_size, backend=backend, device=device,
                       seed=seed, shard_id=shard_id, num_shards=num_shards, workers=workers, on_error=on_error,
                       split_pair=False, num_threads=num_threads, exclude=exclude)


# ---- evaluation --------------------------------------------------------------------------
class EvalLoader:
    """One ordered pass over every (video, clip, crop) row of a split; iterate it again to repeat.

    Batches: clips (B, 3, T, crop, crop) float32; video_index, clip_index, crop_index, label
    (B,) int64; the last batch may be smaller. `num_videos`, `num_rows`, `len()` in batches.
    """

    def __init__(self, manifest: Manifest, clip: ClipSpec, *, split: str, batch_size: int, clips_per_video: int,
                 crops: str, backend: str, device: str, workers: int, on_error: str, num_threads: int | None):
        clip_len, crop_size = clip.clip_len, clip.crop_size
        _check("crops", crops, CROPS_PER_CLIP)
        _check("on_error", on_error, ON_ERROR)
        self.table = _videos(manifest, split)
        self.backend, self.reason = choose_backend(backend, device, self.table["codec"])
        _check_upright(self.table, self.backend)
        self.num_videos = len(self.table)
        self.crops_per_clip = CROPS_PER_CLIP[crops]
        self.num_rows = self.num_videos * clips_per_video * self.crops_per_clip
        self.batch_size, self.device = batch_size, device
        self._labels = torch.as_tensor(self.table["label"].to_numpy().copy(), dtype=torch.int64)
        # a DALI sample is one (video, clip) with all its crops
        self._dali_batch = max(1, batch_size // self.crops_per_clip)
        self._sched = EvalSchedule(self.table["num_frames"].to_numpy(), clip_len, clips_per_video, self._dali_batch)
        self._cut = Cut("short", eval_short_side(crop_size, crops))

        from ascnet.pipelines.evaluation import eval_pipeline

        kw = _pipeline_kwargs(self._dali_batch, self.backend, device, workers, num_threads, seed=0)
        make = lambda source, b: eval_pipeline(source=source, backend=self.backend, device=device,  # noqa: E731
                                               crop_size=crop_size, crops=crops, **kw)
        self._runner = _DaliRunner(make, self.backend, device, on_error == "skip")

    @property
    def skipped(self) -> int:
        return self._runner.skipped

    def __len__(self) -> int:
        return -(-self.num_rows // self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        files = list(self.table["file"])
        if self.backend == "pyav":
            # a video's clips come one after the other: a worker keeps it open and reads on
            source = PyAVSource(self._sched, files, self.table["fps"].to_numpy(), list(self.table["keyframes"]), self._cut,
                                with_aug=False, skip_errors=self._runner.skip_errors, keep_open=True,
                                rotations=self.table["rotation"].to_numpy())
        else:
            source = BytesSource(self._sched, files, with_aug=False)
        self._runner.build(source, self._dali_batch)
        pending: list[dict] = []
        have = 0
        try:
            for b in range(self._sched.padded // self._dali_batch):
                g0 = b * self._dali_batch
                requests = [self._sched.request(g) for g in range(g0, g0 + self._dali_batch)]
                outs = self._runner.run(lambda: _batch_files(self.table, requests))
                real = min(self._dali_batch, self._sched.num_items - g0)  # the rest pads the last batch
                if not isinstance(outs, list):  # a DALI decoder lost the batch (on_error="skip")
                    log.warning("skipped a batch that failed to decode: %s", outs[1])
                    self._runner.skipped += real
                    continue
                rows = self._rows(outs, requests[:real], real)
                pending.append(rows)
                have += len(rows["clips"])
                while have >= self.batch_size:
                    batch, pending, have = _take(pending, self.batch_size)
                    yield batch
            if have:
                yield _take(pending, have)[0]
        finally:
            self._runner.close()

    def _rows(self, outs, requests, real: int) -> dict:
        k = self.crops_per_clip
        views = outs[0][:real]  # (b, K, 3, T, H, W)
        vi = torch.tensor([r.video_index for r in requests], dtype=torch.int64).repeat_interleave(k)
        rows = {"clips": views.reshape(real * k, *views.shape[2:]), "video_index": vi,
                "clip_index": torch.tensor([r.clip_index for r in requests], dtype=torch.int64).repeat_interleave(k),
                "crop_index": torch.arange(k, dtype=torch.int64).repeat(real), "label": self._labels[vi]}
        if self.backend == "pyav":
            ok = (outs[-2][:real, 0] > 0).cpu().repeat_interleave(k)  # the workers' info: frames decoded
            if not ok.all():
                self._runner.skipped += int((~ok).sum()) // k
                rows = {key: v[ok.to(v.device)] for key, v in rows.items()}
        return rows

    def close(self) -> None:
        self._runner.close()


def _take(pending: list[dict], n: int) -> tuple[dict, list[dict], int]:
    """The first n rows of the pending chunks as one batch, and what remains."""
    joined = {k: torch.cat([p[k] for p in pending]) for k in pending[0]}
    batch = {k: v[:n] for k, v in joined.items()}
    rest = {k: v[n:] for k, v in joined.items()}
    left = len(rest["clips"])
    return batch, ([rest] if left else []), left


def build_eval_loader(
    manifest: Manifest,
    clip: ClipSpec = ClipSpec(),
    *,
    split: str = "test",
    batch_size: int = 8,
    clips_per_video: int = 10,
    crops: Literal["center", "three", "ten"] = "center",
    backend: str = "auto",
    device: str = "cpu",
    workers: int = 2,
    on_error: str = "raise",
    num_threads: int | None = None,
) -> EvalLoader:
    """Evaluation clips: `clips_per_video` evenly spaced speed-1 clips of `clip.clip_len` frames per
    video, each cut into 1 (center), 3 (three) or 10 (ten: 5 crops + their mirrors) crops of
    `clip.crop_size`, in (video, clip, crop) order. The rest of `clip` is not used.
    """
    return EvalLoader(manifest, clip, split=split, batch_size=batch_size, clips_per_video=clips_per_video, crops=crops, backend=backend, device=device, workers=workers,
                      on_error=on_error, num_threads=num_threads)
