"""``card_from_runs`` / ``sparta report`` on real tiny run folders: every number in the card
is the number of the summary.json it came from; bad input is one line, exit 2."""

import json
from pathlib import Path

import pytest
import torch

import sparta.attacks.whitebox  # noqa: F401  (registers fgsm)
from sparta.cli import main
from sparta.report.card import card_from_runs
from sparta.train import train

TINY = {
    "dataset": "digits", "model": "lenet300", "width": 0.25, "epochs": 1, "batch_size": 64,
    "lr": 0.05, "train_subset": 256, "test_subset": 100,
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    train(TINY, root=root, name="dense", quiet=True)
    for s in ("0.5", "0.8"):  # one-shot magnitude pruning of the trained model, no fine-tune
        args = ["--ckpt", str(root / "dense"), "--sparsity", s, "--test-subset", "100"]
        assert main(["--quiet", "prune", *args, "--out", str(root), "--name", f"p{s}"]) == 0
    # an evaluation recorded in the model's own folder joins its row
    args = ["--ckpt", str(root / "dense"), "--eps", "0.1", "--attacks", "fgsm", "--n", "40"]
    evals = str(root / "dense" / "evals")
    assert main(["--quiet", "attack", *args, "--out", evals, "--name", "attack-fgsm"]) == 0
    yield root
    torch.set_num_threads(threads)


def _summary(root: Path, source: str):
    """The number a card's source names: '<run>/<path to summary.json>:<key>'."""
    path, key = source.split(":")
    return json.loads((root / path).read_text())[key]


def test_card_numbers_are_the_summaries(runs):
    card = card_from_runs([runs / "dense", runs / "p0.5", runs / "p0.8"])
    assert [r["variant"] for r in card["rows"]] == ["train", "prune", "prune"]
    assert [r["label"] for r in card["rows"]] == ["dense", "p0.5", "p0.8"]
    dense = json.loads((runs / "dense" / "summary.json").read_text())
    attack = json.loads((runs / "dense" / "evals" / "attack-fgsm" / "summary.json").read_text())
    row = card["rows"][0]
    assert row["sparsity"] == 0.0 and dense["nonzero_params"] == dense["params"]
    assert row["values"]["sparsity"] is None  # a train summary has no sparsity key
    assert row["values"]["test_acc"] == dense["test_acc"]
    assert row["values"]["robust_acc"] == attack["robust_acc"]
    assert row["values"]["robust_acc_fgsm"] == attack["robust_acc_fgsm"]
    assert row["sources"]["robust_acc"] == "dense/evals/attack-fgsm/summary.json:robust_acc"
    n = 0
    for r in card["rows"]:
        assert set(r["values"]) == set(card["metrics"])
        for key, v in r["values"].items():
            if v is not None:
                assert v == _summary(runs, r["sources"][key]), (r["label"], key)
                n += 1
    assert n >= 12
    for s, r in zip((0.5, 0.8), card["rows"][1:], strict=True):
        summary = json.loads((runs / f"p{s}" / "summary.json").read_text())
        assert r["sparsity"] == r["values"]["sparsity"] == summary["sparsity"]
        assert summary["sparsity"] == pytest.approx(s, abs=0.01)
        assert r["values"]["test_acc"] == summary["test_acc"]
        assert r["values"]["robust_acc"] is None
    assert card["dataset"] == "digits" and card["model"] == "lenet300"
    assert {"accuracy", "efficiency", "robustness"} <= set(card["pillars"])
    assert card["metrics"]["robust_acc"]["pillar"] == "robustness"
    assert "attack-fgsm" in card["pillars"]["robustness"]["description"]


def test_sparta_report_writes_the_page(runs, tmp_path, capsys):
    paths = [str(runs / "dense"), str(runs / "p0.5"), str(runs / "p0.8")]
    assert main(["report", *paths, "--out", str(tmp_path), "--name", "r"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "r"
    card = json.loads((folder / "card.json").read_text())
    assert card["rows"] == card_from_runs(paths)["rows"]
    assert (folder / "card.md").is_file() and (folder / "card.html").stat().st_size > 10_000
    assert f"report: {folder / 'card.html'}" in out and "prune" in out and "test acc" in out
    # the default name is a hash of the runs; the same runs again need --overwrite
    assert main(["report", *paths, "--out", str(tmp_path)]) == 0
    (made,) = [p for p in tmp_path.iterdir() if p.name.startswith("report-")]
    before = (made / "card.json").read_text()
    assert main(["report", *paths, "--out", str(tmp_path)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (made / "card.json").read_text() == before
    assert main(["report", *paths, "--out", str(tmp_path), "--overwrite"]) == 0


@pytest.mark.parametrize("bad", ["missing", "empty", "file"])
def test_bad_run_folder_is_one_line_exit_2_nothing_written(runs, tmp_path, capsys, bad):
    target = tmp_path / bad
    if bad == "empty":
        target.mkdir()
    elif bad == "file":
        target.write_text("not a run")
    out = tmp_path / "reports"
    assert main(["report", str(runs / "dense"), str(target), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sparta: error:") and str(target) in err[0]
    assert not out.exists()


def _fake_run(folder: Path, config: dict, summary: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_recipes_evals_and_bench_rows(tmp_path):
    base = {"command": "train", "dataset": "digits", "model": "lenet300", "seed": 0}
    dense = _fake_run(tmp_path / "d", base, {"test_acc": 0.9, "params": 10, "nonzero_params": 10})
    a = {"command": "attack", "eps": 0.1, "n": 100}
    _fake_run(dense / "evals" / "a1", a, {"clean_acc": 0.88, "robust_acc": 0.4, "warnings": ["w"]})
    _fake_run(dense / "evals" / "a2", {**a, "n": 50}, {"clean_acc": 0.86, "robust_acc_pgd": 0.5})
    prune = {**base, "method": "magnitude"}
    p5 = _fake_run(tmp_path / "m5", {**prune, "sparsity": 0.5}, {"test_acc": 0.8, "sparsity": 0.5})
    p9 = _fake_run(tmp_path / "m9", {**prune, "sparsity": 0.9}, {"test_acc": 0.7, "sparsity": 0.9})
    quantities = {"ua": 0.1, "ra": 0.9, "ta": 0.8, "mia_efficacy": 0.2, "rte_s": 1.0}
    rows = [
        {"method": "ft", "sparsity": s, **quantities, "avg_gap": g}
        for s, g in ((0.0, 0.05), (0.5, 0.03))
    ]
    bench = _fake_run(tmp_path / "ub", {"command": "unlearn-bench", "seed": 0}, {"rows": rows})
    card = card_from_runs([dense, p5, p9, bench])
    got = [(r["variant"], r["sparsity"], r["label"]) for r in card["rows"]]
    assert got == [
        ("d", 0.0, "d"), ("m5", 0.5, "m5"), ("m5", 0.9, "m9"),  # two recipes of one command
        ("unlearn-bench", 0.0, "ub 0%"), ("unlearn-bench", 0.5, "ub 50%"),
    ]  # fmt: skip
    d = card["rows"][0]
    assert d["values"]["clean_acc"] == 0.88 and d["values"]["robust_acc_pgd"] == 0.5
    assert d["sources"]["robust_acc_pgd"] == "d/evals/a2/summary.json:robust_acc_pgd"
    assert card["warnings"][0] == "d/a1: w"
    assert (
        "d/a2: clean_acc=0.86 differs from d/evals/a1/summary.json:clean_acc" in card["warnings"][1]
    )
    assert card["rows"][4]["values"]["ft_avg_gap"] == 0.03
    assert card["rows"][4]["sources"]["ft_avg_gap"] == "ub/summary.json:rows[1].avg_gap"
    assert card["metrics"]["ft_avg_gap"] == {
        "pillar": "unlearning", "label": "ft Avg. Gap", "better": "lower", "format": "pct"
    }  # fmt: skip
    assert list(card["pillars"]) == ["accuracy", "efficiency", "robustness", "unlearning"]
    assert "eps 0.1" in card["pillars"]["robustness"]["description"]


def test_lottery_levels_and_unknown_summaries(tmp_path):
    levels = [
        {"level": 0, "remaining": 1.0, "test_acc": 0.9},
        {"level": 1, "remaining": 0.8, "test_acc": 0.91, "random_acc": 0.85},
        {"level": 2, "remaining": 0.64, "test_acc": 0.89, "random_acc": 0.8},
    ]
    summary = {"levels": levels, "test_acc": 0.89, "sparsity": 0.36, "remaining": 0.64}
    lottery = _fake_run(tmp_path / "lt", {"command": "lottery"}, summary)
    other = _fake_run(tmp_path / "x", {"command": "info"}, {"foo": 1, "bar": [1, 2]})
    card = card_from_runs([lottery, other])
    got = [(r["variant"], r["sparsity"], r["values"]["test_acc"]) for r in card["rows"]]
    assert got == [("lottery", 0.0, 0.9), ("lottery", 0.2, 0.91), ("lottery", 0.36, 0.89),
                   ("info", None, None)]  # fmt: skip
    assert card["rows"][2]["sources"]["random_acc"] == "lt/summary.json:levels[2].random_acc"
    assert card["rows"][0]["values"]["random_acc"] is None
    assert card["warnings"] == ["x: no metric a card knows in summary.json (keys: bar, foo)"]
