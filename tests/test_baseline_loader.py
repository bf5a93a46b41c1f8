"""The peers' loader (the benchmark's baseline): the frames the sampling names, per-clip
augmentation, determinism across worker counts, and the torchvision-style colour ops."""
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from ascnet.clips import ClipSpec
from ascnet.manifest import Manifest
from ascnet.clips import denormalize
from ascnet.sampling import eval_clips, sample_pair
import ascnet.bench.baseline as baseline_module
from ascnet.bench.baseline import (
    VideoFile,
    _gray,
    _hsv2rgb,
    _rgb2hsv,
    adjust_brightness,
    adjust_hue,
    adjust_saturation,
    build_baseline_eval_loader,
    build_baseline_loader,
    draw_params,
    pyav_frames,
)
from ascnet.tools.synthetic import CODECS, read_index, write_pattern_video

T, CROP = 8, 32
# (frames, fps): 50 fps makes the fixed-rate sampling differ from a plain stride
SPECS = [(90, 25.0), (70, 30.0), (100, 50.0), (60, 25.0)]


@pytest.fixture(scope="module")
def pattern(tmp_path_factory) -> Manifest:
    root = tmp_path_factory.mktemp("baseline")
    rows = []
    for i, (n, fps) in enumerate(SPECS):
        codec = "h264" if i % 2 else "vp9"
        p = write_pattern_video(root / f"v{i}{CODECS[codec][1]}", n, codec, width=64, height=48, fps=fps)
        rows.append(dict(video_id=p.name, path=p.name, label=i, label_name=f"c{i}", split="train", num_frames=n, fps=fps,
                         width=64, height=48, codec=codec, status="ok"))
    return Manifest.from_rows(rows, root=root)


def indices(clips: torch.Tensor) -> np.ndarray:
    x = denormalize(clips).numpy()
    return np.array([[read_index(x[b, :, t], "CHW") for t in range(x.shape[2])] for b in range(x.shape[0])])


def test_unaugmented_frames_are_the_sampled_ones(pattern):
    loader = build_baseline_loader(pattern, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=2, seed=3,
                                   workers=0)
    table = pattern.decode_table()
    assert loader.steps_per_epoch == 2
    seen = []
    for batch in loader.epoch(1):
        assert batch["clip_a"].shape == (2, 3, T, CROP, CROP) and batch["clip_a"].dtype == torch.float32
        for r, vi in enumerate(batch["video_index"].tolist()):
            pair = sample_pair(vi, int(table.num_frames[vi]), float(table.fps[vi]), seed=3, epoch=1, clip_len=T)
            assert indices(batch["clip_a"][r : r + 1])[0].tolist() == pair.frames_a.tolist()
            assert indices(batch["clip_b"][r : r + 1])[0].tolist() == pair.frames_b.tolist()
            assert (int(batch["speed_a"][r]), int(batch["speed_b"][r])) == (pair.speed_a, pair.speed_b)
            assert pair.speed_a != pair.speed_b
            assert int(batch["label"][r]) == vi
            seen.append(vi)
    assert sorted(seen) == [0, 1, 2, 3]


def test_eval_mode_gives_each_videos_evenly_spaced_clips_in_batches_across_videos(pattern):
    loader = build_baseline_eval_loader(pattern, ClipSpec(clip_len=T, crop_size=CROP), split="train", batch_size=3,
                                        clips_per_video=2, workers=0)
    batches = list(loader)
    assert [len(b["clips"]) for b in batches] == [3, 3, 2]  # 4 videos x 2 clips, batches across video boundaries
    clips = torch.cat([b["clips"] for b in batches])
    assert clips.shape == (8, 3, T, CROP, CROP) and clips.dtype == torch.float32
    assert torch.cat([b["video_index"] for b in batches]).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    want = np.concatenate([eval_clips(n, T, 2) for n, _ in SPECS])
    assert indices(clips).tolist() == want.tolist()


def test_a_split_smaller_than_a_batch_is_refused(pattern):
    with pytest.raises(ValueError, match=r"split 'train' has 4 usable videos, fewer than one batch of 3 x 2 shard\(s\)"):
        build_baseline_loader(pattern, batch_size=3, num_shards=2)


def test_workers_change_nothing_and_start_step_skips(pattern):
    clip, kw = ClipSpec(clip_len=T, crop_size=CROP, augment=True), dict(batch_size=2, seed=5)
    inline = list(build_baseline_loader(pattern, clip, workers=0, **kw).epoch(2))
    forked = list(build_baseline_loader(pattern, clip, workers=2, **kw).epoch(2))
    resumed = list(build_baseline_loader(pattern, clip, workers=0, **kw).epoch(2, start_step=1))
    for a, b in zip(inline, forked):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert len(resumed) == 1 and torch.equal(resumed[0]["clip_a"], inline[1]["clip_a"])
    other = list(build_baseline_loader(pattern, clip, workers=0, **dict(kw, seed=6)).epoch(2))
    assert not torch.equal(other[0]["clip_a"], inline[0]["clip_a"])


