"""How ascnet's costs grow with the dataset: one table of stage x size, time per video and peak memory.

A user's first real jobs are UCF-101 (13,320 videos) and Kinetics-400 (~240,000 clips). Every
stage should cost a constant time per video and hold memory that grows no faster than the
manifest's rows; this benchmark shows whether it does:

- `index`: `ascnet-index build` of a UCF-101-shaped set (`python -m ascnet.tools.ucf_like`) at
  subsets of its lists (0 = the whole set); each manifest is kept as OUT/index-N.parquet.
- `manifest`: a manifest of N rows (`replicate_manifest`: real probed rows under distinct
  video_ids, their files cycled, so decoding works): its load, the pair loader's build, the
  first batch, and the resident memory of the main process and of EACH decoder worker
  (VmRSS, VmHWM; Pss and Private from smaps_rollup, so pages shared with the parent count once).
- `ddp`: the same under `torchrun --nproc_per_node 2` (CPU, gloo), one row per rank.
- `pretrain`: a fixed number of pretraining steps through the real loader (narrow network).
- `features`: the evaluation cache's key over N rows, features of up to `feature_videos` of them,
  and the same call again, which must be served by the cache.

Each (stage, size) runs in a fresh process (`python -m ascnet.bench.growth stage JSON`), so its
peak memory is its own. Times follow the quiet-machine rule of every benchmark
(`ascnet.bench.common`): a loaded machine is refused unless `allow_busy`, and a row during whose
stage other processes took more than `FOREIGN_BUSY` cores is marked busy (the load average before a
stage is the last stage's own work, so it cannot tell); memory and counts hold under load.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ascnet.bench.common import Meter, Table, check_at_least, check_quiet, load_average, load_line, write_json_atomic
from ascnet.config import check_choices
from ascnet.manifest import Manifest, ManifestError

Stage = Literal["index", "manifest", "ddp", "pretrain", "features"]
MARK = "GROWTH-ROW "  # the line a stage process prints its result on


# ---- a Kinetics-sized manifest from a few real files ----------------------------------------
def replicate_manifest(src: Manifest, rows: int, *, classes: int = 400, split: str = "train") -> Manifest:
    """`rows` rows made of `src`'s usable rows, cycled: each copy under its own video_id
    ("<id>#<n>"), with the probed fields of the row it copies (so its file decodes as indexed),
    labels spread over `classes` and every row in `split`."""
    ok = src.select(None)
    if len(ok) == 0:
        raise ManifestError("the source manifest has no rows with status 'ok' to replicate")
    take = np.arange(rows) % len(ok)
    df = ok.df.iloc[take].reset_index(drop=True)
    df["video_id"] = [f"{v}#{i}" for i, v in enumerate(df["video_id"])]
    df["label"] = np.arange(rows, dtype=np.int64) % classes
    df["label_name"] = [f"class{k:03d}" for k in df["label"]]
    df["split"] = split
    return Manifest(df=df, root=src.root, meta={k: v for k, v in src.meta.items() if k != "root"})


# ---- memory of a process and its workers -----------------------------------------------------
def proc_memory(pid: int) -> dict:
    """MB: rss, hwm (peak rss) from /proc/PID/status; pss and private from smaps_rollup (shared pages split)."""
    out = {}
    keys = {"VmRSS": "rss_mb", "VmHWM": "hwm_mb", "Pss": "pss_mb", "Private_Clean": "private_mb",
            "Private_Dirty": "private_mb"}
    for name in ("status", "smaps_rollup"):
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key = line.split(":")[0]
            if key in keys:
                out[keys[key]] = out.get(keys[key], 0.0) + int(line.split()[1]) / 1024
    return out


def children(pid: int) -> list[int]:
    """Every living descendant of `pid` (Linux /proc)."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def self_peak_mb() -> float:
    return proc_memory(os.getpid()).get("hwm_mb", float("nan"))


# ---- the stages, each run in its own process ----------------------------------------------------
NARROW = dict(clip_len=8, crop_size=64, speeds=(1, 2, 4))  # the CPU recipe's clips


