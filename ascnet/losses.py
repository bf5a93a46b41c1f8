"""ACP and SCP losses (DESIGN §1) as pure tensor functions, with thin module wrappers.

Both are BYOL's normalised regression, `2 - 2 cos(p, sg(z))`: the target side is detached,
so gradients reach only the online network. Both are means over clips, each in [0, 4]: in
L = L_acp + lambda * L_scp, lambda is SCP's weight relative to ACP per clip. (ACP's two
directions were once summed per pair, range [0, 8], which made lambda = 1 weigh SCP half as
much as ACP per clip; checkpoints from then are refused on resume, see `OBJECTIVE`.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# the loss normalisation a pretraining checkpoint was written under; resume refuses any other
OBJECTIVE = "per-clip"


def regression(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(N, D), (N, D) -> (N,): 2 - 2 cos(p_i, sg(z_i))."""
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)


def acp_loss(p_a: torch.Tensor, p_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Appearance consistency, symmetrised over the two clips of each video -> scalar.

    p_a, p_b: (B, D) online appearance predictions of clip a / clip b (same video, two speeds);
    z_a, z_b: (B, D) target appearance projections of the same clips.
    The mean over the 2B clips of each clip's regression on the other clip's target:
    mean_i [ (2 - 2 cos(p_a_i, z_b_i)) + (2 - 2 cos(p_b_i, z_a_i)) ] / 2, range [0, 4], the same
    per-clip footing as `scp_loss`.
    """
    return (regression(p_a, z_b) + regression(p_b, z_a)).mean() / 2


def scp_loss(q: torch.Tensor, k: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Speed consistency against retrieved positives -> scalar.

    q: (N, D) online speed predictions; k: (N, D) speed features of each row's positive (same
    speed, another video) from the memory queue; valid: (N,) bool, False where the queue held
    no candidate. Mean of 2 - 2 cos(q_i, k_i) over valid rows; 0 (still connected to q, so
    every parameter gets a gradient) when no row is valid.
    """
    per_row = regression(q, k) * valid.to(q.dtype)
    return per_row.sum() / valid.sum().clamp(min=1)


def spread(z: torch.Tensor) -> torch.Tensor:
    """(N, D) -> scalar: how far a batch of outputs is from collapse.

    The per-dimension std of the L2-normalised rows, averaged over dimensions and scaled by
    sqrt(D): about 1 for outputs spread evenly over the sphere, 0 when every row is the same
    (SimSiam's collapse monitor). BYOL-style objectives have no negatives, so this is the number
    to watch: a run whose spread falls towards 0 is learning a constant.
    """
    z = F.normalize(z.detach().float(), dim=1)
    return z.std(dim=0).mean() * z.shape[1] ** 0.5


def acp_margin(p_a: torch.Tensor, p_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """How much better ACP matches a clip to its own video than to another one -> scalar.

    The ACP loss against mismatched pairs (each clip's target taken from the next video of the
    batch) minus the ACP loss against the true pairs. About 0 when the predictions fit every
    target alike: the loss then falls only because the predictions point where all targets
    point, and ACP has learned nothing that the two clips of one video share (the spread can
    still look healthy). It grows as ACP learns what is particular to a video. 0 for a batch of
    one video. No gradient.
    """
    if p_a.shape[0] < 2:
        return p_a.new_zeros(())
    p_a, p_b, z_a, z_b = (t.detach() for t in (p_a, p_b, z_a, z_b))
    other = lambda z: torch.roll(z, 1, dims=0)  # noqa: E731  video i against video i-1
    return acp_loss(p_a, p_b, other(z_a), other(z_b)) - acp_loss(p_a, p_b, z_a, z_b)


class ACPLoss(nn.Module):
    def forward(self, p_a, p_b, z_a, z_b):
        return acp_loss(p_a, p_b, z_a, z_b)


class SCPLoss(nn.Module):
    def forward(self, q, k, valid):
        return scp_loss(q, k, valid)
