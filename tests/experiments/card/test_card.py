"""The card end to end: every pillar, card.json equals the cells, cache reuse, options."""

from __future__ import annotations

import json

import pytest

from sparta.experiments.card import PILLARS, VARIANTS, card, cell_seed
from sparta.experiments.card.pillars import all_metrics

from .conftest import TINY


def test_every_pillar_and_card_json_equals_the_cells(tmp_path):
    res = card(**TINY, variants=["oneshot"], out=tmp_path, name="c", quiet=True)
    c = res.card
    assert [r["label"] for r in c["rows"]] == ["dense", "oneshot 50%"]
    assert list(c["pillars"]) == [
        "accuracy", "efficiency", "robustness", "corruption", "certification", "unlearning",
        "backdoor",
    ]  # fmt: skip
    assert set(c["metrics"]) == set(all_metrics())
    # every value comes from the cell file its source names, nothing typed twice
    n = 0
    for row in c["rows"]:
        for key, value in row["values"].items():
            src = row["sources"].get(key)
            if src is None:
                assert value is None
                continue
            cell = json.loads((res.folder / src).read_text())
            assert cell["metrics"][key] == value
            n += 1
    assert n >= 2 * 20
    on_disk = json.loads(res.files["card.json"].read_text())
    assert on_disk["rows"] == json.loads(json.dumps(c["rows"]))
    dense, sparse = c["rows"]
    assert dense["values"]["weight_sparsity"] == 0.0
    assert sparse["values"]["weight_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert sparse["values"]["params"] < dense["values"]["params"]
    for row in c["rows"]:
        assert 0 <= row["values"]["test_acc"] <= 1
        assert row["values"]["robust_acc"] <= row["values"]["clean_acc"]
        assert isinstance(row["values"]["trojan"], bool)
    for p in c["pillars"].values():
        assert p["description"] and p["wall_s"] >= 0
    assert "robust_n" in c["pillars"]["robustness"]["options"]
    from sparta.report.card import write_card

    files = write_card(c, res.folder)
    assert files["card.md"].read_text().startswith("# lenet5 on digits")
    assert json.loads(files["card.json"].read_text())["rows"] == on_disk["rows"]
    assert len(res.computed) == 2 + 2 * 7 and not res.skipped


def test_cache_reuse_and_one_more_variant(tmp_path):
    opts = {**TINY, "pillars": ["accuracy", "efficiency"], "out": tmp_path, "name": "c"}
    first = card(**opts, variants=["oneshot"], quiet=True)
    assert len(first.computed) == 2 + 2 * 2
    again = card(**opts, variants=["oneshot"], resume=True, quiet=True)
    assert again.computed == [] and len(again.skipped) == 6
    assert again.card["rows"] == first.card["rows"]
    more = card(**opts, variants=["oneshot", "gmp"], resume=True, quiet=True)
    assert sorted(more.computed) == ["gmp 50%", "gmp 50% / accuracy", "gmp 50% / efficiency"]
    assert [r["label"] for r in more.card["rows"]] == ["dense", "oneshot 50%", "gmp 50%"]
    # a metric filter shows fewer columns from the same cells, computing nothing
    only = card(**opts, variants=["oneshot"], metrics=["test_acc"], resume=True, quiet=True)
    assert only.computed == [] and list(only.card["metrics"]) == ["test_acc"]


def test_resume_refuses_other_numbers(tmp_path):
    opts = {**TINY, "pillars": ["accuracy"], "variants": ["dense"], "out": tmp_path, "name": "c"}
    card(**opts, quiet=True)
    with pytest.raises(ValueError, match=r"--lr 0.2 \(recorded: 0.1\) differ; use the same"):
        card(**{**opts, "lr": 0.2}, resume=True, quiet=True)
    with pytest.raises(ValueError, match="exists"):
        card(**opts, quiet=True)
    assert (tmp_path / "c" / "cells" / "dense-0.00" / "accuracy.json").is_file()


def test_seeds_depend_on_the_cell_only():
    a = cell_seed(0, "gmp", 0.9, "robustness")
    assert a == cell_seed(0, "gmp", 0.9, "robustness")
    others = [
        cell_seed(1, "gmp", 0.9, "robustness"),
        cell_seed(0, "gmp", 0.8, "robustness"),
        cell_seed(0, "gmp", 0.9, "accuracy"),
        cell_seed(0, "oneshot", 0.9, "robustness"),
    ]
    assert len({a, *others}) == 5


def test_registries_hold_every_recipe_and_pillar():
    assert set(VARIANTS.names()) >= {
        "dense", "oneshot", "gmp", "lottery", "rigl", "channel", "stability", "pgd-at",
        "pgd-at-gmp",
    }  # fmt: skip
    assert PILLARS.names() == sorted(
        [
            "accuracy",
            "efficiency",
            "robustness",
            "corruption",
            "certification",
            "unlearning",
            "backdoor",
        ]
    )
    for e in VARIANTS.entries():
        assert isinstance(e.meta["sparse"], bool) and e.doc
    for e in PILLARS.entries():
        assert e.meta["cost"] > 0 and e.doc
        for m in e.meta["metrics"].values():
            assert m["format"] in ("pct", "float", "int", "bool", "text")
            assert m["better"] in ("higher", "lower", None)


def test_crown_left_out_above_its_time_cap(tmp_path):
    res = card(
        **TINY, variants=["dense"], pillars=["certification"], crown_cap_s=1e-9, out=tmp_path,
        name="c", quiet=True,
    )  # fmt: skip
    (row,) = res.card["rows"]
    assert row["values"]["crown_verified_acc"] is None
    assert row["values"]["ibp_verified_acc"] is not None
    assert any("CROWN left out" in w for w in res.card["warnings"])


def test_checkpoint_input_is_the_dense_model(tmp_path):
    import torch

    import sparta
    from sparta import data, models

    torch.manual_seed(0)
    dense = models.create("lenet5", dataset=data.load("digits", "train"))
    sparta.save(dense, tmp_path / "m.safetensors")
    res = card(
        **{**TINY, "dataset": "fashion-mnist", "model": "lenet300"},
        ckpt=str(tmp_path / "m.safetensors"), variants=["oneshot"], pillars=["accuracy"],
        out=tmp_path, name="c", quiet=True,
    )  # fmt: skip
    assert res.card["dataset"] == "digits" and res.card["model"] == "lenet5"
    cell = sparta.load(res.folder / "cells" / "dense-0.00")
    a, b = cell.state_dict(), dense.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["label"] for r in res.card["rows"]] == ["dense", "oneshot 50%"]
