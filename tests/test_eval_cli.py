"""`ascnet-eval` end to end: real synthetic videos, the real evaluation loader and backbones."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ascnet.checkpoint import save_atomic
from ascnet.clips import ClipSpec
from ascnet.cli.evaluate import main
from ascnet.manifest import Manifest
from ascnet.models import build_backbone
from ascnet.tools.synthetic import write_pattern_video

TINY = ["--width", "4", "--clip-len", "8", "--crop-size", "32", "--batch-size", "4"]


def make_dataset(root: Path, splits=("train",) * 6 + ("test",) * 2, labels=None) -> Path:
    """Eight 64x48 VP9 videos of 30..65 frames, two classes; returns the manifest path."""
    rows = []
    for i, split in enumerate(splits):
        lab = labels[i] if labels else i % 2
        n = 30 + 5 * i
        path = write_pattern_video(root / f"c{lab}" / f"v{i}.webm", n, codec="vp9", width=64, height=48)
        st = path.stat()
        rows.append(dict(
            video_id=f"c{lab}/v{i}.webm", path=f"c{lab}/v{i}.webm", label=lab, label_name=f"class{lab}", split=split,
            num_frames=n, fps=25.0, width=64, height=48, codec="vp9", pix_fmt="yuv420p", duration_s=n / 25,
            bytes=st.st_size, mtime=st.st_mtime, status="ok",
        ))
    return Manifest.from_rows(rows, root, layout="folder").write(root / "m.parquet")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("videos"))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_linear_and_retrieval_share_the_cache_and_a_second_run_decodes_nothing(tmp_path):
    manifest = make_dataset(tmp_path / "data")
    ckpt = tmp_path / "backbone.pt"
    net = build_backbone("r2plus1d18", 4)
    save_atomic({"kind": "backbone", "arch": "r2plus1d18", "width": 4, "input_size": [8, 32, 32],
                 "feature_dim": net.feature_dim, "state_dict": net.state_dict()}, ckpt)
    cache = tmp_path / "cache"
    common = ["--manifest", manifest, "--cache-dir", cache, "--clips-per-video", "2", "--clip-len", "8", "--crop-size", "32",
              "--backend", "dali-cpu"]  # VP9: DALI decodes it in-process, no worker start-up

    r = invoke("linear", "--init", ckpt, "--init", "random", "--out", tmp_path / "lin1", *common)
    assert r.exit_code == 0, r.output
    first = results(tmp_path / "lin1")
    # the random row takes the checkpoint's architecture, so the two rows compare like with like
    assert [(row["init"], row["arch"], row["width"]) for row in first["rows"]] == [
        (str(ckpt), "r2plus1d18", 4), ("random", "r2plus1d18", 4)]
    assert [row["features_cached"] for row in first["rows"]] == [False, False]
    assert f"| {ckpt} |" in r.output and "| random " in r.output and "video_top1" in r.output
    for name in ("results.md", "accuracy.png"):
        assert (tmp_path / "lin1" / name).stat().st_size > 0
    assert len(list(cache.glob("*.npz"))) == 4  # (checkpoint, random) x (train, test)

    # the videos are gone: a second run can only succeed from the cache
    for video in (tmp_path / "data").rglob("*.webm"):
        video.unlink()
    r = invoke("linear", "--init", ckpt, "--init", "random", "--optimizer", "adam", "--epochs", "20",
               "--out", tmp_path / "lin2", *common)
    assert r.exit_code == 0, r.output
    assert [row["features_cached"] for row in results(tmp_path / "lin2")["rows"]] == [True, True]

    r = invoke("retrieval", "--init", ckpt, "--init", "random", "--out", tmp_path / "ret", *common)
    assert r.exit_code == 0, r.output
    ret = results(tmp_path / "ret")
    # a gallery of 6 train videos: k = 10, 20, 50 are capped at 6 and say so
    assert list(ret["rows"][0]["metrics"]) == ["top1", "top5", "top6"] and ret["ks_capped"] == [10, 20, 50]
    assert ret["rows"][0]["metrics"]["top6"] == 100.0  # both classes are in the gallery
    assert (tmp_path / "ret" / "topk.png").stat().st_size > 0

    r = invoke("compare", tmp_path / "lin1", tmp_path / "ret")
    assert r.exit_code == 0, r.output
    # one row per encoder: the linear and retrieval scores of each init side by side
    lines = r.output.splitlines()
    assert "linear video_top1" in lines[0] and "retrieval top6" in lines[0] and len(lines) == 2 + 2
    assert lines[3].startswith("| random ") and "lin1, ret" in lines[3]
    r = invoke("compare", tmp_path / "nowhere")
    assert r.exit_code == 2 and "no results.json" in r.output


def test_manifest_without_test_split_is_a_readable_error(tmp_path):
    manifest = make_dataset(tmp_path, splits=("train",) * 3 + ("val",), labels=[0, 1, 0, 1])
    r = invoke("retrieval", "--init", "random", "--arch", "r3d18", "--manifest", manifest, "--out", tmp_path / "o", *TINY)
    assert r.exit_code == 2
    assert "no usable videos in split 'test' (splits with ok videos: ['train', 'val']); pass --test-split" in r.output


def test_test_classes_missing_from_train_is_a_readable_error(tmp_path):
    manifest = make_dataset(tmp_path, splits=("train", "train", "test"), labels=[0, 0, 1])
    r = invoke("linear", "--init", "random", "--arch", "r3d18", "--manifest", manifest, "--out", tmp_path / "o", *TINY)
    assert r.exit_code == 2
    assert "1 classes of the test split have no training videos: 1 (class1)" in r.output


def test_checkpoint_of_another_architecture_is_a_readable_error(dataset, tmp_path):
    ckpt = tmp_path / "b.pt"
    save_atomic({"kind": "backbone", "arch": "s3dg", "width": 4, "input_size": [8, 32, 32], "feature_dim": 32,
                 "state_dict": build_backbone("r3d18", 4).state_dict()}, ckpt)
    r = invoke("linear", "--init", ckpt, "--manifest", dataset, "--out", tmp_path / "o", "--clip-len", "8")
    assert r.exit_code == 2
    assert f"error: {ckpt}: its weights do not fit arch 's3dg' (width 4)" in r.output
    r = invoke("linear", "--init", "random", "--manifest", dataset, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--init random needs --arch" in r.output


def test_bench_eval_prints_every_backend_beside_the_baseline(dataset, tmp_path):
    from ascnet.cli.bench import main as bench

    out = tmp_path / "bench.json"
    r = CliRunner().invoke(bench, ["eval", str(dataset), "--split", "train", "--backends", "nvdec,pyav,baseline",
                                   "--width", "4", "--clip-len", "8", "--crop-size", "32", "--clips-per-video", "2",
                                   "--min-videos", "6", "--rounds", "2", "--allow-busy", "--json", str(out)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = {row["backend"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"nvdec", "pyav", "baseline", "model"}
    assert rows["baseline"]["ratio"] == 1.0 and rows["pyav"]["features_videos_per_s"] > 0
    # 6 videos x 2 clips = 12 rows; the first batch (8 rows, start-up) is not timed: 4 rows = 2 videos
    assert rows["pyav"]["videos"] == rows["baseline"]["videos"] == 2
    assert len(rows["pyav"]["extra"]["rounds"]) == len(rows["model"]["extra"]["rounds"]) == 2
    assert len(rows["pyav"]["load"]) == 2 and len(rows["pyav"]["extra"]["foreign_cores"]) == 4  # 2 rounds x 2 passes
    table = r.output[r.output.index("backend"):]
    assert "pyav" in table and "baseline" in table and "model" in table
    if rows["nvdec"]["status"] == "skipped":
        assert "no CUDA GPU" in rows["nvdec"]["reason"]


def test_bad_options_are_named(dataset, tmp_path):
    base = ["--manifest", dataset, "--out", tmp_path / "o"]
    r = invoke("retrieval", "--init", "random", "--arch", "r3d18", *base, "--ks", "0,a")
    assert r.exit_code == 2 and "'0,a': give integers separated by commas" in r.output
    r = invoke("retrieval", "--init", "random", "--arch", "r3d18", *base, "--ks", "0,5")
    assert r.exit_code == 2 and "ks=(0, 5): k values must be positive integers" in r.output
    r = invoke("finetune", "--init", "random", "--arch", "r3d18", *base, "--test-crops", "center,five")
    assert r.exit_code == 2 and "'center,five': allowed values are center, three, ten" in r.output
    r = invoke("finetune", "--init", "random", "--init", "x.pt", "--arch", "r3d18", *base)
    assert r.exit_code == 2 and "finetune takes exactly one --init" in r.output
    r = invoke("linear", "--init", tmp_path / "none.pt", *base)
    assert r.exit_code == 2 and "none.pt: no such checkpoint" in r.output


def test_several_encoders_decode_each_split_once_and_match_one_at_a_time(dataset, tmp_path, monkeypatch):
    from ascnet.evaluate import features as F

    calls = []
    real = F.eval_batches
    monkeypatch.setattr(F, "eval_batches", lambda rows, *a, **k: calls.append(len(rows)) or real(rows, *a, **k))
    rows = F.split_of(Manifest.from_parquet(dataset), "train", "--train-split")
    settings = F.ClipSettings(ClipSpec(clip_len=8, crop_size=32), 2, "center", "dali-cpu")
    encoders = [F.load_encoder(f"random:{s}", "r3d18", 4) for s in (1, 2, 3)]
    kw = dict(batch_size=4, device="cpu", workers=1)

    F.cached_features_many(encoders[:1], rows, "train", settings, tmp_path / "together", **kw)  # one already cached
    together = F.cached_features_many(encoders, rows, "train", settings, tmp_path / "together", **kw)
    assert calls == [6, 6]  # the two still missing came from one pass over the six videos
    assert [hit for _, hit in together] == [True, False, False]
    alone = [F.cached_features(m, info, rows, "train", settings, tmp_path / f"alone{i}", **kw)[0]
             for i, (m, info) in enumerate(encoders)]
    for (a, _), b in zip(together, alone):
        np.testing.assert_array_equal(a.features, b.features)  # each encoder's own features, rows in the same order
        np.testing.assert_array_equal(a.video_index, b.video_index)
    assert not np.array_equal(together[1][0].features, together[2][0].features)
