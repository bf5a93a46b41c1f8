"""Videos whose frames carry their own index, so a test or a benchmark can tell which frames
a decoder returned, whatever the codec, the scale or the colour conversion.

Each frame is a 4x4 grid of cells over the whole picture: 12 cells hold the frame index in
binary (white = 1, black = 0), the last 4 a fixed marker. The grid is relative to the frame,
so it survives resizing; flips and colour jitter do not keep it (decode with augmentation off).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

GRID = 4
INDEX_BITS = 12
MARKER = (1, 0, 1, 0)  # the last four cells
LOW, HIGH = 16, 235

# codec -> (ffmpeg encoder, container suffix, encoder options)
CODECS = {
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": 8, "crf": 12, "b:v": 0}),
    "h264": ("libx264", ".mp4", {"preset": "ultrafast", "crf": 12}),
    "mpeg4": ("mpeg4", ".avi", {"q:v": 2}),
}


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 frame that encodes `index` (0 <= index < 4096)."""
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"frame index {index} does not fit in {INDEX_BITS} bits")
    bits = [(index >> b) & 1 for b in range(INDEX_BITS)] + list(MARKER)
    cells = np.array(bits, dtype=np.uint8).reshape(GRID, GRID)
    ys = np.arange(height) * GRID // height
    xs = np.arange(width) * GRID // width
    plane = np.where(cells[ys][:, xs] == 1, HIGH, LOW).astype(np.uint8)
    return np.repeat(plane[:, :, None], 3, axis=2)


def read_index(frame: np.ndarray, layout: str = "HWC") -> int:
    """The index drawn in one decoded frame (uint8 or float, any size); -1 if no marker.

    A frame that is not a pattern frame (e.g. a zero-padded one) has no valid marker.
    """
    f = np.asarray(frame, dtype=np.float32)
    if layout == "CHW":
        f = f.transpose(1, 2, 0)
    gray = f.mean(axis=2) if f.ndim == 3 else f
    h, w = gray.shape
    bits = []
    for r in range(GRID):
        for c in range(GRID):
            y0, y1 = (r * h) // GRID, ((r + 1) * h) // GRID
            x0, x1 = (c * w) // GRID, ((c + 1) * w) // GRID
            # the centre half of the cell: away from edges that codecs blur
            cy, cx = (y1 - y0) // 4, (x1 - x0) // 4
            cell = gray[y0 + cy : y1 - cy, x0 + cx : x1 - cx]
            bits.append(1 if cell.mean() > (LOW + HIGH) / 2 else 0)
    if tuple(bits[INDEX_BITS:]) != MARKER:
        return -1
    return sum(b << i for i, b in enumerate(bits[:INDEX_BITS]))


def write_pattern_video(
    path: str | Path,
    num_frames: int,
    codec: str = "vp9",
    width: int = 128,
    height: int = 96,
    fps: float = 25.0,
    pix_fmt: str = "yuv420p",
    gop: int = 12,
    bframes: int = 0,
) -> Path:
    """Encode frames 0..num_frames-1 as pattern frames with ffmpeg (through ffmpeg-python)."""
    import ffmpeg

    if codec not in CODECS:
        raise ValueError(f"unknown codec '{codec}'; allowed: {sorted(CODECS)}")
    encoder, _, opts = CODECS[codec]
    opts = dict(opts, g=gop)
    if codec == "h264":
        opts["bf"] = bframes
    elif codec == "mpeg4" and bframes:
        opts["bf"] = bframes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = np.stack([pattern_frame(i, width, height) for i in range(num_frames)]).tobytes()
    (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
        .output(str(path), vcodec=encoder, pix_fmt=pix_fmt, an=None, **opts)
        .overwrite_output()
        .run(input=raw, quiet=True)
    )
    return path
