"""Backbones and heads, in plain PyTorch.

`build_backbone(arch, width)` -> module with `feature_dim`; forward (B, 3, T, H, W) float ->
(B, feature_dim) pooled features. `width` is the base channel count (64 = published network).
"""
from __future__ import annotations

from typing import Literal, get_args

from torch import nn

Arch = Literal["r3d18", "r2plus1d18", "s3dg"]
ARCHS = get_args(Arch)


def build_backbone(arch: str, width: int = 64) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; allowed: {list(ARCHS)}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int (64 = the published network), got {width!r}")
    if arch == "r3d18":
        from ascnet.models.r3d import R3D18

        return R3D18(width)
    if arch == "r2plus1d18":
        from ascnet.models.r2plus1d import R2Plus1D18

        return R2Plus1D18(width)
    from ascnet.models.s3dg import S3DG

    return S3DG(width)


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
