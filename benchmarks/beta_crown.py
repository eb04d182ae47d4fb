"""alpha-CROWN with intermediate slopes and BaB with beta-CROWN (issue 15; 2011.13824, 2103.06624).

Fashion-MNIST, LeNet-300-100 trained as in ``benchmarks/certify_pruning.py`` (the dense model of
its table: ``--epochs`` epochs of SGD, validation split for the checkpoint), Linf eps 0.02.

1. **alpha-CROWN before/after**: mean improvement of the margin lower bounds ``z_y - z_j`` over
   CROWN's on ``--n-alpha`` test images: "output slopes" (the previous alpha-CROWN: slopes of
   the output specification only, intermediate bounds fixed at CROWN's; on torch 2.13.0 that is
   what the old code computed, on 2.14.1 the old code returned CROWN's bounds) against "all
   slopes" (a slope per (bounded node, ReLU) pair, intermediate bounds re-optimised), both 20
   Adam steps, lr 0.5. Times are measured interleaved in one process.
2. **Complete verification**: BaB on ``--n-test`` test images (PGD falsifier, 20 steps, as
   ``sparta certify --method bab``) with sub-problems bounded by each of ``--bab-bounds`` (plain
   CROWN: the previous BaB; alpha-CROWN; beta-CROWN: the default), at each per-image
   ``--timeouts`` (wall-clock: on a loaded machine they buy less work) and at each per-image
   branch budget ``--bab-max-branches`` (with ``--branch-timeout`` seconds as a cap; the
   load-independent comparison): verified / falsified / unknown, branches, time (wall) and CPU
   time. ``--n-alpha 0`` skips part 1.

Writes ``beta_crown.json`` and ``beta_crown.md`` to ``--results``. Full run:

    python benchmarks/beta_crown.py --threads 1
    python benchmarks/beta_crown.py --threads 1 --eps 0.03 --n-alpha 0 --n-test 100 \\
        --bab-bounds crown alpha-crown beta-crown --timeouts 2 10 --bab-max-branches 300
    python benchmarks/beta_crown.py --epochs 1 --train-subset 2000 --n-alpha 10 --n-test 20 \\
        --timeouts 0.5 --results /tmp/bc     # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from sparta import models
from sparta.certify import bounds as certify_bounds
from sparta.certify.crown import intermediate_bounds, optimize_bounds, output_bounds
from sparta.certify.domain import InputDomain
from sparta.certify.graph import trace
from sparta.certify.ibp import interval, spec_matrix
from sparta.experiments.stability import finetune
from sparta.experiments.verify import verified_accuracy
from sparta.train import TrainConfig, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"


def margin_bounds(model, x, y, eps: float) -> dict[str, Any]:
    """CROWN, output-slope and all-slope alpha-CROWN margin bounds (rows j != y) and times."""
    graph = trace(model, tuple(x.shape[1:]), "alpha-crown")
    dom = InputDomain(x, eps)
    k = model(x[:1]).shape[1]
    spec = spec_matrix(y, k).transpose(0, 1)  # (K, B, K): rows e_y - e_j
    other = torch.ones(k, len(y), dtype=torch.bool)
    other[y, torch.arange(len(y))] = False
    out: dict[str, Any] = {}
    with torch.no_grad():
        start = time.perf_counter()
        inter = intermediate_bounds(graph, dom, interval(graph, dom))
        crown, _ = output_bounds(graph, dom, spec, inter)
        out["crown_time_s"] = time.perf_counter() - start
    for key, full in (("output_slopes", False), ("all_slopes", True)):
        start = time.perf_counter()
        low, _, _ = optimize_bounds(graph, dom, spec, inter, intermediate=full)
        out[f"{key}_time_s"] = time.perf_counter() - start + out["crown_time_s"]
        gain = (low - crown)[other]
        out[f"{key}_mean_gain"] = float(gain.mean())
        out[f"{key}_max_gain"] = float(gain.max())
        out[f"{key}_verified"] = int(((low > 0) | ~other).all(0).sum())
    out["crown_verified"] = int(((crown > 0) | ~other).all(0).sum())
    out["crown_mean_margin_bound"] = float(crown[other].mean())
    # the public API (alpha-crown = all slopes) agrees with the direct call
    api = certify_bounds(model, x, eps, method="alpha-crown", y=y)
    out["api_verified"] = int(api.verified.sum())
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"torch {res['torch']}, Fashion-MNIST LeNet-300-100, Linf eps = {res['config']['eps']:g}",
    ]
    if "alpha" in res:
        a = res["alpha"]
        lines += [
            "",
            f"alpha-CROWN on {res['config']['n_alpha']} test images (margin bounds, j != y):",
            "",
            "| bound | mean gain over CROWN | max gain | verified | time (s) |",
            "|---|---|---|---|---|",
            f"| CROWN | 0 | 0 | {a['crown_verified']} | {a['crown_time_s']:.2f} |",
        ]
        for key, label in (("output_slopes", "alpha, output slopes (before)"),
                           ("all_slopes", "alpha, all slopes (after)")):  # fmt: skip
            lines.append(
                f"| {label} | {a[key + '_mean_gain']:.4f} | {a[key + '_max_gain']:.4f} | "
                f"{a[key + '_verified']} | {a[key + '_time_s']:.2f} |"
            )
    lines += [
        "",
        f"BaB on {res['config']['n_test']} test images:",
        "",
        "| sub-problem bound | timeout (s) | max branches | verified | falsified | unknown | wrong "
        "| branches | time (s) | CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["bab"]:
        lines.append(
            f"| {r['bab_bound']} | {r['timeout']:g} | {r['max_branches']} | {r['verified']} | "
            f"{r['falsified']} | {r['unknown']} | {r['wrong']} | {r['branches']} | "
            f"{r['time_s']:.1f} | {r['cpu_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eps", type=float, default=0.02)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--n-alpha", type=int, default=100)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--timeouts", type=float, nargs="*", default=[2.0, 5.0])
    p.add_argument("--bab-max-branches", type=int, nargs="*", default=[])
    p.add_argument("--branch-timeout", type=float, default=120.0, help="cap of those rows (s)")
    p.add_argument("--bab-bounds", nargs="*", default=["crown", "beta-crown"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument(
        "--model-cache", default="", help="state_dict file: load if it exists, else save"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        dataset="fashion-mnist",
        model="lenet300",
        epochs=args.epochs,
        lr=args.lr,
        train_subset=args.train_subset,
        seed=args.seed,
    )
    torch.manual_seed(args.seed)
    splits = load_splits(cfg)
    test = splits.test.take(min(args.n_test, len(splits.test)), seed=args.seed)
    model = models.create("lenet300", dataset=splits.train.info)
    start = time.perf_counter()
    cache = Path(args.model_cache) if args.model_cache else None
    if cache is not None and cache.exists():
        model.load_state_dict(torch.load(cache))
    else:
        finetune(model, None, splits.train, cfg, splits.val)
        if cache is not None:
            torch.save(model.state_dict(), cache)
    model.eval()
    res: dict[str, Any] = {"config": vars(args), "torch": torch.__version__}
    res["train_time_s"] = time.perf_counter() - start
    res["test_acc"] = evaluate(model, test)["acc"]
    n_alpha = min(args.n_alpha, len(test))
    if n_alpha:
        x, y = test.x[:n_alpha], test.y[:n_alpha].long()
        res["alpha"] = margin_bounds(model, x, y, args.eps)
        print(json.dumps(res["alpha"]), flush=True)
    res["bab"] = []
    budgets = [(t, 100_000) for t in args.timeouts]
    budgets += [(args.branch_timeout, b) for b in args.bab_max_branches]
    for timeout, max_branches in budgets:
        for bound in args.bab_bounds:  # interleaved: every bound at one budget, then the next
            cpu = time.process_time()
            out = verified_accuracy(
                model,
                test,
                args.eps,
                method="bab",
                timeout=timeout,
                bab_bound=bound,
                max_branches=max_branches,
            )
            row = {"bab_bound": bound, "timeout": timeout, "max_branches": max_branches}
            row.update({k: out[k] for k in ("verified", "falsified", "unknown", "wrong")})
            row.update(branches=out["branches"], time_s=out["time_s"])
            row["cpu_s"] = time.process_time() - cpu
            res["bab"].append(row)
            print(json.dumps(row), flush=True)
    out_dir = Path(args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "beta_crown.json").write_text(json.dumps(res, indent=2))
    (out_dir / "beta_crown.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
