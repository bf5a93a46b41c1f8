"""Optional heavy dependencies, probed once."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except Exception:
        return False
    return True


def require_dali():
    """Import DALI or raise an error that says how to install it."""
    if not dali_available():
        raise ImportError(
            "NVIDIA DALI is required for this part of ascnet but is not installed: "
            "pip install 'ascnet[dali]' (CUDA 12 drivers) or 'ascnet[dali-cuda130]' (CUDA 13)"
        )
    import nvidia.dali

    return nvidia.dali


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    try:
        import torch
    except Exception:
        return False
    return torch.cuda.is_available()
