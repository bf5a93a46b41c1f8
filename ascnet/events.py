"""A run's event mirrors, rank 0: TensorBoard event files in the run directory (on by default)
and, optionally, a Weights & Biases run. They mirror what the run writes to disk, which stays
the source of truth (metrics.jsonl, config.json, the plots); `ascnet.runlog.RunRecord` is the
one caller, so there is no second logging path.

    scalars   every numeric field of each metrics.jsonl row, at its `step`, its `time` as the
              event's wall time
    images    the contact sheet of the first training pairs, the plots written at the end
    text      the run's config (JSON)
    hparams   the config (flattened: `clip.clip_len`) beside the final metrics

TensorBoard files are written with tensorboardX (about 3 MB with protobuf; the `tensorboard`
package, about 60 MB with grpc, is needed only to view them: `pip install tensorboard`, then
`tensorboard --logdir runs`). W&B needs `pip install 'ascnet[wandb]'`; `WANDB_MODE=offline`
keeps the run in RUN_DIR/wandb/ for `wandb sync` later.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def require_wandb():
    """Import wandb or raise an error that says how to install it."""
    try:
        import wandb
    except ImportError:
        raise ImportError("--wandb needs the wandb package: pip install 'ascnet[wandb]' (or drop --wandb)") from None
    return wandb


def numeric(row: dict, skip=("step", "time")) -> dict[str, float]:
    """The finite numbers of a row (bools and strings left out), as floats."""
    return {k: float(v) for k, v in row.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def flat_config(config: dict, prefix: str = "") -> dict[str, bool | int | float | str]:
    """hparams values: nested dicts as `outer.inner`, lists as comma-joined text, None as 'none'."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        elif isinstance(v, (list, tuple)):
            out[prefix + k] = ",".join(map(str, v))
        elif v is None:
            out[prefix + k] = "none"
        else:
            out[prefix + k] = v if isinstance(v, (bool, int, float)) else str(v)
    return out


class EventWriter:
    """TensorBoard and/or W&B for one run directory; does nothing where both are off."""

    def __init__(self, out: str | Path, *, config: dict, kind: str, tensorboard: bool = True, wandb: str | None = None):
        self.out, self.tb, self.wb, self.tags = Path(out), None, None, set()
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                print("ascnet: TensorBoard events off: tensorboardX is not installed (pip install tensorboardX); "
                      "metrics.jsonl is written as always", file=sys.stderr)
            else:
                self.tb = SummaryWriter(str(self.out), flush_secs=30)
                self.tb.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)
        if wandb:
            self.wb = require_wandb().init(project=wandb, dir=str(self.out), name=self.out.name, job_type=kind,
                                           config=config, reinit="create_new")

    def scalars(self, row: dict) -> None:
        values, step = numeric(row), int(row.get("step", 0))
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step, walltime=row.get("time"))
            self.tags |= set(values)
            self.tb.flush()  # a log interval is seconds apart: each row is on disk before the next
        if self.wb is not None:
            self.wb.log(values, step=step)

    def image(self, tag: str, path: str | Path, step: int = 0) -> None:
        if self.tb is not None:
            import numpy as np
            from PIL import Image

            with Image.open(path) as im:
                self.tb.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")
        if self.wb is not None:
            import wandb

            self.wb.log({tag: wandb.Image(str(path))}, step=step)

    def hparams(self, config: dict, metrics: dict[str, float], step: int = 0) -> None:
        """The config beside the final metrics (TensorBoard's HPARAMS tab; W&B's summary)."""
        if self.tb is not None:
            from tensorboardX.summary import hparams

            for summary in hparams(flat_config(config), metrics):
                self.tb.file_writer.add_summary(summary)
            for k, v in metrics.items():  # the HPARAMS tab reads the metrics as scalars of these tags
                if k not in self.tags:  # (a metrics.jsonl row has written the others already)
                    self.tb.add_scalar(k, v, step)
        if self.wb is not None:
            self.wb.summary.update(metrics)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wb is not None:
            self.wb.finish()
            self.wb = None