def test_augmentation_is_drawn_once_per_clip(pattern):
    """A clip of one repeated frame stays one repeated frame; the pair's two clips differ."""
    loader = build_baseline_loader(pattern, ClipSpec(clip_len=T, crop_size=CROP), batch_size=2, seed=0, workers=0)
    ds = loader.dataset
    frame = pyav_frames(str(pattern.resolve("v0.webm")), [7])[0]
    frames = np.repeat(frame[None], T, axis=0)
    rng = random.Random(11)
    a, b = ds._clip(frames, rng), ds._clip(frames, rng)
    assert a.shape == (3, T, CROP, CROP)
    for t in range(1, T):
        assert torch.equal(a[:, t], a[:, 0]) and torch.equal(b[:, t], b[:, 0])
    assert not torch.equal(a, b)
    # same draws on a fresh generator with the same seed: the augmentation is reproducible
    assert torch.equal(ds._clip(frames, random.Random(11)), a)


def test_draw_params_follow_the_recipe():
    rng = random.Random(0)
    draws = [draw_params(rng, 240, 320) for _ in range(2000)]
    areas = np.array([p.height * p.width / (240 * 320) for p in draws])
    ratios = np.array([p.width / p.height for p in draws])
    assert 0.39 <= areas.min() and areas.max() <= 1.0 and 0.4 < areas.mean() < 0.8
    assert 0.74 <= ratios.min() and ratios.max() <= 1.34
    assert all(0 <= p.top <= 240 - p.height and 0 <= p.left <= 320 - p.width for p in draws)
    for name, p, got in [("flip", 0.5, np.mean([d.flip for d in draws])),
                         ("jitter", 0.8, np.mean([d.jitter is not None for d in draws])),
                         ("gray", 0.2, np.mean([d.gray for d in draws]))]:
        assert abs(got - p) < 0.04, name
    jit = np.array([d.jitter[1:] for d in draws if d.jitter])
    assert jit[:, :3].min() >= 0.6 and jit[:, :3].max() <= 1.4 and np.abs(jit[:, 3]).max() <= 0.1


def test_the_peers_loader_takes_the_clip_specs_crop_range_and_flip(pattern):
    """The same augmentation as ours: a ClipSpec's crop_scale and flip_p reach the peers' draws."""
    loader = build_baseline_loader(pattern, ClipSpec(clip_len=T, crop_size=CROP, crop_scale=(0.9, 1.0), flip_p=0.0),
                                   batch_size=2, workers=0)
    seen = []
    real = baseline_module.draw_params
    try:
        baseline_module.draw_params = lambda *a, **kw: seen.append(kw) or real(*a, **kw)
        next(iter(loader.epoch(0)))
    finally:
        baseline_module.draw_params = real
    assert seen and all(kw == {"scale": (0.9, 1.0), "flip_p": 0.0} for kw in seen)
    draws = [draw_params(random.Random(i), 240, 320, scale=(0.9, 1.0), flip_p=0.0) for i in range(200)]
    assert not any(d.flip for d in draws) and min(d.height * d.width for d in draws) >= 0.89 * 240 * 320


def test_colour_ops_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 9, 7, generator=g)
    assert torch.allclose(_hsv2rgb(_rgb2hsv(img)), img, atol=1e-5)
    assert torch.allclose(adjust_hue(img, 0.0), img, atol=1e-5)
    # a hue turn of 1/3 maps pure red to pure green, as torchvision's adjust_hue does
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-5)
    assert torch.allclose(adjust_saturation(img, 0.0), _gray(img).expand(3, -1, -1), atol=1e-6)
    assert torch.allclose(_gray(red), torch.tensor(0.2989).view(1, 1, 1))
    assert torch.equal(adjust_brightness(img, 2.0), (2 * img).clamp(0, 1))


def test_real_clips_decode_to_the_named_frames(real_clips):
    """decord's seeks on the UCF-101 Xvid and Kinetics H.264 clips give the frames PyAV decodes in order."""
    files = sorted((real_clips / "ucf101").rglob("*.avi")) + sorted((real_clips / "kinetics").rglob("*.mp4"))
    assert len(files) == 5
    for f in files:
        video = VideoFile(str(f))
        assert video.backend == "decord"
        named = np.array([200, 203, 40, 41, 42, 120, 0])
        got = np.concatenate([video.clip(named[:2]), video.clip(named[2:5]), video.clip(named[5:])]).astype(np.float32)
        ref = pyav_frames(str(f), np.concatenate([named, named + 1])).astype(np.float32)
        # the same frames up to a few pixels one level apart (decoders' rounding), unlike the next frames
        assert np.abs(got - ref[:7]).mean(axis=(1, 2, 3)).max() < 0.05, f.name
        assert np.abs(got - ref[7:]).mean(axis=(1, 2, 3)).min() > 0.3, f.name


