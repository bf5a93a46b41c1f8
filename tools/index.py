"""`ascnet-index build / show / validate`: dataset layout -> probed (and transcoded) parquet manifest.

    cfg = IndexConfig(root="data/ucf101", layout="ucf101", out="ucf101.parquet")
    result = build_index(cfg)          # probes in parallel, reuses unchanged rows, writes atomically
    print(summary(result.manifest))
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from ascnet import __version__
from ascnet.manifest import STATUSES, Manifest, ManifestError, schema_problems
from ascnet.tools.layouts import LAYOUTS, Layout, LayoutError, scan
from ascnet.tools.probe import PROBE_FIELDS, classify, probe
from ascnet.tools.transcode import CODECS, Codec, TranscodeError, copy_path, display_size, scaled_size, transcode

# Besides the contract's columns, each row keeps the original file's own verdict (`probe_status`,
# `probe_error`): `status` is the verdict on what the decoders will read, the copy where one exists.
DECODE_FIELDS = ("decode_path", "decode_codec", "decode_num_frames", "decode_width", "decode_height", "decode_fps",
                 "decode_keyframes")


@dataclass
class IndexConfig:
    """`ascnet-index build`: one field per command-line option."""

    root: str
    layout: Layout
    out: str
    split: int = 1                    # split number (UCF-101 / HMDB-51 have 1..3)
    annotations: str | None = None    # annotation folder or file; default: the layout's usual place
    workers: int = 2                  # ffprobe / ffmpeg processes at once
    min_frames: int = 16              # fewer decodable frames -> too_short
    max_decode_errors: int = 0        # more errors while decoding -> corrupt
    transcode: Codec | None = None    # h264 | vp9: write decoder-friendly copies
    transcode_dir: str | None = None
    short_side: int | None = None     # resize copies to this short side (pixels)
    strict: bool = False              # any non-ok row -> failure
    progress: bool = True

    def check(self) -> None:
        if self.layout not in LAYOUTS:
            raise LayoutError(f"unknown layout '{self.layout}'; allowed: {', '.join(LAYOUTS)}")
        if self.workers < 1:
            raise LayoutError(f"--workers must be 1 or more, got {self.workers}")
        if self.max_decode_errors < 0:
            raise LayoutError(f"--max-decode-errors must be 0 or more, got {self.max_decode_errors}")
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


# ---- build -----------------------------------------------------------------------------
def _previous(out: Path, root: Path) -> tuple[dict[str, dict], dict]:
    """Rows (by video_id) and metadata of an earlier manifest of the same root; empty when unusable."""
    if not out.exists():
        return {}, {}
    try:
        old = Manifest.from_parquet(out)
    except ManifestError:
        return {}, {}
    if Path(old.meta.get("root", "")).resolve() != root.resolve():
        return {}, {}
    return {r["video_id"]: r for r in old.df.to_dict("records")}, old.meta


def _decode_rel(path: Path, root: Path) -> str:
    """Relative to the root when inside it, else absolute; as written (links are not followed)."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _process(src: Path, row: dict, cfg: IndexConfig, root: Path, threads: int, need_probe: bool) -> dict:
    """Probe one file (unless reused) and make its copy; all failures end up in status/error."""
    if need_probe:
        row.update(probe(src, cfg.min_frames, threads, cfg.max_decode_errors))
        row["probe_status"], row["probe_error"] = row["status"], row["error"]
    transcodable = row["status"] == "ok" or (row["status"] == "unsupported" and row["num_frames"] > 0)
    if not cfg.transcode or not transcodable or row.get("decode_path"):
        return row
    dst = copy_path(row["video_id"], cfg.transcode, cfg.transcode_dir)
    size = scaled_size(*display_size(row["width"], row["height"], row["rotation"]), cfg.short_side)
    # a variable-rate original gets a constant-rate copy at its average fps: sampling maps times by the fps
    opts = dict(size=size if cfg.short_side else None, threads=threads, cfr=row["fps"] if row["vfr"] == 1 else None)
    try:
        transcode(src, dst, cfg.transcode, **opts)
        got = probe(dst, cfg.min_frames, threads)
        if got["status"] == "ok" and ((got["width"], got["height"]) != size or (opts["cfr"] and got["vfr"] == 1)):
            dst.unlink()  # a stale copy of other settings
            transcode(src, dst, cfg.transcode, **opts)
            got = probe(dst, cfg.min_frames, threads)
    except TranscodeError as e:
        return {**row, "status": "corrupt", "error": str(e)}
    if got["status"] != "ok":
        return {**row, "status": got["status"], "error": f"transcoded copy {dst}: {got['error']}"}
    return {**row, "status": "ok", "error": "", "decode_path": _decode_rel(dst, root), "decode_codec": got["codec"],
            "decode_num_frames": got["num_frames"], "decode_width": got["width"], "decode_height": got["height"],
            "decode_fps": got["fps"], "decode_keyframes": got["keyframes"]}


