"""What a training or evaluation process runs on: the device, its rank among the processes
under torchrun, and the plumbing both pretraining and fine-tuning use: DDP set-up, gathering,
a stop agreed by every rank, signals, autocast and the RNG state of a checkpoint.

One process or many under `torchrun` (DDP: NCCL on GPU, gloo on CPU); WORLD_SIZE, LOCAL_RANK
come from the environment torchrun sets.
"""
from __future__ import annotations

import os
import random
import signal
import threading
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


class DeviceError(ValueError):
    """A device that is not there or not known; the message names the option and the fix."""


def resolve_device(device: str) -> torch.device:
    """"auto" (cuda when torch sees a GPU), "cpu" or "cuda" -> the torch device, or a DeviceError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device '{device}'; allowed: ['auto', 'cpu', 'cuda']")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(device)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; float32 (no autocast) on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        return autocast(self.device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module a step runs: DistributedDataParallel under torchrun, the model itself otherwise."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)


def setup_runtime(device: str) -> Runtime:
    """The device (`resolve_device`) and, under torchrun, the process group and this rank."""
    want = resolve_device(device).type
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if want == "cuda":
        torch.cuda.set_device(local)
        return Runtime(torch.device("cuda", local), rank, world)
    return Runtime(torch.device("cpu"), rank, world)


def gather(rt: Runtime, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Concatenate each tensor over ranks (rank order), so every rank holds the same rows."""
    if rt.world == 1:
        return list(tensors)
    out = []
    for t in tensors:
        parts = [torch.empty_like(t) for _ in range(rt.world)]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.cat(parts))
    return out


def agreed_stop(rt: Runtime, signum: int) -> int:
    """Under DDP every rank must stop at the same step: the max of the ranks' signals (0: none)."""
    if rt.world == 1:
        return signum
    t = torch.tensor([signum], device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


class StopRequest:
    """SIGTERM/SIGINT set a flag (`signum`); the loop checkpoints and returns at the next step."""

    def __init__(self):
        self.signum = 0
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self.previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


def rng_state() -> dict:
    """torch, python, numpy (and CUDA) RNG state, as a checkpoint stores it (tensors, weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
