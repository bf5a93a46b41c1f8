"""ASCNet (DESIGN §1): appearance consistency (ACP) and speed consistency (SCP), BYOL-style.

Online: encoder -> appearance head -> appearance predictor, and encoder -> speed head ->
speed predictor. Target: a momentum (EMA) copy of the encoder and both heads, no gradients.

    ACP: two clips of one video at different speeds; each online appearance prediction
         regresses the target appearance projection of the other clip.
    SCP: each online speed prediction regresses the target speed feature of a queued clip at
         the same speed from another video, the one with the most similar appearance
         (ascnet.queue.MemoryQueue.retrieve).
    L = L_acp + lambda * L_scp, both means over clips (ascnet.losses): lambda is SCP's weight
    relative to ACP per clip.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ascnet.losses import acp_loss, acp_margin, scp_loss, spread
from ascnet.models.heads import MLP


class ASCNet(nn.Module):
    def __init__(self, encoder: nn.Module, proj_dim: int = 128, hidden_dim: int = 2048):
        super().__init__()
        feat = encoder.feature_dim
        self.online_encoder = encoder
        self.online_appearance = MLP(feat, hidden_dim, proj_dim)
        self.online_speed = MLP(feat, hidden_dim, proj_dim)
        self.predictor_appearance = MLP(proj_dim, hidden_dim, proj_dim)
        self.predictor_speed = MLP(proj_dim, hidden_dim, proj_dim)
        self.target_encoder = copy.deepcopy(self.online_encoder)
        self.target_appearance = copy.deepcopy(self.online_appearance)
        self.target_speed = copy.deepcopy(self.online_speed)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        return [self.online_encoder, self.online_appearance, self.online_speed]

    def target_modules(self) -> list[nn.Module]:
        return [self.target_encoder, self.target_appearance, self.target_speed]

    def target_parameters(self):
        return [p for m in self.target_modules() for p in m.parameters()]

    def forward(self, clips: torch.Tensor):
        """clips: (N, 3, T, H, W), both clips of each pair stacked (N = 2B).

        Returns online appearance and speed predictions and target appearance and speed
        projections, each (N, proj_dim); the target outputs carry no graph.
        """
        h = self.online_encoder(clips)
        p_app = self.predictor_appearance(self.online_appearance(h))
        p_speed = self.predictor_speed(self.online_speed(h))
        with torch.no_grad():
            ht = self.target_encoder(clips)
            z_app, z_speed = self.target_appearance(ht), self.target_speed(ht)
        return p_app, p_speed, z_app, z_speed


@torch.no_grad()
def ema_update(online: nn.Module | list[nn.Module], target: nn.Module | list[nn.Module], m: float) -> None:
    """target <- m * target + (1 - m) * online, parameter by parameter (BN statistics are the
    target's own)."""
    online = online if isinstance(online, (list, tuple)) else [online]
    target = target if isinstance(target, (list, tuple)) else [target]
    src = [p for mod in online for p in mod.parameters()]
    dst = [p for mod in target for p in mod.parameters()]
    if len(src) != len(dst):
        raise ValueError(f"online and target differ: {len(src)} vs {len(dst)} parameter tensors")
    torch._foreach_lerp_(dst, src, 1.0 - m)


def ascnet_loss(outputs, queue, speed: torch.Tensor, video: torch.Tensor, scp_weight: float = 1.0,
                label: torch.Tensor | None = None) -> dict:
    """The ASCNet objective for one batch of pairs.

    outputs: ASCNet.forward on (2B, ...) clips, clip a of every pair first, then clip b;
    speed, video, label: (2B,) speeds, video ids and labels (-1 unknown; diagnostics only) in
    the same order.
    Returns loss, acp, scp (scalars), scp_valid (share of rows that found a positive) and the
    spread of the target appearance and speed projections (`losses.spread`: 1 healthy, 0 collapsed)
    and `acp_margin` (`losses.acp_margin`: about 0 while ACP matches nothing video-specific).
    With labels, also scp_pos_same_class: the share of SCP positives showing the query's label
    (`MemoryQueue.same_label_share`; NaN without labels).
    """
    p_app, p_speed, z_app, z_speed = (t.float() for t in outputs)
    p_a, p_b = p_app.chunk(2)
    z_a, z_b = z_app.chunk(2)
    acp = acp_loss(p_a, p_b, z_a, z_b)
    # the query's appearance is its target projection: the same space as the queued features
    positive, valid, index = queue.retrieve(z_app, speed, video)
    scp = scp_loss(p_speed, positive, valid)
    label = torch.full_like(video, -1) if label is None else label
    return {"loss": acp + scp_weight * scp, "acp": acp.detach(), "scp": scp.detach(), "scp_valid": valid.float().mean(),
            "app_spread": spread(z_app), "speed_spread": spread(z_speed), "acp_margin": acp_margin(p_a, p_b, z_a, z_b),
            "scp_pos_same_class": queue.same_label_share(index, valid, label)}
