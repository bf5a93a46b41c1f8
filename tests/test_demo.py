"""End to end: the demo's orchestrator at a tiny size (real data, index, DALI, training, evaluation)."""
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ascnet.cli.train import main as train_cli
from ascnet.evaluate.report import hits_array, paired_gain_se
from ascnet.demo import DEMO_CLIP, DemoConfig, DemoError, data_config, run_demo
from ascnet.tools.demo_data import trajectory, video_specs

TINY = dict(videos=24, size=32, min_frames=24, max_frames=30, clips_per_video=2, workers=2, supervised_epochs=1)
TINY_PRETRAIN = dict(width=4, clip=replace(DEMO_CLIP, clip_len=4, crop_size=16), max_steps=3, batch_size=4, hidden_dim=32,
                     queue_size=64)


def tiny_demo(out, **kw) -> DemoConfig:
    """The demo at a tiny size: its data fields, and its pretraining recipe made small."""
    cfg = DemoConfig(out=str(out), progress=False, **{**TINY, **kw})
    return replace(cfg, pretrain=replace(cfg.pretrain, **TINY_PRETRAIN))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = tiny_demo(tmp_path_factory.mktemp("demo") / "run", ablation=True, random_inits=2)
    return cfg, run_demo(cfg)


def _table(report: str) -> dict[str, list[float]]:
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in ("ASCNet (ACP+SCP)", "ACP only", "random init", "supervised (labels)"):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


@pytest.mark.slow
def test_report_holds_the_table_and_pictures(demo):
    cfg, report = demo
    text = report.read_text()
    rows = _table(text)
    assert set(rows) == {"ASCNet (ACP+SCP)", "ACP only", "random init", "supervised (labels)"}
    assert "One run is one draw" in text and "`--seeds 0,1,2,3,4`" in text  # one seed: what it is a draw from
    for name, values in rows.items():
        assert len(values) == 6, name  # linear, linear clip, retrieval top-1/5/10, digit probe
        assert all(math.isfinite(v) and 0 <= v <= 100 for v in values), (name, values)
    # the table repeats the evaluation commands' own results
    linear = json.loads((report.parent / "eval" / "linear" / "results.json").read_text())
    # the random-init row is the mean of its random networks, of the reference's seeds (100, 101)
    randoms = [r["metrics"]["video_top1"] for r in linear["rows"] if r["init"] in ("random:100", "random:101")]
    assert len(randoms) == 2 and len({r["init"] for r in linear["rows"]}) == len(linear["rows"])
    assert rows["random init"][0] == pytest.approx(sum(randoms) / 2, abs=0.005)
    assert "mean of 2 random networks (random:100, random:101" in text
    # the supervised reference is the fine-tuned checkpoint, evaluated by the same linear probe
    supervised = report.parent / "eval" / "supervised"
    assert json.loads((supervised / "results.json").read_text())["config"]["clip"]["augment"] is False
    assert any(r["init"] == str(supervised / "checkpoint.pt") for r in linear["rows"])
    assert re.search(r"linear top-1 [+-]\d+\.\d ± \d+\.\d points, retrieval top-1 [+-]\d+\.\d ± \d+\.\d points", text)
    # the ablation pretrained with lambda = 0 and was evaluated like the others
    assert json.loads((report.parent / "pretrain-acp" / "config.json").read_text())["scp_weight"] == 0.0
    assert any(r["init"].startswith(str(report.parent / "pretrain-acp")) for r in linear["rows"])
    assert "digit probe" in text
    summary = json.loads((report.parent / "summary.json").read_text())
    assert isinstance(summary["goal_met"], bool) and math.isfinite(summary["gap_linear_top1"])
    for png in ("loss.png", "pairs.png", "projection.png"):
        with Image.open(report.parent / png) as im:
            assert im.format == "PNG" and im.width > 200 and im.height > 100
        assert f"({png})" in text


