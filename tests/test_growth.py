"""Growth with the dataset: per-row costs stay per-row, replicated manifests, the growth table."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ascnet.bench.growth import GrowthConfig, children, proc_memory, replicate_manifest, run_growth
from ascnet.manifest import Manifest, ManifestError
from ascnet.pipelines.schedules import TrainSchedule


def _manifest(root, paths):
    rows = [{"video_id": p, "path": p, "label": 0, "label_name": "a", "split": "train", "num_frames": 50, "fps": 25.0,
             "codec": "mpeg4", "status": "ok", "keyframes": [0, 12]} for p in paths]
    return Manifest.from_rows(rows, root)


def test_decode_table_resolves_plain_paths_without_the_slow_way(tmp_path, monkeypatch):
    """At Kinetics' 240k rows, one `resolve` per row took most of a minute: only paths with a '.', '..'
    or empty part go through it now, and every path comes out as `resolve` gives it."""
    odd = ["a/../b/x.avi", "./c.avi", "d//e.avi"]
    m = _manifest(tmp_path, [f"cls{i % 7}/v{i}.avi" for i in range(1000)] + odd)
    expected = [str(m.resolve(p)) for p in m.df["path"]]
    calls = []
    real = Manifest.resolve
    monkeypatch.setattr(Manifest, "resolve", lambda self, rel: calls.append(rel) or real(self, rel))
    table = m.decode_table()
    assert list(table["file"]) == expected
    assert sorted(calls) == sorted(odd)  # 3 calls for 1,003 rows
    bad = _manifest(tmp_path / "root", ["ok.avi", "x/../../out.avi"])
    with pytest.raises(ManifestError, match="leads out of the manifest root"):
        bad.decode_table()


def test_an_epoch_plans_once_whatever_its_size(monkeypatch):
    """The schedule draws an epoch's order once (O(N)), not once per sample (O(N^2) an epoch)."""
    import ascnet.pipelines.schedules as schedules

    calls = []
    real = schedules.shard_plan
    monkeypatch.setattr(schedules, "shard_plan", lambda *a, **k: calls.append(k["epoch"]) or real(*a, **k))
    n, b = 2000, 8
    s = TrainSchedule(num_frames=np.full(n, 100), fps=np.full(n, 25.0), sizes=np.zeros((n, 2), int),
                      names=[str(i) for i in range(n)], batch_size=b, seed=0, num_shards=2, shard_id=1)
    seen = [s.request(g).video_index for g in range(2 * s.steps * b)]  # two whole epochs
    assert calls == [0, 1]
    assert len(set(seen[:s.steps * b])) == s.steps * b  # an epoch visits distinct videos


def test_replicated_manifest_has_distinct_ids_and_cycles_the_files(tmp_path):
    src = _manifest(tmp_path, ["a/1.avi", "b/2.avi", "c/3.avi"])
    src.df.loc[1, "status"] = "corrupt"  # not replicated
    big = replicate_manifest(src, 1000, classes=400)
    assert len(big) == 1000 and big.df["video_id"].is_unique
    assert set(big.df["path"]) == {"a/1.avi", "c/3.avi"} and set(big.df["split"]) == {"train"}
    assert big.df["label"].max() == 399
    big.write(tmp_path / "big.parquet")
    assert len(Manifest.from_parquet(tmp_path / "big.parquet")) == 1000


def test_memory_readings_of_a_process_tree():
    import os
    import subprocess

    child = subprocess.Popen(["sleep", "5"])
    try:
        assert child.pid in children(os.getpid())
        mine = proc_memory(os.getpid())
        assert mine["rss_mb"] > 10 and mine["hwm_mb"] >= mine["rss_mb"] and 0 < mine["private_mb"] <= mine["rss_mb"]
    finally:
        child.kill()
        child.wait()


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="--ucf-root"):
        GrowthConfig(stages=("index",)).check()
    with pytest.raises(ValueError, match="--manifest"):
        GrowthConfig(stages=("manifest",)).check()


@pytest.fixture
def real_manifest(real_clips, tmp_path):
    from ascnet.tools.index import IndexConfig, build_index

    out = tmp_path / "real.parquet"
    build_index(IndexConfig(root=str(real_clips / "ucf101"), layout="ucf101", out=str(out), workers=1, progress=False))
    return out


@pytest.mark.slow
def test_growth_table_at_tiny_sizes(real_manifest, tmp_path):
    """The whole command on tiny sizes: the manifest stage in its own process with its decoder workers'
    memory, the table, the JSON and the plot."""
    from ascnet.cli.bench_growth import growth

    out = tmp_path / "g"
    res = CliRunner().invoke(growth, ["--manifest", str(real_manifest), "--stages", "manifest", "--sizes", "16",
                                      "--out", str(out), "--allow-busy"])
    assert res.exit_code == 0, res.output
    assert "manifest" in res.output and "workers peak/Pss/private MB" in res.output
    rows = json.loads((out / "growth.json").read_text())["rows"]
    assert [(r["stage"], r["size"], r["videos"]) for r in rows] == [("manifest", 16, 16)]
    for r in rows:
        assert len(r["workers"]) == 2 and all(w["rss_mb"] > 0 for w in r["workers"])  # both decoder workers found
        assert r["first_batch_s"] > 0 and r["peak_main_mb"] > 100
    assert (out / "growth.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_growth_index_stage_keeps_each_manifest(tmp_path):
    """The index stage builds each subset afresh in its own process and keeps its manifest in --out:
    the whole set's is what the end-to-end jobs read next."""
    from ascnet.cli.bench_growth import growth
    from ascnet.tools.ucf_like import main as ucf_like

    root = tmp_path / "ucf_like"
    res = CliRunner().invoke(ucf_like, ["--out", str(root), "--videos", "8", "--classes", "2", "--max-seconds", "1.2",
                                        "--workers", "2"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "g"
    for sizes, want in (("4,0", [(4, "probed 4"), (8, "probed 8")]), ("0", [(8, "probed 8")])):
        # the second run finds the kept manifest and still probes every file: it times a fresh build;
        # it runs beside a process outside the benchmark's tree that keeps a core busy: marked busy
        burner = None if sizes != "0" else subprocess.run(
            ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
            capture_output=True, text=True, check=True).stdout.strip()  # orphaned: not the benchmark's child
        try:
            res = CliRunner().invoke(growth, ["--ucf-root", str(root), "--stages", "index", "--index-sizes", sizes,
                                              "--out", str(out), "--allow-busy"])
        finally:
            if burner:
                os.kill(int(burner), signal.SIGKILL)
        assert res.exit_code == 0, res.output
        rows = json.loads((out / "growth.json").read_text())["rows"]
        assert [(r["stage"], r["videos"], r["detail"]) for r in rows] == [("index", *w) for w in want]
        assert all(r["foreign_cores"] is not None for r in rows)
        if burner:  # other work's CPU during the stage marks it, not the load average before it (slow to rise)
            assert rows[0]["busy"], rows  # foreign_cores > FOREIGN_BUSY (the burner shares 2 cores with the stage)
            assert "BUSY" in res.output
    assert len(Manifest.from_parquet(out / "index-4.parquet")) == 4
    kept = Manifest.from_parquet(out / "index-8.parquet")
    assert len(kept) == 8 and set(kept.df["status"]) == {"ok"}
