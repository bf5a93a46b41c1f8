"""`ascnet-bench decode` end to end on a tiny generated manifest, its skip reasons, its frame
check and its ceiling arithmetic."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ascnet.clips import ClipSpec
from ascnet.cli.bench import main as bench
from ascnet.manifest import Manifest
from ascnet.sampling import PairSample, sample_pair
from ascnet.optional import cuda_available
from ascnet.bench.baseline import pyav_frames
from ascnet.bench.common import BusyMachineError, Meter, check_quiet, skip_reason
from ascnet.bench.decode import (
    DecodeBenchConfig,
    _quarter,
    decode_cost,
    match_frames,
    modelled_costs,
    replay,
    run_decode_bench,
)
from ascnet.tools.synthetic import CODECS, write_pattern_video


def _manifest(tmp: Path, codec: str, specs) -> Path:
    rows = []
    for i, (n, fps) in enumerate(specs):
        p = write_pattern_video(tmp / f"v{i}{CODECS[codec][1]}", n, codec, width=64, height=48, fps=fps, gop=12)
        rows.append(dict(video_id=p.name, path=p.name, label=i, label_name=f"c{i}", split="train", num_frames=n, fps=fps,
                         width=64, height=48, codec=codec, status="ok"))
    return Manifest.from_rows(rows, root=tmp).write(tmp / "m.parquet")


@pytest.fixture(scope="module")
def vp9(tmp_path_factory) -> Path:
    return _manifest(tmp_path_factory.mktemp("vp9"), "vp9", [(60, 25.0), (80, 30.0), (70, 50.0)])


@pytest.fixture(scope="module")
def h264(tmp_path_factory) -> Path:
    return _manifest(tmp_path_factory.mktemp("h264"), "h264", [(60, 25.0), (50, 25.0)])


def test_end_to_end_json_one_row_per_backend(vp9, tmp_path):
    out = tmp_path / "res" / "bench.json"
    args = ["decode", str(vp9), "--backends", "nvdec,dali-cpu,pyav,baseline,ceiling", "--seconds", "1",
            "--batch-size", "2", "--workers", "1", "--clip-len", "8", "--crop-size", "32", "--min-videos", "48",
            "--check-pairs", "2", "--rounds", "1", "--allow-busy", "--json", str(out)]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [p.name for p in out.parent.iterdir()] == ["bench.json"]  # atomic: no temp file left
    rows = {r["backend"]: r for r in doc["rows"]}
    assert list(rows) == ["nvdec", "dali-cpu", "pyav", "baseline", "ceiling"]
    assert doc["environment"]["codecs"] == {"vp9": 3} and doc["repeat"] == 16
    assert doc["environment"]["cpus"] >= 1 and "nvidia-dali" in doc["environment"]["versions"]
    if not cuda_available():
        assert rows["nvdec"]["status"] == "skipped" and "no CUDA GPU" in rows["nvdec"]["reason"]
        assert "skipped: no CUDA GPU on this machine" in result.output
    ran = ("nvdec", "dali-cpu", "pyav", "baseline") if cuda_available() else ("dali-cpu", "pyav", "baseline")
    for name in ran:
        r = rows[name]
        assert r["status"] == "ok", (name, r["reason"])
        assert r["pairs"] > 0 and r["pairs_per_s"] > 0 and r["frames_per_s"] == pytest.approx(r["pairs_per_s"] * 16)
        assert r["frames_checked"] == 2 * 2 * 8 and r["frames_correct"] == r["frames_checked"], (name, r["wrong"])
        assert f"{r['frames_correct']}/{r['frames_checked']}" in result.output and r["wrong_by_file"] == {}
        assert 0 < r["cpu_s_per_pair"] < 60 and r["machine_cpu_s_per_pair"] > 0
        assert r["workers"] == 1 and list(r["sweep"]) == ["1"] and len(r["load"]) == 2 and r["warmup_batches"] == 3
        # frames decoded per pair: at least the frames the two clips span, and counted where the decoder tells
        assert r["decoded_per_pair"] >= r["ideal_per_pair"] > 8
        assert r["decoded_how"] == ("counted" if name == "pyav" else "model")
    assert rows["baseline"]["ratio"] == pytest.approx(1.0)
    assert rows["pyav"]["ratio"] == pytest.approx(rows["pyav"]["pairs_per_s"] / rows["baseline"]["pairs_per_s"])
    assert rows["ceiling"]["status"] == "ok" and rows["ceiling"]["pairs_per_s"] > 0 and rows["ceiling"]["cpu_s_per_pair"] > 0
    # the ceiling replays the fastest CPU loader's timed pairs on that loader's processes (1 worker here)
    assert doc["ceiling"]["cores"] == 1 and doc["ceiling"]["replays"] in ran
    assert "device:" in result.output and "vp9 x3" in result.output and "CPU ms/pair" in result.output
    assert "of ceiling" in result.output and "x peer" in result.output


def test_unavailable_backends_are_skipped_with_their_reason(h264, tmp_path):
    assert "decodes only ['mjpeg', 'vp8', 'vp9']" in skip_reason("dali-cpu", ["h264"])
    assert skip_reason("dali-cpu", ["vp9"]) is None and skip_reason("baseline", ["h264"]) is None
    cfg = DecodeBenchConfig(manifest=str(h264), backends=("dali-cpu", "nvdec") if not cuda_available() else ("dali-cpu",),
                            batch_size=2, allow_busy=True, json=str(tmp_path / "b.json"))
    lines = []
    doc = run_decode_bench(cfg, echo=lines.append)
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows == doc["rows"] and all(r["status"] == "skipped" and r["pairs_per_s"] is None for r in rows)
    assert "re-index with --transcode vp9 --transcode-dir DIR (ascnet-index build)" in rows[0]["reason"]
    assert "skipped: backend 'dali-cpu' decodes only" in "\n".join(lines)


def test_bad_input_is_named(vp9, tmp_path):
    r = CliRunner().invoke(bench, ["decode", str(vp9), "--backends", "pyav,ffcv"])
    assert r.exit_code != 0 and "unknown backend(s) ['ffcv']; allowed: ['nvdec', 'dali-cpu', 'pyav', 'baseline', 'torchcodec', 'torchcodec-approx', 'torchvision', 'dali-cpu-repeats', 'ceiling']" in r.output
    r = CliRunner().invoke(bench, ["decode", str(tmp_path / "nope.parquet")])
    assert r.exit_code != 0 and "nope.parquet: no such manifest" in r.output
    r = CliRunner().invoke(bench, ["decode", str(vp9), "--workers", "1,x"])
    assert r.exit_code != 0 and "give worker counts separated by commas" in r.output
    r = CliRunner().invoke(bench, ["decode", str(vp9), "--split", "test"])
    assert r.exit_code != 0 and "no rows with split 'test' and status 'ok'" in r.output


def test_frame_check_catches_a_shifted_frame(vp9):
    """The check's comparison on real decoded frames: the named frame passes, its neighbour does not."""
    m = Manifest.from_parquet(vp9)
    file = str(m.resolve("v1.webm"))
    frames = torch.from_numpy(pyav_frames(file, range(80))).permute(0, 3, 1, 2).float()
    truth = _quarter(torch.nn.functional.interpolate(frames, size=(32, 43))[..., 5:37])
    named = [10, 11, 12, 40]
    exact = truth[named]
    assert match_frames(exact, named, truth) == named
    assert match_frames(exact + 2.5, named, truth) == named  # DALI's 2-3 levels of RGB difference
    assert match_frames(truth[[11, 12, 13, 40]], named, truth) == [11, 12, 13, 40]  # a seek one frame late
    assert match_frames(exact * 0 + 128, named, truth)[0] != 10