def stage_index(root: str, annotations: str, workers: int, out: str) -> dict:
    """Index the listed videos into `out` (kept: the whole set's manifest serves the next jobs)."""
    import resource

    from ascnet.tools.index import IndexConfig, build_index

    Path(out).unlink(missing_ok=True)  # a fresh build: a re-use of an earlier one would time nothing
    t = time.perf_counter()
    res = build_index(IndexConfig(root=root, layout="ucf101", out=out, annotations=annotations,
                                  workers=workers, progress=False))
    wall = time.perf_counter() - t
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"videos": len(res.manifest), "seconds": wall, "peak_main_mb": self_peak_mb(), "peak_worker_mb": kids,
            "detail": f"probed {res.probed}"}


def stage_manifest(manifest: str, workers: int, batches: int = 3) -> dict:
    import torch

    from ascnet.clips import ClipSpec
    from ascnet.pipelines.loader import build_pair_loader

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        torch.distributed.init_process_group("gloo")
    t = time.perf_counter()
    m = Manifest.from_parquet(manifest)
    load = time.perf_counter() - t
    t = time.perf_counter()
    loader = build_pair_loader(m, ClipSpec(**NARROW), batch_size=8, backend="pyav", workers=workers,
                               shard_id=rank, num_shards=world, on_error="skip")
    build = time.perf_counter() - t
    t = time.perf_counter()
    it = loader.epoch(0)
    next(it)
    first = time.perf_counter() - t
    for _, _ in zip(range(batches - 1), it):  # a few more, so that every worker has decoded
        pass
    main = proc_memory(os.getpid())
    workers_mem = [proc_memory(p) for p in children(os.getpid())]
    workers_mem = [w for w in workers_mem if w]
    loader.close()
    if world > 1:
        torch.distributed.destroy_process_group()
    return {"videos": len(m), "seconds": load + build + first, "rank": rank, "load_s": load, "build_s": build,
            "first_batch_s": first, "peak_main_mb": main.get("hwm_mb"), "main": main, "workers": workers_mem,
            "peak_worker_mb": max((w.get("hwm_mb", 0) for w in workers_mem), default=None)}


def stage_pretrain(manifest: str, workers: int, steps: int, out: str) -> dict:
    from ascnet.clips import ClipSpec
    from ascnet.runlog import read_metrics
    from ascnet.train import PretrainConfig, pretrain

    cfg = PretrainConfig(manifest=manifest, out=out, arch="r3d18", width=16, clip=ClipSpec(**NARROW), batch_size=8,
                         max_steps=steps, log_every=max(1, steps // 4), ckpt_every=10 ** 9, workers=workers,
                         backend="pyav", device="cpu", progress=False, queue_size=256, optimizer="adamw",
                         base_lr=1e-3)
    t = time.perf_counter()
    pretrain(cfg)
    wall = time.perf_counter() - t
    rows = read_metrics(out)
    rss = [r["rss_mb"] for r in rows if r.get("rss_mb")]
    wait = float(np.mean([r["data_wait"] for r in rows]))
    return {"videos": steps * cfg.batch_size, "seconds": wall, "peak_main_mb": self_peak_mb(), "rss_mb": rss,
            "detail": f"{steps} steps, data wait {100 * wait:.0f} %, rss {rss[0]:.0f}->{rss[-1]:.0f} MB"}


def stage_features(manifest: str, workers: int, feature_videos: int, cache: str) -> dict:
    from ascnet.clips import ClipSpec
    from ascnet.evaluate.features import ClipSettings, cache_key, cached_features, load_encoder

    rows = Manifest.from_parquet(manifest).select("train")
    model, info = load_encoder("random", "r3d18", 16)
    settings = ClipSettings(ClipSpec(clip_len=8, crop_size=64), clips_per_video=10, backend="pyav")
    t = time.perf_counter()
    cache_key(info, rows, "train", settings)
    key_s = time.perf_counter() - t
    part = Manifest(df=rows.df.iloc[:feature_videos].reset_index(drop=True), root=rows.root, meta=rows.meta)
    t = time.perf_counter()
    _, hit = cached_features(model, info, part, "train", settings, cache, workers=workers, device="cpu")
    extract = time.perf_counter() - t
    t = time.perf_counter()
    _, hit_again = cached_features(model, info, part, "train", settings, cache, workers=workers, device="cpu")
    again = time.perf_counter() - t
    if hit or not hit_again:
        raise RuntimeError(f"the feature cache was {'hit' if hit else 'missed'} on the first call and "
                           f"{'hit' if hit_again else 'missed'} on the second: expected missed, then hit")
    return {"videos": len(part), "seconds": extract, "peak_main_mb": self_peak_mb(), "key_s": key_s,
            "cached_s": again, "detail": f"key over {len(rows)} rows {key_s:.2f} s, cached call {again:.2f} s"}


STAGES = {"index": stage_index, "manifest": stage_manifest, "pretrain": stage_pretrain, "features": stage_features}


def run_stage(name: str, args: dict, *, ranks: int = 0) -> list[dict]:
    """The stage in a fresh process (under torchrun with `ranks` processes when > 0); its result rows."""
    base = ["-m", "ascnet.bench.growth", "stage", name, json.dumps(args)]
    cmd = [sys.executable, *base] if not ranks else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
        "--master_port", str(29500 + os.getpid() % 1000), *base]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    rows = [json.loads(ln[len(MARK):]) for ln in res.stdout.splitlines() if ln.startswith(MARK)]
    if res.returncode != 0 or not rows:
        raise RuntimeError(f"growth stage {name} failed (exit {res.returncode}): {res.stderr.strip()[-1500:]}")
    return rows


