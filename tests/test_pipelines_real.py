"""Real UCF-101 (Xvid), HMDB-51 (DivX) and Kinetics (H.264) clips through the CPU backends.

The reference is a plain PyAV pass over every frame in decode order; a backend must return
those frames for the indices the sampling names.
"""
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ascnet.clips import ClipSpec
from ascnet.manifest import Manifest
from ascnet.clips import MEAN, STD
from ascnet.pipelines.loader import build_eval_loader, build_pair_loader
from ascnet.pipelines.decode import decode_frames
from ascnet.sampling import eval_clips, sample_pair
from ascnet.tools.probe import probe
from ascnet.tools.transcode import scaled_size, transcode

CROP = 64


def all_frames(path: Path) -> np.ndarray:
    """(N, H, W, 3) uint8: every frame in decode order."""
    with av.open(str(path), metadata_errors="ignore") as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def probe_row(path: Path, root: Path, label: int, num_frames: int | None = None) -> dict:
    with av.open(str(path), metadata_errors="ignore") as c:
        s = c.streams.video[0]
        fps, name, w, h = float(s.average_rate), s.codec_context.name, s.codec_context.width, s.codec_context.height
    n = num_frames if num_frames is not None else len(all_frames(path))  # counted, as the indexer does
    rel = str(path.relative_to(root))
    return dict(video_id=rel, path=rel, label=label, label_name=path.parent.name, split="train", num_frames=n, fps=fps,
                width=w, height=h, codec=name, status="ok", keyframes=probe(path)["keyframes"])


@pytest.fixture(scope="module")
def real(real_clips) -> tuple[Manifest, dict]:
    files = sorted(real_clips.rglob("*.avi")) + sorted(real_clips.rglob("*.mp4"))
    assert len(files) == 9
    frames = {str(f.relative_to(real_clips)): all_frames(f) for f in files}
    rows = [probe_row(f, real_clips, i % 3, len(frames[str(f.relative_to(real_clips))])) for i, f in enumerate(files)]
    return Manifest.from_rows(rows, root=real_clips), frames


def reference_clip(frames: np.ndarray, crop: int) -> torch.Tensor:
    """(3, T, crop, crop): the centred square of the short side scaled to `crop` (antialiased bilinear,
    as swscale scales down), normalised: the pyav backend's augment=False view."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # T, 3, H, W
    h, w = x.shape[-2:]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    x = F.interpolate(x[..., y0:y0 + side, x0:x0 + side], size=(crop, crop), mode="bilinear", align_corners=False,
                      antialias=True) / 255
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    return x.permute(1, 0, 2, 3)


def test_codecs_are_the_real_mix(real):
    m, _ = real
    assert sorted(set(m.df.codec)) == ["h264", "mpeg4"]


def test_pyav_decode_matches_a_full_pass_on_every_real_clip(real):
    m, frames = real
    rng = np.random.default_rng(0)
    for _, r in m.df.iterrows():
        n = r.num_frames
        want = np.concatenate([rng.integers(0, n, 6), [n - 1, n // 2, 0]])
        got = decode_frames(str(m.resolve(r.path)), want, r.fps, r.keyframes)  # seeking where it can be trusted
        assert np.array_equal(got, frames[r.video_id][want]), r.path


def test_pyav_pairs_on_real_clips_hold_the_sampled_frames(real):
    m, frames = real
    rows = m.select("train").df
    with build_pair_loader(m, ClipSpec(clip_len=8, crop_size=CROP, augment=False), batch_size=3, backend="pyav", seed=2) as L:
        assert L.steps_per_epoch == 3
        for batch in L.epoch(0):
            for r, vi in enumerate(batch["video_index"].tolist()):
                row = rows.iloc[vi]
                p = sample_pair(vi, row.num_frames, row.fps, seed=2, epoch=0, clip_len=8)
                assert (int(batch["speed_a"][r]), int(batch["speed_b"][r])) == (p.speed_a, p.speed_b)
                for clip, idx in ((batch["clip_a"][r], p.frames_a), (batch["clip_b"][r], p.frames_b)):
                    ref = reference_clip(frames[row.video_id][idx], CROP)
                    assert (clip - ref).abs().mean() < 0.05, row.path  # resize rounding only


def test_pyav_pairs_with_augmentation_on_real_clips(real):
    m, _ = real
    with build_pair_loader(m, ClipSpec(clip_len=8, crop_size=CROP), batch_size=4, backend="pyav", seed=1) as L:
        batch = next(L.epoch(0))
    assert batch["clip_a"].shape == (4, 3, 8, CROP, CROP) and torch.isfinite(batch["clip_a"]).all()
    assert (batch["speed_a"] != batch["speed_b"]).all()
    assert batch["clip_a"].std() > 0.2


def test_dali_cpu_on_vp9_copies_matches_pyav(real, tmp_path):
    m, frames = real
    picks = [r for r in m.df.itertuples() if "g23" in r.path or "Turnk" in r.path or "R6ll" in r.path]
    assert len(picks) == 3  # one Xvid, one DivX, one H.264
    rows = []
    for r in picks:
        dst = transcode(m.resolve(r.path), tmp_path / Path(r.path).with_suffix(".webm").name, "vp9",
                        size=scaled_size(r.width, r.height, 96))
        row = probe_row(dst, tmp_path, r.label)
        assert row["num_frames"] == r.num_frames and row["codec"] == "vp9"  # the copy keeps every frame
        rows.append(row)
    vp9 = Manifest.from_rows(rows, root=tmp_path)
    out = {}
    for backend in ("dali-cpu", "pyav"):
        loader = build_eval_loader(vp9, ClipSpec(clip_len=8, crop_size=CROP), split="train", batch_size=6, clips_per_video=2, backend=backend)
        out[backend] = torch.cat([b["clips"] for b in loader])
    assert out["pyav"].shape == (6, 3, 8, CROP, CROP)
    assert (out["pyav"] - out["dali-cpu"]).abs().mean() < 0.05  # a few levels of RGB conversion difference
    # and both hold the frames of the original at the evenly spaced clips
    for i, r in enumerate(picks):
        for c in range(2):
            ref = reference_clip(frames[r.video_id][eval_clips(r.num_frames, 8, 2)[c]], CROP)
            assert (out["pyav"][2 * i + c] - ref).abs().mean() < 0.15, r.path  # VP9 re-encoding loss at 96p
