"""The ablation sweep at a tiny size: its cells, its resume and its report."""
import json

import pytest

from dataclasses import replace

from ascnet.ablation import read_results, sweep, what_the_queue_retrieves
from ascnet.demo import DEMO_CLIP, DemoConfig


@pytest.mark.slow
def test_sweep_runs_each_cell_once_and_reports_them(tmp_path):
    base = DemoConfig(videos=24, size=32, min_frames=24, max_frames=30, clips_per_video=1, workers=1, progress=False)
    base = replace(base, pretrain=replace(base.pretrain, width=4, clip=replace(DEMO_CLIP, clip_len=4, crop_size=16, speeds=(1, 2)),
                                          max_steps=2, batch_size=4, hidden_dim=32, queue_size=64))
    report = sweep(tmp_path, base, correlations=(0.0, 1.0), seeds=(0,), step_scales=(2,), at_p=1.0)
    rows = read_results(tmp_path)
    keys = {r["key"] for r in rows}
    assert keys == {f"p={p} seed=0 {v} lambda={w} steps x1" for p in (0, 1)
                    for v, w in (("ACP+SCP", 1), ("ACP only", 0), ("random init", 0))} | \
                   {"p=1 seed=0 ACP+SCP lambda=1 steps x2"}
    by_key = {r["key"]: r for r in rows}
    assert by_key["p=1 seed=0 ACP+SCP lambda=1 steps x2"]["steps"] == 4
    assert by_key["p=1 seed=0 ACP+SCP lambda=1 steps x1"]["steps"] == 2
    # each p has its own data: the correlated one records its families, the other none
    assert json.loads((tmp_path / "data-p1" / "demo_data.json").read_text())["scene_correlation"] == 1.0
    assert "scene_correlation" not in json.loads((tmp_path / "data-p0" / "demo_data.json").read_text())
    for r in rows:
        assert 0 <= r["linear_top1"] <= 100 and 0 <= r["retrieval_top1"] <= 100
        if r["variant"] != "random init":
            assert r["scp_pos_chance"] == pytest.approx(1 / 6)
    text = report.read_text()
    assert "by scene correlation p" in text and "ACP+SCP by steps" in text and (tmp_path / "ablation.png").is_file()
    # the queue's positives, mapped back to the videos they came from: at p = 1 a video's texture
    # family is its class, so the two shares agree; at p = 0 there are no families
    assert "## What the queue retrieves" in text
    full = what_the_queue_retrieves(tmp_path / "p1" / "seed0" / "ACP-SCP-l1-x1", tmp_path / "p1" / "manifest.parquet",
                                    tmp_path / "data-p1")
    assert full["same texture family"] == full["same class"] and 0 <= full["same class"]["positive"] <= 1
    none = what_the_queue_retrieves(tmp_path / "p0" / "seed0" / "ACP-SCP-l1-x1", tmp_path / "p0" / "manifest.parquet",
                                    tmp_path / "data-p0")
    assert none["same texture family"] is None and abs(none["background correlation"]["positive"]) <= 1
    # a second call finds every cell done and runs nothing
    sweep(tmp_path, base, correlations=(0.0, 1.0), seeds=(0,), step_scales=(2,), at_p=1.0)
    assert len(read_results(tmp_path)) == len(rows)
