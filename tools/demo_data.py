"""The embedded demo dataset: real handwritten digits in motion, labelled by the motion.

Each video is a small canvas (64x64 by default) with a textured random background and one or
two upscaled digit sprites from scikit-learn's bundled copy of the UCI handwritten digits
(`sklearn.datasets.load_digits`, no download). The class is the *motion* (left, right, up,
down, circle clockwise, circle counter-clockwise); speed, start point and phase are random per
video.

By default a video keeps one appearance (digit, colour, size, background) for its whole
length, as a real video keeps its scene: the two clips ASCNet's appearance consistency pulls
together share it, and share the motion. With `redraw_every=N` the digit, its colour and size and
the background are drawn anew every N frames (the first change at a random frame) and, with
`jump`, the sprite goes on along its kind of path from a random point of the canvas, so that two
clips of a video share only the motion. That sounds like the cleaner test, but it leaves ACP
nothing it can start from: in short runs its loss then falls just as far for mismatched pairs as
for true ones (`ascnet.losses.acp_margin` stays at 0). The digit of each video (of its first
segment, with re-draws) is recorded beside the videos (`digits.csv`), so appearance can be
probed too.

Written in the UCF-101 layout (`<Class>/v_<Class>_gNN_cNN.webm`, `classInd.txt`,
`trainlist01.txt`, `testlist01.txt`) so `ascnet-index build --layout ucf101` reads it as it
reads UCF-101. Encoded with ffmpeg (VP9 by default: DALI's CPU decoder takes it; H.264 for
NVDEC-only set-ups). Deterministic for a seed; a second call with the same parameters reuses
the files (`demo_data.json` holds the parameters they were made with).
"""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import click
import numpy as np

