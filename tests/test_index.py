"""`ascnet-index build / show / validate` end to end through the CLI, on videos made at test time."""
import os
import re
import shutil

import av
import ffmpeg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ascnet.cli.index import main
from ascnet.manifest import Manifest, ManifestError
from ascnet.pipelines.decode import decode_frames
from ascnet.tools.probe import probe
from ascnet.tools.synthetic import read_index, write_pattern_video
from tests.test_probe import damaged_copy, make_bad_inputs, write_vfr_video


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args] + (["--no-progress"] if args[0] == "build" else []))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder-layout dataset: good videos of three codecs (a class with a space) + every bad input."""
    root = tmp_path_factory.mktemp("mixed")
    good = {
        "jumping jacks/a.webm": write_pattern_video(root / "jumping jacks/a.webm", 30, "vp9", 64, 48),
        "jumping jacks/b.mp4": write_pattern_video(root / "jumping jacks/b.mp4", 24, "h264", 80, 48, bframes=2),
        "waving/c.avi": write_pattern_video(root / "waving/c.avi", 40, "mpeg4", 64, 48),
    }
    bad = make_bad_inputs(root / "zz bad")
    return root, good, bad


def copy_tree(src, dst):
    shutil.copytree(src, dst, copy_function=shutil.copy2)  # keep mtimes: reuse depends on them
    return dst


def test_build_indexes_good_files_beside_every_bad_one(mixed, tmp_path):
    root, good, bad = mixed
    out = tmp_path / "m.parquet"
    res = run("build", root, "--layout", "folder", "--out", out, "--workers", 2)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("probed 9, reused 0 unchanged; wrote")
    m = Manifest.from_parquet(out)
    df = m.df.set_index("video_id")
    assert list(m.df["video_id"]) == sorted(m.df["video_id"])  # stable order: sorted relative paths
    assert df.loc["jumping jacks/a.webm", ["num_frames", "codec", "status", "label", "label_name"]].tolist() == \
        [30, "vp9", "ok", 0, "jumping jacks"]
    assert df.loc["jumping jacks/b.mp4", ["num_frames", "codec", "width"]].tolist() == [24, "h264", 80]
    assert df.loc["waving/c.avi", ["num_frames", "codec", "label"]].tolist() == [40, "mpeg4", 1]
    for name, (status, pattern) in bad.items():
        if name == "missing.avi":
            continue  # the folder layout lists only files that exist
        row = df.loc[f"zz bad/{name}"]
        assert row["status"] == status and re.search(pattern, row["error"]), (name, row["error"])
    assert (df.loc[list(good), "error"] == "").all()
    assert m.meta["layout"] == "folder" and m.meta["tool_version"] == "0.1.0" and m.meta["split_number"] == 1
    assert m.meta["root"] == str(root.resolve())
    assert (m.df["path"] == m.df["video_id"]).all() and not m.df["path"].str.startswith("/").any()
    # the summary: per split x status, classes, codecs, resolutions, frame range, hours, problems
    assert re.search(r"train\s+3\s+2\s+3\s+1\s+0\s+9", res.output), res.output
    assert "classes      3 (9 labelled videos)" in res.output
    assert "frames (ok)  min 24, median 30, max 40" in res.output
    assert re.search(r"codecs .*mpeg4 1", res.output) and "80x48 1" in res.output
    assert "  too_short   zz bad/ten_frames.webm: 10 decodable frames" in res.output

    shown = run("show", out)
    assert shown.exit_code == 0 and shown.output.strip() in res.output

    strict = run("build", root, "--layout", "folder", "--out", out, "--strict")
    assert strict.exit_code == 1
    assert "ascnet-index: 6 video(s) not ok (--strict)" in strict.output


def test_rebuild_reuses_unchanged_rows_and_reprobes_changed_ones(mixed, tmp_path):
    root = copy_tree(mixed[0], tmp_path / "data")
    out = tmp_path / "m.parquet"
    assert run("build", root, "--layout", "folder", "--out", out).exit_code == 0
    again = run("build", root, "--layout", "folder", "--out", out)
    assert again.exit_code == 0 and again.output.startswith("probed 0, reused 9 unchanged;")

    write_pattern_video(root / "waving/c.avi", 33, "mpeg4", 64, 48)        # changed
    write_pattern_video(root / "waving/new.webm", 20, "vp9", 64, 48)       # new
    (root / "zz bad/empty.avi").unlink()                                   # gone
    third = run("build", root, "--layout", "folder", "--out", out, "--min-frames", 25)
    assert third.output.startswith("probed 2, reused 7 unchanged;"), third.output
    df = Manifest.from_parquet(out).df.set_index("video_id")
    assert df.loc["waving/c.avi", "num_frames"] == 33 and df.loc["waving/new.webm", "status"] == "too_short"
    assert "zz bad/empty.avi" not in df.index
    # a reused row is re-judged against the new minimum without probing again
    assert df.loc["jumping jacks/b.mp4", ["status", "error"]].tolist() == [
        "too_short", "24 decodable frames, fewer than the minimum 25 (--min-frames)"]


def test_max_decode_errors_accepts_a_slightly_damaged_file(tmp_path):
    root = tmp_path / "data"
    write_pattern_video(root / "a/clean.mp4", 30, "h264", 64, 48)
    damaged_copy(write_pattern_video(tmp_path / "src.avi", 60, "mpeg4", 128, 96), root / "a/damaged.avi")
    out = tmp_path / "m.parquet"
    res = run("build", root, "--layout", "folder", "--out", out)
    row = Manifest.from_parquet(out).df.set_index("video_id").loc["a/damaged.avi"]
    errors = row["decode_errors"]
    assert row["status"] == "corrupt" and errors > 0
    assert re.search(rf"  corrupt     a/damaged\.avi: {errors} decode errors?, first at frame ~\d+: ", res.output), res.output
    lenient = run("build", root, "--layout", "folder", "--out", out, "--max-decode-errors", errors)
    assert lenient.output.startswith("probed 1, reused 1 unchanged;"), lenient.output  # judged again, from its errors
    df = Manifest.from_parquet(out).df.set_index("video_id")
    assert df.loc["a/damaged.avi", ["status", "error", "decode_errors"]].tolist() == ["ok", "", errors]
    assert df.loc["a/clean.mp4", ["status", "decode_errors"]].tolist() == ["ok", 0]
    again = run("build", root, "--layout", "folder", "--out", out, "--max-decode-errors", errors)
    assert again.output.startswith("probed 0, reused 2 unchanged;")
    assert Manifest.from_parquet(out).df.set_index("video_id").loc["a/damaged.avi", "status"] == "ok"
    strict = run("build", root, "--layout", "folder", "--out", out)
    assert strict.output.startswith("probed 1, reused 1 unchanged;")
    assert Manifest.from_parquet(out).df.set_index("video_id").loc["a/damaged.avi", "status"] == "corrupt"


def test_manifest_from_before_the_error_count_reads_and_is_probed_again(mixed, tmp_path):
    """Its verdicts came from packet counts: unknown (-1) until a rebuild counts the errors."""
    out = tmp_path / "m.parquet"
    run("build", mixed[0], "--layout", "folder", "--out", out)
    table = pq.read_table(out)
    pq.write_table(table.drop(["decode_errors", "vfr"]), out)
    old = Manifest.from_parquet(out).df
    assert (old["decode_errors"] == -1).all() and old["decode_errors"].dtype == "int64" and (old["vfr"] == -1).all()
    res = run("build", mixed[0], "--layout", "folder", "--out", out)
    assert res.output.startswith("probed 5, reused 4 unchanged;"), res.output  # those with frames; not the unreadable
    df = Manifest.from_parquet(out).df.set_index("video_id")
    assert df.loc[list(mixed[1]), ["decode_errors", "vfr"]].values.tolist() == [[0, 0], [0, 0], [0, 0]]


def test_layout_rows_without_files_are_missing(tmp_path):
    root = tmp_path / "ucf"
    write_pattern_video(root / "UCF-101/Run/v_Run_g01_c01.avi", 20, "mpeg4", 64, 48)
    write_pattern_video(root / "UCF-101/Run/v_Run_g02_c01.avi", 20, "mpeg4", 64, 48)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes(b"1 Run\r\n")
    (lists / "trainlist01.txt").write_bytes(b"Run/v_Run_g01_c01.avi 1\r\nRun/v_Run_g05_c01.avi 1\r\n")
    (lists / "testlist01.txt").write_bytes(b"")
    res = run("build", root, "--layout", "ucf101", "--out", tmp_path / "m.parquet")
    assert res.exit_code == 0, res.output
    df = Manifest.from_parquet(tmp_path / "m.parquet").df.set_index("video_id")
    assert df.loc["UCF-101/Run/v_Run_g05_c01.avi", ["status", "split", "label"]].tolist() == ["missing", "train", 0]
    assert df.loc["UCF-101/Run/v_Run_g05_c01.avi", "error"].startswith("file not found: ")
    assert df.loc["UCF-101/Run/v_Run_g01_c01.avi", ["status", "num_frames"]].tolist() == ["ok", 20]
    assert "unlisted     1 video file(s) in no annotation list, e.g. UCF-101/Run/v_Run_g02_c01.avi" in res.output


@pytest.mark.parametrize("args,message", [
    (["--layout", "ucf"], r"Invalid value for '--layout': 'ucf' is not one of 'ucf101', 'hmdb51', 'kinetics', 'ssv2', 'folder'"),
    (["--layout", "ucf101", "--annotations", "NOWHERE"], r"^ascnet-index: annotation path NOWHERE does not exist"),
    (["--layout", "hmdb51"], r"^ascnet-index: hmdb51: no annotation files \(\*_test_split1\.txt\) found in "),
    (["--layout", "folder", "--transcode", "h264"], r"^ascnet-index: --transcode needs --transcode-dir DIR"),
    (["--layout", "folder", "--max-decode-errors", "-1"], r"^ascnet-index: --max-decode-errors must be 0 or more, got -1"),
])
def test_bad_arguments_give_one_line_errors(mixed, tmp_path, args, message):
    res = run("build", mixed[0], "--out", tmp_path / "m.parquet", *args)
    assert res.exit_code == 2
    assert re.search(message, res.output), res.output
    assert not (tmp_path / "m.parquet").exists()


def test_empty_root_is_an_error(tmp_path):
    (tmp_path / "data").mkdir()
    res = run("build", tmp_path / "data", "--layout", "folder", "--out", tmp_path / "m.parquet")
    assert res.exit_code == 2
    assert res.output.strip() == f"ascnet-index: root {tmp_path / 'data'} is empty: point ROOT at the dataset folder"


# ---- validate --------------------------------------------------------------------------
def test_validate_reports_gone_and_changed_files(mixed, tmp_path):
    root = copy_tree(mixed[0], tmp_path / "data")
    out = tmp_path / "m.parquet"
    run("build", root, "--layout", "folder", "--out", out)
    assert run("validate", out).output == f"{out}: ok\n"
    (root / "waving/c.avi").unlink()
    with open(root / "jumping jacks/a.webm", "ab") as f:
        f.write(b"\0")
    res = run("validate", out)
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert re.fullmatch(r"jumping jacks/a\.webm: changed since indexing \(size \d+ -> \d+, mtime .*\); "
                        r"re-run 'ascnet-index build'", lines[0])
    assert re.fullmatch(r"waving/c\.avi: file is gone \(indexed with \d+ bytes\); re-run 'ascnet-index build'", lines[1])
    assert lines[2] == f"ascnet-index: 2 problem(s) in {out}"


def test_validate_names_every_missing_or_mistyped_column(mixed, tmp_path):
    out = tmp_path / "m.parquet"
    run("build", mixed[0], "--layout", "folder", "--out", out)
    m = Manifest.from_parquet(out)
    m.df = m.df.drop(columns=["fps", "codec"]).assign(num_frames=m.df["num_frames"].astype(str))
    bad = tmp_path / "bad.parquet"
    # written without the schema check, keeping the metadata, as a foreign tool might
    table = pa.Table.from_pandas(m.df, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({b"ascnet": pq.read_table(out).schema.metadata[b"ascnet"]}), bad)
    res = run("validate", bad)
    assert res.exit_code == 1
    assert res.output.splitlines()[:3] == [
        f"{bad}: column 'num_frames' should be int, found str",
        f"{bad}: missing column 'fps' (float)",
        f"{bad}: missing column 'codec' (str)",
    ]
    text = tmp_path / "x.parquet"
    text.write_text("nope")
    res = run("validate", text)
    assert res.exit_code == 1 and res.output.startswith(f"{text}: not a readable parquet file")
    res = run("show", tmp_path / "none.parquet")
    assert res.exit_code == 2
    assert res.output.strip() == f"ascnet-index: {tmp_path / 'none.parquet'}: no such manifest; build one with " \
        "'ascnet-index build'"


# ---- transcode -------------------------------------------------------------------------
def keyframes_and_types(path):
    out = ffmpeg.probe(str(path), v="error", select_streams="v:0", show_entries="frame=key_frame,pict_type")
    frames = out["frames"]
    return [i for i, f in enumerate(frames) if f["key_frame"] == 1], {f["pict_type"] for f in frames}


def decoded_indices(path):
    with av.open(str(path)) as c:
        return [read_index(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("vp9", ".webm")])
def test_transcode_writes_decodable_short_gop_copies(tmp_path, codec, suffix):
    root = tmp_path / "data"
    write_pattern_video(root / "a/long.avi", 40, "mpeg4", 96, 64, gop=250, bframes=2)
    write_pattern_video(root / "b/chroma444.mp4", 20, "h264", 64, 48, pix_fmt="yuv444p")
    (root / "b/empty.mp4").write_bytes(b"")  # corrupt: not transcoded
    copies = tmp_path / "copies"
    res = run("build", root, "--layout", "folder", "--out", tmp_path / "m.parquet", "--transcode", codec,
              "--transcode-dir", copies, "--short-side", 32)
    assert res.exit_code == 0, res.output
    df = Manifest.from_parquet(tmp_path / "m.parquet").df.set_index("video_id")
    long = df.loc["a/long.avi"]
    assert long["decode_path"] == str((copies / "a" / f"long{suffix}").resolve())
    assert (long["decode_codec"], long["decode_num_frames"], long["decode_width"], long["decode_height"]) == \
        (codec, 40, 48, 32)
    assert (long["codec"], long["width"], long["num_frames"]) == ("mpeg4", 96, 40)  # the original's probe
    copy = copies / "a" / f"long{suffix}"
    keys, types = keyframes_and_types(copy)
    assert keys == [0, 16, 32] and "B" not in types
    assert ffmpeg.probe(str(copy))["streams"][0]["pix_fmt"] == "yuv420p"
    assert len(ffmpeg.probe(str(copy))["streams"]) == 1  # no audio
    assert decoded_indices(copy) == list(range(40))
    # the 4:4:4 original is unsupported, its 4:2:0 copy makes the row usable
    c444 = df.loc["b/chroma444.mp4"]
    assert (c444["status"], c444["error"], c444["pix_fmt"], c444["decode_num_frames"]) == ("ok", "", "yuv444p", 20)
    assert df.loc["b/empty.mp4", ["status", "decode_path"]].tolist() == ["corrupt", ""]
    assert "copies       " + codec + " 2" in res.output
    assert (root / "a/long.avi").stat().st_size > 0 and not list(copies.rglob("*.part"))
    # without copies, the reused 4:4:4 row is judged on the original again
    plain = run("build", root, "--layout", "folder", "--out", tmp_path / "m.parquet")
    assert plain.output.startswith("probed 0, reused 3 unchanged;"), plain.output
    df = Manifest.from_parquet(tmp_path / "m.parquet").df.set_index("video_id")
    assert df.loc["b/chroma444.mp4", ["status", "decode_path"]].tolist() == ["unsupported", ""]
    assert df.loc["b/chroma444.mp4", "error"].startswith("pixel format yuv444p (4:4:4 chroma) is refused by NVDEC")


def test_transcode_resumes(tmp_path):
    root = tmp_path / "data"
    write_pattern_video(root / "a/one.webm", 20, "vp9", 64, 48)
    write_pattern_video(root / "a/two.webm", 20, "vp9", 64, 48)
    copies = tmp_path / "copies"
    args = ["build", root, "--layout", "folder", "--out", tmp_path / "m.parquet", "--transcode", "h264",
            "--transcode-dir", copies]
    assert run(*args).exit_code == 0
    one, two = copies / "a/one.mp4", copies / "a/two.mp4"
    done = one.stat().st_mtime_ns
    # an interrupted run: the finished copy stays, the other was cut off while being written
    two.unlink()
    (copies / "a/.two.mp4.part").write_bytes(b"half a file")
    (tmp_path / "m.parquet").unlink()
    res = run(*args)
    assert res.exit_code == 0 and res.output.startswith("probed 2, reused 0")
    assert one.stat().st_mtime_ns == done  # not redone
    assert decoded_indices(two) == list(range(20)) and not (copies / "a/.two.mp4.part").exists()
    again = run(*args)
    assert again.output.startswith("probed 0, reused 2") and one.stat().st_mtime_ns == done
    os.utime(root / "a/one.webm")  # a newer original makes its copy stale
    run(*args)
    assert one.stat().st_mtime_ns > done
    # the manifest's decode table points the decoders at the copies
    table = Manifest.from_parquet(tmp_path / "m.parquet").decode_table()
    assert [f.rsplit("/", 2)[-2:] for f in table["file"]] == [["a", "one.mp4"], ["a", "two.mp4"]]
    assert table["codec"].tolist() == ["h264", "h264"] and isinstance(table, pd.DataFrame)


# ---- benchmark (runs, not timed) ---------------------------------------------------------
def test_bench_index_compares_against_the_sequential_loop(tmp_path):
    from ascnet.cli.bench import main as bench

    res = CliRunner().invoke(bench, ["index", str(tmp_path / "gen"), "--generate", "3", "--repeat", "1", "--allow-busy"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("device: ")):]  # after a --allow-busy warning
    assert "CPU cores" in lines[0]
    methods = [re.split(r"\s{2,}", ln)[0] for ln in lines[3:7]]
    assert methods == ["sequential ffprobe loop (baseline)", "ascnet-index build --workers 2",
                       "ascnet-index build --workers 2, re-run (all rows reused)", "ascnet-index build --workers 1"]
    assert re.search(r"baseline\)\s+3\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+1\.00x(  BUSY)?$", lines[3])
    assert lines[7].startswith("1-min load average ") and len(lines) == 8
    assert len(list((tmp_path / "gen").rglob("*.*"))) == 3
    again = CliRunner().invoke(bench, ["index", str(tmp_path / "gen"), "--generate", "3", "--allow-busy"])
    assert again.exit_code == 2 and "--generate writes into an empty ROOT;" in again.output


def test_bench_index_refuses_a_loaded_machine(tmp_path, monkeypatch):
    from ascnet.bench import common
    from ascnet.cli.bench import main as bench

    monkeypatch.setattr(common, "load_average", lambda: 9.0)
    res = CliRunner().invoke(bench, ["index", str(tmp_path / "gen"), "--generate", "3"])
    assert res.exit_code == 1 and "the 1-min load average is 9.00 (> 0.5)" in res.output
    assert "pass --allow-busy to measure anyway" in res.output and not (tmp_path / "gen").exists()  # before any work
    res = CliRunner().invoke(bench, ["index", str(tmp_path / "gen"), "--generate", "2", "--repeat", "1", "--allow-busy"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("warning: load average 9.00 > 0.5; measuring anyway (--allow-busy)")
    assert "1-min load average 9.00 at the start, " in res.output


# ---- symlinks ---------------------------------------------------------------------------
def test_a_symlinked_dataset_indexes_and_decodes(tmp_path):
    """The root is a link to another disk, a class folder is a link, and the videos are links to
    files outside the root: containment is judged on the paths as stored, files open through links."""
    store = tmp_path / "store"  # where the bytes are
    a = write_pattern_video(store / "a.mp4", 20, "h264", 64, 48)
    b = write_pattern_video(store / "b.webm", 24, "vp9", 64, 48)
    c = write_pattern_video(store / "waving/c.avi", 30, "mpeg4", 64, 48)
    data = tmp_path / "disk2/data"
    (data / "run").mkdir(parents=True)
    (data / "run/a.mp4").symlink_to(a)
    (data / "run/b.webm").symlink_to(b)
    (data / "waving").symlink_to(c.parent, target_is_directory=True)
    root = tmp_path / "data"
    root.symlink_to(data, target_is_directory=True)
    out = tmp_path / "m.parquet"
    res = run("build", root, "--layout", "folder", "--out", out, "--strict")
    assert res.exit_code == 0, res.output
    m = Manifest.from_parquet(out)
    assert m.df["video_id"].tolist() == ["run/a.mp4", "run/b.webm", "waving/c.avi"]
    table = m.decode_table()
    assert table["file"].tolist() == [str(root / "run/a.mp4"), str(root / "run/b.webm"), str(root / "waving/c.avi")]
    for file, n in zip(table["file"], table["num_frames"]):
        frames = decode_frames(file, np.array([0, n - 1]), 25.0)
        assert [read_index(f) for f in frames] == [0, n - 1]
    assert run("validate", out).output == f"{out}: ok\n"


def test_paths_that_lead_out_of_the_root_are_refused(tmp_path):
    root = tmp_path / "data"
    write_pattern_video(root / "run/a.mp4", 20, "h264", 64, 48)
    m = Manifest.from_rows([{"video_id": "run/a.mp4", "path": "run/a.mp4"}], root)
    assert m.resolve("run/x/../a.mp4") == root / "run/a.mp4"
    assert m.resolve(str(root / "run/a.mp4")) == root / "run/a.mp4"
    for bad in ("../elsewhere/a.mp4", "run/../../a.mp4", str(tmp_path / "elsewhere/a.mp4"), str(root / "../a.mp4")):
        with pytest.raises(ManifestError, match=rf"path '{re.escape(bad)}' leads out of the manifest root {root}"):
            m.resolve(bad)
    copies = tmp_path / "copies"
    m = Manifest.from_rows([{"video_id": "run/a.mp4", "path": "run/a.mp4"}], root, transcode={"dir": str(copies)})
    assert m.resolve(str(copies / "run/a.mp4")) == copies / "run/a.mp4"
    with pytest.raises(ManifestError, match=rf"leads out of the manifest root {root} or its copies folder {copies}; "):
        m.resolve(str(tmp_path / "elsewhere/a.mp4"))


# ---- variable frame rate -----------------------------------------------------------------
def test_transcode_gives_a_variable_rate_video_a_constant_rate_copy(tmp_path):
    root = tmp_path / "data"
    write_pattern_video(root / "a/cfr.avi", 40, "mpeg4", 64, 48)
    write_vfr_video(root / "a/vfr.mp4")
    out = tmp_path / "m.parquet"
    plain = run("build", root, "--layout", "folder", "--out", out)
    assert Manifest.from_parquet(out).df.set_index("video_id")["vfr"].to_dict() == {"a/cfr.avi": 0, "a/vfr.mp4": 1}
    assert ("vfr          1 video(s) with a variable frame rate; sampling maps a time to a frame by the average fps, "
            "which misses on them (1 without a copy): --transcode writes constant-rate copies") in plain.output
    copies = tmp_path / "copies"
    res = run("build", root, "--layout", "folder", "--out", out, "--transcode", "h264", "--transcode-dir", copies)
    assert res.exit_code == 0, res.output
    assert "vfr          1 video(s) with a variable frame rate; their copies have a constant rate (the average fps)" \
        in res.output
    df = Manifest.from_parquet(out).df.set_index("video_id")
    vfr, cfr = df.loc["a/vfr.mp4"], df.loc["a/cfr.avi"]
    copy = probe(copies / "a/vfr.mp4")
    assert copy["vfr"] == 0 and copy["fps"] == pytest.approx(vfr["fps"], rel=1e-3) == vfr["decode_fps"]
    # frames repeated or dropped to keep the rate (ffmpeg may repeat the last to fill its duration)
    assert abs(vfr["decode_num_frames"] - vfr["duration_s"] * vfr["fps"]) <= 2
    assert cfr["decode_num_frames"] == cfr["num_frames"] == 40  # a constant-rate original keeps every frame
