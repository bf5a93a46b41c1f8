"""What the pyav workers do before DALI: seeking with the keyframe table, counting decoded
frames, cutting and colouring clips the way DALI's graph does; and the DALI decoders' indices."""
from pathlib import Path

import numpy as np
import pytest
import torch

from ascnet.bench.decode import decode_cost
from ascnet.clips import IDENTITY, ClipSpec, apply_colour, colour_matrix, pixel_box, sample_augment
from ascnet.pipelines.decode import BytesSource, Cut, cut_clip, read_frames
from ascnet.pipelines.schedules import TrainSchedule
from ascnet.tools.probe import probe
from ascnet.tools.synthetic import read_index, write_pattern_video


@pytest.fixture(scope="module")
def h264(tmp_path_factory) -> tuple[Path, list]:
    """120 frames of H.264 with B-frames and a keyframe every 12, and its keyframe table from the indexer's probe."""
    path = write_pattern_video(tmp_path_factory.mktemp("cut") / "v.mp4", 120, "h264", 64, 48, gop=12, bframes=2)
    return path, probe(path)["keyframes"]


def test_probe_lists_the_keyframes(h264):
    _, keys = h264
    assert keys == list(range(0, 120, 12))


def test_read_frames_jumps_to_the_keyframe_before_and_counts_what_it_decodes(h264):
    path, keys = h264
    want = [2, 3, 50, 51, 110]
    got, decoded = read_frames(str(path), want, 25.0, keys)
    assert [read_index(got[i].to_ndarray(format="rgb24")) for i in want] == want
    assert decoded == 4 + (51 - 48 + 1) + (110 - 108 + 1) == decode_cost(want, keys)
    _, from_start = read_frames(str(path), want, 25.0, ())  # no table: read from frame 0
    assert from_start == 111


def test_a_wrong_table_falls_back_to_counting_from_frame_0(h264):
    path, keys = h264
    got, decoded = read_frames(str(path), [50, 51], 25.0, [0, 5, 49])  # keyframes the file does not have
    assert [read_index(got[i].to_ndarray(format="rgb24")) for i in (50, 51)] == [50, 51]
    assert decoded == 52  # the packets' keyframes are not the table's: no jump at all, counted from 0


def test_colour_matrix_is_dalis_color_twist():
    from nvidia.dali import fn, pipeline_def

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 24, 24, 3), dtype=np.uint8)
    params = [sample_augment(rng, 24, 24) for _ in range(6)] + [np.array([0, 0, 1, 1, 0, 1.3, 1.4, 0, 40], np.float32)]

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def twist(p):
        x = fn.external_source(source=lambda: [img], batch=True, layout="FHWC")
        return fn.color_twist(x, brightness=float(p[5]), contrast=float(p[6]), saturation=float(p[7]), hue=float(p[8]))

    for p in params:
        pipe = twist(p)
        pipe.build()
        want = np.array(pipe.run()[0].as_array()[0])
        got = apply_colour(img[0], p)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, p
    frame = img[0]
    assert apply_colour(frame, IDENTITY) is frame  # no jitter, no grayscale: untouched
    m, offset = colour_matrix(np.array([0, 0, 1, 1, 0, 1, 1, 0, 0], np.float32))  # grayscale: every row the luma weights
    assert np.allclose(m, [[0.299, 0.587, 0.114]] * 3, atol=2e-3) and offset == 0


def test_cut_clip_crops_the_box_and_scales_it(h264):
    """A pattern frame cut to its top-left quarter holds that quarter's cells, scaled to the size."""
    path, keys = h264
    got, _ = read_frames(str(path), [5], 25.0, keys)
    frame = got[5]
    params = IDENTITY.copy()
    params[:4] = (0.0, 0.0, 0.5, 0.5)  # y0, x0, y1, x1
    assert pixel_box(params, 48, 64) == (0, 0, 32, 24)
    clip = cut_clip([frame, frame], Cut("augment", 32), params)
    full = cut_clip([frame], Cut("short", 48), None)[0]  # 64x48: nothing cut
    assert clip.shape == (2, 32, 32, 3) and full.shape == (48, 64, 3)
    quarter = torch.nn.functional.interpolate(torch.from_numpy(full[:24, :32]).permute(2, 0, 1)[None].float(), size=(32, 32),
                                              mode="bilinear", antialias=True)[0].permute(1, 2, 0).numpy()
    assert np.abs(clip[0] - quarter).mean() < 6  # the same picture, a few levels of scaling difference
    assert np.abs(clip[0].astype(int) - clip[1].astype(int)).max() == 0  # same frame twice, same result


def test_dali_decoders_get_each_frame_once_in_increasing_order():
    sched = TrainSchedule(num_frames=np.array([40, 90]), fps=np.array([25.0, 25.0]), sizes=np.array([[48, 64]] * 2), names=["a", "b"], batch_size=2, seed=0, clip=ClipSpec(clip_len=8))
    source = BytesSource(sched, [__file__] * 2)
    overlapping = 0
    for g in range(40):
        req = sched.request(g)
        _, distinct, order, _ = source(type("Info", (), {"idx_in_epoch": g})())
        assert (np.diff(distinct) > 0).all()
        assert np.array_equal(distinct[order], req.frames)
        overlapping += len(distinct) < len(req.frames)
    assert overlapping > 0  # some pairs did share frames
