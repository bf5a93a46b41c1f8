"""Pure schedules: learning rate (linear warm-up, then cosine), EMA momentum (cosine to 1) and SCP's weight."""
from __future__ import annotations

import math


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, final_ratio: float = 1e-3) -> float:
    """lr at `step` (0-based): linear from base_lr/warmup_steps up to base_lr over the warm-up,
    then cosine from base_lr down to base_lr*final_ratio at the last step."""
    if total_steps < 1 or not 0 <= warmup_steps < max(total_steps, 1) + 1:
        raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}) and total_steps >= 1")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - 1 - warmup_steps, 1)
    t = min((step - warmup_steps) / span, 1.0)
    final = base_lr * final_ratio
    return final + (base_lr - final) * 0.5 * (1 + math.cos(math.pi * t))


def ema_momentum(step: int, total_steps: int, base: float = 0.99, final: float = 1.0) -> float:
    """BYOL's schedule: base at step 0, cosine-annealed to `final` at the last step."""
    return cosine_between(step, total_steps, base, final)


def scp_weight_at(step: int, total_steps: int, weight: float, final_ratio: float = 1.0, start: int = 0) -> float:
    """lambda at `step`: 0 before `start`, then cosine from `weight` down to weight x final_ratio
    at the last step (final_ratio 1: constant)."""
    return 0.0 if step < start else cosine_between(step, total_steps, weight, weight * final_ratio)


def cosine_between(step: int, total_steps: int, first: float, last: float) -> float:
    """`first` at step 0, cosine-annealed to `last` at the last step (and held there after it)."""
    t = min(step / max(total_steps - 1, 1), 1.0)
    return last - (last - first) * 0.5 * (1 + math.cos(math.pi * t))


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int = 64) -> float:
    """The linear scaling rule of DESIGN §1: lr = base_lr * global_batch / 64."""
    return base_lr * global_batch / reference_batch