@pytest.mark.slow
def test_preview_command_on_the_demo_manifest(demo, tmp_path):
    cfg, report = demo
    out = tmp_path / "pairs.png"
    args = ["preview", "--manifest", str(report.parent / "manifest.parquet"), "--out", str(out), "--n", "2",
            "--clip-len", "4", "--crop-size", "32", "--speeds", "1,2"]
    res = CliRunner().invoke(train_cli, args)
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_preview_errors_name_the_fix(tmp_path):
    res = CliRunner().invoke(train_cli, ["preview", "--manifest", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "p.png")])
    assert res.exit_code != 0 and "no such manifest" in res.output
    res = CliRunner().invoke(train_cli, ["preview", "--manifest", str(tmp_path / "m.parquet"), "--out", str(tmp_path / "p.txt")])
    assert res.exit_code != 0 and "write an image (.png" in res.output


def test_a_failing_step_is_named(tmp_path):
    cfg = tiny_demo(tmp_path / "run", videos=5)
    with pytest.raises(DemoError, match=r"step '1/6 data: digits in motion' failed: BadParameter: .*need at least 12"):
        run_demo(cfg)
    assert "Traceback" in (tmp_path / "run" / "demo-error.log").read_text()


def test_cli_maps_options_and_fast_keeps_what_is_given(tmp_path, monkeypatch):
    import ascnet.demo as demo

    seen = []

    def fake_run(cfg):
        seen.append(cfg)
        raise DemoError("stop here")

    monkeypatch.setattr(demo, "run_demo", fake_run)
    r = CliRunner().invoke(demo.main, ["--out", str(tmp_path), "--fast", "--videos", "120", "--speed-range", "0.05,0.07",
                                       "--scene-correlation", "0.6", "--scp-weight", "0.5", "--backend", "pyav"])
    assert r.exit_code == 1 and "stop here" in r.output
    cfg = seen[-1]
    assert (cfg.videos, cfg.ablation, cfg.supervised_epochs) == (120, False, 50)  # --videos given, the rest from --fast
    assert cfg.speed_range == (0.05, 0.07) and cfg.scene_correlation == 0.6 and cfg.backend == "pyav"
    assert cfg.pretrain.scp_weight == 0.5 and cfg.pretrain.epochs == 60 and cfg.clip == demo.DEMO_CLIP
    r = CliRunner().invoke(demo.main, ["--out", str(tmp_path), "--backend", "ffmpeg"])
    assert r.exit_code == 2 and "'ffmpeg' is not one of" in r.output


@pytest.mark.slow
def test_seeds_report_each_seed_and_the_spread(tmp_path):
    cfg = replace(tiny_demo(tmp_path / "run", supervised_epochs=0, random_inits=1), seeds=(3, 1))
    report = run_demo(cfg)
    summary = json.loads((report.parent / "summary.json").read_text())
    assert [s["seed"] for s in summary["seeds"]] == [3, 1]  # the first seed makes the table
    first, second = summary["seeds"]
    assert first["gap_linear_top1"] == pytest.approx(summary["gap_linear_top1"])
    assert first["gap_retrieval_top1"] == pytest.approx(summary["gap_retrieval_top1"])
    assert json.loads((report.parent / "pretrain" / "config.json").read_text())["seed"] == 3
    # the second seed pretrained and evaluated on its own, against the first seed's random-init row: one reference
    run1 = report.parent / "seeds" / "seed1"
    assert json.loads((run1 / "pretrain" / "config.json").read_text())["seed"] == 1
    linear = json.loads((run1 / "eval" / "linear" / "results.json").read_text())
    (ckpt, top1), = {r["init"]: r["metrics"]["video_top1"] for r in linear["rows"]}.items()  # no random network again
    assert ckpt.startswith(str(run1 / "pretrain"))
    first_linear = json.loads((report.parent / "eval" / "linear" / "results.json").read_text())
    random_top1 = {r["init"]: r["metrics"]["video_top1"] for r in first_linear["rows"]}["random:100"]
    assert second["gap_linear_top1"] == pytest.approx(top1 - random_top1)
    # each gain carries its standard error from the test videos, paired video by video with the same random network
    for command, metric in (("linear", "video_top1"), ("retrieval", "top1")):
        rows = json.loads((report.parent / "eval" / command / "results.json").read_text())["rows"]
        hits = {r["init"]: r["top1_hits"] for r in rows}
        for r in rows:  # one character per test video, and the row's top-1 is their mean
            assert 100 * hits_array(r["top1_hits"]).mean() == pytest.approx(r["metrics"][metric])
        mine = next(h for i, h in hits.items() if not i.startswith("random"))
        se = paired_gain_se(mine, [hits["random:100"]])
        assert 0 < se <= 100 / math.sqrt(len(mine) - 1)  # |d| <= 1 per video
        assert first[f"se_{command}_top1"] == pytest.approx(se) == summary[f"se_{command}_top1"]
    text = report.read_text()
    assert "One run is one draw" not in text  # the seeds' own spread instead
    assert re.search(r"retrieval top-1 [+-]\d+\.\d ± \d+\.\d points", text)
    assert "one run's standard error from the test videos alone" in text
    assert re.search(r"Reproduce: `python -m ascnet.demo --out \S+ .*--seeds 3,1.*` with the pretraining recipe of", text)
    assert "## Seeds: 3, 1" in text and re.search(r"ASCNet linear top-1 over random init: [+-]\d+\.\d ± \d+\.\d points", text)


