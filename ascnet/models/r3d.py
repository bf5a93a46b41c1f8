"""3D-ResNet-18, the Hara et al. variant (CVPR 2018, "Can spatiotemporal 3D CNNs retrace the
history of 2D CNNs and ImageNet?").

Stem: one 7x7x7 convolution, stride (1, 2, 2), then a 3x3x3 max-pool with stride 2 in time
and space; four stages of two basic blocks (3x3x3 convolutions) with `width`, 2w, 4w, 8w
channels; stages 2-4 halve time and space. Global average pooling gives an 8w-d feature
(512-d at the published width 64).

Shortcuts where the shape changes: "B" (1x1x1 convolution + BN, the default of the authors'
later code and of most released weights) or "A" (parameter-free: stride, then zero-pad the
new channels; what the paper used for ResNet-18, 33.2 M parameters with its 400-way fc).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut "A": subsample by `stride`, zero-pad the extra channels (no parameters)."""

    def __init__(self, cout: int, stride: int):
        super().__init__()
        self.cout, self.stride = cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.cout - x.shape[1]))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1, self.bn1 = conv3x3x3(cin, cout, stride), nn.BatchNorm3d(cout)
        self.conv2, self.bn2 = conv3x3x3(cout, cout), nn.BatchNorm3d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            if shortcut == "A":
                self.downsample = ZeroPadShortcut(cout, stride)
            else:
                self.downsample = nn.Sequential(
                    nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(cout)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity, inplace=True)


class R3D18(nn.Module):
    """(B, 3, T, H, W) -> (B, 8*width) pooled features."""

    def __init__(self, width: int = 64, shortcut: str = "B"):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        w = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(
            nn.Conv3d(3, w[0], kernel_size=7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(w[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
        )
        layers, cin = [], w[0]
        for i, cout in enumerate(w):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride, shortcut), BasicBlock(cout, cout, 1, shortcut)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.feature_dim = w[3]
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions (fan-out), unit BN: the usual ResNet initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
