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

import json
from pathlib import Path
from typing import Iterable

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


def check_resume(path: str | Path, saved: dict, now: dict, *, free: Iterable[str] = (),
                 may_grow: Iterable[str] = ()) -> None:
    """Refuse to resume a run under settings that change what it computes, naming each difference.

    `saved`, `now`: the checkpoint's and this run's settings as plain dicts; a key only one of them
    has is not compared. Values compare as JSON (a tuple equals the list it was saved as). `free`
    keys may change (bookkeeping); `may_grow` keys may increase (a longer run; 0 = unbounded).
    """
    free, may_grow = set(free), set(may_grow)
    changes = []
    for k in now:
        if k in free or k not in saved:
            continue
        new, old = json.loads(json.dumps(now[k])), json.loads(json.dumps(saved[k]))
        if new == old or (k in may_grow and (new or float("inf")) > (old or float("inf"))):
            continue
        why = "; a run may grow, not shrink" if k in may_grow else ""
        changes.append(f"{k} {json.dumps(new)} (checkpoint: {json.dumps(old)}{why})")
    if changes:
        raise CheckpointError(f"{path}: this run differs from the checkpoint's: {', '.join(changes)}; resume with the "
                              "checkpoint's values, or start a new run in another --out")


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
