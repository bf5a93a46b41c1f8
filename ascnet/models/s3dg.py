"""S3D-G (Xie et al., ECCV 2018, "Rethinking spatiotemporal feature learning"), after the
authors' TF-slim definition.

Inception-v1 layout; every 3x3x3 convolution from Conv2c on is separable (1x3x3 then 3x1x1,
each with BN + ReLU); self-gating (sigmoid of a bias-free 1x1x1 map of the pooled feature,
multiplied in per channel) after Conv2c and after every inception branch. The first layer is a
full kxx7x7 convolution with stride 2 (k=7 in the paper; the TF code notes 3 also works).
Output: 1024-d pooled feature at the published width 64; `width` scales every channel count
by width/64. Typical input 64x224x224.

With `gating=False, separable_stem=True` this is torchvision's S3D (7,910,048 parameters
without its 400-way classifier), which the tests use to pin the layout.
"""
from __future__ import annotations

import torch
from torch import nn

from ascnet.models.r3d import init_weights


def conv_bn_relu(cin: int, cout: int, kernel, stride=1, padding=0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class SepConv(nn.Sequential):
    """k x k x k as 1 x k x k (stride in space) then k x 1 x 1 (stride in time)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0):
        super().__init__(
            conv_bn_relu(cin, cout, (1, k, k), (1, stride, stride), (0, padding, padding)),
            conv_bn_relu(cout, cout, (k, 1, 1), (stride, 1, 1), (padding, 0, 0)),
        )


class SelfGating(nn.Module):
    """x * sigmoid(W mean_{t,h,w}(x)), per channel; W is C x C without bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class Inception(nn.Module):
    def __init__(self, cin: int, b0: int, b1a: int, b1b: int, b2a: int, b2b: int, b3: int, gating: bool):
        super().__init__()
        self.branch0 = conv_bn_relu(cin, b0, 1)
        self.branch1 = nn.Sequential(conv_bn_relu(cin, b1a, 1), SepConv(b1a, b1b, 3, padding=1))
        self.branch2 = nn.Sequential(conv_bn_relu(cin, b2a, 1), SepConv(b2a, b2b, 3, padding=1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), conv_bn_relu(cin, b3, 1))
        outs = (b0, b1b, b2b, b3)
        self.gates = nn.ModuleList(SelfGating(c) if gating else nn.Identity() for c in outs)
        self.out_channels = sum(outs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch0, self.branch1, self.branch2, self.branch3)
        return torch.cat([g(b(x)) for b, g in zip(branches, self.gates)], dim=1)


# Inception-v1 channel plan: (b0, b1a, b1b, b2a, b2b, b3) per block
PLAN = {
    "3b": (64, 96, 128, 16, 32, 32), "3c": (128, 128, 192, 32, 96, 64),
    "4b": (192, 96, 208, 16, 48, 64), "4c": (160, 112, 224, 24, 64, 64), "4d": (128, 128, 256, 24, 64, 64),
    "4e": (112, 144, 288, 32, 64, 64), "4f": (256, 160, 320, 32, 128, 128),
    "5b": (256, 160, 320, 32, 128, 128), "5c": (384, 192, 384, 48, 128, 128),
}


class S3DG(nn.Module):
    """(B, 3, T, H, W) -> (B, 1024 * width / 64) pooled features."""

    def __init__(self, width: int = 64, gating: bool = True, first_temporal_kernel: int = 7, separable_stem: bool = False):
        super().__init__()
        d = lambda c: max(1, c * width // 64)  # noqa: E731
        k = first_temporal_kernel
        stem = SepConv(3, d(64), 7, stride=2, padding=3) if separable_stem else conv_bn_relu(
            3, d(64), (k, 7, 7), stride=2, padding=(k // 2, 3, 3)
        )
        self.stem = nn.Sequential(
            stem,
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            conv_bn_relu(d(64), d(64), 1),
            SepConv(d(64), d(192), 3, padding=1),
            SelfGating(d(192)) if gating else nn.Identity(),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        blocks, cin = [], d(192)
        for name, plan in PLAN.items():
            if name == "4b":
                blocks.append(nn.MaxPool3d(3, stride=2, padding=1))
            elif name == "5b":
                blocks.append(nn.MaxPool3d(2, stride=2))
            block = Inception(cin, *map(d, plan), gating=gating)
            blocks.append(block)
            cin = block.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = cin
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3, 4))
