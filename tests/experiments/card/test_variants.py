"""Every registered recipe builds a model at its sparsity that the card can score."""

from __future__ import annotations

import json

import pytest
import torch

from sparta.experiments.card import card
from sparta.experiments.card.variants import structured_fraction
from sparta.io import load
from sparta.sparsity import masks_of
from sparta.sparsity.masks import kept_fraction

from .conftest import TINY


def test_every_variant_builds_and_reaches_its_sparsity(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.8]},
        variants=["lottery", "rigl", "channel", "stability", "gmp", "pgd-at", "pgd-at-gmp"],
        pillars=["accuracy", "efficiency"],
        lottery_levels=2,
        lottery_epochs=1,
        rigl_epochs=1,
        adv_epochs=1,
        adv_steps=2,
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == [
        "dense", "lottery 80%", "rigl 80%", "channel 80%", "stability 80%", "gmp 80%", "pgd-at",
        "pgd-at-gmp 80%",
    ]  # fmt: skip
    for name in ("lottery 80%", "rigl 80%", "gmp 80%", "pgd-at-gmp 80%"):
        assert rows[name]["weight_sparsity"] == pytest.approx(0.8, abs=0.03), name
    assert rows["pgd-at"]["weight_sparsity"] == 0.0
    # structured recipes remove whole channels/neurons, the fraction that takes about 80% of
    # the weights, and the compact export is smaller
    frac = structured_fraction(0.8)
    for name in ("channel 80%", "stability 80%"):
        assert rows[name]["channel_sparsity"] == pytest.approx(frac, abs=0.1), name
        assert rows[name]["weight_sparsity"] == pytest.approx(0.8, abs=0.12), name
    assert rows["channel 80%"]["params"] < 0.5 * rows["dense"]["params"]
    for v in rows.values():
        assert 0 <= v["test_acc"] <= 1 and v["latency_b1_ms"] > 0 and v["size_bytes"] > 0


def test_bip_variant_builds_at_its_exact_sparsity(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.8]},
        variants=["bip"],
        pillars=["accuracy", "efficiency"],
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "bip 80%"]
    assert rows["bip 80%"]["weight_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert 0 <= rows["bip 80%"]["test_acc"] <= 1


def test_hydra_variants_build_at_their_sparsity(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.8]},
        variants=["hydra", "hydra-cert"],
        pillars=["accuracy", "efficiency"],
        adv_epochs=1,
        adv_steps=2,
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "hydra 80%", "hydra-cert 80%"]
    for name in ("hydra 80%", "hydra-cert 80%"):
        # every layer keeps exactly 20% (rounded), so the whole model is at 80%
        assert rows[name]["weight_sparsity"] == pytest.approx(0.8, abs=0.005), name
        assert 0 <= rows[name]["test_acc"] <= 1


def test_edge_popup_variant_is_a_supermask_of_a_random_init(tmp_path):
    from sparta.sparsity.masks import masks_of

    res = card(
        **TINY,
        variants=["edge-popup"],
        pillars=["accuracy", "efficiency"],
        out=tmp_path,
        name="ep",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "edge-popup 50%"]
    assert rows["edge-popup 50%"]["weight_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert 0 <= rows["edge-popup 50%"]["test_acc"] <= 1
    from sparta.io import load

    model = load(tmp_path / "ep" / "cells" / "edge-popup-0.50" / "model.safetensors")
    masks = masks_of(model)
    for n, p in model.named_parameters():  # biases zero, every layer at 50%: nothing trained
        if n in masks:
            assert int(masks[n].sum()) == round(0.5 * masks[n].numel())
        else:
            assert not p.any()


def test_robust_and_certified_lottery_variants_reach_their_sparsity(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.8], "model": "lenet300"},
        variants=["robust-lottery", "certified-lottery"],
        pillars=["accuracy"],
        lottery_levels=2,
        lottery_epochs=1,
        adv_steps=2,
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "robust-lottery 80%", "certified-lottery 80%"]
    assert all(0 <= v["test_acc"] <= 1 for v in rows.values())
    # every level of each IMP run trained with its objective (recorded in the run's config)
    for variant, objective in (("robust-lottery", "pgd-at"), ("certified-lottery", "ibp")):
        (config,) = tmp_path.glob(f"c/**/{variant}*/**/imp/config.yaml")
        assert f"objective: {objective}" in config.read_text()
        ticket = load(config.parent / "levels/level_02/ticket/model.safetensors")
        assert 1 - kept_fraction(masks_of(ticket)) == pytest.approx(0.8, abs=0.01), variant
        metrics = (config.parent / "levels/level_02/ticket/metrics.jsonl").read_text()
        assert ("train_robust_acc" in metrics) == (objective == "pgd-at")
        assert ("cert_eps" in metrics) == (objective == "ibp")


