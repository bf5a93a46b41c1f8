"""A zoo of hard video files, tiny and quick to make, whose frames carry an index drawn in their
pixels (`ascnet.tools.synthetic`): B-frames in open GOPs, an edit-list cut, a first timestamp
that is not 0, one missing timestamp slot in intra-only MJPEG and H.264, odd width and height,
interlaced coding, a phone-style rotation, variable frame rate and its constant-rate copy.

`truth(path, rotation)` is what counting from frame 0 in decode order gives: the index drawn
in each frame, read with no seeking at all. A reader is exact when it returns these.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from ascnet.tools.synthetic import pattern_frame, read_index

W, H, N, FPS = 64, 48, 48, 25
GAP_AT = 20  # the frame after the missing timestamp slot
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p"]
VP9 = ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-deadline", "realtime", "-cpu-used", "8", "-crf", "12", "-b:v", "0", "-g", "12"]


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def _raw(folder: Path, name: str, width: int = W, height: int = H, turn: int = 0) -> list:
    """ffmpeg input arguments for N pattern frames (turned k*90 degrees clockwise when `turn`)."""
    frames = [np.rot90(pattern_frame(i, width, height), -turn) for i in range(N)]
    path = folder / f"{name}.rgb"
    path.write_bytes(np.ascontiguousarray(np.stack(frames)).tobytes())
    h, w = frames[0].shape[:2]
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", FPS, "-i", path]


def make_zoo(folder: Path) -> dict[str, Path]:
    """name -> file, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = _raw(folder, "raw")
    out = {name: folder / name for name in (
        "open_gop.mp4", "edit_list.mp4", "start_offset.webm", "mjpeg_gap.mkv", "intra_h264_gap.mkv",
        "odd_size.webm", "interlaced.mp4", "rotated.mp4", "vfr.mp4", "vfr_cfr.webm")}
    _ffmpeg(*raw, *X264, "-preset", "fast", "-g", 12, "-bf", 3, "-x264-params", "open-gop=1", out["open_gop.mp4"])
    closed = folder / "closed_b.mp4"
    _ffmpeg(*raw, *X264, "-g", 12, "-bf", 2, closed)
    _ffmpeg("-ss", 0.5, "-i", closed, "-c", "copy", out["edit_list.mp4"])  # an edit list hides the pre-roll
    _ffmpeg(*raw, *VP9, "-output_ts_offset", 3.3, out["start_offset.webm"])
    gap = ["-vf", f"setpts=N+gte(N\\,{GAP_AT})", "-fps_mode", "passthrough"]
    _ffmpeg(*raw, *gap, "-c:v", "mjpeg", "-q:v", 3, "-pix_fmt", "yuvj420p", out["mjpeg_gap.mkv"])
    _ffmpeg(*raw, *gap, *X264, "-g", 1, out["intra_h264_gap.mkv"])
    _ffmpeg(*_raw(folder, "odd", W - 1, H - 1), *VP9, out["odd_size.webm"])
    _ffmpeg(*raw, *X264, "-g", 12, "-flags", "+ildct+ilme", "-x264-params", "interlaced=1:tff=1", out["interlaced.mp4"])
    # a phone's portrait video: frames stored sideways, a display matrix that turns them upright
    sideways = folder / "sideways.mp4"
    _ffmpeg(*_raw(folder, "portrait", H, W, turn=1), *X264, "-g", 12, sideways)
    _ffmpeg("-i", sideways, "-c", "copy", "-metadata:s:v", "rotate=90", out["rotated.mp4"])
    _ffmpeg(*raw, "-vf", "setpts=if(lt(N\\,16)\\,2*N\\,N+16)", "-fps_mode", "passthrough", *X264, "-g", 12, out["vfr.mp4"])
    _ffmpeg("-i", out["vfr.mp4"], *VP9, "-fps_mode", "cfr", "-r", 20, out["vfr_cfr.webm"])
    for p in folder.glob("*.rgb"):
        p.unlink()
    return out


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """A decoded (H, W, 3) frame turned as its display matrix says (degrees counter-clockwise)."""
    return np.rot90(frame, (rotation // 90) % 4)


def truth(path: Path, rotation: int = 0) -> list[int]:
    """The index drawn in each frame, in decode order, read from frame 0 with no seeking."""
    import av

    with av.open(str(path)) as c:
        return [read_index(upright(f.to_ndarray(format="rgb24"), rotation)) for f in c.decode(video=0)]
