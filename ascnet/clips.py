"""What a clip is: `ClipSpec`, the one declaration of the clip settings every command shares,
and the numpy side of the per-clip augmentation (DESIGN §1).

A ClipSpec is passed whole, from a command's config to the sampler and the pipelines, the way
a clip sampler object is handed to a dataset; each setting is declared here and nowhere else.

The random decisions are drawn here in numpy (`sample_augment`), seeded like the sampling by
(seed, epoch, video, clip), and reach DALI (`pipelines/augment.py`) or the pyav workers as
per-sample arguments. So every frame of a clip gets the same crop, flip and colour change, the
two clips of a pair differ, and a batch depends only on (seed, epoch, step): a resumed epoch is
the same as one run through. Colour jitter, grayscale and hue are one `color_twist`
(grayscale = saturation 0), applied with p=0.8 in a fixed order (brightness, contrast, then
saturation/hue), not torchvision's random order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ascnet.sampling import Rate, check_rate, check_speeds

# ImageNet statistics on 0..1 RGB, as RSPNet normalises; x = (rgb/255 - MEAN) / STD.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

CROP_SCALE = (0.4, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
FLIP_P = 0.5
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue (fraction of a turn)
JITTER_P = 0.8
GRAY_P = 0.2
# one clip's decisions, float32: relative crop box (y0, x0, y1, x1), flip, brightness,
# contrast, saturation, hue (degrees)
PARAMS = ("y0", "x0", "y1", "x1", "flip", "brightness", "contrast", "saturation", "hue")
IDENTITY = np.array([0, 0, 1, 1, 0, 1, 1, 1, 0], np.float32)

MEAN255 = [m * 255 for m in MEAN]
STD255 = [s * 255 for s in STD]


def denormalize(clips):
    """Normalised (..., 3, T, H, W) float tensor -> 0..255 float RGB, same shape (torch or numpy)."""
    shape = (3,) + (1,) * 3  # channel axis is -4
    mean = np.asarray(MEAN255, np.float32).reshape(shape)
    std = np.asarray(STD255, np.float32).reshape(shape)
    if hasattr(clips, "device"):  # torch
        import torch

        mean, std = torch.as_tensor(mean, device=clips.device), torch.as_tensor(std, device=clips.device)
    return clips * std + mean


def check_crop_scale(scale) -> tuple[float, float]:
    """(lo, hi) with 0 < lo <= hi <= 1, or a ValueError naming crop_scale."""
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ValueError(f"crop_scale={scale!r}: give two numbers (min, max area fraction), e.g. (0.4, 1.0)") from None
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale={scale!r}: need 0 < min <= max <= 1 (fractions of the frame's area)")
    return lo, hi


def sample_crop(rng: np.random.Generator, height: int, width: int,
                scale: tuple[float, float] = CROP_SCALE) -> tuple[float, float, float, float]:
    """torchvision's RandomResizedCrop box (area fraction in `scale`, ratio 3/4-4/3), relative (y0, x0, y1, x1)."""
    area = height * width
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            y = int(rng.integers(0, height - h + 1))
            x = int(rng.integers(0, width - w + 1))
            return y / height, x / width, (y + h) / height, (x + w) / width
    # fallback, as torchvision: the centre crop at the nearest allowed ratio
    lo, hi = CROP_RATIO
    w, h = float(width), float(height)
    if w / h < lo:
        h = w / lo
    elif w / h > hi:
        w = h * hi
    y0, x0 = (height - h) / 2 / height, (width - w) / 2 / width
    return y0, x0, 1 - y0, 1 - x0


def check_flip_p(p) -> float:
    """A probability in [0, 1], or a ValueError naming flip_p."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"flip_p={p!r}: the horizontal flip's probability must be in [0, 1]")
    return float(p)


def sample_augment(rng: np.random.Generator, height: int, width: int,
                   crop_scale: tuple[float, float] = CROP_SCALE, flip_p: float = FLIP_P) -> np.ndarray:
    """(9,) float32: one clip's augmentation decisions (see PARAMS).

    The coin for the flip is drawn whatever `flip_p` is, so the other decisions do not depend on it.
    """
    box = sample_crop(rng, max(height, 1), max(width, 1), crop_scale)
    flip = float(rng.random() < flip_p)
    b, c, s, h = JITTER
    jitter = rng.random() < JITTER_P
    u = rng.uniform(-1.0, 1.0, size=4)
    bri, con, sat, hue = (1 + b * u[0], 1 + c * u[1], 1 + s * u[2], h * 360.0 * u[3]) if jitter else (1.0, 1.0, 1.0, 0.0)
    if rng.random() < GRAY_P:
        sat = 0.0
    return np.array([*box, flip, bri, con, sat, hue], np.float32)


# ---- the same decisions applied outside DALI (the pyav workers, with swscale and numpy) -----
def pixel_box(params: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) in pixels of a clip's relative crop box (params[0:4]) on a height x width frame."""
    y0, x0, y1, x1 = (float(v) for v in params[:4])
    x, y = int(round(x0 * width)), int(round(y0 * height))
    return x, y, max(1, int(round(x1 * width)) - x), max(1, int(round(y1 * height)) - y)