def test_seeds_option_parses_and_rejects_repeats(tmp_path, monkeypatch):
    import ascnet.demo as demo

    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda cfg: seen.append(cfg) or (_ for _ in ()).throw(DemoError("stop")))
    r = CliRunner().invoke(demo.main, ["--out", str(tmp_path), "--seeds", "0,1,2,3,4", "--ablation"])
    assert r.exit_code == 1 and seen[-1].seeds == (0, 1, 2, 3, 4) and seen[-1].ablation is True
    assert DemoConfig().ablation is False  # the default demo: one pretraining run
    with pytest.raises(DemoError, match="a seed is repeated"):
        DemoConfig(seeds=(1, 1)).check()
    assert DemoConfig(seed=7, seeds=(2, 5)).check().seed == 2


def test_report_command_line_runs_the_same_config_again(tmp_path, monkeypatch):
    """The report's 'Reproduce' line, fed back to the command, gives the run's config: its seeds, data folder,
    data options and recipe flags (a run with --seeds once printed a line without them)."""
    import shlex

    import ascnet.demo as demo

    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda cfg: seen.append(cfg) or (_ for _ in ()).throw(DemoError("stop")))
    cfg = DemoConfig(out=str(tmp_path / "a run"), data=str(tmp_path / "data"), seeds=(2, 0, 4), seed=2, ablation=True,
                     speed_range=(0.05, 0.1), scene_correlation=0.3, supervised_epochs=0, threads=2)
    cfg = replace(cfg, pretrain=replace(cfg.pretrain, width=8, scp_weight=0.7, epochs=30,
                                        clip=replace(cfg.clip, augment=False)))
    line, whole = demo.command_line(cfg)
    assert whole and "--seeds 2,0,4" in line and "--no-augment" in line and "--fast" not in line
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "ascnet.demo"]
    r = CliRunner().invoke(demo.main, words[3:] + ["--no-progress"])
    assert r.exit_code == 1, r.output
    assert replace(seen[-1], progress=False) == replace(cfg, progress=False)
    # the default run needs nothing but its folder; a recipe changed beyond the flags is said to be elsewhere
    assert demo.command_line(DemoConfig()) == ("python -m ascnet.demo --out runs/demo", True)
    assert demo.command_line(replace(cfg, pretrain=replace(cfg.pretrain, max_steps=3)))[1] is False


def test_demo_sprites_move_fast_and_their_direction_does_not_alias():
    """The demo's videos: straight motions move 6-12 % of the canvas a frame, and less than half of it at the
    top pretraining speed (past half, a sprite on the wrapping canvas would seem to move the other way)."""
    cfg = DemoConfig(videos=60)
    size, top = cfg.size, max(cfg.clip.speeds)
    steps = []
    for s in video_specs(data_config(cfg)):
        if s["motion"] in ("left", "right", "up", "down"):
            path = trajectory(s["motion"], 4, s["speed"], s["phase"], s["radius"], s["centre"])
            steps.append(np.abs(np.diff(path, axis=0)).max())
    steps = np.array(steps) / size
    assert len(steps) == 40
    assert 0.06 <= steps.min() and steps.max() <= 0.12  # the recipe's range, drawn for the demo's data
    assert steps.max() * top < 0.5