def test_pyav_fallback_names_a_short_file(tmp_path: Path):
    p = write_pattern_video(tmp_path / "short.webm", 20, "vp9", width=64, height=48)
    assert [read_index(f) for f in pyav_frames(str(p), [3, 19, 0])] == [3, 19, 0]
    with pytest.raises(RuntimeError, match=r"short\.webm: PyAV decoded fewer frames than asked \(missing \[20, 25\]\)"):
        pyav_frames(str(p), [5, 20, 25])


def test_files_decord_cannot_open_fall_back_to_pyav(tmp_path: Path):
    """decord 0.6 has no AV1 decoder; the peers' loader then reads the file with PyAV."""
    src = write_pattern_video(tmp_path / "p.webm", 30, "vp9", width=64, height=48)
    av1 = tmp_path / "p.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "10",
                    "-g", "10", str(av1)], check=True)
    video = VideoFile(str(av1))
    assert video.backend == "pyav"
    assert [read_index(f) for f in video.clip(np.array([3, 17, 29, 0]))] == [3, 17, 29, 0]


def test_the_peers_workers_persist_across_epochs_and_see_each_epoch(pattern):
    """persistent_workers, as a careful user sets: the same processes serve epoch after epoch, and each
    epoch's pairs are that epoch's (the epoch travels with the index, not in a copy of the dataset)."""
    import multiprocessing

    clip, kw = ClipSpec(clip_len=T, crop_size=CROP, augment=False), dict(batch_size=2, seed=5)
    loader = build_baseline_loader(pattern, clip, workers=2, **kw)
    try:
        first = list(loader.epoch(0))
        workers = {p.pid for p in multiprocessing.active_children()}
        second = list(loader.epoch(1))
        assert len(workers) >= 2 and workers <= {p.pid for p in multiprocessing.active_children()}
    finally:
        loader.close()
    inline = build_baseline_loader(pattern, clip, workers=0, **kw)
    for got, want in ((first, list(inline.epoch(0))), (second, list(inline.epoch(1)))):
        for a, b in zip(got, want):
            assert torch.equal(a["clip_a"], b["clip_a"]) and torch.equal(a["video_index"], b["video_index"])


def _torchcodec_or_skip():
    from ascnet.bench.common import skip_reason

    reason = skip_reason("torchvision", ["vp9"])
    if reason:
        pytest.skip(f"torchcodec/torchvision peers not available here: {reason}")


@pytest.mark.parametrize("decoder", ["torchcodec", "torchcodec-approximate"])
def test_torchcodec_peers_give_the_sampled_frames(pattern, decoder):
    """torchcodec's get_frames_at for the pair (exact and approximate seek) returns the frames the sampling names."""
    _torchcodec_or_skip()
    loader = build_baseline_loader(pattern, ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=2, seed=3,
                                   workers=0, decoder=decoder)
    table = pattern.decode_table()
    assert loader.backend == decoder
    for batch in loader.epoch(1):
        for r, vi in enumerate(batch["video_index"].tolist()):
            pair = sample_pair(vi, int(table.num_frames[vi]), float(table.fps[vi]), seed=3, epoch=1, clip_len=T)
            assert indices(batch["clip_a"][r : r + 1])[0].tolist() == pair.frames_a.tolist()
            assert indices(batch["clip_b"][r : r + 1])[0].tolist() == pair.frames_b.tolist()


def test_the_transforms_v2_recipe_draws_once_per_clip_and_repeats(pattern):
    """torchvision transforms.v2 on the whole uint8 clip: one draw per clip (a clip of one repeated frame
    stays one frame), the pair's clips differ, and the same seed gives the same clips in any worker."""
    _torchcodec_or_skip()
    clip = ClipSpec(clip_len=T, crop_size=CROP)
    loader = build_baseline_loader(pattern, clip, batch_size=2, seed=0, workers=0, decoder="torchcodec",
                                   recipe="transforms-v2")
    ds = loader.dataset
    frame = pyav_frames(str(pattern.resolve("v0.webm")), [7])[0]
    frames = np.repeat(frame[None], T, axis=0)
    rng = random.Random(11)
    a, b = ds._clip(frames, rng), ds._clip(frames, rng)
    assert a.shape == (3, T, CROP, CROP) and a.dtype == torch.float32
    for t in range(1, T):
        assert torch.equal(a[:, t], a[:, 0]) and torch.equal(b[:, t], b[:, 0])
    assert not torch.equal(a, b)
    inline = next(iter(loader.epoch(0)))
    forked_loader = build_baseline_loader(pattern, clip, batch_size=2, seed=0, workers=2, decoder="torchcodec",
                                          recipe="transforms-v2")
    try:
        forked = next(iter(forked_loader.epoch(0)))
    finally:
        forked_loader.close()
    assert torch.equal(inline["clip_a"], forked["clip_a"])


def test_an_unknown_recipe_is_named(pattern):
    with pytest.raises(ValueError, match=r"unknown recipe 'kornia'; allowed: \['per-frame', 'transforms-v2'\]"):
        build_baseline_loader(pattern, recipe="kornia")
