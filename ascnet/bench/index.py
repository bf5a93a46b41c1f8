"""Index throughput: `ascnet-index build --workers N` against a sequential ffprobe loop, one run.

The baseline is what a script would do: one `ffprobe -count_frames` after the other over the
same files. Every line counts frames by decoding (the only count to trust), so the ratio shows
what the parallel probing and the manifest bookkeeping give, and what a re-run with every row
reused costs. The quiet-machine rule of every benchmark applies (`ascnet.bench.common`): a
loaded machine is refused unless `allow_busy`, and a method whose timed rounds other work
disturbed is marked busy.
"""
from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import ffmpeg

from ascnet.bench.common import Meter, check_at_least, check_quiet, load_average, load_line
from ascnet.config import check_choices
from ascnet.tools.index import IndexConfig, build_index
from ascnet.tools.layouts import Layout, LayoutError, scan
from ascnet.tools.synthetic import CODECS, write_pattern_video


@dataclass
class BenchIndexConfig:
    """`ascnet-bench index`: one field per command-line option."""

    root: str
    layout: Layout = "folder"
    workers: int = 2
    split: int = 1
    annotations: str | None = None
    generate: int = 0          # first write this many small synthetic videos under ROOT (folder layout)
    repeat: int = 3            # rounds; each method keeps its best time (the machine may be shared)
    allow_busy: bool = False   # run even when the machine is loaded (rows are marked busy)

    def check(self) -> "BenchIndexConfig":
        check_choices(self)
        check_at_least(self, {"workers": 1, "generate": 0, "repeat": 1})
        return self


def generate_videos(root: Path, n: int) -> None:
    """n pattern videos (128x96, 60..135 frames, VP9 / H.264 / MPEG-4 in turn) in 4 class folders."""

    if root.exists() and any(root.iterdir()):
        raise LayoutError(f"--generate writes into an empty ROOT; {root} is not empty")
    codecs = ["vp9", "h264", "mpeg4"]
    for i in range(n):
        codec = codecs[i % 3]
        write_pattern_video(root / f"class{i % 4}" / f"v{i:03d}{CODECS[codec][1]}", 60 + (i * 15) % 90, codec,
                            128, 96, gop=30)


def _sequential_ffprobe(files: list[Path]) -> None:
    for f in files:
        try:
            ffmpeg.probe(str(f), v="error", select_streams="v:0", count_frames=None)
        except ffmpeg.Error:
            pass


def bench_index(cfg: BenchIndexConfig) -> list[dict]:
    """Rows of the result table: method, videos, seconds, CPU s, videos/s, ratio to the baseline, busy."""
    cfg.check()
    root = Path(cfg.root)
    if cfg.generate:
        if cfg.layout != "folder":
            raise LayoutError(f"--generate makes a folder layout; got --layout {cfg.layout}")
        generate_videos(root, cfg.generate)
    found = scan(cfg.layout, root, split=cfg.split, annotations=cfg.annotations)
    files = [root / r["path"] for r in found.rows if r["exists"]]
    if not files:
        raise LayoutError(f"{cfg.layout}: no existing video files under {root}")
    best: dict[str, tuple[float, float]] = {}  # name -> (wall s, CPU s of this process and its ffprobes)
    busy: dict[str, bool] = {}  # name -> other work took more than FOREIGN_BUSY cores during one of its rounds

    def timed(name, fn):
        with Meter() as meter:
            fn()
        got = (meter.wall, meter.tree_cpu if meter.tree_cpu is not None else float("nan"))
        best[name] = min(best.get(name, got), got)
        busy[name] = busy.get(name, False) or meter.busy

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.parquet"
        index = IndexConfig(root=str(root), layout=cfg.layout, out=str(out), split=cfg.split,
                            annotations=cfg.annotations, workers=cfg.workers, progress=False)
        one = replace(index, workers=1)
        for _ in range(cfg.repeat):  # interleaved, so a burst of load elsewhere hits every method alike
            timed("sequential ffprobe loop (baseline)", lambda: _sequential_ffprobe(files))
            out.unlink(missing_ok=True)
            timed(f"ascnet-index build --workers {cfg.workers}", lambda: build_index(index))
            timed(f"ascnet-index build --workers {cfg.workers}, re-run (all rows reused)", lambda: build_index(index))
            out.unlink()
            timed("ascnet-index build --workers 1", lambda: build_index(one))
    base = best["sequential ffprobe loop (baseline)"][0]
    return [{"method": name, "videos": len(files), "seconds": dt, "cpu_s": c, "videos/s": len(files) / dt,
             "ratio": base / dt, "busy": busy[name]} for name, (dt, c) in best.items()]


def run_index_bench(cfg: BenchIndexConfig, echo=print) -> list[dict]:
    """Refuse a loaded machine (unless `allow_busy`), time every method, print the table; returns its rows."""
    cfg.check()
    load_start = check_quiet(cfg.allow_busy, echo)
    rows = bench_index(cfg)
    echo(f"device: {device()}")
    echo(f"root: {cfg.root} ({cfg.layout}); best of {cfg.repeat} interleaved rounds")
    echo(format_table(rows))
    echo(load_line(load_start, load_average(), [r["method"] for r in rows if r["busy"]]))
    return rows


def device() -> str:
    ffprobe = subprocess.run(["ffprobe", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (load average {load}); "
            f"{' '.join(ffprobe.split()[:3])}")


def format_table(rows: list[dict]) -> str:
    width = max(len(r["method"]) for r in rows)
    lines = [f"{'method':<{width}}  {'videos':>6}  {'seconds':>8}  {'CPU s':>7}  {'videos/s':>9}  {'ratio':>7}"]
    lines += [f"{r['method']:<{width}}  {r['videos']:>6}  {r['seconds']:>8.2f}  {r['cpu_s']:>7.2f}  "
              f"{r['videos/s']:>9.1f}  {r['ratio']:>6.2f}x" + ("  BUSY" if r.get("busy") else "") for r in rows]
    return "\n".join(lines)
