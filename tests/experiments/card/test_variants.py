"""Every registered recipe builds a model at its sparsity that the card can score."""

from __future__ import annotations

import pytest

from sparta.experiments.card import card
from sparta.experiments.card.variants import structured_fraction

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
