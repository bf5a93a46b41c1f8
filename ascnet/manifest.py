"""The manifest contract: one parquet row per video, written once by `ascnet-index build`.

Every other part reads videos through `Manifest`: the pipelines take `Manifest.decode_table()`,
evaluation takes labels and splits from `Manifest.df`. Paths are stored relative to the root
kept in the file's key-value metadata; `Manifest.resolve()` turns them back into paths to open.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ascnet import __version__
from ascnet.atomic import atomic_path

SCHEMA_VERSION = 1
STATUSES = ("ok", "unsupported", "corrupt", "too_short", "missing")
SPLITS = ("train", "test", "val", "unused")

# name -> pandas dtype kind: "str", "int", "float"
COLUMNS: dict[str, str] = {
    "video_id": "str",      # stable across re-index: the relative path, '/'-separated
    "path": "str",          # relative to the manifest root
    "label": "int",         # -1 when unlabelled
    "label_name": "str",
    "split": "str",         # one of SPLITS
    "num_frames": "int",    # decodable frames, counted
    "fps": "float",
    "width": "int",
    "height": "int",
    "codec": "str",
    "pix_fmt": "str",
    "duration_s": "float",
    "bytes": "int",
    "mtime": "float",
    "status": "str",        # one of STATUSES
    "error": "str",         # readable reason when status != ok, else ""
    # the decoder-friendly copy ("" / 0 when not transcoded); decode_path is relative
    # to the root when it lies inside it, absolute otherwise
    "decode_path": "str",
    "decode_codec": "str",
    "decode_num_frames": "int",
    "decode_width": "int",
    "decode_height": "int",
    "decode_fps": "float",
}

# Optional columns: a manifest written before them still reads, with each value "unknown".
# int64 lists (unknown: empty): the keyframe indices (in decode order) of the file and of its copy.
LIST_COLUMNS = ("keyframes", "decode_keyframes")
# ints (unknown: -1): errors the decoder, its parser and the demuxer reported while counting frames;
# vfr: 1 when the frames' display times stray from a constant rate by more than a frame, else 0;
# rotation: degrees counter-clockwise (0/90/180/270) the display matrix turns the decoded frames to show them upright
OPTIONAL_INT_COLUMNS = ("decode_errors", "vfr", "rotation")

_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
_DEFAULTS = {"str": "", "int": 0, "float": 0.0}


def _plain(rel: str) -> bool:
    """A relative path without an empty, '.' or '..' part."""
    wrapped = f"/{rel}/"
    return bool(rel) and rel[0] != "/" and rel[-1] != "/" and "//" not in rel and "/./" not in wrapped and "/../" not in wrapped


class ManifestError(ValueError):
    """A manifest that cannot be used as it is; the message names the file and the field."""


def _kind(series: pd.Series) -> str | None:
    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series):
        return "str"
    return None


def schema_problems(df: pd.DataFrame) -> list[str]:
    """Every missing or mistyped column and every bad status/split value, one line each."""
    problems = []
    for name, kind in COLUMNS.items():
        if name not in df.columns:
            problems.append(f"missing column '{name}' ({kind})")
            continue
        got = _kind(df[name])
        if got != kind and not (kind == "float" and got == "int"):
            problems.append(f"column '{name}' should be {kind}, found {df[name].dtype}")
    for name in OPTIONAL_INT_COLUMNS:
        if name in df.columns and _kind(df[name]) != "int" and not df[name].isna().all():
            problems.append(f"column '{name}' should be int, found {df[name].dtype}")
    if "status" in df.columns:
        bad = sorted(set(df["status"].unique()) - set(STATUSES))
        if bad:
            problems.append(f"column 'status' has {bad}; allowed: {list(STATUSES)}")
    if "split" in df.columns:
        bad = sorted(set(df["split"].unique()) - set(SPLITS))
        if bad:
            problems.append(f"column 'split' has {bad}; allowed: {list(SPLITS)}")
    if "video_id" in df.columns and df["video_id"].duplicated().any():
        dup = df.loc[df["video_id"].duplicated(), "video_id"].iloc[0]
        problems.append(f"column 'video_id' is not unique (e.g. '{dup}')")
    return problems


@dataclass
class Manifest:
    df: pd.DataFrame
    root: Path
    meta: dict = field(default_factory=dict)

    # ---- constructors -------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: list[dict], root: str | Path, **meta) -> "Manifest":
        df = pd.DataFrame(rows)
        for name, kind in COLUMNS.items():
            if name not in df.columns:
                df[name] = _DEFAULTS[kind]
        df = cls._coerce(df)
        return cls(df=df, root=Path(os.path.abspath(root)), meta=dict(meta))

    @classmethod
    def from_parquet(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        if not path.exists():
            raise ManifestError(f"{path}: no such manifest; build one with 'ascnet-index build'")
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for a non-parquet file
            raise ManifestError(f"{path}: not a readable parquet manifest ({e})") from e
        raw = table.schema.metadata or {}
        meta = {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"pandas")}
        if "ascnet" not in meta:
            raise ManifestError(f"{path}: no ascnet metadata; was it written by 'ascnet-index build'?")
        info = json.loads(meta["ascnet"])
        df = table.to_pandas()
        problems = schema_problems(df)
        if problems:
            raise ManifestError(f"{path}: " + "; ".join(problems) + " (rebuild it with 'ascnet-index build')")
        version = int(info.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise ManifestError(
                f"{path}: schema version {version}, this ascnet reads {SCHEMA_VERSION}; rebuild it with 'ascnet-index build'"
            )
        root = Path(info["root"])
        return cls(df=cls._coerce(df), root=root, meta=info)

    @staticmethod
    def _coerce(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for name, kind in COLUMNS.items():
            if kind == "str":
                df[name] = df[name].fillna("").astype(str)
            elif kind == "int":
                df[name] = df[name].fillna(0).astype(np.int64)
            else:
                df[name] = df[name].fillna(0.0).astype(np.float64)
        for name in LIST_COLUMNS:
            values = df[name] if name in df.columns else [None] * len(df)
            df[name] = [v if isinstance(v, np.ndarray) and v.dtype == np.int64 else
                        np.asarray(v if isinstance(v, (list, tuple, np.ndarray)) else [], dtype=np.int64) for v in values]
        for name in OPTIONAL_INT_COLUMNS:
            df[name] = df[name].fillna(-1).astype(np.int64) if name in df.columns else np.int64(-1)
        known = [*COLUMNS, *LIST_COLUMNS, *OPTIONAL_INT_COLUMNS]
        return df[known + [c for c in df.columns if c not in known]].reset_index(drop=True)

    # ---- writing ------------------------------------------------------------------
    def write(self, path: str | Path) -> Path:
        """Write atomically: a temp file beside the target, then rename."""
        path = Path(path)
        problems = schema_problems(self.df)
        if problems:
            raise ManifestError(f"refusing to write {path}: " + "; ".join(problems))
        info = {"schema_version": SCHEMA_VERSION, **self.meta, "root": str(self.root)}

        info.setdefault("tool_version", __version__)
        lists = {c: pa.array([np.asarray(v, np.int64) for v in self.df[c]], type=pa.list_(pa.int64()))
                 for c in LIST_COLUMNS if c in self.df.columns}
        table = pa.Table.from_pandas(self.df.drop(columns=list(lists)), preserve_index=False)
        for name, values in lists.items():
            table = table.append_column(name, values)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"ascnet": json.dumps(info).encode()})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        self.meta = info
        return path

    # ---- reading helpers ----------------------------------------------------------
    def resolve(self, rel: str) -> Path:
        """A stored path (relative to the root, or absolute) as the path to open.

        Containment is judged on the path as written, normalised (`..` taken away), not on where
        links lead: a dataset of links, or a root that is one, opens through them. A path must
        stay inside the root, or inside the folder of the transcoded copies where there is one.
        """
        full = Path(os.path.normpath(self.root / rel))  # an absolute `rel` replaces the root
        copies = (self.meta.get("transcode") or {}).get("dir")
        bases = [self.root, Path(os.path.abspath(copies))] if copies else [self.root]
        if not any(full.is_relative_to(os.path.normpath(b)) for b in bases):
            where = f" or its copies folder {bases[1]}" if copies else ""
            raise ManifestError(f"path '{rel}' leads out of the manifest root {self.root}{where}; store it "
                                "inside, or index the folder it is in (ascnet-index build)")
        return full

    def select(self, split: str | None = None, status: str | None = "ok") -> "Manifest":
        """Rows of one split (None: all) and one status (None: all), as a new Manifest."""
        df = self.df
        if split is not None:
            if split not in SPLITS:
                raise ManifestError(f"unknown split '{split}'; allowed: {list(SPLITS)}")
            df = df[df["split"] == split]
        if status is not None:
            df = df[df["status"] == status]
        return Manifest(df=df.reset_index(drop=True), root=self.root, meta=self.meta)

    def decode_table(self) -> pd.DataFrame:
        """What a decoder needs, per row: absolute `file`, `num_frames`, `fps`, `codec`, `keyframes`, `rotation`
        and the size of the frames shown upright (`width`, `height`: the coded size turned by `rotation`).

        The decoder-friendly copy is used where one exists (it is upright: rotation 0), else the original.
        """
        df = self.df
        copy = (df["decode_path"] != "").to_numpy()
        rotation = np.where(copy, 0, df["rotation"].clip(lower=0).to_numpy()).astype(np.int64)  # unknown (-1): as stored
        turned = (rotation // 90) % 2 == 1
        files = self.resolve_all(np.where(copy, df["decode_path"].to_numpy(object), df["path"].to_numpy(object)))
        pick = lambda a, b: np.where(copy, df[b].to_numpy(), df[a].to_numpy())  # noqa: E731
        # object columns, not pandas' string dtype: the loaders walk these per row, which that dtype makes slow
        return pd.DataFrame(
            {
                "video_id": pd.Series(df["video_id"].to_numpy(object), dtype=object),
                "file": pd.Series(files, dtype=object),
                "num_frames": pick("num_frames", "decode_num_frames").astype(np.int64),
                "fps": pick("fps", "decode_fps").astype(np.float64),
                "codec": pd.Series(pick("codec", "decode_codec").astype(object), dtype=object),
                "width": np.where(turned, pick("height", "decode_height"), pick("width", "decode_width")).astype(np.int64),
                "height": np.where(turned, pick("width", "decode_width"), pick("height", "decode_height")).astype(np.int64),
                "rotation": rotation,
                "keyframes": [d if c else k for k, d, c in zip(df["keyframes"], df["decode_keyframes"], copy)],
                "label": df["label"].to_numpy(),
            }
        )

    def resolve_all(self, rels) -> list[str]:
        """`resolve` of many stored paths, as strings. A plain relative path (no '.', '..' or empty part)
        is joined to the root as it is, which is what `resolve` makes of it; only the others take the
        slower way through `resolve`. (At Kinetics' 240k rows `resolve` alone took most of a minute.)"""
        root = os.path.normpath(self.root).rstrip("/")
        return [f"{root}/{r}" if _plain(r) else str(self.resolve(r)) for r in rels]

    @property
    def num_classes(self) -> int:
        labels = self.df.loc[self.df["label"] >= 0, "label"]
        return int(labels.max()) + 1 if len(labels) else 0

    def __len__(self) -> int:
        return len(self.df)
