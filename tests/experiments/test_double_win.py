"""Double-Win tickets: the ticket of a pre-trained source, and the transfer pipeline."""

from __future__ import annotations

import math

import pytest
import torch

from sparta import data as sdata
from sparta import models
from sparta.experiments import double_win as dw
from sparta.sparsity import masks_of
from sparta.train import TrainConfig

SOURCE = "digits:classes=0-4"
TARGET = "digits:classes=5-9"


def _source(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.create("lenet300", dataset=sdata.info(SOURCE), width=0.5)


def test_ticket_prunes_the_body_keeps_pretrained_weights_and_renews_the_head():
    src = _source()
    before = {k: v.clone() for k, v in src.state_dict().items()}
    ticket = dw.transfer_ticket(src, 0.8, seed=3)
    assert all(torch.equal(before[k], v) for k, v in src.state_dict().items())  # untouched
    masks = masks_of(ticket)
    assert set(masks) == {"fc1.weight", "fc2.weight"}  # the head is not pruned
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert kept == round(0.2 * total)
    assert dw.body_sparsity(ticket) == pytest.approx(1 - kept / total)
    for name, m in masks.items():
        w = ticket.state_dict()[name]
        assert torch.equal(w[m], before[name][m]) and not w[~m].any()  # m * theta_p
        # magnitude: every kept weight is at least as large as every pruned one (global)
    kept_min = min(before[n][m].abs().min() for n, m in masks.items())
    pruned_max = max(before[n][~m].abs().max() for n, m in masks.items())
    assert kept_min >= pruned_max
    head = ticket.state_dict()["fc3.weight"]
    assert not torch.equal(head, before["fc3.weight"])
    assert torch.equal(head, dw.transfer_ticket(src, 0.8, seed=3).state_dict()["fc3.weight"])
    assert not torch.equal(head, dw.transfer_ticket(src, 0.8, seed=4).state_dict()["fc3.weight"])


def test_pipeline_trains_each_source_and_transfer_with_its_objective(monkeypatch):
    calls = []
    real_fit = dw.fit

    def spy(model, config, objective=None, **kw):
        calls.append((config.dataset, objective, config.epochs, config.seed, masks_of(model)))
        out = real_fit(model, config, objective, **kw)
        for name, m in masks_of(out).items():
            assert not out.state_dict()[name][~m].any()  # pruned weights stay zero
        return out

    monkeypatch.setattr(dw, "fit", spy)
    cfg = TrainConfig(dataset=SOURCE, model="lenet300", width=0.5, epochs=1, batch_size=64)
    res = dw.double_win(
        cfg, target=TARGET, sparsity=0.7, fractions=(0.1, 1.0), finetunes=("st", "at"),
        steps=12, attack_steps=1, eval_steps=2, seeds=(0, 1), quiet=True,
    )  # fmt: skip
    sources = [(d, o) for d, o, *_ in calls[:2]]
    assert sources == [(SOURCE, None), (SOURCE, "pgd-at")]
    assert not calls[0][4] and not calls[1][4]  # sources train dense
    transfers = calls[2:]
    assert len(transfers) == len(res.rows) == 2 * 2 * 2 * 2
    for (dataset, objective, epochs, seed, masks), row in zip(transfers, res.rows, strict=True):
        frac = "" if row["fraction"] == 1.0 else f":fraction={row['fraction']}:seed={seed}"
        assert dataset == TARGET + frac and seed == row["seed"]
        assert objective == dw.FINETUNES[row["finetune"]] and masks
        per_epoch = math.ceil(row["n_train"] / cfg.batch_size)
        assert epochs == max(1, math.ceil(12 / per_epoch))  # the same steps in every regime
        assert row["sparsity"] == pytest.approx(0.7, abs=1e-3)
        assert 0 <= row["robust_acc"] <= row["clean_acc"] <= 1
    n = {r["fraction"]: r["n_train"] for r in res.rows}
    assert n[0.1] < n[1.0] / 5
    assert set(res.sources) == {"standard", "robust"}


def test_target_with_another_number_of_classes_is_refused():
    cfg = TrainConfig(dataset=SOURCE, model="lenet300", epochs=1)
    with pytest.raises(ValueError, match="has 3 classes"):
        dw.double_win(cfg, target="digits:classes=5-7")
    with pytest.raises(ValueError, match="finetune 'xx'"):
        dw.double_win(cfg, target=TARGET, finetunes=("xx",))
