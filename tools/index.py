"""`ascnet-index build / show / validate`: dataset layout -> probed (and transcoded) parquet manifest.

    cfg = IndexConfig(root="data/ucf101", layout="ucf101", out="ucf101.parquet")
    result = build_index(cfg)          # probes in parallel, reuses unchanged rows, writes atomically
    print(summary(result.manifest))

A long build (Kinetics-400 is ~240k files) keeps going and can be resumed: every ffprobe/ffmpeg
run has a time limit (`probe_timeout`), finished rows are saved beside the manifest every
`save_every` seconds (`<out>.partial/`, one parquet file per save, each written atomically), a
re-run reuses them like the rows of an unchanged manifest, and SIGTERM/SIGINT save what is done
before stopping. The per-file work goes to a local thread pool (each job runs its own ffprobe
and ffmpeg processes) or, with `scheduler`, to a Dask distributed cluster's executor.
"""
from __future__ import annotations

import functools
import itertools
import os
import shutil
import signal
import stat
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from ascnet import __version__
from ascnet.manifest import STATUSES, Manifest, ManifestError, schema_problems
from ascnet.tools import timelimit
from ascnet.tools.layouts import LAYOUTS, Layout, LayoutError, scan
from ascnet.tools.probe import PROBE_FIELDS, TIME_LIMIT, classify, probe
from ascnet.tools.transcode import CODECS, Codec, TranscodeError, copy_path, display_size, scaled_size, transcode

# Besides the contract's columns, each row keeps the original file's own verdict (`probe_status`,
# `probe_error`): `status` is the verdict on what the decoders will read, the copy where one exists.
DECODE_FIELDS = ("decode_path", "decode_codec", "decode_num_frames", "decode_width", "decode_height", "decode_fps",
                 "decode_keyframes")
# files done of all, elapsed < left, files/s (also under one a second: tqdm's default turns it into s/file)
BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
# a job with no answer after this many time limits (one job runs up to five ffprobe/ffmpeg processes,
# and may wait behind one other job for its slot) was lost with its worker, or hangs outside them
GIVE_UP_AFTER = 10


@dataclass
class IndexConfig:
    """`ascnet-index build`: one field per command-line option."""

    root: str
    layout: Layout
    out: str
    split: int = 1                    # split number (UCF-101 / HMDB-51 have 1..3)
    annotations: str | None = None    # annotation folder or file; default: the layout's usual place
    workers: int = 2                  # ffprobe / ffmpeg processes at once (local pool)
    min_frames: int = 16              # fewer decodable frames -> too_short
    max_decode_errors: int = 0        # more errors while decoding -> corrupt
    transcode: Codec | None = None    # h264 | vp9: write decoder-friendly copies
    transcode_dir: str | None = None
    short_side: int | None = None     # resize copies to this short side (pixels)
    probe_timeout: float = 600.0      # seconds one ffprobe / ffmpeg run may take; past it: killed, corrupt
    save_every: float = 60.0          # seconds between saves of finished rows (what a killed build loses)
    scheduler: str | None = None      # a Dask scheduler's address: run the per-file work on its cluster
    strict: bool = False              # any non-ok row -> failure
    progress: bool = True

    def check(self) -> None:
        if self.layout not in LAYOUTS:
            raise LayoutError(f"unknown layout '{self.layout}'; allowed: {', '.join(LAYOUTS)}")
        if self.workers < 1:
            raise LayoutError(f"--workers must be 1 or more, got {self.workers}")
        if self.max_decode_errors < 0:
            raise LayoutError(f"--max-decode-errors must be 0 or more, got {self.max_decode_errors}")
        if not self.probe_timeout > 0:
            raise LayoutError(f"--probe-timeout must be more than 0 seconds, got {self.probe_timeout:g}")
        if self.save_every < 0:
            raise LayoutError(f"--save-every must be 0 (every file) or more seconds, got {self.save_every:g}")
        if self.transcode is not None and self.transcode not in CODECS:
            raise LayoutError(f"unknown --transcode codec '{self.transcode}'; allowed: {', '.join(CODECS)}")
        if self.transcode and not self.transcode_dir:
            raise LayoutError("--transcode needs --transcode-dir DIR (where the copies go)")
        if self.short_side is not None and not self.transcode:
            raise LayoutError("--short-side resizes the transcoded copies: add --transcode h264|vp9")
        if self.short_side is not None and self.short_side < 16:
            raise LayoutError(f"--short-side must be at least 16 pixels, got {self.short_side}")


