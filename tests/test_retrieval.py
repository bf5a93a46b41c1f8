import numpy as np
import pytest

from ascnet.evaluate.report import hits_array, hits_string, paired_gain_se
from ascnet.evaluate.retrieval import first_hit_ranks, l2_normalise, topk_accuracy, video_means


def test_topk_on_hand_made_features():
    # gallery: four unit vectors with classes 0, 1, 1, 2
    gallery = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    gallery_labels = np.array([0, 1, 1, 2])
    # q0 = g0 (class 0): nearest is g0 -> first hit at rank 0
    # q1 (class 2): cosines .6 .96 .8 -.6 -> order g1 g2 g0 g3 -> first hit at rank 3
    # q2 (class 0): cosines 0 .6 1 0 -> order g2 g1 g0 g3 (tie g0/g3 kept in gallery order) -> rank 2
    query = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    query_labels = np.array([0, 2, 0])
    got = topk_accuracy(query, query_labels, gallery, gallery_labels, ks=(1, 2, 3, 5))
    # k=5 is capped at the gallery size 4, and reported as 4
    assert got == pytest.approx({1: 100 / 3, 2: 100 / 3, 3: 200 / 3, 4: 100.0})
    ranks = first_hit_ranks(query, query_labels, gallery, gallery_labels)
    assert ranks.tolist() == [0, 3, 2]
    assert hits_string(ranks < 1) == "100"  # what a results row's top1_hits holds: q0 alone is a top-1 hit


def test_topk_no_hit_anywhere_is_a_miss():
    got = topk_accuracy(np.eye(2)[:1], np.array([5]), np.eye(2), np.array([0, 1]), ks=(1, 50))
    assert got == {1: 0.0, 2: 0.0}


def test_video_means_average_then_normalise():
    feats = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    vidx = np.array([0, 1, 0, 1, 1])
    got = video_means(feats, vidx, 2)
    # video 0: mean (2, 0) -> (1, 0); video 1: mean (2/3, 4/3) -> (1, 2)/sqrt(5)
    np.testing.assert_allclose(got, [[1.0, 0.0], [1 / 5**0.5, 2 / 5**0.5]], rtol=1e-6)
    with pytest.raises(ValueError, match=r"no rows for videos \[2\]"):
        video_means(feats, vidx, 3)


def test_l2_normalise_keeps_zero_rows():
    np.testing.assert_allclose(l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])


def test_topk_in_query_chunks_equals_one_pass(monkeypatch):
    """Queries are ranked a few at a time (memory ~QUERY_CELLS, not queries x gallery); the result is
    the one-pass result, ties included (features on a coarse grid tie often)."""
    import ascnet.evaluate.retrieval as retrieval

    rng = np.random.default_rng(0)
    gallery, query = rng.integers(0, 3, (40, 4)).astype(float), rng.integers(0, 3, (23, 4)).astype(float)
    g_labels, q_labels = rng.integers(0, 5, 40), rng.integers(0, 5, 23)
    whole = topk_accuracy(query, q_labels, gallery, g_labels, ks=(1, 3, 5, 10))
    monkeypatch.setattr(retrieval, "QUERY_CELLS", 3 * 40)  # 3 queries at a time, the last chunk of 2
    assert topk_accuracy(query, q_labels, gallery, g_labels, ks=(1, 3, 5, 10)) == whole
    assert whole[1] not in (0.0, 100.0)


def test_paired_gain_se_by_hand():
    # five test videos; the reference is the mean of two networks' hits: (1, .5, 0, 0, .5)
    mine, refs = "11010", ["11000", "10001"]
    d = np.array([0, 0.5, 0, 1, -0.5])  # mine - reference per video; gain = mean(d) = 0.2 = 20 points
    assert paired_gain_se(mine, refs) == pytest.approx(100 * d.std(ddof=1) / np.sqrt(5))
    # the same hits: no gain and no sampling error, however the accuracy would vary alone
    assert paired_gain_se("10110", ["10110"]) == 0.0
    # a gain made of videos that flip both ways is less certain than one of videos won only
    assert paired_gain_se("1100", ["0011"]) > paired_gain_se("1100", ["0000"])


def test_paired_gain_se_refuses_other_test_sets_and_bad_strings():
    with pytest.raises(ValueError, match="4 and 3 videos: not the same test set"):
        paired_gain_se("1010", ["101"])
    with pytest.raises(ValueError, match="string of 0 and 1"):
        hits_array("10x1")
    assert hits_array("0110").tolist() == [0.0, 1.0, 1.0, 0.0]
