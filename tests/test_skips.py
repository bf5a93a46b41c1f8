"""A long run survives a damaged video: the loader passes over it for a stand-in drawn from the
seed and the position, the run logs it once in skipped.jsonl, resumes exactly, and stops when a
large share of an epoch fails (the dataset or the decoder is broken, not one file)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ascnet.clips import ClipSpec
from ascnet.manifest import Manifest
from ascnet.pipelines.loader import DecodeError, build_pair_loader
from ascnet.skips import TooManySkipped
from ascnet.tools.synthetic import write_pattern_video
from ascnet.train import PretrainConfig, pretrain

pytestmark = pytest.mark.usefixtures("one_thread")


def videos(root: Path, n: int, bad: list[int], codec: str = "vp9") -> Path:
    """n pattern videos indexed as fine; those in `bad` are then cut short (damaged after indexing)."""
    rows = []
    for i in range(n):
        p = write_pattern_video(root / f"v{i}.webm", 48, codec, width=48, height=32, fps=25.0)
        rows.append(dict(video_id=p.name, path=p.name, label=i % 2, label_name=f"c{i % 2}", split="train",
                         num_frames=48, fps=25.0, width=48, height=32, codec=codec, status="ok"))
    path = Manifest.from_rows(rows, root=root).write(root / "m.parquet")
    for i in bad:
        f = root / f"v{i}.webm"
        f.write_bytes(f.read_bytes()[:1500])
    return path


@pytest.fixture(scope="module")
def one_bad(tmp_path_factory) -> Path:
    return videos(tmp_path_factory.mktemp("one_bad"), 8, bad=[3])


def batches(manifest: Path, backend: str, epochs: int = 2, **kw) -> tuple[list[dict], list[dict]]:
    with build_pair_loader(Manifest.from_parquet(manifest), ClipSpec(clip_len=4, crop_size=16, speeds=(1, 2)), batch_size=4, backend=backend, on_error="skip", seed=5, workers=1, **kw) as loader:
        out = [b for e in range(epochs) for b in loader.epoch(e)]
        return out, loader.take_skips()


@pytest.mark.parametrize("backend", ["pyav", "dali-cpu"])
def test_a_bad_video_gives_way_to_a_stand_in_and_batches_stay_full(one_bad, backend):
    got, skips = batches(one_bad, backend)
    assert len(got) == 4 and all(len(b["video_index"]) == 4 for b in got)  # 2 epochs x 2 full steps
    assert all(3 not in b["video_index"].tolist() for b in got)
    assert [s["video_id"] for s in skips] == ["v3.webm", "v3.webm"]  # once an epoch
    assert "v3.webm" in skips[0]["reason"] and skips[0]["epoch"] == 0
    # the stand-in is the same on both paths, and the same when the bad video is known up front
    known, again = batches(one_bad, backend, exclude=["v3.webm"])
    assert again == [{**s, "reason": ""} for s in skips]
    for a, b in zip(got, known):
        assert torch.equal(a["video_index"], b["video_index"]) and torch.equal(a["speed_a"], b["speed_a"])
        assert torch.equal(a["clip_a"], b["clip_a"])


def test_both_paths_pick_the_same_stand_ins(one_bad):
    pyav, _ = batches(one_bad, "pyav", epochs=1)
    dali, _ = batches(one_bad, "dali-cpu", epochs=1)
    assert [b["video_index"].tolist() for b in pyav] == [b["video_index"].tolist() for b in dali]


def test_raise_names_the_file(one_bad):
    with build_pair_loader(Manifest.from_parquet(one_bad), ClipSpec(clip_len=4, crop_size=16, speeds=(1, 2)), batch_size=4, backend="pyav", on_error="raise", seed=5, workers=1) as loader:
        with pytest.raises(DecodeError, match=r"v3\.webm: "):
            [b for e in range(2) for b in loader.epoch(e)]


def tiny(out: Path, manifest: Path, **kw) -> PretrainConfig:
    return PretrainConfig(data="manifest", manifest=str(manifest), out=str(out), arch="r3d18", width=4, batch_size=4, proj_dim=16, hidden_dim=32, queue_size=64, warmup_epochs=0.5, progress=False, log_every=1, workers=1, backend="pyav", ckpt_every=2, **{"max_skip_fraction": 0.2, **kw}, clip=ClipSpec(clip_len=4, crop_size=16, speeds=(1, 2)))


def test_pretraining_skips_a_damaged_video_logs_it_once_and_resumes_exactly(one_bad, tmp_path):
    straight = pretrain(tiny(tmp_path / "a", one_bad, max_steps=6))
    assert straight["step"] == 6  # 3 epochs of 2 steps, the damaged video in each
    log = [json.loads(line) for line in (tmp_path / "a" / "skipped.jsonl").read_text().splitlines()]
    assert [r["video_id"] for r in log] == ["v3.webm"] and "v3.webm" in log[0]["reason"]
    metrics = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["skipped_videos"] == 1 and max(m["skipped_epoch"] for m in metrics) == 1
    first = pretrain(tiny(tmp_path / "b", one_bad, max_steps=6, stop_at=2))
    assert first["step"] == 2
    resumed = pretrain(tiny(tmp_path / "b", one_bad, max_steps=6, resume=True))
    a = torch.load(straight["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert straight["final_loss"] == resumed["final_loss"]
    # the resumed run knew the video from skipped.jsonl and did not log it again
    lines = (tmp_path / "b" / "skipped.jsonl").read_text().splitlines()
    assert [json.loads(line)["video_id"] for line in lines] == ["v3.webm"]


def test_a_broken_dataset_stops_the_run_with_the_fraction(tmp_path):
    manifest = videos(tmp_path, 8, bad=[0, 2, 4, 6])
    with pytest.raises(TooManySkipped, match=r"of the 8 videos of epoch 0 \(\d+\.\d%\) failed to decode .*--max-skip-fraction 0.2"):
        pretrain(tiny(tmp_path / "run", manifest, max_steps=6))
    assert (tmp_path / "run" / "skipped.jsonl").exists()  # what was found is kept


# ---- one rule for a straight and a resumed run -------------------------------------------------
def cut_near_end(manifest: Path, i: int, keep: float = 0.75) -> Path:
    """Damage video i after indexing: its last frames are gone (32 of 48 decode: with seed 0 its windows of
    epochs 0 and 1 fail and that of epoch 2 decodes; with seed 5 epoch 0 decodes and 1, 2 fail)."""
    f = manifest.parent / f"v{i}.webm"
    f.write_bytes(f.read_bytes()[:int(keep * f.stat().st_size)])
    return manifest


@pytest.fixture(scope="module")
def end_damaged(tmp_path_factory) -> Path:
    return cut_near_end(videos(tmp_path_factory.mktemp("end_damaged"), 8, bad=[]), 3)


def test_a_video_damaged_near_its_end_serves_the_windows_that_decode(end_damaged):
    got, skips = batches(end_damaged, "pyav", epochs=3)
    used = sum(3 in b["video_index"].tolist() for b in got)
    assert used >= 1 and len(skips) >= 1 and {s["video_id"] for s in skips} == {"v3.webm"}  # used, and passed over
    dali, dali_skips = batches(end_damaged, "dali-cpu", epochs=3)
    assert [b["video_index"].tolist() for b in dali] == [b["video_index"].tolist() for b in got]
    assert [(s["epoch"], s["step"]) for s in dali_skips] == [(s["epoch"], s["step"]) for s in skips]
    # started at epoch 1, as a resumed run is: the same batches as running through
    with build_pair_loader(Manifest.from_parquet(end_damaged), ClipSpec(clip_len=4, crop_size=16, speeds=(1, 2)),
                           batch_size=4, backend="pyav", on_error="skip", seed=5, workers=1) as loader:
        later = [b for e in (1, 2) for b in loader.epoch(e)]
    assert [b["video_index"].tolist() for b in later] == [b["video_index"].tolist() for b in got[2:]]


def test_resume_is_the_straight_run_with_a_video_damaged_near_its_end(end_damaged, tmp_path):
    straight = pretrain(tiny(tmp_path / "a", end_damaged, max_steps=6))
    pretrain(tiny(tmp_path / "b", end_damaged, max_steps=6, stop_at=2))
    resumed = pretrain(tiny(tmp_path / "b", end_damaged, max_steps=6, resume=True))
    log = [json.loads(line) for line in (tmp_path / "a" / "skipped.jsonl").read_text().splitlines()]
    assert [r["video_id"] for r in log] == ["v3.webm"]
    losses = lambda run: [(m["step"], m["loss"]) for m in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]  # noqa: E731
    assert [x for x in losses("a") if x[0] > 2] == [x for x in losses("b") if x[0] > 2]
    a = torch.load(straight["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


# ---- the DALI decoders under on_error="skip" --------------------------------------------------
def test_dali_cpu_drops_a_sample_whose_stand_ins_all_fail(tmp_path):
    """6 of 8 VP9 videos damaged: some samples find no video that decodes; the batch shrinks, as on pyav."""
    manifest = videos(tmp_path, 8, bad=[0, 1, 2, 4, 5, 6])
    pyav, _ = batches(manifest, "pyav", epochs=1)
    dali, skips = batches(manifest, "dali-cpu", epochs=1)
    assert [b["video_index"].tolist() for b in dali] == [b["video_index"].tolist() for b in pyav]
    assert any(len(b["video_index"]) < 4 for b in dali)  # a smaller batch, not a DecodeError
    assert all(set(b["video_index"].tolist()) <= {3, 7} for b in dali) and skips


def switch_video(path: Path) -> Path:
    """A VP9 stream whose frame size changes after 8 frames (two recordings joined): PyAV decodes every
    frame, DALI's decoder fails on the frames after the change."""
    import subprocess

    a = write_pattern_video(path.parent / "part_a.webm", 8, "vp9", 48, 32)
    b = write_pattern_video(path.parent / "part_b.webm", 40, "vp9", 64, 48)
    lst = path.parent / "parts.txt"
    lst.write_text(f"file '{a}'\nfile '{b}'\n")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy", str(path)],
                   check=True)
    for p in (a, b, lst):
        p.unlink()
    return path


def test_dali_cpu_passes_over_a_video_that_only_pyav_decodes(tmp_path):
    manifest = videos(tmp_path, 8, bad=[])
    switch_video(tmp_path / "v3.webm")
    got, skips = batches(manifest, "dali-cpu", epochs=2)
    assert len(got) == 4 and all(len(b["video_index"]) == 4 for b in got)
    assert skips and {s["video_id"] for s in skips} == {"v3.webm"}
    assert "decode with PyAV but not with DALI's dali-cpu decoder" in skips[0]["reason"]
    assert "re-index with --transcode" in skips[0]["reason"]
