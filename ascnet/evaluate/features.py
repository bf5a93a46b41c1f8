"""Frozen-encoder features per clip, from the evaluation loader, with an on-disk cache.

The cache file is named by a hash of everything the features depend on: the encoder (the
checkpoint file's bytes, or arch/width/seed for a random init), the manifest's rows of the
split (paths, sizes, mtimes, frame counts, labels), and the clip settings. A second run with
other classifier settings finds the file and decodes nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ascnet.atomic import atomic_path
from ascnet.checkpoint import CheckpointError, checkpoint_paths, load_backbone_state
from ascnet.clips import CROPS_PER_CLIP, ClipSpec
from ascnet.config import Device
from ascnet.manifest import Manifest, ManifestError
from ascnet.models import Arch, build_backbone
from ascnet.pipelines.backends import Backend
from ascnet.pipelines.loader import build_eval_loader
from ascnet.runtime import autocast, resolve_device

CACHE_VERSION = 1
VIDEO_BAR = "{l_bar}{bar}| {n:.1f}/{total:.0f} [{elapsed}<{remaining}, {rate_fmt}]"  # fractional videos, rounded


class EvalError(ValueError):
    """Input that an evaluation cannot use; the message names the file or field and the fix."""


# ---- the encoder -------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderInfo:
    init: str  # "random", "random:SEED" or the checkpoint path as given
    arch: str
    width: int
    key: str  # what the features depend on: sha256 of the checkpoint, or "random:arch:width:seed"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_file(init: str | Path) -> Path:
    """A checkpoint file, or the newest one of a run directory: a pretraining run's
    checkpoints/step-*.pt, or a fine-tuning run's checkpoint.pt."""
    path = Path(init)
    if not path.is_dir():
        return path

    found = checkpoint_paths(path) or [p for p in [path / "checkpoint.pt"] if p.exists()]
    if not found:
        raise CheckpointError(f"{path}: a directory without checkpoints/step-*.pt or checkpoint.pt; pass a checkpoint file")
    return found[-1]


def backbone_state(init: str | Path) -> tuple[dict, str, int]:
    """(load_backbone_state's dict, arch, width) of a checkpoint file or run directory."""
    path = checkpoint_file(init)
    state = load_backbone_state(path)
    if not state.get("arch"):
        raise CheckpointError(f"{path}: the checkpoint does not name its architecture ('arch')")
    return state, state["arch"], int(state.get("width") or 64)


def checkpoint_arch(init: str) -> tuple[str, int]:
    """(arch, width) stored in a checkpoint."""
    return backbone_state(init)[1:]


def is_random(init: str) -> bool:
    """"random" (the run's seed) or "random:SEED" (a random network of its own seed)."""
    return init == "random" or str(init).startswith("random:")


def random_seed(init: str, seed: int) -> int:
    """The seed of a random init: SEED of "random:SEED", else the run's seed."""
    if init == "random":
        return seed
    try:
        return int(init.split(":", 1)[1])
    except ValueError:
        raise EvalError(f"--init {init}: write 'random' or 'random:SEED' with an integer seed, e.g. random:1000") from None


def load_encoder(init: str, arch: str | None = None, width: int | None = None, seed: int = 0) -> tuple[nn.Module, EncoderInfo]:
    """The backbone for `init`: "random" (the run's seed) or "random:SEED" (needs arch), a checkpoint
    or a run directory.

    With a checkpoint, arch and width come from it; an `arch`/`width` that contradicts it, or
    weights that do not fit the named architecture, raise CheckpointError naming both.
    """

    if is_random(init):
        if not arch:
            raise EvalError(f"--init {init} needs --arch (or a checkpoint among the inits to take it from)")
        width, seed = int(width or 64), random_seed(init, seed)
        torch.manual_seed(seed)
        model = build_backbone(arch, width)
        return model.eval(), EncoderInfo(init, arch, width, f"random:{arch}:{width}:{seed}")

    state, ck_arch, ck_width = backbone_state(init)
    if arch and arch != ck_arch:
        raise CheckpointError(f"{init}: checkpoint holds arch '{ck_arch}' but '{arch}' was asked for; drop --arch or pass the matching checkpoint")
    if width and int(width) != ck_width:
        raise CheckpointError(f"{init}: checkpoint holds width {ck_width} but {width} was asked for; drop --width")
    model = build_backbone(ck_arch, ck_width)
    missing, unexpected, mismatched = state_dict_problems(model, state["state_dict"])
    if missing or unexpected or mismatched:
        parts = []
        for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {name} (e.g. {keys[0]})")
        raise CheckpointError(
            f"{init}: its weights do not fit arch '{ck_arch}' (width {ck_width}): " + ", ".join(parts)
            + "; was it trained with another --arch or --width?"
        )
    model.load_state_dict(state["state_dict"])
    return model.eval(), EncoderInfo(str(init), ck_arch, ck_width, "sha256:" + file_sha256(checkpoint_file(init)))


