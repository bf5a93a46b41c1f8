"""The training graph: clip pairs for pretraining, single clips for fine-tuning.

One `@pipeline_def` for both: each sample is one video's `clips` clips of `clip_len` frames,
decoded in ONE call (one frames list, clip after clip, then split), each clip augmented on
its own by the shared decisions of `augment.py`. Outputs: clip_0 [, clip_1] as (3, T, crop, crop)
float32 per sample, then for the pyav backend its report: info (int32: frames decoded, the video
used, its speeds, the videos that failed) and their messages (see `decode.PyAVSource`).
"""
from __future__ import annotations

from nvidia.dali import fn, pipeline_def

from ascnet.pipelines.augment import augment_clip


def decoded_frames(source, backend: str, device: str, with_aug: bool):
    """DALI graph -> (frames (k*T, H, W, 3) uint8 on the output device, aug (k, 9) or None, report or ()).

    pyav: the clips arrive decoded, cut and coloured from worker processes (`decode.PyAVSource`;
    `report` = its info and messages outputs: frames decoded, the video used, failures). nvdec / dali-cpu: the
    source gives the file's bytes, the pair's distinct frame indices in increasing order and
    the order that rebuilds the clips from them: the decoder reads each frame once (a repeated
    index would make it seek back and decode again) and `sequence_rearrange` restores the clips.
    pad_mode="none" makes an index past the end an error, not a black frame (the sampler
    already edge-pads short videos itself).
    """
    if backend == "pyav":
        n = 4 if with_aug else 3
        outs = fn.external_source(source=source, num_outputs=n, batch=False, parallel=True, layout=["FHWC"] + [""] * (n - 1))
        # a parallel source's output returned as is can be corrupted (DALI 2.1.1): copied
        frames, report = outs[0], (fn.copy(outs[-2]), fn.copy(outs[-1]))
        aug = outs[1] if with_aug else None
    else:
        n = 4 if with_aug else 3
        outs = fn.external_source(source=source, num_outputs=n, batch=False, parallel=True)
        frames = fn.decoders.video(outs[0], device="mixed" if backend == "nvdec" else "cpu", frames=outs[1], pad_mode="none")
        frames = fn.sequence_rearrange(frames, new_order=outs[2])
        aug, report = (outs[3] if with_aug else None), ()
    if device == "cuda" and backend != "nvdec":
        frames = frames.gpu()  # aug stays on the CPU: DALI takes argument inputs from host memory
    return frames, aug, report


@pipeline_def
def clip_pipeline(source, backend: str, device: str, clips: int, clip_len: int, crop_size: int, augment: bool):
    frames, aug, report = decoded_frames(source, backend, device, with_aug=augment)
    outs = [augment_clip(frames[k * clip_len:(k + 1) * clip_len], aug[k] if augment else None, crop_size=crop_size,
                         augment=augment, cut=backend == "pyav")
            for k in range(clips)]
    return (*outs, *report)
