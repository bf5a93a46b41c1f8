"""ffprobe/ffmpeg processes under a time limit, each killed (not left running) when it is past it.

The limit is enforced where the process runs, inside the task, so it holds the same in a local
pool and on a Dask worker. `stop_all()` kills the processes this one has running (a stopped
build does not wait for them) and refuses new ones until `reset()`.
"""
from __future__ import annotations

import signal
import subprocess
import threading

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()
_stopping = threading.Event()


class TimeLimitError(RuntimeError):
    """The process ran past its limit and was killed."""

    def __init__(self, cmd: list[str], timeout: float):
        super().__init__(f"{cmd[0]} did not finish within {timeout:g} s")
        self.timeout = timeout


class StoppedError(RuntimeError):
    """The process was not started, or was ended by SIGINT/SIGTERM: the build is stopping (or,
    where it is not, the job is to be run again)."""


def run(cmd: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    """Run `cmd` (no stdin; stdout and stderr captured) within `timeout` seconds (None: no limit).

    Raises `TimeLimitError` past the limit, `subprocess.CalledProcessError` (with stderr) on a
    non-zero exit, `StoppedError` when `stop_all()` came first.
    """
    with _lock:
        if _stopping.is_set():
            raise StoppedError(f"{cmd[0]} not started: stopping")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _running.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TimeLimitError(cmd, timeout) from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    finally:
        with _lock:
            _running.discard(proc)
    # ended by stop_all(), or by the SIGINT a terminal's Ctrl-C sends the whole process group
    if _stopping.is_set() or proc.returncode in (-signal.SIGINT, -signal.SIGTERM):
        raise StoppedError(f"{cmd[0]} ended: stopping")
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, out, err)
    return subprocess.CompletedProcess(cmd, 0, out, err)


def stop_all() -> None:
    """Kill every process started here that is still running; start no more until `reset()`."""
    with _lock:
        _stopping.set()
        for proc in _running:
            proc.kill()


def reset() -> None:
    _stopping.clear()
