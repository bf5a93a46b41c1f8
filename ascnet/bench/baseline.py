"""The loaders the peers use (RSPNet / CoCLR / Pace style), kept as the benchmarks' baseline:
the one place that decodes with decord or torchcodec.

Written as a competent user of those libraries writes it: a `torch.utils.data.Dataset` whose
`__getitem__` opens the video and fetches the pair's frames, falling back to PyAV for files
the decoder cannot open; a `DataLoader(num_workers=N, persistent_workers=True)` runs it in
worker processes that live from epoch to epoch (the epoch travels with each index, so the
workers' copy of the dataset never goes stale). The decoders (`Decoder`):

- `decord`, the classic peer: `VideoReader(path, num_threads=1)`, one `get_batch` per clip;
- `torchcodec` / `torchcodec-approximate`, the peer a user picks today: `VideoDecoder(path,
  seek_mode="exact" | "approximate", num_ffmpeg_threads=1)` (one FFmpeg thread per worker, as
  its documentation advises when many decoders run in parallel) and one `get_frames_at` call
  for both clips of a pair, which sorts the indices and decodes each frame once.

Two augmentation recipes (`Recipe`), both drawing the parameters once per clip (random resized
crop scale 0.4-1 ratio 3/4-4/3, horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8,
grayscale with p=0.2, normalise):
- `per-frame`: frame by frame, torchvision-style, its functional ops written here on torch
  tensors the way torchvision writes them (torchvision is not a dependency of ascnet);
- `transforms-v2`: what a user writes today, torchvision's `transforms.v2` applied once to the
  whole uint8 clip (T, C, H, W) (needs torchvision).

The frames come from `ascnet.sampling` (the same definition as our pipelines) and the frame
count from the manifest, so every loader decodes the same frames and the benchmark compares
equal work. The loader mirrors `TrainLoader`'s surface: `steps_per_epoch`, `epoch()`, `close()`.

Its evaluation mode (`build_baseline_eval_loader`) is what the peers' evaluation scripts do:
a `DataLoader` over videos whose workers open each file the same way, fetch its N evenly
spaced clips (`ascnet.sampling.eval_clips`) and resize, centre-crop and normalise frame by
frame; it mirrors the evaluation loader's batches (`clips`, `video_index`).
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ascnet.clips import MEAN, STD, ClipSpec  # the same normalisation as our pipelines
from ascnet.manifest import Manifest
from ascnet.sampling import eval_clips, sample_pair, shard_plan, steps_per_epoch


# ---- decoding ------------------------------------------------------------------------------
def pyav_frames(path: str, indices: Sequence[int]) -> np.ndarray:
    """(len(indices), H, W, 3) uint8 frames by decode order, decoding from the start.

    Decode order, not timestamps: some .avi files (HMDB-51's DivX) carry unsorted timestamps
    and metadata PyAV rejects unless told to ignore it.
    """
    import av

    want = [int(i) for i in indices]
    wanted, last = set(want), max(want)
    got: dict[int, np.ndarray] = {}
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    missing = sorted(wanted - set(got))
    if missing:
        raise RuntimeError(f"{path}: PyAV decoded fewer frames than asked (missing {missing[:5]}); re-index the file")
    return np.stack([got[i] for i in want])


Decoder = Literal["decord", "torchcodec", "torchcodec-approximate"]
DECODERS = ("decord", "torchcodec", "torchcodec-approximate")
Recipe = Literal["per-frame", "transforms-v2"]
RECIPES = ("per-frame", "transforms-v2")


def decoder_versions() -> dict:
    """The peers' decoders' versions, for the benchmarks' environment line."""
    out = {}
    for name in ("decord", "torchcodec", "torchvision"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # not installed, or (torchcodec) its libraries do not load beside this torch
            out[name] = "not available"
    return out


class VideoFile:
    """One opened video: `decoder` where it opens the file, else PyAV (`backend` says which)."""

    def __init__(self, path: str, decoder: Decoder = "decord"):
        self.path = path
        try:
            if decoder.startswith("torchcodec"):
                from torchcodec.decoders import VideoDecoder

                mode = "approximate" if decoder == "torchcodec-approximate" else "exact"
                self.reader = VideoDecoder(path, seek_mode=mode, num_ffmpeg_threads=1, dimension_order="NHWC")
            else:
                import decord

                self.reader = decord.VideoReader(path, num_threads=1)
            self.backend = "torchcodec" if decoder.startswith("torchcodec") else decoder
        except ImportError:
            raise
        except Exception:  # decord raises its own DECORDError for files it cannot demux
            self.reader = None
            self.backend = "pyav"

    def clip(self, indices: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8: the frames at `indices` (decord: one random seek)."""
        return self.clips(indices)[0]

    def clips(self, *clips: np.ndarray) -> list[np.ndarray]:
        """[(T, H, W, 3) uint8] per index array: decord reads each clip by its own `get_batch`;
        torchcodec reads them all by one `get_frames_at`, its batch call."""
        if self.backend == "torchcodec":
            want = np.concatenate(clips)
            frames = self.reader.get_frames_at([int(i) for i in want]).data.numpy()
            return np.split(frames, np.cumsum([len(c) for c in clips])[:-1])
        if self.reader is not None:
            return [self.reader.get_batch([int(i) for i in c]).asnumpy() for c in clips]
        return [pyav_frames(self.path, c) for c in clips]


# ---- torchvision-style transforms, one frame (3, H, W) float in [0, 1] at a time ------------
def _gray(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: float) -> torch.Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, torch.zeros_like(img), factor)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, _gray(img).mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    return _blend(img, _gray(img), factor)


def _rgb2hsv(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(-3)
    maxc = img.max(dim=-3).values
    minc = img.min(dim=-3).values
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv2rgb(img: torch.Tensor) -> torch.Tensor:
    h, s, v = img.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int32) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    mask = (i.unsqueeze(-3) == torch.arange(6).view(-1, 1, 1)).to(img.dtype)
    a1 = torch.stack((v, q, p, p, t, v), dim=-3)
    a2 = torch.stack((t, v, v, q, p, p), dim=-3)
    a3 = torch.stack((p, p, t, v, v, q), dim=-3)
    return torch.einsum("...ijk,...xijk->...xjk", mask, torch.stack((a1, a2, a3), dim=-4))


def adjust_hue(img: torch.Tensor, factor: float) -> torch.Tensor:
    hsv = _rgb2hsv(img)
    h, s, v = hsv.unbind(-3)
    return _hsv2rgb(torch.stack(((h + factor) % 1.0, s, v), dim=-3))


@dataclass(frozen=True)
class ClipParams:
    """One clip's augmentation, drawn once and applied to every frame."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    jitter: tuple | None  # ((order of 4 ops), brightness, contrast, saturation, hue) or None
    gray: bool


def draw_params(rng: random.Random, height: int, width: int, *, scale=(0.4, 1.0), ratio=(3 / 4, 4 / 3),
                flip_p: float = 0.5) -> ClipParams:
    """RandomResizedCrop.get_params, RandomHorizontalFlip, RandomApply(ColorJitter), RandomGrayscale."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    box = None
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            box = (rng.randint(0, height - h), rng.randint(0, width - w), h, w)
            break
    if box is None:  # torchvision's fallback: the central crop at the nearest allowed ratio
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        box = ((height - h) // 2, (width - w) // 2, h, w)
    flip = rng.random() < flip_p
    jitter = None
    if rng.random() < 0.8:
        order = list(range(4))
        rng.shuffle(order)
        jitter = (tuple(order), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(-0.1, 0.1))
    gray = rng.random() < 0.2
    return ClipParams(*box, flip=flip, jitter=jitter, gray=gray)


def augment_frame(frame: np.ndarray, p: ClipParams, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size) float32, normalised: ToTensor, the ops, Normalize."""
    crop = frame[p.top : p.top + p.height, p.left : p.left + p.width]
    img = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255.0)
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    img = img.clamp_(0.0, 1.0)
    if p.flip:
        img = img.flip(-1)
    if p.jitter is not None:
        order, b, c, s, h = p.jitter
        ops = (lambda x: adjust_brightness(x, b), lambda x: adjust_contrast(x, c),
               lambda x: adjust_saturation(x, s), lambda x: adjust_hue(x, h))
        for k in order:
            img = ops[k](img)
    if p.gray:
        img = _gray(img).expand(3, -1, -1)
    return (img - mean) / std


def plain_frame(frame: np.ndarray, size: int, mean: torch.Tensor, std: torch.Tensor,
                antialias: bool = False) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size), no randomness: short side resized to `size`, centre crop.

    Without antialiasing as our pipelines' un-augmented path (the decode benchmark's frame
    check); with it as torchvision's `Resize` in the peers' evaluation scripts.
    """
    img = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0)
    return (resize_center(img, size, antialias=antialias) - mean) / std


def resize_center(img: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """(..., C, H, W) -> (..., C, size, size): short side resized to `size`, centre crop.

    Sizes and offsets round half up, as DALI's `resize(resize_shorter=)` and centred
    `crop_mirror_normalize` do (torchvision's CenterCrop rounds half to even: a pixel apart).
    """
    h, w = img.shape[-2:]
    half_up = lambda x: int(math.floor(x + 0.5))  # noqa: E731
    nh, nw = (size, max(size, half_up(size * w / h))) if h <= w else (max(size, half_up(size * h / w)), size)
    lead = img.shape[:-3]
    x = F.interpolate(img.reshape(-1, *img.shape[-3:]), size=(nh, nw), mode="bilinear", align_corners=False,
                      antialias=antialias)
    top, left = half_up((nh - size) / 2), half_up((nw - size) / 2)
    return x[..., top : top + size, left : left + size].reshape(*lead, img.shape[-3], size, size)


def transforms_v2(clip: ClipSpec):
    """The recipe a user writes today: torchvision `transforms.v2` on a whole uint8 clip, parameters
    drawn once per call (per clip). (T, 3, H, W) uint8 -> (T, 3, S, S) float32, normalised."""
    from torchvision import tv_tensors  # noqa: F401  (the clip is wrapped as a Video below)
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(clip.crop_size, scale=clip.crop_scale, ratio=(3 / 4, 4 / 3), antialias=True),
        v2.RandomHorizontalFlip(clip.flip_p),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(0.2),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(MEAN, STD),
    ])


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} '{value}'; allowed: {list(allowed)}")


def _decode_table(manifest: Manifest, split: str, decoder: str):
    _check("decoder", decoder, DECODERS)
    return manifest.select(split).decode_table()


# ---- Dataset and loader ----------------------------------------------------------------------
class PairDataset(torch.utils.data.Dataset):
    """Item (epoch, i) = the pair of video i in that epoch: a dict of (3, T, S, S) clips."""

    def __init__(self, table, clip: ClipSpec, *, seed, decoder: Decoder = "decord", recipe: Recipe = "per-frame"):
        self.files = table["file"].tolist()
        self.num_frames = table["num_frames"].to_numpy()
        self.fps = table["fps"].to_numpy()
        self.labels = table["label"].to_numpy()
        self.clip, self.crop_size, self.augment, self.seed = clip, clip.crop_size, clip.augment, seed
        self.decoder, self.recipe = decoder, recipe
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)
        self._v2 = None  # the transforms.v2 pipeline, built where it first runs (in the worker)

    def __len__(self) -> int:
        return len(self.files)

    def pair(self, i: int, epoch: int):
        return sample_pair(
            i, int(self.num_frames[i]), float(self.fps[i]), seed=self.seed, epoch=epoch,
            clip_len=self.clip.clip_len, speeds=self.clip.speeds, rate=self.clip.rate, base_fps=self.clip.base_fps,
            name=self.files[i],
        )

    def _clip(self, frames: np.ndarray, rng: random.Random) -> torch.Tensor:
        if not self.augment:
            out = [plain_frame(f, self.crop_size, self.mean, self.std) for f in frames]
        elif self.recipe == "transforms-v2":
            from torchvision import tv_tensors

            if self._v2 is None:
                self._v2 = transforms_v2(self.clip)
            torch.manual_seed(rng.getrandbits(63))  # v2 draws from torch's generator: the same draws in any worker
            video = tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
            return self._v2(video).as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()  # (3, T, S, S)
        else:
            p = draw_params(rng, frames.shape[1], frames.shape[2], scale=self.clip.crop_scale, flip_p=self.clip.flip_p)
            out = [augment_frame(f, p, self.crop_size, self.mean, self.std) for f in frames]
        return torch.stack(out, dim=1)  # (3, T, S, S)

    def __getitem__(self, index: tuple[int, int]) -> dict:
        epoch, i = index
        pair = self.pair(i, epoch)
        frames_a, frames_b = VideoFile(self.files[i], self.decoder).clips(pair.frames_a, pair.frames_b)
        rng = random.Random(zlib.crc32(f"{self.seed}/{epoch}/{i}".encode()))  # the same draws in any worker
        return {
            "clip_a": self._clip(frames_a, rng),
            "clip_b": self._clip(frames_b, rng),
            "speed_a": pair.speed_a,
            "speed_b": pair.speed_b,
            "video_index": i,
            "label": int(self.labels[i]),
        }


class _EpochSampler(torch.utils.data.Sampler):
    """(epoch, video) indices of the epoch set last; read anew by every `iter(DataLoader)`."""

    def __init__(self):
        self.epoch, self.order = 0, np.zeros(0, np.int64)

    def __iter__(self):
        return iter([(self.epoch, int(i)) for i in self.order])

    def __len__(self):
        return len(self.order)


class BaselineLoader:
    """The peers' loader behind `TrainLoader`'s surface (CPU tensors only): one DataLoader whose
    workers persist from epoch to epoch (`persistent=False`: new workers every epoch, the
    DataLoader's default)."""

    def __init__(self, dataset: PairDataset, *, batch_size, seed, shard_id, num_shards, workers, persistent: bool = True):
        self.dataset = dataset
        self.backend = {"decord": "baseline"}.get(dataset.decoder, dataset.decoder)
        self.batch_size, self.seed = batch_size, seed
        self.shard_id, self.num_shards, self.workers = shard_id, num_shards, workers
        self.steps_per_epoch = steps_per_epoch(len(dataset), batch_size, num_shards)
        self._sampler = _EpochSampler()
        self.dataloader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, sampler=self._sampler, num_workers=workers, drop_last=True,
            persistent_workers=persistent and workers > 0,
        )

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
        """Batches of the epoch: `clip_a`, `clip_b` (B, 3, T, S, S) float32, `speed_*`, `video_index`, `label` (B,) int64."""
        plan = shard_plan(len(self.dataset), seed=self.seed, epoch=epoch, batch_size=self.batch_size,
                          shard_id=self.shard_id, num_shards=self.num_shards)
        order = plan[start_step:].reshape(-1)
        if len(order) == 0:
            return
        self._sampler.epoch, self._sampler.order = epoch, order
        yield from self.dataloader

    def close(self) -> None:
        """Ends the persistent workers."""
        it = getattr(self.dataloader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.dataloader._iterator = None


def build_baseline_loader(
    manifest: Manifest,
    clip: ClipSpec = ClipSpec(),
    *,
    split: str = "train",
    batch_size: int = 8,
    seed: int = 0,
    shard_id: int = 0,
    num_shards: int = 1,
    workers: int = 2,
    decoder: Decoder = "decord",
    recipe: Recipe = "per-frame",
    persistent: bool = True,
) -> BaselineLoader:
    """The peers' DataLoader over `manifest.select(split)` (status ok): `decoder` decodes, `recipe` augments;
    `persistent`: its workers live from epoch to epoch."""
    _check("recipe", recipe, RECIPES)
    table = _decode_table(manifest, split, decoder)
    if len(table) < batch_size * num_shards:
        raise ValueError(
            f"split '{split}' has {len(table)} usable videos, fewer than one batch of {batch_size}"
            f" x {num_shards} shard(s): lower --batch-size or use a larger manifest"
        )
    dataset = PairDataset(table, clip.check(), seed=seed, decoder=decoder, recipe=recipe)
    return BaselineLoader(dataset, batch_size=batch_size, seed=seed, shard_id=shard_id, num_shards=num_shards, workers=workers,
                          persistent=persistent)


# ---- evaluation mode: one item per video, its N clips ------------------------------------------
class ClipsDataset(torch.utils.data.Dataset):
    """Item i = video i's evaluation clips: (N, 3, T, S, S) float32, decoded and transformed per frame."""

    def __init__(self, table, clip: ClipSpec, *, clips_per_video, decoder: Decoder = "decord"):
        self.files = table["file"].tolist()
        self.num_frames = table["num_frames"].to_numpy()
        self.clip_len, self.n, self.crop_size, self.decoder = clip.clip_len, clips_per_video, clip.crop_size, decoder
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        clips = []
        for frames in VideoFile(self.files[i], self.decoder).clips(*eval_clips(int(self.num_frames[i]), self.clip_len, self.n)):
            # torchvision-style, frame by frame: Resize(short side) -> CenterCrop -> Normalize
            out = [plain_frame(f, self.crop_size, self.mean, self.std, antialias=True) for f in frames]
            clips.append(torch.stack(out, dim=1))  # (3, T, S, S)
        return torch.stack(clips)


class BaselineEvalLoader:
    """The peers' evaluation loader behind the evaluation loader's surface: iterating gives
    batches of `batch_size` clips across video boundaries (the same forward sizes as ours),
    `clips` (B, 3, T, S, S) float32 and `video_index` (B,) int64."""

    def __init__(self, dataset: ClipsDataset, *, batch_size: int, workers: int):
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers

    def __iter__(self) -> Iterator[dict]:
        videos = torch.utils.data.DataLoader(self.dataset, batch_size=None, num_workers=self.workers, shuffle=False)
        clips, index, b = [], [], self.batch_size
        for vi, video in enumerate(videos):
            clips += list(video)
            index += [vi] * len(video)
            while len(clips) >= b:
                yield {"clips": torch.stack(clips[:b]), "video_index": torch.tensor(index[:b])}
                clips, index = clips[b:], index[b:]
        if clips:
            yield {"clips": torch.stack(clips), "video_index": torch.tensor(index)}


def build_baseline_eval_loader(
    manifest: Manifest,
    clip: ClipSpec = ClipSpec(),
    *,
    split: str = "test",
    batch_size: int = 8,
    clips_per_video: int = 10,
    workers: int = 2,
    decoder: Decoder = "decord",
) -> BaselineEvalLoader:
    """The peers' evaluation loader over `manifest.select(split)` (status ok): N centre-cropped clips per video."""
    dataset = ClipsDataset(_decode_table(manifest, split, decoder), clip, clips_per_video=clips_per_video, decoder=decoder)
    return BaselineEvalLoader(dataset, batch_size=batch_size, workers=workers)