def test_a_loaded_machine_is_refused_unless_allowed():
    with pytest.raises(BusyMachineError, match=r"load average is .* --allow-busy"):
        check_quiet(False, max_load=-1.0)
    said = []
    assert check_quiet(True, echo=said.append, max_load=-1.0) >= 0
    assert "measuring anyway" in said[0]


def test_meter_tells_other_work_from_the_loaders_own():
    import subprocess
    import time

    def spin(seconds):
        t = time.process_time()
        while time.process_time() - t < seconds:
            pass

    with Meter() as own:
        spin(0.6)
    assert own.tree_cpu == pytest.approx(0.6, abs=0.15) and own.machine_cpu >= own.tree_cpu - 0.05
    # a busy process outside this process tree (its parent shell exits at once)
    subprocess.run(["sh", "-c", "timeout 3 sh -c 'while :; do :; done' >/dev/null 2>&1 &"], check=True)
    try:
        with Meter() as other:
            time.sleep(1.0)
    finally:
        subprocess.run(["pkill", "-f", "while :; do :; done"])
    assert other.tree_cpu < 0.1 and other.foreign_cores > 0.5


def test_decode_cost_reads_on_or_jumps_to_the_keyframe_before():
    keys = [0, 16, 32]
    assert decode_cost([3, 5, 40], keys) == 4 + 2 + 9      # 0..3, on to 5, jump to 32..40
    assert decode_cost([3, 3, 5], keys) == 4 + 4 + 2       # a repeated index seeks back: 0..3 twice
    assert decode_cost([20, 5], keys) == 5 + 6             # backwards: 16..20, then 0..5
    assert decode_cost([30], []) == 31                     # no table: from frame 0


