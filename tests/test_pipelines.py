"""The DALI loaders on videos whose frames carry their index: exact frames, augmentation,
determinism, sharding, resume, evaluation crops and bad input, for every CPU backend."""
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from ascnet.clips import ClipSpec
from ascnet.manifest import Manifest, ManifestError
from ascnet.clips import denormalize
from ascnet.pipelines.backends import BackendError, choose_backend
from ascnet.pipelines.loader import build_clip_loader, build_eval_loader, build_pair_loader
from ascnet.pipelines.decode import DecodeError, decode_frames
from ascnet.pipelines.schedules import TrainSchedule
from ascnet.sampling import SamplingError, eval_clips, sample_pair
from ascnet.tools.synthetic import CODECS, read_index, write_pattern_video

T, CROP = 8, 32
# (codec, frames, fps): a mix of lengths and rates so fixed-rate sampling differs from a stride
VIDEOS = {
    "vp9": [(90, 25.0), (70, 30.0), (100, 50.0), (60, 25.0)],
    "h264": [(90, 25.0), (70, 30.0), (100, 50.0), (60, 25.0)],
    "mpeg4": [(90, 25.0), (70, 30.0), (80, 25.0), (60, 30.0)],
}


def _row(path: Path, root: Path, n: int, fps: float, codec: str, label: int, split: str = "train") -> dict:
    return dict(video_id=str(path.relative_to(root)), path=str(path.relative_to(root)), label=label, label_name=f"c{label}",
                split=split, num_frames=n, fps=fps, width=64, height=48, codec=codec, status="ok")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    """codec -> (root, rows) of pattern videos; h264 with B-frames to exercise reordering."""
    out = {}
    for codec, specs in VIDEOS.items():
        root = tmp_path_factory.mktemp(codec)
        rows = []
        for i, (n, fps) in enumerate(specs):
            p = write_pattern_video(root / f"v{i}{CODECS[codec][1]}", n, codec, width=64, height=48, fps=fps,
                                    bframes=2 if codec == "h264" else 0)
            rows.append(_row(p, root, n, fps, codec, label=i % 2))
        out[codec] = (root, rows)
    return out


def manifest_of(videos, codec: str) -> Manifest:
    root, rows = videos[codec]
    return Manifest.from_rows(rows, root=root)


def indices(clips: torch.Tensor) -> np.ndarray:
    """(B, 3, T, H, W) normalised -> (B, T) frame indices read from the pattern."""
    x = denormalize(clips).numpy()
    return np.array([[read_index(x[b, :, t], "CHW") for t in range(x.shape[2])] for b in range(x.shape[0])])


CASES = [("pyav", "vp9"), ("pyav", "h264"), ("pyav", "mpeg4"), ("dali-cpu", "vp9")]


@pytest.mark.parametrize("backend,codec", CASES)
def test_pairs_hold_exactly_the_sampled_frames(videos, backend, codec):
    m = manifest_of(videos, codec)
    rows = m.select("train").df
    speeds = set()
    with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=2, backend=backend, seed=7) as loader:
        assert loader.backend == backend and loader.steps_per_epoch == 2
        for epoch in range(2):
            for batch in loader.epoch(epoch):
                assert batch["clip_a"].shape == batch["clip_b"].shape == (2, 3, T, CROP, CROP)
                got_a, got_b = indices(batch["clip_a"]), indices(batch["clip_b"])
                for r, vi in enumerate(batch["video_index"].tolist()):
                    p = sample_pair(vi, int(rows.num_frames[vi]), float(rows.fps[vi]), seed=7, epoch=epoch, clip_len=T)
                    assert got_a[r].tolist() == p.frames_a.tolist()
                    assert got_b[r].tolist() == p.frames_b.tolist()
                    assert (batch["speed_a"][r], batch["speed_b"][r]) == (p.speed_a, p.speed_b)
                    assert p.speed_a != p.speed_b
                    assert batch["label"][r] == rows.label[vi]
                    speeds |= {p.speed_a, p.speed_b}
    assert speeds == {1, 2, 4, 8}


def test_native_rate_is_a_plain_stride(videos):
    m = manifest_of(videos, "vp9")
    with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP, augment=False, rate="native"), batch_size=4, backend="dali-cpu") as L:
        batch = next(L.epoch(0))
    for clip, speed in ((batch["clip_a"], batch["speed_a"]), (batch["clip_b"], batch["speed_b"])):
        got = indices(clip)
        assert (np.diff(got, axis=1) == speed[:, None].numpy()).all()


