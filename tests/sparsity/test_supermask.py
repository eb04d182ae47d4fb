"""Edge-popup (1911.13299): weight draws, the score update, exact sparsity, frozen weights,
and checkpoints of a ScoredModel that load as the masked model."""

import math

import pytest
import torch
from torch import nn

from sparta import data, io, models
from sparta.sparsity.masks import masks_of
from sparta.sparsity.scores import ScoredModel
from sparta.sparsity.supermask import (
    SupermaskMetrics,
    draw_weights,
    edge_popup,
    kaiming_normal_,
    supermask,
)
from sparta.train import TrainConfig, Trainer, evaluate


def _lenet(ds):
    torch.manual_seed(0)
    return models.create("lenet5", dataset=ds)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train").take(256, seed=0)


def test_one_sgd_step_on_scores_is_lr_times_upstream_gradient_times_weight():
    # Linear 3 -> 1, no bias: w = (2, -1, 0.5), x = (1, 3, -2), keep 2 of 3 (sparsity 1/3)
    lin = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
    s0 = torch.tensor([[0.4, 0.1, 0.9]])  # keeps w1 and w3
    scored = ScoredModel(lin, 1 / 3, init={"weight": s0}, distribution="uniform")
    x = torch.tensor([[1.0, 3.0, -2.0]])
    out = scored(x)
    assert out.item() == pytest.approx(2.0 * 1.0 + 0.5 * -2.0)  # = 1
    loss = 0.5 * (out - 3.0).pow(2).sum()  # dL/dout = out - 3 = -2
    opt = torch.optim.SGD([scored.score_of("weight")], lr=0.1)
    loss.backward()
    opt.step()
    # dL/dw_eff_i = dL/dout * x_i = -2 * (1, 3, -2) = (-2, -6, 4); times w = (-4, 6, 2)
    expected = s0 - 0.1 * torch.tensor([[-4.0, 6.0, 2.0]])
    assert torch.allclose(scored.score_of("weight").detach(), expected)
    assert torch.equal(lin.weight.detach(), torch.tensor([[2.0, -1.0, 0.5]]))


def test_signed_constant_weights_are_plus_minus_kaiming_std_with_normal_draw_signs(digits):
    a, b = _lenet(digits), _lenet(digits)
    names = draw_weights(a, "signed-constant", seed=3)
    draw_weights(b, "kaiming-normal", seed=3)
    assert names == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"]
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    fan_in = {
        "conv1.weight": 1 * 25,
        "conv2.weight": 6 * 25,
        "fc1.weight": pa["fc1.weight"].shape[1],
    }
    fan_in |= {"fc2.weight": 120, "fc3.weight": 84}
    for n in names:
        c = math.sqrt(2.0 / fan_in[n])
        assert torch.allclose(pa[n].abs(), torch.full_like(pa[n], c))
        assert torch.equal(torch.sign(pa[n]), torch.sign(pb[n]))  # the same draw's signs
        assert not pa[n.replace("weight", "bias")].any()  # biases zeroed


def test_kaiming_normal_has_the_paper_std_and_is_seeded():
    lin = nn.Linear(500, 400)
    kaiming_normal_(lin, seed=1)
    w = lin.weight.detach()
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 500), rel=0.02)
    assert abs(float(w.mean())) < 0.01
    first = lin.weight.detach().clone()
    kaiming_normal_(lin, seed=1)
    assert torch.equal(lin.weight, first)
    kaiming_normal_(lin, seed=2)
    assert not torch.equal(lin.weight, first)


def test_bad_choices_are_named():
    with pytest.raises(ValueError, match="supermask weight init 'xavier'"):
        draw_weights(nn.Linear(2, 2), "xavier")
    with pytest.raises(ValueError, match="supermask bias 'learn'"):
        draw_weights(nn.Linear(2, 2), bias="learn")


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_edge_popup_trains_scores_only_exact_per_layer_sparsity(digits, sparsity):
    model = _lenet(digits)
    scored = supermask(model, sparsity, weights="kaiming-normal", seed=0)
    drawn = {k: v.clone() for k, v in model.state_dict().items()}
    start_masks = scored.masks()
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.1, weight_decay=1e-4, best_metric="")
    hist = Trainer(scored, digits, cfg, callbacks=[SupermaskMetrics(scored)], quiet=True).fit()
    assert hist[-1]["sparsity"] == pytest.approx(sparsity, abs=1e-3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, drawn[k]), k  # no weight (nor bias) moved, bit for bit
    chosen = scored.masks()
    assert any(not torch.equal(chosen[n], start_masks[n]) for n in chosen)  # masks did move
    final = scored.finalize()
    masks = masks_of(final)
    assert set(masks) == set(scored.names)
    for n, p in final.named_parameters():
        if n in masks:
            m = masks[n]
            assert int(m.sum()) == round(m.numel() * (1 - sparsity)), n  # the same k per layer
            assert not p[~m].any() and torch.equal(p[m], drawn[n][m])


def test_edge_popup_finds_a_subnetwork_better_than_chance(digits):
    model = edge_popup(
        _lenet(digits),
        digits,
        0.5,
        TrainConfig(epochs=6, batch_size=32, lr=0.1, weight_decay=1e-4, best_metric=""),
        weights="signed-constant",
    )
    assert masks_of(model)
    assert evaluate(model, digits)["acc"] > 0.3  # 10 classes: chance is 0.1


def test_supermask_refuses_a_masked_model(digits):
    from sparta.sparsity import prune

    model = _lenet(digits)
    prune(model, "magnitude", 0.5)
    with pytest.raises(ValueError, match="without masks"):
        supermask(model, 0.5)


def test_a_scored_checkpoint_loads_as_the_masked_model(digits, tmp_path):
    model = _lenet(digits)
    scored = supermask(model, 0.7, weights="signed-constant", seed=2)
    with torch.no_grad():
        for s in scored.scores.values():
            s.add_(torch.randn_like(s))  # any trained scores
    io.save(scored, tmp_path / "m.safetensors")
    loaded = io.load(tmp_path / "m.safetensors")
    assert not isinstance(loaded, ScoredModel)
    x = digits.x[:16]
    scored.eval()
    assert torch.allclose(loaded(x), scored(x), atol=1e-6)
    expected = scored.masks()
    masks = masks_of(loaded)
    assert set(masks) == set(expected) and all(torch.equal(masks[n], expected[n]) for n in masks)
    p = dict(loaded.named_parameters())
    assert all(not p[n][~m].any() for n, m in masks.items())
    # a fresh wrapper of the same architecture resumes from it, bit for bit
    again = supermask(_lenet(digits), 0.7, weights="signed-constant", seed=5)
    tensors, meta = io.read_checkpoint(tmp_path / "m.safetensors")
    io.restore_model(again, tensors, meta)
    for k, v in scored.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
