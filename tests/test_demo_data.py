import csv
import hashlib
import json
import math

import av
import click
import numpy as np
import pytest
from click.testing import CliRunner

from ascnet.tools.demo_data import (
    FAMILIES,
    MOTIONS,
    background,
    family_of,
    grating_of,
    STAMP,
    DemoDataConfig,
    demo_data,
    generate,
    read_digits,
    render_video,
    segment_starts,
    _shift,
    _sprite_layers,
    trajectory,
    video_specs,
)

SMALL = dict(num_videos=12, size=32, min_frames=10, max_frames=14, workers=1)


def _decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate(DemoDataConfig(out=str(tmp_path_factory.mktemp("demo") / "d"), **SMALL), progress=False)


def test_ucf101_layout_and_side_file(small):
    classes = (small / "classInd.txt").read_text().split("\n")
    assert classes[:6] == [f"{i + 1} {c}" for i, c in enumerate(MOTIONS.values())]
    train = [line.split() for line in (small / "trainlist01.txt").read_text().splitlines()]
    test = (small / "testlist01.txt").read_text().splitlines()
    assert len(train) + len(test) == 12 and len(test) == 6  # 0.3 of 2 per class rounds to 1
    for path, label in train:
        folder = path.split("/")[0]
        assert int(label) == list(MOTIONS.values()).index(folder) + 1
        assert (small / path).is_file()
    rows = list(csv.DictReader(open(small / "digits.csv")))
    assert len(rows) == 12
    assert {r["split"] for r in rows if r["path"] in test} == {"test"}
    assert set(read_digits(small).values()) <= set(range(10))


def test_videos_have_the_recorded_frames_and_size(small):
    for row in csv.DictReader(open(small / "digits.csv")):
        frames = _decode(small / row["path"])
        assert frames.shape == (int(row["num_frames"]), 32, 32, 3)
    codec = av.open(str(small / row["path"])).streams.video[0].codec_context.name
    assert codec == "vp9"


def test_deterministic_for_a_seed(tmp_path, small):
    again = generate(DemoDataConfig(out=str(tmp_path / "again"), **SMALL), progress=False)
    assert (again / "digits.csv").read_text() == (small / "digits.csv").read_text()
    for row in list(csv.DictReader(open(small / "digits.csv")))[:3]:
        assert (again / row["path"]).read_bytes() == (small / row["path"]).read_bytes()
    other = video_specs(DemoDataConfig(out="x", **dict(SMALL, seed=1)))
    assert [s["digit"] for s in other] != [s["digit"] for s in video_specs(DemoDataConfig(out="x", **SMALL))]


def test_second_run_reuses_and_a_new_size_replaces(tmp_path):
    cfg = DemoDataConfig(out=str(tmp_path / "d"), **SMALL)
    out = generate(cfg, progress=False)
    first = out / "MoveUp" / "v_MoveUp_g01_c01.webm"
    mtime = first.stat().st_mtime_ns
    generate(cfg, progress=False)
    assert first.stat().st_mtime_ns == mtime  # reused, not rewritten
    generate(DemoDataConfig(out=str(tmp_path / "d"), **dict(SMALL, num_videos=18, codec="h264")), progress=False)
    assert not first.exists()  # the old .webm files are gone, the .mp4 ones listed
    assert json.loads((out / STAMP).read_text())["codec"] == "h264"
    assert len((out / "trainlist01.txt").read_text().splitlines()) + len(
        (out / "testlist01.txt").read_text().splitlines()
    ) == 18
    assert (out / "MoveUp" / "v_MoveUp_g01_c01.mp4").is_file()


def test_trajectories_move_the_right_way():
    right = trajectory("right", 5, speed=1.5, phase=0, radius=10, centre=(20, 30))
    np.testing.assert_allclose(right[:, 1], [30, 31.5, 33, 34.5, 36])
    np.testing.assert_allclose(right[:, 0], 20)
    left = trajectory("left", 3, speed=1.5, phase=0, radius=10, centre=(20, 30))
    np.testing.assert_allclose(left, [[20, 30], [20, 28.5], [20, 27]])
    up = trajectory("up", 3, speed=2, phase=0, radius=10, centre=(20, 30))
    np.testing.assert_allclose(up, [[20, 30], [18, 30], [16, 30]])
    down = trajectory("down", 2, speed=2, phase=0, radius=10, centre=(20, 30))
    np.testing.assert_allclose(down, [[20, 30], [22, 30]])
    for motion, sense in (("clockwise", 1), ("counterclockwise", -1)):
        p = trajectory(motion, 3, speed=1, phase=0, radius=10, centre=(0, 0))
        # screen coordinates (x right, y down): clockwise = positive z of (v1 x v2) in (x, y)
        v1, v2 = p[1] - p[0], p[2] - p[1]
        cross = v1[1] * v2[0] - v1[0] * v2[1]
        assert np.sign(cross) == sense
        np.testing.assert_allclose(np.hypot(p[:, 0], p[:, 1]), 10)


