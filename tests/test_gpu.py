"""The GPU path (NVDEC): exact frame indices per codec, CUDA tensors straight from DALI,
batches that stay valid after the next one. Skipped only where no GPU is present; with
ASCNET_EXPECT_GPU=1 a missing GPU fails them instead (ascnet/bench/gpu_check.sh sets it)."""
import numpy as np
import pytest
import torch

from ascnet.clips import ClipSpec
from ascnet.clips import denormalize
from ascnet.pipelines.loader import build_eval_loader, build_pair_loader
from ascnet.sampling import eval_clips, sample_pair
from ascnet.bench.gpu_check import pattern_manifest
from ascnet.tools.synthetic import read_index

pytestmark = pytest.mark.gpu
T, CROP, N = 8, 32, 90
KINDS = ["h264", "h264-high-bframes", "hevc", "vp9", "mpeg4"]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Videos written with PyAV's encoders: the GPU machine needs no ffmpeg binary."""
    root = tmp_path_factory.mktemp("gpu")
    return {k: pattern_manifest(k, 4, N, 128, 96, folder=root / k) for k in KINDS}


def indices(clips: torch.Tensor) -> np.ndarray:
    x = denormalize(clips.cpu()).numpy()
    return np.array([[read_index(x[b, :, t], "CHW") for t in range(x.shape[2])] for b in range(x.shape[0])])


@pytest.mark.parametrize("kind", KINDS)
def test_nvdec_pairs_hold_exactly_the_sampled_frames(manifests, kind):
    with build_pair_loader(manifests[kind], ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=4, backend="nvdec", device="cuda", seed=3) as loader:
        batch = next(loader.epoch(0))
    assert batch["clip_a"].is_cuda and batch["clip_a"].shape == (4, 3, T, CROP, CROP)
    a, b = indices(batch["clip_a"]), indices(batch["clip_b"])
    for r, vi in enumerate(batch["video_index"].tolist()):
        p = sample_pair(vi, N, 25.0, seed=3, epoch=0, clip_len=T)
        assert a[r].tolist() == p.frames_a.tolist() and b[r].tolist() == p.frames_b.tolist()


def test_nvdec_eval_clips(manifests):
    loader = build_eval_loader(manifests["h264"], ClipSpec(clip_len=T, crop_size=CROP), split="train", batch_size=6, clips_per_video=3, backend="nvdec", device="cuda")
    rows = [b for b in loader]
    got = np.concatenate([indices(b["clips"]) for b in rows])
    ci = torch.cat([b["clip_index"] for b in rows]).tolist()
    assert got.tolist() == [eval_clips(N, T, 3)[c].tolist() for c in ci]


def test_batch_is_unchanged_after_the_next_one(manifests):
    with build_pair_loader(manifests["h264"], ClipSpec(clip_len=T, crop_size=CROP), batch_size=2, backend="nvdec", device="cuda") as L:
        it = L.epoch(0)
        first = next(it)
        keep = {k: v.clone() for k, v in first.items()}
        next(it)
        torch.cuda.synchronize()
    assert all(torch.equal(first[k], keep[k]) for k in keep)


def test_auto_picks_nvdec_and_matches_the_cpu_path(manifests):
    out = {}
    for backend, device in (("auto", "cuda"), ("pyav", "cpu")):
        with build_pair_loader(manifests["h264"], ClipSpec(clip_len=T, crop_size=CROP), batch_size=4, backend=backend, device=device, seed=5) as loader:
            if device == "cuda":
                assert loader.backend == "nvdec"
            out[backend] = next(loader.epoch(1))
    assert torch.equal(out["auto"]["video_index"], out["pyav"]["video_index"])
    # the same crops, flips and colours on both paths: only decoder/resize rounding differs
    assert (out["auto"]["clip_a"].cpu() - out["pyav"]["clip_a"]).abs().mean() < 0.1


def test_pyav_with_cuda_output_gives_cuda_clips(manifests):
    """The fallback where NVDEC is missing: PyAV decodes on the CPU, DALI augments on the GPU."""
    with build_pair_loader(manifests["h264"], ClipSpec(clip_len=T, crop_size=CROP, augment=False), batch_size=2, backend="pyav", device="cuda", seed=3) as loader:
        batch = next(loader.epoch(0))
        assert loader.frames_decoded > 0  # the CPU-side count came through
    assert batch["clip_a"].is_cuda and batch["clip_b"].is_cuda
    a = indices(batch["clip_a"])
    for r, vi in enumerate(batch["video_index"].tolist()):
        assert a[r].tolist() == sample_pair(vi, N, 25.0, seed=3, epoch=0, clip_len=T).frames_a.tolist()