@dataclass
class IndexResult:
    manifest: Manifest
    path: Path
    reused: int
    probed: int
    unlisted: list[str] = field(default_factory=list)

    @property
    def not_ok(self) -> int:
        return int((self.manifest.df["status"] != "ok").sum())


class BuildStopped(RuntimeError):
    """SIGTERM/SIGINT stopped the build after saving its finished rows; the message says how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


# ---- build -----------------------------------------------------------------------------
def partial_path(out: str | Path) -> Path:
    """The folder where a build of `out` saves its finished rows until it writes the manifest."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


class _Earlier:
    """The rows of an earlier manifest of the same root and those an interrupted build saved
    (newer: they win), each with the settings it was judged under; one hash look-up per file."""

    def __init__(self, manifests: list[Manifest]):
        self.metas = [m.meta for m in manifests]
        self.columns: dict[str, np.ndarray] = {}
        self.index = pd.Index([], dtype=object)
        if not manifests:
            return
        df = pd.concat([m.df.assign(_source=i) for i, m in enumerate(manifests)], ignore_index=True)
        df = df.drop_duplicates("video_id", keep="last")
        # the original's own verdict (a copy may have made the row ok); before it was kept: the row's
        for name in ("probe_status", "probe_error"):
            df[name] = df[name].fillna("") if name in df else ""
        kept = df["probe_status"] != ""
        df["probe_status"] = df["probe_status"].where(kept, df["status"])
        df["probe_error"] = df["probe_error"].where(kept, df["error"])
        self.index = pd.Index(df["video_id"])
        self.columns = {c: df[c].to_numpy() for c in df.columns}

    @classmethod
    def load(cls, out: Path, partial: Path, root: Path) -> "_Earlier":
        """The manifest at `out` and the rows saved in `partial`, those readable and of this root."""
        found = []
        for path in [out, *sorted(partial.glob("rows-*.parquet"))]:
            try:
                m = Manifest.from_parquet(path)
            except ManifestError:
                continue  # none there, or unusable: its files are probed again
            if Path(m.meta.get("root", "")).resolve() == root.resolve():
                found.append(m)
        return cls(found)

    def find(self, video_ids: list[str]) -> np.ndarray:
        """The position of each id's earlier row; -1 where there is none."""
        return self.index.get_indexer(video_ids) if len(self.index) else np.full(len(video_ids), -1)

    def row(self, pos: int) -> tuple[dict, dict]:
        """(the row at `pos`, the metadata of the build that judged it)."""
        row = {c: v[pos] for c, v in self.columns.items()}
        return row, self.metas[row["_source"]]


class _Saver:
    """Finished rows into `folder`: one new parquet file per save (temp + rename), so a save costs
    only its own rows and a killed build loses at most the last `every` seconds of work."""

    def __init__(self, folder: Path, root: Path, meta: dict, every: float):
        self.folder, self.root, self.meta, self.every = folder, root, meta, every
        self.rows: list[dict] = []
        self.last = time.monotonic()
        self.next = 1 + max((int(p.stem.split("-")[1]) for p in folder.glob("rows-*.parquet")), default=0)

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def tick(self) -> None:
        if self.rows and time.monotonic() - self.last >= self.every:
            self.save()

    def save(self) -> None:
        if self.rows:
            Manifest.from_rows(self.rows, self.root, **self.meta).write(self.folder / f"rows-{self.next:06d}.parquet")
            self.next += 1
            self.rows = []
        self.last = time.monotonic()


