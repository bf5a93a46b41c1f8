"""What every benchmark shares: the quiet-machine rule, the CPU accounting of a timed run,
the environment printed above a table, the table layout and the JSON file.

Honest numbers need a quiet machine. A run that starts with the 1-min load average above
`MAX_LOAD` is refused unless `allow_busy` (`--allow-busy`); a `Meter` around each timed run
measures the CPU that other processes took meanwhile (machine-wide busy time from /proc/stat
minus this process tree's own), and a run where that exceeds `FOREIGN_BUSY` cores is marked
busy.
"""
from __future__ import annotations

import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ascnet import atomic
from ascnet.manifest import Manifest, ManifestError

MAX_LOAD = 0.5       # 1-min load average above which a run is refused (unless allow_busy): a quiet machine
FOREIGN_BUSY = 0.25  # cores taken by other processes during a timed run that mark it busy

write_json_atomic = atomic.write_json


# ---- the quiet machine -------------------------------------------------------------------
def tree_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and all its descendants, living or reaped (Linux /proc), or None.

    The difference between two readings is the CPU the loader spent in between, however busy the
    machine is, also when its worker processes ended in between (a pass of the evaluation loader).
    """
    try:
        stats = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # ppid; utime + stime, + cutime + cstime: the children it has reaped (workers that ended)
                stats[int(d.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    except OSError:
        return None
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [c for c, (ppid, _) in stats.items() if ppid == pid and c not in tree]
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat: not idle, not iowait), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


class BusyMachineError(ValueError):
    """The machine is too loaded for a speed figure to mean anything; the message says what to do."""


def check_quiet(allow_busy: bool, echo=print, max_load: float = MAX_LOAD) -> float:
    """The 1-min load average now; refuses a loaded machine unless `allow_busy`."""
    load = load_average()
    if load > max_load and not allow_busy:
        raise BusyMachineError(
            f"the 1-min load average is {load:.2f} (> {max_load}): the machine is not quiet (other work, or a run that "
            "just ended), and a loaded machine flatters whichever loader runs more processes. Stop other work and "
            "wait for the load to fall, or pass --allow-busy to measure anyway (rows are then marked busy)")
    if load > max_load:
        echo(f"warning: load average {load:.2f} > {max_load}; measuring anyway (--allow-busy)")
    return load


@dataclass
class Meter:
    """Wall time, this process tree's CPU, the machine's busy CPU and the load around a timed run."""

    wall: float = 0.0
    tree_cpu: float | None = None
    machine_cpu: float | None = None
    load: list = field(default_factory=list)

    def __enter__(self):
        self._tree, self._machine, self._load = tree_cpu_seconds(), machine_busy_seconds(), load_average()
        self._t = time.perf_counter()  # after reading /proc: the wall time is the run's alone
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t
        tree, machine = tree_cpu_seconds(), machine_busy_seconds()
        self.tree_cpu = tree - self._tree if None not in (tree, self._tree) else None
        self.machine_cpu = machine - self._machine if None not in (machine, self._machine) else None
        self.load = [self._load, load_average()]

    @property
    def foreign_cores(self) -> float | None:
        """Cores that processes outside this tree kept busy meanwhile (never below 0)."""
        if self.tree_cpu is None or self.machine_cpu is None or self.wall <= 0:
            return None
        return max(0.0, self.machine_cpu - self.tree_cpu) / self.wall

    @property
    def busy(self) -> bool:
        """Other processes took more than FOREIGN_BUSY cores meanwhile."""
        return self.foreign_cores is not None and self.foreign_cores > FOREIGN_BUSY


def load_line(start: float, end: float, busy: list[str], where: str = "") -> str:
    """The line below every table: the load at both ends and which runs other work disturbed."""
    return (f"1-min load average {start:.2f} at the start, {end:.2f} at the end{where}; "
            + (f"BUSY: other processes took more than {FOREIGN_BUSY} cores during {', '.join(busy)}: "
               "these figures are not a result" if busy else "no other work took CPU during the timed runs"))


def check_backends(names, allowed) -> None:
    """ValueError naming the asked backends that are not `allowed`."""
    bad = [b for b in names if b not in allowed]
    if bad:
        raise ValueError(f"unknown backend(s) {bad}; allowed: {list(allowed)}")


def check_at_least(cfg, minimum: dict[str, int]) -> None:
    """ValueError naming the option of the first field of `cfg` below its minimum."""
    for name, low in minimum.items():
        value = getattr(cfg, name)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} {value}: must be {low} or more")


# ---- what the benchmarks read and print ----------------------------------------------------
def bench_manifest(path: str, split: str, min_videos: int) -> tuple[Manifest, int]:
    """(manifest of the split's usable rows, repeated to >= min_videos rows, repeat factor)."""
    m = Manifest.from_parquet(path).select(split)
    if len(m) == 0:
        raise ManifestError(f"{path}: no rows with split '{split}' and status 'ok'; pick another --split")
    reps = max(1, -(-min_videos // len(m)))
    if reps == 1:
        return m, 1
    df = pd.concat([m.df] * reps, ignore_index=True)
    df["video_id"] = [f"{v}#{i // len(m)}" for i, v in enumerate(df["video_id"])]
    return Manifest(df=df, root=m.root, meta=m.meta), reps


def environment(table: pd.DataFrame) -> dict:
    """Device, CPUs, codec mix and library versions, as printed above the table."""
    import av

    from ascnet.bench.baseline import decoder_versions
    from ascnet import __version__
    from ascnet.optional import cuda_available, dali_available

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"ascnet": __version__, "torch": torch.__version__, "numpy": np.__version__, "av": av.__version__,
                "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ())))}
    if dali_available():
        import nvidia.dali

        versions["nvidia-dali"] = nvidia.dali.__version__
    versions.update(decoder_versions())
    files = table.drop_duplicates("file")
    return {
        "device": torch.cuda.get_device_name(0) if cuda_available() else "cpu only",
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "codecs": dict(Counter(files["codec"])),
        "files": len(files),
        "versions": versions,
    }


def skip_reason(name: str, codecs: list[str]) -> str | None:
    """Why a loader backend cannot run here, or None."""
    from ascnet.optional import cuda_available, dali_available

    if name == "baseline":
        return None
    if name.startswith(("torchcodec", "torchvision")):
        try:
            import torchcodec.decoders  # noqa: F401
        except ImportError as e:
            return (f"torchcodec is not installed ({e}); it needs a CUDA build of torch: make peers builds that "
                    "environment (.venv-peers)")
        except Exception as e:  # its libraries fail to load, e.g. libnvrtc beside a CPU build of torch
            return (f"needs a CUDA torch: torchcodec's libraries do not load here ({str(e).splitlines()[-1][:160]}); "
                    "make peers builds that environment (.venv-peers)")
        if name == "torchvision":
            try:
                import torchvision.transforms.v2  # noqa: F401
            except Exception as e:
                return f"torchvision's transforms.v2 do not import ({e}); pip install torchvision (make peers)"
        return None
    if name == "nvdec" and not cuda_available():
        return "no CUDA GPU on this machine (NVDEC decodes on the GPU)"

    if not dali_available():
        return "NVIDIA DALI is not installed (pip install 'ascnet[dali]')"
    from ascnet.pipelines.backends import BackendError, choose_backend

    try:
        choose_backend(name.replace("-repeats", ""), "cuda" if name == "nvdec" else "cpu", codecs)
    except BackendError as e:
        return str(e)
    return None


def environment_lines(env: dict, manifest: str, split: str, rows: str, settings: str) -> str:
    """The header every benchmark prints: device, manifest and codec mix, settings, versions."""
    v = ", ".join(f"{k} {x}" for k, x in env["versions"].items())
    mix = ", ".join(f"{c} x{n}" for c, n in sorted(env["codecs"].items()))
    return (f"device: {env['device']}; CPU: {env['cpu']} ({env['cpus']} available)\n"
            f"manifest: {manifest} split {split}: {env['files']} files ({mix}), {rows}\n{settings}\n{v}")



@dataclass
class BackendRow:
    """The start of a benchmark's table row: a backend, whether it ran, and why not."""

    backend: str
    status: str  # ok / skipped / failed
    reason: str = ""


@dataclass(frozen=True)
class Table:
    """A fixed-width text table: `columns` are (title, width), the first left-aligned and the
    others right-aligned, one space apart; a free note follows two spaces after the last."""

    columns: tuple

    def line(self, *cells, note: str = "") -> str:
        (_, first), *rest = self.columns
        return f"{cells[0]:<{first}}" + "".join(f" {c:>{w}}" for c, (_, w) in zip(cells[1:], rest)) + f"  {note}"

    def head(self) -> list[str]:
        """The title line and a rule under it."""
        head = self.line(*(t for t, _ in self.columns), note="note")
        return [head, "-" * len(head)]

    def render(self, rows: list[BackendRow], ran) -> list[str]:
        """The head, then a line per row: `ran(row)` where it ran, else dashes and why not."""
        dashes = ["-"] * (len(self.columns) - 1)
        return self.head() + [ran(r) if r.status == "ok" else self.line(r.backend, *dashes, note=f"{r.status}: {r.reason}")
                              for r in rows]
