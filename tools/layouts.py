"""Dataset layouts -> rows: which videos a dataset has, their labels and splits.

One parser per layout, each a function over the dataset's own annotation files; no dataset
classes. A row is a plain dict (`video_id`, `path`, `label`, `label_name`, `split`, `exists`)
with `path` relative to the root; probing fills in the rest.

    ucf101    ROOT[/UCF-101]/<class>/<video>.avi, ucfTrainTestlist/{classInd,trainlistNN,testlistNN}.txt
    hmdb51    ROOT[/videos]/<class>/<video>.avi, <class>_test_splitN.txt (1 train, 2 test, 0 unused)
    kinetics  CSV label,youtube_id,time_start,time_end,split; files <id>[_%06d_%06d].<ext> anywhere under ROOT
    ssv2      ROOT[/20bn-something-something-v2]/<id>.webm, labels/{labels,train,validation,test}.json
    folder    ROOT/[train|val|test/]<class>/<video>; labels from the sorted class folder names
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

Layout = Literal["ucf101", "hmdb51", "kinetics", "ssv2", "folder"]
LAYOUTS = get_args(Layout)
VIDEO_EXTENSIONS = frozenset(
    {".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp", ".ogv"}
)
_KINETICS_SPLITS = {"train": "train", "training": "train", "val": "val", "validate": "val",
                    "validation": "val", "test": "test", "testing": "test"}
_HMDB_TAGS = {"1": "train", "2": "test", "0": "unused"}
_HMDB_LINE = re.compile(r"^(.*\S)\s+([012])$")
_KINETICS_NAME = re.compile(r"^(?P<id>.+?)(?:_(?P<start>\d{6})_(?P<end>\d{6}))?$")


class LayoutError(ValueError):
    """A layout that cannot be read; the message names the file or the argument and the fix."""


@dataclass
class Scan:
    """What a layout parser found: one row per listed video, plus the files no list names."""

    rows: list[dict]
    classes: list[str]
    annotations: Path | None
    unlisted: list[str] = field(default_factory=list)  # relative paths of videos in no list


def scan(layout: str, root: str | Path, *, split: int = 1, annotations: str | Path | None = None,
         exclude: tuple[Path, ...] = ()) -> Scan:
    """Rows of one dataset layout under `root`; `exclude` are folders to skip (e.g. transcoded copies)."""
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout '{layout}'; allowed: {', '.join(LAYOUTS)}")
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"root {root} is not a folder")
    if not any(root.iterdir()):
        raise LayoutError(f"root {root} is empty: point ROOT at the dataset folder")
    if annotations is not None and not Path(annotations).exists():
        raise LayoutError(f"annotation path {annotations} does not exist (--annotations)")
    if split < 1:
        raise LayoutError(f"--split must be 1 or more, got {split}")
    parser = {"ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics, "ssv2": _ssv2, "folder": _folder}[layout]
    return parser(root, split, Path(annotations) if annotations else None, tuple(Path(e).resolve() for e in exclude))


# ---- helpers ---------------------------------------------------------------------------
def video_files(folder: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Video files under `folder` (by extension), sorted; hidden folders and `exclude` skipped.

    Linked folders and files are followed (a dataset laid out with links), each real folder once.
    """
    found, seen = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:  # a link back up the tree, or a second link to the same folder
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            p = Path(top, name)
            if p.suffix.lower() not in VIDEO_EXTENSIONS or name.startswith(".") or not p.is_file():
                continue
            if exclude and any(p.resolve().is_relative_to(e) for e in exclude):
                continue
            found.append(p)
    return sorted(found)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _lines(path: Path) -> list[str]:
    """Non-empty lines with CRLF and trailing spaces gone (the real UCF/HMDB lists have both)."""
    return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]


def _find_annotations(layout: str, given: Path | None, candidates: list[Path], marker: str) -> Path:
    """The first candidate folder holding `marker` (a glob), or the folder/file the user gave."""
    if given is not None:
        return given
    for c in candidates:
        if c.is_dir() and any(c.glob(marker)):
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise LayoutError(f"{layout}: no annotation files ({marker}) found in {tried}; pass --annotations PATH")


def _row(root: Path, rel: str, label: int, label_name: str, split: str) -> dict:
    return {"video_id": rel, "path": rel, "label": label, "label_name": label_name, "split": split,
            "exists": (root / rel).is_file()}


def _by_lower(files: list[Path], base: Path) -> dict[str, Path]:
    """Case-insensitive lookup of files by their path under `base` (UCF's HandStand/Handstand)."""
    return {p.relative_to(base).as_posix().lower(): p for p in files}


