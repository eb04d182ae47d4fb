"""Sup-tickets: cyclic phases at the end of a DST run, tickets superposed and pruned back to
exactly the budget; the lr the optimizer sees, hand-computed; resume."""

import math

import pytest
import torch

from sparta.sparsity.dst import create_dst
from sparta.sparsity.dst.sup_tickets import SupTickets, superpose
from sparta.sparsity.masks import masks_of
from sparta.train import Callback

from .helpers import Invariants, fit, model


def test_superpose_averages_over_the_union_and_prunes_to_the_budget():
    avg = {"w": torch.tensor([2.0, 0.0, 0.0, 1.0]), "b": torch.tensor([1.0])}
    ticket = {"w": torch.tensor([0.0, 4.0, 0.0, -5.0]), "b": torch.tensor([3.0])}
    new, masks = superpose(avg, 1, ticket, {"w": 2})
    # (avg + ticket) / 2 = [1, 2, 0, -2] over the union of both masks; keep the top 2
    assert torch.equal(new["w"], torch.tensor([0.0, 2.0, 0.0, -2.0]))
    assert torch.equal(masks["w"], torch.tensor([False, True, False, True]))
    assert torch.equal(new["b"], torch.tensor([2.0]))  # unmasked entries: a plain average
    # the third ticket weighs 1/3 (cumulative arithmetic average)
    ticket3 = {"w": torch.tensor([3.0, 0.0, 0.0, -3.0]), "b": avg["b"]}
    third, masks = superpose(new, 2, ticket3, {"w": 1})  # [1, 4/3, 0, -7/3]
    assert torch.allclose(third["w"], torch.tensor([0.0, 0.0, 0.0, -7 / 3]))
    assert int(masks["w"].sum()) == 1


class _Lrs(Callback):
    """Record the learning rate of every optimizer step and the weights before the end."""

    name = "lrs"

    def __init__(self):
        self.lrs = []

    def after_backward(self, t):
        self.lrs.append(t.optimizer.param_groups[0]["lr"])

    def on_fit_end(self, t):
        self.live = {k: v.clone() for k, v in t.model.state_dict().items()}


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_average_is_pruned_to_exactly_the_budget_and_replaces_the_model(method):
    net = model()
    dst = create_dst(method, net, 0.8, update_interval=10)
    budget = {n: int(m.sum()) for n, m in masks_of(net).items()}
    rec, inv = _Lrs(), Invariants(net)
    sup = SupTickets(dst, cycles=3, fraction=0.5)
    trainer = fit(net, [rec, dst, sup, inv], epochs=4)  # 32 steps per epoch: 128 steps
    assert (sup.start, sup.length) == (128 - 3 * 21, 21)
    assert sup.cycle_ends() == [65, 86, 107, 128] and sup.count == 4
    final = masks_of(net)
    assert {n: int(m.sum()) for n, m in final.items()} == budget  # exactly the budget
    params = dict(net.named_parameters())
    for n, m in final.items():
        assert not params[n][~m].any()
        assert torch.equal(params[n].detach(), sup.average[n])
    # the model is the superposition, not the last ticket, and its masks are the average's
    assert any(not torch.equal(rec.live[n], params[n].detach()) for n in final)
    assert all(torch.equal(final[n], sup.masks[n]) for n in final)
    # a topology update at the start of every cycle (explore 0.5), none elsewhere in them
    first_steps = [sup.start + c * sup.length + 1 for c in range(3)]
    assert sorted(dst.explore) == first_steps
    assert [s for s in inv.changed_steps if s > sup.start] == first_steps
    assert inv.changed_steps and max(s for s in inv.changed_steps if s <= sup.start) <= 96
    assert trainer.history[-1]["sup_tickets"] == 4


def test_the_optimizer_sees_the_hand_computed_cyclic_lr():
    net = model()
    dst = create_dst("set", net, 0.8, update_interval=10)
    rec = _Lrs()
    fit(net, [rec, dst, SupTickets(dst, cycles=2, fraction=0.25, high=0.5, low=0.1)], epochs=4)
    lr, start, length = 0.05, 128 - 2 * 16, 16
    for step, got in enumerate(rec.lrs):
        if step < start:  # the config's cosine, compressed to the steps before the cycles
            want = lr * 0.5 * (1 + math.cos(math.pi * step / start))
        else:
            i = (step - start) % length
            want = lr * (0.1 + 0.2 * (1 + math.cos(math.pi * i / (length - 1))))
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), step
    assert rec.lrs[start] == pytest.approx(0.025) and rec.lrs[-1] == pytest.approx(0.005)


def test_sup_tickets_must_follow_its_dst_and_rejects_bad_values():
    net = model()
    dst = create_dst("set", net, 0.8)
    with pytest.raises(ValueError, match="after its DST"):
        fit(net, [SupTickets(dst), dst], epochs=1)
    for kw, needle in [
        (dict(cycles=0), "cycles=0"),
        (dict(fraction=1.5), "fraction=1.5"),
        (dict(low=0.9, high=0.5), "low=0.9"),
        (dict(explore=1.0), "explore=1.0"),
    ]:
        with pytest.raises(ValueError, match=needle):
            SupTickets(dst, **kw)