def test_lottery_pool_variant_and_corruption_pillar(tmp_path):
    res = card(
        **{**TINY, "model": "lenet300", "sparsities": [0.8]},
        variants=["dense", "lottery-pool"],
        pillars=["accuracy", "efficiency", "corruption"],
        lottery_levels=2,
        lottery_epochs=1,
        corruption_n=50,
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "lottery-pool 80%"]
    pool = rows["lottery-pool 80%"]
    assert pool["weight_sparsity"] == pytest.approx(0.8, abs=0.03)
    imp = tmp_path / "c" / "cells" / "lottery-pool-0.80"
    summary = json.loads((imp / "pool" / "summary.json").read_text())
    # the pooled model carries exactly the last ticket's masks
    from sparta import load
    from sparta.sparsity import masks_of

    ticket = load(imp / "imp" / "levels" / "level_02" / "ticket" / "model.safetensors")
    pooled = load(imp / "pool")
    assert all(torch.equal(masks_of(pooled)[k], m) for k, m in masks_of(ticket).items())
    assert summary["val_acc"] >= summary["target_val_acc"]
    for v in rows.values():
        assert 0 <= v["corruption_s5_acc"] <= 1 and 0 <= v["corruption_acc"] <= 1
    assert res.card["metrics"]["corruption_contrast_acc"]["pillar"] == "corruption"


def test_sup_tickets_and_app_variants_reach_their_sparsity(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.8]},
        variants=["sup-tickets", "app"],
        pillars=["accuracy", "efficiency"],
        rigl_epochs=2,
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "sup-tickets 80%", "app 80%"]
    for name in ("sup-tickets 80%", "app 80%"):
        assert rows[name]["weight_sparsity"] == pytest.approx(0.8, abs=0.03), name
        assert 0 <= rows[name]["test_acc"] <= 1


def test_deepzero_variant_trains_a_dense_model_from_loss_values(tmp_path):
    res = card(
        **{**TINY, "train_subset": 200},
        variants=["deepzero"],
        pillars=["accuracy", "efficiency"],
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "deepzero"]
    assert rows["deepzero"]["weight_sparsity"] == 0.0  # the mask thins gradients, not weights
    assert 0 <= rows["deepzero"]["test_acc"] <= 1
    found = list((tmp_path / "c" / "cells").rglob("*.json"))
    text = " ".join(f.read_text() for f in found if "deepzero" in str(f))
    assert '"queries"' in text


def test_chase_variant_is_physically_smaller_at_its_sparsity(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.8]},
        variants=["chase"],
        pillars=["accuracy", "efficiency"],
        rigl_epochs=2,
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "chase 80%"]
    chase = rows["chase 80%"]
    # fractions of the dense LeNet-5 (6 + 16 + 120 + 84 channels, 30% removed)
    assert chase["weight_sparsity"] == pytest.approx(0.8, abs=0.03)
    assert chase["channel_sparsity"] == pytest.approx(round(0.3 * 226) / 226, abs=1e-9)
    assert chase["export_format"].split(" ")[0] in ("compact", "csr", "bsr")  # compact (mode)
    assert chase["params"] < 0.25 * rows["dense"]["params"]
    assert 0 <= chase["test_acc"] <= 1


def test_pixelfly_variant_swaps_the_linear_layers_within_the_budget(tmp_path):
    res = card(
        **{**TINY, "sparsities": [0.5]},
        variants=["pixelfly"],
        pillars=["accuracy", "efficiency"],
        out=tmp_path,
        name="c",
        quiet=True,
    )
    rows = {r["label"]: r["values"] for r in res.card["rows"]}
    assert list(rows) == ["dense", "pixelfly 50%"]
    fly = rows["pixelfly 50%"]
    # LeNet-5's two hidden Linear layers hold half their weights; its convolutions and the
    # classifier stay dense, so the model's sparsity is positive and below the target
    assert 0.05 < fly["weight_sparsity"] < 0.5
    assert fly["params"] < rows["dense"]["params"] and fly["macs"] < rows["dense"]["macs"]
    assert 0 <= fly["test_acc"] <= 1 and fly["latency_b1_ms"] > 0
