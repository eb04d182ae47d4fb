"""Lottery tickets on full Fashion-MNIST: IMP with rewinding vs. its two controls.

LeNet-300-100: 20% of the remaining weights pruned per level (output layer 10%, as in
Frankle & Carbin 2019, Sec. 2), 10 levels (10.8% of the weights left), rewound to the init.
LeNet-5: the same with late rewinding (to iteration 500 of the dense run; every level then
trains from iteration 500 to the end of the dense run's schedule) and 11 levels
(8.9% left). At every level the ticket is trained beside its controls: the same mask with
a random re-init, and a random mask with the ticket's per-layer counts. Test accuracy per
level goes to ``benchmarks/results/lottery_<model>.json``; run folders (with levels.md and
levels.png) to ``benchmarks/results/runs/lottery-<model>``.

Claim checked: the ticket stays within 0.5 points of the dense test accuracy (or above)
at <= 11% weights left, while both controls are lower at the highest sparsities.

Time on 2 idle cores: lenet300 ~10 min (31 units x 15 epochs of ~1.2 s), lenet5 ~12 min
(34 units x 3 epochs of ~6.5 s). A killed run continues where it stopped when rerun (each
level is a resumable unit); ``--overwrite`` starts afresh.

    python benchmarks/lottery.py [--models lenet300 lenet5] [--epochs N] [--levels L]
    python benchmarks/lottery.py --levels 2 --epochs 1 --train-subset 3000 --results /tmp/x
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from sparta.report import plot_run
from sparta.sparsity.lottery import lottery
from sparta.train import TrainConfig

RESULTS = Path(__file__).parent / "results"
RECIPES: dict[str, dict[str, Any]] = {
    "lenet300": dict(
        train=dict(epochs=15, lr=0.05, batch_size=128, weight_decay=5e-4),
        levels=10,
        rewind_step=0,
    ),
    "lenet5": dict(
        train=dict(epochs=3, lr=0.05, batch_size=128, weight_decay=5e-4),
        levels=11,
        rewind_step=500,
    ),
}
TOLERANCE = 0.005  # the ticket may lose at most 0.5 points against the dense network


def checks(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim, evaluated on the levels table: ticket vs dense and vs controls."""
    dense, last = levels[0]["test_acc"], levels[-1]
    sparse = [r for r in levels if r["remaining"] <= 0.11] or [last]
    out: dict[str, Any] = {
        "remaining_last": last["remaining"],
        "ticket_minus_dense_at_last": last["test_acc"] - dense,
        "ticket_within_tolerance": all(r["test_acc"] >= dense - TOLERANCE for r in sparse),
    }
    for key in ("reinit_acc", "random_acc"):
        if key in last:
            out[f"{key.split('_')[0]}_below_ticket"] = all(
                r[key] < r["test_acc"] for r in levels[-2:] if key in r
            )
    return out


def run_one(model: str, args: argparse.Namespace) -> dict[str, Any]:
    recipe = RECIPES[model]
    train = {**recipe["train"], **({"epochs": args.epochs} if args.epochs else {})}
    cfg = TrainConfig(
        model=model,
        dataset="fashion-mnist",
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        seed=args.seed,
        **train,
    )
    levels = args.levels or recipe["levels"]
    rewind = recipe["rewind_step"] if args.rewind is None else args.rewind
    start = time.perf_counter()
    res = lottery(
        cfg,
        levels=levels,
        rate=args.rate,
        rewind_step=rewind,
        controls=("reinit", "random"),
        root=args.results / "runs",
        name=f"lottery-{model}",
        resume=not args.overwrite,
        overwrite=args.overwrite,
        quiet=True,
    )
    row = {
        "model": model,
        "dataset": "fashion-mnist",
        **train,
        "train_subset": args.train_subset,
        "levels_pruned": levels,
        "rate": args.rate,
        "output_rate": args.rate / 2,
        "rewind_step": rewind,
        "seed": args.seed,
        "levels": res.levels,
        "checks": checks(res.levels),
        "time_s": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
        "run": str(res.run.path),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"lottery_{model}.json").write_text(json.dumps(row, indent=2) + "\n")
    plot_run(res.run.path)  # levels.md and levels.png in the run folder
    print(res.run.file("levels.md").read_text(), end="")
    print(f"{model}: {row['checks']} in {row['time_s']:.0f} s\n")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--levels", type=int, default=0, help="pruning levels (0: the recipe's)")
    ap.add_argument("--epochs", type=int, default=0, help="epochs per level (0: the recipe's)")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--rewind", type=int, default=None, help="rewind step (default: recipe's)")
    ap.add_argument("--train-subset", type=int, default=0)
    ap.add_argument("--test-subset", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where JSON and runs go")
    ap.add_argument("--overwrite", action="store_true", help="start afresh, not resume")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for model in args.models:
        try:
            run_one(model, args)
        except (ValueError, FileNotFoundError) as e:
            ap.error(str(e))


if __name__ == "__main__":
    main()