@pytest.fixture(scope="module")
def still(tmp_path_factory) -> Manifest:
    """Videos whose frames are all one textured picture: any change within a clip is augmentation."""
    import ffmpeg

    root = tmp_path_factory.mktemp("still")
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 4, y * 5, (x * y) % 256], axis=2).astype(np.uint8)
    rows = []
    for i in range(4):
        path = root / f"s{i}.webm"
        (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s="64x48", framerate=25)
         .output(str(path), vcodec="libvpx-vp9", pix_fmt="yuv420p", crf=4, **{"b:v": 0, "deadline": "realtime"})
         .overwrite_output().run(input=np.stack([np.roll(img, 7 * i, axis=1)] * 40).tobytes(), quiet=True))
        rows.append(_row(path, root, 40, 25.0, "vp9", label=i))
    return Manifest.from_rows(rows, root=root)


def test_one_augmentation_per_clip_and_independent_clips(still):
    with build_pair_loader(still, ClipSpec(clip_len=T, crop_size=CROP, speeds=(1, 2)), batch_size=4, backend="pyav") as loader:
        batch = next(loader.epoch(0))
    for clips in (batch["clip_a"], batch["clip_b"]):
        within = (clips - clips[:, :, :1]).abs().amax(dim=(1, 2, 3, 4))
        assert (within < 0.1).all(), within  # codec noise only: same crop/flip/colour on every frame
    between = (batch["clip_a"][:, :, 0] - batch["clip_b"][:, :, 0]).abs().mean(dim=(1, 2, 3))
    assert (between > 0.1).all(), between  # the two clips of a pair were augmented apart
    assert batch["clip_a"].std() > 0.3  # not a blank clip


def test_backends_share_the_augmentation(still):
    """dali-cpu and pyav give the same augmented batch, up to their few levels of RGB difference."""
    out = {}
    for backend, seed in (("pyav", 3), ("dali-cpu", 3), ("dali-cpu", 4)):
        with build_pair_loader(still, ClipSpec(clip_len=T, crop_size=CROP, speeds=(1, 2)), batch_size=4, backend=backend, seed=seed) as L:
            out[backend, seed] = next(L.epoch(1))
    same = (out["pyav", 3]["clip_a"] - out["dali-cpu", 3]["clip_a"]).abs().mean()
    other = (out["dali-cpu", 4]["clip_a"] - out["dali-cpu", 3]["clip_a"]).abs().mean()
    assert same < 0.1 and other > 0.3, (same, other)  # 0.1 is about 6 levels of 255


def test_same_seed_same_batches_other_seed_other_batches(videos):
    m = manifest_of(videos, "vp9")

    def run(seed):
        with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP), batch_size=2, backend="pyav", seed=seed) as L:
            return [b for e in range(2) for b in L.epoch(e)]

    a, b, c = run(1), run(1), run(2)
    assert len(a) == 4
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert any(not torch.equal(x["clip_a"], z["clip_a"]) for x, z in zip(a, c))
    assert [x["video_index"].tolist() for x in a] != [z["video_index"].tolist() for z in c]


def test_resume_at_a_step_gives_the_batches_of_a_full_run(videos):
    m = Manifest.from_rows(videos["vp9"][1] + videos["mpeg4"][1], root="/")  # 8 videos, absolute paths
    m.df["path"] = [str(videos[c][0] / p) for c in ("vp9", "mpeg4") for p in (r["path"] for r in videos[c][1])]
    m.df["video_id"] = m.df["path"]
    with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP), batch_size=2, backend="pyav", seed=5) as L:
        full = list(L.epoch(3))
        assert L.steps_per_epoch == 4 and len(full) == 4
        resumed = list(L.epoch(3, start_step=2))
        part = next(L.epoch(2, start_step=1))  # jumping to another epoch rebuilds the stream
        again = list(L.epoch(3, start_step=3))
    assert len(resumed) == 2
    for x, y in zip(full[2:], resumed):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert all(torch.equal(full[3][k], again[0][k]) for k in full[3])
    assert part["clip_a"].shape == (2, 3, T, CROP, CROP)


def test_shards_are_disjoint_and_cover_the_split(videos):
    m = manifest_of(videos, "vp9")
    seen = []
    for shard in range(2):
        with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=1, backend="dali-cpu", shard_id=shard, num_shards=2) as L:
            assert L.steps_per_epoch == 2
            seen.append([int(b["video_index"]) for b in L.epoch(0)])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == [0, 1, 2, 3]


