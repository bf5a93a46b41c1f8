"""Frame exactness on a zoo of hard files (tests/zoo.py): for random windows, every backend returns
exactly the frames that counting from frame 0 in decode order gives."""
from pathlib import Path

import numpy as np
import pytest

from ascnet.pipelines.decode import FrameReader
from ascnet.tools.probe import probe
from ascnet.tools.synthetic import pattern_frame, read_index
from tests.zoo import make_zoo, truth, upright

DALI_FILES = ("start_offset.webm", "odd_size.webm", "vfr_cfr.webm", "mjpeg_gap.mkv")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict:
    """name -> (file, its probe, the true index of each frame)."""
    out = {}
    for name, path in make_zoo(tmp_path_factory.mktemp("zoo")).items():
        info = probe(path)
        out[name] = (path, info, truth(path, info.get("rotation", 0)))
    return out


def windows(rng: np.random.Generator, n: int, count: int) -> list[np.ndarray]:
    """Random requests: a window of 1..8 frames at stride 1..3, sometimes two apart (a pair)."""
    out = []
    for _ in range(count):
        parts = []
        for _ in range(1 + int(rng.random() < 0.3)):
            length, stride = int(rng.integers(1, 9)), int(rng.integers(1, 4))
            start = int(rng.integers(0, max(n - (length - 1) * stride, 1)))
            parts.append(np.minimum(start + stride * np.arange(length), n - 1))
        out.append(np.concatenate(parts))
    return out


def test_the_zoo_is_what_it_says(zoo):
    for name, (_, info, true) in zoo.items():
        assert info["status"] == "ok", (name, info["error"])
        assert len(true) == info["num_frames"] and min(true) >= 0, name
    assert zoo["edit_list.mp4"][2][0] > 0  # the cut starts past its pre-roll
    assert zoo["mjpeg_gap.mkv"][1]["vfr"] == 0 and zoo["vfr.mp4"][1]["vfr"] == 1
    assert len(zoo["mjpeg_gap.mkv"][1]["keyframes"]) == zoo["mjpeg_gap.mkv"][1]["num_frames"]  # intra-only


def test_pyav_returns_the_counted_frames_on_random_windows(zoo):
    rng = np.random.default_rng(0)
    wrong = []
    for name, (path, info, true) in sorted(zoo.items()):
        reader = FrameReader(str(path), info["fps"], info["keyframes"])  # kept open: forward reads and jumps
        try:
            for want in windows(rng, info["num_frames"], 25):
                got = reader.read(want)
                seen = [read_index(upright(got[int(f)].to_ndarray(format="rgb24"), info.get("rotation", 0))) for f in want]
                if seen != [true[f] for f in want]:
                    wrong.append((name, want.tolist(), seen))
        finally:
            reader.close()
    assert not wrong, f"{len(wrong)} of 250 windows hold other frames, e.g. {wrong[:3]}"


