"""Layout parsers over annotation files written at test time in each dataset's own format.

The parsers only look at names, so the videos here are empty placeholder files; probing them
is tested in test_probe.py and test_index.py.
"""
import pytest

from ascnet.tools.layouts import LayoutError, scan


def touch(root, *rels):
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def write(path, text, crlf=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())


def by_id(result):
    return {r["video_id"]: r for r in result.rows}


# ---- ucf101 ----------------------------------------------------------------------------
@pytest.fixture
def ucf(tmp_path):
    """UCF-101 as downloaded: ROOT/UCF-101/<class>/..., ROOT/ucfTrainTestlist, CRLF lists.

    HandstandPushups: classInd and the folder say 'HandstandPushups', the file names and the
    lists' file part say 'HandStandPushups' (as in the real release).
    """
    root = tmp_path / "ucf101"
    touch(root / "UCF-101", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
          "HandstandPushups/v_HandStandPushups_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g09_c02.avi",
          "YoYo/v_YoYo_g01_c01.avi", "YoYo/v_YoYo_g30_c09.avi")
    ann = root / "ucfTrainTestlist"
    write(ann / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n", crlf=True)
    write(ann / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
          "HandstandPushups/v_HandStandPushups_g09_c02.avi 2\nYoYo/v_YoYo_g99_c01.avi 3\n", crlf=True)
    write(ann / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
          "HandStandPushups/v_HandStandPushups_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n", crlf=True)
    write(ann / "trainlist02.txt", "YoYo/v_YoYo_g01_c01.avi 3\n", crlf=True)
    write(ann / "testlist02.txt", "YoYo/v_YoYo_g30_c09.avi\n", crlf=True)
    return root


def test_ucf101_labels_splits_and_the_handstand_spelling(ucf):
    got = scan("ucf101", ucf)
    rows = by_id(got)
    assert got.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    assert got.annotations == ucf / "ucfTrainTestlist"
    assert [(r["split"], r["label"], r["label_name"], r["exists"]) for r in got.rows] == [
        ("train", 0, "ApplyEyeMakeup", True), ("train", 1, "HandstandPushups", True), ("train", 2, "YoYo", False),
        ("test", 0, "ApplyEyeMakeup", True), ("test", 1, "HandstandPushups", True), ("test", 2, "YoYo", True),
    ]
    # the real file's spelling and folder are kept, whatever case the list used
    assert "UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi" in rows
    assert rows["UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"]["path"] == \
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    assert got.unlisted == ["UCF-101/YoYo/v_YoYo_g30_c09.avi"]


def test_ucf101_split_number_and_root_inside_the_video_folder(ucf):
    """ROOT may be UCF-101 itself, with ucfTrainTestlist beside it."""
    got = scan("ucf101", ucf / "UCF-101", split=2)
    assert [(r["video_id"], r["split"], r["label"]) for r in got.rows] == [
        ("YoYo/v_YoYo_g01_c01.avi", "train", 2), ("YoYo/v_YoYo_g30_c09.avi", "test", 2)]
    assert len(got.unlisted) == 4


def test_ucf101_bad_annotations(ucf, tmp_path):
    with pytest.raises(LayoutError, match=r"ucf101: .*trainlist03\.txt not found \(split 3\)"):
        scan("ucf101", ucf, split=3)
    with pytest.raises(LayoutError, match=r"annotation path .*nowhere does not exist \(--annotations\)"):
        scan("ucf101", ucf, annotations=tmp_path / "nowhere")
    (ucf / "ucfTrainTestlist" / "classInd.txt").rename(ucf / "classes.txt")
    with pytest.raises(LayoutError, match=r"ucf101: no annotation files \(classInd\.txt\) found in .*--annotations PATH"):
        scan("ucf101", ucf)
    (ucf / "classes.txt").rename(ucf / "ucfTrainTestlist" / "classInd.txt")
    write(ucf / "ucfTrainTestlist" / "trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi 1\n")
    with pytest.raises(LayoutError, match=r"trainlist01\.txt: 'YoYo/v_YoYo_g01_c01\.avi' has label 1 but .*class 3"):
        scan("ucf101", ucf)


# ---- hmdb51 ----------------------------------------------------------------------------
@pytest.fixture
def hmdb(tmp_path):
    root = tmp_path / "hmdb51"
    touch(root / "videos", "wave/a_wave_1.avi", "wave/b_wave_2.avi", "wave/c wave 3.avi", "cartwheel/x_cart_1.avi",
          "cartwheel/extra.avi")
    # trailing spaces as in the real lists; a name with spaces; tags 1 train, 2 test, 0 unused
    write(root / "splits" / "wave_test_split1.txt", "a_wave_1.avi 1 \nb_wave_2.avi 2 \nc wave 3.avi 0 \n")
    write(root / "splits" / "cartwheel_test_split1.txt", "x_cart_1.avi 2 \ngone.avi 1 \n", crlf=True)
    write(root / "splits" / "wave_test_split2.txt", "a_wave_1.avi 2 \n")
    return root


def test_hmdb51_tags_sorted_class_ids_and_missing(hmdb):
    got = scan("hmdb51", hmdb)
    assert got.classes == ["cartwheel", "wave"]
    assert [(r["video_id"], r["label"], r["split"], r["exists"]) for r in got.rows] == [
        ("videos/cartwheel/x_cart_1.avi", 0, "test", True), ("videos/cartwheel/gone.avi", 0, "train", False),
        ("videos/wave/a_wave_1.avi", 1, "train", True), ("videos/wave/b_wave_2.avi", 1, "test", True),
        ("videos/wave/c wave 3.avi", 1, "unused", True),
    ]
    assert got.unlisted == ["videos/cartwheel/extra.avi"]
    assert [r["video_id"] for r in scan("hmdb51", hmdb, split=2).rows] == ["videos/wave/a_wave_1.avi"]


def test_hmdb51_bad_lines_and_split(hmdb):
    with pytest.raises(LayoutError, match=r"hmdb51: no annotation files \(\*_test_split3\.txt\) found in"):
        scan("hmdb51", hmdb, split=3)
    write(hmdb / "splits" / "wave_test_split1.txt", "a_wave_1.avi train\n")
    with pytest.raises(LayoutError, match=r"wave_test_split1\.txt: line 'a_wave_1\.avi train' is not '<file>\.avi <0\|1\|2>'"):
        scan("hmdb51", hmdb)


# ---- kinetics --------------------------------------------------------------------------
def test_kinetics_csv_quotes_extra_columns_and_file_names(tmp_path):
    root = tmp_path / "k400"
    # with and without class folders, with and without the _%06d_%06d suffix; ids with - and _
    touch(root / "videos", "train/passing American football (in game)/abc-DEF_123_000010_000020.mp4",
          "train/abseiling/zzzzzzzzzz1.mp4", "val/Q_w-e_r_t_y_000001_000011.mp4", "val/stray.mp4")
    write(root / "annotations" / "train.csv",
          "label,youtube_id,time_start,time_end,split,is_cc\n"
          '"passing American football (in game)",abc-DEF_123,10,20,train,0\n'
          "abseiling,zzzzzzzzzz1,0,10,train,1\n"
          "abseiling,missingid01,0,10,train,0\n", crlf=True)
    write(root / "annotations" / "validate.csv",
          'label,youtube_id,time_start,time_end,split\n"using segway",Q_w-e_r_t_y,1,11,validate\n')
    got = scan("kinetics", root)
    assert got.classes == ["abseiling", "passing American football (in game)", "using segway"]
    assert [(r["video_id"], r["label"], r["label_name"], r["split"], r["exists"]) for r in got.rows] == [
        ("videos/train/passing American football (in game)/abc-DEF_123_000010_000020.mp4", 1,
         "passing American football (in game)", "train", True),
        ("videos/train/abseiling/zzzzzzzzzz1.mp4", 0, "abseiling", "train", True),
        ("missingid01", 0, "abseiling", "train", False),
        ("videos/val/Q_w-e_r_t_y_000001_000011.mp4", 2, "using segway", "val", True),
    ]
    assert got.rows[2]["error"].startswith("no file for youtube id 'missingid01' (looked for missingid01.*")
    assert got.unlisted == ["videos/val/stray.mp4"]
    # one CSV given explicitly
    only_val = scan("kinetics", root, annotations=root / "annotations" / "validate.csv")
    assert [r["label"] for r in only_val.rows] == [0] and len(only_val.unlisted) == 3


def test_kinetics_bad_csv(tmp_path):
    root = tmp_path / "k"
    touch(root, "videos/a.mp4")
    write(root / "annotations" / "train.csv", "label,id\nx,a\n")
    with pytest.raises(LayoutError, match=r"train\.csv: no 'youtube_id' column \(found \['label', 'id'\]\)"):
        scan("kinetics", root)
    write(root / "annotations" / "train.csv", "label,youtube_id,time_start,time_end,split\nx,a,0,10,holdout\n")
    with pytest.raises(LayoutError, match=r"train\.csv: split 'holdout' of 'a' is not one of"):
        scan("kinetics", root)


# ---- folder ----------------------------------------------------------------------------
def test_folder_classes_with_spaces_and_unlabelled_files(tmp_path):
    root = tmp_path / "mine"
    touch(root, "riding a bike/1.mp4", "riding a bike/2.webm", "archery/x.avi", "loose.mkv", "archery/notes.txt",
          ".hidden/y.mp4")
    got = scan("folder", root)
    assert got.classes == ["archery", "riding a bike"]
    assert [(r["video_id"], r["label"], r["label_name"], r["split"]) for r in got.rows] == [
        ("archery/x.avi", 0, "archery", "train"), ("loose.mkv", -1, "", "train"),
        ("riding a bike/1.mp4", 1, "riding a bike", "train"), ("riding a bike/2.webm", 1, "riding a bike", "train"),
    ]


def test_folder_with_split_folders_and_exclude(tmp_path):
    root = tmp_path / "mine"
    touch(root, "train/b/1.mp4", "train/a/2.mp4", "val/a/3.mp4", "test/c/4.mp4")
    got = scan("folder", root, exclude=(root / "test",))
    assert [(r["video_id"], r["label"], r["split"]) for r in got.rows] == [
        ("train/a/2.mp4", 0, "train"), ("train/b/1.mp4", 1, "train"), ("val/a/3.mp4", 0, "val")]


def test_bad_arguments_name_the_problem(tmp_path):
    with pytest.raises(LayoutError, match=r"^unknown layout 'ucf'; allowed: ucf101, hmdb51, kinetics, ssv2, folder$"):
        scan("ucf", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match=r"root .*empty is empty: point ROOT at the dataset folder"):
        scan("folder", tmp_path / "empty")
    with pytest.raises(LayoutError, match=r"root .*absent is not a folder"):
        scan("folder", tmp_path / "absent")
    touch(tmp_path, "only/readme.txt")
    with pytest.raises(LayoutError, match=r"folder: no video files \(.*\.avi.*\) under"):
        scan("folder", tmp_path / "only")
