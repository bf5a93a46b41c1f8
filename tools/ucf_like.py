"""A dataset at UCF-101's shape, generated: to show ascnet at the size of its users' first job.

Laid out exactly as UCF-101 (`UCF-101/<Class>/v_<Class>_gNN_cNN.avi` with the 101 class names,
groups g01..g25; `ucfTrainTestlist/` with classInd.txt, trainlist01-03.txt and testlist01-03.txt
in the official format, CRLF line ends, and the official `HandStandPushups` file names in the
`HandstandPushups` folder). The official split rule: groups 1-7 are the test set of split 1,
8-14 of split 2, 15-21 of split 3; every other group trains.

The files are encoded like the real ones (measured with ffprobe on real UCF-101 files): MPEG-4
Part 2 Simple Profile in AVI with FourCC `xvid`, 320x240, a keyframe every 12 frames and no
scene-cut keyframes, no B-frames, about 550 kbit/s, so decoding one costs what decoding a real
one does; 25 fps, UCF-101's nominal rate. Lengths are drawn like UCF-101's: lognormal, mean
about 7.2 s, clipped to [1.06 s, 71 s].

The content is cheap to draw: a shape moving over a textured, slowly panning background, with
one or two distractors. The class sets the shape and its motion (kind of path, speed band, direction),
so a model can learn something; colours, sizes, textures and starts are random per video.

    python -m ascnet.tools.ucf_like --out data/ucf_like --workers 8

Parallel (a process pool), resumable (finished files are skipped; each is written to a temp
name and renamed; a killed call's temp files are removed by the next), deterministic for a seed (bit-exact encodes).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np

# UCF-101's classes in the order of its classInd.txt
CLASSES = (
    "ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch Basketball "
    "BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles BodyWeightSquats Bowling "
    "BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth CleanAndJerk CliffDiving CricketBowling "
    "CricketShot CuttingInKitchen Diving Drumming Fencing FieldHockeyPenalty FloorGymnastics FrisbeeCatch "
    "FrontCrawl GolfSwing Haircut Hammering HammerThrow HandstandPushups HandstandWalking HeadMassage HighJump "
    "HorseRace HorseRiding HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope Kayaking Knitting "
    "LongJump Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars PizzaTossing PlayingCello "
    "PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar PlayingTabla PlayingViolin "
    "PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor RopeClimbing Rowing SalsaSpin "
    "ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving SoccerJuggling SoccerPenalty StillRings "
    "SumoWrestling Surfing Swing TableTennisShot TaiChi TennisSwing ThrowDiscus TrampolineJumping Typing "
    "UnevenBars VolleyballSpiking WalkingWithDog WallPushups WritingOnBoard YoYo"
).split()
FILE_NAMES = {"HandstandPushups": "HandStandPushups"}  # the real dataset's file names spell it so
GROUPS = 25
TEST_GROUPS = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}  # the official split rule
WIDTH, HEIGHT, FPS = 320, 240, 25
GOP = 12             # keyframe interval of the real files
BITRATE = "550k"     # the real files: 500-590 kbit/s; these come out at 580-670 (the content sets a floor)
LENGTH_SIGMA = 0.6   # lognormal spread of the lengths (log seconds)
STAMP = "ucf_like.json"
GENERATOR_VERSION = 1


@dataclass
class UcfLikeConfig:
    out: str
    videos: int = 13320
    classes: int = 101          # the first `classes` of UCF-101's class list
    mean_seconds: float = 7.2   # of the lognormal, before clipping
    min_seconds: float = 1.06
    max_seconds: float = 71.0
    seed: int = 0
    workers: int = 2

    def check(self) -> "UcfLikeConfig":
        if not 1 <= self.classes <= len(CLASSES):
            raise click.BadParameter(f"classes={self.classes}: use 1..{len(CLASSES)}", param_hint="--classes")
        if self.videos < 2 * self.classes:
            raise click.BadParameter(f"videos={self.videos}: need at least two per class ({2 * self.classes}), "
                                     "one to train and one to test", param_hint="--videos")
        if not 0 < self.min_seconds <= self.max_seconds:
            raise click.BadParameter(f"seconds {self.min_seconds}..{self.max_seconds}: need 0 < min <= max",
                                     param_hint="--min-seconds")
        if self.workers < 1:
            raise click.BadParameter(f"workers={self.workers}: use 1 or more", param_hint="--workers")
        return self

    def identity(self) -> dict:
        """What determines the files (not where they go or how many processes make them)."""
        d = asdict(self)
        del d["out"], d["workers"]
        return {"generator_version": GENERATOR_VERSION, **d}


# ---- what each video is ---------------------------------------------------------------
def per_class_counts(cfg: UcfLikeConfig) -> np.ndarray:
    """(classes,) videos per class: `videos` spread like UCF-101's (about +-20 % around the mean)."""
    rng = np.random.default_rng([cfg.seed, 0])
    weights = rng.uniform(0.8, 1.2, cfg.classes)
    counts = np.maximum(2, np.floor(weights / weights.sum() * cfg.videos)).astype(np.int64)
    short = cfg.videos - int(counts.sum())  # what rounding down left: fewer than one per class
    counts[np.argsort(-weights)[:max(short, 0)]] += 1
    while counts.sum() > cfg.videos:  # only when the minimum of 2 per class forced it up
        counts[np.argmax(counts)] -= 1
    return counts


