"""Supermasks (edge-popup, 1911.13299) of random networks vs the same networks trained.

Two checks, each against its trained dense baseline at the same budget, in one process:

1. **LeNet-5 on full Fashion-MNIST** at widths x1, x2, x4 (``lenet5 --width``): the dense
   network trained (SGD, lr 0.05, momentum 0.9, cosine, weight decay 5e-4) vs edge-popup
   supermasks of a random init of the same architecture, keeping k = 50% of every layer
   (the paper's best k, §4.2), weights frozen as Kaiming normal and as the signed Kaiming
   constant (§4.1), scores trained with the paper's SGD (lr 0.1, momentum 0.9, cosine,
   weight decay 1e-4), the same number of epochs and batch size 128. The paper's claim: the
   supermask's accuracy approaches the trained network's as the network gets wider (Fig. 2,
   Fig. 5). 54,000 training images, 6,000 held out for validation (reported per epoch; no
   choice is made on them), the 10,000 test images once, at the end.
2. **GCN on a stochastic-block-model graph** (2211.15335, untrained GNN tickets): the
   trained dense 2-layer GCN vs supermasks of its random init at several sparsities
   (full-batch Adam, 200 steps, state at the best validation accuracy; 3 seeds).

Results: ``benchmarks/results/supermask.json`` and ``supermask.md``. Units already in the
JSON are skipped when the script is rerun (``--overwrite`` starts afresh).

    python benchmarks/supermask.py                      # ~25 min on 2 loaded cores
    python benchmarks/supermask.py --epochs 1 --train-subset 3000 --widths 1 --results /tmp/x
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from sparta.data.graphs import sbm
from sparta.experiments.untrained_gnn import compare
from sparta.sparsity.supermask import SupermaskMetrics, supermask
from sparta.train import TrainConfig, load_splits, train

RESULTS = Path(__file__).parent / "results"
DENSE = dict(lr=0.05, weight_decay=5e-4)  # the LeNet-5 recipe of benchmarks/lottery.py
SCORES = dict(lr=0.1, weight_decay=1e-4)  # 1911.13299's configs (hidden-networks, conv4)


def lenet_unit(method: str, width: float, args: argparse.Namespace, splits: Any) -> dict[str, Any]:
    """Train one LeNet-5 (``dense``) or one supermask (``sc``/``kn``) and return its row."""
    hp = DENSE if method == "dense" else SCORES
    cfg = TrainConfig(
        dataset="fashion-mnist",
        model="lenet5",
        width=width,
        epochs=args.epochs,
        batch_size=128,
        train_subset=args.train_subset,
        best_metric="",
        seed=args.seed,
        **hp,
    )
    torch.manual_seed(cfg.seed)
    from sparta import models

    model = models.create("lenet5", dataset=splits.train.info, width=width)
    callbacks = []
    if method != "dense":
        weights = {"sc": "signed-constant", "kn": "kaiming-normal"}[method]
        model = supermask(model, args.sparsity, weights=weights, seed=cfg.seed)
        callbacks = [SupermaskMetrics(model)]
    start = time.perf_counter()
    res = train(cfg, model=model, callbacks=callbacks, write_run=False, quiet=True, splits=splits)
    return {
        "method": method,
        "width": width,
        "sparsity": res.history[-1].get("sparsity", 0.0),
        "test_acc": res.summary["test_acc"],
        "val_acc_per_epoch": [h["val_acc"] for h in res.history],
        "time_s": time.perf_counter() - start,
        "n_train": res.summary["n_train"],
        "n_val": res.summary["n_val"],
        "n_test": res.summary["n_test"],
        **hp,
    }


def table(out: dict[str, Any]) -> str:
    lines = []
    rows = out.get("lenet5", [])
    if rows:
        lines += [
            f"LeNet-5 on Fashion-MNIST, {out['epochs']} epochs, supermask sparsity "
            f"{out['sparsity']}",
            "",
            "| width | dense trained | supermask (signed constant) | supermask (Kaiming normal) |",
            "|---|---|---|---|",
        ]
        for w in sorted({r["width"] for r in rows}):
            by = {r["method"]: r for r in rows if r["width"] == w}
            d = by.get("dense", {}).get("test_acc")
            cells = [f"{d:.2%}" if d is not None else "-"]
            for m in ("sc", "kn"):
                a = by.get(m, {}).get("test_acc")
                share = f" ({a / d:.1%} of dense)" if a is not None and d else ""
                cells.append(f"{a:.2%}{share}" if a is not None else "-")
            lines.append(f"| x{w:g} | " + " | ".join(cells) + " |")
    gcn = out.get("gcn", [])
    if gcn:
        lines += [
            "",
            f"GCN on an SBM graph ({out['gcn_graph']}), test accuracy, mean of seeds "
            f"{sorted({r['seed'] for r in gcn})}",
            "",
            "| weights | model | sparsity | test acc (mean) | per seed |",
            "|---|---|---|---|---|",
        ]
        for weights in sorted({r["weights"] for r in gcn}):
            rs = [r for r in gcn if r["weights"] == weights]
            for key in sorted({(r["method"], r["sparsity"]) for r in rs}):
                accs = [r["test_acc"] for r in rs if (r["method"], r["sparsity"]) == key]
                lines.append(
                    f"| {weights} | {key[0]} | {key[1]:g} | {mean(accs):.2%} | "
                    + ", ".join(f"{a:.1%}" for a in accs)
                    + " |"
                )
    return "\n".join(lines) + "\n"


def save(out: dict[str, Any], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "supermask.json").write_text(json.dumps(out, indent=2) + "\n")
    (results / "supermask.md").write_text(table(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--methods", nargs="+", default=["dense", "sc", "kn"])
    ap.add_argument("--train-subset", type=int, default=0)
    ap.add_argument("--gcn-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--gcn-sparsities", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    ap.add_argument("--skip-gcn", action="store_true")
    ap.add_argument("--skip-lenet", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    path = args.results / "supermask.json"
    out: dict[str, Any] = {}
    if path.is_file() and not args.overwrite:
        out = json.loads(path.read_text())
    out.update(epochs=args.epochs, sparsity=args.sparsity, seed=args.seed)
    out["torch_threads"] = torch.get_num_threads()
    start = time.perf_counter()
    if not args.skip_gcn:
        graph_opts = dict(n_nodes=1000, n_blocks=4, p_in=0.02, p_out=0.004, n_features=32)
        out["gcn_graph"] = ", ".join(f"{k}={v}" for k, v in graph_opts.items())
        g = sbm(**graph_opts, seed=0)
        rows = out.setdefault("gcn", [])
        for weights in ("signed-constant", "kaiming-normal"):
            for seed in args.gcn_seeds:
                if any(r["weights"] == weights and r["seed"] == seed for r in rows):
                    continue
                res = compare(g, args.gcn_sparsities, weights=weights, seeds=[seed])
                rows += [{**r.to_dict(), "weights": weights} for r in res]
                save(out, args.results)
                print(f"gcn {weights} seed {seed}: {[round(r.test_acc, 3) for r in res]}")
    if not args.skip_lenet:
        splits = None
        rows = out.setdefault("lenet5", [])
        for width in args.widths:
            for method in args.methods:
                if any(r["width"] == width and r["method"] == method for r in rows):
                    continue
                if splits is None:
                    cfg = TrainConfig(
                        dataset="fashion-mnist", train_subset=args.train_subset, seed=args.seed
                    )
                    splits = load_splits(cfg)
                row = lenet_unit(method, width, args, splits)
                rows.append(row)
                save(out, args.results)
                print(
                    f"lenet5 x{width:g} {method}: test {row['test_acc']:.4f} "
                    f"({row['time_s']:.0f} s)",
                    flush=True,
                )
    out["time_s"] = out.get("time_s", 0.0) + time.perf_counter() - start
    save(out, args.results)
    print(table(out))


if __name__ == "__main__":
    main()
