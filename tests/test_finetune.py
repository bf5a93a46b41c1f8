"""`ascnet-eval finetune`: exact resume, readable refusals, multi-crop test, the run as an --init."""
import math

import torch

from ascnet.checkpoint import load_backbone_state, save_atomic
from ascnet.evaluate.finetune import FinetuneModel, cosine_lr
from ascnet.models import build_backbone
from tests.test_eval_cli import dataset, invoke, results  # noqa: F401  (dataset is a fixture)


def test_cosine_lr_runs_from_base_to_zero():
    assert cosine_lr(0.1, 0, 10) == 0.1
    assert math.isclose(cosine_lr(0.1, 5, 10), 0.05)
    assert cosine_lr(0.1, 10, 10) == 0.0 and cosine_lr(0.1, 12, 10) == 0.0


def test_finetune_checkpoint_is_readable_as_a_backbone(tmp_path):
    enc = build_backbone("r3d18", 4)
    model = FinetuneModel(enc, 3)
    assert model(torch.zeros(2, 3, 8, 32, 32)).shape == (2, 3)
    save_atomic({"kind": "run", "config": {"arch": "r3d18", "width": 4}, "model": model.state_dict()}, tmp_path / "c.pt")
    state = load_backbone_state(tmp_path / "c.pt")
    assert state["arch"] == "r3d18" and set(state["state_dict"]) == set(enc.state_dict())


def finetune_args(init, lr=0.01):
    return ["--init", init, "--epochs", "2", "--batch-size", "2", "--test-clips", "2", "--test-crops", "center,three",
            "--clip-len", "8", "--crop-size", "32", "--lr", lr, "--backend", "dali-cpu"]


def test_finetune_resume_is_exact(dataset, tmp_path):
    import torch

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # starts from a backbone file: arch and width come from it
    net = build_backbone("r3d18", 4)
    save_atomic({"kind": "backbone", "arch": "r3d18", "width": 4, "input_size": [8, 32, 32],
                 "feature_dim": net.feature_dim, "state_dict": net.state_dict()}, tmp_path / "b.pt")
    FT = finetune_args(tmp_path / "b.pt")
    r = invoke("finetune", "--manifest", dataset, "--out", straight, *FT)
    assert r.exit_code == 0, r.output
    # 6 train videos / batch 2 = 3 steps an epoch: stop in the middle of epoch 2, then resume
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *FT, "--stop-after-steps", "4")
    assert r.exit_code == 0 and "stopped at step 4/6; continue with --resume" in r.output
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *FT)
    assert r.exit_code == 2 and "checkpoint.pt exists: pass --resume" in r.output
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *finetune_args(tmp_path / "b.pt", lr=0.02), "--resume")
    assert r.exit_code == 2 and "--resume with 'lr' = 0.02, but the run was started with 0.01" in r.output
    r = invoke("finetune", "--manifest", dataset, "--out", resumed, *FT, "--resume")
    assert r.exit_code == 0, r.output

    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    ra, rb = results(straight), results(resumed)
    assert ra["history"] == rb["history"] and len(ra["history"]) == 2
    assert ra["rows"][0]["metrics"] == rb["rows"][0]["metrics"]
    assert list(ra["rows"][0]["metrics"]) == ["center_top1", "center_top5", "three_top1", "three_top5"]
    assert (straight / "curves.png").stat().st_size > 0
    # the fine-tuning run (its directory) is itself an encoder another evaluation can start from
    r = invoke("retrieval", "--init", straight, "--manifest", dataset, "--out", tmp_path / "ret",
               "--clips-per-video", "1", "--clip-len", "8", "--crop-size", "32")
    assert r.exit_code == 0, r.output
    assert results(tmp_path / "ret")["rows"][0]["arch"] == "r3d18"
