"""The sampling definition: exact indices, fallbacks for short videos, determinism, sharding."""
import numpy as np
import pytest

from ascnet.sampling import (
    SamplingError,
    check_speeds,
    clip_offsets,
    epoch_order,
    eval_clips,
    sample_pair,
    shard_plan,
    steps_per_epoch,
    window_len,
)


def test_fixed_rate_is_the_stride_at_base_fps_and_scales_with_fps():
    assert clip_offsets(2, 8, 25.0).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert clip_offsets(2, 8, 50.0).tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert clip_offsets(2, 8, 12.5).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    # 30 fps: speed 1 steps 1.2 frames; round half up: 0, 1.2, 2.4, 3.6, 4.8, 6.0, 7.2, 8.4
    assert clip_offsets(1, 8, 30.0).tolist() == [0, 1, 2, 4, 5, 6, 7, 8]
    assert clip_offsets(4, 4, 30.0, rate="native").tolist() == [0, 4, 8, 12]
    assert window_len(8, 16, 25.0) == 121


def test_pair_has_two_different_speeds_and_fitting_windows():
    seen = set()
    for vi in range(200):
        n = 130 + vi
        p = sample_pair(vi, n, 25.0, seed=3, epoch=1)
        assert p.speed_a != p.speed_b
        seen.add((p.speed_a, p.speed_b))
        for s, f in ((p.speed_a, p.frames_a), (p.speed_b, p.frames_b)):
            assert f.shape == (16,)
            assert (np.diff(f) == s).all(), (s, f)  # 25 fps: plain stride
            assert 0 <= f[0] and f[-1] < n
        assert p.frames.tolist() == p.frames_a.tolist() + p.frames_b.tolist()
    assert len(seen) == 12  # every ordered pair of {1, 2, 4, 8} occurs


def test_pair_is_deterministic_in_seed_epoch_and_video():
    a = sample_pair(5, 300, 30.0, seed=1, epoch=2)
    b = sample_pair(5, 300, 30.0, seed=1, epoch=2)
    assert (a.frames == b.frames).all() and (a.speed_a, a.speed_b) == (b.speed_a, b.speed_b)
    others = [sample_pair(5, 300, 30.0, seed=2, epoch=2), sample_pair(5, 300, 30.0, seed=1, epoch=3),
              sample_pair(6, 300, 30.0, seed=1, epoch=2)]
    assert all(not np.array_equal(a.frames, o.frames) for o in others)


def test_short_video_drops_speeds_that_do_not_fit():
    # 40 frames at T=16: speed 1 spans 16, speed 2 spans 31, speeds 4 and 8 do not fit
    for vi in range(30):
        p = sample_pair(vi, 40, 25.0, seed=0, epoch=0)
        assert {p.speed_a, p.speed_b} == {1, 2}
        assert max(p.frames) < 40


def test_too_short_for_two_speeds_edge_pads_the_slower_clip():
    p = sample_pair(0, 20, 25.0, seed=0, epoch=0)
    assert {p.speed_a, p.speed_b} == {1, 2}
    slow = p.frames_a if p.speed_a == 2 else p.frames_b
    assert slow.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 19, 19, 19, 19, 19, 19]
    fast = p.frames_b if p.speed_a == 2 else p.frames_a
    assert fast.tolist() == list(range(fast[0], fast[0] + 16)) and fast[-1] < 20


def test_shorter_than_one_clip_is_an_error_naming_the_video():
    with pytest.raises(SamplingError, match=r"video a/b.avi has 10 frames, fewer than one clip of 16: re-index with 'ascnet-index build --min-frames 16'"):
        sample_pair(0, 10, 25.0, seed=0, epoch=0, name="a/b.avi")


def test_bad_arguments_are_named():
    with pytest.raises(SamplingError, match=r"need at least two distinct speeds, positive integers"):
        check_speeds([2, 2])
    with pytest.raises(SamplingError, match=r"unknown rate 'fast'; allowed: \['fixed', 'native'\]"):
        sample_pair(0, 100, 25.0, seed=0, epoch=0, rate="fast")
    with pytest.raises(SamplingError, match=r"fps is 0.0.*rate='native'"):
        sample_pair(0, 100, 0.0, seed=0, epoch=0)
    with pytest.raises(SamplingError, match=r"shard_id 2 is not in \[0, num_shards=2\)"):
        shard_plan(10, seed=0, epoch=0, batch_size=2, shard_id=2, num_shards=2)


def test_eval_clips_are_evenly_spaced_and_edge_padded():
    clips = eval_clips(100, clip_len=16, num_clips=5)  # starts 0, 21, 42, 63, 84
    assert clips[:, 0].tolist() == [0, 21, 42, 63, 84]
    assert (np.diff(clips, axis=1) == 1).all() and clips[-1, -1] == 99
    short = eval_clips(5, clip_len=8, num_clips=3)
    assert short.tolist() == [[0, 1, 2, 3, 4, 4, 4, 4]] * 3


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(50, seed=1, epoch=0)
    assert sorted(a.tolist()) == list(range(50))
    assert (a == epoch_order(50, seed=1, epoch=0)).all()
    assert not (a == epoch_order(50, seed=1, epoch=1)).all()
    assert not (a == epoch_order(50, seed=2, epoch=0)).all()


def test_shards_are_disjoint_equal_and_cover_the_split():
    n, b, k = 23, 3, 2
    plans = [shard_plan(n, seed=4, epoch=1, batch_size=b, shard_id=i, num_shards=k) for i in range(k)]
    assert all(p.shape == (steps_per_epoch(n, b, k), b) == (3, 3) for p in plans)
    flat = [set(p.ravel().tolist()) for p in plans]
    assert not flat[0] & flat[1]
    order = epoch_order(n, seed=4, epoch=1)
    assert flat[0] | flat[1] == set(order[:18].tolist())  # all but the 23 % 6 = 5 drop_last leaves out
    # divisible: exactly every video once
    plans = [shard_plan(12, seed=0, epoch=0, batch_size=2, shard_id=i, num_shards=3) for i in range(3)]
    assert sorted(np.concatenate([p.ravel() for p in plans]).tolist()) == list(range(12))
