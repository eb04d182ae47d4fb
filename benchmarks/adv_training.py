"""Adversarial training on Fashion-MNIST (LeNet-5, Linf eps 0.1): standard vs PGD-AT vs
TRADES vs Fast-AT vs WOT, robust accuracy under the standard (AutoAttack-style) suite.

Each method is trained with ``sparta train`` (``--adv ...``; best checkpoint by PGD robust
accuracy on the validation split), then both its final and its best checkpoint are
evaluated with :func:`sparta.attacks.evaluate.evaluate` on ``--n-test`` test images.
Claims checked (issue 4): the standard model falls to near 0%; PGD-AT and TRADES keep a
robust accuracy; WOT's final-epoch robust accuracy is at least PGD-AT's.

Writes ``benchmarks/results/adv_training.json`` and run folders under
``benchmarks/results/runs/adv-<method>``. Run it on a quiet machine:

    python benchmarks/adv_training.py                        # full settings
    python benchmarks/adv_training.py --epochs 1 --train-subset 1000 --n-test 50 \
        --suite fast --results /tmp/x                        # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

import sparta
import sparta.attacks  # noqa: F401  (registers every attack)
import sparta.attacks.apgd  # noqa: F401  (apgd-ce, apgd-t: the fast suite)
from sparta import data as sdata
from sparta.attacks.evaluate import evaluate
from sparta.cli import main as cli
from sparta.runs import Run

RESULTS = Path(__file__).parent / "results"
METHODS = ("standard", "pgd", "trades", "fast", "wot")


SPARSE = {"gmp": ["--gmp"], "rigl": ["--dst", "rigl"]}


def sparse_flags(spec: str) -> list[str]:
    """``gmp:0.8`` -> gradual magnitude pruning to 80% during PGD-AT; ``rigl:0.9`` -> RigL."""
    kind, _, sparsity = spec.partition(":")
    if kind not in SPARSE or not sparsity:
        raise SystemExit(f"--sparse {spec!r}: expected gmp:S or rigl:S, e.g. gmp:0.8")
    return [*SPARSE[kind], "--sparsity", sparsity]


def train_one(method: str, args: argparse.Namespace, root: Path) -> Path:
    name = f"adv-{method.replace(':', '')}"
    method, _, sparse = method.partition("+")
    flags = ["--dataset", "fashion-mnist", "--model", "lenet5", "--epochs", str(args.epochs)]
    flags += ["--lr", str(args.lr), "--batch-size", "128", "--seed", str(args.seed)]
    if args.train_subset:
        flags += ["--train-subset", str(args.train_subset)]
    if method != "standard":
        flags += ["--adv", method, "--eps", str(args.eps), "--adv-steps", str(args.adv_steps)]
        flags += ["--val-n", str(args.val_n)]
    if sparse:
        flags += sparse_flags(sparse)
    code = cli(["--quiet", "train", *flags, "--out", str(root), "--name", name, "--overwrite"])
    if code:
        raise SystemExit(f"training {method} failed (exit {code})")
    return root / name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--adv-steps", type=int, default=10)
    p.add_argument("--val-n", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--suite", default="standard", choices=["standard", "fast"])
    p.add_argument(
        "--sparse",
        nargs="*",
        default=[],
        help="extra sparse PGD-AT runs, e.g. gmp:0.5 gmp:0.8 rigl:0.9 (magnitude via GMP, RigL)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--output", default="adv_training.json", help="JSON file name in --results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.results)
    root = out / "runs"
    test = sdata.load("fashion-mnist", "test")
    rows: dict[str, Any] = {}
    for method in [*args.methods, *(f"pgd+{spec}" for spec in args.sparse)]:
        start = time.perf_counter()
        run_dir = train_one(method, args, root)
        train_s = time.perf_counter() - start
        row: dict[str, Any] = {"train_time_s": train_s}
        row["sparsity"] = Run(run_dir).read_summary().get("sparsity", 0.0)
        history = Run(run_dir).metrics()
        row["val_robust_acc_by_epoch"] = [r.get("val_robust_acc") for r in history]
        for which, file in (("final", "model.safetensors"), ("best", "best.safetensors")):
            if not (run_dir / file).is_file():
                continue
            model = sparta.load(run_dir / file)
            rep = evaluate(model, test, args.eps, suite=args.suite, n=args.n_test, seed=0)
            row[which] = rep.summary()
            print(
                f"{method:9s} {which:5s} clean_acc={rep.clean_acc:.4f} "
                f"robust_acc={rep.robust_acc:.4f} ({args.suite}, n={rep.n})"
            )
        rows[method] = row
    checks: dict[str, Any] = {}
    if "standard" in rows:
        checks["standard_robust_acc"] = rows["standard"]["final"]["robust_acc"]
    if "pgd" in rows and "wot" in rows:
        checks["wot_final_ge_pgd_final"] = (
            rows["wot"]["final"]["robust_acc"] >= rows["pgd"]["final"]["robust_acc"]
        )
    result = {"settings": vars(args), "methods": rows, "checks": checks}
    out.mkdir(parents=True, exist_ok=True)
    (out / args.output).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {out / args.output}")


if __name__ == "__main__":
    main()
