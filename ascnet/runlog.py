"""A pretraining run's record: the progress bar, RUN_DIR/metrics.jsonl (one line per log
interval, rank 0) and RUN_DIR/curves.png drawn from it."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ascnet.evaluate.report import plot_curves


def rss_mb() -> float | None:
    """This process's resident memory now, in MB (Linux /proc), or None: a long run's should stay flat."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RunLog:
    """Progress bar (loss, clips/s, share of time waiting for data, ...) and metrics.jsonl, rank 0.

    `num_classes` > 0 (a manifest with labels) adds the chance level beside `scp_pos_same_class`,
    the share of SCP's positives of the query's class; without labels that metric is dropped.
    """

    def __init__(self, out: str | Path, *, main: bool, progress: bool, total: int, step: int, clips_per_step: int,
                 skips=None, num_classes: int = 0):
        self.main, self.clips_per_step, self.lines, self.last, self.skips = main, clips_per_step, 0, {}, skips
        self.chance = 1.0 / num_classes if num_classes else None
        self.path = Path(out) / "metrics.jsonl"
        self.bar = None
        if main and progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, desc="pretrain")
        self.t0, self.waited, self.prev_step = time.perf_counter(), 0.0, step

    def wait(self, batches):
        """The next batch of an iterator (None at its end), the time spent waiting counted."""
        t = time.perf_counter()
        batch = next(batches, None)
        self.waited += time.perf_counter() - t
        return batch

    def record(self, step: int, epoch: int, stats: dict, lr: float, m: float) -> None:
        now = time.perf_counter()
        elapsed, steps = now - self.t0, step - self.prev_step
        row = {"step": step, "epoch": epoch, **{k: float(v.item()) for k, v in stats.items()},
               "lr": lr, "ema": m, "clips_per_s": steps * self.clips_per_step / max(elapsed, 1e-9),
               "data_wait": self.waited / max(elapsed, 1e-9), "rss_mb": rss_mb(), "time": time.time()}
        if self.chance is None:
            row.pop("scp_pos_same_class", None)
        else:
            row["scp_pos_chance"] = self.chance
        if self.skips is not None:  # videos passed over this epoch, and every video skipped so far in the run
            row.update(skipped_epoch=self.skips.in_epoch, skipped_videos=len(self.skips.known))
        self.t0, self.waited, self.prev_step, self.last = now, 0.0, step, row
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.lines += 1
        if self.bar is not None:
            self.bar.update(steps)
            same = {"same_class": f"{row['scp_pos_same_class']:.2f}/{self.chance:.2f}"} if self.chance else {}
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", clips_s=f"{row['clips_per_s']:.1f}",
                                 wait=f"{100 * row['data_wait']:.0f}%", scp=f"{row['scp_valid']:.2f}",
                                 spread=f"{row['app_spread']:.2f}", margin=f"{row['acp_margin']:.2f}",
                                 skipped=row.get("skipped_videos", 0), **same)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl rows by step; after a resume the later row of a step wins."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics; is {run_dir} a pretraining run directory?")
    rows = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON line ({e})") from e
            rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]


def plot_run(run_dir: str | Path) -> Path:
    """RUN_DIR/curves.png: total/ACP/SCP loss, the projections' spread (collapse monitor), the ACP
    margin (is ACP matching anything video-specific?), the share of SCP positives of the query's
    class against chance (runs with labels) and the learning rate against step."""
    rows = read_metrics(run_dir)
    chance = next((r["scp_pos_chance"] for r in reversed(rows) if "scp_pos_chance" in r), None)
    panels = [
        {"keys": ["loss", "acp", "scp"], "ylabel": "loss (per clip)"},
        {"keys": ["app_spread", "speed_spread"], "ylabel": "spread (1 = healthy,\n0 = collapsed)", "ylim": (0, None)},
        {"keys": ["acp_margin"], "ylabel": "ACP margin (0 = matches\nnothing video-specific)", "hline": (0.0, None)},
        {"keys": ["scp_pos_same_class"], "ylabel": "SCP positives of the\nquery's class", "ylim": (0, 1),
         "empty": "no labels in the manifest", **({"hline": (chance, "chance (1/classes)")} if chance else {})},
        {"keys": ["lr"], "ylabel": "learning rate"},
    ]
    return plot_curves(rows, panels, Path(run_dir) / "curves.png")
