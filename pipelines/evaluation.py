"""The evaluation pipeline: each sample is one speed-1 clip of one video, cut into its crops.

Output per sample: (K, 3, T, crop, crop) float32 (K = 1 center, 3 three, 10 ten), then the
pyav backend's report (info, messages: `decode.PyAVSource`); its workers already scaled the
frames to the crops' short side.
"""
from __future__ import annotations

from nvidia.dali import pipeline_def

from ascnet.pipelines.augment import eval_crops
from ascnet.pipelines.train import decoded_frames


@pipeline_def
def eval_pipeline(source, backend: str, device: str, crop_size: int, crops: str):
    frames, _, report = decoded_frames(source, backend, device, with_aug=False)
    views = eval_crops(frames, crop_size=crop_size, crops=crops, resized=backend == "pyav")
    return (views, *report)