def build_index(cfg: IndexConfig) -> IndexResult:
    """Scan the layout, probe new/changed files in parallel, transcode if asked, write the manifest."""
    cfg.check()
    root = Path(cfg.root)
    out = Path(cfg.out)
    exclude = (Path(cfg.transcode_dir),) if cfg.transcode_dir else ()
    found = scan(cfg.layout, root, split=cfg.split, annotations=cfg.annotations, exclude=exclude)
    if not found.rows:
        raise LayoutError(f"{cfg.layout}: the annotations in {found.annotations or root} list no videos")
    previous, old_meta = _previous(out, root)
    old_transcode = old_meta.get("transcode")
    transcode_meta = {"codec": cfg.transcode, "short_side": cfg.short_side,
                      "dir": os.path.abspath(cfg.transcode_dir)} if cfg.transcode else None

    rows, jobs, reused = [], [], 0
    for r in found.rows:
        row = {k: v for k, v in r.items() if k != "exists"}
        src = root / row["path"]
        if not r["exists"]:
            row.update(status="missing", error=row.get("error") or f"file not found: {src}")
            row["probe_status"], row["probe_error"] = row["status"], row["error"]
            rows.append(row)
            continue
        st = os.stat(src)
        old = previous.get(row["video_id"])
        # probed again: a row from before the keyframe table (the loader seeks with it) or the error
        # count (its verdict came from packet counts), and a damaged one judged with another
        # --max-decode-errors (its first error is not kept)
        unchanged = (old is not None and old["status"] != "missing" and old["bytes"] == st.st_size
                     and abs(old["mtime"] - st.st_mtime) < 1e-6
                     and (old["num_frames"] == 0 or (len(old["keyframes"]) and old["decode_errors"] >= 0
                                                     and old["rotation"] >= 0))
                     and (old["decode_errors"] <= 0 or old_meta.get("max_decode_errors") == cfg.max_decode_errors))
        if unchanged:
            reused += 1
            row.update({k: old[k] for k in PROBE_FIELDS})
            # the original's own verdict (a copy may have turned 'unsupported' into 'ok'), re-judged
            # against today's --min-frames
            row["status"], row["error"] = old.get("probe_status") or old["status"], old.get("probe_error", old["error"])
            if row["codec"] and row["num_frames"] > 0 and row["status"] in ("ok", "too_short", "unsupported"):
                row["status"], row["error"] = classify(row, cfg.min_frames, cfg.max_decode_errors)
            row["probe_status"], row["probe_error"] = row["status"], row["error"]
            if (cfg.transcode and old_transcode == transcode_meta and old["decode_path"] and old["status"] == "ok"
                    and len(old["decode_keyframes"])):
                if (root / old["decode_path"]).is_file():  # copy and its probe still good
                    row.update({k: old[k] for k in DECODE_FIELDS})
                    row["status"], row["error"] = "ok", ""
        rows.append(row)
        if not unchanged or (cfg.transcode and not row.get("decode_path")):
            jobs.append((len(rows) - 1, src, not unchanged))

    # each job runs ffprobe/ffmpeg processes; together they get about one thread per core
    threads = max(1, (os.cpu_count() or 1) // cfg.workers)
    with ThreadPoolExecutor(cfg.workers) as pool:
        futures = {pool.submit(_process, src, dict(rows[i]), cfg, root, threads, need): i for i, src, need in jobs}
        bar = tqdm(as_completed(futures), total=len(futures), unit="file", desc="probing" if not cfg.transcode
                   else f"probing+{cfg.transcode}", disable=not cfg.progress or not futures, dynamic_ncols=True)
        for fut in bar:
            rows[futures[fut]] = fut.result()

    meta = {"layout": cfg.layout, "split_number": cfg.split, "annotations": str(found.annotations or ""),
            "tool_version": __version__, "min_frames": cfg.min_frames, "max_decode_errors": cfg.max_decode_errors,
            "transcode": transcode_meta, "classes": found.classes, "unlisted": found.unlisted}
    manifest = Manifest.from_rows(rows, root, **meta)
    manifest.write(out)
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
    for r in m.df.itertuples():
        try:
            full = m.resolve(r.path)
        except ManifestError as e:
            problems.append(f"{r.path}: {e}")
            continue
        if r.status == "missing":
            if full.is_file():
                problems.append(f"{r.path}: was missing and now exists; re-run 'ascnet-index build'")
            continue
        if not full.is_file():
            problems.append(f"{r.path}: file is gone (indexed with {r.bytes} bytes); re-run 'ascnet-index build'")
            continue
        st = full.stat()
        if st.st_size != r.bytes or abs(st.st_mtime - r.mtime) > 1e-6:
            problems.append(f"{r.path}: changed since indexing (size {r.bytes} -> {st.st_size}, mtime "
                            f"{r.mtime:.0f} -> {st.st_mtime:.0f}); re-run 'ascnet-index build'")
        if r.decode_path and not m.resolve(r.decode_path).is_file():
            problems.append(f"{r.path}: its transcoded copy {r.decode_path} is gone; re-run 'ascnet-index build'")
    return problems