# ---- ucf101 ----------------------------------------------------------------------------
def _ucf101(root: Path, split: int, annotations: Path | None, exclude) -> Scan:
    ann = _find_annotations("ucf101", annotations,
                            [root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist", root], "classInd.txt")
    if ann.is_file():
        ann = ann.parent
    class_file = ann / "classInd.txt"
    if not class_file.is_file():
        raise LayoutError(f"ucf101: {class_file} not found; pass --annotations with the ucfTrainTestlist folder")
    names: dict[str, tuple[int, str]] = {}
    for ln in _lines(class_file):
        parts = ln.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise LayoutError(f"{class_file}: line '{ln}' is not '<1-based id> <class>'")
        names[parts[1].lower()] = (int(parts[0]) - 1, parts[1])
    classes = [n for _, n in sorted(names.values())]

    videos = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    files = video_files(videos, exclude)
    lookup = _by_lower(files, videos)
    rows, listed = [], set()
    for kind, with_label in (("train", True), ("test", False)):
        lst = ann / f"{kind}list{split:02d}.txt"
        if not lst.is_file():
            raise LayoutError(f"ucf101: {lst} not found (split {split}); pass --split or --annotations")
        for ln in _lines(lst):
            parts = ln.split()
            entry = parts[0]
            cls = entry.split("/")[0].lower()
            if cls not in names:
                raise LayoutError(f"{lst}: class '{entry.split('/')[0]}' of '{entry}' is not in {class_file}")
            label, label_name = names[cls]
            if with_label and len(parts) > 1 and int(parts[1]) - 1 != label:
                raise LayoutError(f"{lst}: '{entry}' has label {parts[1]} but {class_file} gives its class {label + 1}")
            found = lookup.get(entry.lower())
            rel = _rel(found, root) if found else _rel(videos / entry, root)
            if found:
                listed.add(found)
            rows.append(_row(root, rel, label, label_name, kind))
    unlisted = [_rel(p, root) for p in files if p not in listed]
    return Scan(rows, classes, ann, unlisted)


# ---- hmdb51 ----------------------------------------------------------------------------
def _hmdb51(root: Path, split: int, annotations: Path | None, exclude) -> Scan:
    marker = f"*_test_split{split}.txt"
    ann = _find_annotations("hmdb51", annotations,
                            [root / "splits", root / "testTrainMulti_7030_splits",
                             root.parent / "testTrainMulti_7030_splits", root.parent / "splits", root], marker)
    lists = [ann] if ann.is_file() else sorted(ann.glob(marker))
    if not lists:
        raise LayoutError(f"hmdb51: no {marker} in {ann} (split {split}); pass --split or --annotations")
    per_class = {p.name[: -len(f"_test_split{split}.txt")]: p for p in lists}
    classes = sorted(per_class)
    videos = root / "videos" if (root / "videos").is_dir() else root
    files = video_files(videos, exclude)
    lookup = _by_lower(files, videos)
    rows, listed = [], set()
    for label, cls in enumerate(classes):
        for ln in _lines(per_class[cls]):
            m = _HMDB_LINE.match(ln)
            if m is None:
                raise LayoutError(f"{per_class[cls]}: line '{ln}' is not '<file>.avi <0|1|2>'")
            name, tag = m.groups()
            entry = f"{cls}/{name}"
            found = lookup.get(entry.lower())
            rel = _rel(found, root) if found else _rel(videos / entry, root)
            if found:
                listed.add(found)
            rows.append(_row(root, rel, label, cls, _HMDB_TAGS[tag]))
    unlisted = [_rel(p, root) for p in files if p not in listed]
    return Scan(rows, classes, ann, unlisted)


# ---- kinetics --------------------------------------------------------------------------
def _kinetics(root: Path, split: int, annotations: Path | None, exclude) -> Scan:
    ann = _find_annotations("kinetics", annotations, [root / "annotations", root.parent / "annotations", root], "*.csv")
    csvs = [ann] if ann.is_file() else sorted(ann.glob("*.csv"))
    entries = []  # (youtube_id, start, end, label_name, split, csv)
    for path in csvs:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM from spreadsheet tools
            reader = csv.DictReader(f)
            cols = [c.strip() for c in reader.fieldnames or []]
            if "youtube_id" not in cols:
                raise LayoutError(f"{path}: no 'youtube_id' column (found {cols}); expected "
                                  "label,youtube_id,time_start,time_end,split")
            for rec in reader:
                rec = {k.strip(): (v or "").strip() for k, v in rec.items() if k is not None}
                default = _KINETICS_SPLITS.get(path.stem.lower(), "train")
                sp = _KINETICS_SPLITS.get(rec.get("split", "").lower() or default)
                if sp is None:
                    raise LayoutError(f"{path}: split '{rec['split']}' of '{rec['youtube_id']}' is not one of "
                                      f"{sorted(_KINETICS_SPLITS)}")
                entries.append((rec["youtube_id"], rec.get("time_start", ""), rec.get("time_end", ""),
                                rec.get("label", ""), sp))
    classes = sorted({e[3] for e in entries if e[3]})
    label_of = {c: i for i, c in enumerate(classes)}

    exclude = exclude + ((ann.resolve(),) if ann.is_dir() and ann.resolve() != root.resolve() else ())
    files = video_files(root, exclude)
    by_id: dict[str, Path] = {}
    for p in files:
        by_id.setdefault(_KINETICS_NAME.match(p.stem)["id"], p)
    rows, listed = [], set()
    for yid, start, end, name, sp in entries:
        found = by_id.get(yid)
        if found:
            listed.add(found)
            rel = _rel(found, root)
        else:
            rel = yid  # no file: the id stands for the path until one appears
        row = _row(root, rel, label_of.get(name, -1), name, sp)
        if found is None:
            row["error"] = f"no file for youtube id '{yid}' (looked for {yid}.* and {yid}_%06d_%06d.* under {root})"
        rows.append(row)
    seen, unique = set(), []
    for r in rows:  # one id listed twice (e.g. in train.csv and val.csv) keeps its first row
        if r["video_id"] not in seen:
            seen.add(r["video_id"])
            unique.append(r)
    unlisted = [_rel(p, root) for p in files if p not in listed]
    return Scan(unique, classes, ann, unlisted)


# ---- ssv2 ------------------------------------------------------------------------------
SSV2_VIDEOS = "20bn-something-something-v2"
SSV2_SPLITS = {"train.json": "train", "validation.json": "val", "test.json": "test"}


def ssv2_class_name(template: str) -> str:
    """The labels.json key of a sample's template: its square brackets removed, their words kept
    ("Putting [something] on [something]" -> "Putting something on something"). This is how the
    dataset's own annotations are read by the public loaders (mmaction2's parse_sthv2_splits:
    template.replace('[', '').replace(']', '') looked up in the labels file, int() of its value)."""
    return template.replace("[", "").replace("]", "")


def _json(path: Path, kind: type):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LayoutError(f"ssv2: {path} is not readable JSON ({e})") from None
    if not isinstance(data, kind):
        raise LayoutError(f"ssv2: {path} holds a {type(data).__name__}, expected a {kind.__name__}")
    return data


def _ssv2(root: Path, split: int, annotations: Path | None, exclude) -> Scan:
    """Something-Something v2: videos <id>.webm, classes from labels.json (template -> index as a
    string), samples from train/validation/test.json (lists of {id, label, template, placeholders};
    test.json holds ids only: label -1). validation.json becomes split "val"."""
    ann = _find_annotations("ssv2", annotations, [root / "labels", root.parent / "labels", root], "labels.json")
    if ann.is_file():
        ann = ann.parent
    labels_file = ann / "labels.json"
    if not labels_file.is_file():
        raise LayoutError(f"ssv2: {labels_file} not found; pass --annotations with the labels folder")
    index = {}
    for name, value in _json(labels_file, dict).items():
        try:
            index[name] = int(value)
        except (TypeError, ValueError):
            raise LayoutError(f"{labels_file}: class '{name}' has index {value!r}, expected an integer (as a string)") from None
    classes = [name for name, _ in sorted(index.items(), key=lambda kv: kv[1])]
    if sorted(index.values()) != list(range(len(index))):
        raise LayoutError(f"{labels_file}: class indices are not 0..{len(index) - 1}")

    videos = root / SSV2_VIDEOS if (root / SSV2_VIDEOS).is_dir() else root
    files = video_files(videos, exclude)
    by_id = {p.stem: p for p in files if p.parent == videos}
    rows, listed = [], set()
    lists = [(ann / name, sp) for name, sp in SSV2_SPLITS.items() if (ann / name).is_file()]
    if not lists:
        raise LayoutError(f"ssv2: none of {', '.join(SSV2_SPLITS)} in {ann}; pass --annotations with the labels folder")
    for path, sp in lists:
        for n, item in enumerate(_json(path, list)):
            if not isinstance(item, dict) or "id" not in item:
                raise LayoutError(f"{path}: entry {n} has no 'id' (expected {{id, label, template, placeholders}})")
            vid = str(item["id"])
            label, name = -1, ""
            if "template" in item:
                name = ssv2_class_name(item["template"])
                if name not in index:
                    raise LayoutError(f"{path}: entry {n} (id {vid}): class '{name}' (its template without brackets) "
                                      f"is not in {labels_file}")
                label = index[name]
            found = by_id.get(vid)
            rel = _rel(found, root) if found else _rel(videos / f"{vid}.webm", root)
            if found:
                listed.add(found)
            row = _row(root, rel, label, name, sp)
            if found is None:
                row["error"] = f"no file for id '{vid}' (looked for {videos / vid}.webm)"
            rows.append(row)
    unlisted = [_rel(p, root) for p in files if p not in listed]
    return Scan(rows, classes, ann, unlisted)


# ---- folder ----------------------------------------------------------------------------
def _folder(root: Path, split: int, annotations: Path | None, exclude) -> Scan:
    top = [d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    split_dirs = bool(top) and set(top) <= {"train", "val", "test"}
    files = video_files(root, exclude)
    if not files:
        raise LayoutError(f"folder: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) under {root}")

    def parts(p: Path) -> tuple[str, str]:  # (split, class)
        rel = p.relative_to(root).parts
        if split_dirs:
            return rel[0], rel[1] if len(rel) > 2 else ""
        return "train", rel[0] if len(rel) > 1 else ""

    classes = sorted({parts(p)[1] for p in files} - {""})
    label_of = {c: i for i, c in enumerate(classes)}
    rows = []
    for p in files:
        sp, cls = parts(p)
        rows.append(_row(root, _rel(p, root), label_of.get(cls, -1), cls, sp))
    return Scan(rows, classes, None, [])
