"""At 90% sparsity on LeNet-5 / full Fashion-MNIST: test accuracy of pruning criteria and
dynamic sparse training after the same number of training epochs, in one table.

Every method starts from the same initial weights (``--seeds``) and trains ``E`` epochs
(``--epochs``) with the same recipe (SGD momentum 0.9, lr 0.05 cosine, batch 128, weight
decay 5e-4; 10% of the training set held out, never used to select anything here):

- ``random``, ``magnitude``, ``snip``, ``grasp``, ``synflow``: one-shot pruning at
  initialisation with one global threshold (as in their papers; ``magnitude`` is |w| of the
  initial weights, the "magnitude at init" baseline of the pruning-at-init literature), via
  ``sparta.sparsity.pruning.prune``, then E epochs with fixed masks.
- ``set``, ``rigl``: random masks at ERK densities, topology updated every 100 steps with
  drop fraction 0.3 (cosine decay) until 75% of training (RigL's defaults).
- ``gmp``: gradual magnitude pruning (cubic schedule, Zhu & Gupta) from dense, pruning
  between 10% and 60% of the E epochs, global threshold.

With ``--scale-init`` (default) the surviving initial weights of every sparse-at-init
method (the five criteria, SET, RigL) are scaled by ``1 / sqrt(layer density)``
(sparsity-aware init, ``sparta.sparsity.dst.scale_by_density``); without it a random
90%-sparse LeNet-5 does not start learning within a few epochs. ``--no-scale-init`` gives
the criteria as published.

Reference rows (not sparse-from-scratch, reported for context): ``dense`` (0% sparsity,
E epochs) and ``magnitude_after`` (one-shot global magnitude pruning of the dense model
trained E epochs, then fine-tuned E more epochs with the same recipe: 2E epochs in total).

    python benchmarks/criteria_compare.py [--epochs 10] [--seeds 0 1 2] [--methods ...]
    python benchmarks/criteria_compare.py --epochs 1 --train-subset 2000 --out /tmp/cc.json

Writes ``benchmarks/results/criteria_compare.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from sparta import models
from sparta.sparsity.dst import create_dst, scale_by_density
from sparta.sparsity.pruning import prune
from sparta.sparsity.schedules import GradualPruning, current_sparsity
from sparta.train import TrainConfig, load_splits, train

RESULTS = Path(__file__).parent / "results"
AT_INIT = ("random", "magnitude", "snip", "grasp", "synflow")
METHODS = (*AT_INIT, "set", "rigl", "gmp", "dense", "magnitude_after")
RECIPE = dict(model="lenet5", dataset="fashion-mnist", lr=0.05, batch_size=128, weight_decay=5e-4)


def sparse_setup(
    method: str, model: torch.nn.Module, sparsity: float, cfg: TrainConfig, data, scale: bool
) -> list:
    """Prune ``model`` for ``method`` and return the callbacks that train it."""
    if method in AT_INIT:
        handle = prune(model, method, sparsity, distribution="global", data=data)
        if scale:
            scale_by_density(model, handle.masks)
        return [handle.callback()]
    if method in ("set", "rigl"):
        return [create_dst(method, model, sparsity, seed=cfg.seed, scale_init=scale)]
    if method == "gmp":
        return [GradualPruning(model, sparsity, start=0.1, end=0.6, distribution="global")]
    return []


def run_method(method: str, sparsity: float, cfg: TrainConfig, scale: bool) -> dict[str, Any]:
    """Train ``method`` from the seed's initial weights; return its row of the table."""
    splits = load_splits(cfg)
    torch.manual_seed(cfg.seed)
    model = models.create(cfg.model, dataset=splits.train.info)
    start = time.perf_counter()
    epochs = cfg.epochs
    if method == "magnitude_after":
        model = train(cfg, model=model, write_run=False, quiet=True).model
        callbacks = sparse_setup("magnitude", model, sparsity, cfg, splits.train, False)
        epochs *= 2
    else:
        callbacks = sparse_setup(method, model, sparsity, cfg, splits.train, scale)
    result = train(cfg, model=model, callbacks=callbacks, write_run=False, quiet=True)
    return {
        "method": method,
        "seed": cfg.seed,
        "epochs": epochs,
        "sparsity": current_sparsity(result.model),
        "test_acc": result.summary["test_acc"],
        "train_time_s": time.perf_counter() - start,
    }


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the test accuracy per method, in run order."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        accs = [r["test_acc"] for r in mine]
        out.append(
            {
                "method": method,
                "epochs": mine[0]["epochs"],
                "sparsity": mine[0]["sparsity"],
                "test_acc": statistics.mean(accs),
                "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "seeds": len(accs),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--train-subset", type=int, default=0, help="0: the full training set")
    ap.add_argument("--test-subset", type=int, default=0, help="0: the full test set")
    ap.add_argument("--scale-init", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--out", type=Path, default=RESULTS / "criteria_compare.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        cfg = TrainConfig(
            **RECIPE,
            epochs=args.epochs,
            seed=seed,
            train_subset=args.train_subset,
            test_subset=args.test_subset,
        )
        for method in args.methods:
            sparsity = 0.0 if method == "dense" else args.sparsity
            row = run_method(method, sparsity, cfg, args.scale_init)
            rows.append(row)
            print(
                f"seed {seed} {method:<16} test_acc {row['test_acc']:.4f} "
                f"sparsity {row['sparsity']:.3f} ({row['train_time_s']:.0f} s)",
                flush=True,
            )
    summary = table(rows)
    print(f"\n{'method':<16} {'epochs':>6} {'sparsity':>8} {'test_acc':>9} {'std':>7}")
    for r in summary:
        print(
            f"{r['method']:<16} {r['epochs']:>6} {r['sparsity']:>8.3f} "
            f"{r['test_acc']:>9.4f} {r['test_acc_std']:>7.4f}"
        )
    setting = {**RECIPE, "epochs": args.epochs, "sparsity": args.sparsity, "seeds": args.seeds}
    setting.update(scale_init=args.scale_init, train_subset=args.train_subset)
    setting.update(test_subset=args.test_subset)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setting": setting, "table": summary, "runs": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
