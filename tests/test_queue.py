"""The memory queue: FIFO order, and retrieval of SCP positives against a brute-force loop."""
import pytest
import torch
import torch.nn.functional as F

from ascnet.queue import MemoryQueue


pytestmark = pytest.mark.usefixtures("one_thread")


def test_fifo_overwrites_the_oldest():
    q = MemoryQueue(size=4, dim=2)
    q.push(torch.ones(3, 2), torch.ones(3, 2), torch.tensor([1, 1, 1]), torch.tensor([10, 11, 12]))
    q.push(torch.ones(3, 2), torch.ones(3, 2), torch.tensor([2, 2, 2]), torch.tensor([13, 14, 15]))
    assert q.video.tolist() == [14, 15, 12, 13] and q.ptr.item() == 2
    assert q.speed.tolist() == [2, 2, 1, 2]


def test_push_more_than_k_keeps_the_newest_k():
    q = MemoryQueue(size=3, dim=2)
    q.push(torch.randn(5, 2), torch.randn(5, 2), torch.ones(5, dtype=torch.long), torch.arange(5))
    assert sorted(q.video.tolist()) == [2, 3, 4]


def test_retrieval_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    q = MemoryQueue(size=50, dim=6)
    q.push(torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g),
           torch.randint(1, 4, (50,), generator=g), torch.randint(0, 8, (50,), generator=g))
    app, speed, video = torch.randn(20, 6, generator=g), torch.randint(1, 5, (20,), generator=g), torch.randint(0, 8, (20,), generator=g)
    pos, valid, index = q.retrieve(app, speed, video)
    for i in range(20):
        cands = [j for j in range(50) if q.speed[j] == speed[i] and q.video[j] != video[i]]
        assert bool(valid[i]) == bool(cands)
        if cands:
            sims = [F.cosine_similarity(app[i], q.appearance[j], dim=0).item() for j in cands]
            best = cands[max(range(len(cands)), key=sims.__getitem__)]
            assert index[i].item() == best
            assert torch.equal(pos[i], q.speed_feat[best])
    assert valid.any() and not valid.all()  # speed 4 is never queued: those rows have no positive


def test_picks_the_most_similar_appearance_not_the_nearest_speed_feature():
    q = MemoryQueue(size=3, dim=2)
    q.push(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]]), torch.tensor([[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]]),
           torch.tensor([2, 2, 2]), torch.tensor([1, 2, 3]))
    pos, valid, index = q.retrieve(torch.tensor([[1.0, 0.0]]), torch.tensor([2]), torch.tensor([1]))
    # entry 0 is the same video: the best other is entry 2
    assert index.tolist() == [2] and valid.tolist() == [True] and pos.tolist() == [[7.0, 7.0]]


def test_no_candidate_empty_queue_or_only_the_same_video():
    q = MemoryQueue(size=8, dim=2)
    _, valid, _ = q.retrieve(torch.randn(2, 2), torch.tensor([1, 2]), torch.tensor([0, 1]))
    assert valid.tolist() == [False, False]
    q.push(torch.randn(2, 2), torch.randn(2, 2), torch.tensor([1, 2]), torch.tensor([0, 5]))
    _, valid, _ = q.retrieve(torch.randn(3, 2), torch.tensor([1, 1, 2]), torch.tensor([0, 3, 5]))
    assert valid.tolist() == [False, True, False]


def test_queue_state_round_trips_through_state_dict():
    q = MemoryQueue(size=4, dim=2)
    q.push(torch.randn(3, 2), torch.randn(3, 2), torch.tensor([1, 2, 1]), torch.tensor([7, 8, 9]))
    r = MemoryQueue(size=4, dim=2)
    r.load_state_dict(q.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(q.state_dict().values(), r.state_dict().values()))


def test_bad_size_is_named():
    with pytest.raises(ValueError, match="queue size must be >= 1, got 0"):
        MemoryQueue(size=0)


def test_same_label_share_counts_only_known_labels_of_valid_rows():
    q = MemoryQueue(size=4, dim=2)
    q.push(torch.randn(4, 2), torch.randn(4, 2), torch.ones(4, dtype=torch.long), torch.arange(4), torch.tensor([3, 3, 5, -1]))
    index = torch.tensor([0, 2, 1, 3, 0])
    valid = torch.tensor([True, True, True, True, False])
    label = torch.tensor([3, 3, -1, 3, 3])
    # row 0: 3 = 3; row 1: 5 != 3; row 2: query unlabelled; row 3: entry unlabelled; row 4: no positive
    assert q.same_label_share(index, valid, label).item() == 0.5
    assert q.same_label_share(index, torch.zeros(5, dtype=torch.bool), label).isnan()


def test_labels_travel_with_their_entries_through_the_fifo():
    q = MemoryQueue(size=3, dim=2)
    q.push(torch.randn(2, 2), torch.randn(2, 2), torch.ones(2, dtype=torch.long), torch.tensor([0, 1]), torch.tensor([7, 8]))
    q.push(torch.randn(2, 2), torch.randn(2, 2), torch.ones(2, dtype=torch.long), torch.tensor([2, 3]))
    assert q.video.tolist() == [3, 1, 2] and q.label.tolist() == [-1, 8, -1]
