"""The indexer on real dataset excerpts in their own layouts (skipped where they are absent)."""
import pytest
from click.testing import CliRunner

from ascnet.cli.index import main
from ascnet.manifest import Manifest
from ascnet.tools.probe import probe

# video_id -> (label, label_name, split, counted frames, codec, width x height)
EXPECTED = {
    "ucf101": {
        "UCF-101/SoccerJuggling/v_SoccerJuggling_g24_c01.avi": (83, "SoccerJuggling", "train", 251, "mpeg4", (320, 240)),
        "UCF-101/SoccerJuggling/v_SoccerJuggling_g23_c01.avi": (83, "SoccerJuggling", "test", 240, "mpeg4", (320, 240)),
    },
    "hmdb51": {  # DivX: one packet more than frames (49 packets, 48 frames)
        "videos/cartwheel/hmdb51_Turnk_r_Pippi_Michel_cartwheel_f_cm_np2_le_med_6.avi":
            (0, "cartwheel", "train", 83, "mpeg4", (320, 240)),
        "videos/wave/RATRACE_wave_f_nm_np1_fr_goo_37.avi": (1, "wave", "train", 72, "mpeg4", (560, 240)),
        "videos/wave/SchoolRulesHowTheyHelpUs_wave_f_nm_np1_ba_med_0.avi": (1, "wave", "train", 74, "mpeg4", (320, 240)),
        "videos/wave/TrumanShow_wave_f_nm_np1_fr_med_26.avi": (1, "wave", "test", 48, "mpeg4", (432, 240)),
    },
    "kinetics": {
        "videos/val/R6llTwEh07w.mp4": (0, "using segway", "val", 303, "h264", (340, 256)),
        "videos/val/SOX5yA1l24A.mp4": (0, "using segway", "val", 332, "h264", (340, 256)),
        "videos/val/WUzgd7C1pWA.mp4": (0, "using segway", "val", 327, "h264", (340, 256)),
    },
}


@pytest.mark.parametrize("layout", ["ucf101", "hmdb51", "kinetics"])
def test_real_layouts(real_clips, tmp_path, layout):
    out = tmp_path / f"{layout}.parquet"
    res = CliRunner().invoke(main, ["build", str(real_clips / layout), "--layout", layout, "--out", str(out),
                                    "--no-progress", "--strict"])
    assert res.exit_code == 0, res.output
    df = Manifest.from_parquet(out).df
    got = {r.video_id: (r.label, r.label_name, r.split, r.num_frames, r.codec, (r.width, r.height))
           for r in df.itertuples()}
    assert got == EXPECTED[layout]
    assert (df["status"] == "ok").all() and (df["pix_fmt"] == "yuv420p").all()
    assert "unlisted" not in res.output


def test_hmdb_divx_counts_frames_not_packets(real_clips):
    import ffmpeg

    path = real_clips / "hmdb51/videos/wave/TrumanShow_wave_f_nm_np1_fr_med_26.avi"
    assert int(ffmpeg.probe(str(path), select_streams="v:0")["streams"][0]["nb_frames"]) == 49
    assert probe(path)["num_frames"] == 48


def test_real_divx_transcodes_frame_for_frame(real_clips, tmp_path):
    """A DivX (packed B-frames) original: its H.264 copy has every decodable frame, GOP 16."""
    out = tmp_path / "m.parquet"
    res = CliRunner().invoke(main, ["build", str(real_clips / "hmdb51"), "--layout", "hmdb51", "--out", str(out),
                                    "--transcode", "h264", "--transcode-dir", str(tmp_path / "copies"),
                                    "--short-side", "112", "--no-progress", "--workers", "2"])
    assert res.exit_code == 0, res.output
    df = Manifest.from_parquet(out).df
    assert (df["decode_num_frames"] == df["num_frames"]).all()
    assert (df["decode_codec"] == "h264").all() and (df["decode_height"] == 112).all()
    assert sorted(df["decode_width"]) == [150, 150, 202, 262]
