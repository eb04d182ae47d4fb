import math

import pytest
import torch

from sparta.sparsity.allocation import erk, uniform
from sparta.sparsity.dst import SET, RigL, create_dst
from sparta.sparsity.masks import attach, masks_of, prunable_parameters
from sparta.sparsity.schedules import cosine_decay
from sparta.sparsity.topk import n_keep
from tests.sparsity.dst import helpers


@pytest.mark.parametrize("method", ["set", "rigl"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_nonzeros_per_layer_stay_exactly_constant_at_every_update(method, optimizer):
    net = helpers.model()
    dst = create_dst(method, net, 0.9, update_interval=10, drop_fraction=0.5, stop_fraction=0.75)
    check = helpers.Invariants(net)
    trainer = helpers.fit(net, [dst, check], optimizer=optimizer)
    assert trainer.step == 256
    end = int(0.75 * 256)
    assert dst.end_step == end and dst.updates == end // 10
    assert check.changed_steps, "the topology never changed"
    assert max(check.changed_steps) <= end, "the topology changed after stop_fraction"
    assert check.grown_at_zero
    assert trainer.history[-1]["sparsity"] == pytest.approx(0.9, abs=1e-3)


def test_drop_fraction_follows_the_cosine_and_updates_stop():
    net = helpers.model()
    seen = []

    class Recording(SET):
        def update(self, model, step, optimizer=None):
            super().update(model, step, optimizer)
            seen.append((step, self.last_drop_fraction))

    dst = Recording(net, 0.8, update_interval=8, drop_fraction=0.4, stop_fraction=0.5)
    helpers.fit(net, [dst], epochs=4)  # 128 steps, T_end = 64
    assert [s for s, _ in seen] == list(range(8, 65, 8))
    for step, z in seen:
        assert z == pytest.approx(0.2 * (1 + math.cos(math.pi * step / 64)))
    assert seen[-1][1] == 0.0 and cosine_decay(65, 0.4, 64) == 0.0


@pytest.mark.parametrize("distribution", ["erk", "uniform"])
def test_initial_masks_are_random_at_the_allocated_densities(distribution):
    net = helpers.model()
    shapes = {n: p.shape for n, p in prunable_parameters(net).items()}
    SET(net, 0.9, distribution=distribution, seed=3)
    masks = masks_of(net)
    densities = (erk if distribution == "erk" else uniform)(shapes, 0.9)
    for n, shape in shapes.items():
        assert int(masks[n].sum()) == n_keep(shape.numel(), densities[n])
    again = helpers.model()
    SET(again, 0.9, distribution=distribution, seed=3)
    assert all(torch.equal(masks[n], masks_of(again)[n]) for n in shapes)
    other = helpers.model()
    SET(other, 0.9, distribution=distribution, seed=4)
    assert not all(torch.equal(masks[n], masks_of(other)[n]) for n in shapes)


def test_existing_masks_are_kept():
    net = helpers.model()
    params = prunable_parameters(net)
    mine = {n: torch.rand(p.shape) < 0.3 for n, p in params.items()}
    attach(net, mine)
    RigL(net, 0.9)
    assert all(torch.equal(masks_of(net)[n], mine[n]) for n in params)


def test_set_grows_at_random_among_the_connections_not_kept():
    lin = torch.nn.Linear(100, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.arange(1.0, 101.0).view(1, 100))
    attach(lin, {"weight": torch.arange(100).view(1, 100) < 50})
    dst = SET(lin, 0.5, drop_fraction=0.2)
    dst.end_step = 100
    dst.update(lin, step=0)  # z_0 = 0.2: drop the 10 smallest of 50, grow 10
    mask = masks_of(lin)["weight"].view(-1)
    assert int(mask.sum()) == 50 and mask[10:50].all()
    grown = mask.clone()
    grown[10:50] = False
    assert int(grown.sum()) == 10
    w = lin.weight.detach().view(-1)
    # new connections start at 0; a dropped weight drawn again keeps its value (reference)
    assert not w[50:][grown[50:]].any()
    assert torch.equal(w[:10][grown[:10]], torch.arange(1.0, 11.0)[grown[:10]])
    assert not w[:10][~grown[:10]].any()


@pytest.mark.parametrize(
    "kw,needle",
    [
        (dict(sparsity=1.0), "sparsity=1.0"),
        (dict(sparsity=0.9, drop_fraction=0.0), "drop_fraction=0.0"),
        (dict(sparsity=0.9, drop_fraction=1.0), "drop_fraction=1.0"),
        (dict(sparsity=0.9, stop_fraction=1.5), "stop_fraction=1.5"),
        (dict(sparsity=0.9, update_interval=0), "update_interval=0"),
        (dict(sparsity=0.9, distribution="global"), "distribution='global'"),
    ],
)
def test_bad_options_are_value_errors_naming_the_value(kw, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        SET(helpers.model(), **kw)
    with pytest.raises(
        ValueError, match="DST method .magic. is not known; allowed: chase, rigl, set"
    ):
        create_dst("magic", helpers.model(), 0.9)


def test_scale_init_keeps_the_dense_init_variance_per_layer():
    plain, scaled = helpers.model(), helpers.model()
    SET(plain, 0.9, seed=1, scale_init=False)
    SET(scaled, 0.9, seed=1)
    a, b = dict(plain.named_parameters()), dict(scaled.named_parameters())
    for name, mask in masks_of(scaled).items():
        density = float(mask.float().mean())
        assert torch.allclose(b[name], a[name] / density**0.5)
    assert torch.equal(a["fc1.bias"], b["fc1.bias"])  # biases are not masked, not scaled
