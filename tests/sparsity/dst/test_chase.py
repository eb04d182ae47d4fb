import copy

import pytest
import torch
from torch import nn

from sparta import io
from sparta.sparsity.channels import masks_for
from sparta.sparsity.dst import Chase, create_dst, random_masks
from sparta.sparsity.dst.chase import unmasked_mean_magnitude
from sparta.sparsity.export import shrink
from sparta.sparsity.groups import channel_groups
from sparta.sparsity.masks import apply_masks, attach, masks_of
from sparta.train import Callback
from tests.sparsity.dst import helpers


def conv_model(seed=0):
    torch.manual_seed(seed)
    from sparta import models

    return models.create("conv4", dataset=helpers.data(8).info, width=0.25)


def test_umm_is_the_unmasked_l1_mass_over_the_channel_size():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -0.25]]))
    attach(net, {"0.weight": torch.tensor([[True, False, True], [True, True, True]])})
    (group,) = channel_groups(net, (3,))
    umm = unmasked_mean_magnitude(net, group)
    assert torch.allclose(umm, torch.tensor([4.0 / 3, 0.75 / 3], dtype=torch.float64))


def test_shrink_equals_the_channel_masked_model_and_moves_the_optimizer():
    net = conv_model()
    params = {n: p for n, p in net.named_parameters() if n.endswith("weight")}
    attach(net, random_masks(params, dict.fromkeys(params, 0.5), torch.Generator().manual_seed(1)))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(16, 1, 8, 8)
    nn.functional.cross_entropy(net(x), torch.arange(16) % 4).backward()
    opt.step()
    apply_masks(net)
    groups = channel_groups(net)
    g = torch.Generator().manual_seed(2)
    keeps = [torch.rand(grp.size, generator=g) < 0.6 for grp in groups]
    masked = copy.deepcopy(net)  # the same channels removed by masks only
    for name, m in masks_for(masked, groups, keeps).items():
        old = masks_of(masked).get(name)
        attach(masked, {name: m if old is None else m & old})
    masked.eval()
    old_momentum = opt.state[net.conv2.weight]["momentum_buffer"].clone()
    old_mask = masks_of(net)["conv2.weight"].clone()
    net.conv2.weight.grad = torch.randn_like(net.conv2.weight)
    old_grad = net.conv2.weight.grad.clone()
    shrink(net, groups, keeps, opt)
    net.eval()
    assert torch.allclose(net(x), masked(x), atol=1e-5)
    # sizes: conv2 keeps the kept outputs of its group and reads the kept outputs of conv1's
    k1, k2 = keeps[0].nonzero().flatten(), keeps[1].nonzero().flatten()
    assert net.conv2.weight.shape[:2] == (len(k2), len(k1))
    sel = old_momentum[k2][:, k1]
    assert torch.equal(opt.state[net.conv2.weight]["momentum_buffer"], sel)
    assert torch.equal(masks_of(net)["conv2.weight"], old_mask[k2][:, k1])
    assert torch.equal(net.conv2.weight.grad, old_grad[k2][:, k1])
    live = {id(p) for p in net.parameters()}
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in net.parameters()]
    assert all(id(p) in live for p in opt.state)


class Counts(Callback):
    """After every step: the total of active weights is the starting budget, each layer's
    count is the DST's budget, pruned weights are zero; records the channel counts."""

    name = "counts"

    def __init__(self, dst, net):
        self.dst, self.total = dst, sum(int(m.sum()) for m in masks_of(net).values())
        self.channels = {}

    def after_step(self, t):
        masks, params = masks_of(t.model), dict(t.model.named_parameters())
        assert sum(int(m.sum()) for m in masks.values()) == self.total, t.step
        for n, m in masks.items():
            assert int(m.sum()) == self.dst.budget[n], (n, t.step)
            assert not params[n][~m].any(), (n, t.step)
        self.channels[t.step] = self.dst.channels
        groups = channel_groups(t.model) if t.step % 8 == 0 else None
        if groups is not None:  # the count it keeps is the model's own
            assert sum(g.size for g in groups) == self.dst.channels


def test_chase_keeps_exact_counts_and_removes_channels_gradually():
    net = conv_model()
    dst = Chase(net, 0.8, update_interval=4, channel_sparsity=0.4, drop_fraction=0.3)
    total = dst.total_channels  # 16 + 16 + 32 + 32 + 64 + 64
    assert total == 224
    check = Counts(dst, net)
    trainer = helpers.fit(net, [dst, check], epochs=4)  # 128 steps; channels go 12..64
    steps = sorted(check.channels)
    counts = [check.channels[s] for s in steps]
    assert counts == sorted(counts, reverse=True)  # only ever fewer
    assert check.channels[12] == total and check.channels[steps[-1]] == total - round(0.4 * total)
    changes = [
        s for a, s in zip(steps, steps[1:], strict=False) if check.channels[s] != check.channels[a]
    ]
    assert len(changes) >= 5 and all(s % 4 == 0 and 12 < s <= 64 for s in changes)
    for s in changes:  # the cubic schedule's count at each removal
        assert total - check.channels[s] == dst.target_channels(s)
    assert sum(p.numel() for p in net.parameters()) < 0.6 * sum(
        p.numel() for p in conv_model().parameters()
    )
    last = trainer.history[-1]
    assert last["channels"] == total - round(0.4 * total)
    assert last["active_weights"] == check.total and last["step_time_s"] > 0


def test_shrunk_model_saves_and_loads_with_the_same_outputs(tmp_path):
    net = conv_model()
    dst = Chase(net, 0.8, update_interval=4, channel_sparsity=0.3)
    helpers.fit(net, [dst], epochs=2)
    net.eval()
    io.save(net, tmp_path / "m")
    back = io.load(tmp_path / "m").eval()
    x = torch.rand(8, 1, 8, 8)
    assert torch.equal(back(x), net(x))
    assert {n: int(m.sum()) for n, m in masks_of(back).items()} == dst.budget


def test_chase_rejects_bad_values_and_unfollowable_models():
    with pytest.raises(ValueError, match="channel_sparsity"):
        Chase(conv_model(), 0.8, channel_sparsity=1.0)
    with pytest.raises(ValueError, match="channel_start"):
        Chase(conv_model(), 0.8, channel_start=0.6, channel_end=0.5)
    with pytest.raises(ValueError, match="stop_fraction"):
        Chase(conv_model(), 0.8, channel_end=0.9)
    net = conv_model()
    dst = create_dst("chase", net, 0.8, update_interval=1000)
    with pytest.raises(ValueError, match="no topology update"):
        helpers.fit(net, [dst], epochs=1)
