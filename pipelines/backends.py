"""Which decoder turns a manifest's videos into frames, decided once, here.

- `nvdec`:    `fn.decoders.video(device="mixed")` on the file's bytes with per-sample frame
              indices; H.264, HEVC, MPEG-4 Part 2, VP8/VP9, MJPEG; CUDA tensors out. Not AV1
              (Hopper's NVDEC has none) nor MPEG-2: the indexer calls such videos `ok`, since
              PyAV reads them, and nvdec refuses them here, naming the transcode.
- `dali-cpu`: `fn.decoders.video(device="cpu")` on the same bytes; DALI 2.4's CPU decoder
              takes only VP8, VP9 and MJPEG.
- `pyav`:     PyAV (libavcodec) inside `fn.external_source(parallel=True)` worker processes;
              any codec. Measured on a 2-core CPU it was the faster CPU path (DESIGN §2:
              17.8 pairs/s against 11.7 for DALI's own CPU VP9 decode), so `auto` picks it
              whenever the output stays on the CPU.

Every backend decodes exactly the indices that `ascnet.sampling` names, and hands them to
the same augmentation graph (`augment.py`).
"""
from __future__ import annotations

import logging
from typing import Iterable, Literal, get_args

from ascnet.optional import cuda_available, require_dali

log = logging.getLogger("ascnet.pipelines")

Backend = Literal["auto", "nvdec", "dali-cpu", "pyav"]
BACKENDS = get_args(Backend)
DEVICES = ("cpu", "cuda")
DALI_CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
NVDEC_CODECS = frozenset({"h264", "hevc", "mpeg4", "vp8", "vp9", "mjpeg"})
TRANSCODE = "re-index with --transcode {codec} --transcode-dir DIR (ascnet-index build)"


class BackendError(ValueError):
    """A backend/device choice that cannot work here; the message says what would."""


def choose_backend(backend: str, device: str, codecs: Iterable[str]) -> tuple[str, str]:
    """(backend, reason): the decoder to use for these codecs on this device.

    `auto` is nvdec for `device="cuda"`, else pyav. The choice is checked, the codecs before
    the machine: nvdec needs every codec in `NVDEC_CODECS`, `device="cuda"` and a CUDA GPU;
    dali-cpu needs every codec in VP8/VP9/MJPEG.
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend '{backend}'; allowed: {list(BACKENDS)}")
    if device not in DEVICES:
        raise BackendError(f"unknown device '{device}'; allowed: {list(DEVICES)}")
    codecs = sorted(set(codecs))
    if backend == "auto":
        if device == "cuda":
            backend, reason = "nvdec", "a CUDA GPU is present: NVDEC decodes and DALI augments on the GPU"
        else:
            reason = ("CPU output: PyAV in DALI worker processes takes every codec and was measured faster "
                      "than DALI's CPU decoder (VP8/VP9/MJPEG only)")
            backend = "pyav"
    else:
        reason = "asked for"
    if backend == "nvdec":
        if device != "cuda":
            raise BackendError("backend 'nvdec' decodes on the GPU and yields CUDA tensors: use device='cuda'")
        bad = [c for c in codecs if c not in NVDEC_CODECS]
        if bad:
            raise BackendError(f"NVDEC cannot decode codec(s) {bad}: {TRANSCODE.format(codec='h264')}, "
                               "or use backend='pyav'")
    if backend == "dali-cpu":
        bad = [c for c in codecs if c not in DALI_CPU_CODECS]
        if bad:
            raise BackendError(f"backend 'dali-cpu' decodes only {sorted(DALI_CPU_CODECS)}, the manifest has {bad}: "
                               f"{TRANSCODE.format(codec='vp9')}, or use backend='pyav'")
    require_dali()
    if device == "cuda" and not cuda_available():
        raise BackendError("device='cuda' but torch sees no CUDA GPU; use device='cpu'")
    log.info("decoder backend %s (%s) for codecs %s on %s", backend, reason, codecs, device)
    return backend, reason
