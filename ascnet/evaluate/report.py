"""Results on disk and on screen: results.json + results.md (atomic), plots, side-by-side tables.

Every evaluation command writes the same shape of results.json, so `compare` can read any of
them:

    {"command": "linear", "config": {...}, "rows": [{"init": ..., "arch": ..., "width": ...,
     "metrics": {"video_top1": 53.1, ...}, "top1_hits": "0110..."}, ...], ...}

Metrics are percentages. `top1_hits` holds one character per test video, in the split's order:
"1" where the video was a top-1 hit. Two encoders scored on the same videos can then be compared
video by video (`paired_gain_se`): how far a gain between them would move with another test set.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ascnet import atomic

ROW_KEYS = ("init", "arch", "width")


write_text_atomic = atomic.write_text


def hits_string(hits) -> str:
    """A row's `top1_hits`: "1"/"0" per test video, in the split's order."""
    return "".join("1" if h else "0" for h in np.asarray(hits, bool))


def hits_array(hits: str) -> np.ndarray:
    """(N,) float: a `top1_hits` string as 1.0 / 0.0, or a ValueError naming what is wrong."""
    if not hits or set(hits) - {"0", "1"}:
        raise ValueError(f"top1_hits must be a non-empty string of 0 and 1, got {hits[:20]!r}")
    return np.frombuffer(hits.encode(), np.uint8).astype(np.float64) - ord("0")


def paired_gain_se(hits: str, reference_hits: list[str]) -> float:
    """The standard error, in points, of a top-1 gain over a reference from sampling the test videos.

    Both were scored on the same videos, so the gain is the mean over videos of d = hit − the
    reference's hit (the mean over its networks where it is several): se = 100 · sd(d) / √N. A
    gain within about one se of a line is not told apart from it by this test set.
    """
    ref = np.mean([hits_array(h) for h in reference_hits], axis=0)
    mine = hits_array(hits)
    if mine.shape != ref.shape:
        raise ValueError(f"top1_hits of {len(mine)} and {len(ref)} videos: not the same test set")
    d = mine - ref
    return float(100.0 * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; floats with two decimals, numbers right-aligned."""
    cells = [[fmt(v) for v in r] for r in rows]
    is_num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    # a column of numbers (blank where a row has none) is right-aligned
    numeric = [any(is_num(r[i]) for r in rows) and all(is_num(r[i]) or r[i] == "" for r in rows) for i in range(len(headers))]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(  # noqa: E731
        v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)
    ) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule] + [line(c) for c in cells]) + "\n"


def rows_table(rows: list[dict], lead: list[str] | None = None) -> str:
    """Markdown table of result rows: the lead columns, then every metric in first-seen order."""
    lead = lead or list(ROW_KEYS)
    metrics: list[str] = []
    for r in rows:
        metrics += [m for m in r["metrics"] if m not in metrics]
    body = [[r.get(k, "") for k in lead] + [r["metrics"].get(m, "") for m in metrics] for r in rows]
    return markdown_table(lead + metrics, body)


def write_results(out_dir: str | Path, results: dict, title: str) -> str:
    """results.json and results.md in `out_dir` (both atomic); returns the markdown table."""
    out_dir = Path(out_dir)
    table = rows_table(results["rows"])
    write_text_atomic(out_dir / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    write_text_atomic(out_dir / "results.md", f"# {title}\n\n{table}")
    return table


def load_results(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results.json; is {run_dir} the --out of an 'ascnet-eval' command?")
    try:
        results = json.loads(path.read_text())
        results["rows"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an ascnet-eval results file ({e})") from e
    return results


def compare_table(run_dirs: list[str | Path]) -> str:
    """Several runs side by side, one row per encoder (init, arch, width).

    Columns are "<command> <metric>", so a linear, a retrieval and a fine-tuning run of the
    same encoders read as one table; an encoder evaluated twice by one command (e.g. with other
    settings) gets a second row.
    """
    merged: list[dict] = []
    for d in run_dirs:
        res = load_results(d)
        command = res.get("command", "")
        for r in res["rows"]:
            metrics = {f"{command} {m}": v for m, v in r["metrics"].items()}
            key = tuple(r.get(k) for k in ROW_KEYS)
            row = next((m for m in merged if m["key"] == key and not set(metrics) & set(m["metrics"])), None)
            if row is None:
                row = {"key": key, **{k: r.get(k) for k in ROW_KEYS}, "runs": [], "metrics": {}}
                merged.append(row)
            row["metrics"].update(metrics)
            row["runs"].append(Path(d).name)
    for row in merged:
        row["runs"] = ", ".join(row["runs"])
    return rows_table(merged, lead=[*ROW_KEYS, "runs"])


def short_label(init: str) -> str:
    """A legend entry: 'random' / 'random:SEED', or the checkpoint's last two path parts."""
    parts = Path(str(init)).parts
    return str(init) if str(init).split(":")[0] == "random" else "/".join(parts[-2:])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    return atomic.save_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_topk(rows: list[dict], path: str | Path) -> Path:
    """Retrieval top-k curve, one line per row (metrics named "top{k}")."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in rows:
        ks = sorted(int(m[3:]) for m in r["metrics"] if m.startswith("top"))
        ax.plot(ks, [r["metrics"][f"top{k}"] for k in ks], marker="o", label=short_label(r["init"]))
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
    ax.set(xlabel="k", ylabel="top-k accuracy (%)", ylim=(0, 100), title="video retrieval")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = save_figure(fig, Path(path))
    plt.close(fig)
    return path


def plot_bars(rows: list[dict], path: str | Path, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per row."""
    import numpy as np

    plt = _pyplot()
    metrics = [m for m in rows[0]["metrics"]]
    x = np.arange(len(metrics))
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(metrics) + 2, 3.5))
    for i, r in enumerate(rows):
        vals = [r["metrics"].get(m, 0.0) for m in metrics]
        bars = ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=short_label(r["init"]))
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, metrics)
    ax.set(ylabel="accuracy (%)", ylim=(0, 105), title=title)
    ax.legend(fontsize=8)
    path = save_figure(fig, Path(path))
    plt.close(fig)
    return path


def plot_curves(rows: list[dict], panels: list[dict], path: str | Path, *, x: str = "step", title: str = "") -> Path:
    """A run's history, one panel per entry of `panels` stacked over a shared x axis.

    rows: dicts with `x` and the metrics; a panel: {"keys": [...], "ylabel": str, and optionally
    "ylim": (lo, hi), "hline": (y, label), "empty": text shown when no row has its keys}. A key is
    drawn where rows have a finite value of it (a metric logged at some rows only gets markers).
    """
    import math

    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels) + 0.4), sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        for key in panel["keys"]:
            pts = [(r[x], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
            if pts:
                sparse = len(pts) < len(rows)
                ax.plot(*zip(*pts), marker="o" if sparse or len(pts) < 30 else None, label=key.replace("_", " "))
        if "hline" in panel:
            y, label = panel["hline"]
            ax.axhline(y, color="tab:gray", lw=0.8, ls="--", label=label)
        if not ax.lines and panel.get("empty"):
            ax.text(0.5, 0.5, panel["empty"], ha="center", va="center", transform=ax.transAxes)
        if panel.get("ylim"):
            ax.set_ylim(*panel["ylim"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(alpha=0.3)
        if len(ax.lines) > 1:
            ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel(x)
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    path = save_figure(fig, Path(path))
    plt.close(fig)
    return path
