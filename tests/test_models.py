"""Backbones: parameter counts against the published figures, output shapes, width."""
import pytest
import torch

from ascnet.models import build_backbone, num_parameters
from ascnet.models.r3d import R3D18
from ascnet.models.s3dg import PLAN, S3DG


pytestmark = pytest.mark.usefixtures("one_thread")


def fc(dim: int, classes: int = 400) -> int:
    return dim * classes + classes


def test_r3d18_matches_hara():
    # Hara et al. report 33.2 M for ResNet-18 (shortcut A, with its 400-way Kinetics fc);
    # the default shortcut B (1x1x1 projections) has 33.2 M in the backbone alone.
    assert num_parameters(R3D18(64, shortcut="A")) + fc(512) == 33_235_280
    assert num_parameters(build_backbone("r3d18")) == 33_203_904
    stem = build_backbone("r3d18", 8).stem[0]
    assert stem.kernel_size == (7, 7, 7) and stem.stride == (1, 2, 2)


def test_r2plus1d18_matches_torchvision():
    # torchvision's r2plus1d_18: 31,505,325 with its 400-way fc
    assert num_parameters(build_backbone("r2plus1d18")) + fc(512) == 31_505_325


def test_s3dg_layout_and_gating():
    # without gating and with a separable stem the layout is torchvision's S3D (8,320,048 with its
    # 1x1x1 400-way classifier)
    plain = S3DG(64, gating=False, separable_stem=True)
    assert num_parameters(plain) + fc(1024) == 8_320_048
    # gating adds one C x C map after Conv2c and after each of the 4 branches of every block
    gates = 192**2 + sum(b0**2 + b1b**2 + b2b**2 + b3**2 for b0, _, b1b, _, b2b, b3 in PLAN.values())
    assert num_parameters(S3DG(64, separable_stem=True)) - num_parameters(plain) == gates
    # the published S3D-G: a full 7x7x7 first convolution
    s3dg = build_backbone("s3dg")
    assert num_parameters(s3dg) == 9_157_024 and s3dg.feature_dim == 1024


@pytest.mark.parametrize("arch, dim", [("r3d18", 512), ("r2plus1d18", 512), ("s3dg", 1024)])
def test_feature_dim_at_published_width(arch, dim):
    assert build_backbone(arch).feature_dim == dim


@pytest.mark.parametrize("arch, shape, dim", [
    ("r3d18", (1, 3, 16, 112, 112), 64),
    ("r2plus1d18", (1, 3, 16, 112, 112), 64),
    ("s3dg", (1, 3, 16, 112, 112), 128),  # 64x224x224 is the published input; too slow for a CPU test
])
def test_output_shape_at_width_8(arch, shape, dim):
    torch.manual_seed(0)
    model = build_backbone(arch, width=8).eval()
    with torch.no_grad():
        y = model(torch.randn(shape))
    assert y.shape == (1, dim) == (1, model.feature_dim)
    assert torch.isfinite(y).all()


def test_shortcut_a_runs_and_has_no_projection():
    m = R3D18(8, shortcut="A")
    assert m(torch.randn(2, 3, 8, 32, 32)).shape == (2, 64)
    assert not any(isinstance(x, torch.nn.Conv3d) and x.kernel_size == (1, 1, 1) for x in m.modules())


def test_bad_arch_and_width_are_named():
    with pytest.raises(ValueError, match=r"unknown arch 'r50'; allowed: \['r3d18', 'r2plus1d18', 's3dg'\]"):
        build_backbone("r50")
    with pytest.raises(ValueError, match="width must be a positive int"):
        build_backbone("r3d18", 0)
    with pytest.raises(ValueError, match="shortcut must be 'A' or 'B'"):
        R3D18(8, shortcut="C")
