import json
import re

import pytest

from sparta.report.card import (
    best_rows,
    format_table,
    format_value,
    render_html,
    table_metrics,
    validate_card,
    write_card,
)
from sparta.report.card_plots import pareto_front
from tests.report.card_fixture import make_card


@pytest.fixture(scope="module")
def card():
    return make_card()


@pytest.fixture(scope="module")
def written(card, tmp_path_factory):
    return write_card(card, tmp_path_factory.mktemp("card") / "out")


def test_format_value_per_format():
    assert format_value(0.8912, "pct") == "89.1%"
    assert format_value(61706, "int") == "61,706"
    assert format_value(True, "bool") == "yes" and format_value(False, "bool") == "no"
    assert format_value(None, "pct") == "–" and format_value(float("nan"), "float") == "–"
    assert format_value(0.2134, "float") == "0.213" and format_value(14.21, "float") == "14.2"
    assert format_value(3, "text") == "3"


def test_best_rows_respect_better_and_ties(card):
    best = best_rows(card)
    accs = [r["values"]["test_acc"] for r in card["rows"]]
    assert best["test_acc"] == {accs.index(max(accs))}
    lat = [r["values"]["latency_b1_ms"] for r in card["rows"]]
    assert best["latency_b1_ms"] == {lat.index(min(lat))}
    params = [r["values"]["params"] for r in card["rows"]]  # ties: every 95% row
    assert best["params"] == {i for i, p in enumerate(params) if p == min(params)}
    assert len(best["params"]) == 3
    assert "weight_sparsity" not in best and "trojan" not in best  # better: null


def test_write_card_files(card, written):
    assert set(written) == {"card.json", "card.md", "card.html"}
    assert all(path.parent == written["card.json"].parent for path in written.values())
    assert json.loads(written["card.json"].read_text()) == card  # the dict as given
    assert not list(written["card.json"].parent.glob("*.tmp"))
    md = written["card.md"].read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(card["rows"])  # header + a row per (variant, sparsity)
    assert "| dense | 0.0% | **90.5%** |" in md  # best test acc in bold
    for p, info in card["pillars"].items():
        assert f"## {p}" in md and info["description"] in md
    assert card["warnings"][0] in md


def test_html_self_contained_and_escaped(card, written):
    page = written["card.html"].read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing from the network
    assert "@import" not in page and "url(http" not in page
    assert "&lt;demo &amp; test&gt;" in page and "<demo & test>" not in page
    assert page.count("<tbody>") == 1
    assert page.count('<tr data-label="') == len(card["rows"])
    # two trade-off plots and one per pillar, less backdoor (a verdict and a label: no numbers)
    assert page.count('<img src="data:image/svg+xml;base64,') == 2 + len(card["pillars"]) - 1
    for info in card["pillars"].values():
        assert f"<p class='desc'>{info['description']}</p>" in page
    assert page.count('class="pillar-start best"') + page.count('class="best"') >= len(
        best_rows(card)
    )


def test_html_is_deterministic(card):
    assert render_html(card) == render_html(card)


def test_format_table_fits_and_marks_best(card):
    text = format_table(card, width=120)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    rows = [line for line in lines if line.split() and line.split()[0] in card["variants"]]
    assert len(rows) == len(card["rows"])
    keys = table_metrics(card, 120)
    pillars = {card["metrics"][k]["pillar"] for k in keys}
    assert pillars == set(card["pillars"])  # one key metric per pillar at least
    assert "weight_sparsity" not in keys  # repeats the sparsity column
    assert "90.5%*" in rows[0] and "warning" not in text
    narrow = format_table(card, width=60)
    assert max(len(line) for line in narrow.splitlines()[:-2]) <= 60


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c["rows"][1].update(sparsity=1.0), r"sparsity 1\.0 is not in \[0, 1\)"),
        (lambda c: c["rows"][1]["values"].update(bogus=1), r"\['bogus'\] are not in"),
        (lambda c: c["metrics"]["test_acc"].update(format="percent"), "format 'percent'"),
        (lambda c: c["metrics"]["test_acc"].update(better="up"), "better 'up'"),
        (lambda c: c["rows"].append(dict(c["rows"][0])), "two rows for variant 'dense'"),
    ],
)
def test_bad_card_is_a_clear_error_and_writes_nothing(change, match, tmp_path):
    bad = make_card()
    change(bad)
    with pytest.raises(ValueError, match=match):
        validate_card(bad)
    with pytest.raises(ValueError, match=match):
        write_card(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pareto_front():
    pts = [(0.5, 0.6), (0.8, 0.5), (0.9, 0.55), (0.0, 0.2), (0.9, 0.4)]
    assert pareto_front(pts, "higher", "higher") == [0, 2]
    assert sorted(pareto_front(pts, "lower", "higher")) == [0, 3]


def test_constant_and_verdict_metrics_are_lines_not_plots():
    card = make_card()
    for row in card["rows"]:
        row["values"]["params"] = 61706  # masked, not compacted: the same in every row
    page = render_html(card)
    assert "the same in every row measured: params 61,706" in page
    assert "trojan flagged — no: dense, gmp 50%" in page
    assert "yes: lottery 80%, lottery 95%" in page
    assert "suspected target — 3: lottery 80%, lottery 95%" in page