def test_split_pair_decodes_the_same_frames_as_one_window(videos):
    m = manifest_of(videos, "h264")
    out = []
    for split_pair in (False, True):
        with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=4, backend="pyav", split_pair=split_pair) as L:
            out.append(next(L.epoch(0)))
    assert torch.equal(out[0]["clip_a"], out[1]["clip_a"]) and torch.equal(out[0]["clip_b"], out[1]["clip_b"])


def test_clip_loader_gives_consecutive_frames(videos):
    m = manifest_of(videos, "mpeg4")
    rows = m.select("train").df
    with build_clip_loader(m, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=2, backend="pyav", seed=1) as L:
        batch = next(L.epoch(0))
    assert set(batch) == {"clips", "video_index", "label"} and batch["clips"].shape == (2, 3, T, CROP, CROP)
    for r, got in enumerate(indices(batch["clips"])):
        n = rows.num_frames[int(batch["video_index"][r])]
        assert got.tolist() == list(range(got[0], got[0] + T)) and got[-1] < n


@pytest.mark.parametrize("backend", ["pyav", "dali-cpu"])
def test_eval_center_crops_hold_evenly_spaced_clips(videos, backend):
    m = manifest_of(videos, "vp9")
    rows = m.select("train").df
    loader = build_eval_loader(m, ClipSpec(clip_len=T, crop_size=CROP), split="train", batch_size=5, clips_per_video=3, backend=backend)
    batches = list(loader)
    assert loader.num_videos == 4 and len(loader) == len(batches) == 3  # 12 rows in batches of 5
    assert [len(b["clips"]) for b in batches] == [5, 5, 2]
    vi = torch.cat([b["video_index"] for b in batches]).tolist()
    ci = torch.cat([b["clip_index"] for b in batches]).tolist()
    assert vi == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3] and ci == [0, 1, 2] * 4
    got = np.concatenate([indices(b["clips"]) for b in batches])
    for r in range(12):
        assert got[r].tolist() == eval_clips(int(rows.num_frames[vi[r]]), T, 3)[ci[r]].tolist()


def test_eval_ten_and_three_crops(videos):
    m = manifest_of(videos, "vp9")
    ten = list(build_eval_loader(m, ClipSpec(clip_len=T, crop_size=CROP), split="train", batch_size=20, clips_per_video=1, crops="ten", backend="dali-cpu"))
    clips = torch.cat([b["clips"] for b in ten])
    crop = torch.cat([b["crop_index"] for b in ten])
    assert clips.shape == (40, 3, T, CROP, CROP) and crop.tolist() == list(range(10)) * 4
    for k in range(5):  # crop 5+k is crop k mirrored
        assert torch.equal(clips[5 + k], clips[k].flip(-1))
    assert not torch.equal(clips[0], clips[3])  # top-left vs bottom-right corner
    three = next(iter(build_eval_loader(m, ClipSpec(clip_len=T, crop_size=CROP), split="train", batch_size=3, clips_per_video=1, crops="three", backend="pyav")))
    assert three["crop_index"].tolist() == [0, 1, 2] and three["clips"].shape == (3, 3, T, CROP, CROP)
    # 64x48 resized to 43x32: the crops slide along the width, so left and right crops differ
    assert not torch.equal(three["clips"][0], three["clips"][2])


# ---- bad input -----------------------------------------------------------------------------
def _copy_videos(videos, codec, tmp_path) -> tuple[Manifest, list[Path]]:
    root, rows = videos[codec]
    files = []
    for r in rows:
        dst = tmp_path / r["path"]
        dst.write_bytes((root / r["path"]).read_bytes())
        files.append(dst)
    return Manifest.from_rows(rows, root=tmp_path), files


def test_deleted_file_is_named(videos, tmp_path):
    m, files = _copy_videos(videos, "vp9", tmp_path)
    files[2].unlink()
    with pytest.raises(ManifestError, match=r"1 video file\(s\) of split 'train' are missing.*v2.webm.*ascnet-index build"):
        build_pair_loader(m, batch_size=2, backend="pyav")