def dali_read(path: Path, requests: list[np.ndarray]) -> list[list[int]]:
    """The indices drawn in the frames DALI's CPU decoder returns for each request (distinct, increasing)."""
    from nvidia.dali import fn, pipeline_def

    data = np.fromfile(path, dtype=np.uint8)
    batch = 10

    @pipeline_def(batch_size=batch, num_threads=1, device_id=None)
    def pipe():
        src = fn.external_source(source=feed, num_outputs=2, batch=True, batch_info=True)
        return fn.decoders.video(src[0], device="cpu", frames=src[1], pad_mode="none")

    def feed(info):
        chunk = requests[info.iteration * batch:(info.iteration + 1) * batch]
        if len(chunk) < batch:
            raise StopIteration
        return [data] * batch, [c.astype(np.int32) for c in chunk]

    p = pipe()
    p.build()
    out = []
    for _ in range(len(requests) // batch):
        (frames,) = p.run()
        out += [[read_index(f) for f in np.asarray(frames[i])] for i in range(batch)]
    return out


def test_dali_cpu_returns_the_counted_frames_on_random_windows(zoo):
    rng = np.random.default_rng(1)
    wrong = []
    for name in DALI_FILES:
        path, info, true = zoo[name]
        want = [np.unique(w) for w in windows(rng, info["num_frames"], 50)]
        for w, seen in zip(want, dali_read(path, want)):
            if seen != [true[f] for f in w]:
                wrong.append((name, w.tolist(), seen))
    assert not wrong, f"{len(wrong)} of 200 windows hold other frames, e.g. {wrong[:3]}"


# ---- rotation: a phone's portrait video ---------------------------------------------------------
def test_rotation_is_read_and_frames_come_out_upright(zoo, tmp_path):
    from ascnet.clips import IDENTITY
    from ascnet.pipelines.decode import Cut, cut_clip, decode_frames, read_frames

    path, info, _ = zoo["rotated.mp4"]
    assert (info["rotation"], info["width"], info["height"]) == (90, 64, 48)  # coded sideways
    assert all(zoo[n][1]["rotation"] == 0 for n in zoo if n != "rotated.mp4")
    want = np.array([3, 30, 31, 47])
    frames = decode_frames(str(path), want, info["fps"], info["keyframes"], rotation=90)
    assert frames.shape == (4, 64, 48, 3)  # portrait, as shown
    assert [read_index(f) for f in frames] == want.tolist()
    sideways = decode_frames(str(path), want, info["fps"], info["keyframes"])
    assert [read_index(f) for f in sideways] != want.tolist()
    got, _ = read_frames(str(path), want, info["fps"], info["keyframes"])
    short = cut_clip([got[int(f)] for f in want], Cut("short", 24), None, 90)
    assert short.shape == (4, 32, 24, 3) and [read_index(f) for f in short] == want.tolist()
    whole = cut_clip([got[int(f)] for f in want], Cut("augment", 16), IDENTITY, 90)  # the box: the whole frame
    assert [read_index(f) for f in whole] == want.tolist()


def rotated_manifest(zoo, root: Path, codec: str = "h264"):
    from ascnet.manifest import Manifest

    path, info, _ = zoo["rotated.mp4"]
    (root / path.name).write_bytes(path.read_bytes())
    row = dict(video_id=path.name, path=path.name, label=0, label_name="c", split="train", status="ok",
               **{k: info[k] for k in ("num_frames", "fps", "width", "height", "keyframes", "rotation")}, codec=codec)
    return Manifest.from_rows([row, {**row, "video_id": "b.mp4", "path": path.name}], root=root)


def test_the_loaders_decode_upright_and_the_dali_decoders_ask_for_upright_copies(zoo, tmp_path):
    from ascnet.clips import ClipSpec, denormalize
    from ascnet.pipelines.backends import BackendError
    from ascnet.pipelines.decode import Cut, cut_clip, read_frames
    from ascnet.pipelines.loader import build_eval_loader, build_pair_loader

    m = rotated_manifest(zoo, tmp_path)
    table = m.decode_table()
    assert table[["width", "height", "rotation"]].values.tolist() == [[48, 64, 90]] * 2  # the size shown
    loader = build_eval_loader(m, ClipSpec(clip_len=4, crop_size=24), split="train", batch_size=2, clips_per_video=1,
                               crops="center", backend="pyav", workers=1)
    batch = next(iter(loader))
    loader.close()
    got = denormalize(batch["clips"])[0].permute(1, 2, 3, 0).numpy()  # (T, 24, 24, 3)
    path, info, _ = zoo["rotated.mp4"]
    frames, _ = read_frames(str(path), range(4), info["fps"], info["keyframes"])
    shown = cut_clip([frames[i] for i in range(4)], Cut("short", 24), None, 90)  # (4, 32, 24, 3) upright
    assert np.abs(got - shown[:, 4:28]).mean() < 3  # its centre crop
    (tmp_path / "vp9").mkdir()
    with pytest.raises(BackendError, match=r"2 video\(s\) carry a display rotation that backend 'dali-cpu' does not "
                                           r"apply .*rotated\.mp4 \(90 degrees\): re-index with --transcode"):
        build_pair_loader(rotated_manifest(zoo, tmp_path / "vp9", "vp9"), ClipSpec(clip_len=4, crop_size=16),
                          batch_size=2, backend="dali-cpu")


def test_transcode_makes_an_upright_copy_of_the_size_shown(zoo, tmp_path):
    from ascnet.tools.transcode import display_size, scaled_size, transcode

    path, info, true = zoo["rotated.mp4"]
    size = scaled_size(*display_size(info["width"], info["height"], info["rotation"]), 24)
    assert size == (24, 32)
    copy = probe(transcode(path, tmp_path / "up.webm", "vp9", size=size))
    assert (copy["width"], copy["height"], copy["rotation"], copy["num_frames"]) == (24, 32, 0, info["num_frames"])
    assert truth(tmp_path / "up.webm") == true  # upright as decoded, no rotation needed


# ---- a reader kept open after a failed read (evaluation) ----------------------------------------
def mid_damaged(path: Path) -> Path:
    """40 MJPEG frames in AVI whose frame 20 is garbage: the decoder raises there."""
    import subprocess

    raw = np.stack([pattern_frame(i, 64, 48) for i in range(40)]).tobytes()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-framerate", "25",
                    "-i", "-", "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", str(path)], input=raw, check=True)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    data[starts[20]:starts[20] + 400] = bytes(400)
    path.write_bytes(bytes(data))
    return path


def test_a_failed_read_leaves_no_broken_reader_behind(tmp_path):
    from ascnet.pipelines.decode import Cut, DecodeError, PyAVSource
    from ascnet.pipelines.schedules import EvalSchedule

    path = mid_damaged(tmp_path / "mid.avi")
    reader = FrameReader(str(path), 25.0, ())
    with pytest.raises(DecodeError, match="cannot decode frames 16..21: InvalidDataError"):
        reader.read(range(16, 22))
    # the next request meets the damage again and says so (not "frame 24 is not in the file")
    with pytest.raises(DecodeError, match="cannot decode frames 24..25: InvalidDataError"):
        reader.read([24, 25])
    got = reader.read([2, 3])
    assert [read_index(got[i].to_ndarray(format="rgb24")) for i in (2, 3)] == [2, 3]
    # evaluation keeps a video open for its next clip: a failed clip closes it, the next opens it afresh
    sched = EvalSchedule(np.array([40]), clip_len=4, clips_per_video=3, batch_size=3)  # clips at 0, 18, 36
    source = PyAVSource(sched, [str(path)], np.array([25.0]), [()], Cut("short", 16), with_aug=False,
                        keep_open=True, skip_errors=True)
    info = lambda g: type("Info", (), {"idx_in_epoch": g})()  # noqa: E731
    clips, meta, _ = source(info(0))
    assert source._open is not None and [read_index(f) for f in clips] == [0, 1, 2, 3]
    clips, meta, messages = source(info(1))  # frames 18..21: the damage
    assert meta[0] == 0 and b"InvalidDataError" in bytes(messages[0])
    assert source._open is None  # closed: the video's next clip opens it afresh
    clips, meta, _ = source(info(0))
    assert meta[0] > 0 and [read_index(f) for f in clips] == [0, 1, 2, 3]