def state_dict_problems(model: nn.Module, state: dict) -> tuple[list[str], list[str], list[str]]:
    """Keys missing from `state`, keys `model` lacks, and keys whose shapes differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and own[k].shape != state[k].shape]
    return missing, unexpected, mismatched


# ---- the split -------------------------------------------------------------------------
def split_of(manifest: Manifest, split: str, option: str, manifest_path: str | Path = "manifest") -> Manifest:
    """The usable (status ok), labelled rows of one split; a readable error when there are none."""
    sel = manifest.select(split)
    if len(sel) == 0:
        present = sorted(set(manifest.df.loc[manifest.df["status"] == "ok", "split"]))
        raise EvalError(
            f"{manifest_path}: no usable videos in split '{split}' (splits with ok videos: {present}); pass {option} with one of them"
        )
    unlabelled = sel.df.loc[sel.df["label"] < 0, "video_id"]
    if len(unlabelled):
        raise EvalError(
            f"{manifest_path}: {len(unlabelled)} videos of split '{split}' have no label (e.g. '{unlabelled.iloc[0]}'); evaluation needs labelled splits"
        )
    return sel


def check_classes(train: Manifest, test: Manifest, manifest_path: str | Path = "manifest") -> None:
    """Every test class must occur in train, else neither a classifier nor retrieval can score it."""
    names = dict(zip(test.df["label"], test.df["label_name"]))
    unseen = sorted(set(test.df["label"]) - set(train.df["label"]))
    if unseen:
        shown = [f"{c} ({names[c]})" if names[c] else str(c) for c in unseen[:5]]
        raise EvalError(
            f"{manifest_path}: {len(unseen)} classes of the test split have no training videos: {', '.join(shown)}; "
            "index the matching split or drop those classes"
        )


# ---- features ----------------------------------------------------------------------------
@dataclass
class ClipFeatures:
    """One row per (video, clip, crop), sorted by video then clip then crop.

    features: (R, D) float32; video_index, clip_index, crop_index: (R,) int64;
    labels: (V,) int64 per video; video_ids: V strings.
    """

    features: np.ndarray
    video_index: np.ndarray
    clip_index: np.ndarray
    crop_index: np.ndarray
    labels: np.ndarray
    video_ids: list[str]

    @property
    def num_videos(self) -> int:
        return len(self.labels)

    @property
    def clip_labels(self) -> np.ndarray:
        return self.labels[self.video_index]

    def save(self, path: Path, meta: dict) -> Path:
        """Atomic .npz write with the cache key's fields alongside."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f, features=self.features, video_index=self.video_index, clip_index=self.clip_index,
                crop_index=self.crop_index, labels=self.labels, video_ids=np.array(self.video_ids, dtype=str),
                meta=np.array(json.dumps(meta)),
            )
        return path

    @classmethod
    def load(cls, path: Path) -> "ClipFeatures":
        with np.load(path, allow_pickle=False) as z:
            return cls(
                features=z["features"], video_index=z["video_index"], clip_index=z["clip_index"],
                crop_index=z["crop_index"], labels=z["labels"], video_ids=[str(v) for v in z["video_ids"]],
            )


@dataclass(frozen=True)
class ClipSettings:
    """What the evaluation loader is asked for: clips of `clip`'s length and crop, at speed 1; part of the cache key."""

    clip: ClipSpec = ClipSpec()
    clips_per_video: int = 10
    crops: str = "center"
    backend: str = "auto"


def manifest_fingerprint(split_rows: Manifest) -> str:
    cols = ["video_id", "path", "decode_path", "bytes", "mtime", "num_frames", "decode_num_frames", "label"]
    h = hashlib.sha256(str(split_rows.root).encode())
    h.update(split_rows.df[cols].to_json(orient="values", double_precision=15).encode())
    return h.hexdigest()


def cache_key(encoder: EncoderInfo, split_rows: Manifest, split: str, settings: ClipSettings) -> tuple[str, dict]:
    meta = {
        "version": CACHE_VERSION, "encoder": encoder.key, "arch": encoder.arch, "width": encoder.width,
        "manifest": manifest_fingerprint(split_rows), "split": split, "clip_len": settings.clip.clip_len,
        "crop_size": settings.clip.crop_size, "clips_per_video": settings.clips_per_video, "crops": settings.crops,
        "backend": settings.backend,
    }
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:24], meta


