"""Linear probe on frozen features: standardise, fit one linear layer, score clips and videos.

The classifier sees one row per clip; the video-level score averages the clip logits of each
video (the paper's protocol), so it can differ from the clip-level one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ascnet.evaluate.features import FrozenEvalConfig, frozen_features, load_splits
from ascnet.evaluate.report import hits_string, plot_bars, write_results
from ascnet.runlog import publish_results


def standardise(train: np.ndarray, *others: np.ndarray):
    """Zero mean, unit variance per dimension, with statistics from `train` alone.

    (N, D) arrays in, float32 arrays out, in the order given.
    """
    train = np.asarray(train, np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # a constant dimension carries nothing; keep it at 0
    return tuple(((np.asarray(x, np.float64) - mean) / std).astype(np.float32) for x in (train, *others))


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    optimizer: Literal["lbfgs", "adam"] = "lbfgs",
    epochs: int = 100,
    lr: float = 1.0,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> nn.Linear:
    """A linear classifier (D -> num_classes) fitted by cross-entropy on (N, D) features.

    "lbfgs": full-batch L-BFGS, `epochs` outer steps (deterministic, suits cached features).
    "adam": `epochs` passes of mini-batch Adam at `lr`, shuffled by `seed`.
    `weight_decay` is an L2 penalty on the weights (not the bias).
    """
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"unknown optimizer '{optimizer}'; allowed: ['lbfgs', 'adam']")
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, np.float32))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    layer = nn.Linear(xt.shape[1], num_classes)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.01, generator=gen)
        layer.bias.zero_()

    def loss_of(xb, yb):
        return nn.functional.cross_entropy(layer(xb), yb) + 0.5 * weight_decay * layer.weight.pow(2).sum()

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(layer.parameters(), lr=lr, max_iter=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = loss_of(xt, yt)
            loss.backward()
            return loss

        for _ in range(epochs):
            opt.step(closure)
    else:
        opt = torch.optim.Adam(layer.parameters(), lr=lr)
        for _ in range(epochs):
            for idx in torch.randperm(len(xt), generator=gen).split(batch_size):
                opt.zero_grad()
                loss_of(xt[idx], yt[idx]).backward()
                opt.step()
    return layer.eval()


def logits_of(layer: nn.Linear, x: np.ndarray) -> np.ndarray:
    """(N, D) features -> (N, C) logits as float32."""
    with torch.no_grad():
        return layer(torch.as_tensor(np.asarray(x, np.float32))).numpy()


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the label is among the k largest logits (k capped at the class count)."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == np.asarray(labels)[:, None]).any(axis=1)


def video_logits(logits: np.ndarray, video_index: np.ndarray, num_videos: int) -> np.ndarray:
    """Mean clip logits per video: (R, C) rows with (R,) video_index -> (num_videos, C)."""
    video_index = np.asarray(video_index, np.int64)
    counts = np.bincount(video_index, minlength=num_videos)
    if len(counts) > num_videos or (counts == 0).any():
        raise ValueError(f"video_index does not cover 0..{num_videos - 1}")
    sums = np.zeros((num_videos, logits.shape[1]))
    np.add.at(sums, video_index, logits)
    return sums / counts[:, None]


def accuracy_report(
    logits: np.ndarray, clip_labels: np.ndarray, video_index: np.ndarray, video_labels: np.ndarray, ks=(1, 5)
) -> dict[str, float]:
    """Clip-level and video-level top-k accuracy in percent.

    logits: (R, C) one row per clip; clip_labels, video_index: (R,); video_labels: (V,).
    Keys "clip_top{k}" and "video_top{k}" (k as given; capped at C inside).
    """
    per_video = video_logits(logits, video_index, len(video_labels))
    out = {}
    for level, lg, lb in (("clip", logits, clip_labels), ("video", per_video, video_labels)):
        for k in ks:
            out[f"{level}_top{k}"] = float(100.0 * topk_hits(lg, lb, k).mean())
    return out


# ---- the command -------------------------------------------------------------------------
@dataclass
class LinearConfig(FrozenEvalConfig):
    """`ascnet-eval linear`: a linear classifier on frozen, cached clip features."""

    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    epochs: int = 30  # L-BFGS outer steps (20 iterations each) or Adam passes
    lr: float | None = None  # default: 1.0 for lbfgs, 1e-3 for adam
    weight_decay: float = 1e-3
    classifier_batch_size: int = 256  # adam only


def linear_probe(cfg: LinearConfig) -> tuple[dict, str]:
    """Train on train-split features, score the test split; writes results in cfg.out.

    Returns (results dict, markdown table).
    """
    splits = load_splits(cfg)
    lr = cfg.lr if cfg.lr is not None else (1.0 if cfg.optimizer == "lbfgs" else 1e-3)
    rows = []
    for info, train, test, cached in frozen_features(cfg, splits):
        xtr, xte = standardise(train.features, test.features)
        layer = fit_linear(
            xtr, train.clip_labels, splits.num_classes, optimizer=cfg.optimizer, epochs=cfg.epochs, lr=lr,
            weight_decay=cfg.weight_decay, batch_size=cfg.classifier_batch_size, seed=cfg.seed,
        )
        test_logits = logits_of(layer, xte)
        metrics = accuracy_report(test_logits, test.clip_labels, test.video_index, test.labels)
        video_hits = topk_hits(video_logits(test_logits, test.video_index, len(test.labels)), test.labels, 1)
        train_acc = float(100.0 * (logits_of(layer, xtr).argmax(1) == train.clip_labels).mean())
        rows.append({
            "init": info.init, "arch": info.arch, "width": info.width, "metrics": metrics,
            "top1_hits": hits_string(video_hits), "train_clip_top1": train_acc,
            "feature_dim": int(train.features.shape[1]), "features_cached": cached,
        })
    results = {
        "command": "linear", "config": asdict(cfg), "rows": rows, "num_classes": splits.num_classes,
        "num_train_videos": len(splits.train), "num_test_videos": len(splits.test),
    }
    out = Path(cfg.out)
    table = write_results(out, results, f"Linear probe: {cfg.test_split} split, {cfg.clips_per_video} clips/video, center crop")
    publish_results(out, results, {"accuracy": plot_bars(rows, out / "accuracy.png", "linear probe")})
    return results, table