def center_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(x, y, w, h): the centred square of side min(h, w), what a short-side resize + centre crop keeps."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def short_side_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) with the short side `short`, the long one scaled and rounded half up (DALI's resize_shorter)."""
    if height <= width:
        return max(short, int(math.floor(width * short / height + 0.5))), short
    return short, max(short, int(math.floor(height * short / width + 0.5)))


# RGB <-> YIQ, the space where DALI's color_twist turns hue and scales saturation
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def colour_matrix(params: np.ndarray) -> tuple[np.ndarray, float]:
    """(M (3, 3), offset): DALI color_twist's map on 0..255 RGB, out = clamp(M @ rgb + offset).

    brightness b, contrast c (around 128), saturation s, hue h degrees:
    M = b*c * YIQ->RGB . rot(-h) . diag(1, s, s) . RGB->YIQ, offset = b*(1 - c)*128.
    A test holds it against DALI's own color_twist.
    """
    b, c, s, h = (float(v) for v in params[5:9])
    t = math.radians(h)
    rot = np.array([[1, 0, 0], [0, math.cos(t), math.sin(t)], [0, -math.sin(t), math.cos(t)]])
    m = b * c * (_YIQ2RGB @ rot @ np.diag([1.0, s, s]) @ _RGB2YIQ)
    return m.astype(np.float32), b * (1 - c) * 128.0


def apply_colour(clip: np.ndarray, params: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same with the clip's colour jitter / grayscale applied (uint8, rounded)."""
    if np.array_equal(params[5:9], IDENTITY[5:9]):
        return clip
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # a loader worker: the processes, not threads, share the cores
    m, offset = colour_matrix(params)
    y = torch.matmul(torch.from_numpy(clip).float(), torch.from_numpy(m).T).add_(offset + 0.5).clamp_(0, 255)
    return y.to(torch.uint8).numpy()  # + 0.5 then truncation: rounded, as DALI's uint8 output


def eval_short_side(crop_size: int, crops: str) -> int:
    """The short side evaluation clips are resized to before their crops are cut."""
    return crop_size if crops in ("center", "three") else int(round(crop_size * 8 / 7))




# evaluation crops of a clip: 1 centre, 3 along the long side, 10 (4 corners + centre, and mirrored)
Crops = Literal["center", "three", "ten"]
CROPS_PER_CLIP = {"center": 1, "three": 3, "ten": 10}

# the help of each ClipSpec field, for every command that takes one (`ascnet.cli.options`)
CLIP_HELP = {
    "clip_len": "frames per clip",
    "crop_size": "crop side in pixels",
    "speeds": "playback speeds, comma-separated (a pair draws two)",
    "rate": "fixed: a speed is a real-time rate at --base-fps; native: a frame stride",
    "base_fps": "base rate for --rate fixed",
    "augment": "per-clip augmentation (random resized crop, flip, colour jitter); off: short side resized, centre crop",
    "crop_scale": "random resized crop: min,max fraction of the frame's area",
    "flip_p": "horizontal flip probability per clip (0 when left and right motion are different classes)",
}


@dataclass(frozen=True)
class ClipSpec:
    """The clips a command samples: their length, crop, playback speeds and augmentation.

    speeds, rate and base_fps matter to pairs (pretraining); a single-clip loader
    (fine-tuning) and evaluation read clips at speed 1.
    """

    clip_len: int = 16  # frames per clip
    crop_size: int = 112  # crop side in pixels
    speeds: tuple[int, ...] = (1, 2, 4, 8)  # playback speeds a pair draws two of
    rate: Rate = "fixed"  # "fixed": a speed is a real-time rate at base_fps; "native": a frame stride
    base_fps: float = 25.0
    augment: bool = True  # False: short side resized to crop_size, centre crop; no flip, no colour jitter
    crop_scale: tuple[float, float] = CROP_SCALE  # random resized crop: area fraction range
    flip_p: float = FLIP_P  # horizontal flip probability per clip (0 where left and right are different classes)

    def check(self) -> "ClipSpec":
        """The same spec with its values checked and normalised (tuples of numbers), or a ValueError naming the field."""
        for name in ("clip_len", "crop_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.base_fps <= 0:
            raise ValueError(f"base_fps={self.base_fps} must be > 0")
        return replace(self, speeds=check_speeds(self.speeds), rate=check_rate(self.rate),
                       crop_scale=check_crop_scale(self.crop_scale), flip_p=check_flip_p(self.flip_p))