def test_rendered_sprite_follows_its_trajectory():
    spec = video_specs(DemoDataConfig(out="x", **dict(SMALL, size=64, min_frames=6, max_frames=6, redraw_every=0)))[1]
    assert spec["motion"] == "right"
    spec = dict(spec, centre=(32.0, 20.0), speed=4.0)
    frames = render_video(spec).astype(np.float32)
    # the sprite is where a frame differs from the video's background (the spec seed's first draw)
    bg = background(np.random.default_rng(spec["seed"]), 64) * 255
    xs = []
    for f in frames:
        mask = np.abs(f - bg).sum(axis=2) > 60
        xs.append(np.nonzero(mask)[1].mean())
    np.testing.assert_allclose(np.diff(xs), 4.0, atol=1.0)


def test_appearance_is_redrawn_while_the_motion_goes_on():
    cfg = DemoDataConfig(out="x", **dict(SMALL, size=64, min_frames=30, max_frames=30, redraw_every=8))
    specs = video_specs(cfg)
    assert segment_starts(30, 8, 3) == [0, 3, 11, 19, 27] and segment_starts(30, 0, 0) == [0]
    starts = [[g["start"] for g in s["segments"]] for s in specs]
    assert all(st[0] == 0 and 1 <= st[1] <= 8 and np.all(np.diff(st[1:]) == 8) for st in starts), starts
    assert len({st[1] for st in starts}) > 1  # the first change falls at a different frame per video
    spec = dict(specs[1], centre=(32.0, 20.0), speed=0.8)  # moving right
    # jumps small enough to keep the sprite clear of the canvas edges, so its centroid can be measured
    spec["segments"] = [dict(g, shift=(6.0 * (-1) ** k, 2.0 * (k % 2)) if k else (0.0, 0.0))
                        for k, g in enumerate(spec["segments"])]
    assert spec["digit"] == spec["segments"][0]["digit"]  # the recorded digit is the first segment's
    frames = render_video(spec).astype(np.float32)
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # change[t]: frame t -> t+1
    cuts = np.array(starts[2][1:]) - 1
    steady = np.delete(change, cuts)
    assert change[cuts].min() > 3 * steady.max(), (change[cuts], steady.max())  # a new background at each cut only
    # the sprite moves on at its speed within every segment (its drawn centroid jumps at a cut,
    # where another digit is drawn at another point)
    steps = []
    for k, seg in enumerate(spec["segments"]):
        bg = background(np.random.default_rng(seg["seed"]), 64) * 255
        end = spec["segments"][k + 1]["start"] if k + 1 < len(spec["segments"]) else 30
        xs = [np.nonzero(np.abs(f - bg).sum(axis=2) > 60)[1].mean() for f in frames[seg["start"]:end]]
        steps += list(np.diff(xs))
    assert len(steps) >= 20
    np.testing.assert_allclose(steps, 0.8, atol=0.5)
    # and it is where the video's path, moved by the segment's jump, puts it in every segment
    path = trajectory("right", 30, 0.8, 0.0, 1.0, (32.0, 20.0))
    for k, seg in enumerate(spec["segments"]):
        bg = background(np.random.default_rng(seg["seed"]), 64) * 255
        alpha = _sprite_layers(seg, 64)[0][0]
        t = seg["start"]
        want = _shift(alpha, *(path[t] + seg["shift"]))[..., 0] > 0.3
        seen = np.abs(frames[t] - bg).sum(axis=2) > 60
        assert (want & seen).sum() / (want | seen).sum() > 0.7, k


def test_jump_moves_the_path_at_each_redraw_and_only_there():
    cfg = dict(SMALL, size=64, min_frames=30, max_frames=30, redraw_every=8)
    specs = video_specs(DemoDataConfig(out="x", **cfg))
    for s in specs:
        shifts = [g["shift"] for g in s["segments"]]
        assert shifts[0] == (0.0, 0.0) and len(set(shifts[1:])) == len(shifts) - 1
        assert all(0 <= v < 64 for sh in shifts for v in sh)
    still = video_specs(DemoDataConfig(out="x", **dict(cfg, jump=False)))
    assert all(g["shift"] == (0.0, 0.0) for s in still for g in s["segments"])
    # the rendering follows the shift: the same video without its jumps is the same up to the first cut only
    spec = specs[1]
    cut = spec["segments"][1]["start"]
    plain = dict(spec, segments=[dict(g, shift=(0.0, 0.0)) for g in spec["segments"]])
    a, b = render_video(spec), render_video(plain)
    assert np.array_equal(a[:cut], b[:cut]) and not np.array_equal(a[cut:], b[cut:])


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(codec="av1"), "codec 'av1' is not one of"),
        (dict(num_videos=5), "need at least 12"),
        (dict(min_frames=20, max_frames=10), "need 2 <= min_frames <= max_frames"),
        (dict(sprites=3), "use 1 or 2"),
        (dict(redraw_every=-1), r"redraw_every=-1: use 0 \(never\) or a number of frames"),
        (dict(test_fraction=1.0), r"in \(0, 1\)"),
        (dict(speed_range=(0.05, 0.02)), r"speed_range=\(0.05, 0.02\): need 0 < min <= max"),
    ],
)
def test_bad_parameters_are_named(tmp_path, change, match):
    with pytest.raises(click.BadParameter, match=match):
        generate(DemoDataConfig(out=str(tmp_path / "d"), **dict(SMALL, **change)), progress=False)