def test_torchcodec_row_runs_where_it_loads_and_says_why_not_elsewhere(vp9):
    reason = skip_reason("torchcodec", ["vp9"])
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:
        assert reason and "torchcodec" in reason and "CUDA" in reason
        return
    assert reason is None  # where it loads, the row runs: the same pairs through get_frames_at
    from ascnet.bench.baseline import build_baseline_loader

    loader = build_baseline_loader(Manifest.from_parquet(vp9), ClipSpec(clip_len=8, crop_size=32, augment=False),
                                   batch_size=2, workers=0, decoder="torchcodec")
    assert loader.backend == "torchcodec" and next(loader.epoch(0))["clip_a"].shape == (2, 3, 8, 32, 32)


# ---- the review's faults, each reproduced first ---------------------------------------------
def _keyed_manifest(tmp: Path, specs, gop: int, codec: str = "h264") -> Path:
    """Like _manifest, with each file's keyframe table (every `gop` frames, as the encoder wrote them)."""
    rows = []
    for i, (n, fps) in enumerate(specs):
        p = write_pattern_video(tmp / f"k{i}{CODECS[codec][1]}", n, codec, width=64, height=48, fps=fps, gop=gop)
        rows.append(dict(video_id=p.name, path=p.name, label=i, label_name=f"c{i}", split="train", num_frames=n, fps=fps,
                         width=64, height=48, codec=codec, status="ok", keyframes=list(range(0, n, gop))))
    return Manifest.from_rows(rows, root=tmp).write(tmp / "m.parquet")


def test_ceiling_charges_what_the_reader_decodes(tmp_path):
    """A speed-8 clip on a GOP-16 file: the reader jumps to later keyframes inside the clip."""
    from ascnet.pipelines.decode import read_frames

    m = Manifest.from_parquet(_keyed_manifest(tmp_path, [(200, 25.0)], gop=16))
    file, keys = str(m.resolve("k0.mp4")), np.arange(0, 200, 16)
    a, b = np.arange(5, 5 + 16 * 8, 8), np.arange(150, 166)
    _, counted = read_frames(file, np.concatenate([a, b]), 25.0, keys)
    table = m.decode_table()
    wall, cpu, decoded = replay(table, [PairSample(0, 8, 1, a, b)])
    assert decoded == counted == 112 + 22 and wall > 0 and cpu > 0  # not the 126 + 22 of whole windows from frame 0
    assert modelled_costs(PairSample(0, 8, 1, a, b), keys)["reader"] == counted


def test_ceiling_runs_on_the_loaders_processes_and_the_rate_reaches_every_check(tmp_path):
    """--workers 1: the ceiling on one core, not all CPUs. --rate native on 30 fps files: the frame
    check, the frames model and the ceiling sample the same frames as the loaders."""
    m = _keyed_manifest(tmp_path, [(90, 30.0), (80, 30.0), (70, 30.0)], gop=12)
    cfg = DecodeBenchConfig(manifest=str(m), backends=("pyav", "ceiling"), batch_size=2, workers=(1,), seconds=0.5,
                            clip=ClipSpec(clip_len=8, crop_size=32, speeds=(1, 4), rate="native"), min_videos=48,
                            check_pairs=2, rounds=1, allow_busy=True)
    doc = run_decode_bench(cfg, echo=lambda *_: None)
    rows = {r["backend"]: r for r in doc["rows"]}
    assert rows["pyav"]["frames_correct"] == rows["pyav"]["frames_checked"] == 2 * 2 * 8, rows["pyav"]["wrong"]
    assert doc["ceiling"]["cores"] == 1 and doc["ceiling"]["replays"] == "pyav"
    # the ceiling decodes exactly the pairs pyav timed, as pyav's workers do: a bound for that row
    assert rows["ceiling"]["decoded_per_pair"] == pytest.approx(rows["pyav"]["decoded_per_pair"])
    assert rows["pyav"]["ceiling_share"] == pytest.approx(rows["pyav"]["pairs_per_s"] / rows["ceiling"]["pairs_per_s"])
    # speeds 1 and 4 as strides: clip windows of 8 and 29 frames, so a pair spans at most 37
    assert rows["pyav"]["ideal_per_pair"] <= 37


