"""The per-clip augmentation, shared by every decoder backend (DESIGN §1).

Input: a clip as a DALI sequence, (T, H, W, 3) uint8, layout FHWC, on CPU or GPU.
Output: (3, T, crop, crop) float32, normalised with MEAN/STD (layout CFHW).

The DALI graph only: the random decisions are drawn in numpy by `ascnet.clips` and arrive
here as per-sample arguments (PARAMS).
"""
from __future__ import annotations

from ascnet.clips import MEAN255, STD255, eval_short_side

def augment_clip(clip, params=None, *, crop_size: int, augment: bool = True, cut: bool = False):
    """DALI graph: FHWC uint8 clip -> CFHW float32 (3, T, crop, crop).

    params: a DALI node, per sample (9,) float32 from `sample_augment`.
    augment=False: resize the short side to crop_size, centre crop, normalise (no randomness).
    cut=True: the clip arrives already cut and coloured (`decode.cut_clip`, the pyav workers):
    only the flip and the normalisation are left.
    """
    from nvidia.dali import fn, types

    if cut:
        mirror = fn.cast(params[4], dtype=types.INT32) if augment else 0
        return fn.crop_mirror_normalize(clip, mirror=mirror, mean=MEAN255, std=STD255, output_layout="CFHW",
                                        dtype=types.FLOAT)
    if not augment:
        clip = fn.resize(clip, resize_shorter=crop_size)
        return fn.crop_mirror_normalize(clip, crop=(crop_size, crop_size), mean=MEAN255, std=STD255,
                                        output_layout="CFHW", dtype=types.FLOAT)
    # the crop box as a relative region of interest of the resize, antialiased as the pyav
    # workers' swscale pass is (on the CPU it costs dali-cpu 20-25% more; pyav does not resize in DALI)
    clip = fn.resize(clip, size=[crop_size, crop_size], roi_start=params[0:2], roi_end=params[2:4], roi_relative=True)
    clip = fn.color_twist(clip, brightness=params[5], contrast=params[6], saturation=params[7], hue=params[8])
    return fn.crop_mirror_normalize(clip, mirror=fn.cast(params[4], dtype=types.INT32), mean=MEAN255, std=STD255,
                                    output_layout="CFHW", dtype=types.FLOAT)


def eval_crops(clip, *, crop_size: int, crops: str, resized: bool = False):
    """DALI graph: FHWC uint8 clip -> (K, 3, T, crop, crop) float32, K = 1 / 3 / 10.

    center: short side resized to crop_size, centre crop. three: the same resize, crops at the
    start, middle and end of the long side. ten: short side resized to crop_size*8/7, four
    corners + centre, then the same five mirrored (crop 5+k = crop k flipped).
    """
    from nvidia.dali import fn, types

    if not resized:  # resized=True: the pyav workers already scaled it (`decode.Cut("short")`)
        clip = fn.resize(clip, resize_shorter=eval_short_side(crop_size, crops))

    def one(x, y, mirror=0):
        return fn.crop_mirror_normalize(clip, crop=(crop_size, crop_size), crop_pos_x=x, crop_pos_y=y, mirror=mirror,
                                        mean=MEAN255, std=STD255, output_layout="CFHW", dtype=types.FLOAT)

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
