"""Probing real files made at test time: counted frames, codecs, and a status for every bad input."""
import re

import ffmpeg
import pytest

from ascnet.tools.probe import probe
from ascnet.tools.synthetic import write_pattern_video
from ascnet.tools.transcode import transcode


def make_bad_inputs(folder):
    """The bad files of the issue, each beside the status and error text it must get."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.avi").write_bytes(b"")
    (folder / "text.avi").write_text("this is not a video\n" * 20)
    mp4 = write_pattern_video(folder / "full.mp4", 40, codec="h264", width=64, height=48)
    data = mp4.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: cut off
    mp4.unlink()
    (
        ffmpeg.input("sine=frequency=440:duration=1", f="lavfi")
        .output(str(folder / "audio_only.mp4"), acodec="aac")
        .overwrite_output()
        .run(quiet=True)
    )
    write_pattern_video(folder / "ten_frames.webm", 10, codec="vp9", width=64, height=48)
    write_pattern_video(folder / "chroma444.mp4", 24, codec="h264", width=64, height=48, pix_fmt="yuv444p")
    return {
        "missing.avi": ("missing", r"file not found: .*missing\.avi"),
        "empty.avi": ("corrupt", r"^empty file \(0 bytes\)$"),
        "text.avi": ("corrupt", r"^ffprobe cannot read it: Invalid data found when processing input$"),
        "truncated.mp4": ("corrupt", r"^ffprobe cannot read it: moov atom not found; Invalid data found when processing input$"),
        "audio_only.mp4": ("unsupported", r"^no video stream \(1 other stream\(s\), e\.g\. audio only\)$"),
        "ten_frames.webm": ("too_short", r"^10 decodable frames, fewer than the minimum 16 \(--min-frames\)$"),
        "chroma444.mp4": ("unsupported", r"^pixel format yuv444p \(4:4:4 chroma\) is refused by NVDEC.*--transcode h264"),
    }


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    return folder, make_bad_inputs(folder)


@pytest.mark.parametrize("name", ["missing.avi", "empty.avi", "text.avi", "truncated.mp4", "audio_only.mp4",
                                  "ten_frames.webm", "chroma444.mp4"])
def test_bad_input_gets_status_and_readable_error(bad_inputs, name):
    folder, expected = bad_inputs
    status, pattern = expected[name]
    got = probe(folder / name)
    assert got["status"] == status
    assert re.search(pattern, got["error"]), got["error"]


def test_counts_decodable_frames_and_reads_stream(tmp_path):
    path = write_pattern_video(tmp_path / "v.avi", 37, codec="mpeg4", width=64, height=48, fps=12.5)
    got = probe(path)
    assert (got["status"], got["error"]) == ("ok", "")
    assert (got["num_frames"], got["codec"], got["pix_fmt"], got["width"], got["height"]) == (37, "mpeg4", "yuv420p",
                                                                                            64, 48)
    assert got["fps"] == 12.5
    assert got["duration_s"] == pytest.approx(37 / 12.5, abs=0.1)
    assert got["bytes"] == path.stat().st_size and got["mtime"] == path.stat().st_mtime


def test_min_frames_decides_too_short(tmp_path):
    path = write_pattern_video(tmp_path / "v.webm", 20, codec="vp9", width=64, height=48)
    assert probe(path, min_frames=20)["status"] == "ok"
    got = probe(path, min_frames=21)
    assert got["status"] == "too_short" and got["error"].startswith("20 decodable frames, fewer than the minimum 21")


def test_cut_off_file_whose_index_survives_is_corrupt(tmp_path):
    """A faststart mp4 keeps its frame index at the front: cut short, it still opens but lacks frames."""
    src = write_pattern_video(tmp_path / "src.webm", 60, codec="vp9", width=64, height=48)
    full = transcode(src, tmp_path / "full.mp4", "h264")  # faststart
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 8 // 10])
    got = probe(cut)
    assert got["status"] == "corrupt"
    assert re.fullmatch(r"truncated or damaged: \d+ of the 60 frames its container lists decode", got["error"])
    assert 0 < got["num_frames"] < 54
    cut.write_bytes(data[: len(data) // 3])  # not even the first frame
    got = probe(cut)
    assert (got["status"], got["error"]) == ("corrupt", "no frame of its h264 stream decodes: truncated or damaged")
