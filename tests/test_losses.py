"""ACP/SCP losses against loop references; gradients reach only the online side; EMA."""
import math

import pytest
import torch

from ascnet.losses import acp_loss, scp_loss
from ascnet.method import ASCNet, ascnet_loss, ema_update
from ascnet.models import build_backbone
from ascnet.queue import MemoryQueue


pytestmark = pytest.mark.usefixtures("one_thread")


def cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def test_acp_loss_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    p_a, p_b, z_a, z_b = (torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(4))
    # the mean over the 10 clips of each clip's regression on the other clip's target
    ref = sum((2 - 2 * cos(p_a[i].tolist(), z_b[i].tolist())) + (2 - 2 * cos(p_b[i].tolist(), z_a[i].tolist()))
              for i in range(5)) / 10
    assert math.isclose(acp_loss(p_a, p_b, z_a, z_b).item(), ref, rel_tol=1e-12)
    assert acp_loss(z_b, z_a, z_a, z_b).item() < 1e-12  # identical pairs: zero loss


def test_acp_and_scp_stand_on_the_same_per_clip_footing():
    """lambda means SCP's weight per clip: the same regressions give the same value in either loss."""
    g = torch.Generator().manual_seed(2)
    p, z = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 5, generator=g, dtype=torch.float64)
    p_a, p_b = p.chunk(2)
    z_a, z_b = z.chunk(2)
    # ACP regresses p_a on z_b and p_b on z_a; SCP the rows of p on the rows of the swapped targets
    swapped = torch.cat([z_b, z_a])
    assert math.isclose(acp_loss(p_a, p_b, z_a, z_b).item(), scp_loss(p, swapped, torch.ones(8, dtype=torch.bool)).item(),
                        rel_tol=1e-12)
    opposite = acp_loss(p_a, p_b, -p_b, -p_a).item()  # every prediction opposite its target: the top of the range
    assert math.isclose(opposite, 4.0, rel_tol=1e-12)


def test_scp_loss_matches_loop_reference_over_valid_rows():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    valid = torch.tensor([True, False, True, True, False, True])
    rows = [i for i in range(6) if valid[i]]
    ref = sum(2 - 2 * cos(q[i].tolist(), k[i].tolist()) for i in rows) / len(rows)
    assert math.isclose(scp_loss(q, k, valid).item(), ref, rel_tol=1e-12)


def test_scp_loss_without_valid_rows_is_zero_and_keeps_the_graph():
    q = torch.randn(3, 4, requires_grad=True)
    loss = scp_loss(q, torch.randn(3, 4), torch.zeros(3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and q.grad is not None and (q.grad == 0).all()


def test_losses_do_not_backpropagate_into_targets():
    p, z = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    (acp_loss(p, p, z, z) + scp_loss(p, z, torch.ones(4, dtype=torch.bool))).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None


def test_ascnet_gradients_reach_only_the_online_network():
    torch.manual_seed(0)
    model = ASCNet(build_backbone("r3d18", 8), proj_dim=16, hidden_dim=32)
    queue = MemoryQueue(32, 16)
    queue.push(torch.randn(32, 16), torch.randn(32, 16), torch.tensor([1, 2] * 16), torch.arange(32) + 100)
    clips = torch.randn(4, 3, 8, 32, 32)
    out = ascnet_loss(model(clips), queue, torch.tensor([1, 2, 2, 1]), torch.tensor([0, 1, 0, 1]))
    out["loss"].backward()
    assert out["scp_valid"].item() == 1.0
    online = [model.online_encoder, model.online_appearance, model.online_speed, model.predictor_appearance, model.predictor_speed]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for m in online for p in m.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.target_parameters())


def test_ema_update_is_the_convex_combination():
    torch.manual_seed(0)
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    ema_update(online, target, 0.9)
    for t, o, b in zip(target.parameters(), online.parameters(), before):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    ema_update(online, target, 0.0)  # m = 0 copies
    assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters()))


def test_target_starts_as_a_copy_of_online():
    model = ASCNet(build_backbone("r3d18", 4), proj_dim=8, hidden_dim=16)
    for o, t in zip([model.online_encoder, model.online_appearance, model.online_speed], model.target_modules()):
        assert all(torch.equal(a, b) for a, b in zip(o.state_dict().values(), t.state_dict().values()))


def test_spread_is_one_for_spread_outputs_and_zero_for_a_collapse():
    from ascnet.losses import spread

    g = torch.Generator().manual_seed(0)
    assert spread(torch.randn(4096, 128, generator=g)).item() == pytest.approx(1.0, abs=0.02)
    same = torch.randn(1, 128, generator=g).repeat(64, 1)
    assert spread(same).item() == pytest.approx(0.0, abs=1e-6)
    # half collapsed: every row in one of two directions
    two = torch.randn(2, 128, generator=g).repeat(32, 1)
    assert 0.3 < spread(two).item() < 0.9
    # scale does not matter (rows are normalised)
    z = torch.randn(256, 32, generator=g)
    assert spread(10 * z).item() == pytest.approx(spread(z).item(), rel=1e-5)


def test_acp_margin_tells_video_specific_matching_from_predicting_the_mean():
    from ascnet.losses import acp_margin

    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    # predictions that hit their own video's targets: the mismatched pairs are far worse
    assert acp_margin(z_b, z_a, z_a, z_b).item() > 1.5  # of at most 2 (per clip: random pairs lose 2 of a range of 4)
    # one prediction for every clip (the trivial way to lower a BYOL loss): no margin at all
    mean = torch.randn(1, 32, generator=g).repeat(16, 1)
    assert acp_margin(mean, mean, z_a, z_b).item() == pytest.approx(0.0, abs=1e-5)
    # predictions unrelated to the targets: about 0 too
    noise = torch.randn(2, 4096, 32, generator=g)
    big_a, big_b = torch.randn(4096, 32, generator=g), torch.randn(4096, 32, generator=g)
    assert abs(acp_margin(noise[0], noise[1], big_a, big_b).item()) < 0.05
    # a batch of one video has nothing to compare against
    assert acp_margin(z_b[:1], z_a[:1], z_a[:1], z_b[:1]).item() == 0.0
    # a monitor only: no gradient flows through it
    p = z_b.clone().requires_grad_(True)
    assert not acp_margin(p, z_a, z_a, z_b).requires_grad


def test_ascnet_loss_reports_the_share_of_positives_of_the_querys_class():
    torch.manual_seed(0)
    model = ASCNet(build_backbone("r3d18", 8), proj_dim=16, hidden_dim=32)
    queue = MemoryQueue(4, 16)
    # one entry per (speed, label): whatever the appearance, a speed-1 query gets the label-0 entry
    queue.push(torch.randn(4, 16), torch.randn(4, 16), torch.tensor([1, 2, 3, 3]), torch.tensor([100, 101, 102, 103]),
               torch.tensor([0, 1, 2, -1]))
    clips = torch.randn(4, 3, 8, 32, 32)
    speed, video = torch.tensor([1, 2, 1, 2]), torch.tensor([0, 1, 0, 1])
    out = ascnet_loss(model(clips), queue, speed, video, label=torch.tensor([0, 0, 0, 0]))
    assert out["scp_pos_same_class"].item() == 0.5  # speed 1 finds label 0, speed 2 finds label 1
    out = ascnet_loss(model(clips), queue, speed, video)
    assert math.isnan(out["scp_pos_same_class"].item())  # no labels: no share
