"""ffprobe -> the manifest's per-video fields and a status.

`num_frames` is the number of frames that actually decode (`-count_frames`, i.e. ffprobe's
`nb_read_frames`), not the container's `nb_frames` nor duration x fps: HMDB-51's DivX .avi
files declare 49 frames and decode 48, and a stream copy cut with `ffmpeg -ss ... -c copy`
lists the pre-roll frames its edit list discards.

The same decoding pass gives, per frame, whether it is a keyframe (`keyframes`: their indices
in the order the decoder returns frames; the pyav loader seeks with it) and when it is shown
(`vfr`: 1 when those times stray from a constant rate by more than a frame, so that the average
fps maps a time to the wrong frame), and every error the decoder, the parser or the demuxer
reports (`decode_errors`: ffprobe's error lines at `-v repeat+error`, so that N identical errors
count N, not the two lines "Last message repeated N-1 times" would make of them; a clean file
has none). `rotation` is the display matrix's turn (degrees counter-clockwise, 0/90/180/270) that
shows the decoded frames upright, as a phone's portrait video carries it.

Statuses (`error` says why whenever it is not `ok`):

- `ok`: frames decode, with at most `max_decode_errors` errors.
- `unsupported`: nothing here decodes it into frames: no video stream, a codec that neither
  libavcodec (ffprobe) nor PyAV decodes, or a pixel format other than 8-bit 4:2:0, which NVDEC
  and DALI's colour conversion refuse (`--transcode` makes a 4:2:0 copy). A codec that PyAV
  decodes but NVDEC does not (AV1 on Hopper, MPEG-2) is `ok`: the loader's backend choice
  refuses `nvdec` for it and names the transcode.
- `corrupt`: empty, unreadable, no frame decodes, more decode errors than allowed, or a stream
  that ends well before the duration its container gives (a cut-off file). Frames that an edit
  list discards are not damage. Also a file ffprobe does not finish within its time limit.
- `too_short`: fewer than `min_frames` decodable frames. `missing`: no file.
"""
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from ascnet.tools.timelimit import TimeLimitError, run

# NVDEC and DALI's colour conversion take 8-bit 4:2:0 only.
SUPPORTED_PIX_FMTS = frozenset({"yuv420p", "yuvj420p", "nv12"})
PROBE_FIELDS = ("num_frames", "fps", "width", "height", "codec", "pix_fmt", "duration_s", "bytes", "mtime",
                "status", "error", "keyframes", "decode_errors", "vfr", "rotation")
_TAG = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")  # "[mov,mp4,... @ 0x55...] "
# per frame: keyframe flag, presentation time, duration (pkt_duration_time up to ffmpeg 6, then
# duration_time; an entry ffprobe does not know is left out); "log": the errors logged while it decoded
_ENTRIES = "frame=key_frame,best_effort_timestamp_time,pkt_duration_time,duration_time:log=message"
_AV_LOG_ERROR = 16
# in the error of every file past its time limit: a build with a higher limit probes them again
TIME_LIMIT = "(--probe-timeout)"
FIX = "re-index with --transcode h264 (GPU) or vp9 (CPU) to make a decodable copy"


def _rate(text: str | None) -> float:
    try:
        r = Fraction(text or "0")
        return float(r)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _seconds(text: str | None) -> float:
    """'12.5' or Matroska's '00:00:12.500000000' in seconds; 0 when absent or unreadable."""
    try:
        return sum(float(p) * 60**i for i, p in enumerate(reversed((text or "0").split(":"))))
    except ValueError:
        return 0.0


def _chroma(pix_fmt: str) -> str:
    if "444" in pix_fmt or pix_fmt in ("rgb24", "bgr24", "gbrp"):
        return "4:4:4 chroma"
    if "422" in pix_fmt:
        return "4:2:2 chroma"
    if any(b in pix_fmt for b in ("p10", "p12", "p16")):
        return "more than 8 bits"
    return "not 8-bit 4:2:0"


@functools.lru_cache(maxsize=None)
def pyav_decodes(codec: str) -> bool:
    """Whether PyAV (the CPU backend, any codec its libavcodec has) has a decoder for `codec`."""
    import av

    try:
        av.Codec(codec, "r")
    except Exception:  # av.codec.codec.UnknownCodecError, or an empty name
        return False
    return True


