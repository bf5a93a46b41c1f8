"""The GPU check, part by part: `python -m ascnet.bench.gpu_check PART [--cpu-rehearsal]`.

Run by ascnet/bench/gpu_check.sh, which gives each part its own time limit and prints the table.
Each part prints lines `part | what | result`; a part that fails prints `FAILED: reason`.
Videos are written with PyAV's bundled encoders (no ffmpeg binary needed) into WORK.
`--cpu-rehearsal` runs the same parts with the CPU backends (pyav, dali-cpu on VP9) so the
script can be exercised on a machine without a GPU.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import click
import numpy as np

from ascnet.clips import ClipSpec
from ascnet.tools.synthetic import pattern_frame, read_index

WORK = Path(os.environ.get("ASCNET_GPU_CHECK_WORK", Path(tempfile.gettempdir()) / "ascnet-gpu-check"))
_REPO = Path(__file__).resolve().parents[2]  # the checkout: ascnet/bench/ is two folders down
# the real clips: ASCNET_REAL_CLIPS, else data/real-clips in the checkout (an ignored copy that a visit
# to a GPU machine carries along), else a shared/data/real-clips beside the checkout
REAL = Path(os.environ.get("ASCNET_REAL_CLIPS") or next(
    (p for p in (_REPO / "data" / "real-clips", _REPO.parent / "shared" / "data" / "real-clips") if p.is_dir()),
    _REPO / "data" / "real-clips"))

# name -> (PyAV encoder, suffix, pix_fmt, options, manifest codec)
ENCODERS = {
    "h264": ("libx264", ".mp4", "yuv420p", {"preset": "ultrafast", "crf": "12"}, "h264"),
    "h264-high-bframes": ("libx264", ".mp4", "yuv420p", {"preset": "medium", "crf": "12", "bf": "3"}, "h264"),
    "h264-422": ("libx264", ".mp4", "yuv422p", {"preset": "ultrafast", "crf": "12"}, "h264"),
    "hevc": ("libx265", ".mp4", "yuv420p", {"preset": "ultrafast", "crf": "12", "x265-params": "log-level=none"}, "hevc"),
    "vp9": ("libvpx-vp9", ".webm", "yuv420p", {"deadline": "realtime", "cpu-used": "8", "crf": "12", "b": "0"}, "vp9"),
    "mpeg4": ("mpeg4", ".avi", "yuv420p", {"qscale": "2"}, "mpeg4"),
    "mjpeg": ("mjpeg", ".avi", "yuvj420p", {"qscale": "2"}, "mjpeg"),
}


def write_pattern_av(path: str | Path, num_frames: int, kind: str = "h264", width: int = 128, height: int = 96,
                     fps: int = 25, gop: int = 12) -> Path:
    """tools.synthetic's self-indexing video, encoded with PyAV's own libraries (any ENCODERS kind)."""
    import av

    encoder, _, pix_fmt, opts, _ = ENCODERS[kind]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = dict(opts)
        if kind not in ("h264-high-bframes",) and encoder == "libx264":
            stream.options["bf"] = "0"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def pattern_manifest(kind: str, count: int, num_frames: int, width: int = 128, height: int = 96, fps: int = 25,
                     gop: int = 12, folder: Path | None = None):
    """A Manifest of `count` pattern videos of one kind (cached in WORK)."""
    from ascnet.manifest import Manifest

    folder = folder or WORK / f"{kind}-{width}x{height}-{num_frames}"
    rows = []
    for i in range(count):
        path = folder / f"v{i}{ENCODERS[kind][1]}"
        if not path.exists():
            write_pattern_av(path, num_frames, kind, width, height, fps, gop)
        rows.append(dict(video_id=path.name, path=path.name, label=i % 4, split="train", num_frames=num_frames, fps=float(fps),
                         width=width, height=height, codec=ENCODERS[kind][4], status="ok"))
    return Manifest.from_rows(rows, root=folder)


def _indices(clips) -> np.ndarray:
    from ascnet.clips import denormalize

    x = denormalize(clips.float().cpu()).numpy()
    return np.array([[read_index(x[b, :, t], "CHW") for t in range(x.shape[2])] for b in range(x.shape[0])])


def _row(part: str, what: str, result: str) -> None:
    print(f"{part} | {what} | {result}", flush=True)


def _gpu_mem_sampler():
    """Peak `nvidia-smi` memory.used (MiB) while the returned stop() is pending."""
    peak, done = [0], threading.Event()

    def loop():
        while not done.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                peak[0] = max(peak[0], int(out.split()[0]))
            except Exception:
                pass
            done.wait(0.5)

    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def stop():
        done.set()
        t.join()
        return peak[0]

    return stop


# ---- parts ---------------------------------------------------------------------------------
def nvdec_missing() -> str | None:
    """Why NVDEC cannot be used in this container (None: it can): the driver's decode library must load."""
    import ctypes

    try:
        ctypes.CDLL("libnvcuvid.so.1")
    except OSError as e:
        return f"libnvcuvid.so.1 does not load ({e}): the container has no NVDEC driver library"
    return None


