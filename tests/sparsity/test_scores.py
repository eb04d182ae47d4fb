import math

import pytest
import torch
from torch import nn

from sparta.sparsity.masks import masks_of
from sparta.sparsity.scores import ScoredModel, init_scores, signed_constant_, straight_through


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_straight_through_gradient_is_weight_times_upstream_gradient() -> None:
    # one Linear 2->1, no bias; x = (1, 2); w = (3, -4); keep one of two weights
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, -4.0]]))
    scored = ScoredModel(lin, 0.5, init={"weight": torch.tensor([[0.2, 0.7]])})
    out = scored(torch.tensor([[1.0, 2.0]]))
    assert out.item() == pytest.approx(-8.0)  # only w2 kept: -4 * 2
    out.sum().backward()
    # dL/dw_eff = x; dL/ds = x * w = (1*3, 2*(-4)), for kept and pruned alike
    assert scored.score_of("weight").grad.tolist() == [[3.0, -8.0]]
    assert lin.weight.grad is None  # weights frozen


def test_straight_through_value_is_the_mask() -> None:
    s = torch.tensor([0.3, -2.0], requires_grad=True)
    out = straight_through(s, torch.tensor([True, False]))
    assert out.tolist() == [1.0, 0.0]
    out.sum().backward()
    assert s.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("distribution", ["uniform", "global"])
def test_training_scores_keeps_weights_and_finalize_has_exact_sparsity(distribution) -> None:
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scored = ScoredModel(net, 0.5, init="kaiming", distribution=distribution, seed=1)
    trainable = [p for p in scored.parameters() if p.requires_grad]
    assert len(trainable) == 2  # the two scores only
    opt = torch.optim.SGD(trainable, lr=5.0)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    first = scored.masks()
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(scored(x), y).backward()
        opt.step()
    assert any(not torch.equal(first[n], m) for n, m in scored.masks().items())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])  # bit-identical while the scores train
    chosen = scored.masks()
    model = scored.finalize()
    masks = masks_of(model)
    assert set(masks) == {"0.weight", "2.weight"}
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round(0.5 * (12 + 6))
    if distribution == "uniform":
        assert [int(m.sum()) for m in masks.values()] == [6, 3]
    for n, m in masks.items():
        assert torch.equal(m, chosen[n])
        p = dict(model.named_parameters())[n]
        assert not p[~m].any() and torch.equal(p[m], before[n][m])
    assert all(p.requires_grad for p in model.parameters())


def test_train_weights_updates_only_kept_weights() -> None:
    net = _net()
    scored = ScoredModel(net, 0.5, init="abs", train_weights=True)
    scored(torch.randn(8, 4)).sum().backward()
    for n, m in scored.masks().items():
        g = dict(net.named_parameters())[n].grad
        assert not g[~m].any() and g[m].abs().sum() > 0


def test_inits() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    s = init_scores({"w": w}, "magnitude")["w"]
    assert torch.allclose(s, math.sqrt(6 / 2) * w / 4.0)
    assert torch.equal(init_scores({"w": w}, "abs")["w"], w.abs())
    k = init_scores({"w": w}, "kaiming", seed=3)["w"]
    assert k.abs().max() <= 1 / math.sqrt(2) and torch.equal(
        k, init_scores({"w": w}, "kaiming", seed=3)["w"]
    )
    with pytest.raises(ValueError, match="score init 'nope'"):
        init_scores({"w": w}, "nope")
    net = _net()
    signed_constant_(net)
    w0 = net[0].weight
    assert torch.allclose(w0.abs(), torch.full_like(w0, math.sqrt(2 / 4)))
