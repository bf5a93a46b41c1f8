"""Encoder loading, split checks, the feature cache key and the row bookkeeping of extraction.

End-to-end extraction through the real evaluation loader is in test_eval_cli.py.
"""
import numpy as np
import pytest
import torch

from ascnet.checkpoint import CheckpointError, save_atomic
from ascnet.evaluate.features import (
    ClipFeatures, ClipSettings, EvalError, cache_key, check_classes, load_encoder, resolve_inits, run_model, split_of,
)
from ascnet.manifest import Manifest
from ascnet.models import build_backbone


def manifest_of(rows, root):
    full = [
        {"video_id": f"v{i}", "path": f"v{i}.webm", "label": lab, "label_name": name, "split": split,
         "num_frames": 40, "fps": 25.0, "status": "ok", "mtime": 1.0, "bytes": 100}
        for i, (lab, name, split) in enumerate(rows)
    ]
    return Manifest.from_rows(full, root)


def backbone_file(path, arch, state_arch=None, width=8):
    state = build_backbone(state_arch or arch, width).state_dict()
    save_atomic({"kind": "backbone", "arch": arch, "width": width, "input_size": [8, 32, 32], "feature_dim": 8 * width,
                 "state_dict": state}, path)
    return path


def test_checkpoint_of_another_architecture_is_named(tmp_path):
    # weights of an r3d18 in a file that says r2plus1d18: the state dict does not fit
    path = backbone_file(tmp_path / "b.pt", "r2plus1d18", state_arch="r3d18")
    with pytest.raises(CheckpointError, match=r"b\.pt: its weights do not fit arch 'r2plus1d18' \(width 8\): .*missing.*unexpected"):
        load_encoder(str(path))


def test_arch_option_contradicting_the_checkpoint_is_named(tmp_path):
    path = backbone_file(tmp_path / "b.pt", "r3d18")
    with pytest.raises(CheckpointError, match=r"checkpoint holds arch 'r3d18' but 'r2plus1d18' was asked for"):
        load_encoder(str(path), arch="r2plus1d18")
    with pytest.raises(CheckpointError, match=r"checkpoint holds width 8 but 16 was asked for"):
        load_encoder(str(path), width=16)


def test_run_checkpoint_loads_the_online_encoder(tmp_path):
    ref = build_backbone("r3d18", 8)
    model = {f"online_encoder.{k}": v for k, v in ref.state_dict().items()}
    model["target_encoder.conv1.weight"] = torch.zeros(1)  # other parts of the method module are ignored
    cfg = {"arch": "r3d18", "width": 8, "clip_len": 8, "crop_size": 32}
    save_atomic({"kind": "run", "config": cfg, "model": model}, tmp_path / "run.pt")
    enc, info = load_encoder(str(tmp_path / "run.pt"))
    assert (info.arch, info.width) == ("r3d18", 8) and info.key.startswith("sha256:")
    for k, v in ref.state_dict().items():
        assert torch.equal(enc.state_dict()[k], v)