def test_every_loader_is_warmed_up_alike_timed_in_rounds_on_a_warm_page_cache(vp9):
    cfg = DecodeBenchConfig(manifest=str(vp9), backends=("pyav", "baseline"), batch_size=2, workers=(1,), seconds=0.3,
                            clip=ClipSpec(clip_len=8, crop_size=32), min_videos=64, check_pairs=0, rounds=2,
                            allow_busy=True)
    doc = run_decode_bench(cfg, echo=lambda *_: None)
    assert doc["page_cache"]["files"] == 3 and doc["page_cache"]["bytes"] == sum(
        p.stat().st_size for p in Path(vp9).parent.glob("*.webm"))
    for r in doc["rows"]:
        assert r["warmup_batches"] == 2 * 1 + 1  # what a DataLoader of 1 worker has ready: 2 batches, + 1
        assert len(r["rounds"][1]) == 2 and r["pairs_per_s"] == pytest.approx(float(np.median(r["rounds"][1])))
        assert not r["epoch_ended"]  # 64 rows: the epoch outlasts warm-up and timing


def test_the_old_methods_rules_can_be_switched_back_on_one_at_a_time(vp9):
    """--warmup, --across-epochs and --no-peers-persistent bring back what the fair method removed, so
    each fix's effect on a ratio can be measured; the run then says it is not the fair method."""
    from ascnet.bench.decode import _build

    base = dict(manifest=str(vp9), backends=("baseline",), batch_size=2, workers=(1,), seconds=1.0,
                clip=ClipSpec(clip_len=8, crop_size=32), min_videos=8, check_pairs=0, rounds=1, allow_busy=True)
    lines: list[str] = []
    old = run_decode_bench(DecodeBenchConfig(**base, warmup=1, across_epochs=True, peers_persistent=False),
                           echo=lambda *a: lines.append(" ".join(map(str, a))))
    r = old["rows"][0]
    assert r["warmup_batches"] == 1 and not r["epoch_ended"]
    assert r["pairs"] > 8  # timed on past the end of the 4-batch epoch, into the next ones
    assert "NOT the fair method: timed on across epochs, the peers' workers restart every epoch" in "\n".join(lines)
    fair = run_decode_bench(DecodeBenchConfig(**base), echo=lambda *_: None)["rows"][0]
    assert fair["warmup_batches"] == 3 and fair["epoch_ended"] and fair["pairs"] <= 8 - 2 * 3  # epoch 0 only
    manifest = Manifest.from_parquet(vp9)
    for persistent in (True, False):  # the loader the timing builds carries the switch
        cfg = DecodeBenchConfig(**{**base, "peers_persistent": persistent}).check()
        loader = _build("baseline", manifest, cfg, augment=True, workers=1)
        assert loader.dataloader.persistent_workers is persistent
        loader.close()


def test_decord_serves_both_clips_from_one_reader_and_dali_reads_on_up_to_ten_frames():
    keys = np.array([0, 16, 32, 100])
    # clip b right after clip a in the same keyframe interval: decord's reader reads on (no seek)
    pair = PairSample(0, 1, 2, np.arange(0, 8), np.arange(8, 16))
    assert modelled_costs(pair, keys)["decord"] == 16
    # DALI: a frame at most 10 ahead is read on, even past a keyframe (10 -> 18 reads 11..18)
    pair = PairSample(0, 1, 2, np.array([10, 11]), np.array([18, 19]))
    assert modelled_costs(pair, keys)["dali"] == 11 + 1 + 7 + 1

    # a repeated index: DALI sorts the indices it is sent, and decodes a repeat again from its keyframe
    pair = PairSample(0, 1, 2, np.array([3, 4]), np.array([4, 5]))
    assert modelled_costs(pair, keys)["dali-repeats"] == 4 + 1 + 5 + 1 and modelled_costs(pair, keys)["dali"] == 6
    # torchcodec: one call for the pair, sorted, each index once: clip b behind clip a costs no seek back
    pair = PairSample(0, 1, 2, np.array([20, 21]), np.array([17, 18]))
    assert modelled_costs(pair, keys)["torchcodec"] == 6 and modelled_costs(pair, keys)["decord"] == 6 + 3


def test_the_readers_model_matches_its_counted_decodes(tmp_path):
    """The model of pyav's reader against the frames the reader counts, over many sampled pairs; decord and
    torchcodec report no such count, so their models follow their sources instead."""
    from ascnet.pipelines.decode import read_frames

    m = Manifest.from_parquet(_keyed_manifest(tmp_path, [(150, 25.0), (120, 50.0)], gop=12))
    table = m.decode_table()
    for vi in range(2):
        row = table.iloc[vi]
        for epoch in range(8):
            pair = sample_pair(vi, int(row.num_frames), float(row.fps), seed=1, epoch=epoch, clip_len=8)
            _, counted = read_frames(row.file, pair.frames, float(row.fps), row.keyframes)
            assert modelled_costs(pair, row.keyframes)["reader"] == counted, (vi, epoch)
