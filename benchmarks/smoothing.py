"""Randomized smoothing on Fashion-MNIST: certified accuracy at L2 radii 0.25 / 0.5 / 1.0
for sigma 0.25 and 0.5 (Cohen et al. 2019, arXiv 1902.02918).

For each sigma a base classifier (LeNet-300-100 by default) is trained with Gaussian-noise
augmentation at that sigma (the ``gaussian`` objective, as in Sec. 4 of the paper), then
CERTIFY runs on ``--n-test`` test images with ``n0 = 100``, ``--n`` noise samples (the paper
uses 100,000; fewer give smaller radii, never unsound ones) and ``alpha = 0.001``.

Writes ``smoothing.json``, ``smoothing.md`` and ``smoothing.png`` (certified accuracy vs
radius, one line per sigma) to ``--results``:

    python benchmarks/smoothing.py                                   # full settings (slow)
    python benchmarks/smoothing.py --epochs 1 --train-subset 2000 --n-test 10 --n 200 \
        --results /tmp/sm                                            # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from sparta import models
from sparta.certify.smoothing import GaussianAugmentation, certify_examples
from sparta.report.certify import plot_certified_curve
from sparta.train import TrainConfig, Trainer, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"
RADII = (0.0, 0.25, 0.5, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sigmas", type=float, nargs="*", default=[0.25, 0.5])
    p.add_argument("--model", default="lenet300")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        dataset="fashion-mnist",
        model=args.model,
        epochs=args.epochs,
        lr=args.lr,
        train_subset=args.train_subset,
        seed=args.seed,
    )
    splits = load_splits(cfg)
    test = splits.test.take(min(args.n_test, len(splits.test)), seed=args.seed)
    rows: list[dict[str, Any]] = []
    reports = []
    for sigma in args.sigmas:
        torch.manual_seed(args.seed)
        model = models.create(args.model, dataset=splits.train.info)
        objective = GaussianAugmentation(sigma, seed=args.seed)
        start = time.perf_counter()
        Trainer(
            model, splits.train, cfg, val_data=splits.val, objective=objective, quiet=True
        ).fit()
        train_s = time.perf_counter() - start
        report = certify_examples(
            model, test, sigma, args.n0, args.n, args.alpha, args.batch, args.seed
        )
        reports.append(report)
        row = {"sigma": sigma, "clean_test_acc": evaluate(model, test)["acc"]}
        row.update(report.summary(RADII), train_time_s=train_s)
        rows.append(row)
        print(json.dumps(row))
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoothing.json").write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2))
    plot_certified_curve(reports, out / "smoothing.png", max_radius=1.5)
    head = "| sigma | clean acc | " + " | ".join(f"r = {r:g}" for r in RADII) + " | abstain |"
    lines = [
        f"Fashion-MNIST, {args.model}, n = {args.n}, alpha = {args.alpha}, {len(test)} images",
        "",
        head,
        "|" + "---|" * (len(RADII) + 3),
    ]
    for r in rows:
        accs = " | ".join(f"{r[f'certified_acc_r{x:g}']:.3f}" for x in RADII)
        lines.append(
            f"| {r['sigma']:g} | {r['clean_test_acc']:.3f} | {accs} | {r['abstain_rate']:.3f} |"
        )
    (out / "smoothing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
