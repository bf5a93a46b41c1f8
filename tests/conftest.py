import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real dataset excerpts live beside the checkout (never inside it); override with ASCNET_REAL_CLIPS.
REAL_CLIPS = Path(os.environ.get("ASCNET_REAL_CLIPS", REPO.parent / "shared" / "data" / "real-clips"))


@pytest.fixture(scope="session")
def real_clips() -> Path:
    if not (REAL_CLIPS / "ucf101").is_dir():
        pytest.skip(f"real dataset excerpts not found at {REAL_CLIPS} (set ASCNET_REAL_CLIPS to their folder)")
    return REAL_CLIPS


@pytest.fixture
def one_thread():
    """One intra-op torch thread: tiny models only lose to threading overhead on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gpu_expected() -> bool:
    return os.environ.get("ASCNET_EXPECT_GPU", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    """GPU tests skip only where no GPU is present, and fail instead when ASCNET_EXPECT_GPU=1."""
    from ascnet.optional import cuda_available, dali_available

    have_gpu = cuda_available() and dali_available()
    if have_gpu or gpu_expected():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU with DALI here (set ASCNET_EXPECT_GPU=1 to make this a failure)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
