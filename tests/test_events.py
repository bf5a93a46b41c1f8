"""TensorBoard event files (and an offline W&B run) mirror a run's metrics.jsonl, config and plots;
read back with TensorBoard's own EventAccumulator."""
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ascnet.cli.evaluate import main as eval_cli
from ascnet.cli.train import main as train_cli
from ascnet.events import flat_config
from tests.test_eval_cli import dataset  # noqa: F401  (a fixture: eight tiny VP9 videos and their manifest)

pytest.importorskip("tensorboard", reason="reading event files back needs tensorboard (pip install 'ascnet[test]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

TINY = ["--data", "synthetic", "--arch", "r3d18", "--width", "4", "--clip-len", "4", "--crop-size", "16", "--speeds", "1,2",
        "--batch-size", "2", "--proj-dim", "8", "--hidden-dim", "16", "--queue-size", "8", "--max-steps", "3",
        "--log-every", "1", "--no-progress", "--device", "cpu"]


def events(run: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def hparams_of(ea: EventAccumulator) -> tuple[dict, list[str]]:
    """(the session's hparams, the experiment's metric tags) from the HPARAMS plugin's summaries."""
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return values, [m.name.tag for m in exp.metric_infos]


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "run"
    r = CliRunner().invoke(train_cli, ["pretrain", *TINY, "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_pretrain_scalars_equal_metrics_jsonl(pretrain_run):
    rows = [json.loads(line) for line in (pretrain_run / "metrics.jsonl").read_text().splitlines()]
    ea = events(pretrain_run)
    numeric = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k not in ("step", "time")})
    assert sorted(ea.Tags()["scalars"]) == numeric
    for key in numeric:
        got = [(e.step, e.value, e.wall_time) for e in ea.Scalars(key)]
        # TensorBoard keeps a scalar as float32; the row's time is the event's wall time
        assert got == [(r["step"], float(np.float32(r[key])), r["time"]) for r in rows], key
    assert len(list(pretrain_run.glob("events.out.tfevents.*"))) == 1


def test_pretrain_images_config_and_hparams(pretrain_run):
    ea = events(pretrain_run)
    assert sorted(ea.Tags()["images"]) == ["curves", "pairs"]
    pairs, curves = ea.Images("pairs")[0], ea.Images("curves")[0]
    assert (pairs.step, curves.step) == (0, 3)
    assert pairs.encoded_image_string[:4] == b"\x89PNG" and (pretrain_run / "pairs.png").is_file()
    config = json.loads((pretrain_run / "config.json").read_text())
    text = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`\n")) == config
    hp, metrics = hparams_of(ea)
    assert hp == pytest.approx(flat_config(config)) and hp["clip.speeds"] == "1,2" and hp["clip.clip_len"] == 4
    assert "loss" in metrics and "clips_per_s" not in metrics  # the final row's computed metrics, not its timing


def test_no_tensorboard_writes_no_event_file(tmp_path):
    r = CliRunner().invoke(train_cli, ["pretrain", *TINY, "--max-steps", "1", "--no-tensorboard", "--out", str(tmp_path / "r")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "metrics.jsonl").is_file() and not list((tmp_path / "r").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_evaluation_runs_write_their_metrics_plots_and_config(dataset, tmp_path):  # noqa: F811
    common = ["--manifest", dataset, "--clip-len", "8", "--crop-size", "32", "--batch-size", "4", "--backend", "dali-cpu",
              "--arch", "r3d18", "--width", "4", "--workers", "1"]
    out = tmp_path / "retrieval"
    r = CliRunner().invoke(eval_cli, [str(a) for a in ["retrieval", "--init", "random", "--out", out, "--ks", "1,3",
                                                        "--clips-per-video", "1", *common]], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    ea = events(out)
    assert {k: ea.Scalars(k)[0].value for k in ea.Tags()["scalars"]} == pytest.approx(results["rows"][0]["metrics"])
    assert ea.Tags()["images"] == ["topk"]
    hp, metrics = hparams_of(ea)
    assert sorted(metrics) == ["top1", "top3"] and hp["ks"] == "1,3" and hp["clip.clip_len"] == 8

    out = tmp_path / "finetune"
    r = CliRunner().invoke(eval_cli, [str(a) for a in ["finetune", "--init", "random", "--out", out, "--epochs", "2",
                                                        "--test-clips", "1", "--test-crops", "center", *common]],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    assert rows == results["history"] and [r["epoch"] for r in rows] == [1, 2]
    ea = events(out)
    for key in ("loss", "train_top1", "lr", "epoch"):
        assert [(e.step, e.value) for e in ea.Scalars(key)] == [(r["step"], float(np.float32(r[key]))) for r in rows]
    assert ea.Scalars("center_top1")[0].value == pytest.approx(results["rows"][0]["metrics"]["center_top1"])
    assert ea.Tags()["images"] == ["curves"]


# ---- Weights & Biases, offline -------------------------------------------------------
def wandb_records(path: Path):
    """The records of a .wandb file (LevelDB's log format: 32 KiB blocks of chunks with a 7-byte
    header, after the file's own 7-byte W&B header), parsed as wandb's Record protobuf."""
    from wandb.proto import wandb_internal_pb2

    data, out, pos, pending = path.read_bytes(), [], 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        block_left = 32768 - pos % 32768
        if block_left < 7:  # a block's tail too short for a header is padding
            pos += block_left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            out.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
        elif kind == 2:  # FIRST
            pending = chunk
    return out


@pytest.mark.slow
def test_wandb_offline_run_holds_the_same_scalars_config_and_plots(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'ascnet[wandb]'); --wandb is optional")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    r = CliRunner().invoke(train_cli, ["pretrain", *TINY, "--out", str(out), "--wandb", "ascnet-test"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("run-*.wandb")
    for _ in range(120):  # wandb's service process may still be writing the file's tail after finish() returns
        records = wandb_records(log)
        if any(rec.WhichOneof("record_type") == "exit" for rec in records):
            break
        time.sleep(0.25)
    history = {}
    images = set()
    for rec in records:
        if rec.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
            # an image is logged as nested keys: pairs/_type = "image-file", pairs/path = its file under files/
            images |= {k.split("/")[0] for k, v in items.items() if k.endswith("/_type") and v == "image-file"}
            assert all((run_dir / "files" / v).is_file() for k, v in items.items() if k.endswith("/path"))
            history.setdefault(items["_step"], {}).update({k: v for k, v in items.items() if not k.startswith("_") and "/" not in k})
        elif rec.WhichOneof("record_type") == "run":
            config = {i.key: json.loads(i.value_json) for i in rec.run.config.update}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        want = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k not in ("step", "time")}
        assert {k: v for k, v in history[row["step"]].items() if k in want} == want
    assert images == {"pairs", "curves"}
    saved = json.loads((out / "config.json").read_text())
    assert {k: v.get("value", v) if isinstance(v, dict) and set(v) == {"value"} else v for k, v in config.items()
            if k in saved} == saved
