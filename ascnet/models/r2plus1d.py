"""R(2+1)D-18 (Tran et al., CVPR 2018, "A closer look at spatiotemporal convolutions").

Every 3x3x3 convolution of an 18-layer 3D ResNet is factorised into a 1x3x3 spatial and a
3x1x1 temporal convolution with BN + ReLU between them; the number of intermediate channels
`M = floor(t*d^2*Nin*Nout / (d^2*Nin + t*Nout))` (the paper's formula, computed once per
block from its input and output widths, as torchvision's reference does). Stem: 1x7x7 (3 -> 45, stride (1, 2, 2)) then 3x1x1
(45 -> width); no max-pool; stages 2-4 halve time and space; 8w-d pooled feature.
At width 64 this is 31,300,125 parameters without a classifier (31,505,325 with a 400-way fc,
the figure of torchvision's r2plus1d_18).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ascnet.models.r3d import init_weights


def midplanes(cin: int, cout: int) -> int:
    return (cin * cout * 3 * 3 * 3) // (cin * 3 * 3 + 3 * cout)


class Conv2Plus1D(nn.Sequential):
    def __init__(self, cin: int, cout: int, mid: int, stride: int = 1):
        super().__init__(
            nn.Conv3d(cin, mid, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, kernel_size=(3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        mid = midplanes(cin, cout)  # one M per block, for both of its convolutions
        self.conv1, self.bn1 = Conv2Plus1D(cin, cout, mid, stride), nn.BatchNorm3d(cout)
        self.conv2, self.bn2 = Conv2Plus1D(cout, cout, mid), nn.BatchNorm3d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity, inplace=True)


class R2Plus1D18(nn.Module):
    """(B, 3, T, H, W) -> (B, 8*width) pooled features."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        stem_mid = max(1, round(45 * width / 64))
        self.stem = nn.Sequential(
            nn.Conv3d(3, stem_mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, w[0], kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(w[0]),
            nn.ReLU(inplace=True),
        )
        layers, cin = [], w[0]
        for i, cout in enumerate(w):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_dim = w[3]
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))
