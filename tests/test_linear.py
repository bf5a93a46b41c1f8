import numpy as np
import pytest

from ascnet.evaluate.linear import accuracy_report, fit_linear, logits_of, standardise


def separable(rng, videos_per_class, clips, num_classes=3, dim=8):
    """Clips of class c lie around 10 * e_c: linearly separable by construction."""
    x, y, vidx = [], [], []
    for c in range(num_classes):
        for v in range(videos_per_class):
            centre = np.zeros(dim)
            centre[c] = 10.0
            x.append(centre + rng.normal(0, 1.0, (clips, dim)))
            y += [c] * clips
            vidx += [len(vidx) // clips] * clips
    return np.concatenate(x), np.array(y), np.array(vidx)


@pytest.mark.parametrize("optimizer,lr,epochs", [("lbfgs", 1.0, 2), ("adam", 0.05, 30)])
def test_probe_on_separable_features_is_perfect(optimizer, lr, epochs):
    rng = np.random.default_rng(0)
    xtr, ytr, _ = separable(rng, 4, 5)
    xte, yte, vte = separable(rng, 2, 5)
    xtr, xte = standardise(xtr, xte)
    layer = fit_linear(xtr, ytr, 3, optimizer=optimizer, lr=lr, epochs=epochs)
    video_labels = yte[::5]
    got = accuracy_report(logits_of(layer, xte), yte, vte, video_labels, ks=(1, 5))
    assert got == {"clip_top1": 100.0, "clip_top5": 100.0, "video_top1": 100.0, "video_top5": 100.0}


def test_chance_level_probe_is_not_perfect():
    # the same pipeline on labels unrelated to the features must not score 100%
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    layer = fit_linear(*standardise(x), y, 3, epochs=2)
    xt = rng.normal(size=(60, 8)).astype(np.float32)
    yt = rng.integers(0, 3, 60)
    acc = accuracy_report(logits_of(layer, standardise(x, xt)[1]), yt, np.arange(60), yt, ks=(1,))
    assert acc["clip_top1"] < 60


def test_video_level_averages_logits_and_differs_from_clip_level():
    labels, vidx, video_labels = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1])
    # averaging rescues video 0 (class 0): two clips lean to class 1 a little, one is confidently
    # class 0 -> 1/3 of its clips right, mean logits (3.33, 0.67) -> the video is right
    rescued = np.array([[0, 1], [0, 1], [10, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    got = accuracy_report(rescued, labels, vidx, video_labels, ks=(1, 5))
    assert got == pytest.approx({"clip_top1": 100 * 4 / 6, "clip_top5": 100.0, "video_top1": 100.0, "video_top5": 100.0})
    # averaging sinks video 0: two clips right by a little, one confidently wrong
    # -> 2/3 of its clips right, mean logits (0.67, 3.33) -> the video is wrong
    sunk = np.array([[1, 0], [1, 0], [0, 10], [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    got = accuracy_report(sunk, labels, vidx, video_labels, ks=(1,))
    assert got == pytest.approx({"clip_top1": 100 * 5 / 6, "video_top1": 50.0})


def test_standardise_uses_train_statistics_only():
    tr, te = standardise(np.array([[0.0, 5.0], [2.0, 5.0]]), np.array([[4.0, 7.0]]))
    np.testing.assert_allclose(tr, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(te, [[3, 2]])  # constant train dimension: centred, not scaled


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match=r"unknown optimizer 'sgdx'; allowed: \['lbfgs', 'adam'\]"):
        fit_linear(np.zeros((2, 2)), np.array([0, 1]), 2, optimizer="sgdx")
