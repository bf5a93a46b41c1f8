"""`--config FILE` (ascnet/cli/options.py): every command's options from JSON or YAML, flags
override, a run's config.json repeats the run, unknown keys are named with the nearest option,
and each example in configs/ parses into its command's config."""
import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ascnet.cli.evaluate import main as eval_cli
from ascnet.cli.index import main as index_cli
from ascnet.cli.options import from_options
from ascnet.cli.train import main as train_cli
from ascnet.clips import ClipSpec
from ascnet.evaluate.finetune import FinetuneConfig
from ascnet.evaluate.linear import LinearConfig
from ascnet.evaluate.retrieval import RetrievalConfig
from ascnet.preview import PreviewConfig
from ascnet.runlog import TIMING
from ascnet.tools.index import IndexConfig
from ascnet.train import PretrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = {"data": "synthetic", "arch": "r3d18", "width": 4, "clip": {"clip_len": 4, "crop_size": 16, "speeds": [1, 2]},
        "batch_size": 2, "proj_dim": 8, "hidden_dim": 16, "queue_size": 8, "max_steps": 3, "log_every": 1,
        "progress": False, "device": "cpu", "tensorboard": False}


def context(group, name, args):
    """The command's parsed parameters (the callback does not run)."""
    cmd = group.get_command(click.Context(group), name)
    return cmd.make_context(name, [str(a) for a in args]).params


def computed(run: Path) -> list[dict]:
    """metrics.jsonl without the fields that time the run."""
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_run_repeated_from_its_config_json_computes_the_same_metrics(tmp_path):
    first = tmp_path / "first.json"
    first.write_text(json.dumps({**TINY, "out": str(tmp_path / "x")}))
    r = CliRunner().invoke(train_cli, ["pretrain", "--config", str(first)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "x" / "config.json").read_text())
    assert saved["clip"]["speeds"] == [1, 2] and saved["out"] == str(tmp_path / "x")  # nested ClipSpec, as written
    r = CliRunner().invoke(train_cli, ["pretrain", "--config", str(tmp_path / "x" / "config.json"), "--out", str(tmp_path / "y")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "y" / "config.json").read_text())
    assert again == {**saved, "out": str(tmp_path / "y")}
    rows = computed(tmp_path / "x")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows == computed(tmp_path / "y")  # every value, bit for bit


def test_flags_override_the_file_and_nested_or_flat_keys_both_work(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"manifest": "m.parquet", "clip": {"clip_len": 8, "speeds": [1, 4]}, "crop-size": 64,
                               "epochs": 3, "progress": False, "arch": "r2plus1d18"}))
    params = context(train_cli, "pretrain", ["--config", cfg, "--epochs", "5"])
    got = from_options(PretrainConfig, params)
    assert (got.epochs, got.progress, got.arch, got.manifest) == (5, False, "r2plus1d18", "m.parquet")
    assert got.clip == ClipSpec(clip_len=8, crop_size=64, speeds=(1, 4))
    assert from_options(PretrainConfig, context(train_cli, "pretrain", ["--config", cfg, "--progress"])).progress is True


def test_eval_init_list_and_index_argument_come_from_the_file(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"init": ["a.pt", "random"], "manifest": "m.parquet", "out": "o", "ks": [1, 3]}))
    params = context(eval_cli, "retrieval", ["--config", cfg])
    assert params["inits"] == ("a.pt", "random")
    assert from_options(RetrievalConfig, {k: v for k, v in params.items() if k != "inits"}).ks == (1, 3)
    cfg.write_text(json.dumps({"root": "data/ucf", "layout": "ucf101", "out": "m.parquet", "split": 2}))
    params = context(index_cli, "build", ["--config", cfg])
    assert (params["root"], params["layout"], params["split"]) == ("data/ucf", "ucf101", 2)


@pytest.mark.parametrize("text, message", [
    ({"clip_lenn": 4}, r"'clip_lenn' is not an option of this command; did you mean 'clip_len'\?"),
    ({"zzz": 1}, r"'zzz' is not an option of this command; the options are: .*arch"),
    ({"arch": "r4d"}, r"'r4d' is not one of 'r3d18'"),
    ("[1, 2]", r"holds a list, not a mapping"),
    ("{oops", r"not valid JSON"),
])
def test_bad_files_are_named(tmp_path, text, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(text if isinstance(text, str) else json.dumps(text))
    r = CliRunner().invoke(train_cli, ["pretrain", "--config", str(cfg)])
    assert r.exit_code == 2
    assert __import__("re").search(message, r.output), r.output


def test_yaml_without_pyyaml_says_how_to_install_it(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 3\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    r = CliRunner().invoke(train_cli, ["pretrain", "--config", str(cfg)])
    assert r.exit_code == 2 and "YAML needs PyYAML (pip install 'ascnet[yaml]'" in r.output


EXAMPLES = {  # configs/<file>: (group, command, config class, options that are not config fields)
    "index.yaml": (index_cli, "build", IndexConfig, ()),
    "pretrain.yaml": (train_cli, "pretrain", PretrainConfig, ()),
    "preview.yaml": (train_cli, "preview", PreviewConfig, ()),
    "linear.yaml": (eval_cli, "linear", LinearConfig, ("inits",)),
    "retrieval.yaml": (eval_cli, "retrieval", RetrievalConfig, ("inits",)),
    "finetune.yaml": (eval_cli, "finetune", FinetuneConfig, ("inits",)),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_config_parses_into_its_command(name):
    pytest.importorskip("yaml", reason="the examples are YAML: pip install pyyaml (in the test extra)")
    import yaml

    group, command, cls, extra = EXAMPLES[name]
    path = REPO / "configs" / name
    params = context(group, command, ["--config", path])
    cfg = from_options(cls, {k: v for k, v in params.items() if k not in extra})
    file = yaml.safe_load(path.read_text())
    for key, value in file.items():  # every key of the file reached the config (or the --init list)
        if key == "init":
            assert list(params["inits"]) == (value if isinstance(value, list) else [value])
        elif key == "clip":
            assert all(getattr(cfg.clip, k) == (tuple(v) if isinstance(v, list) else v) for k, v in value.items())
        elif hasattr(cfg, key):
            want = tuple(value) if isinstance(value, list) else value
            assert getattr(cfg, key) == want, key
        else:
            assert getattr(cfg.clip, key) == (tuple(value) if isinstance(value, list) else value), key
    assert sorted(p.name for p in (REPO / "configs").iterdir()) == sorted(EXAMPLES)
