import pytest
import torch

from sparta.sparsity.allocation import erk
from sparta.sparsity.masks import masks_of, prunable_parameters
from sparta.sparsity.schedules import (
    GradualPruning,
    cosine_decay,
    cubic_sparsity,
    current_sparsity,
    reset_optimizer_state,
)
from sparta.sparsity.topk import n_keep
from sparta.train import Callback
from tests.sparsity.dst import helpers


def test_cubic_schedule_hand_values():
    s = lambda t: cubic_sparsity(t, 0.0, 0.8, t0=10, n=4, dt=5)  # noqa: E731
    assert s(0) == s(10) == 0.0
    assert s(15) == pytest.approx(0.8 - 0.8 * 0.75**3)  # 0.4625
    assert s(20) == pytest.approx(0.7)
    assert s(25) == pytest.approx(0.8 - 0.8 * 0.25**3)
    assert s(30) == s(1000) == 0.8
    assert cubic_sparsity(7, 0.5, 0.9, t0=0, n=1, dt=14) == pytest.approx(0.9 - 0.4 / 8)
    with pytest.raises(ValueError, match="n=0"):
        cubic_sparsity(1, 0.0, 0.5, t0=0, n=0, dt=1)


def test_cosine_decay_hand_values():
    assert cosine_decay(0, 0.3, 100) == pytest.approx(0.3)
    assert cosine_decay(50, 0.3, 100) == pytest.approx(0.15)
    assert cosine_decay(100, 0.3, 100) == pytest.approx(0.0)
    assert cosine_decay(101, 0.3, 100) == 0.0 and cosine_decay(5, 0.3, 0) == 0.0


def test_reset_optimizer_state_zeroes_only_the_chosen_entries():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    reset_optimizer_state(opt, p, torch.tensor([True, False, False]))
    for key in ("exp_avg", "exp_avg_sq"):
        assert opt.state[p][key][0] == 0 and (opt.state[p][key][1:] > 0).all()
    assert opt.state[p]["step"] == 1


class _Monotone(Callback):
    """Masks only shrink; pruned weights and their momentum stay zero after every step."""

    name = "monotone"

    def __init__(self, net):
        self.prev = {n: m.clone() for n, m in masks_of(net).items()}
        self.sparsities = []

    def after_step(self, t):
        params = dict(t.model.named_parameters())
        for n, m in masks_of(t.model).items():
            assert not (m & ~self.prev[n]).any(), f"a pruned entry of {n} came back"
            assert not params[n][~m].any()
            buf = t.optimizer.state[params[n]]["momentum_buffer"]
            assert not buf[~m].any()
            self.prev[n] = m.clone()
        self.sparsities.append(current_sparsity(t.model))


@pytest.mark.parametrize("distribution", ["global", "erk"])
def test_gmp_reaches_exactly_the_final_sparsity_and_pruned_weights_stay_zero(distribution):
    net = helpers.model()
    shapes = {n: p.shape for n, p in prunable_parameters(net).items()}
    gmp = GradualPruning(net, 0.9, start=0.25, end=0.75, interval=8, distribution=distribution)
    check = _Monotone(net)
    trainer = helpers.fit(net, [gmp, check], epochs=4)  # 128 steps: prune at 32, 40, ..., 96
    assert (gmp.t0, gmp.n, gmp.dt) == (32, 8, 8)
    sp = check.sparsities
    assert sp[30] == 0.0 and 0 < sp[40] < sp[60] < sp[95] == sp[-1]
    masks = masks_of(net)
    if distribution == "global":
        total = sum(s.numel() for s in shapes.values())
        kept = sum(int(m.sum()) for m in masks.values())
        assert kept == n_keep(total, 1 - 0.9)  # what global_masks keeps
    else:
        densities = erk(shapes, 0.9)
        assert all(
            int(masks[n].sum()) == n_keep(s.numel(), densities[n]) for n, s in shapes.items()
        )
    assert trainer.history[-1]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert gmp.state_dict() == {"remask_every_step": False, "target": 0.9}


@pytest.mark.parametrize(
    "kw,needle",
    [
        (dict(sparsity=1.0), "sparsity=1.0"),
        (dict(sparsity=0.5, initial_sparsity=0.6), "initial_sparsity=0.6"),
        (dict(sparsity=0.5, start=0.7, end=0.6), "start=0.7"),
        (dict(sparsity=0.5, interval=0), "interval=0"),
        (dict(sparsity=0.5, distribution="diagonal"), "distribution='diagonal'"),
    ],
)
def test_gmp_bad_options_are_value_errors(kw, needle):
    with pytest.raises(ValueError, match=needle):
        GradualPruning(helpers.model(), **kw)


def test_gradual_channel_pruning_removes_whole_channels_on_the_schedule():
    """GMP on the structure axis: the channel fraction follows the cubic schedule to the
    target, removed channels never come back, and pruned weights stay zero."""
    from sparta import data as sdata
    from sparta import models
    from sparta.sparsity.export import channel_fraction, kept_channels
    from sparta.sparsity.groups import channel_groups

    torch.manual_seed(0)
    net = models.create("conv2", dataset=sdata.info("digits"), width=0.25)
    gmp = GradualPruning(net, 0.5, start=0.25, end=0.75, interval=8, structure="channel")
    groups = channel_groups(net)
    fractions, keeps = [], []

    class _Channels(Callback):
        name = "channels"

        def after_step(self, t):
            if t.step % 8 == 0:
                fractions.append(channel_fraction(t.model))
                now = kept_channels(t.model, groups)
                if keeps:
                    assert all(not (k & ~p).any() for k, p in zip(now, keeps[-1], strict=True))
                keeps.append(now)
            params = dict(t.model.named_parameters())
            for n, m in masks_of(t.model).items():
                assert not params[n][~m].any(), n

    trainer = helpers.fit(net, [gmp, _Channels()], epochs=4)
    assert fractions[0] == 0.0 and fractions[-1] == pytest.approx(0.5, abs=0.05)
    assert all(a <= b for a, b in zip(fractions, fractions[1:], strict=False))
    assert len(set(fractions)) > 3  # several pruning steps, not one
    assert trainer.history[-1]["channel_sparsity"] == fractions[-1]


def test_gradual_pruning_with_snip_scores_and_uniform_distribution():
    net = helpers.model()
    shapes = {n: p.shape for n, p in prunable_parameters(net).items()}
    gmp = GradualPruning(
        net, 0.8, start=0.0, end=0.5, interval=16, distribution="layer", method="snip",
        data=helpers.data(), batch_size=32,
    )  # fmt: skip
    assert gmp.distribution == "uniform"
    check = _Monotone(net)
    helpers.fit(net, [gmp, check], epochs=2)
    masks = masks_of(net)
    assert all(int(masks[n].sum()) == n_keep(s.numel(), 0.2) for n, s in shapes.items())


def test_gmp_refuses_a_fixed_pattern():
    with pytest.raises(ValueError, match="nm:2:4"):
        GradualPruning(helpers.model(), 0.5, structure="nm:2:4")