def gpu_backend(cpu: bool) -> tuple[str, str]:
    """(backend, device) a part measures: nvdec on the GPU; pyav with CUDA output where NVDEC is missing."""
    if cpu:
        return "pyav", "cpu"
    return ("pyav", "cuda") if nvdec_missing() else ("nvdec", "cuda")


def _nvidia_smi(*args: str) -> str:
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"nvidia-smi failed: {e}"


def part_env(cpu: bool) -> None:
    import torch

    _row("env", "python / torch", f"{sys.version.split()[0]} / {torch.__version__}")
    if torch.cuda.is_available():
        _row("env", "GPU", f"{torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, "
             f"driver {_nvidia_smi('--query-gpu=driver_version', '--format=csv,noheader').strip()}")
    else:
        _row("env", "GPU", "none (CPU rehearsal)" if cpu else "FAILED: torch sees no CUDA GPU")
    if not cpu:
        missing = nvdec_missing()
        decoder = [ln.strip() for ln in _nvidia_smi("-q", "-d", "UTILIZATION").splitlines() if "Decoder" in ln]
        _row("env", "NVDEC", f"NOT USABLE: {missing}; nvdec rows fall back to pyav with CUDA output" if missing else
             f"libnvcuvid.so.1 loads; nvidia-smi: {decoder[0] if decoder else 'no decoder utilisation listed'}")
    _row("env", "CPUs", str(len(os.sched_getaffinity(0))))
    try:
        import nvidia.dali as dali

        _row("env", "DALI", dali.__version__)
        _one_frame(cpu)
    except Exception as e:
        _row("env", "DALI", f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    try:
        import av

        _row("env", "PyAV", f"{av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})")
    except Exception as e:
        _row("env", "PyAV", f"FAILED: {e}")


def _one_frame(cpu: bool) -> None:
    """One frame through fn.decoders.video: mixed (NVDEC) on the GPU, cpu in the rehearsal (VP9)."""
    if not cpu and nvdec_missing():
        return
    kind, device = ("vp9", "cpu") if cpu else ("h264", "mixed")
    file = pattern_manifest(kind, 1, 30, 128, 96).decode_table()["file"][0]
    t, outs = _time_decode([file], [np.array([17])], device, 1, 1, reps=1)
    got = read_index(_host(outs[0])[0][0])
    _row("env", f"one frame via fn.decoders.video(device='{device}')",
         f"frame 17 -> {got} in {t * 1000:.0f} ms" + ("" if got == 17 else " FAILED: wrong frame"))


def _decode_pipe(device: str, calls: int, frames_per_sample: int):
    """Decode-only DALI pipeline: the sample's frames list split over `calls` decoders.video calls."""
    from nvidia.dali import fn, pipeline_def

    @pipeline_def
    def pipe(source):
        data, frames = fn.external_source(source=source, num_outputs=2, batch=False)
        n = frames_per_sample // calls
        return tuple(fn.decoders.video(data, device=device, frames=frames[k * n:(k + 1) * n], pad_mode="none")
                     for k in range(calls))

    return pipe


def _host(out) -> np.ndarray:
    """A dense DALI batch as a numpy array."""
    return np.asarray((out.as_cpu() if hasattr(out, "as_cpu") else out).as_array())


class _FixedSource:
    def __init__(self, files, frames):
        self.files, self.frames = files, frames
        self.data = [np.fromfile(f, dtype=np.uint8) for f in files]

    def __call__(self, info):
        i = info.idx_in_batch % len(self.files)  # every batch: the same files, the same frames
        return self.data[i], self.frames[i].astype(np.int32)


def _time_decode(files, frames, device: str, batch: int, calls: int, reps: int):
    """Median seconds per batch, and the last outputs."""
    pipe_fn = _decode_pipe(device, calls, len(frames[0]))
    pipe = pipe_fn(source=_FixedSource(files, frames), batch_size=batch, num_threads=4,
                   device_id=None if device == "cpu" else 0, prefetch_queue_depth=1)
    pipe.build()
    outs = pipe.run()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        outs = pipe.run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), outs


def _no_nvdec(part: str, cpu: bool) -> bool:
    """True (and a row saying so) when this GPU part cannot run because NVDEC is missing."""
    why = None if cpu else nvdec_missing()
    if why:
        _row(part, "-", f"skipped: {why}")
    return why is not None


