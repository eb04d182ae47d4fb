"""Machine unlearning on full Fashion-MNIST with LeNet-5: every method, dense and 95%-pruned.

Settings: 10% random forgetting and class-wise forgetting (class 0, the seeds' code default
``--class_to_replace 0``). The original model is trained on all 60k training images
(SGD, lr 0.05, cosine, 20 epochs); Retrain uses the same recipe on the retain set. The
95%-sparse original is the dense one pruned by global magnitude (one-shot, as the seeds'
OMP) and trained 5 more epochs on all 60k images with its mask (the seeds train their
sparse original on the full data before unlearning); the same sparse model starts every
sparse method, and sparse Retrain trains a fresh init with the same mask. Method
defaults are the papers' (see ``sparta.unlearn.methods``: FT/l1-sparse 10 epochs at 0.01,
GA 5 at 1e-4, RL/SalUn 10 at 0.013, SalUn's mask the top 50%). At each sparsity Retrain
(with the same mask when pruned) is the reference of Avg. Gap. Writes
``benchmarks/results/unlearning_<setting>.json`` and ``.md`` (the table), and run folders
with table.csv / table.png under ``benchmarks/results/runs/``.

Claims checked (2304.04934, 2310.12508): pruning first narrows FT's gap to Retrain;
l1-sparse and SalUn have a smaller Avg. Gap than FT, GA and RL; unlearning takes a small
fraction of Retrain's time (``rte_ratio``).

Time on 2 idle cores: roughly 30-40 min (LeNet-5 epochs of ~6 s on 54-60k images: 20
for the original, 2 x 5 after pruning, 4 x 20 for Retrain, ~4 x 45 for the other five).

    python benchmarks/unlearning.py [--settings random:0.1 class:0] [--prune 0.95]
    python benchmarks/unlearning.py --train-subset 2000 --test-subset 500 --train-epochs 1 \\
        --epochs 1 --retrain-epochs 1 --prune-finetune 1 --results /tmp/unlearn-bench
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

import sparta
from sparta import data as sdata
from sparta import models
from sparta.experiments.prune_unlearn import unlearn_bench
from sparta.report.unlearn import format_markdown, write_table
from sparta.train import TrainConfig, Trainer, evaluate
from sparta.unlearn import UnlearnOptions, make_setting, method_names

RESULTS = Path(__file__).parent / "results"
TRAIN = dict(epochs=20, lr=0.05, batch_size=128, weight_decay=5e-4, schedule="cosine")


def checks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' claims evaluated on one setting's table."""
    by = {(r["method"], r["sparsity"]): r for r in rows}
    sparsities = sorted({r["sparsity"] for r in rows})
    out: dict[str, Any] = {}
    if len(sparsities) > 1 and ("ft", 0.0) in by:
        dense, sparse = by[("ft", 0.0)]["avg_gap"], by[("ft", sparsities[-1])]["avg_gap"]
        out["ft_gap_dense"], out["ft_gap_pruned"] = dense, sparse
        out["pruning_narrows_ft_gap"] = sparse < dense
    for s in sparsities:
        base = [by[(m, s)]["avg_gap"] for m in ("ft", "ga", "rl") if (m, s) in by]
        for m in ("l1-sparse", "salun"):
            if base and (m, s) in by:
                out[f"{m}_beats_ft_ga_rl_at_{s:g}"] = by[(m, s)]["avg_gap"] < min(base)
    out["rte_ratio"] = {f"{r['method']}@{r['sparsity']:g}": r["rte_ratio"] for r in rows}
    return out


def original_model(args: argparse.Namespace, train, test) -> tuple[torch.nn.Module, TrainConfig]:
    """Train (or reload) the model to unlearn from."""
    cfg = TrainConfig(
        dataset="fashion-mnist", model="lenet5", val_fraction=0.0, best_metric="",
        seed=args.seed, **{**TRAIN, "epochs": args.train_epochs},
    )  # fmt: skip
    tag = f"e{args.train_epochs}-n{len(train)}-s{args.seed}"
    path = args.results / "runs" / f"unlearning-original-{tag}" / "model.safetensors"
    if path.is_file():
        return sparta.load(path), cfg
    torch.manual_seed(args.seed)
    model = models.create("lenet5", train)
    Trainer(model, train, cfg, quiet=True).fit()
    sparta.save(model, path, test_acc=evaluate(model, test)["acc"])
    return model, cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="*", default=["random:0.1", "class:0"])
    p.add_argument("--methods", nargs="*", default=method_names())
    p.add_argument("--prune", type=float, default=0.95)
    p.add_argument("--prune-scope", default="global", choices=["global", "layer", "erk"])
    p.add_argument(
        "--prune-finetune", type=int, default=5,
        help="epochs on all 60k images after pruning: the sparse original model",
    )  # fmt: skip
    p.add_argument("--train-epochs", type=int, default=TRAIN["epochs"])
    p.add_argument("--epochs", type=int, default=0, help="unlearning epochs (0: each default)")
    p.add_argument("--retrain-epochs", type=int, default=0, help="0: --train-epochs")
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--mia-max", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train, test = sdata.load("fashion-mnist", "train"), sdata.load("fashion-mnist", "test")
    if args.train_subset:
        train = train.take(args.train_subset, seed=args.seed)
    if args.test_subset:
        test = test.take(args.test_subset, seed=args.seed)
    start = time.perf_counter()
    model, cfg = original_model(args, train, test)
    opts = UnlearnOptions(
        epochs=args.epochs, retrain_epochs=args.retrain_epochs, mia_max=args.mia_max,
        prune_scope=args.prune_scope, prune_finetune=args.prune_finetune, seed=args.seed,
    )  # fmt: skip
    for spec in args.settings:
        t0 = time.perf_counter()
        setting = make_setting(train, test, spec, seed=args.seed)
        rows = unlearn_bench(model, train, test, methods=args.methods, prune=args.prune,
                             options=opts, train_config=cfg, setting=setting)  # fmt: skip
        tag = spec.replace(":", "").replace(",", "-").replace(".", "")
        folder = args.results / "runs" / f"unlearning-{tag}"
        write_table(rows, folder)
        setting.save(folder)
        table = format_markdown(rows)
        result = {
            "setting": str(setting.spec),
            "dataset": "fashion-mnist",
            "model": "lenet5",
            "n_train": len(train),
            "n_test": len(test),
            "n_forget": len(setting.forget_pos),
            "original_test_acc": evaluate(model, test)["acc"],
            "train_config": cfg.to_dict(),
            "options": opts.to_dict(),
            "prune": args.prune,
            "rows": rows,
            "checks": checks(rows),
            "time_s": time.perf_counter() - t0,
        }
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / f"unlearning_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.results / f"unlearning_{tag}.md").write_text(
            f"{setting.spec} on Fashion-MNIST, LeNet-5\n\n{table}\n"
        )
        print(f"\n{setting.spec}\n{table}\nchecks: {json.dumps(result['checks'])}")
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
