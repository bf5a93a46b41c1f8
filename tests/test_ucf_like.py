"""The UCF-101-shaped generator: layout, official lists and split rule, codec, resumability."""
import numpy as np
import pytest
from click.testing import CliRunner

from ascnet.cli.index import main as index_main
from ascnet.manifest import Manifest
from ascnet.tools.ucf_like import CLASSES, GOP, UcfLikeConfig, main, per_class_counts, video_specs

TINY = ["--videos", "12", "--classes", "3", "--max-seconds", "1.5", "--workers", "2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("ucf") / "ucf_like"
    res = CliRunner().invoke(main, ["--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    assert "encoded 12, reused 0" in res.output
    return out


def test_counts_spread_over_the_classes_like_ucf101():
    counts = per_class_counts(UcfLikeConfig("x"))
    assert len(counts) == 101 and counts.sum() == 13320
    assert 100 <= counts.min() and counts.max() <= 165  # UCF-101: 100..167 per class
    specs = video_specs(UcfLikeConfig("x"))
    seconds = np.array([s["frames"] for s in specs]) / 25
    assert 6.8 < seconds.mean() < 7.6 and seconds.min() >= 1.04 and seconds.max() <= 71
    assert len({s["path"] for s in specs}) == 13320
    assert {s["group"] for s in specs} == set(range(1, 26))
    per_group = np.bincount([s["label"] * 25 + s["group"] - 1 for s in specs])
    assert 4 <= per_group.min() and per_group.max() <= 7  # UCF-101: 4..7 clips per group
    assert any(s["path"] == "HandstandPushups/v_HandStandPushups_g01_c01.avi" for s in specs)  # the real spelling


def test_layout_and_official_lists(tiny):
    lists = tiny / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes() == b"1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n"
    for split, test_groups in ((1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))):
        train = (lists / f"trainlist{split:02d}.txt").read_text().splitlines()
        test = (lists / f"testlist{split:02d}.txt").read_text().splitlines()
        assert len(train) + len(test) == 12
        for line in test:
            assert int(line.split("_g")[1][:2]) in test_groups and " " not in line
        for line in train:
            path, label = line.split()
            cls = path.split("/")[0]
            assert int(path.split("_g")[1][:2]) not in test_groups
            assert int(label) == CLASSES.index(cls) + 1 and path.startswith(f"{cls}/v_{cls}_g")
            assert (tiny / "UCF-101" / path).is_file()


def test_indexes_as_ucf101_with_the_real_files_codec(tiny):
    out = tiny / "s1.parquet"
    res = CliRunner().invoke(index_main, ["build", str(tiny), "--layout", "ucf101", "--split", "1", "--out", str(out),
                                          "--workers", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    df = Manifest.from_parquet(out).df
    assert len(df) == 12 and set(df["status"]) == {"ok"}
    assert sorted(set(df["label_name"])) == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert (df["label"] == df["label_name"].map(CLASSES.index)).all()
    groups = df["path"].str.extract(r"_g(\d\d)_")[0].astype(int)
    assert ((groups <= 7) == (df["split"] == "test")).all() and (df["split"] == "test").sum() >= 3
    assert set(df["codec"]) == {"mpeg4"} and set(df["width"]) == {320} and set(df["height"]) == {240}
    assert np.allclose(df["fps"], 25.0)
    assert ((26 <= df["num_frames"]) & (df["num_frames"] <= 38)).all()  # 1.06..1.5 s at 25 fps
    for keys, n in zip(df["keyframes"], df["num_frames"]):  # a keyframe every GOP frames, like the real files
        assert list(keys) == list(range(0, n, GOP))


def test_second_call_encodes_nothing_and_other_parameters_are_refused(tiny):
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*.avi")}
    first = sorted(before)[0]
    stale = first.parent / f".{first.stem}.k1ll3d.avi"  # the temp file of a call killed mid-encode
    stale.write_bytes(b"half a video")
    res = CliRunner().invoke(main, ["--out", str(tiny), *TINY])
    assert res.exit_code == 0 and "encoded 0, reused 12" in res.output
    assert not stale.exists()
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*.avi")} == before
    res = CliRunner().invoke(main, ["--out", str(tiny), *TINY, "--seed", "1"])
    assert res.exit_code != 0 and "other parameters" in res.output