def run_model(
    model: nn.Module, batches, num_videos: int, rows_per_video: int, labels: np.ndarray, video_ids: list[str],
    device: torch.device, desc: str = "features",
) -> ClipFeatures:
    """Forward every evaluation batch through `model` (no grad), rows sorted per video.

    batches: dicts with clips (B, 3, T, H, W), video_index, clip_index, crop_index (B,).
    The output of `model` per row (a (B, D) feature or (B, C) logits) becomes ClipFeatures.
    Every video must come back with exactly `rows_per_video` rows.
    """
    return run_models([model], batches, num_videos, rows_per_video, labels, video_ids, device, desc)[0]


def run_models(
    models: list[nn.Module], batches, num_videos: int, rows_per_video: int, labels: np.ndarray, video_ids: list[str],
    device: torch.device, desc: str = "features",
) -> list[ClipFeatures]:
    """`run_model` for several models from one pass of the loader: each batch is decoded once
    and goes through every model (evaluating N encoders decodes the split once, not N times)."""
    from tqdm import tqdm

    models = [m.to(device).eval() for m in models]
    total = num_videos * rows_per_video
    # written in place into arrays of the final size: a list of small per-batch arrays, each allocated
    # between two large batches, pins glibc's heap and grows it by about a clip per row (8 GB over
    # UCF-101's 19k training clips at 8x64x64); these stay at the features' own size
    index = np.zeros((3, total), np.int64)  # video, clip, crop per row
    feats: list[np.ndarray | None] = [None] * len(models)
    n = 0
    with torch.inference_mode(), autocast(device), tqdm(
        total=total, desc=desc, unit="video", unit_scale=1 / rows_per_video, leave=False,
        bar_format=VIDEO_BAR,
    ) as bar:  # counts rows, shows videos
        for batch in batches:
            x = batch["clips"].to(device, non_blocking=True)
            b = len(x)
            if n + b > total:
                raise EvalError(f"the evaluation loader gave more than the {total} rows of {num_videos} videos x {rows_per_video}")
            for m, model in enumerate(models):
                y = model(x).float().cpu().numpy()
                if feats[m] is None:
                    feats[m] = np.zeros((total, y.shape[1]), np.float32)
                feats[m][n:n + b] = y
            for r, key in enumerate(("video_index", "clip_index", "crop_index")):
                index[r, n:n + b] = batch[key].cpu().numpy()
            n += b
            bar.update(b)
    if n == 0:
        raise EvalError("the evaluation loader yielded no batches")
    vidx, cidx, kidx = index[:, :n]
    order = np.lexsort((kidx, cidx, vidx))
    vidx, cidx, kidx = vidx[order], cidx[order], kidx[order]
    counts = np.bincount(vidx, minlength=num_videos)
    if len(counts) != num_videos or (counts != rows_per_video).any():
        bad = np.flatnonzero(counts != rows_per_video)[:3].tolist()
        raise EvalError(f"the evaluation loader gave {counts[bad].tolist()} rows for videos {bad}, expected {rows_per_video} each")
    labels = np.asarray(labels, np.int64)
    return [ClipFeatures(f[:n][order], vidx, cidx, kidx, labels, list(video_ids)) for f in feats]


def eval_batches(split_rows: Manifest, settings: ClipSettings, *, batch_size: int, device: torch.device, workers: int):
    """The pipelines' evaluation loader over one split's rows."""

    return build_eval_loader(
        split_rows, settings.clip, split=split_rows.df["split"].iloc[0], batch_size=batch_size,
        clips_per_video=settings.clips_per_video, crops=settings.crops,
        backend=settings.backend, device=device.type, workers=workers,
    )


def cached_features(
    model: nn.Module, encoder: EncoderInfo, rows: Manifest, split: str, settings: ClipSettings, cache_dir: str | Path,
    *, batch_size: int = 8, device: str = "auto", workers: int = 2,
) -> tuple[ClipFeatures, bool]:
    """Features of every clip of `rows` (one split, from `split_of`) under `encoder`.

    Returns (features, True) when read from the cache, (features, False) when decoded now.
    """
    return cached_features_many([(model, encoder)], rows, split, settings, cache_dir, batch_size=batch_size,
                                device=device, workers=workers)[0]