def test_run_directory_means_its_newest_checkpoint(tmp_path):
    for step, width in ((1, 4), (2, 8)):
        net = build_backbone("r3d18", width)
        model = {f"online_encoder.{k}": v for k, v in net.state_dict().items()}
        save_atomic({"kind": "run", "config": {"arch": "r3d18", "width": width}, "model": model},
                    tmp_path / "run" / "checkpoints" / f"step-{step:08d}.pt")
    _, info = load_encoder(str(tmp_path / "run"))
    assert (info.arch, info.width) == ("r3d18", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: a directory without checkpoints/step-\*\.pt or checkpoint\.pt"):
        load_encoder(str(tmp_path / "empty"))


def test_random_init_is_seeded_and_takes_the_checkpoints_arch(tmp_path):
    a, info = load_encoder("random", "r3d18", 8, seed=3)
    b, _ = load_encoder("random", "r3d18", 8, seed=3)
    c, _ = load_encoder("random", "r3d18", 8, seed=4)
    assert info.key == "random:r3d18:8:3"
    w = "conv1.weight" if "conv1.weight" in a.state_dict() else next(iter(a.state_dict()))
    assert torch.equal(a.state_dict()[w], b.state_dict()[w]) and not torch.equal(a.state_dict()[w], c.state_dict()[w])
    ck = str(backbone_file(tmp_path / "b.pt", "r2plus1d18", width=4))
    assert resolve_inits((ck, "random"), None, None) == [(ck, None, None), ("random", "r2plus1d18", 4)]
    with pytest.raises(EvalError, match=r"--init random needs --arch"):
        resolve_inits(("random",), None, None)
    with pytest.raises(EvalError, match=r"nothing to evaluate: pass --init"):
        resolve_inits((), "r3d18", None)


def test_random_with_its_own_seed_is_that_seeds_network():
    a, info = load_encoder("random:4", "r3d18", 8, seed=3)  # its own seed wins over the run's
    b, _ = load_encoder("random", "r3d18", 8, seed=4)
    assert (info.init, info.key) == ("random:4", "random:r3d18:8:4")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    ck_arch = [("random:7", "r2plus1d18", 4)]
    assert resolve_inits(("random:7",), "r2plus1d18", 4) == ck_arch
    with pytest.raises(EvalError, match=r"--init random:x: write 'random' or 'random:SEED'"):
        load_encoder("random:x", "r3d18", 8)


def test_manifest_without_a_test_split_is_named(tmp_path):
    m = manifest_of([(0, "run", "train"), (1, "jump", "train"), (1, "jump", "val")], tmp_path)
    with pytest.raises(EvalError, match=r"m\.parquet: no usable videos in split 'test' \(splits with ok videos: \['train', 'val'\]\); pass --test-split"):
        split_of(m, "test", "--test-split", "m.parquet")
    assert len(split_of(m, "val", "--test-split")) == 1


def test_unlabelled_split_is_named(tmp_path):
    m = manifest_of([(-1, "", "test")], tmp_path)
    with pytest.raises(EvalError, match=r"1 videos of split 'test' have no label \(e\.g\. 'v0'\)"):
        split_of(m, "test", "--test-split")


def test_test_classes_missing_from_train_are_named(tmp_path):
    m = manifest_of([(0, "run", "train"), (1, "jump", "train"), (0, "run", "test"), (2, "swim", "test")], tmp_path)
    with pytest.raises(EvalError, match=r"1 classes of the test split have no training videos: 2 \(swim\)"):
        check_classes(m.select("train"), m.select("test"))
    check_classes(m.select(None), m.select("test"))  # train may hold more classes than test


def test_cache_key_follows_encoder_manifest_and_clip_settings(tmp_path):
    _, info = load_encoder("random", "r3d18", 8)
    _, other = load_encoder("random", "r3d18", 8, seed=1)
    m = manifest_of([(0, "run", "test"), (1, "jump", "test")], tmp_path).select("test")
    key = cache_key(info, m, "test", ClipSettings())[0]
    assert key == cache_key(info, m, "test", ClipSettings())[0]
    assert key != cache_key(other, m, "test", ClipSettings())[0]
    assert key != cache_key(info, m, "test", ClipSettings(clips_per_video=5))[0]
    assert key != cache_key(info, m, "train", ClipSettings())[0]
    touched = Manifest(m.df.assign(mtime=[1.0, 2.0]), m.root, m.meta)  # a re-encoded file
    assert key != cache_key(info, touched, "test", ClipSettings())[0]


class Echo(torch.nn.Module):
    """Returns the first pixel of each channel: lets a test follow each row through extraction."""

    def forward(self, x):
        return x[:, :, 0, 0, 0]


def test_run_model_sorts_rows_and_checks_counts(tmp_path):
    # rows arrive shuffled across batches; value = 100*video + 10*clip + crop
    order = [(1, 1, 0), (0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]

    def batch(rows):
        vals = torch.tensor([100.0 * v + 10 * c + k for v, c, k in rows])
        return {"clips": vals[:, None, None, None, None].expand(-1, 3, 2, 4, 4).clone(),
                "video_index": torch.tensor([r[0] for r in rows]), "clip_index": torch.tensor([r[1] for r in rows]),
                "crop_index": torch.tensor([r[2] for r in rows])}

    feats = run_model(Echo(), [batch(order[:3]), batch(order[3:])], 2, 4, np.array([5, 7]), ["a", "b"], torch.device("cpu"))
    np.testing.assert_array_equal(feats.features[:, 0], [0, 1, 10, 11, 100, 101, 110, 111])
    np.testing.assert_array_equal(feats.clip_labels, [5, 5, 5, 5, 7, 7, 7, 7])
    feats.save(tmp_path / "f.npz", {"k": 1})
    back = ClipFeatures.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(back.features, feats.features)
    assert back.video_ids == ["a", "b"]
    with pytest.raises(EvalError, match=r"gave \[3\] rows for videos \[1\], expected 4 each"):
        run_model(Echo(), [batch(order[:-1])], 2, 4, np.array([5, 7]), ["a", "b"], torch.device("cpu"))


def test_run_model_memory_stays_at_the_features_size():
    """Rows are written into arrays of the final size: per-batch arrays kept in lists, each allocated
    between two large batches, pinned glibc's heap and grew it by ~0.4 MB a row (1.8 GB here; 8 GB on
    UCF-101's training split), far beyond the features' own size."""
    from ascnet.runlog import rss_mb

    class Mean(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3, 4))

    def batches(n):
        for i in range(n):
            yield {"clips": torch.rand(8, 3, 8, 64, 64), "video_index": torch.arange(8) + 8 * i,
                   "clip_index": torch.zeros(8, dtype=torch.int64), "crop_index": torch.zeros(8, dtype=torch.int64)}

    def run(n):
        return run_model(Mean(), batches(n), 8 * n, 1, np.zeros(8 * n), [str(i) for i in range(8 * n)],
                         torch.device("cpu"))

    run(20)  # the allocators' first growth
    before = rss_mb()
    feats = run(600)
    assert rss_mb() - before < 300  # the features: 4,800 x 3 floats
    assert feats.video_index.tolist() == list(range(4800))
