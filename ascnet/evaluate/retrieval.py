"""Nearest-neighbour retrieval (the paper's Table 5): test videos query train videos by cosine.

Each video is the mean of its clip features, L2-normalised; a query scores a hit at k when any
of its k nearest gallery videos has the query's class.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ascnet.evaluate.features import EvalError, FrozenEvalConfig, frozen_features, load_splits
from ascnet.evaluate.report import hits_string, plot_topk, write_results
from ascnet.runlog import publish_results

DEFAULT_KS = (1, 5, 10, 20, 50)


def video_means(features: np.ndarray, video_index: np.ndarray, num_videos: int) -> np.ndarray:
    """Mean clip feature per video, L2-normalised.

    features: (R, D) one row per clip (or crop); video_index: (R,) in [0, num_videos).
    Returns (num_videos, D) float32; raises if a video has no rows.
    """
    features = np.asarray(features, dtype=np.float64)
    video_index = np.asarray(video_index, dtype=np.int64)
    counts = np.bincount(video_index, minlength=num_videos)
    if len(counts) > num_videos or (counts == 0).any():
        missing = np.flatnonzero(counts[:num_videos] == 0)[:5].tolist()
        raise ValueError(f"video_index does not cover 0..{num_videos - 1} (no rows for videos {missing})")
    sums = np.zeros((num_videos, features.shape[1]))
    np.add.at(sums, video_index, features)
    means = sums / counts[:, None]
    return l2_normalise(means).astype(np.float32)


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length; (N, D) -> (N, D). An all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


QUERY_CELLS = 1 << 22  # similarities ranked at a time (32 MB as float64): Kinetics' Q x G would be ~40 GB


def first_hit_ranks(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                    gallery_labels: np.ndarray) -> np.ndarray:
    """(Q,) int: per query, the rank (0 = nearest) of the first gallery video of its class; G when none.

    query: (Q, D), gallery: (G, D), both L2-normalised (cosine = dot product). Ties in similarity
    are broken by gallery order (stable sort).
    """
    query, gallery = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
    query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    if len(query) == 0 or len(gallery) == 0:
        raise ValueError(f"retrieval needs queries and a gallery (got {len(query)} queries, {len(gallery)} gallery videos)")
    first_hit = np.empty(len(query), np.int64)
    step = max(1, QUERY_CELLS // len(gallery))  # queries at a time: memory stays ~QUERY_CELLS, not Q x G
    for q in range(0, len(query), step):
        sims = query[q:q + step] @ gallery.T  # (q, G)
        order = np.argsort(-sims, axis=1, kind="stable")
        hits = gallery_labels[order] == query_labels[q:q + step, None]  # rank r holds the query's class
        first_hit[q:q + step] = np.where(hits.any(axis=1), hits.argmax(axis=1), len(gallery))
    return first_hit


def topk_from_ranks(first_hit: np.ndarray, gallery_size: int, ks=DEFAULT_KS) -> dict[int, float]:
    """Top-k accuracy in percent, {k: acc}, from `first_hit_ranks`, each k capped at the gallery size.

    A k larger than the gallery is reported as its size (the key is the k actually used), so the
    result never claims a k that the gallery could not give.
    """
    return {k: float(100.0 * np.mean(np.asarray(first_hit) < k)) for k in sorted({min(int(k), gallery_size) for k in ks})}


def topk_accuracy(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray,
                  ks=DEFAULT_KS) -> dict[int, float]:
    """Retrieval top-k accuracy in percent, {k: acc}: `first_hit_ranks` then `topk_from_ranks`."""
    return topk_from_ranks(first_hit_ranks(query, query_labels, gallery, gallery_labels), len(gallery), ks)


# ---- the command -------------------------------------------------------------------------
@dataclass
class RetrievalConfig(FrozenEvalConfig):
    """`ascnet-eval retrieval`: test videos query train videos by cosine on mean clip features."""

    ks: tuple[int, ...] = DEFAULT_KS


def retrieval(cfg: RetrievalConfig) -> tuple[dict, str]:
    """Top-k retrieval accuracy per init; writes results in cfg.out. Returns (results, table)."""
    if not cfg.ks or min(cfg.ks) < 1:
        raise EvalError(f"ks={tuple(cfg.ks)}: k values must be positive integers, e.g. 1,5,10")
    splits = load_splits(cfg)
    rows = []
    for info, train, test, cached in frozen_features(cfg, splits):
        gallery = video_means(train.features, train.video_index, train.num_videos)
        query = video_means(test.features, test.video_index, test.num_videos)
        first_hit = first_hit_ranks(query, test.labels, gallery, train.labels)
        acc = topk_from_ranks(first_hit, len(gallery), cfg.ks)
        rows.append({
            "init": info.init, "arch": info.arch, "width": info.width,
            "metrics": {f"top{k}": v for k, v in acc.items()},
            "top1_hits": hits_string(first_hit < 1),
            "feature_dim": int(train.features.shape[1]), "features_cached": cached,
        })
    capped = sorted(k for k in cfg.ks if k > len(splits.train))
    results = {
        "command": "retrieval", "config": asdict(cfg), "rows": rows, "gallery_size": len(splits.train),
        "num_queries": len(splits.test), "ks_capped": capped,
    }
    out = Path(cfg.out)
    note = f" (k capped at the gallery size {len(splits.train)} for k = {capped})" if capped else ""
    table = write_results(out, results, f"Video retrieval: {cfg.test_split} queries a {cfg.train_split} gallery{note}")
    publish_results(out, results, {"topk": plot_topk(rows, out / "topk.png")})
    return results, table