@pytest.mark.parametrize("backend", ["pyav", "dali-cpu"])
def test_truncated_file_is_named_with_its_frames(videos, tmp_path, backend):
    m, files = _copy_videos(videos, "vp9", tmp_path)
    files[0].write_bytes(files[0].read_bytes()[:3000])  # corrupted after indexing
    with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP), batch_size=4, backend=backend) as L:
        with pytest.raises(DecodeError, match=r"^\S+/v0\.webm: frames \d+\.\.\d+ requested, but frame \d+ is not in the file"):
            next(L.epoch(0))


@pytest.mark.parametrize("backend", ["pyav", "dali-cpu"])
def test_truncated_file_can_be_skipped_and_counted(videos, tmp_path, backend):
    m, files = _copy_videos(videos, "vp9", tmp_path)
    files[1].write_bytes(files[1].read_bytes()[:2000])
    with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=4, backend=backend, on_error="skip") as L:
        batch = next(L.epoch(0))
        assert L.skipped == 1 and [s["video_id"] for s in L.take_skips()] == ["v1.webm"]
    assert 1 not in batch["video_index"].tolist() and batch["clip_a"].shape[0] == 4  # a stand-in took its place
    assert (indices(batch["clip_a"]) >= 0).all()  # no placeholder reaches the batch


def test_decode_frames_names_file_and_range(videos, tmp_path):
    root, rows = videos["h264"]
    src = root / rows[0]["path"]
    assert [read_index(f) for f in decode_frames(str(src), np.array([40, 3, 3, 89]), 25.0)] == [40, 3, 3, 89]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 1000)
    with pytest.raises(DecodeError, match=r"bad.mp4: cannot open it: InvalidDataError"):
        decode_frames(str(bad), np.arange(16), 25.0)
    with pytest.raises(DecodeError, match=r"v0.mp4: frames 80\.\.95 requested, but frame 90 is not in the file"):
        decode_frames(str(src), np.arange(80, 96), 25.0)


def test_too_short_video_is_named(videos):
    root, rows = videos["vp9"]
    rows = [dict(r) for r in rows]
    rows[3]["num_frames"] = 5
    with pytest.raises(SamplingError, match=r"1 video\(s\) are shorter than one clip of 8 frames, e.g. .*v3.webm \(5 frames\): re-index with 'ascnet-index build --min-frames 8'"):
        build_pair_loader(Manifest.from_rows(rows, root=root), ClipSpec(clip_len=T), batch_size=2, backend="pyav")


def test_manifest_missing_a_column_is_named(videos, tmp_path):
    path = manifest_of(videos, "vp9").write(tmp_path / "m.parquet")
    table = pq.read_table(path)
    pq.write_table(table.drop(["num_frames"]), path)
    with pytest.raises(ManifestError, match=r"missing column 'num_frames'"):
        build_pair_loader(Manifest.from_parquet(path), batch_size=2)


def test_backend_choice_is_checked(videos):
    assert choose_backend("auto", "cpu", ["h264", "mpeg4"])[0] == "pyav"
    with pytest.raises(BackendError, match=r"'dali-cpu' decodes only \['mjpeg', 'vp8', 'vp9'\], the manifest has \['h264'\]"):
        build_pair_loader(manifest_of(videos, "h264"), batch_size=2, backend="dali-cpu")
    with pytest.raises(BackendError, match=r"nvdec' decodes on the GPU.*device='cuda'"):
        choose_backend("nvdec", "cpu", ["h264"])
    with pytest.raises(BackendError, match=r"unknown backend 'gpu'; allowed"):
        choose_backend("gpu", "cpu", ["h264"])
    with pytest.raises(ValueError, match=r"unknown crops 'five'; allowed: \['center', 'three', 'ten'\]"):
        build_eval_loader(manifest_of(videos, "vp9"), split="train", crops="five")
    with pytest.raises(ManifestError, match=r"4 usable videos, fewer than batch_size x num_shards = 8"):
        build_pair_loader(manifest_of(videos, "vp9"), batch_size=4, num_shards=2)


def _box_area(box) -> float:
    y0, x0, y1, x1 = box[:4]
    return float((y1 - y0) * (x1 - x0))


@pytest.mark.parametrize("scale", [(0.4, 1.0), (0.7, 1.0), (0.2, 0.3)])
def test_crop_area_fraction_respects_crop_scale(scale):
    from ascnet.clips import sample_crop

    rng = np.random.default_rng(0)
    areas = np.array([_box_area(sample_crop(rng, 48, 64, scale)) for _ in range(2000)])
    tol = 0.04  # the box is rounded to whole pixels of a 64x48 frame
    assert areas.min() >= scale[0] - tol and areas.max() <= scale[1] + tol, (areas.min(), areas.max())
    assert areas.min() < scale[0] + 0.05 and areas.max() > scale[1] - 0.05  # the whole range is used


