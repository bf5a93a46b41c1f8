"""A run's record, rank 0: RUN_DIR/metrics.jsonl (one line per log interval; the source of
truth) and its mirrors (`ascnet.events`: TensorBoard, W&B), fed through one `RunRecord` by
every loop: pretraining (through `RunLog`, which adds the progress bar, the contact sheet of
the first pairs and curves.png), fine-tuning (a row per epoch) and the frozen-encoder
evaluations (their final metrics and plots, `publish_results`)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ascnet.evaluate.report import plot_curves, short_label
from ascnet.events import EventWriter, numeric

# fields of a metrics.jsonl row that say how the run ran (speed, memory), not what it computed:
# the only ones that differ between two runs of one config
TIMING = ("time", "clips_per_s", "data_wait", "rss_mb")


class RunRecord:
    """metrics.jsonl and its event mirrors for one run directory; inert where `main` is False.

    `config` is the run's config as a dict (config.json); its `tensorboard` (default on) and
    `wandb` (a project name, default none) fields choose the mirrors.
    """

    def __init__(self, out: str | Path, *, config: dict, kind: str, main: bool = True):
        self.path, self.config, self.main = Path(out) / "metrics.jsonl", config, main
        if main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.events = EventWriter(out, config=config, kind=kind, tensorboard=config.get("tensorboard", True),
                                  wandb=config.get("wandb")) if main else None

    def log(self, row: dict) -> None:
        """Append `row` (a `step` and metrics) to metrics.jsonl and mirror its numbers."""
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.events.scalars(row)

    def image(self, tag: str, path: str | Path | None, step: int = 0) -> None:
        if self.main and path is not None:
            self.events.image(tag, path, step)

    def finish(self, metrics: dict[str, float] | None = None, images: dict | None = None, step: int = 0) -> None:
        """The plots written at the end, the config beside the final metrics; closes the mirrors."""
        if not self.main:
            return
        for tag, path in (images or {}).items():
            self.image(tag, path, step)
        if metrics:
            self.events.hparams(self.config, metrics, step)
        self.events.close()


def result_metrics(results: dict) -> dict[str, float]:
    """An evaluation's final metrics, flat: `video_top1`, or `video_top1/<init>` with several inits."""
    rows = results["rows"]
    if len(rows) == 1:
        return numeric(rows[0]["metrics"])
    return {f"{k}/{short_label(r['init'])}": v for r in rows for k, v in numeric(r["metrics"]).items()}


def publish_results(out: str | Path, results: dict, images: dict[str, Path]) -> None:
    """Mirror a finished evaluation (results.json's config and metrics, its plots) to the events."""
    RunRecord(out, config=results["config"], kind=results["command"]).finish(result_metrics(results), images)


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
                 skips=None, num_classes: int = 0, config: dict | None = None):
        self.main, self.clips_per_step, self.lines, self.last, self.skips = main, clips_per_step, 0, {}, skips
        self.chance = 1.0 / num_classes if num_classes else None
        self.out, self.writer = Path(out), RunRecord(out, config=config or {}, kind="pretrain", main=main)
        self.sheet = main and step == 0  # a new run draws its first pairs (RUN_DIR/pairs.png)
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
        if self.sheet and batch is not None:
            self.sheet, drawn = False, time.perf_counter()
            self.writer.image("pairs", first_pairs(batch, self.out / "pairs.png"), 0)
            self.t0 += time.perf_counter() - drawn  # drawing is neither training nor waiting
        return batch

    def record(self, step: int, epoch: int, stats: dict, lr: float, m: float, scp_weight: float | None = None) -> None:
        now = time.perf_counter()
        elapsed, steps = now - self.t0, step - self.prev_step
        row = {"step": step, "epoch": epoch, **{k: float(v.item()) for k, v in stats.items()},
               "lr": lr, "ema": m, "clips_per_s": steps * self.clips_per_step / max(elapsed, 1e-9),
               "data_wait": self.waited / max(elapsed, 1e-9), "rss_mb": rss_mb(), "time": time.time()}
        if scp_weight is not None:
            row["scp_weight"] = scp_weight
        if self.chance is None:
            row.pop("scp_pos_same_class", None)
        else:
            row["scp_pos_chance"] = self.chance
        if self.skips is not None:  # videos passed over this epoch, and every video skipped so far in the run
            row.update(skipped_epoch=self.skips.in_epoch, skipped_videos=len(self.skips.known))
        self.t0, self.waited, self.prev_step, self.last = now, 0.0, step, row
        if not self.main:
            return
        self.writer.log(row)
        self.lines += 1
        if self.bar is not None:
            self.bar.update(steps)
            same = {"same_class": f"{row['scp_pos_same_class']:.2f}/{self.chance:.2f}"} if self.chance else {}
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", clips_s=f"{row['clips_per_s']:.1f}",
                                 wait=f"{100 * row['data_wait']:.0f}%", scp=f"{row['scp_valid']:.2f}",
                                 spread=f"{row['app_spread']:.2f}", margin=f"{row['acp_margin']:.2f}",
                                 skipped=row.get("skipped_videos", 0), **same)

    def close(self, curves: Path | None = None):
        """Close the bar; mirror curves.png and the last row's metrics beside the config."""
        if self.bar is not None:
            self.bar.close()
        step = self.last.get("step", 0)
        self.writer.finish({k: v for k, v in numeric(self.last).items() if k not in TIMING}, {"curves": curves}, step)


def first_pairs(batch: dict, path: Path, n: int = 4) -> Path:
    """RUN_DIR/pairs.png: a batch's first `n` pairs as fed to the model (`ascnet.preview.pairs_mosaic`;
    `ascnet-train preview` draws the labelled sheet)."""
    from PIL import Image

    from ascnet.atomic import atomic_path
    from ascnet.preview import pairs_mosaic

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(pairs_mosaic(batch, n)).save(tmp)
    return path


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
