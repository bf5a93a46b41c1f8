"""A long `ascnet-index build`: time limits, progress saved as it goes (resume after kill -9 or
SIGTERM), the progress bar, and the per-file work on a Dask cluster; real ffprobe, real processes."""
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ascnet.cli.index import main
from ascnet.manifest import LIST_COLUMNS, Manifest
from ascnet.tools.index import partial_path
from ascnet.tools.synthetic import write_pattern_video
from ascnet.tools.transcode import TranscodeError, transcode

VIDEOS = 16
LIMIT = 10  # seconds: well above a small video's probe on a loaded machine


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args] + ["--no-progress"])


def rows(path) -> pd.DataFrame:
    df = Manifest.from_parquet(path).df
    return df.assign(**{c: [list(v) for v in df[c]] for c in LIST_COLUMNS})


def running(text: str) -> list[str]:
    """Command lines of the processes now running that mention `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and int(pid) != os.getpid():
            found.append(cmd)
    return found


def unblock(fifo: Path) -> None:
    """Open the FIFO's writing end and close it: a reader blocked on it sees end of file."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader waiting


@pytest.fixture(scope="module")
def hanging(tmp_path_factory):
    """Two good videos and `b/hang.mp4`, a regular file that makes ffprobe and ffmpeg block for
    ever: an ffconcat script naming a FIFO that no one writes (the folder layout lists no FIFO)."""
    root = tmp_path_factory.mktemp("hanging")
    write_pattern_video(root / "a/one.avi", 30, "mpeg4", 64, 48)
    write_pattern_video(root / "a/two.webm", 20, "vp9", 64, 48)
    (root / "b").mkdir()
    fifo = root / "b/pipe.fifo"
    os.mkfifo(fifo)
    (root / "b/hang.mp4").write_text("ffconcat version 1.0\nfile pipe.fifo\n")
    # a limit that failed would leave a probe blocked: unblock it, so the test fails instead of hanging
    guard = threading.Timer(120, unblock, (fifo,))
    guard.daemon = True
    guard.start()
    out = tmp_path_factory.mktemp("local") / "m.parquet"
    start = time.monotonic()
    res = run("build", root, "--layout", "folder", "--out", out, "--probe-timeout", LIMIT, "--min-frames", 1)
    yield root, out, res, time.monotonic() - start
    guard.cancel()
    unblock(fifo)


@pytest.mark.slow
def test_a_file_that_hangs_is_stopped_at_its_time_limit_and_the_build_goes_on(hanging, tmp_path):
    root, out, res, took = hanging
    assert res.exit_code == 0, res.output
    assert res.output.startswith("probed 3, reused 0 unchanged;")
    assert LIMIT <= took < 60, took  # the limit, and the rest on a loaded machine; the guard would fire at 120
    df = Manifest.from_parquet(out).df.set_index("video_id")
    assert df.loc["b/hang.mp4", ["status", "error"]].tolist() == [
        "corrupt", f"ffprobe did not finish within {LIMIT} s (--probe-timeout): a huge file, a stalled disk or a file "
                   "that hangs the decoder; raise the limit to give it longer (it is probed again then)"]
    assert df.loc[["a/one.avi", "a/two.webm"], "status"].tolist() == ["ok", "ok"]
    assert running(str(root / "b/hang.mp4")) == []  # killed, not left blocked
    assert not partial_path(out).exists()
    # the same limit reuses the verdict; a higher one tries the file again (this time its FIFO gives
    # end of file at once, so it is unreadable instead)
    local = tmp_path / "m.parquet"
    shutil.copy(out, local)
    again = run("build", root, "--layout", "folder", "--out", local, "--probe-timeout", LIMIT, "--min-frames", 1)
    assert again.output.startswith("probed 0, reused 3 unchanged;"), again.output
    ended = threading.Event()
    feeder = threading.Thread(target=lambda: [unblock(root / "b/pipe.fifo") for _ in iter(lambda: ended.wait(0.05), True)])
    feeder.start()
    try:
        longer = run("build", root, "--layout", "folder", "--out", local, "--probe-timeout", LIMIT + 1, "--min-frames", 1)
    finally:
        ended.set()
        feeder.join()
    assert longer.output.startswith("probed 1, reused 2 unchanged;"), longer.output
    error = Manifest.from_parquet(local).df.set_index("video_id").loc["b/hang.mp4", "error"]
    assert error.startswith("ffprobe cannot read it"), error
    assert running(str(root / "b/hang.mp4")) == []


def test_a_transcode_past_its_time_limit_is_killed(hanging, tmp_path):
    root = hanging[0]
    dst = tmp_path / "copy.mp4"
    with pytest.raises(TranscodeError, match=rf"^{re.escape(str(root / 'b/hang.mp4'))}: the h264 copy: ffmpeg did not "
                                             r"finish within 1 s \(--probe-timeout\); raise the limit to give it longer$"):
        transcode(root / "b/hang.mp4", dst, "h264", timeout=1)
    assert not dst.exists() and list(tmp_path.iterdir()) == []  # no half copy left
    assert running(str(root / "b/hang.mp4")) == []


# ---- progress saved as it goes -------------------------------------------------------------
@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """VIDEOS small videos (copies of one) and the manifest of an uninterrupted build of them."""
    root = tmp_path_factory.mktemp("many")
    first = write_pattern_video(root / "c0/v00.avi", 30, "mpeg4", 64, 48)
    for i in range(1, VIDEOS):
        (root / f"c{i % 3}").mkdir(exist_ok=True)
        shutil.copy(first, root / f"c{i % 3}/v{i:02d}.avi")
    out = tmp_path_factory.mktemp("clean") / "m.parquet"
    assert run("build", root, "--layout", "folder", "--out", out, "--min-frames", 1).exit_code == 0
    return root, rows(out)


