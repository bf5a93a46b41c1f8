"""ffprobe (through ffmpeg-python) -> the manifest's per-video fields and a status.

`num_frames` is the number of frames that actually decode (`-count_frames`, i.e. ffprobe's
`nb_read_frames`), not the container's `nb_frames` nor duration x fps: HMDB-51's DivX .avi
files declare 49 frames and decode 48, and a decoder asked for frame 48 gets padding.

The same decoding pass lists which frames are keyframes (`keyframes`: their indices in the
order the decoder returns frames). The pyav loader seeks with it, and the decode benchmark
counts from it what a clip costs each decoder.
"""
from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import ffmpeg

# What the pipelines decode: NVDEC on the GPU, PyAV/DALI on the CPU (DESIGN.md §2).
# AV1 is left out: the H100's NVDEC has none.
SUPPORTED_CODECS = frozenset({"h264", "hevc", "mpeg4", "vp8", "vp9", "mjpeg"})
# NVDEC and DALI's colour conversion take 8-bit 4:2:0 only.
SUPPORTED_PIX_FMTS = frozenset({"yuv420p", "yuvj420p", "nv12"})
PROBE_FIELDS = ("num_frames", "fps", "width", "height", "codec", "pix_fmt", "duration_s", "bytes", "mtime",
                "status", "error", "keyframes")
_TAG = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")  # "[mov,mp4,... @ 0x55...] "
FIX = "re-index with --transcode h264 (GPU) or vp9 (CPU) to make a decodable copy"


def _rate(text: str | None) -> float:
    try:
        r = Fraction(text or "0")
        return float(r)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _chroma(pix_fmt: str) -> str:
    if "444" in pix_fmt or pix_fmt in ("rgb24", "bgr24", "gbrp"):
        return "4:4:4 chroma"
    if "422" in pix_fmt:
        return "4:2:2 chroma"
    if any(b in pix_fmt for b in ("p10", "p12", "p16")):
        return "more than 8 bits"
    return "not 8-bit 4:2:0"


def _ffprobe_message(err: ffmpeg.Error, path: Path) -> str:
    """The last lines ffprobe wrote, without the file name and demuxer tags it repeats."""
    lines = []
    for ln in (err.stderr or b"").decode(errors="replace").splitlines():
        ln = _TAG.sub("", ln.replace(f"{path}: ", "")).strip()
        if ln and ln not in lines:
            lines.append(ln)
    return "; ".join(lines[-3:]) or "ffprobe failed without a message"


def classify(info: dict, min_frames: int) -> tuple[str, str]:
    """(status, error) of a probed file whose video stream decoded; re-run when min_frames changes."""
    if info["codec"] not in SUPPORTED_CODECS:
        return "unsupported", f"codec {info['codec']} is not decodable by the pipelines; {FIX}"
    if info["pix_fmt"] not in SUPPORTED_PIX_FMTS:
        return ("unsupported", f"pixel format {info['pix_fmt']} ({_chroma(info['pix_fmt'])}) is refused by NVDEC, "
                f"which takes 8-bit 4:2:0; {FIX}")
    if info["num_frames"] < min_frames:
        return "too_short", f"{info['num_frames']} decodable frames, fewer than the minimum {min_frames} (--min-frames)"
    return "ok", ""


def probe(path: str | Path, min_frames: int = 16, threads: int = 0) -> dict:
    """The manifest fields of one file (`PROBE_FIELDS`); never raises for a bad file.

    status: ok | unsupported (codec, pixel format, no video) | corrupt (unreadable, empty,
    truncated) | too_short (< min_frames decodable frames) | missing; error says why.
    `threads`: decoder threads of the ffprobe process (0: ffmpeg's choice).
    """
    path = Path(path)
    out = {"num_frames": 0, "fps": 0.0, "width": 0, "height": 0, "codec": "", "pix_fmt": "", "duration_s": 0.0,
           "bytes": 0, "mtime": 0.0, "status": "ok", "error": "", "keyframes": []}
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {**out, "status": "missing", "error": f"file not found: {path}"}
    out.update(bytes=st.st_size, mtime=st.st_mtime)
    if st.st_size == 0:
        return {**out, "status": "corrupt", "error": "empty file (0 bytes)"}
    try:
        info = ffmpeg.probe(str(path), v="error", select_streams="v:0", count_frames=None, threads=threads,
                            show_entries="frame=key_frame")
    except ffmpeg.Error as e:
        return {**out, "status": "corrupt", "error": f"ffprobe cannot read it: {_ffprobe_message(e, path)}"}
    streams = info.get("streams") or []
    fmt = info.get("format") or {}
    if not streams:
        n = int(fmt.get("nb_streams", 0) or 0)
        return {**out, "status": "unsupported", "error": f"no video stream ({n} other stream(s), e.g. audio only)"}
    s = streams[0]
    fps = _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate"))
    frames = int(s.get("nb_read_frames", 0) or 0)
    duration = float(s.get("duration") or fmt.get("duration") or (frames / fps if fps else 0.0))
    flags = [int(f.get("key_frame", 0)) for f in info.get("frames") or []]
    keyframes = [i for i, k in enumerate(flags) if k] if len(flags) == frames else []
    out.update(num_frames=frames, keyframes=keyframes, fps=fps, width=int(s.get("width", 0) or 0), height=int(s.get("height", 0) or 0),
               codec=s.get("codec_name", ""), pix_fmt=s.get("pix_fmt", ""), duration_s=duration)
    if frames == 0:
        codec = out["codec"] or "unknown"
        return {**out, "status": "corrupt", "error": f"no frame of its {codec} stream decodes: truncated or damaged"}
    declared = int(s.get("nb_frames", 0) or 0)
    if declared and frames < 0.9 * declared:  # a cut-off file whose index still lists every frame
        return {**out, "status": "corrupt",
                "error": f"truncated or damaged: {frames} of the {declared} frames its container lists decode"}
    status, error = classify(out, min_frames)
    return {**out, "status": status, "error": error}
