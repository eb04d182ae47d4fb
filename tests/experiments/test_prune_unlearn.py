"""Prune, then unlearn: masks kept through every method; the bench's rows."""

import dataclasses

import pytest
import torch

from sparta.experiments.prune_unlearn import COLUMNS, prune_then_unlearn, unlearn_bench
from sparta.sparsity.masks import masks_of
from sparta.unlearn import UnlearnOptions, make_setting, run

from ..unlearn.conftest import tiny_data, trained  # noqa: F401  (the shared fixture)

QUICK = UnlearnOptions(epochs=2, retrain_epochs=2, batch_size=32, mia_max=100)


@pytest.mark.parametrize(
    "method,finetune",
    [("retrain", 0), ("ft", 0), ("ga", 0), ("rl", 0), ("l1_sparse", 0), ("salun", 0), ("ft", 1)],
)
def test_pruning_first_keeps_sparsity_through_unlearning(trained, method, finetune):  # noqa: F811
    model, train, test, cfg = trained
    original = {k: v.clone() for k, v in model.state_dict().items()}
    opts = dataclasses.replace(QUICK, prune_finetune=finetune)
    res = prune_then_unlearn(
        model, train, test, method, "class:2", prune=0.9, options=opts, train_config=cfg
    )
    masks = masks_of(res.model)
    assert masks and not masks_of(model)  # the caller's model is untouched
    for name, p in res.model.named_parameters():
        if name in masks:
            assert not p.detach()[~masks[name]].any(), name
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert kept == pytest.approx(0.1, abs=1e-3)
    assert res.details["sparsity"] >= 0.9 - 1e-3
    assert set(res.summary) == {"ua", "ra", "ta", "mia_efficacy", "rte_s"}
    assert res.details["prune"] == 0.9
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())


def test_prune_zero_is_plain_unlearning_and_bad_prune_is_an_error(trained):  # noqa: F811
    model, train, test, cfg = trained
    s = make_setting(train, test, "class:1")
    plain = run(model, train, test, "ft", options=QUICK, train_config=cfg, setting=s)
    same = prune_then_unlearn(model, train, test, "ft", prune=0.0, options=QUICK,
                              train_config=cfg, setting=s)  # fmt: skip
    assert not masks_of(same.model) and same.details["prune"] == 0.0
    for k in ("ua", "ra", "ta", "mia_efficacy"):
        assert same.summary[k] == plain.summary[k]
    with pytest.raises(ValueError, match="prune=1.0 is not allowed"):
        prune_then_unlearn(model, train, test, "ft", prune=1.0, options=QUICK)
    other, other_test = tiny_data(classes=5)
    with pytest.raises(ValueError, match="trained on synthetic .* 4 classes"):
        prune_then_unlearn(model, other, other_test, "ft", prune=0.5, options=QUICK)


def test_bench_rows_retrain_first_dense_and_pruned(trained):  # noqa: F811
    model, train, test, cfg = trained
    opts = dataclasses.replace(QUICK, epochs=1, retrain_epochs=1)
    rows = unlearn_bench(model, train, test, "class:1", methods=["ft"], prune=0.5,
                         options=opts, train_config=cfg)  # fmt: skip
    assert [(r["method"], r["sparsity"]) for r in rows] == [
        ("retrain", 0.0), ("ft", 0.0), ("retrain", 0.5), ("ft", 0.5)
    ]  # fmt: skip
    assert all(tuple(r) == COLUMNS for r in rows)
    assert rows[0]["avg_gap"] == 0.0 and rows[0]["rte_ratio"] == pytest.approx(1.0)
