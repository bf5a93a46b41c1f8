"""Decoder-friendly copies (ffmpeg through ffmpeg-python); the originals are never touched.

A random clip costs about `16*s + G/2` decoded frames for keyframe interval G (DESIGN.md §3),
so copies get a short fixed GOP, no B-frames and 8-bit 4:2:0 (what NVDEC takes): H.264 with
`-tune fastdecode` for the GPU path, VP9 for DALI's CPU decoder. No audio. Every frame is kept
as it is, except that a variable-frame-rate original is given a constant rate (its average):
the pipelines map a time to a frame through the fps. A copy is upright: ffmpeg turns the frames
as the original's display matrix says (a phone's portrait video) and the copy carries none, so
the DALI decoders, which do not read the matrix, get the frames the way they are shown.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Literal, get_args

import ffmpeg

from ascnet.tools.timelimit import TimeLimitError, run

Codec = Literal["h264", "vp9"]  # h264 for NVDEC, vp9 for DALI's CPU decoder
CODECS = get_args(Codec)
SUFFIX = {"h264": ".mp4", "vp9": ".webm"}
GOP = 16


class TranscodeError(RuntimeError):
    """ffmpeg could not make the copy; the message names the source and ffmpeg's reason."""


def copy_path(video_id: str, codec: str, out_dir: str | Path) -> Path:
    """Where the copy of `video_id` goes: the same relative path under `out_dir`, new suffix."""
    return (Path(out_dir) / video_id).with_suffix(SUFFIX[codec])


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(w, h) of frames coded `width` x `height` once turned `rotation` degrees (the manifest's `rotation`)."""
    return (height, width) if (rotation // 90) % 2 == 1 else (width, height)


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(w, h) with the short side `short_side` and the aspect kept; both even (4:2:0 needs it).
    Pass the size shown (`display_size`): the copy's frames are turned before they are scaled."""
    if not short_side:
        return width - width % 2, height - height % 2
    if width <= height:
        w, h = short_side, round(height * short_side / width)
    else:
        w, h = round(width * short_side / height), short_side
    return w + w % 2, h + h % 2


def is_finished(src: str | Path, dst: str | Path) -> bool:
    """A copy counts as done when it exists and is not older than its source (temp+rename)."""
    dst = Path(dst)
    return dst.is_file() and dst.stat().st_size > 0 and dst.stat().st_mtime >= Path(src).stat().st_mtime


def transcode(src: str | Path, dst: str | Path, codec: str = "h264", *, size: tuple[int, int] | None = None,
              gop: int = GOP, crf: int | None = None, threads: int = 0, cfr: float | None = None,
              timeout: float | None = None) -> Path:
    """Write `dst` from `src` (first video stream only) unless a finished copy is there.

    `cfr`: a constant frame rate for the copy (frames repeated or dropped to keep it, `fps_mode
    cfr`); None keeps every decoded frame once, so the frame count stays the source's.
    `timeout`: seconds ffmpeg may take (None: no limit); past it ffmpeg is killed and
    `TranscodeError` names the limit.

    ffmpeg writes a temp name beside `dst` that is renamed when complete, so an interrupted
    run leaves no half copy under the final name and is simply redone next time.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown transcode codec '{codec}'; allowed: {', '.join(CODECS)}")
    src, dst = Path(src), Path(dst)
    if is_finished(src, dst):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    video = ffmpeg.input(str(src))["v:0"]
    if size is not None:
        video = video.filter("scale", size[0], size[1])
    common = dict(pix_fmt="yuv420p", g=gop, keyint_min=gop, an=None, sn=None, threads=threads,
                  **({"fps_mode": "cfr", "r": cfr} if cfr else {"fps_mode": "passthrough"}))
    if codec == "h264":
        opts = dict(f="mp4", vcodec="libx264", preset="veryfast", tune="fastdecode", crf=18 if crf is None else crf,
                    bf=0, sc_threshold=0, movflags="+faststart")
    else:
        opts = dict(f="webm", vcodec="libvpx-vp9", deadline="good", **{"cpu-used": 4, "row-mt": 1, "b:v": 0},
                    crf=30 if crf is None else crf)
    try:
        run(video.output(str(tmp), **common, **opts).overwrite_output().compile(), timeout)
        os.replace(tmp, dst)
    except TimeLimitError as e:
        tmp.unlink(missing_ok=True)
        raise TranscodeError(f"{src}: the {codec} copy: {e} (--probe-timeout); raise the limit to give it longer") from e
    except subprocess.CalledProcessError as e:
        tmp.unlink(missing_ok=True)
        lines = [ln for ln in (e.stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
        raise TranscodeError(f"{src}: ffmpeg could not transcode to {codec}: {lines[-1] if lines else e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
