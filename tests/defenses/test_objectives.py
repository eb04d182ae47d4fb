"""Adversarial-training objectives: TRADES by hand, Fast-AT in the ball, PGD-AT helps, masks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sparta.attacks.whitebox  # noqa: F401  (registers pgd)
from sparta import data as sdata
from sparta.attacks.evaluate import evaluate
from sparta.defenses import TRADES, FastAdversarialTraining, PGDAdversarialTraining, perturb
from sparta.sparsity.handle import MaskCallback
from sparta.sparsity.masks import attach
from sparta.train import TrainConfig, Trainer, create_objective, objective_names

SHAPE = (1, 6, 6)


def _mlp(seed=0, hidden=32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, hidden), nn.ReLU(), nn.Linear(hidden, 4))


def _data(split="train", n=512):
    return sdata.load("synthetic", split, n=n, shape=SHAPE, num_classes=4, seed=0, noise=0.2)


def test_objectives_are_registered():
    assert {"pgd-at", "trades", "fast"} <= set(objective_names())
    assert isinstance(create_objective("pgd-at", eps=0.1, steps=3), PGDAdversarialTraining)
    with pytest.raises(ValueError, match="steps=0"):
        create_objective("pgd-at", eps=0.1, steps=0)
    with pytest.raises(ValueError, match="eps=-1"):
        create_objective("trades", eps=-1)
    with pytest.raises(ValueError, match="beta=-1"):
        create_objective("trades", eps=0.1, beta=-1.0)


def test_trades_loss_equals_hand_computation():
    model = _mlp().train()
    x, y = _data(n=16).x, _data(n=16).y
    eps, beta = 0.1, 6.0
    x_adv = TRADES(eps=eps, steps=3, beta=beta, seed=1).craft(model, x)  # same seed: same x'
    loss, logits = TRADES(eps=eps, steps=3, beta=beta, seed=1)(model, x, y)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # the reference code: CE(f(x), y) + beta * KLDivLoss(log f(x'), f(x), sum) / batch
    clean, adv = model(x), model(x_adv)
    p = torch.softmax(clean, 1)
    kl = (p * (torch.log(p) - torch.log_softmax(adv, 1))).sum() / len(x)
    ref_kl = nn.KLDivLoss(reduction="sum")(F.log_softmax(adv, 1), F.softmax(clean, 1)) / len(x)
    assert kl.item() == pytest.approx(ref_kl.item(), rel=1e-5)
    expected = F.cross_entropy(clean, y) + beta * kl
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(logits, clean, atol=1e-6)  # clean logits back
    loss.backward()  # gradients flow through both terms
    assert all(p.grad is not None for p in model.parameters())


def test_trades_crafting_increases_the_kl():
    model = _mlp()
    x = _data(n=32).x
    obj = TRADES(eps=0.1, steps=5)
    x_adv = obj.craft(model, x)
    with torch.no_grad():
        clean = model(x)
        start = F.kl_div(F.log_softmax(model(x + 0.0), 1), F.softmax(clean, 1), reduction="sum")
        after = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(clean, 1), reduction="sum")
    assert after > start + 1e-3


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fast_at_perturbation_inside_the_ball(norm):
    model = _mlp()
    data = _data(n=64)
    obj = FastAdversarialTraining(eps=0.2, norm=norm)
    assert obj.alpha == pytest.approx(1.25 * 0.2) and obj.steps == 1
    x_adv = obj.craft(model, data.x, data.y)
    d = (x_adv - data.x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert size.max() <= 0.2 + 1e-5 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert size.max() > 0.1  # it moved


def test_crafting_leaves_mode_and_flags_alone():
    model = nn.Sequential(_mlp(), nn.Dropout(0.1)).train()
    x, y = _data(n=8).x, _data(n=8).y
    PGDAdversarialTraining(eps=0.1, steps=2)(model, x, y)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert torch.equal(perturb(model, x, lambda z: z.sum(1), 0.0), x)  # eps 0: no move


def _fit(objective, callbacks=(), epochs=6, model=None):
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, schedule="constant", device="cpu")
    model = model or _mlp()
    Trainer(model, _data(), cfg, objective=objective, callbacks=callbacks, quiet=True).fit()
    return model.eval()


def test_pgd_at_beats_standard_training_under_pgd():
    eps = 0.15
    test = _data("test", 256)
    standard = _fit(None)
    robust = _fit(create_objective("pgd-at", eps=eps, steps=5))
    attack = [("pgd", {"steps": 10})]
    rep_std = evaluate(standard, test, eps, attacks=attack, checks=False)
    rep_at = evaluate(robust, test, eps, attacks=attack, checks=False)
    assert rep_at.robust_acc > rep_std.robust_acc + 0.1, (rep_at, rep_std)
    assert rep_at.clean_acc > 0.5


def test_pruned_weights_stay_zero_under_pgd_at():
    model = _mlp()
    masks = {
        name: torch.rand(p.shape, generator=torch.Generator().manual_seed(i)) > 0.7
        for i, (name, p) in enumerate(model.named_parameters())
        if name.endswith("weight")
    }
    attach(model, masks)
    _fit(create_objective("pgd-at", eps=0.1, steps=2), [MaskCallback()], epochs=1, model=model)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert (params[name][~mask] == 0).all()
        assert (params[name][mask] != 0).float().mean() > 0.9


@pytest.mark.parametrize(
    "name,key",
    [("pgd-at", "train_robust_acc"), ("fast", "train_robust_acc"), ("trades", "train_acc")],
)
def test_training_accuracy_is_named_by_what_the_logits_are(name, key):
    """PGD-AT and Fast-AT return the adversarial batch's logits: their training accuracy is
    robust accuracy and is logged as such; TRADES returns the clean logits."""
    obj = create_objective(name, eps=0.1, steps=1) if name != "fast" else create_objective(name)
    cfg = TrainConfig(epochs=1, batch_size=128, lr=0.05, val_fraction=0)
    history = Trainer(_mlp(), _data(n=256), cfg, objective=obj, quiet=True).fit()
    other = {"train_acc", "train_robust_acc"} - {key}
    assert 0 <= history[-1][key] <= 1 and not other & set(history[-1])


def test_crafting_generator_state_round_trips():
    """The random starts continue where a checkpoint left them (resume = uninterrupted)."""
    x = _data(n=64).x
    a = create_objective("pgd-at", eps=0.1, steps=2, seed=3)
    b = create_objective("pgd-at", eps=0.1, steps=2, seed=9)
    model = _mlp()
    a.craft(model, x, torch.zeros(64, dtype=torch.long))
    b.load_state_dict(a.state_dict())
    y = torch.zeros(64, dtype=torch.long)
    assert torch.equal(a.craft(model, x, y), b.craft(model, x, y))
