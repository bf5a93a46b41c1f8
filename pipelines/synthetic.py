"""Random clip pairs with the TrainLoader interface: the compute path without any video, for
tests, smoke runs and the training-step benchmark. Torch only."""
from __future__ import annotations

import torch

from ascnet.clips import ClipSpec


class SyntheticPairs:
    """Batches like `build_pair_loader`'s (clip_a, clip_b, speed_a, speed_b, video_index, label -1),
    random, deterministic in (seed, epoch, step, shard)."""

    backend = "synthetic"

    def __init__(self, clip: ClipSpec, *, batch_size: int, num_videos: int = 64, steps_per_epoch: int = 8,
                 seed: int = 0, shard_id: int = 0, num_shards: int = 1):
        self.clip, self.batch_size, self.num_videos, self.steps_per_epoch = clip, batch_size, num_videos, steps_per_epoch
        self.seed, self.shard_id, self.num_shards = seed, shard_id, num_shards

    def epoch(self, epoch: int, start_step: int = 0):
        c, b = self.clip, self.batch_size
        shape = (b, 3, c.clip_len, c.crop_size, c.crop_size)
        for step in range(start_step, self.steps_per_epoch):
            g = torch.Generator().manual_seed(((self.seed * 1000 + epoch) * 100_000 + step) * 64 + self.shard_id)
            pick = torch.stack([torch.randperm(len(c.speeds), generator=g)[:2] for _ in range(b)])
            speeds = torch.tensor(c.speeds)[pick]
            yield {
                "clip_a": torch.randn(shape, generator=g),
                "clip_b": torch.randn(shape, generator=g),
                "speed_a": speeds[:, 0],
                "speed_b": speeds[:, 1],
                "video_index": torch.randint(0, self.num_videos, (b,), generator=g),
                "label": torch.full((b,), -1, dtype=torch.long),
            }

    def close(self):
        pass