def _stderr_lines(stderr: bytes, path: Path) -> list[str]:
    """ffprobe's lines without the file name and the demuxer/decoder tags it repeats."""
    lines = (_TAG.sub("", ln.replace(f"{path}: ", "")).strip() for ln in stderr.decode(errors="replace").splitlines())
    return [ln for ln in lines if ln]


def _ffprobe(path: Path, threads: int, timeout: float | None = None) -> tuple[dict, list[str]]:
    """ffprobe's JSON (first video stream, format, every decoded frame) and its error lines.

    At `-v error` each line on stderr is one error of the decoder, its parser or the demuxer;
    `-show_log` also files each under the frame decoded when it was logged, which places it.
    Raises `subprocess.CalledProcessError` (with stderr) when ffprobe cannot read the file,
    `TimeLimitError` when it runs past `timeout` seconds (it is killed).
    """
    # repeat: every error on its own line (ffprobe would fold repeats into "Last message repeated N times")
    cmd = ["ffprobe", "-v", "repeat+error", "-select_streams", "v:0", "-count_frames", "-threads", str(threads),
           "-show_entries", _ENTRIES, "-show_log", str(_AV_LOG_ERROR), "-show_streams", "-show_format",
           "-of", "json", str(path)]
    done = run(cmd, timeout)
    return json.loads(done.stdout.decode(errors="replace")), _stderr_lines(done.stderr, path)


def _frame_times(frames: list[dict], fps: float) -> tuple[list[float], float]:
    """(presentation time of each frame that has one, the end of the last frame shown) in seconds."""
    times, end = [], 0.0
    for f in frames:
        if "best_effort_timestamp_time" not in f:
            continue
        t = float(f["best_effort_timestamp_time"])
        d = float(f.get("duration_time") or f.get("pkt_duration_time") or (1 / fps if fps else 0.0))
        times.append(t)
        end = max(end, t + d)
    return times, end


def _variable_rate(times: list[float]) -> int:
    """1 when presentation times stray from the constant rate through the first and last frame by
    more than one frame at that rate; 0 when they do not (timestamp rounding, a 3:2 cadence);
    -1 when fewer than three frames carry a time."""
    t = np.sort(np.asarray(times, dtype=np.float64))
    if len(t) < 3 or t[-1] <= t[0]:
        return -1
    even = np.linspace(t[0], t[-1], len(t))
    return int(np.abs(t - even).max() > (t[-1] - t[0]) / (len(t) - 1))


