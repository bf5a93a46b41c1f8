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
from ascnet.models import ARCHS, build_backbone


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


def checkpoint_paths(run_dir: str | Path) -> list[Path]:
    """A pretraining run's checkpoints (RUN_DIR/checkpoints/step-*.pt), oldest first."""
    return sorted((Path(run_dir) / "checkpoints").glob("step-*.pt"))


def _flat(d: dict) -> dict:
    """{"clip": {"clip_len": 8}} -> {"clip_len": 8}: nested settings compared one by one, under the
    names their options have."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(v)
        else:
            out[k] = v
    return out


def check_resume(path: str | Path, saved: dict, now: dict, *, free: Iterable[str] = (),
                 may_grow: Iterable[str] = ()) -> None:
    """Refuse to resume a run under settings that change what it computes, naming each difference.

    `saved`, `now`: the checkpoint's and this run's settings as plain dicts (a nested dict's keys
    are compared one by one, as "crop_size"); a key only one of them has is not compared.
    Values compare as JSON (a tuple equals the list it was saved as). `free` keys may change
    (bookkeeping); `may_grow` keys may increase (a longer run; 0 = unbounded).
    """
    saved, now = _flat(saved), _flat(now)
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
    clip = cfg.get("clip", cfg)  # the clip settings: nested since ClipSpec, flat before
    prefix = "online_encoder."
    state = {k[len(prefix):]: v for k, v in obj["model"].items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: run checkpoint has no '{prefix}*' weights")
    return {
        "kind": "backbone",
        "arch": cfg.get("arch"),
        "width": cfg.get("width", 64),
        "input_size": [clip.get("clip_len", 16), clip.get("crop_size", 112), clip.get("crop_size", 112)],
        "state_dict": state,
    }


def export_backbone(run: str | Path, out: str | Path) -> Path:
    """The online encoder of a run (its newest checkpoint, or a given .pt) as a backbone file:
    kind="backbone", arch, width, input_size [T, H, W], feature_dim, state_dict."""

    run = Path(run)
    if run.is_dir():
        paths = checkpoint_paths(run)
        if not paths:
            raise CheckpointError(f"{run}: no checkpoints/step-*.pt; is it a pretraining run directory?")
        run = paths[-1]
    state = load_backbone_state(run)
    if state.get("arch") not in ARCHS:
        raise CheckpointError(f"{run}: unknown arch {state.get('arch')!r} in its config; allowed: {list(ARCHS)}")
    backbone = build_backbone(state["arch"], int(state["width"]))
    try:
        backbone.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{run}: encoder weights do not fit {state['arch']} width {state['width']} ({e})") from e
    return save_atomic({
        "kind": "backbone", "arch": state["arch"], "width": int(state["width"]), "input_size": list(state["input_size"]),
        "feature_dim": backbone.feature_dim, "state_dict": backbone.state_dict(),
    }, out)