# ---- the table ----------------------------------------------------------------------------------
@dataclass
class GrowthConfig:
    """`ascnet-bench growth`: one field per command-line option."""

    manifest: str = ""                 # real probed rows to replicate (manifest, ddp, pretrain, features)
    ucf_root: str = ""                 # a UCF-101-shaped set for the index stage (python -m ascnet.tools.ucf_like)
    stages: tuple[Stage, ...] = ("index", "manifest", "ddp", "pretrain", "features")
    sizes: tuple[int, ...] = (1000, 10000, 100000, 240000)  # manifest rows
    index_sizes: tuple[int, ...] = (1000, 10000, 0)         # videos of ucf_root indexed; 0 = all
    workers: int = 2
    steps: int = 20                    # pretraining steps per size
    feature_videos: int = 200          # videos whose features are extracted per size (the key covers all rows)
    out: str = "runs/growth"           # growth.json and growth.png
    allow_busy: bool = False

    def check(self) -> "GrowthConfig":
        check_choices(self)
        check_at_least(self, {"workers": 1, "steps": 1, "feature_videos": 1})
        if any(s < 1 for s in self.sizes) or any(s < 0 for s in self.index_sizes):
            raise ValueError("--sizes must be positive row counts, --index-sizes video counts (0: the whole set)")
        if "index" in self.stages and not self.ucf_root:
            raise ValueError("the index stage needs --ucf-root (make one with: python -m ascnet.tools.ucf_like --out DIR)")
        if set(self.stages) - {"index"} and not self.manifest:
            raise ValueError("the manifest, ddp, pretrain and features stages need --manifest (real probed rows to "
                             "replicate, e.g. ascnet-index build data/real --layout folder --out real.parquet)")
        return self


def subset_lists(root: Path, n: int, dest: Path) -> int:
    """A ucfTrainTestlist folder in `dest` listing n of split 1's videos (every k-th of each list), or all
    for n = 0; returns how many it lists."""
    src = root / "ucfTrainTestlist"
    lines = {k: (src / f"{k}list01.txt").read_text().splitlines() for k in ("train", "test")}
    total = sum(len(v) for v in lines.values())
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "classInd.txt", dest / "classInd.txt")
    count = 0
    for k, v in lines.items():
        keep = v if not n or n >= total else [v[i] for i in np.linspace(0, len(v) - 1, max(1, round(n * len(v) / total))).astype(int)]
        (dest / f"{k}list01.txt").write_text("\n".join(keep) + "\n")
        count += len(keep)
    return count