def _rotation(stream: dict) -> int:
    """The display matrix's turn in degrees counter-clockwise (ffprobe's side data), as 0, 90, 180 or 270."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]) / 90)) % 4 * 90
    return 0


def _errors_text(count: int, first_frame: int, first: str) -> str:
    return f"{count} decode error{'s' if count != 1 else ''}, first at frame ~{first_frame}: {first}"


def classify(info: dict, min_frames: int, max_decode_errors: int = 0) -> tuple[str, str]:
    """(status, error) of a probed file whose video stream decoded; re-run when an option changes.

    `info` holds the probe's fields, and `first_error` (the error text) when decode_errors > 0.
    """
    if not pyav_decodes(info["codec"]):
        return "unsupported", f"codec {info['codec']}: PyAV has no decoder for it, so no backend here reads it; {FIX}"
    if info["decode_errors"] > max_decode_errors:
        what = info.get("first_error") or f"{info['decode_errors']} decode errors"
        return "corrupt", (f"{what}; more than --max-decode-errors {max_decode_errors}: its damaged frames would "
                           "reach training concealed")
    if info["pix_fmt"] not in SUPPORTED_PIX_FMTS:
        return ("unsupported", f"pixel format {info['pix_fmt']} ({_chroma(info['pix_fmt'])}) is refused by NVDEC, "
                f"which takes 8-bit 4:2:0; {FIX}")
    if info["num_frames"] < min_frames:
        return "too_short", f"{info['num_frames']} decodable frames, fewer than the minimum {min_frames} (--min-frames)"
    return "ok", ""


def probe(path: str | Path, min_frames: int = 16, threads: int = 0, max_decode_errors: int = 0,
          timeout: float | None = None) -> dict:
    """The manifest fields of one file (`PROBE_FIELDS`); never raises for a bad file.

    Statuses as in the module docstring. `threads`: decoder threads of the ffprobe process
    (0: ffmpeg's choice). `decode_errors` and `vfr` are -1 (unknown) where ffprobe read no stream.
    `timeout`: seconds ffprobe may take (None: no limit); past it the file is `corrupt`, `error`
    naming the limit (`TIME_LIMIT` in it).
    """
    path = Path(path)
    out = {"num_frames": 0, "fps": 0.0, "width": 0, "height": 0, "codec": "", "pix_fmt": "", "duration_s": 0.0,
           "bytes": 0, "mtime": 0.0, "status": "ok", "error": "", "keyframes": [], "decode_errors": -1, "vfr": -1,
           "rotation": 0}
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {**out, "status": "missing", "error": f"file not found: {path}"}
    out.update(bytes=st.st_size, mtime=st.st_mtime)
    if st.st_size == 0:
        return {**out, "status": "corrupt", "error": "empty file (0 bytes)"}
    try:
        info, errors = _ffprobe(path, threads, timeout)
    except TimeLimitError as e:
        return {**out, "status": "corrupt", "error": f"{e} {TIME_LIMIT}: a huge file, a stalled disk or a file that "
                "hangs the decoder; raise the limit to give it longer (it is probed again then)"}
    except subprocess.CalledProcessError as e:
        lines = list(dict.fromkeys(_stderr_lines(e.stderr or b"", path)))
        return {**out, "status": "corrupt",
                "error": f"ffprobe cannot read it: {'; '.join(lines[-3:]) or 'ffprobe failed without a message'}"}
    streams = info.get("streams") or []
    fmt = info.get("format") or {}
    if not streams:
        n = int(fmt.get("nb_streams", 0) or 0)
        return {**out, "status": "unsupported", "error": f"no video stream ({n} other stream(s), e.g. audio only)"}
    s = streams[0]
    fps = _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate"))
    frames = int(s.get("nb_read_frames", 0) or 0)
    decoded = info.get("frames") or []
    flags = [int(f.get("key_frame", 0)) for f in decoded]
    keyframes = [i for i, k in enumerate(flags) if k] if len(flags) == frames else []
    times, end = _frame_times(decoded, fps)
    # the stream's own duration (Matroska keeps it in a tag); the container's may be the audio's
    # (Matroska's DURATION tag is where the stream ends: its first timestamp taken away)
    declared = _seconds(s.get("duration")) or max(
        _seconds((s.get("tags") or {}).get("DURATION")) - _seconds(s.get("start_time")), 0.0)
    duration = declared or _seconds(fmt.get("duration")) or (frames / fps if fps else 0.0)
    out.update(num_frames=frames, keyframes=keyframes, fps=fps, width=int(s.get("width", 0) or 0),
               height=int(s.get("height", 0) or 0), codec=s.get("codec_name", ""), pix_fmt=s.get("pix_fmt", ""),
               duration_s=duration, decode_errors=len(errors), vfr=_variable_rate(times), rotation=_rotation(s))
    # the first error the decoder logged while decoding a frame, else (none placed) ffprobe's first
    first_frame, first = next(((i, f["logs"][0].get("message", "")) for i, f in enumerate(decoded) if f.get("logs")),
                              (len(decoded), errors[0] if errors else ""))
    damage = _errors_text(len(errors), first_frame, _TAG.sub("", first).strip().rstrip(".")) if errors else ""
    if frames == 0:
        if not pyav_decodes(out["codec"]):
            tag = s.get("codec_tag_string", "")
            return {**out, "status": "unsupported", "error": f"its video codec ({out['codec'] or 'unknown'}, tag {tag}) "
                    "has no decoder in ffprobe's libavcodec nor in PyAV: no backend here reads it; convert it to "
                    "H.264 with a tool that decodes it"}
        return {**out, "status": "corrupt", "error": f"no frame of its {out['codec']} stream decodes: truncated or "
                f"damaged{f' ({damage})' if damage else ''}"}
    start = _seconds(s.get("start_time")) if s.get("start_time") else min(times, default=0.0)
    # cut off: the container's index outlives the frames (an edit list's pre-roll is not shown, nor counted)
    if times and declared and declared - (end - start) > max(0.5, 0.05 * declared):
        return {**out, "status": "corrupt",
                "error": f"truncated or damaged: its frames end at {end - start:.2f} s of the {declared:.2f} s its "
                         f"stream lists ({frames} frames decode{f'; {damage}' if damage else ''})"}
    status, error = classify({**out, "first_error": damage}, min_frames, max_decode_errors)
    return {**out, "status": status, "error": error}
