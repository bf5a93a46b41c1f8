"""Probing real files made at test time: counted frames, codecs, and a status for every bad input."""
import random
import re

import ffmpeg
import numpy as np
import pytest

from ascnet.pipelines.backends import BackendError, choose_backend
from ascnet.pipelines.decode import decode_frames
from ascnet.tools.probe import probe
from ascnet.tools.synthetic import CODECS, read_index, write_pattern_video
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
    assert re.match(r"truncated or damaged: its frames end at \d\.\d\d s of the 2\.40 s its stream lists \(\d+ frames decode",
                    got["error"]), got["error"]
    assert 0 < got["num_frames"] < 54
    cut.write_bytes(data[: len(data) // 3])  # not even the first frame
    got = probe(cut)
    assert got["status"] == "corrupt"
    assert got["error"].startswith("no frame of its h264 stream decodes: truncated or damaged"), got["error"]


def damaged_copy(src, dst, at=0.7, size=64):
    """`src` with `size` bytes at `at` of its length overwritten (seeded): damage inside the stream."""
    data = bytearray(src.read_bytes())
    start = int(len(data) * at)
    data[start:start + size] = random.Random(0).randbytes(size)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_mid_stream_damage_is_counted_and_named(tmp_path, codec):
    """Every frame but a few still decodes (the old packet-count rule passed it): the errors decide."""
    suffix = CODECS[codec][1]
    clean = write_pattern_video(tmp_path / f"clean{suffix}", 60, codec, 128, 96)
    got = probe(clean)
    assert (got["status"], got["error"], got["decode_errors"]) == ("ok", "", 0)
    bad = probe(damaged_copy(clean, tmp_path / f"bad{suffix}"))
    assert bad["status"] == "corrupt" and bad["decode_errors"] > 0
    assert bad["num_frames"] >= 0.9 * 60
    assert re.fullmatch(rf"{bad['decode_errors']} decode errors?, first at frame ~\d+: [^;]+; more than "
                        r"--max-decode-errors 0: its damaged frames would reach training concealed", bad["error"]), bad["error"]
    lenient = probe(tmp_path / f"bad{suffix}", max_decode_errors=bad["decode_errors"])
    assert (lenient["status"], lenient["error"], lenient["decode_errors"]) == ("ok", "", bad["decode_errors"])


def test_stream_copy_cut_with_an_edit_list_is_ok(tmp_path):
    """`ffmpeg -ss 1.7 -i src -t 10 -c copy` keeps the pre-roll from the keyframe before 1.7 s and
    marks it discarded: the container lists 351 frames, 300 are shown, from source frame 51."""
    src = write_pattern_video(tmp_path / "src.mp4", 360, "h264", 64, 48, fps=30, gop=60)
    cut = tmp_path / "cut.mp4"
    ffmpeg.input(str(src), ss=1.7).output(str(cut), t=10, c="copy").overwrite_output().run(quiet=True)
    assert int(ffmpeg.probe(str(cut))["streams"][0]["nb_frames"]) == 351
    got = probe(cut)
    assert (got["status"], got["error"], got["decode_errors"], got["num_frames"], got["vfr"]) == ("ok", "", 0, 300, 0)
    frames = decode_frames(str(cut), np.array([0, 150, 299]), got["fps"], got["keyframes"])
    assert [read_index(f) for f in frames] == [51, 201, 350]


@pytest.mark.parametrize("codec,name,opts", [("mpeg2video", "v.mpg", {}), ("av1", "v.mkv", {"vcodec": "libaom-av1",
                                                                                        "cpu-used": 8})])
def test_a_codec_only_nvdec_refuses_is_ok_and_nvdec_names_the_transcode(tmp_path, codec, name, opts):
    path = tmp_path / name
    ffmpeg.input("testsrc2=size=64x48:rate=25:duration=1", f="lavfi").output(str(path), **{"vcodec": codec, **opts}) \
        .overwrite_output().run(quiet=True)
    got = probe(path)
    assert (got["status"], got["error"], got["codec"], got["num_frames"]) == ("ok", "", codec, 25)
    with pytest.raises(BackendError, match=r"NVDEC cannot decode codec\(s\) \['av1', 'mpeg2video'\]: re-index with "
                       r"--transcode h264 --transcode-dir DIR \(ascnet-index build\), or use backend='pyav'"):
        choose_backend("nvdec", "cuda", ["h264", "mpeg2video", "av1"])


def test_a_codec_nothing_here_decodes_is_unsupported(tmp_path):
    """A Matroska video track whose codec id no decoder knows (made by renaming MPEG-4's id)."""
    mkv = tmp_path / "v.mkv"
    ffmpeg.input(str(write_pattern_video(tmp_path / "v.avi", 20, "mpeg4", 64, 48))).output(str(mkv), c="copy") \
        .overwrite_output().run(quiet=True)
    mkv.write_bytes(mkv.read_bytes().replace(b"V_MPEG4/ISO/ASP", b"V_QQQQQ/ISO/ASP", 1))
    got = probe(mkv)
    assert got["status"] == "unsupported" and got["num_frames"] == 0
    assert got["error"].startswith("its video codec (unknown, tag [0][0][0][0]) has no decoder in ffprobe's libavcodec "
                                   "nor in PyAV: no backend here reads it"), got["error"]


def write_vfr_video(path):
    """2 s at 15 fps then 2 s at 30 fps in one H.264 stream, timestamps kept: 90 frames, 22.7 fps on average."""
    parts = [ffmpeg.input(f"testsrc2=size=64x48:rate={r}:duration=2", f="lavfi") for r in (15, 30)]
    ffmpeg.concat(*parts).output(str(path), vcodec="libx264", preset="ultrafast", pix_fmt="yuv420p", fps_mode="vfr") \
        .overwrite_output().run(quiet=True)
    return path


def test_variable_frame_rate_is_recorded(tmp_path):
    got = probe(write_vfr_video(tmp_path / "vfr.mp4"))
    assert (got["status"], got["num_frames"], got["vfr"]) == ("ok", 90, 1)
    assert got["fps"] == pytest.approx(90 / 3.97, rel=0.01)  # the average: 90 frames over 3.97 s
    # 30 fps in WebM's 1 ms timestamps: durations of 33 and 34 ms, a constant rate all the same
    constant = probe(write_pattern_video(tmp_path / "cfr.webm", 40, "vp9", 64, 48, fps=30))
    assert (constant["status"], constant["vfr"]) == ("ok", 0)


def test_an_error_repeated_in_many_frames_counts_once_per_occurrence(tmp_path):
    """Every other MJPEG frame cut short by an early end-of-image marker: 25 damaged frames, most of them
    logging the one same error, which ffprobe would fold into "Last message repeated N times"."""
    src = tmp_path / "mj.avi"
    ffmpeg.input("testsrc2=size=64x48:rate=25:duration=2", f="lavfi").output(
        str(src), vcodec="mjpeg", **{"q:v": 3}, pix_fmt="yuvj420p").overwrite_output().run(quiet=True)
    data = bytearray(src.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    for s in starts[::2]:
        scan = data.find(b"\xff\xda", s)
        data[scan + 60:scan + 62] = b"\xff\xd9"
    (tmp_path / "bad.avi").write_bytes(bytes(data))
    got = probe(tmp_path / "bad.avi", max_decode_errors=len(starts[::2]) - 1)
    assert got["num_frames"] == 50 and got["decode_errors"] >= 25
    assert got["status"] == "corrupt" and "more than --max-decode-errors 24" in got["error"]