def interrupted_build(root, out, signum) -> tuple[subprocess.CompletedProcess, int]:
    """Start a build in a process, send it `signum` once it has saved some rows; (its result,
    the number of rows saved). A file that blocks ffprobe, probed last, keeps the build from ending
    first on any machine; it is taken away before the build is run again."""
    brake = root / "zz"
    brake.mkdir()
    os.mkfifo(brake / "pipe.fifo")
    (brake / "hang.mp4").write_text("ffconcat version 1.0\nfile pipe.fifo\n")
    cmd = [sys.executable, "-c", "from ascnet.cli.index import main; main()", "build", str(root), "--layout", "folder",
           "--out", str(out), "--min-frames", "1", "--workers", "1", "--save-every", "0.2", "--probe-timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    partial = partial_path(out)
    try:
        deadline = time.monotonic() + 120  # the brake holds the build for 60 s after its last video
        while not list(partial.glob("rows-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None and list(partial.glob("rows-*.parquet")), "the build saved no rows in 120 s"
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
        left = running(str(brake))
    finally:
        proc.kill()
        unblock(brake / "pipe.fifo")  # an ffprobe that outlived a killed build
        shutil.rmtree(brake)
    saved = sum(len(Manifest.from_parquet(p)) for p in partial.glob("rows-*.parquet"))
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout.decode(), stderr.decode()), saved, left


def test_a_killed_build_resumes_without_probing_the_saved_rows_again(many, tmp_path):
    root, clean = many
    out = tmp_path / "m.parquet"
    done, saved, _ = interrupted_build(root, out, signal.SIGKILL)
    assert done.returncode == -signal.SIGKILL and not out.exists(), done
    assert 0 < saved <= VIDEOS
    res = run("build", root, "--layout", "folder", "--out", out, "--min-frames", 1)
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"probed {VIDEOS - saved}, reused {saved} unchanged;"), (saved, res.output)
    pd.testing.assert_frame_equal(rows(out), clean)
    assert not partial_path(out).exists()


def test_sigterm_saves_what_is_done_and_says_how_to_resume(many, tmp_path):
    root, clean = many
    out = tmp_path / "m.parquet"
    done, saved, left = interrupted_build(root, out, signal.SIGTERM)
    assert done.returncode == 128 + signal.SIGTERM and not out.exists(), done
    message = re.search(r"ascnet-index: stopped by SIGTERM after (\d+) of (\d+) files; the finished rows are saved "
                        rf"in {re.escape(str(partial_path(out)))}: run the same command again to resume", done.stderr)
    assert message, done.stderr
    assert int(message[1]) == saved and 0 < saved <= VIDEOS and int(message[2]) == VIDEOS + 1  # every finished row
    # the progress bar: files done of all, elapsed < left, rate
    assert re.search(rf"probing: +\d+%\|.*\| \d+/{VIDEOS + 1} \[\d\d:\d\d<\d\d:\d\d, +[\d.]+file/s\]", done.stderr), \
        done.stderr
    assert left == []  # its ffprobe processes were ended, not left behind
    res = run("build", root, "--layout", "folder", "--out", out, "--min-frames", 1)
    assert res.output.startswith(f"probed {VIDEOS - saved}, reused {saved} unchanged;"), (saved, res.output)
    pd.testing.assert_frame_equal(rows(out), clean)
    assert not partial_path(out).exists()


# ---- a Dask cluster ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_dask_cluster_writes_the_rows_the_local_pool_writes(hanging, tmp_path):
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("Dask's distributed is not installed: pip install 'ascnet[dist]'")
    root, local, _, _ = hanging
    out = tmp_path / "m.parquet"
    # in a process of its own: importing distributed changes how exceptions pickle (tblib) for the
    # whole process, which DALI's worker channel then refuses in the tests that follow
    script = ("import sys, distributed\n"
              "from click.testing import CliRunner\n"
              "from ascnet.cli.index import main\n"
              "with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c:\n"
              "    r = CliRunner().invoke(main, sys.argv[1:] + ['--scheduler', c.scheduler_address])\n"
              "    sys.stdout.write(r.output)\n"
              "    sys.exit(r.exit_code)\n")
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-c", script, "build", str(root), "--layout", "folder", "--out", str(out),
                          "--probe-timeout", str(LIMIT), "--min-frames", "1"], capture_output=True, text=True, timeout=300)
    took = time.monotonic() - start
    assert res.returncode == 0, res.stdout + res.stderr
    assert "probed 3, reused 0 unchanged;" in res.stdout, res.stdout
    assert took < 60, took  # the time limit holds on the workers too (the equal rows say so, below)
    pd.testing.assert_frame_equal(rows(out), rows(local))
    assert running(str(root / "b/hang.mp4")) == []


def test_scheduler_without_dask_names_the_extra(hanging, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as where it is not installed
    res = run("build", hanging[0], "--layout", "folder", "--out", tmp_path / "m.parquet",
              "--scheduler", "tcp://127.0.0.1:8786")
    assert res.exit_code == 2
    assert res.output.strip() == ("ascnet-index: --scheduler sends the work to a Dask cluster, which needs Dask's "
                                  "distributed scheduler here and on the workers: pip install 'ascnet[dist]'")
