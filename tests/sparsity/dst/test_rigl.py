import pytest
import torch

from sparta.sparsity.dst import RigL
from sparta.sparsity.masks import attach, masks_of
from sparta.sparsity.topk import n_keep
from tests.sparsity.dst import helpers


def test_rigl_drops_smallest_and_grows_where_the_dense_gradient_is_largest():
    lin = torch.nn.Linear(4, 2, bias=False)
    weight = torch.tensor([[0.1, -0.2, 3.0, -4.0], [0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        lin.weight.copy_(weight)
    attach(lin, {"weight": torch.tensor([[True] * 4, [False] * 4])})
    opt = torch.optim.SGD(lin.parameters(), lr=0.0, momentum=0.9)
    lin.weight.grad = torch.tensor([[9.0, 0.5, 0.0, 0.0], [0.1, 5.0, 0.2, 7.0]])
    opt.step()  # momentum buffer = grad, weights unchanged (lr 0)
    dst = RigL(lin, 0.5, drop_fraction=0.5)
    dst.end_step = 100
    dst.update(lin, step=0, optimizer=opt)  # z_0 = 0.5: drop 2 of the 4 active, grow 2
    # kept: 3.0 and -4.0. Candidates: all others, ranked by |grad|: 9.0 (the dropped 0.1),
    # 7.0, 5.0, ... As in the reference code, the dropped 0.1 is grown back with its weight.
    mask = masks_of(lin)["weight"]
    assert torch.equal(mask, torch.tensor([[True, False, True, True], [False, False, False, True]]))
    assert torch.equal(lin.weight.detach(), torch.where(mask, weight, 0.0))
    buf = opt.state[lin.weight]["momentum_buffer"]
    assert buf[1, 3] == 0 and buf[0, 1] == 0  # grown and dropped entries start afresh
    assert buf[0, 0] == 9.0 and buf[1, 1] == 5.0  # the rest is untouched


class _Probe(RigL):
    """RigL that records whether the gradients it grows by are dense."""

    dense_reads: list

    def grow_score(self, name, param, step, index):
        inactive = ~masks_of(self.net)[name]
        self.dense_reads.append(bool(param.grad[inactive].abs().sum() > 0))
        return super().grow_score(name, param, step, index)


class _Biases(helpers.Invariants):
    """Records, per step, whether the (never masked) biases stayed the same."""

    def after_backward(self, t):
        self.before = [p.detach().clone() for n, p in t.model.named_parameters() if "bias" in n]
        self.same = []

    def after_step(self, t):
        super().after_step(t)
        after = [p for n, p in t.model.named_parameters() if "bias" in n]
        self.frozen.append((t.step, all(map(torch.equal, self.before, after))))


def test_rigl_reads_the_dense_gradient_and_its_update_replaces_the_step():
    net = helpers.model()
    dst = _Probe(net, 0.9, update_interval=10, stop_fraction=0.5)
    dst.net, dst.dense_reads = net, []
    check = _Biases(net)
    check.frozen = []
    helpers.fit(net, [dst, check], epochs=2)  # 64 steps, T_end = 32: updates at 10, 20, 30
    assert dst.dense_reads and all(dst.dense_reads)
    assert [s for s, same in check.frozen if same] == [10, 20, 30]
    assert check.changed_steps == [10, 20, 30] and check.grown_at_zero


@pytest.mark.parametrize("distribution", ["uniform", "layer"])
def test_rigl_with_the_uniform_distribution(distribution):
    """RigL on the distribution axis: every layer at the same density, kept while it trains."""
    net = helpers.model()
    dst = RigL(net, 0.8, distribution=distribution, update_interval=10, drop_fraction=0.5)
    assert dst.distribution == "uniform"
    check = helpers.Invariants(net)
    helpers.fit(net, [dst, check], epochs=2)
    assert check.changed_steps, "the topology never changed"
    for name, mask in masks_of(net).items():
        assert int(mask.sum()) == n_keep(mask.numel(), 0.2), name
