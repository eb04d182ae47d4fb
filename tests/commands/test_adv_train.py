"""``sparta train --adv ...``: robust validation, best checkpoint by it; bad input exit 2."""

import json

import pytest
import torch
import yaml

import sparta.attacks.whitebox  # noqa: F401  (registers pgd)
from sparta.cli import main

QUICK = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--epochs", "2"]
QUICK += ["--batch-size", "64", "--lr", "0.05", "--eps", "0.1", "--adv-steps", "2"]
QUICK += ["--val-attack-steps", "2", "--val-n", "60"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("adv", ["pgd", "trades", "fast", "wot"])
def test_adv_train_logs_val_robust_acc_and_keeps_best(adv, tmp_path, capsys):
    extra = ["--wot-interval", "5", "--wot-k", "2", "--wot-fit-steps", "2"] if adv == "wot" else []
    code = main(["--quiet", "train", *QUICK, "--adv", adv, *extra, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    run = next(tmp_path.iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["val_robust_acc"] <= 1 for r in rows)
    assert all("best_val_robust_acc" in r for r in rows)
    if adv == "wot":
        assert rows[-1]["wot_refinements"] >= 1
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (
        config["adv"] == {"pgd": "pgd-at"}.get(adv, adv)  # recorded by its registered name
        and config["eps"] == 0.1
        and config["best_metric"] == "val_robust_acc"
    )
    summary = json.loads((run / "summary.json").read_text())
    assert "best_val_robust_acc" in summary and (run / "best.safetensors").is_file()


def test_adv_with_sparsity(tmp_path, capsys):
    args = ["--quiet", "train", *QUICK, "--epochs", "1", "--adv", "pgd", "--sparsity", "0.8"]
    code = main([*args, "--prune-method", "magnitude", "--out", str(tmp_path), "--name", "s"])
    assert code == 0, capsys.readouterr()
    import sparta

    model = sparta.load(tmp_path / "s")
    w = model.state_dict()
    masks = {k: v for k, v in w.items() if k.endswith("_mask")}
    assert masks
    for key, mask in masks.items():
        weight = w[key.removesuffix("_mask")]
        assert (weight[~mask] == 0).all()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--eps", "0.2"], "eps=0.2 is not allowed without --adv"),
        (["--adv", "nope"], "nope"),
        (["--adv", "pgd", "--eps=-0.1"], "eps=-0.1"),
        (["--adv", "pgd", "--adv-steps", "0"], "adv_steps=0"),
        (["--adv", "wot", "--val-fraction", "0"], "val_fraction=0.0 is not allowed with --adv wot"),
        (["--adv", "trades", "--trades-beta=-1"], "trades_beta=-1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path, capsys):
    base = ["--dataset", "digits", "--model", "lenet300", "--epochs", "1"]
    code = main(["train", *base, *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparta: error:") and needle in lines[0], err


def test_adv_pgd_and_pgd_at_are_one_objective():
    from sparta.cli import build_parser
    from sparta.commands.adv_train import ADV_METHODS, AdvTrainOptions, objective_of
    from sparta.defenses import PGDAdversarialTraining
    from sparta.registry import get_registry

    assert set(ADV_METHODS) == {"", *get_registry("objectives").aliases(adversarial=True)}
    assert {"pgd", "pgd-at", "trades", "fast", "wot"} <= set(ADV_METHODS)
    made = []
    for adv in ("pgd", "pgd-at"):
        args = build_parser().parse_args(
            ["train", "--adv", adv, "--eps", "0.2", "--adv-steps", "3"]
        )
        opts = AdvTrainOptions(adv=args.adv, eps=args.eps, adv_steps=args.adv_steps)
        made.append(objective_of(opts, seed=1))
    a, b = made
    assert type(a) is type(b) is PGDAdversarialTraining
    keys = ("eps", "steps", "alpha", "norm", "label_smoothing")
    assert [getattr(a, k, None) for k in keys] == [getattr(b, k, None) for k in keys]
    assert a.eps == 0.2 and a.steps == 3
    assert AdvTrainOptions(adv="pgd").adv == AdvTrainOptions(adv="PGD_AT").adv == "pgd-at"