def cached_features_many(
    encoders: list[tuple[nn.Module, EncoderInfo]], rows: Manifest, split: str, settings: ClipSettings,
    cache_dir: str | Path, *, batch_size: int = 8, device: str = "auto", workers: int = 2,
) -> list[tuple[ClipFeatures, bool]]:
    """`cached_features` for several encoders: those not in the cache share one decoding pass.

    Returns one (features, from the cache) per encoder, in order.
    """
    keys = [cache_key(info, rows, split, settings) for _, info in encoders]
    paths = [Path(cache_dir) / f"{split}-{key}.npz" for key, _ in keys]
    out: list[tuple[ClipFeatures, bool] | None] = [(ClipFeatures.load(p), True) if p.exists() else None for p in paths]
    todo = [i for i, o in enumerate(out) if o is None]
    if not todo:
        return out
    dev = resolve_device(device)
    loader = eval_batches(rows, settings, batch_size=batch_size, device=dev, workers=workers)
    try:
        feats = run_models(
            [encoders[i][0] for i in todo], loader, len(rows), settings.clips_per_video * CROPS_PER_CLIP[settings.crops],
            rows.df["label"].to_numpy(), rows.df["video_id"].tolist(), dev,
            desc=f"{split} features" + (f" ({len(todo)} encoders)" if len(todo) > 1 else ""),
        )
    finally:
        close = getattr(loader, "close", None)
        if close:
            close()
    for i, f in zip(todo, feats):
        f.save(paths[i], keys[i][1])
        out[i] = (f, False)
    return out


def resolve_inits(inits, arch: str | None, width: int | None) -> list[tuple[str, str | None, int | None]]:
    """(init, arch, width) per init. A random init without --arch takes the architecture of
    the first checkpoint among the inits, so pretrained and random rows compare like with like."""
    inits = list(dict.fromkeys(inits))  # the same init twice would only repeat its row
    if not inits:
        raise EvalError("nothing to evaluate: pass --init CKPT (a checkpoint) and/or --init random")
    ckpts = [i for i in inits if not is_random(i)]
    if len(ckpts) < len(inits) and not arch:
        if not ckpts:
            raise EvalError("--init random needs --arch (r3d18, r2plus1d18 or s3dg) when no checkpoint is given")
        r_arch, ck_width = checkpoint_arch(ckpts[0])
        r_width = width or ck_width
    else:
        r_arch, r_width = arch, width
    return [(i, r_arch, r_width) if is_random(i) else (i, arch, width) for i in inits]


@dataclass
class FrozenEvalConfig:
    """What the frozen-encoder commands (linear, retrieval) share."""

    manifest: str = ""
    out: str = ""
    inits: tuple[str, ...] = ()  # "random", "random:SEED" and/or checkpoint paths; one result row each
    arch: Arch | None = None  # with a checkpoint, taken from it
    width: int | None = None
    train_split: str = "train"
    test_split: str = "test"
    clip: ClipSpec = ClipSpec()  # its clip_len and crop_size: clips at speed 1, short side resized, centre crop
    clips_per_video: int = 10
    backend: Backend = "auto"
    batch_size: int = 8
    workers: int = 2
    device: Device = "auto"
    cache_dir: str | None = None  # default: OUT/cache; share one between commands to reuse features
    seed: int = 0  # of a random init
    tensorboard: bool = True  # OUT/events.out.tfevents.*: the final metrics, the config, the plot
    wandb: str | None = None  # a W&B project: the results are logged there too

    def settings(self) -> ClipSettings:
        return ClipSettings(self.clip, self.clips_per_video, "center", self.backend)


@dataclass
class SplitPair:
    train: Manifest
    test: Manifest
    num_classes: int


def load_splits(cfg: FrozenEvalConfig) -> SplitPair:
    """The train and test rows of the manifest, checked for use by a classifier or retrieval."""
    manifest = Manifest.from_parquet(cfg.manifest)
    train = split_of(manifest, cfg.train_split, "--train-split", cfg.manifest)
    test = split_of(manifest, cfg.test_split, "--test-split", cfg.manifest)
    check_classes(train, test, cfg.manifest)
    return SplitPair(train, test, manifest.num_classes)


def frozen_features(cfg: FrozenEvalConfig, splits: SplitPair):
    """Per init: (EncoderInfo, train ClipFeatures, test ClipFeatures, both came from the cache)."""
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out) / "cache"
    encoders = [load_encoder(init, arch, width, cfg.seed) for init, arch, width in resolve_inits(cfg.inits, cfg.arch, cfg.width)]
    kw = dict(batch_size=cfg.batch_size, device=cfg.device, workers=cfg.workers)
    # every encoder at once: each split is decoded once, however many inits are compared
    train = cached_features_many(encoders, splits.train, cfg.train_split, cfg.settings(), cache_dir, **kw)
    test = cached_features_many(encoders, splits.test, cfg.test_split, cfg.settings(), cache_dir, **kw)
    infos = [info for _, info in encoders]
    del encoders
    for info, (tr, hit_train), (te, hit_test) in zip(infos, train, test):
        yield info, tr, te, hit_train and hit_test


__all__ = [
    "CheckpointError", "ClipFeatures", "ClipSettings", "EncoderInfo", "EvalError", "ManifestError",
    "FrozenEvalConfig", "cached_features", "cached_features_many", "check_classes", "frozen_features", "load_splits", "load_encoder", "resolve_inits", "run_model", "run_models", "split_of",
]
