"""A contact sheet of training pairs: what the pretraining pipeline feeds the model.

One batch of the pair loader, exactly as training gets it (decoded, sampled at two playback
speeds, augmented per clip), denormalised back to RGB: for each video two rows, clip a and
clip b, one column per frame. Look at it before a long run: a wrong crop, a black padded
frame or a broken colour conversion shows at once.

    ascnet-train preview --manifest ucf101.parquet --out pairs.png --n 4

The command is `ascnet.cli.train`'s; this module is the library part.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ascnet.clips import ClipSpec, denormalize
from ascnet.manifest import Manifest
from ascnet.pipelines.backends import Backend
from ascnet.pipelines.loader import build_pair_loader


@dataclass
class PreviewConfig:
    manifest: str = ""
    out: str = "pairs.png"
    n: int = 4  # pairs (videos) shown
    split: str = "train"
    clip: ClipSpec = ClipSpec()
    backend: Backend = "auto"
    seed: int = 0
    epoch: int = 0
    max_frames: int = 16  # columns; longer clips show evenly spaced frames

    def check(self) -> "PreviewConfig":
        if not self.manifest:
            raise ValueError("no manifest: pass --manifest M.parquet (from 'ascnet-index build')")
        if self.n < 1:
            raise ValueError(f"n={self.n}: show at least one pair (--n)")
        if Path(self.out).suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
            raise ValueError(f"{self.out}: write an image (.png, .jpg, .pdf or .svg) (--out)")
        return self


def pair_batch(cfg: PreviewConfig) -> tuple[dict, list[str], str]:
    """The first batch of epoch `cfg.epoch` of the pair loader, on the CPU.

    Returns (batch, video ids of its rows, backend): clip_a, clip_b (n, 3, T, H, W) normalised.
    """

    manifest = Manifest.from_parquet(cfg.manifest)
    loader = build_pair_loader(
        manifest, cfg.clip, split=cfg.split, batch_size=cfg.n, backend=cfg.backend, device="cpu", seed=cfg.seed, workers=1,
    )
    try:
        batch = next(iter(loader.epoch(cfg.epoch)))
        batch = {k: v.detach().cpu().clone() for k, v in batch.items()}
        backend = loader.backend
    finally:
        loader.close()
    ids = manifest.select(cfg.split).df["video_id"].tolist()
    return batch, [ids[int(i)] for i in batch["video_index"]], backend


def pairs_mosaic(batch: dict, n: int = 4, max_frames: int = 16, gap: int = 2) -> np.ndarray:
    """The first `n` pairs of `batch` as one RGB image (H, W, 3) uint8, without matplotlib (cheap
    enough for the start of every run): rows clip a, clip b of each video, one column per frame;
    a white gap between frames, a wider one between videos."""
    a = denormalize(batch["clip_a"][:n].detach().cpu().float()).clamp(0, 255).byte().numpy()
    b = denormalize(batch["clip_b"][:n].detach().cpu().float()).clamp(0, 255).byte().numpy()
    _, _, t, h, w = a.shape
    cols = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    rows = []
    for i in range(len(a)):
        for clips in (a, b):
            frames = [clips[i, :, f].transpose(1, 2, 0) for f in cols]
            row = np.full((h, len(cols) * (w + gap) - gap, 3), 255, np.uint8)
            for j, frame in enumerate(frames):
                row[:, j * (w + gap):j * (w + gap) + w] = frame
            rows += [row, np.full((gap, row.shape[1], 3), 255, np.uint8)]
        rows.append(np.full((2 * gap, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-2])


def draw_pairs(batch: dict, video_ids: list[str], out: str | Path, max_frames: int = 16, title: str = "") -> Path:
    """Write the contact sheet of `batch` (clip_a, clip_b (B, 3, T, H, W) normalised) to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    a = denormalize(batch["clip_a"].float()).clamp(0, 255).byte().numpy()
    b = denormalize(batch["clip_b"].float()).clamp(0, 255).byte().numpy()
    n, _, t, h, w = a.shape
    cols = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    fig, axes = plt.subplots(2 * n, len(cols), figsize=(0.9 * len(cols) + 1.6, 0.9 * 2 * n * h / w + 0.6), squeeze=False)
    for i in range(n):
        for r, (clips, key) in enumerate(((a, "speed_a"), (b, "speed_b"))):
            row = axes[2 * i + r]
            for j, f in enumerate(cols):
                row[j].imshow(clips[i, :, f].transpose(1, 2, 0))
                row[j].set_xticks([])
                row[j].set_yticks([])
                if i == 0 and r == 0:
                    row[j].set_title(f"t{f}", fontsize=7)
            name = Path(video_ids[i]).stem
            row[0].set_ylabel(f"{name[:18]}\n{'ab'[r]}: {int(batch[key][i])}x", fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title or "training pairs (after augmentation): clip a and clip b of each video at their speeds", fontsize=9)
    fig.tight_layout(pad=0.3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def preview(cfg: PreviewConfig) -> Path:
    """The contact sheet of `cfg.n` training pairs of `cfg.manifest`, written to `cfg.out`."""
    cfg.check()
    batch, ids, backend = pair_batch(cfg)
    title = (f"{cfg.n} training pairs as the model sees them (split {cfg.split}, {cfg.clip.clip_len}x{cfg.clip.crop_size}, "
             f"backend {backend}, epoch {cfg.epoch})")
    return draw_pairs(batch, ids, cfg.out, cfg.max_frames, title)