def part_seek(cpu: bool) -> None:
    if _no_nvdec("seek", cpu):
        return
    kind, n = ("vp9", 600) if cpu else ("h264", 3000)
    m = pattern_manifest(kind, 1, n, 320, 240, gop=25)
    file = m.decode_table()["file"][0]
    device = "cpu" if cpu else "mixed"
    res = {}
    for where, start, count in (("start", 0, 16), ("end", n - 16, 16), ("whole file", 0, n)):
        frames = [np.arange(start, start + count)]
        t, outs = _time_decode([file], frames, device, 1, 1, reps=5 if count == 16 else 2)
        got = [read_index(f) for f in _host(outs[0])[0]] if count == 16 else list(range(start, start + count))
        ok = "ok" if got == list(range(start, start + count)) else f"WRONG FRAMES {got[:4]}..."
        res[where] = t
        _row("seek", f"{count} frames at the {where} of a {n}-frame {kind} 320x240 GOP 25",
             f"{t * 1000:.1f} ms" + (f", indices {ok}" if count == 16 else ""))
    _row("seek", "verdict", seek_verdict(res["start"], res["end"], res["whole file"]))


def seek_verdict(start: float, end: float, whole: float) -> str:
    """Does the decoder seek? The last clip of a file costs about the whole file when it decodes from
    frame 0, and about the first clip when it seeks; a ratio of end to start alone does not say which."""
    share = end / whole
    if share > 0.5:
        return f"decodes from frame 0: no seeking (the last 16 frames cost {100 * share:.0f}% of the whole file)"
    return (f"seeks: the last 16 frames cost {100 * share:.0f}% of the whole file, "
            f"{end / start:.1f}x the first 16")


def part_calls(cpu: bool) -> None:
    if _no_nvdec("calls", cpu):
        return
    kind = "vp9" if cpu else "h264"
    m = pattern_manifest(kind, 16, 300, 320, 240, gop=16)
    files = list(m.decode_table()["file"])
    rng = np.random.default_rng(0)
    frames = []
    for _ in files:
        a, b = rng.integers(0, 300 - 16 * 4, 2)
        frames.append(np.concatenate([a + np.arange(16) * 2, b + np.arange(16) * 4]))
    device = "cpu" if cpu else "mixed"
    batch = 8 if cpu else 16
    rates = {}
    for calls in (1, 2):
        t, outs = _time_decode(files, frames, device, batch, calls, reps=3 if cpu else 10)
        got = np.concatenate([_host(o)[0] for o in outs])
        ok = [read_index(f) for f in got] == frames[0].tolist()
        rates[calls] = batch / t
        _row("calls", f"{'one 32-frame call' if calls == 1 else 'two 16-frame calls'} per pair ({kind}, B={batch})",
             f"{batch / t:.1f} pairs/s, indices {'ok' if ok else 'WRONG'}")
    _row("calls", "one call / two calls", f"{rates[1] / rates[2]:.2f}x")


def part_threads(cpu: bool) -> None:
    import torch

    from ascnet.pipelines.loader import build_pair_loader

    m = pattern_manifest("vp9" if cpu else "h264", 32, 300, 320, 240, gop=16)
    backend, device = gpu_backend(cpu)
    stop = None if cpu else _gpu_mem_sampler()
    for threads in ((1, 2) if cpu else (1, 4, 8, 16)):
        batch = 8 if cpu else 32
        kw = dict(workers=threads) if backend == "pyav" else dict(num_threads=threads)
        with build_pair_loader(m, batch_size=batch, backend=backend, device=device, **kw) as loader:
            it = (b for e in range(10**6) for b in loader.epoch(e))
            next(it)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < (6 if cpu else 10):
                b = next(it)
                n += len(b["clip_a"])
            if device == "cuda":
                torch.cuda.synchronize()
            rate = n / (time.perf_counter() - t0)
        what = f"{'workers' if backend == 'pyav' else 'num_threads'} {threads}"
        _row("threads", f"pair loader {backend}, {what}, B={batch}, 16x112, augment", f"{rate:.1f} pairs/s")
    if stop:
        _row("memory", "peak GPU memory used (nvidia-smi) during the loader runs", f"{stop()} MiB")
    else:
        _row("memory", "peak host RSS of this process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def part_matrix(cpu: bool) -> None:
    from ascnet.pipelines.loader import build_pair_loader
    from ascnet.sampling import sample_pair

    for kind in ENCODERS:
        try:
            m = pattern_manifest(kind, 4, 90, 128, 96)
            backend, device = gpu_backend(cpu)
            if cpu and kind in ("vp9", "mjpeg"):
                backend = "dali-cpu"
            with build_pair_loader(m, ClipSpec(clip_len=8, crop_size=32, augment=False), batch_size=4, backend=backend,
                                   device=device, seed=1) as loader:
                batch = next(loader.epoch(0))
            wrong = 0
            for r, vi in enumerate(batch["video_index"].tolist()):
                p = sample_pair(vi, 90, 25.0, seed=1, epoch=0, clip_len=8)
                wrong += _indices(batch["clip_a"][r:r + 1])[0].tolist() != p.frames_a.tolist()
                wrong += _indices(batch["clip_b"][r:r + 1])[0].tolist() != p.frames_b.tolist()
            _row("matrix", f"{kind} via {backend}", "exact frame indices" if not wrong else f"FAILED: {wrong}/8 clips wrong")
        except Exception as e:
            _row("matrix", kind, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:150]}")
    if not (REAL / "ucf101").is_dir():
        _row("matrix", "real clips", f"not found at {REAL}")
        return
    _real_clips(cpu)


