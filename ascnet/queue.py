"""The memory queue of target features and the appearance-based retrieval of SCP positives.

A FIFO of K entries `(appearance feature, speed feature, speed, video id, label)`, kept as buffers
so it lives in the state dict (checkpoints resume it exactly). For a query clip the SCP
positive is, among entries with the same speed and a different video, the one whose
appearance feature has the highest cosine with the query's appearance feature (DESIGN §1).
A query with no such entry (an empty or young queue) is marked invalid and left out of the
SCP loss for that step; the training loop logs the valid share.

The label (-1: none) never enters training. It is there for one diagnostic,
`same_label_share`: how often SCP's retrieved positive shows the query's action, the number
that says whether SCP can help on given data.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MemoryQueue(nn.Module):
    def __init__(self, size: int = 16384, dim: int = 128):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.size, self.dim = size, dim
        # appearance features are stored L2-normalised: retrieval is one matmul
        self.register_buffer("appearance", torch.zeros(size, dim))
        self.register_buffer("speed_feat", torch.zeros(size, dim))
        self.register_buffer("speed", torch.full((size,), -1, dtype=torch.long))  # -1: empty slot
        self.register_buffer("video", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("label", torch.full((size,), -1, dtype=torch.long))  # diagnostics only
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, appearance: torch.Tensor, speed_feat: torch.Tensor, speed: torch.Tensor, video: torch.Tensor,
             label: torch.Tensor | None = None) -> None:
        """Append N entries, overwriting the oldest. appearance, speed_feat: (N, D); speed, video,
        label: (N,) (label None: unknown, -1)."""
        n = appearance.shape[0]
        if label is None:
            label = torch.full((n,), -1, dtype=torch.long, device=speed.device)
        if n > self.size:  # only the newest K survive
            appearance, speed_feat, speed, video, label = (t[-self.size :] for t in (appearance, speed_feat, speed, video, label))
            n = self.size
        idx = (self.ptr + torch.arange(n, device=self.ptr.device)) % self.size
        self.appearance[idx] = F.normalize(appearance.float(), dim=1)
        self.speed_feat[idx] = speed_feat.float()
        self.speed[idx] = speed.long()
        self.video[idx] = video.long()
        self.label[idx] = label.long()
        self.ptr.copy_((self.ptr + n) % self.size)

    @torch.no_grad()
    def retrieve(self, appearance: torch.Tensor, speed: torch.Tensor, video: torch.Tensor):
        """SCP positives for N queries.

        appearance: (N, D) query appearance features; speed, video: (N,).
        Returns (positive speed features (N, D), valid (N,) bool, index (N,) long into the queue).
        Rows with valid False carry an arbitrary positive; mask them out (scp_loss does).
        """
        sim = F.normalize(appearance.float(), dim=1) @ self.appearance.T  # (N, K)
        allowed = (self.speed[None, :] == speed[:, None]) & (self.video[None, :] != video[:, None])
        allowed &= self.speed[None, :] >= 0
        sim = sim.masked_fill(~allowed, float("-inf"))
        index = sim.argmax(dim=1)
        return self.speed_feat[index], allowed.any(dim=1), index

    @torch.no_grad()
    def same_label_share(self, index: torch.Tensor, valid: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The share of valid queries whose retrieved positive (`index`, from `retrieve`) has the
        query's label, counting only pairs where both labels are known -> scalar; NaN (0/0) when
        none. No host sync: it runs inside the training step."""
        known = valid & (label >= 0) & (self.label[index] >= 0)
        same = (self.label[index] == label) & known
        return same.sum().float() / known.sum().float()