def test_command(tmp_path):
    out = tmp_path / "cli"
    args = [str(out), "--videos", "12", "--size", "32", "--min-frames", "8", "--max-frames", "8", "--workers", "2"]
    res = CliRunner().invoke(demo_data, args)
    assert res.exit_code == 0, res.output
    assert str(out) in res.output
    assert len(list(out.glob("*/*.webm"))) == 12
    res = CliRunner().invoke(demo_data, [str(out), "--videos", "3"])
    assert res.exit_code != 0 and "need at least 12" in res.output


# ---- scene correlation ----------------------------------------------------------------------
def test_no_scene_correlation_is_the_data_as_it_was():
    """p = 0 renders the very frames of the generator before the option (their hash), under the same stamp."""
    specs = video_specs(DemoDataConfig(out="x", **SMALL))
    frames = b"".join(render_video(s).tobytes() for s in specs)
    assert hashlib.sha256(frames).hexdigest() == "1736a3771f6ffebfeffafa75ddee549b1b7252d569830175ca7a696e959acf7e"
    assert "scene_correlation" not in DemoDataConfig(out="x", **SMALL).identity()
    assert DemoDataConfig(out="x", scene_correlation=0.3, **SMALL).identity()["scene_correlation"] == 0.3


def test_families_tile_the_grating_range_and_keep_a_draw_inside_its_family():
    rng = np.random.default_rng(0)
    for _ in range(200):
        theta, period = rng.uniform(0, math.pi), rng.uniform(4, 12)
        assert grating_of(theta, period, None) == (theta, period)
        for k in range(len(FAMILIES)):
            assert family_of(*grating_of(theta, period, k)) == k
        # a draw already in family k stays where it is
        k = family_of(theta, period)
        assert np.allclose(grating_of(theta, period, k), (theta, period))


def _dominant_orientation(img: np.ndarray) -> float:
    """The orientation (radians in [0, pi)) of the strongest fine-grained frequency of a background."""
    grey = img.mean(axis=2) - img.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
    n = grey.shape[0]
    ky, kx = np.mgrid[-n // 2 : n // 2, -n // 2 : n // 2]
    power[np.hypot(ky, kx) < n / 13] = 0  # the smooth field and the noise live below the finest grating
    y, x = np.unravel_index(power.argmax(), power.shape)
    return math.atan2(ky[y, x], kx[y, x]) % math.pi


def test_a_background_of_a_family_shows_that_familys_grating():
    for k, (band, _) in enumerate(FAMILIES):
        for seed in range(5):
            theta = _dominant_orientation(background(np.random.default_rng(seed), 64, family=k))
            lo = band * math.pi / 3
            # within the band's 60 degrees, give or take a frequency bin, modulo pi (0 and pi are one orientation)
            assert (theta - lo + 0.1) % math.pi <= math.pi / 3 + 0.2, (k, seed, theta)


@pytest.mark.parametrize("p, share", [(0.0, None), (1.0, 1.0), (0.6, 0.6 + 0.4 / 6)])
def test_scene_correlation_ties_backgrounds_to_classes(p, share):
    specs = video_specs(DemoDataConfig(out="x", **dict(SMALL, num_videos=600, min_frames=2, max_frames=2, scene_correlation=p)))
    motions = list(MOTIONS)
    own = [s["segments"][0].get("family") == motions.index(s["motion"]) for s in specs]
    if share is None:
        assert all("family" not in s["segments"][0] for s in specs)
    else:
        assert abs(np.mean(own) - share) < 0.05
    # everything else about a video is what it is without the link
    plain = video_specs(DemoDataConfig(out="x", **dict(SMALL, num_videos=600, min_frames=2, max_frames=2)))
    assert [(s["digit"], s["speed"], s["segments"][0]["colours"]) for s in specs] == \
           [(s["digit"], s["speed"], s["segments"][0]["colours"]) for s in plain]


def test_grating_contrast_scales_the_texture_cue_and_leaves_the_default_data_alone():
    def fine_power(contrast):  # the background's power above the smooth field's frequencies
        img = background(np.random.default_rng(3), 64, family=2, contrast=contrast).mean(axis=2)
        power = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
        ky, kx = np.mgrid[-32:32, -32:32]
        return power[np.hypot(ky, kx) >= 64 / 13].max()

    assert fine_power(0.16) > 10 * fine_power(0.04)  # the grating's peak grows with the square of its amplitude
    assert "grating_contrast" not in DemoDataConfig(out="x", **SMALL).identity()
    strong = DemoDataConfig(out="x", grating_contrast=0.16, **SMALL)
    assert strong.identity()["grating_contrast"] == 0.16
    with pytest.raises(click.BadParameter, match="grating_contrast=0.9"):
        DemoDataConfig(out="x", grating_contrast=0.9, **SMALL).check()
