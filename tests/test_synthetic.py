import av
import numpy as np
import pytest

from ascnet.tools.synthetic import pattern_frame, read_index, write_pattern_video


def test_pattern_roundtrip_in_memory():
    for i in (0, 1, 7, 300, 4095):
        assert read_index(pattern_frame(i, 64, 48)) == i
    assert read_index(np.zeros((48, 64, 3), np.uint8)) == -1


@pytest.mark.parametrize("codec,suffix", [("vp9", ".webm"), ("h264", ".mp4"), ("mpeg4", ".avi")])
def test_pattern_survives_lossy_coding(tmp_path, codec, suffix):
    path = write_pattern_video(tmp_path / f"v{suffix}", 40, codec=codec)
    with av.open(str(path)) as c:
        got = [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert got == list(range(40))
