"""The ssv2 layout (Something-Something v2) on a miniature in its real layout: VP9 WebM videos at
12 fps named by id, labels/labels.json (template -> index as a string) and the split lists."""
import json

import pytest
from click.testing import CliRunner

from ascnet.cli.index import main as index_cli
from ascnet.clips import ClipSpec, denormalize
from ascnet.manifest import Manifest
from ascnet.optional import dali_available
from ascnet.pipelines.loader import build_pair_loader
from ascnet.tools.layouts import LayoutError, scan, ssv2_class_name
from ascnet.tools.synthetic import read_index, write_pattern_video
from ascnet.train import PretrainConfig, pretrain

CLASSES = {"Putting something on something": "0", "Pushing something from left to right": "1",
           "Moving something up": "2"}
TEMPLATES = ["Putting [something] on [something]", "Pushing [something] from left to right", "Moving [something] up"]


def sample(vid, c):
    return {"id": str(vid), "label": TEMPLATES[c].replace("[something]", "a cup").lower(), "template": TEMPLATES[c],
            "placeables": ["a cup"] * TEMPLATES[c].count("[")}


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory):
    """Six train videos (one listed without a file), three validation, two test (ids only), one
    video in no list; 45 frames at 12 fps (3.75 s, an average SSv2 clip), 48x48 VP9 WebM (square:
    a centre crop keeps the whole frame-index pattern)."""
    root = tmp_path_factory.mktemp("ssv2")
    train = [sample(100 + i, i % 3) for i in range(6)]
    val = [sample(200 + i, i % 3) for i in range(3)]
    test = [{"id": "300"}, {"id": "301"}]
    for item in train[:5] + val + test + [{"id": "999"}]:
        write_pattern_video(root / "20bn-something-something-v2" / f"{item['id']}.webm", 45, codec="vp9", width=48,
                            height=48, fps=12)
    labels = root / "labels"
    labels.mkdir()
    for name, data in (("labels.json", CLASSES), ("train.json", train), ("validation.json", val), ("test.json", test)):
        (labels / name).write_text(json.dumps(data))
    return root


def test_the_class_is_the_template_without_brackets():
    assert ssv2_class_name("Putting [something] on [something]") == "Putting something on something"
    assert ssv2_class_name("Pushing [something] from left to right") in CLASSES


def test_scan_labels_splits_and_missing_files(ssv2):
    got = scan("ssv2", ssv2)
    assert got.classes == list(CLASSES) and got.annotations == ssv2 / "labels"
    rows = {r["video_id"]: r for r in got.rows}
    v = "20bn-something-something-v2/"
    assert [(r["split"], r["label"]) for r in got.rows] == \
        [("train", i % 3) for i in range(6)] + [("val", i % 3) for i in range(3)] + [("test", -1)] * 2
    assert rows[v + "101.webm"]["label_name"] == "Pushing something from left to right"
    assert rows[v + "105.webm"]["exists"] is False and "no file for id '105'" in rows[v + "105.webm"]["error"]
    assert got.unlisted == [v + "999.webm"]
    # ROOT may be the video folder itself, labels/ beside it
    assert len(scan("ssv2", ssv2 / "20bn-something-something-v2").rows) == 11


def test_bad_annotations_are_named(ssv2, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (tmp_path / "20bn-something-something-v2").mkdir()
    (labels / "labels.json").write_text(json.dumps(CLASSES))
    (labels / "train.json").write_text(json.dumps([{"id": "1", "template": "Dropping [something]"}]))
    with pytest.raises(LayoutError, match=r"train\.json: entry 0 \(id 1\): class 'Dropping something' .*is not in .*labels\.json"):
        scan("ssv2", tmp_path)
    (labels / "labels.json").write_text(json.dumps({"Moving something up": "one"}))
    with pytest.raises(LayoutError, match=r"class 'Moving something up' has index 'one', expected an integer"):
        scan("ssv2", tmp_path)


@pytest.fixture(scope="module")
def manifest(ssv2, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "ssv2.parquet"
    r = CliRunner().invoke(index_cli, ["build", str(ssv2), "--layout", "ssv2", "--out", str(out), "--workers", "2",
                                       "--min-frames", "16", "--no-progress"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_index_has_the_labels_splits_and_missing_video(manifest):
    manifest = Manifest.from_parquet(manifest)
    df = manifest.df
    assert df.groupby("split").size().to_dict() == {"test": 2, "train": 6, "val": 3}
    assert manifest.num_classes == 3
    assert df.set_index("video_id").loc["20bn-something-something-v2/105.webm", "status"] == "missing"
    ok = df[df.status == "ok"]
    assert len(ok) == 10 and set(ok.codec) == {"vp9"} and set(ok.num_frames) == {45} and set(ok.fps) == {12.0}
    train = df[df.split == "train"]
    assert train.label.tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("backend", ["dali-cpu", "pyav"])
def test_both_cpu_decoders_read_the_webm_frames_asked_for(manifest, backend):
    if backend == "dali-cpu" and not dali_available():
        pytest.skip("DALI is not installed (pip install 'ascnet[dali]')")
    clip = ClipSpec(clip_len=4, crop_size=32, speeds=(1, 4), augment=False)
    loader = build_pair_loader(Manifest.from_parquet(manifest), clip, split="train", batch_size=2, backend=backend, device="cpu", seed=0, workers=1)
    try:
        batch = next(iter(loader.epoch(0)))
    finally:
        loader.close()
    assert batch["clip_a"].shape == (2, 3, 4, 32, 32)

    # the pattern frames carry their index: speed 4 at 12 fps of a 25 fps base is a stride of 1.92 frames
    for key, speed in (("clip_a", "speed_a"), ("clip_b", "speed_b")):
        frames = denormalize(batch[key][0].float()).clamp(0, 255).byte().permute(1, 2, 3, 0).numpy()
        idx = [read_index(f) for f in frames]
        step = int(batch[speed][0]) * 12 / 25
        assert [i - idx[0] for i in idx] == [int(k * step + 0.5) for k in range(4)], (backend, key, idx)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_pretraining_runs_on_ssv2_through_dali_cpu(manifest, tmp_path):
    if not dali_available():
        pytest.skip("DALI is not installed (pip install 'ascnet[dali]')")
    cfg = PretrainConfig(manifest=str(manifest), out=str(tmp_path / "run"),
                         arch="r3d18", width=4, clip=ClipSpec(clip_len=8, crop_size=32, speeds=(1, 2, 4)), batch_size=2,
                         proj_dim=8, hidden_dim=16, queue_size=8, max_steps=3, log_every=1, backend="dali-cpu",
                         workers=1, device="cpu", progress=False, tensorboard=False)
    summary = pretrain(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == 3 and [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["scp_pos_chance"] == pytest.approx(1 / 3) for r in rows)  # the labels reached the loader