# motion -> UCF-style class folder name; the class index is the position here (1-based on disk).
# The classes are directions: a horizontal flip turns left into right and clockwise into
# counter-clockwise, so the demo pretrains with flip_p = 0 (a flip would teach the encoder to
# ignore the very difference the classes are about).
MOTIONS = {
    "left": "MoveLeft",
    "right": "MoveRight",
    "up": "MoveUp",
    "down": "MoveDown",
    "clockwise": "CircleClockwise",
    "counterclockwise": "CircleCounterclockwise",
}
CODECS = {
    "vp9": (".webm", {"vcodec": "libvpx-vp9", "deadline": "realtime", "cpu-used": 8, "crf": 24, "b:v": 0}),
    "h264": (".mp4", {"vcodec": "libx264", "preset": "ultrafast", "tune": "fastdecode", "crf": 18, "bf": 0}),
}
# background texture families, one per class: (orientation band, period band) of the grating.
# Three 60-degree orientation bands x two period bands tile the whole range a background draws
# from, so a background of a random family is a background as drawn without families
FAMILIES = [(k % 3, k // 3) for k in range(len(MOTIONS))]
GRATING_CONTRAST = 0.04  # the grating's amplitude on 0..1 grey levels: low, so the digit is the strongest signal
STAMP = "demo_data.json"
GENERATOR_VERSION = 6


@dataclass
class DemoDataConfig:
    out: str
    num_videos: int = 300
    size: int = 64            # square canvas, pixels
    min_frames: int = 64      # frames per video drawn uniformly in [min_frames, max_frames]
    max_frames: int = 96
    fps: float = 25.0
    sprites: int = 1          # digits per video (1 or 2), moving together
    redraw_every: int = 0     # frames between re-draws of digit, colour, size and background; 0 = never
    scene_correlation: float = 0.0  # chance that a background comes from its class's texture family
    grating_contrast: float = GRATING_CONTRAST  # the background grating's amplitude: how strong the texture (family) cue is
    jump: bool = True         # at each re-draw the path goes on from a random point of the canvas
    speed_range: tuple[float, float] = (0.04, 0.08)  # sprite speed per frame, as fractions of the canvas side
    test_fraction: float = 0.3
    codec: str = "vp9"
    gop: int = 16             # keyframe interval: short, so a random clip costs little seeking
    seed: int = 0
    workers: int = 2

    def check(self) -> None:
        if self.codec not in CODECS:
            raise click.BadParameter(f"codec '{self.codec}' is not one of {sorted(CODECS)}", param_hint="codec")
        if self.num_videos < 2 * len(MOTIONS):
            raise click.BadParameter(
                f"num_videos={self.num_videos}: need at least {2 * len(MOTIONS)} (two per class, one train, one test)",
                param_hint="num_videos",
            )
        if not 16 <= self.size <= 512:
            raise click.BadParameter(f"size={self.size}: use 16..512 pixels", param_hint="size")
        if not 2 <= self.min_frames <= self.max_frames:
            raise click.BadParameter(
                f"frames {self.min_frames}..{self.max_frames}: need 2 <= min_frames <= max_frames",
                param_hint="min_frames",
            )
        if self.redraw_every < 0:
            raise click.BadParameter(f"redraw_every={self.redraw_every}: use 0 (never) or a number of frames", param_hint="redraw_every")
        lo, hi = self.speed_range
        if not 0 < lo <= hi:
            raise click.BadParameter(f"speed_range={self.speed_range}: need 0 < min <= max (fractions of the canvas per frame)",
                                     param_hint="speed_range")
        if self.sprites not in (1, 2):
            raise click.BadParameter(f"sprites={self.sprites}: use 1 or 2", param_hint="sprites")
        if not 0.0 <= self.grating_contrast <= 0.5:
            raise click.BadParameter(f"grating_contrast={self.grating_contrast}: use 0..0.5 (grey levels 0..1)",
                                     param_hint="grating_contrast")
        if not 0.0 <= self.scene_correlation <= 1.0:
            raise click.BadParameter(f"scene_correlation={self.scene_correlation}: use a probability in [0, 1]",
                                     param_hint="scene_correlation")
        if not 0.0 < self.test_fraction < 1.0:
            raise click.BadParameter(f"test_fraction={self.test_fraction}: use a value in (0, 1)", param_hint="test_fraction")

    def identity(self) -> dict:
        """The parameters that determine the files (not where they go or how many processes)."""
        d = asdict(self)
        d.pop("out")
        d.pop("workers")
        if not d["scene_correlation"]:
            d.pop("scene_correlation")  # p = 0: the data as it was before the option, under the same stamp
        if d["grating_contrast"] == GRATING_CONTRAST:
            d.pop("grating_contrast")
        return json.loads(json.dumps({"generator_version": GENERATOR_VERSION, **d}))  # as the stamp reads back (lists)


# ---- drawing (pure numpy, (H, W, 3) float32 in [0, 1]) --------------------------------------
def _upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of an (h0, w0, C) array to (h, w, C), corners aligned."""
    h0, w0 = grid.shape[:2]
    ys, xs = np.linspace(0, h0 - 1, h), np.linspace(0, w0 - 1, w)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h0 - 1), np.minimum(x0 + 1, w0 - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
    bot = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def grating_of(theta: float, period: float, family: int | None) -> tuple[float, float]:
    """A grating drawn uniformly (theta in [0, pi), period in [4, 12)) moved into `family`'s
    bands (None: left as drawn): the same draws give a uniform pick within the family."""
    if family is None:
        return theta, period
    band_theta, band_period = FAMILIES[family]
    return (theta % (math.pi / 3)) + band_theta * math.pi / 3, 4 + (period - 4) % 4 + 4 * band_period


def family_of(theta: float, period: float) -> int:
    """The texture family whose bands hold a grating (the inverse of `grating_of`)."""
    return FAMILIES.index((min(int(theta // (math.pi / 3)), 2), min(int((period - 4) // 4), 1)))


def background(rng: np.random.Generator, size: int, family: int | None = None,
               contrast: float = GRATING_CONTRAST) -> np.ndarray:
    """A smooth random colour field with a grating (of `family`'s bands, or any; amplitude
    `contrast`) and fine noise over it."""
    # low contrast on purpose: the moving digit, not the texture, should be the strongest signal
    grey = rng.uniform(0.15, 0.45, (4, 4, 1)) + rng.uniform(-0.05, 0.05, (4, 4, 3))  # mostly grey, a faint tint
    field = _upsample(grey, size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta, period = grating_of(rng.uniform(0, math.pi), rng.uniform(4, 12), family)
    grating = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + rng.uniform(0, 2 * math.pi))
    noise = _upsample(rng.normal(0, 1, (size // 2, size // 2, 1)), size, size)
    tex = contrast * grating[..., None] + 0.02 * noise
    return np.clip(field + tex, 0, 1).astype(np.float32)


def _shift(layer: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Translate an (H, W, C) layer by a sub-pixel amount, wrapping around (a torus)."""
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    out = np.zeros_like(layer)
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            if wy * wx > 0:
                out += wy * wx * np.roll(layer, (iy + oy, ix + ox), axis=(0, 1))
    return out


def trajectory(motion: str, num_frames: int, speed: float, phase: float, radius: float, centre: tuple) -> np.ndarray:
    """(num_frames, 2) sprite offsets (dy, dx) in pixels for one motion (a key of MOTIONS); y points down.

    `speed` is in pixels per frame; a circle of `radius` around `centre` starts at angle `phase`.
    """
    t = np.arange(num_frames, dtype=np.float64)
    cy, cx = centre
    if motion in ("clockwise", "counterclockwise"):
        # on screen (y down) an increasing angle turns clockwise
        sense = 1 if motion == "clockwise" else -1
        angle = phase + sense * (speed / radius) * t
        return np.stack([cy + radius * np.sin(angle), cx + radius * np.cos(angle)], axis=1)
    step = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}[motion]
    return np.stack([cy + step[0] * speed * t, cx + step[1] * speed * t], axis=1)


def _sprite_layers(seg: dict, size: int) -> list:
    """(alpha (H, W, 1) centred on (0, 0), colour (3,), offset (2,)) per sprite of one segment."""
    layers = []
    side = int(round(8 * seg["scale"]))
    for img, colour, off in zip(seg["digits_img"], seg["colours"], seg["offsets"]):
        # the digit, upscaled, as an alpha mask centred on a canvas-sized layer
        alpha = _upsample(np.asarray(img, np.float32).reshape(8, 8, 1) / 16.0, side, side)[..., 0]
        a = np.zeros((size, size), np.float32)
        o = (size - side) // 2
        a[o : o + side, o : o + side] = alpha
        a = np.roll(a, (-size // 2, -size // 2), axis=(0, 1))  # sprite centre at (0, 0)
        layers.append((a[..., None], np.asarray(colour, np.float32), np.asarray(off)))
    return layers


def render_video(spec: dict) -> np.ndarray:
    """(T, H, W, 3) uint8 frames for one video spec (see `video_specs`).

    Segment k covers frames segments[k]["start"] .. segments[k+1]["start"]-1 and has its own
    background (from its seed), digits, colours and size; the path runs on across segments,
    shifted by the segment's `shift` (a random jump, or none).
    """
    size, T = spec["size"], spec["num_frames"]
    path = trajectory(spec["motion"], T, spec["speed"], spec["phase"], spec["radius"], spec["centre"])
    frames = np.empty((T, size, size, 3), np.uint8)
    segs = spec["segments"]
    for k, seg in enumerate(segs):
        bg = background(np.random.default_rng(seg["seed"]), size, seg.get("family"), spec.get("contrast", GRATING_CONTRAST))
        layers = _sprite_layers(seg, size)
        end = segs[k + 1]["start"] if k + 1 < len(segs) else T
        sy, sx = seg["shift"]
        for t in range(seg["start"], end):
            f = bg.copy()
            for a, colour, off in layers:
                m = _shift(a, path[t, 0] + off[0] + sy, path[t, 1] + off[1] + sx)
                f = f * (1 - m) + colour * m
            frames[t] = np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8)
    return frames


def segment_starts(num_frames: int, redraw_every: int, first: int) -> list[int]:
    """First frame of each appearance segment: 0, then `first`, first + redraw_every, ..."""
    if redraw_every <= 0:
        return [0]
    return [0] + list(range(first, num_frames, redraw_every))


def video_specs(cfg: DemoDataConfig) -> list[dict]:
    """Everything random about every video, drawn from the seed up front (order-independent)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    motions = list(MOTIONS)
    specs = []
    for i in range(cfg.num_videos):
        motion = motions[i % len(motions)]  # balanced classes
        r = np.random.default_rng([cfg.seed, i])
        num_frames = int(r.integers(cfg.min_frames, cfg.max_frames + 1))
        common = {
            "index": i,
            "motion": motion,
            "size": cfg.size,
            "num_frames": num_frames,
            "speed": float(r.uniform(*cfg.speed_range)) * cfg.size,  # pixels per frame (speed_range: fractions of the canvas)
            "phase": float(r.uniform(0, 2 * math.pi)),
            "radius": float(r.uniform(0.15, 0.3)) * cfg.size,
            "centre": (float(r.uniform(0, cfg.size)), float(r.uniform(0, cfg.size))),
            "contrast": cfg.grating_contrast,
        }
        # the first change at a random frame, so that changes do not line up with clip starts
        first = int(r.integers(1, cfg.redraw_every + 1)) if cfg.redraw_every else 0
        segments = [_segment(r, start, digits, cfg) for start in segment_starts(num_frames, cfg.redraw_every, first)]
        if cfg.scene_correlation > 0:
            # a stream of its own, so that p = 0 leaves every other draw as it was
            rs = np.random.default_rng([cfg.seed, i, 2])
            for seg in segments:
                own = rs.uniform() < cfg.scene_correlation
                pick = int(rs.integers(len(FAMILIES)))
                seg["family"] = motions.index(motion) if own else pick
        specs.append({**common, "seed": segments[0]["seed"], "digit": segments[0]["digit"], "segments": segments})
    # the held-out split: a fixed fraction of every class
    for m in motions:
        idx = [s["index"] for s in specs if s["motion"] == m]
        n_test = max(1, min(len(idx) - 1, int(round(cfg.test_fraction * len(idx)))))
        for j in np.random.default_rng([cfg.seed, motions.index(m), 1 << 20]).permutation(idx)[:n_test]:
            specs[j]["split"] = "test"
    count = dict.fromkeys(motions, 0)
    for s in specs:
        s.setdefault("split", "train")
        folder = MOTIONS[s["motion"]]
        count[s["motion"]] += 1
        n = count[s["motion"]]
        s["path"] = f"{folder}/v_{folder}_g{n:02d}_c01{CODECS[cfg.codec][0]}"
    return specs


def _segment(r: np.random.Generator, start: int, digits, cfg: DemoDataConfig) -> dict:
    """One appearance: background seed, digit images and labels, colours, sprite size."""
    picks = r.integers(0, len(digits.images), size=cfg.sprites)
    scale = float(r.uniform(0.35, 0.5)) * cfg.size / 8  # sprite side: 35-50 % of the canvas
    side = 8 * scale
    # the jump: a new random point of the (wrapping) canvas, so a clip's position says nothing of another's
    shift = tuple(float(v) for v in r.uniform(0, cfg.size, 2)) if cfg.jump and start > 0 else (0.0, 0.0)
    offsets = [(0.0, 0.0)] if cfg.sprites == 1 else [(-0.3 * side, -0.55 * side), (0.3 * side, 0.55 * side)]
    return {
        "start": start,
        "shift": shift,
        "seed": int(r.integers(2**31)),
        "scale": scale,
        "digit": [int(digits.target[p]) for p in picks],
        "digits_img": [digits.images[p].tolist() for p in picks],
        "colours": [_bright_colour(r) for _ in picks],
        "offsets": offsets,
    }


def _bright_colour(r: np.random.Generator) -> list[float]:
    """A saturated colour that stands out from the (darker) background."""
    c = r.uniform(0.0, 1.0, 3)
    c[r.integers(3)] = 1.0
    return (0.5 + 0.5 * c).tolist()


def _encode(job: tuple) -> str:
    """Render one video and encode it to a temp file beside its target, then rename (atomic)."""
    import ffmpeg

    spec, out, codec, fps, gop = job
    frames = render_video(spec)
    target = Path(out) / spec["path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix, opts = CODECS[codec]
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    size = spec["size"]
    try:
        (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{size}x{size}", framerate=fps)
            # bitexact: no random container ids or dates, so a seed gives the same bytes
            .output(tmp, pix_fmt="yuv420p", g=gop, threads=1, an=None, fflags="+bitexact", **opts)
            .overwrite_output()
            .run(input=frames.tobytes(), quiet=True)
        )
        os.replace(tmp, target)
    except ffmpeg.Error as e:
        Path(tmp).unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed to encode {target}: {e.stderr.decode(errors='replace')[-400:]}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return spec["path"]


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def is_cached(cfg: DemoDataConfig) -> bool:
    """True when `cfg.out` holds a complete dataset made with these exact parameters."""
    out = Path(cfg.out)
    try:
        stamp = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if stamp != cfg.identity():
        return False
    with open(out / "digits.csv") as f:
        return all((out / row["path"]).is_file() for row in csv.DictReader(f))


def generate(cfg: DemoDataConfig, progress: bool = True) -> Path:
    """Write the dataset into `cfg.out` (or reuse it when it is already there); returns `cfg.out`."""
    from tqdm import tqdm

    cfg.check()
    out = Path(cfg.out)
    if is_cached(cfg):
        if progress:
            click.echo(f"demo data: reusing {out} ({cfg.num_videos} videos, same parameters)", err=True)
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / STAMP).unlink(missing_ok=True)  # the stamp goes last: a half-made dataset has none
    _remove_previous(out)
    specs = video_specs(cfg)
    jobs = [(s, str(out), cfg.codec, cfg.fps, cfg.gop) for s in specs]
    bar = tqdm(total=len(jobs), desc="demo data: encoding", unit="video", disable=not progress)
    if cfg.workers > 1:
        # threads are enough: each encode is an ffmpeg process, and numpy drawing releases the GIL
        # for most of its work; no worker processes means no re-import of the caller's script
        with ThreadPoolExecutor(cfg.workers) as pool:
            for _ in pool.map(_encode, jobs):
                bar.update()
    else:
        for job in jobs:
            _encode(job)
            bar.update()
    bar.close()

    classes = list(MOTIONS.values())
    _write_text(out / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train = [s for s in specs if s["split"] == "train"]
    test = [s for s in specs if s["split"] == "test"]
    _write_text(
        out / "trainlist01.txt",
        "".join(f"{s['path']} {classes.index(MOTIONS[s['motion']]) + 1}\n" for s in train),
    )
    _write_text(out / "testlist01.txt", "".join(f"{s['path']}\n" for s in test))
    rows = ["path,digit,motion,split,num_frames,speed_px_per_frame,family\n"]
    rows += [
        f"{s['path']},{s['digit'][0]},{s['motion']},{s['split']},{s['num_frames']},{s['speed']:.4f},"
        f"{s['segments'][0].get('family', '')}\n" for s in specs
    ]
    _write_text(out / "digits.csv", "".join(rows))
    _write_text(out / STAMP, json.dumps(cfg.identity(), indent=1) + "\n")
    return out


def _remove_previous(out: Path) -> None:
    """Delete the videos a previous run listed (another size or seed), and nothing else."""
    listing = out / "digits.csv"
    if not listing.is_file():
        return
    with open(listing) as f:
        for row in csv.DictReader(f):
            p = (out / row["path"]).resolve()
            if p.is_relative_to(out.resolve()):
                p.unlink(missing_ok=True)
    listing.unlink()


def read_digits(root: str | Path) -> dict[str, int]:
    """video path (relative to the dataset root, '/'-separated) -> the digit of its first segment."""
    with open(Path(root) / "digits.csv") as f:
        return {row["path"]: int(row["digit"]) for row in csv.DictReader(f)}


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--videos", "num_videos", default=DemoDataConfig.num_videos, show_default=True, help="number of videos")
@click.option("--size", default=DemoDataConfig.size, show_default=True, help="canvas side in pixels")
@click.option("--min-frames", default=DemoDataConfig.min_frames, show_default=True)
@click.option("--max-frames", default=DemoDataConfig.max_frames, show_default=True)
@click.option("--fps", default=DemoDataConfig.fps, show_default=True)
@click.option("--sprites", default=DemoDataConfig.sprites, show_default=True, help="digits per video (1 or 2)")
@click.option("--redraw-every", default=DemoDataConfig.redraw_every, show_default=True,
              help="frames between re-draws of digit, colour, size and background (0: never)")
@click.option("--scene-correlation", default=DemoDataConfig.scene_correlation, show_default=True,
              help="chance that a video's background comes from its class's texture family (0: no link)")
@click.option("--grating-contrast", default=DemoDataConfig.grating_contrast, show_default=True,
              help="amplitude of the background grating (0..1 grey levels): how strong the texture family cue is")
@click.option("--speed-range", nargs=2, type=float, default=DemoDataConfig.speed_range, show_default=True,
              help="sprite speed per frame: min max, as fractions of the canvas side")
@click.option("--jump/--no-jump", default=DemoDataConfig.jump, show_default=True,
              help="at each re-draw the sprite's path goes on from a random point")
@click.option("--test-fraction", default=DemoDataConfig.test_fraction, show_default=True)
@click.option("--codec", type=click.Choice(sorted(CODECS)), default=DemoDataConfig.codec, show_default=True)
@click.option("--gop", default=DemoDataConfig.gop, show_default=True, help="keyframe interval")
@click.option("--seed", default=DemoDataConfig.seed, show_default=True)
@click.option("--workers", default=DemoDataConfig.workers, show_default=True, help="encoding processes")
def demo_data(**kwargs):
    """Write the demo dataset (digits in motion, UCF-101 layout) into OUT; reuses it if already there."""
    cfg = DemoDataConfig(**{f.name: kwargs[f.name] for f in fields(DemoDataConfig)})
    out = generate(cfg)
    click.echo(f"{out}  (index it with: ascnet-index build {out} --layout ucf101 --out {out}/manifest.parquet)")