def group_clips(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(group, clip) of a class's n videos: groups spread evenly over g01..g25 (each group at least one
    clip where n >= 25), the remainder to random groups; clips numbered from c01 within a group."""
    if n < GROUPS:
        groups = [1 + i * GROUPS // n for i in range(n)]
    else:
        per = np.full(GROUPS, n // GROUPS)
        per[rng.choice(GROUPS, n % GROUPS, replace=False)] += 1
        groups = [g + 1 for g in range(GROUPS) for _ in range(per[g])]
    out, seen = [], {}
    for g in groups:
        seen[g] = seen.get(g, 0) + 1
        out.append((g, seen[g]))
    return out


def class_motion(k: int) -> dict:
    """The class's shape and motion: (k mod 15, k // 15) is different for every class of 101."""
    return {"kind": ("linear", "circle", "sway", "bob", "zigzag")[k % 5], "shape": ("disc", "square", "cross")[(k // 5) % 3],
            "fast": bool((k // 15) % 2), "direction": (k // 30) % 4}


def video_specs(cfg: UcfLikeConfig) -> list[dict]:
    """One dict per video, in class, group, clip order: path, class, label, group, clip, frames, seed."""
    mu = math.log(cfg.mean_seconds) - LENGTH_SIGMA ** 2 / 2
    specs = []
    for k, n in enumerate(per_class_counts(cfg)):
        name = CLASSES[k]
        rng = np.random.default_rng([cfg.seed, 1, k])
        seconds = np.clip(rng.lognormal(mu, LENGTH_SIGMA, n), cfg.min_seconds, cfg.max_seconds)
        for (g, c), s in zip(group_clips(int(n), rng), seconds):
            stem = f"v_{FILE_NAMES.get(name, name)}_g{g:02d}_c{c:02d}"
            specs.append({"path": f"{name}/{stem}.avi", "label": k, "group": g, "clip": c,
                          "frames": max(1, int(round(s * FPS))), "seed": [cfg.seed, 2, k, g, c]})
    return specs


# ---- drawing ---------------------------------------------------------------------------
def _background(rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: a blurred colour noise field with a faint grating."""
    grid = rng.uniform(0, 1, (HEIGHT // 20 + 2, WIDTH // 20 + 2, 3))
    ys, xs = np.linspace(0, grid.shape[0] - 1.001, HEIGHT), np.linspace(0, grid.shape[1] - 1.001, WIDTH)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    g = grid[y0][:, x0] * (1 - fy) * (1 - fx) + grid[y0 + 1][:, x0] * fy * (1 - fx) \
        + grid[y0][:, x0 + 1] * (1 - fy) * fx + grid[y0 + 1][:, x0 + 1] * fy * fx
    theta, period = rng.uniform(0, np.pi), rng.uniform(8, 40)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    grating = 0.1 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)[..., None]
    tint = rng.uniform(0.3, 0.7, 3)
    grain = rng.normal(0, 0.015, (HEIGHT, WIDTH, 1))  # fine texture, so that a moving camera costs bits
    return (255 * np.clip(0.5 * g + 0.5 * tint + grating + grain - 0.1, 0, 1)).astype(np.uint8)


def _mask(shape: str, size: int) -> np.ndarray:
    r = (np.arange(size) - (size - 1) / 2) / (size / 2)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    if shape == "disc":
        return yy ** 2 + xx ** 2 <= 1
    if shape == "square":
        return np.ones((size, size), bool)
    return (np.abs(yy) < 0.3) | (np.abs(xx) < 0.3)  # cross


def _path(motion: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) y, x centres of the class's object."""
    t = np.arange(n, dtype=np.float64)
    speed = rng.uniform(4, 6) if motion["fast"] else rng.uniform(1.5, 2.5)  # pixels per frame
    angle = motion["direction"] * np.pi / 2 + rng.uniform(-0.2, 0.2)
    cy, cx = rng.uniform(60, HEIGHT - 60), rng.uniform(60, WIDTH - 60)
    kind = motion["kind"]
    if kind == "circle":
        radius = rng.uniform(30, 60)
        sign = 1 if motion["direction"] % 2 == 0 else -1
        phi = angle + sign * t * speed / radius
        return np.stack([cy + radius * np.sin(phi), cx + radius * np.cos(phi)], 1)
    if kind in ("sway", "bob"):  # back and forth, horizontally or vertically
        amp = rng.uniform(30, 70)
        s = amp * np.sin(t * speed / amp + rng.uniform(0, 2 * np.pi))
        return np.stack([np.full(n, cy), cx + s], 1) if kind == "sway" else np.stack([cy + s, np.full(n, cx)], 1)
    dy, dx = np.sin(angle) * speed * t, np.cos(angle) * speed * t
    y, x = cy + dy, cx + dx
    if kind == "zigzag":
        wiggle = 20 * np.sin(t * speed / 15)
        y, x = y + np.cos(angle) * wiggle, x - np.sin(angle) * wiggle
    return np.stack([np.mod(y, HEIGHT), np.mod(x, WIDTH)], 1)  # wraps round the frame


def _paste(frame: np.ndarray, mask: np.ndarray, colour: np.ndarray, y: float, x: float) -> None:
    s = mask.shape[0]
    top, left = int(y) - s // 2, int(x) - s // 2
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + s, HEIGHT), min(left + s, WIDTH)
    if y0 < y1 and x0 < x1:
        frame[y0:y1, x0:x1][mask[y0 - top:y1 - top, x0 - left:x1 - left]] = colour


def render(spec: dict):
    """Yield the video's frames, (H, W, 3) uint8 each, one at a time (a long video never sits in memory)."""
    rng = np.random.default_rng(spec["seed"])
    n = spec["frames"]
    bg = _background(rng)
    motion = class_motion(spec["label"])
    objects = [(_mask(motion["shape"], int(rng.integers(30, 61))), rng.integers(0, 256, 3, dtype=np.uint8),
                _path(motion, n, rng))]
    for _ in range(int(rng.integers(1, 3))):  # distractors: any shape, a random straight drift
        d = {"kind": "linear", "fast": bool(rng.integers(2)), "direction": int(rng.integers(4))}
        objects.append((_mask(("disc", "square", "cross")[int(rng.integers(3))], int(rng.integers(12, 25))),
                        rng.integers(0, 256, 3, dtype=np.uint8), _path(d, n, rng)))
    # a slow handheld pan (the background wraps round): real videos rarely hold still
    pan = np.stack([8 * np.sin(np.arange(n) / rng.uniform(20, 60)), np.arange(n) * rng.uniform(-1, 1)], 1).astype(int)
    for i in range(n):
        frame = np.roll(bg, tuple(pan[i]), axis=(0, 1))
        for mask, colour, path in objects:
            _paste(frame, mask, colour, *path[i])
        yield frame


def _widen_pipe(pipe) -> None:
    """A frame is 230 KB and a pipe holds 64 KB: at 1 MB the encoder stops waiting on the writer
    (about 1.8x faster encoding, the same bytes). Linux only; elsewhere it stays as it is."""
    try:
        import fcntl
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def encode(job: tuple[dict, str]) -> str:
    """Render one video into a temp file beside its target, then rename it there (atomic)."""
    spec, out = job
    target = Path(out) / "UCF-101" / spec["path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".avi", dir=target.parent)
    os.close(fd)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}",
           "-r", str(FPS), "-i", "pipe:", "-c:v", "mpeg4", "-vtag", "xvid", "-b:v", BITRATE, "-g", str(GOP),
           "-keyint_min", str(GOP), "-sc_threshold", "1000000000", "-bf", "0", "-pix_fmt", "yuv420p", "-an",
           "-threads", "1", "-fflags", "+bitexact", "-flags", "+bitexact", tmp]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _widen_pipe(proc.stdin)
    try:
        for frame in render(spec):
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed to encode {target}: {err[-400:]}")
        os.replace(tmp, target)
    except BaseException:
        proc.kill()
        proc.wait()
        Path(tmp).unlink(missing_ok=True)
        raise
    return spec["path"]


# ---- the dataset -----------------------------------------------------------------------
def _write_text(path: Path, lines: list[str]) -> None:
    """CRLF line ends, as in the official lists; atomic."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", newline="") as f:
        f.write("".join(ln + "\r\n" for ln in lines))
    os.replace(tmp, path)


def write_lists(out: Path, specs: list[dict], classes: int) -> None:
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    _write_text(lists / "classInd.txt", [f"{k + 1} {CLASSES[k]}" for k in range(classes)])
    for split, test in TEST_GROUPS.items():
        _write_text(lists / f"trainlist{split:02d}.txt",
                    [f"{s['path']} {s['label'] + 1}" for s in specs if s["group"] not in test])
        _write_text(lists / f"testlist{split:02d}.txt", [s["path"] for s in specs if s["group"] in test])


@dataclass
class Generated:
    out: Path
    written: int   # videos encoded by this call
    reused: int    # finished files of an earlier call, left as they were


def generate(cfg: UcfLikeConfig, progress: bool = True) -> Generated:
    """Write the dataset into `cfg.out`, encoding only the videos not there yet."""
    from tqdm import tqdm

    cfg.check()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) != cfg.identity():
        raise click.BadParameter(f"{out} holds a dataset made with other parameters ({stamp}); pass another --out, "
                                 "or the same parameters to finish it", param_hint="--out")
    stamp.write_text(json.dumps(cfg.identity(), indent=1) + "\n")  # first: files and stamp always agree
    for stale in (out / "UCF-101").glob("*/.v_*.avi"):  # temp files of a killed call: never finished videos
        stale.unlink(missing_ok=True)
    specs = video_specs(cfg)
    todo = [s for s in specs if not (out / "UCF-101" / s["path"]).is_file()]
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="ucf-like: encoding", unit="video",
               disable=not progress)
    jobs = [(s, str(out)) for s in todo]
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(cfg.workers) as pool:
            for _ in pool.map(encode, jobs, chunksize=4):
                bar.update()
    else:
        for job in jobs:
            encode(job)
            bar.update()
    bar.close()
    write_lists(out, specs, cfg.classes)
    return Generated(out, len(todo), len(specs) - len(todo))


@click.command("ucf-like")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="dataset folder (made if missing)")
@click.option("--videos", default=UcfLikeConfig.videos, show_default=True, help="videos in all, spread over the classes")
@click.option("--classes", default=UcfLikeConfig.classes, show_default=True, help="the first N of UCF-101's classes")
@click.option("--mean-seconds", default=UcfLikeConfig.mean_seconds, show_default=True, help="mean length (lognormal)")
@click.option("--min-seconds", default=UcfLikeConfig.min_seconds, show_default=True, help="shortest video")
@click.option("--max-seconds", default=UcfLikeConfig.max_seconds, show_default=True,
              help="longest video (lower it for a quick set)")
@click.option("--seed", default=UcfLikeConfig.seed, show_default=True)
@click.option("--workers", default=UcfLikeConfig.workers, show_default=True, help="encoding processes")
def main(**options):
    """Write a dataset at UCF-101's shape (layout, lists, codec, size, lengths) into OUT; resumable."""
    done = generate(UcfLikeConfig(**options))
    click.echo(f"{done.out}: encoded {done.written}, reused {done.reused}  (index it with: ascnet-index build "
               f"{done.out} --layout ucf101 --split 1 --out {done.out}/ucf101_s1.parquet)")


if __name__ == "__main__":
    main()