def _real_clips(cpu: bool) -> None:
    """Each real clip through the GPU (or dali-cpu) backend against pyav on the same frames."""
    import av

    from ascnet.manifest import Manifest
    from ascnet.pipelines.loader import build_eval_loader

    for f in sorted(REAL.rglob("*.avi")) + sorted(REAL.rglob("*.mp4")):
        try:
            with av.open(str(f), metadata_errors="ignore") as c:
                s = c.streams.video[0]
                n = sum(1 for _ in c.decode(s))
                codec, fps = s.codec_context.name, float(s.average_rate)
            row = dict(video_id=f.name, path=f.name, label=0, split="test", num_frames=n, fps=fps, codec=codec, status="ok")
            m = Manifest.from_rows([row], root=f.parent)
            backends = ("pyav",) if cpu or nvdec_missing() else ("pyav", "nvdec")  # dali-cpu takes none of these codecs
            out = {}
            for backend in backends:
                loader = build_eval_loader(m, ClipSpec(clip_len=16, crop_size=112), split="test", batch_size=10,
                                           clips_per_video=2, backend=backend, device="cuda" if backend == "nvdec" else "cpu")
                out[backend] = next(iter(loader))["clips"].float().cpu()
            what = f"{f.parent.name}/{f.name} ({codec}, {n} frames)"
            if len(backends) == 1:
                _row("real", what, f"pyav decoded {tuple(out['pyav'].shape)} (nvdec not compared: "
                     f"{'CPU rehearsal' if cpu else 'no NVDEC'})")
                continue
            diff = (out["pyav"] - out["nvdec"]).abs().mean().item()
            verdict = "same frames" if diff < 0.1 else "FAILED: differs from PyAV"
            _row("real", what, f"mean |nvdec - pyav| = {diff:.3f} ({verdict})")
        except Exception as e:
            _row("real", f.name, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:150]}")


def part_train(cpu: bool) -> None:
    """The training goal: r3d18 16x112 bf16 clips/s, and real/synthetic step-time ratio."""
    from ascnet.bench.train import BenchTrainConfig, bench_train

    # the same 32 videos as the threads part (made once); one batch is the whole epoch
    m = pattern_manifest("vp9" if cpu else "h264", 32, 300, 320, 240, gop=16)
    path = WORK / "train_manifest.parquet"
    m.write(path)
    cfg = (BenchTrainConfig(manifest=str(path), device="cpu", backend="pyav", width=8, clip=ClipSpec(clip_len=8, crop_size=32),
                            batch_size=4, steps=3, warmup=1, threads=1) if cpu else
           BenchTrainConfig(manifest=str(path), device="cuda", backend=gpu_backend(cpu)[0], width=64,
                            clip=ClipSpec(clip_len=16, crop_size=112), batch_size=32, steps=20, warmup=8))
    r = bench_train(cfg)
    what = f"{cfg.arch} width {cfg.width}, {cfg.clip.clip_len}x{cfg.clip.crop_size}, B={cfg.batch_size} pairs, {cfg.device}"
    syn, real = r["synthetic"], r["real"]
    _row("train", f"synthetic batches on the device, {what}", f"{2 * cfg.batch_size / syn['step_s']:.0f} clips/s")
    _row("train", f"real batches ({r['backend']}), same model", f"{2 * cfg.batch_size / real['step_s']:.0f} clips/s, "
         f"data wait {100 * real['data_wait']:.0f}%")
    busy = " (BUSY: other work took CPU during the timed steps)" if syn["busy"] or real["busy"] else ""
    _row("train", "real/synthetic step time (goal <= 1.10)", f"{r['ratio']:.2f}{busy}")


PARTS = {"train": part_train, "env": part_env, "seek": part_seek, "calls": part_calls, "threads": part_threads, "matrix": part_matrix}


@click.command()
@click.argument("part", type=click.Choice(sorted(PARTS)))
@click.option("--cpu-rehearsal", is_flag=True, help="Run the part with the CPU backends (no GPU needed).")
def main(part: str, cpu_rehearsal: bool) -> None:
    """Run one part of the GPU check and print its rows."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    try:
        PARTS[part](cpu_rehearsal)
    except Exception as e:
        _row(part, "-", f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")


if __name__ == "__main__":
    main()