def run_growth(cfg: GrowthConfig, echo=print) -> list[dict]:
    """Every (stage, size) in its own process; prints the table, writes OUT/growth.json and OUT/growth.png."""
    cfg.check()
    load_start = check_quiet(cfg.allow_busy, echo)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def add(stage, size, name, args, ranks=0):
        with Meter() as meter:  # other work's CPU during the stage; the load before it is the last stage's own
            stage_rows = run_stage(name, args, ranks=ranks)
        for r in stage_rows:
            rows.append({"stage": stage + (f" rank {r['rank']}" if ranks else ""), "size": size, **r,
                         "foreign_cores": meter.foreign_cores, "busy": meter.busy})
            echo(format_row(rows[-1]))

    echo(format_head())
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        if "index" in cfg.stages:
            for n in cfg.index_sizes:
                listed = subset_lists(Path(cfg.ucf_root), n, Path(tmp) / f"lists{n}")
                add("index", listed, "index", {"root": cfg.ucf_root, "annotations": f"{tmp}/lists{n}",
                                               "workers": cfg.workers, "out": str(out / f"index-{listed}.parquet")})
        if set(cfg.stages) - {"index"}:
            src = Manifest.from_parquet(cfg.manifest)
            for n in cfg.sizes:
                path = replicate_manifest(src, n).write(Path(tmp) / f"rows{n}.parquet")
                args = {"manifest": str(path), "workers": cfg.workers}
                if "manifest" in cfg.stages:
                    add("manifest", n, "manifest", args)
                if "ddp" in cfg.stages:
                    add("ddp", n, "manifest", args, ranks=2)
                if "pretrain" in cfg.stages:
                    add("pretrain", n, "pretrain", {**args, "steps": cfg.steps, "out": f"{tmp}/run{n}"})
                if "features" in cfg.stages:
                    add("features", n, "features", {**args, "feature_videos": cfg.feature_videos,
                                                    "cache": f"{tmp}/cache{n}"})
                path.unlink()
    write_json_atomic(out / "growth.json", {"config": asdict(cfg), "rows": rows})
    plot_growth(rows, out / "growth.png")
    echo(load_line(load_start, load_average(), [f"{r['stage']} {r['size']}" for r in rows if r["busy"]]))
    echo(f"wrote {out / 'growth.json'} and {out / 'growth.png'}")
    return rows


COLUMNS = (("stage", 16), ("size", 7), ("videos", 7), ("seconds", 8), ("ms/video", 9), ("main MB", 8),
           ("worker MB", 10))


def format_head() -> str:
    return "\n".join(Table(COLUMNS).head())


def format_row(r: dict) -> str:
    def mb(v):
        return "-" if v is None else f"{v:.0f}"

    note = r.get("detail", "")
    if "load_s" in r:
        ws = ", ".join(f"{w.get('hwm_mb', 0):.0f}/{w.get('pss_mb', 0):.0f}/{w.get('private_mb', 0):.0f}" for w in r["workers"])
        note = (f"load {r['load_s']:.2f} s, loader {r['build_s']:.2f} s, first batch {r['first_batch_s']:.2f} s; "
                f"workers peak/Pss/private MB {ws}")
    return Table(COLUMNS).line(r["stage"], r["size"], r["videos"], f"{r['seconds']:.2f}",
                               f"{1000 * r['seconds'] / max(r['videos'], 1):.2f}", mb(r.get("peak_main_mb")),
                               mb(r.get("peak_worker_mb")), note=("BUSY " if r.get("busy") else "") + note)


def plot_growth(rows: list[dict], path: Path) -> Path:
    """Time per video and peak memory against the size, one line per stage (log-log)."""
    from ascnet.evaluate.report import _pyplot, save_figure

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    df = pd.DataFrame(rows)
    for stage, g in df.groupby("stage", sort=False):
        g = g.sort_values("size")
        axes[0].plot(g["size"], 1000 * g["seconds"] / g["videos"].clip(lower=1), marker="o", label=stage)
        axes[1].plot(g["size"], g["peak_main_mb"], marker="o", label=f"{stage} main")
        if g["peak_worker_mb"].notna().any():
            axes[1].plot(g["size"], g["peak_worker_mb"], marker="x", ls="--", label=f"{stage} worker")
    for ax, label in zip(axes, ("ms per video", "peak RSS (MB)")):
        ax.set(xscale="log", xlabel="rows (videos)", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("time per video" + (" (BUSY machine)" if df["busy"].any() else ""))
    axes[1].set_title("peak memory")
    fig.tight_layout()
    path = save_figure(fig, Path(path))
    plt.close(fig)
    return path


if __name__ == "__main__":  # one stage, in its own process: python -m ascnet.bench.growth stage NAME JSON
    if len(sys.argv) != 4 or sys.argv[1] != "stage" or sys.argv[2] not in STAGES:
        sys.exit(f"usage: python -m ascnet.bench.growth stage {{{','.join(STAGES)}}} JSON-ARGS")
    result = STAGES[sys.argv[2]](**json.loads(sys.argv[3]))
    print(MARK + json.dumps(result), flush=True)
