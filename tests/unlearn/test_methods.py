"""Unlearning methods: registry, frozen weights bit-identical, SalUn's mask, GA, pruning."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparta import models
from sparta.train import TrainConfig, Trainer, evaluate
from sparta.unlearn import UnlearnOptions, get_method, make_setting, method_names, run
from sparta.unlearn.methods.l1_sparse import l1_weight
from sparta.unlearn.methods.rl import RandomLabels, marked_union
from sparta.unlearn.methods.salun import FreezeCallback, saliency_masks

from .conftest import tiny_data

QUICK = UnlearnOptions(epochs=2, retrain_epochs=2, batch_size=32, mia_max=100)


def test_registry_names_and_errors():
    assert method_names() == ["retrain", "ft", "ga", "l1-sparse", "rl", "salun"]
    assert (
        get_method("L1-sparse").name == "l1-sparse" and get_method("l1_sparse").name == "l1-sparse"
    )
    assert (get_method("ga").epochs, get_method("ga").lr) == (5, 1e-4)
    with pytest.raises(
        ValueError, match="'scrub' is not known; allowed: ft, ga, l1-sparse, retrain, rl, salun"
    ):
        get_method("scrub")


def test_l1_schedule_decays_linearly():
    assert [l1_weight(1.0, e, 10) for e in (0, 5, 9)] == pytest.approx([1.0, 0.5, 0.1])
    assert [l1_weight(1.0, e, 10, 2) for e in (0, 4, 7, 8, 9)] == pytest.approx(
        [1.0, 0.5, 0.125, 0.0, 0.0]
    )


def test_random_labels_only_replace_forget_labels():
    obj = RandomLabels(4, seed=0)
    model = nn.Linear(3, 4)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 1, 0])
    loss, logits = obj(model, x, y)
    logits = logits.detach()
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(logits, y)))
    yy = torch.tensor([-1, 3, -2, 2, -4, 0])
    loss, logits = obj(model, x, yy)
    logits = logits.detach()
    drawn = torch.randint(0, 4, (3,), generator=torch.Generator().manual_seed(0))
    target = torch.tensor([drawn[0], 3, drawn[1], 2, drawn[2], 0])
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(logits, target)))
    assert yy.tolist() == [-1, 3, -2, 2, -4, 0]  # not modified in place
    draws = {tuple(obj(model, x, yy)[0].detach().view(1).tolist()) for _ in range(10)}
    assert len(draws) > 1  # fresh labels every batch


def test_marked_union_encodes_forget_labels():
    train, test = tiny_data()
    s = make_setting(train, test, "random:0.25")
    u = marked_union(s)
    assert len(u) == len(train)
    assert torch.equal(u.y[: len(s.forget)], -(s.forget.y + 1))
    assert torch.equal(u.y[len(s.forget) :], s.retain.y)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_frozen_weights_bit_identical_through_decay_and_momentum(optimizer):
    torch.manual_seed(0)
    train, _ = tiny_data(n_train=64)
    model = models.create("lenet300", train, width=0.25)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(p.shape, generator=g) < 0.5 for n, p in model.named_parameters()}
    cfg = TrainConfig(
        epochs=3, lr=0.1, batch_size=16, optimizer=optimizer, momentum=0.9,
        weight_decay=0.1, schedule="constant", val_fraction=0.0, best_metric="",
    )  # fmt: skip
    Trainer(model, train, cfg, callbacks=[FreezeCallback(masks)], quiet=True).fit()
    for n, p in model.named_parameters():
        m = masks[n]
        assert torch.equal(p.detach()[~m], before[n][~m]), n  # bit-identical
        assert not torch.equal(p.detach()[m], before[n][m]), n  # the others moved


def test_salun_changes_only_salient_weights(trained):
    model, train, test, cfg = trained
    s = make_setting(train, test, "random:0.1")
    masks = saliency_masks(copy.deepcopy(model), s.forget, 0.5, QUICK.batch_size)
    n_all = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.5 * n_all)
    res = run(model, train, test, "salun", options=QUICK, train_config=cfg, setting=s)
    after = dict(res.model.named_parameters())
    changed = 0
    for n, p in model.named_parameters():
        moved = after[n].detach() != p.detach()
        assert not (moved & ~masks[n]).any(), n
        changed += int(moved.sum())
        assert torch.equal(res.info["saliency_masks"][n], masks[n])
    assert changed > 0.25 * n_all


def test_saliency_mask_by_hand_ties_in_parameter_order_pruned_never_salient(monkeypatch):
    from sparta.train.masks import attach
    from sparta.unlearn.methods import salun

    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))  # 6 + 2 + 2 + 1 = 11 entries
    attach(model, {"0.weight": torch.tensor([[True, True, False], [True, True, True]])})
    scores = {
        "0.weight": torch.tensor([[3.0, 1.0, 9.0], [1.0, 0.0, 2.0]]),  # 9.0 is pruned
        "0.bias": torch.tensor([1.0, 5.0]),
        "1.weight": torch.tensor([[1.0, 0.5]]),
        "1.bias": torch.tensor([4.0]),
    }
    monkeypatch.setattr(salun, "saliency_scores", lambda m, f, b: dict(scores))
    masks = saliency_masks(model, None, 0.5)  # 10 live entries: the top 5
    # 5.0, 4.0, 3.0, 2.0, then one of the four 1.0s: the first in parameter order
    assert masks["0.weight"].tolist() == [[True, True, False], [False, False, True]]
    assert masks["0.bias"].tolist() == [False, True]
    assert masks["1.weight"].tolist() == [[False, False]] and masks["1.bias"].tolist() == [True]


def test_ga_raises_forget_loss(trained):
    model, train, test, cfg = trained
    s = make_setting(train, test, "random:0.1")
    before = evaluate(model, s.forget)["loss"]
    opts = UnlearnOptions(epochs=3, lr=0.05, batch_size=8, mia_max=100)
    res = run(model, train, test, "ga", options=opts, train_config=cfg, setting=s)
    assert evaluate(res.model, s.forget)["loss"] > 2 * before


def test_retrain_is_fresh_and_reference_gives_gap(trained):
    model, train, test, cfg = trained
    s = make_setting(train, test, "class:1")
    ref = run(model, train, test, "retrain", options=QUICK, train_config=cfg, setting=s)
    assert ref.summary["ua"] > 0.9  # never saw class 1
    res = run(model, train, test, "ft", options=QUICK, train_config=cfg, setting=s,
              reference=ref.summary)  # fmt: skip
    keys = ("ua", "ra", "ta", "mia_efficacy")
    gap = sum(abs(res.summary[k] - ref.summary[k]) for k in keys) / 4
    assert res.summary["avg_gap"] == pytest.approx(gap)


def test_dataset_mismatch_and_bad_options(trained):
    model, train, test, cfg = trained
    other, other_test = tiny_data(classes=5)
    with pytest.raises(ValueError, match="trained on synthetic .* 4 classes"):
        run(model, other, other_test, "ft", options=QUICK)
    with pytest.raises(ValueError, match="saliency=0 is not allowed"):
        UnlearnOptions(saliency=0)