@contextmanager
def _signals() -> Iterator[list[int]]:
    """SIGTERM/SIGINT set the yielded flag (`[signum]`, 0: none) instead of ending the process, so
    the build saves what is done first (handlers are set from the main thread only)."""
    got, previous = [0], {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGINT):
            previous[s] = signal.signal(s, lambda signum, frame: got.__setitem__(0, signum))
    try:
        yield got
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def _executor(cfg: IndexConfig) -> Iterator[tuple[Executor, Callable[[], int], int]]:
    """(executor, how many jobs it runs at once now, decoder threads per ffprobe/ffmpeg process):
    the local thread pool, or the Dask cluster at `cfg.scheduler`. Never waits for jobs on exit."""
    if cfg.scheduler is None:
        pool = ThreadPoolExecutor(cfg.workers)
        try:  # each job runs ffprobe/ffmpeg processes; together they get about one thread per core
            yield pool, lambda: cfg.workers, max(1, (os.cpu_count() or 1) // cfg.workers)
        finally:
            pool.shutdown(wait=False)
        return
    try:
        import distributed
    except ImportError:
        raise LayoutError("--scheduler sends the work to a Dask cluster, which needs Dask's distributed "
                          "scheduler here and on the workers: pip install 'ascnet[dist]'") from None
    try:
        client = distributed.Client(cfg.scheduler)
    except (OSError, ValueError) as e:
        raise LayoutError(f"--scheduler {cfg.scheduler}: no Dask scheduler answers there ({e}); start one with "
                          "'dask scheduler' and its workers with 'dask worker ADDRESS'") from None
    seen = [0.0, 1]  # when the cluster's thread count was last asked, and that count

    def slots() -> int:  # workers may join or leave during a long build
        if time.monotonic() - seen[0] > 5:
            seen[:] = time.monotonic(), max(1, sum(client.nthreads().values()))
        return seen[1]

    pool = client.get_executor(pure=False)
    try:  # one job per worker thread: a worker has one thread per core unless told otherwise
        yield pool, slots, 1
    finally:
        pool.shutdown(wait=False)
        client.close()


def _decode_rel(path: Path, root: Path) -> str:
    """Relative to the root when inside it, else absolute; as written (links are not followed)."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _process(src: Path, row: dict, need_probe: bool, cfg: IndexConfig, root: Path, threads: int) -> dict:
    """Probe one file (unless reused) and make its copy; all failures end up in status/error."""
    row, limit = dict(row), cfg.probe_timeout
    if need_probe:
        row.update(probe(src, cfg.min_frames, threads, cfg.max_decode_errors, limit))
        row["probe_status"], row["probe_error"] = row["status"], row["error"]
    transcodable = row["status"] == "ok" or (row["status"] == "unsupported" and row["num_frames"] > 0)
    if not cfg.transcode or not transcodable or row.get("decode_path"):
        return row
    dst = copy_path(row["video_id"], cfg.transcode, cfg.transcode_dir)
    size = scaled_size(*display_size(row["width"], row["height"], row["rotation"]), cfg.short_side)
    # a variable-rate original gets a constant-rate copy at its average fps: sampling maps times by the fps
    opts = dict(size=size if cfg.short_side else None, threads=threads, cfr=row["fps"] if row["vfr"] == 1 else None,
                timeout=limit)
    try:
        transcode(src, dst, cfg.transcode, **opts)
        got = probe(dst, cfg.min_frames, threads, timeout=limit)
        if got["status"] == "ok" and ((got["width"], got["height"]) != size or (opts["cfr"] and got["vfr"] == 1)):
            dst.unlink()  # a stale copy of other settings
            transcode(src, dst, cfg.transcode, **opts)
            got = probe(dst, cfg.min_frames, threads, timeout=limit)
    except TranscodeError as e:
        return {**row, "status": "corrupt", "error": str(e)}
    if got["status"] != "ok":
        return {**row, "status": got["status"], "error": f"transcoded copy {dst}: {got['error']}"}
    return {**row, "status": "ok", "error": "", "decode_path": _decode_rel(dst, root), "decode_codec": got["codec"],
            "decode_num_frames": got["num_frames"], "decode_width": got["width"], "decode_height": got["height"],
            "decode_fps": got["fps"], "decode_keyframes": got["keyframes"]}


def _lost(row: dict, need_probe: bool, after: float) -> dict:
    error = (f"no answer within {after:g} s ({GIVE_UP_AFTER} times the time limit {TIME_LIMIT}): its worker was "
             "lost or hangs; raise the limit to try it again")
    return {**row, "status": "corrupt", "error": error, **({"probe_status": "corrupt", "probe_error": error}
                                                            if need_probe else {})}


def _run(pool: Executor, slots: Callable[[], int], jobs: list[tuple[int, Path, bool]], rows: list[dict],
         work: Callable, stop: list[int], give_up: float) -> Iterator[tuple[int, dict] | None]:
    """(row index, finished row) for each job as it finishes, and None about twice a second while
    none does; until every job is done or `stop[0]` is set.

    At most twice the executor's slots are in flight, so no dataset becomes a future per file at
    once. A job with no answer `give_up` seconds after it was sent (a lost or hung worker) gets a
    row that says so. One whose process SIGINT/SIGTERM ended gets none while stopping (the next
    build does it), and is sent again otherwise.
    """
    todo = iter(jobs)
    pending: dict[Future, tuple[tuple[int, Path, bool], float]] = {}
    try:
        while True:
            while not stop[0] and len(pending) < 2 * slots() and (job := next(todo, None)):
                i, src, need = job
                pending[pool.submit(work, src, rows[i], need)] = job, time.monotonic() + give_up
            if not pending or stop[0]:
                return
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                job, _ = pending.pop(fut)
                if not isinstance(fut.exception(), timelimit.StoppedError):
                    yield job[0], fut.result()
                elif not stop[0]:  # its process was ended from outside, the build goes on: again
                    todo = itertools.chain([job], todo)
            now = time.monotonic()
            for fut in [f for f, (_, deadline) in pending.items() if deadline < now]:
                (i, _, need), _ = pending.pop(fut)
                fut.cancel()
                yield i, _lost(rows[i], need, give_up)
            if not done:
                yield None
    finally:
        for fut in pending:
            fut.cancel()


def build_index(cfg: IndexConfig) -> IndexResult:
    """Scan the layout, probe new/changed files in parallel, transcode if asked, write the manifest.

    Finished rows are saved to `partial_path(cfg.out)` as the build goes and reused by the next
    build; SIGTERM/SIGINT save them and raise `BuildStopped`. The folder goes once the manifest is written.
    """
    cfg.check()
    root = Path(cfg.root)
    out = Path(cfg.out)
    partial = partial_path(out)
    exclude = (Path(cfg.transcode_dir),) if cfg.transcode_dir else ()
    found = scan(cfg.layout, root, split=cfg.split, annotations=cfg.annotations, exclude=exclude)
    if not found.rows:
        raise LayoutError(f"{cfg.layout}: the annotations in {found.annotations or root} list no videos")
    earlier = _Earlier.load(out, partial, root)
    transcode_meta = {"codec": cfg.transcode, "short_side": cfg.short_side,
                      "dir": os.path.abspath(cfg.transcode_dir)} if cfg.transcode else None
    meta = {"layout": cfg.layout, "split_number": cfg.split, "annotations": str(found.annotations or ""),
            "tool_version": __version__, "min_frames": cfg.min_frames, "max_decode_errors": cfg.max_decode_errors,
            "probe_timeout": cfg.probe_timeout, "transcode": transcode_meta, "classes": found.classes,
            "unlisted": found.unlisted}

    rows, jobs, reused = [], [], 0
    for r, pos in zip(found.rows, earlier.find([r["video_id"] for r in found.rows])):
        row = {k: v for k, v in r.items() if k != "exists"}
        src = root / row["path"]
        if not r["exists"]:
            row.update(status="missing", error=row.get("error") or f"file not found: {src}")
            row["probe_status"], row["probe_error"] = row["status"], row["error"]
            rows.append(row)
            continue
        st = os.stat(src)
        old, old_meta = earlier.row(pos) if pos >= 0 else (None, {})
        # probed again: a row from before the keyframe table (the loader seeks with it) or the error
        # count (its verdict came from packet counts), a damaged one judged with another
        # --max-decode-errors (its first error is not kept), and one past a time limit now raised
        unchanged = (old is not None and old["status"] != "missing" and old["bytes"] == st.st_size
                     and abs(old["mtime"] - st.st_mtime) < 1e-6
                     and (old["num_frames"] == 0 or (len(old["keyframes"]) and old["decode_errors"] >= 0
                                                     and old["rotation"] >= 0))
                     and (old["decode_errors"] <= 0 or old_meta.get("max_decode_errors") == cfg.max_decode_errors)
                     and not (TIME_LIMIT in old["probe_error"] and cfg.probe_timeout > old_meta.get("probe_timeout", 0)))
        if unchanged:
            reused += 1
            row.update({k: old[k] for k in PROBE_FIELDS})
            # the original's own verdict (a copy may have turned 'unsupported' into 'ok'), re-judged
            # against today's --min-frames
            row["status"], row["error"] = old["probe_status"], old["probe_error"]
            if row["codec"] and row["num_frames"] > 0 and row["status"] in ("ok", "too_short", "unsupported"):
                row["status"], row["error"] = classify(row, cfg.min_frames, cfg.max_decode_errors)
            row["probe_status"], row["probe_error"] = row["status"], row["error"]
            if (cfg.transcode and old_meta.get("transcode") == transcode_meta and old["decode_path"]
                    and old["status"] == "ok" and len(old["decode_keyframes"])):
                if (root / old["decode_path"]).is_file():  # copy and its probe still good
                    row.update({k: old[k] for k in DECODE_FIELDS})
                    row["status"], row["error"] = "ok", ""
        rows.append(row)
        if not unchanged or (cfg.transcode and not row.get("decode_path")):
            jobs.append((len(rows) - 1, src, not unchanged))
    del earlier

    timelimit.reset()
    saver = _Saver(partial, root, meta, cfg.save_every)
    done = 0
    with _signals() as stop, _executor(cfg) as (pool, slots, threads):
        work = functools.partial(_process, cfg=cfg, root=root, threads=threads)
        bar = tqdm(total=len(jobs), unit="file", desc="probing" if not cfg.transcode else f"probing+{cfg.transcode}",
                   disable=not cfg.progress or not jobs, dynamic_ncols=True, bar_format=BAR)
        try:
            for got in _run(pool, slots, jobs, rows, work, stop, GIVE_UP_AFTER * cfg.probe_timeout):
                if got is not None:
                    i, rows[i] = got[0], got[1]
                    saver.add(rows[i])
                    done += 1
                    bar.update()
                saver.tick()
        finally:
            bar.close()
            saver.save()  # all that is done, whatever comes next
            if done < len(jobs):  # stopped, or failed: end what runs
                timelimit.stop_all()
    if stop[0]:
        raise BuildStopped(f"stopped by {signal.Signals(stop[0]).name} after {done} of {len(jobs)} files; the "
                           f"finished rows are saved in {partial}: run the same command again to resume", stop[0])

    manifest = Manifest.from_rows(rows, root, **meta)
    manifest.write(out)
    shutil.rmtree(partial, ignore_errors=True)
    return IndexResult(manifest, out, reused, sum(1 for *_, need in jobs if need), found.unlisted)


# ---- show ------------------------------------------------------------------------------
def summary(manifest: Manifest, max_problems: int = 10) -> str:
    """Videos per split and status, classes, codecs, resolutions, frame-count range, hours."""
    df = manifest.df
    meta = manifest.meta
    lines = [f"layout {meta.get('layout', '?')}, split {meta.get('split_number', '?')}, root {manifest.root}, "
             f"{len(df)} videos"]
    table = pd.crosstab(df["split"], df["status"]).reindex(columns=list(STATUSES), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    lines += ["", table.rename_axis(columns=None).reset_index().to_string(index=False), ""]
    ok = df[df["status"] == "ok"]
    labelled = df[df["label"] >= 0]
    lines.append(f"classes      {labelled['label'].nunique()} ({len(labelled)} labelled videos)")
    present = df[df["codec"] != ""]

    def counts(s: pd.Series) -> str:
        c = s.value_counts()
        text = ", ".join(f"{k} {v}" for k, v in c.head(6).items())
        return text + (f", ... ({len(c)} kinds)" if len(c) > 6 else "") if len(c) else "-"

    lines.append(f"codecs       {counts(present['codec'])}")
    lines.append(f"resolutions  {counts(present['width'].astype(str) + 'x' + present['height'].astype(str))}")
    if len(ok):
        lines.append(f"frames (ok)  min {ok['num_frames'].min()}, median {int(ok['num_frames'].median())}, "
                     f"max {ok['num_frames'].max()}")
    else:
        lines.append("frames (ok)  -")
    lines.append(f"hours (ok)   {ok['duration_s'].sum() / 3600:.3f}")
    copies = df[df["decode_path"] != ""]
    if len(copies):
        lines.append(f"copies       {counts(copies['decode_codec'])} "
                     f"({counts(copies['decode_width'].astype(str) + 'x' + copies['decode_height'].astype(str))})")
    vfr = df[df["vfr"] == 1]
    if len(vfr):
        copied = int((vfr["decode_path"] != "").sum())
        lines.append(f"vfr          {len(vfr)} video(s) with a variable frame rate; " + (
            "their copies have a constant rate (the average fps)" if copied == len(vfr) else
            f"sampling maps a time to a frame by the average fps, which misses on them ({len(vfr) - copied} "
            "without a copy): --transcode writes constant-rate copies"))
    unlisted = meta.get("unlisted") or []
    if unlisted:
        lines.append(f"unlisted     {len(unlisted)} video file(s) in no annotation list, e.g. {unlisted[0]}")
    bad = df[df["status"] != "ok"]
    if len(bad):
        lines += ["", f"not ok ({len(bad)}):"]
        lines += [f"  {r.status:<11} {r.path}: {r.error}" for r in bad.head(max_problems).itertuples()]
        if len(bad) > max_problems:
            lines.append(f"  ... and {len(bad) - max_problems} more (see the manifest's 'error' column)")
    return "\n".join(lines)


# ---- validate --------------------------------------------------------------------------
def _file_stat(path: Path) -> os.stat_result | None:
    """The stat of a regular file (links followed); None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def validate(path: str | Path) -> list[str]:
    """Every problem of a manifest, one line each: schema, then files gone or changed since indexing."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: no such manifest; build one with 'ascnet-index build'"]
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a non-parquet file
        return [f"{path}: not a readable parquet file ({e})"]
    if b"ascnet" not in (table.schema.metadata or {}):
        return [f"{path}: no ascnet metadata; was it written by 'ascnet-index build'?"]
    problems = [f"{path}: {p}" for p in schema_problems(table.to_pandas())]
    if problems:
        return problems
    try:
        m = Manifest.from_parquet(path)
    except ManifestError as e:
        return [str(e)]
    df = m.df  # the five columns it needs, not a tuple of every column per row
    for path, status, size, mtime, copy in zip(df["path"], df["status"], df["bytes"], df["mtime"], df["decode_path"]):
        try:
            st = _file_stat(m.resolve(path))
        except ManifestError as e:
            problems.append(f"{path}: {e}")
            continue
        if status == "missing":
            if st:
                problems.append(f"{path}: was missing and now exists; re-run 'ascnet-index build'")
            continue
        if not st:
            problems.append(f"{path}: file is gone (indexed with {size} bytes); re-run 'ascnet-index build'")
            continue
        if st.st_size != size or abs(st.st_mtime - mtime) > 1e-6:
            problems.append(f"{path}: changed since indexing (size {size} -> {st.st_size}, mtime "
                            f"{mtime:.0f} -> {st.st_mtime:.0f}); re-run 'ascnet-index build'")
        if copy and not _file_stat(m.resolve(copy)):
            problems.append(f"{path}: its transcoded copy {copy} is gone; re-run 'ascnet-index build'")
    return problems