def test_pair_loader_passes_crop_scale_to_every_clip(videos):
    m = manifest_of(videos, "vp9")

    def areas(**kw):
        with build_pair_loader(m, ClipSpec(clip_len=T, crop_size=CROP, speeds=(1, 2), **kw), batch_size=2, backend="pyav") as L:
            sched = TrainSchedule(**L._sched_args)  # what the loader's source asks the pipeline for
            return np.array([_box_area(a) for g in range(40) for a in sched.request(g).aug])

    assert areas(crop_scale=(0.8, 1.0)).min() >= 0.8 - 0.04
    assert areas().min() < 0.7  # the default (0.4, 1.0) crops smaller
    with pytest.raises(ValueError, match=r"crop_scale=\(0.5, 1.5\): need 0 < min <= max <= 1"):
        build_pair_loader(m, ClipSpec(crop_scale=(0.5, 1.5)), batch_size=2)


def test_flip_p_mirrors_clips_and_changes_nothing_else(videos):
    m = manifest_of(videos, "vp9")

    def first_batch(flip_p):
        clip = ClipSpec(clip_len=T, crop_size=CROP, speeds=(1, 2), flip_p=flip_p)
        with build_pair_loader(m, clip, batch_size=2, backend="pyav") as L:
            return next(iter(L.epoch(0)))

    never, always = first_batch(0.0), first_batch(1.0)
    for key in ("clip_a", "clip_b"):
        # the same crop, colour and frames; only the mirror differs (the coin is drawn either way)
        assert torch.allclose(always[key], never[key].flip(-1), atol=1e-5)
        assert not torch.allclose(always[key], never[key], atol=1e-2)
    with pytest.raises(ValueError, match=r"flip_p=1.5: the horizontal flip's probability must be in \[0, 1\]"):
        build_pair_loader(m, ClipSpec(flip_p=1.5), batch_size=2)


# ---- the GPU path's plumbing, checked on the CPU ------------------------------------------------
def test_outputs_are_routed_by_where_dali_made_them(videos):
    """A CPU batch (e.g. pyav's `decoded` count beside CUDA clips) becomes a CPU tensor, never a copy into CUDA memory."""
    from nvidia.dali import fn, pipeline_def

    from ascnet.pipelines.loader import _to_torch, output_device

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def counts():
        return fn.external_source(source=lambda: [np.array(7, np.int32)] * 2, batch=True)

    pipe = counts()
    pipe.build()
    out = pipe.run()[0]
    assert output_device(out) == "cpu"
    t = _to_torch(out)
    assert t.device.type == "cpu" and t.tolist() == [7, 7]


def test_dali_decoders_read_files_in_worker_processes(videos):
    with build_pair_loader(manifest_of(videos, "vp9"), ClipSpec(clip_len=T, crop_size=CROP), batch_size=2, backend="dali-cpu", workers=2) as L:
        next(L.epoch(0))
        assert L._runner.pipe._py_pool is not None  # the bytes come from a parallel source, not the main thread


def test_dali_threads_follow_the_machine():
    import os

    from ascnet.pipelines.loader import _pipeline_kwargs, default_num_threads

    assert default_num_threads() == min(len(os.sched_getaffinity(0)), 16)
    assert _pipeline_kwargs(4, "nvdec", "cpu", 2, None, 0)["num_threads"] == default_num_threads()
    assert _pipeline_kwargs(4, "nvdec", "cpu", 2, 8, 0)["num_threads"] == 8


def test_a_failed_dali_batch_keeps_dalis_reason_without_pyav(videos, monkeypatch):
    import sys

    from ascnet.pipelines.loader import _culprit

    root, rows = videos["vp9"]
    samples = [(str(root / rows[0]["path"]), np.arange(8), 25.0, np.array([], np.int64))]
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed (the GPU image)
    text = "Critical error in pipeline:\nError in CPU operator `decoders__Video`,\nUnable to decode frame 42\nCurrent pipeline object"
    where, msg = _culprit(samples, text, "dali-cpu")
    assert where is None and "Unable to decode frame 42" in msg and "v0.webm (frames 0..7)" in msg
