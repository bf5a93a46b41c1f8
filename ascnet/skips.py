"""A long run's record of the videos it could not decode: `skipped.jsonl` in the run directory.

The loader passes over a video that fails to decode and uses a stand-in drawn from the seed
and the position (`pipelines.schedules`), so batches stay full. One rule, in a run straight
through and after `--resume` alike: a video is tried wherever it is drawn, whatever failed
before, and gives way to its stand-in where it fails. So a video damaged only near its end still
serves the windows that decode, and a batch is a function of the files, the seed and its
position, never of the run's history (a resumed run is the same as one run through). This log
keeps each such video once (file, frames' epoch and step, the decoder's reason; on `--resume` the
videos already listed are not written again), counts the skips of the current epoch over all
ranks, and stops the run when more than `max_fraction` of an epoch is skipped: then the dataset
or the decoder is broken, not one file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.distributed as dist

OnError = Literal["skip", "raise"]  # a video that fails to decode: a stand-in takes its place, or the run stops
ON_ERROR = get_args(OnError)


class TooManySkipped(RuntimeError):
    """More of an epoch failed to decode than the run allows; the message gives the fraction and the fix."""


def read_skipped(run_dir: str | Path) -> dict[str, dict]:
    """video_id -> its record, from a run's skipped.jsonl (empty when there is none)."""
    path = Path(run_dir) / "skipped.jsonl"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out.setdefault(rec["video_id"], rec)
    return out


class SkipLog:
    """Collects the loader's skips, writes new videos to skipped.jsonl (rank 0), enforces the limit."""

    def __init__(self, run_dir: str | Path, *, max_fraction: float, epoch_videos: int, main: bool = True,
                 world: int = 1, device: torch.device = torch.device("cpu")):
        self.path = Path(run_dir) / "skipped.jsonl"
        self.known = read_skipped(run_dir)
        self.max_fraction, self.epoch_videos = max_fraction, epoch_videos
        self.main, self.world, self.device = main, world, device
        self.pending: list[dict] = []
        self.epoch, self.in_epoch, self.local = None, 0, 0  # local: this rank's skips of the epoch not yet summed

    def add(self, events: list[dict], epoch: int) -> None:
        """The loader's `take_skips()` after a batch of `epoch`."""
        if epoch != self.epoch:
            self.epoch, self.in_epoch, self.local = epoch, 0, 0
        self.local += len(events)
        self.pending += [e for e in events if e["video_id"] not in self.known]

    def sync(self) -> None:
        """At the run's agreed points (log intervals): every rank's new videos to the file, the epoch's
        count summed over ranks, and the limit checked (all ranks raise together)."""
        pending, count = self.pending, self.local
        if self.world > 1:
            everyone = [None] * self.world
            dist.all_gather_object(everyone, pending)
            pending = [e for part in everyone for e in part]
            t = torch.tensor([count], device=self.device)
            dist.all_reduce(t)
            count = int(t.item())
        self.pending, self.local = [], 0
        self.in_epoch += count
        new = {}
        for e in pending:
            if e["video_id"] not in self.known and e["reason"]:
                new.setdefault(e["video_id"], e)
        self.known.update(new)
        if new and self.main:
            with open(self.path, "a") as f:  # one line per video, flushed before the run goes on
                for rec in new.values():
                    f.write(json.dumps(rec) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if self.in_epoch > self.max_fraction * self.epoch_videos:
            share = self.in_epoch / self.epoch_videos
            raise TooManySkipped(
                f"{self.in_epoch} of the {self.epoch_videos} videos of epoch {self.epoch} ({100 * share:.1f}%) failed to "
                f"decode so far, more than --max-skip-fraction {self.max_fraction:g}: the dataset or the decoder is "
                f"broken, not one file. The files and reasons are in {self.path}; re-index the dataset "
                "(ascnet-index build) to find the damaged files, or raise --max-skip-fraction")
