"""The per-clip augmentation, shared by every decoder backend (DESIGN §1).

Input: a clip as a DALI sequence, (T, H, W, 3) uint8, layout FHWC, on CPU or GPU.
Output: (3, T, crop, crop) float32, normalised with MEAN/STD (layout CFHW).

The random decisions are drawn here in numpy (`sample_augment`), seeded like the sampling by
(seed, epoch, video, clip), and reach DALI as per-sample arguments. So every frame of a clip
gets the same crop, flip and colour change, the two clips of a pair differ, and a batch
depends only on (seed, epoch, step): a resumed epoch is the same as one run through.
Colour jitter, grayscale and hue are one `color_twist` (grayscale = saturation 0), applied
with p=0.8 in a fixed order (brightness, contrast, then saturation/hue), not torchvision's
random order.
"""
from __future__ import annotations

import math

import numpy as np

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

_MEAN255 = [m * 255 for m in MEAN]
_STD255 = [s * 255 for s in STD]


def denormalize(clips):
    """Normalised (..., 3, T, H, W) float tensor -> 0..255 float RGB, same shape (torch or numpy)."""
    shape = (3,) + (1,) * 3  # channel axis is -4
    mean = np.asarray(_MEAN255, np.float32).reshape(shape)
    std = np.asarray(_STD255, np.float32).reshape(shape)
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


def augment_clip(clip, params=None, *, crop_size: int, augment: bool = True, cut: bool = False):
    """DALI graph: FHWC uint8 clip -> CFHW float32 (3, T, crop, crop).

    params: a DALI node, per sample (9,) float32 from `sample_augment`.
    augment=False: resize the short side to crop_size, centre crop, normalise (no randomness).
    cut=True: the clip arrives already cut and coloured (`sources.cut_clip`, the pyav workers):
    only the flip and the normalisation are left.
    """
    from nvidia.dali import fn, types

    if cut:
        mirror = fn.cast(params[4], dtype=types.INT32) if augment else 0
        return fn.crop_mirror_normalize(clip, mirror=mirror, mean=_MEAN255, std=_STD255, output_layout="CFHW",
                                        dtype=types.FLOAT)
    if not augment:
        clip = fn.resize(clip, resize_shorter=crop_size)
        return fn.crop_mirror_normalize(clip, crop=(crop_size, crop_size), mean=_MEAN255, std=_STD255,
                                        output_layout="CFHW", dtype=types.FLOAT)
    # the crop box as a relative region of interest of the resize, antialiased as the pyav
    # workers' swscale pass is (on the CPU it costs dali-cpu 20-25% more; pyav does not resize in DALI)
    clip = fn.resize(clip, size=[crop_size, crop_size], roi_start=params[0:2], roi_end=params[2:4], roi_relative=True)
    clip = fn.color_twist(clip, brightness=params[5], contrast=params[6], saturation=params[7], hue=params[8])
    return fn.crop_mirror_normalize(clip, mirror=fn.cast(params[4], dtype=types.INT32), mean=_MEAN255, std=_STD255,
                                    output_layout="CFHW", dtype=types.FLOAT)


def eval_short_side(crop_size: int, crops: str) -> int:
    """The short side evaluation clips are resized to before their crops are cut."""
    return crop_size if crops in ("center", "three") else int(round(crop_size * 8 / 7))


def eval_crops(clip, *, crop_size: int, crops: str, resized: bool = False):
    """DALI graph: FHWC uint8 clip -> (K, 3, T, crop, crop) float32, K = 1 / 3 / 10.

    center: short side resized to crop_size, centre crop. three: the same resize, crops at the
    start, middle and end of the long side. ten: short side resized to crop_size*8/7, four
    corners + centre, then the same five mirrored (crop 5+k = crop k flipped).
    """
    from nvidia.dali import fn, types

    if not resized:  # resized=True: the pyav workers already scaled it (`sources.Cut("short")`)
        clip = fn.resize(clip, resize_shorter=eval_short_side(crop_size, crops))

    def one(x, y, mirror=0):
        return fn.crop_mirror_normalize(clip, crop=(crop_size, crop_size), crop_pos_x=x, crop_pos_y=y, mirror=mirror,
                                        mean=_MEAN255, std=_STD255, output_layout="CFHW", dtype=types.FLOAT)

    if crops == "center":
        views = [one(0.5, 0.5)]
    elif crops == "three":
        shape = clip.shape(dtype=types.INT32)  # (T, H, W, C)
        landscape = fn.cast(shape[2] >= shape[1], dtype=types.FLOAT)
        views = [one(landscape * p + (1.0 - landscape) * 0.5, landscape * 0.5 + (1.0 - landscape) * p) for p in (0.0, 0.5, 1.0)]
    elif crops == "ten":
        corners = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.5)]
        views = [one(x, y) for x, y in corners] + [one(x, y, 1) for x, y in corners]
    else:
        raise ValueError(f"unknown crops '{crops}'; allowed: ['center', 'three', 'ten']")
    return fn.stack(*views) if len(views) > 1 else fn.expand_dims(views[0], axes=[0])
