"""Does Sup-tickets beat its base DST method at equal epochs? (Yin et al. 2022, 2205.15322)

Fashion-MNIST (54k train / 6k validation held out of the training set, the 10k test set
once), LeNet-300-100 at ``--sparsity`` (ERK), for each seed and each base method (SET,
RigL): the base DST run for ``--epochs`` (cosine lr), and the same run from the same init
with Sup-tickets (``--cycles`` cosine cycles in the last ``--fraction`` of the same epochs,
the tickets averaged and pruned back to the budget). Both are reported on validation and
test; ``last ticket`` is the Sup-tickets run's own model before superposition (what the
cycles alone give). The two runs of a pair are interleaved in one process, so their time
ratio is measured under the same load.

Writes ``sup_tickets.json`` and ``sup_tickets.md`` to ``--results``:

    python benchmarks/sup_tickets.py
    python benchmarks/sup_tickets.py --epochs 2 --train-subset 3000 --seeds 0 \
        --results /tmp/st   # smoke test
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
from sparta.sparsity.dst import create_dst
from sparta.sparsity.dst.sup_tickets import SupTickets
from sparta.sparsity.schedules import current_sparsity
from sparta.train import TrainConfig, Trainer, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"


def run(splits: Any, cfg: TrainConfig, method: str, args: argparse.Namespace, sup: bool) -> dict:
    """One DST run (with or without Sup-tickets) from the seed's init."""
    torch.manual_seed(cfg.seed)
    model = models.create("lenet300", dataset=splits.train.info)
    dst = create_dst(method, model, args.sparsity, distribution="erk", seed=cfg.seed)
    callbacks: list[Any] = [dst]
    if sup:
        sup_tickets = SupTickets(
            dst, args.cycles, fraction=args.fraction, high=args.high, low=args.low,
            explore=args.explore,
        )  # fmt: skip
        callbacks.append(sup_tickets)
    start = time.perf_counter()
    trainer = Trainer(
        model, splits.train, cfg, val_data=splits.val, callbacks=callbacks, quiet=True
    )
    trainer.fit()
    row: dict[str, Any] = {"train_time_s": time.perf_counter() - start}
    row["val_acc"] = evaluate(model, splits.val)["acc"]
    row["test_acc"] = evaluate(model, splits.test)["acc"]
    row["sparsity"] = current_sparsity(model)
    if sup:
        row["last_ticket_val_acc"] = trainer.history[-1]["last_ticket_val_acc"]
        row["tickets"] = callbacks[-1].count
    return row


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"LeNet-300-100, Fashion-MNIST, sparsity {args.sparsity} (ERK), {args.epochs} epochs, "
        f"Sup-tickets: {args.cycles} cycles in the last {args.fraction:.0%} (lr x{args.high} -> "
        f"x{args.low}, re-exploration {args.explore})",
        "",
        "| method | seed | base val | base test | sup val | sup test | last-ticket val | "
        "test gain (pts) | time ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b, s = r["base"], r["sup"]
        lines.append(
            f"| {r['method']} | {r['seed']} | {b['val_acc']:.4f} | {b['test_acc']:.4f} | "
            f"{s['val_acc']:.4f} | {s['test_acc']:.4f} | {s['last_ticket_val_acc']:.4f} | "
            f"{100 * (s['test_acc'] - b['test_acc']):+.2f} | "
            f"{s['train_time_s'] / b['train_time_s']:.2f} |"
        )
    for method in sorted({r["method"] for r in rows}):
        gains = [
            100 * (r["sup"]["test_acc"] - r["base"]["test_acc"])
            for r in rows
            if r["method"] == method
        ]
        lines.append(f"| {method} | mean | | | | | | {statistics.mean(gains):+.2f} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sparsity", type=float, default=0.95)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--high", type=float, default=0.05, help="cycle lr at its start, x --lr")
    p.add_argument("--low", type=float, default=0.01, help="cycle lr at its end, x --lr")
    p.add_argument("--explore", type=float, default=0.5, help="re-exploration per cycle")
    p.add_argument("--name", default="sup_tickets", help="results file stem")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--methods", nargs="*", default=["set", "rigl"])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    rows = []
    for seed in args.seeds:
        cfg = TrainConfig(
            dataset="fashion-mnist",
            model="lenet300",
            epochs=args.epochs,
            lr=args.lr,
            train_subset=args.train_subset,
            seed=seed,
        )
        splits = load_splits(cfg)
        for method in args.methods:
            row = {"method": method, "seed": seed}
            row["base"] = run(splits, cfg, method, args, sup=False)
            row["sup"] = run(splits, cfg, method, args, sup=True)
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sup_tickets.json").write_text(
        json.dumps({"config": vars(args), "rows": rows}, indent=2)
    )
    table = markdown(rows, args)
    (out / "sup_tickets.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
