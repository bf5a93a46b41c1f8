"""Checkpoint files: atomic writes, safe loads (`weights_only=True`), readable errors.

Two kinds of file, told apart by their "kind" entry:

- "run": written by pretraining/fine-tuning; holds "config" (a plain dict of the command's
  config dataclass), "model" (state dict of the whole method module), and whatever the
  training loop needs to resume.
- "backbone": written by `ascnet-train export`; holds "arch", "width", "input_size"
  ([T, H, W]), "feature_dim" and "state_dict" (the backbone alone).

`load_backbone_state(path)` reads either and returns what evaluation needs.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ascnet.atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


def save_atomic(obj: dict, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable ascnet checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or obj.get("kind") not in ("run", "backbone"):
        raise CheckpointError(f"{path}: not an ascnet checkpoint (no 'kind' entry of 'run' or 'backbone')")
    return obj


def load_backbone_state(path: str | Path) -> dict:
    """{"arch", "width", "input_size", "feature_dim", "state_dict"} from a run or backbone file."""
    obj = load(path)
    if obj["kind"] == "backbone":
        return obj
    cfg = obj.get("config", {})
    prefix = "online_encoder."
    state = {k[len(prefix):]: v for k, v in obj["model"].items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: run checkpoint has no '{prefix}*' weights")
    return {
        "kind": "backbone",
        "arch": cfg.get("arch"),
        "width": cfg.get("width", 64),
        "input_size": [cfg.get("clip_len", 16), cfg.get("crop_size", 112), cfg.get("crop_size", 112)],
        "state_dict": state,
    }
