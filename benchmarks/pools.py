"""Lottery Pools vs the plain lottery ticket on full Fashion-MNIST and Fashion-MNIST-C.

Claim (Yin et al., arXiv 2208.10842, abstract and Sec. 4): interpolating a ticket with its
neighbouring IMP tickets (coefficients chosen on held-out data, the target's mask kept)
gives a stronger subnetwork at the same sparsity, in-distribution (up to +1.9 points on
CIFAR-100) and on corruptions (up to +2.4 on CIFAR-100-C). Checked here: the pooled ticket
beats the plain ticket at three or more sparsities, on the test set and on the mean
corruption accuracy (6 corruptions x 5 severities, sparta.data.corruptions), averaged over
the seeds.

Recipe: LeNet-300-100, IMP with late rewinding (to step ``--rewind`` of the dense run, every
level retrained from there to the end of ``--epochs``), ``--rate`` of the remaining weights
pruned per level (uniform per layer, output layer at half the rate), ``--levels`` levels,
SGD lr 0.05 cosine, batch 128, weight decay 5e-4; 10% of the training set held out as the
validation split on which Lottery Pools picks its coefficients (grid 0.05 ... 0.95, every
other level a candidate, nearest first). The baseline is each level's own ticket, from the
same IMP run. The test set (and its corrupted copies) is read once per model, after the
search. Per seed: ``benchmarks/results/runs/pools-s<seed>`` (the IMP run) and
``pool-s<seed>-l<level>`` (each pool search); all figures in ``benchmarks/results/pools.json``
and ``pools.md``. Killed runs continue when rerun (``--overwrite`` starts afresh).

    python benchmarks/pools.py [--seeds 0 1] [--levels 8] [--epochs 6] [--rate 0.4]
    python benchmarks/pools.py --coefficients 0.5 --tag=-avg   # the same tickets, averaged
    python benchmarks/pools.py --seeds 0 --levels 2 --epochs 1 --train-subset 3000 --results /tmp/x
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from sparta import data, load
from sparta.data.corruptions import every_corruption
from sparta.sparsity.lottery import lottery
from sparta.sparsity.pools import PoolConfig, lottery_levels, pool_run
from sparta.train import TrainConfig, evaluate_corruptions

RESULTS = Path(__file__).parent / "results"


def run_seed(seed: int, args: argparse.Namespace, sets: list[Any]) -> list[dict[str, Any]]:
    cfg = TrainConfig(
        model="lenet300",
        dataset="fashion-mnist",
        epochs=args.epochs,
        lr=0.05,
        batch_size=128,
        weight_decay=5e-4,
        train_subset=args.train_subset,
        seed=seed,
    )
    runs = args.results / "runs"
    start = time.perf_counter()
    imp = lottery(
        cfg,
        levels=args.levels,
        rate=args.rate,
        rewind_step=args.rewind,
        controls="none",
        root=runs,
        name=f"pools-s{seed}",
        resume=not args.overwrite,
        overwrite=args.overwrite,
    )
    imp_s = time.perf_counter() - start
    tickets = lottery_levels(imp.run.path)
    rows = []
    for level in range(1, args.levels + 1):
        t0 = time.perf_counter()
        res = pool_run(
            imp.run.path,
            PoolConfig(target=level, coefficients=args.coefficients),
            root=runs,
            name=f"pool{args.tag}-s{seed}-l{level:02d}",
            resume=not args.overwrite,
            overwrite=args.overwrite,
        )
        pool_s = time.perf_counter() - t0
        plain = evaluate_corruptions(load(tickets[level]), sets[0][2], sets=sets)
        pooled = evaluate_corruptions(res.model, sets[0][2], sets=sets)
        s = res.summary
        rows.append(
            {
                "seed": seed,
                "level": level,
                "sparsity": s["sparsity"],
                "ticket_val_acc": s["target_val_acc"],
                "pool_val_acc": s["val_acc"],
                "ticket_test_acc": s["target_test_acc"],
                "pool_test_acc": s["test_acc"],
                "ticket_corruption_acc": plain["corruption_acc"],
                "pool_corruption_acc": pooled["corruption_acc"],
                "ticket_by_kind": plain["by_kind"],
                "pool_by_kind": pooled["by_kind"],
                "accepted": s["accepted"],
                "pool_search_s": pool_s,
            }
        )
        r = rows[-1]
        print(
            f"seed {seed} level {level} ({100 * r['sparsity']:.1f}% sparse): test "
            f"{r['ticket_test_acc']:.4f} -> {r['pool_test_acc']:.4f}, corruptions "
            f"{r['ticket_corruption_acc']:.4f} -> {r['pool_corruption_acc']:.4f}, "
            f"accepted {r['accepted']} ({pool_s:.0f} s)",
            flush=True,
        )
    for r in rows:
        r["imp_s"] = imp_s
    return rows


def summarise(rows: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """Per level: the means over seeds of the ticket, the pooled ticket and their gaps."""
    out = []
    for level in sorted({r["level"] for r in rows}):
        rs = [r for r in rows if r["level"] == level]

        def mean(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.fmean(r[key] for r in rs)

        gains = [r["pool_test_acc"] - r["ticket_test_acc"] for r in rs]
        cgains = [r["pool_corruption_acc"] - r["ticket_corruption_acc"] for r in rs]
        out.append(
            {
                "level": level,
                "sparsity": mean("sparsity"),
                "ticket_test_acc": mean("ticket_test_acc"),
                "pool_test_acc": mean("pool_test_acc"),
                "test_gain": statistics.fmean(gains),
                "test_gain_per_seed": gains,
                "ticket_corruption_acc": mean("ticket_corruption_acc"),
                "pool_corruption_acc": mean("pool_corruption_acc"),
                "corruption_gain": statistics.fmean(cgains),
                "corruption_gain_per_seed": cgains,
                "seeds": len(rs),
            }
        )
    return out


def markdown(table: list[dict[str, Any]], seeds: list[int]) -> str:
    lines = [
        "| sparsity | ticket test | pool test | gain | ticket mCA | pool mCA | gain | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in table:
        lines.append(
            f"| {100 * t['sparsity']:.1f}% | {100 * t['ticket_test_acc']:.2f} "
            f"| {100 * t['pool_test_acc']:.2f} | {100 * t['test_gain']:+.2f} "
            f"| {100 * t['ticket_corruption_acc']:.2f} | {100 * t['pool_corruption_acc']:.2f} "
            f"| {100 * t['corruption_gain']:+.2f} | {len(seeds)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--levels", type=int, default=8, help="IMP levels after the dense one")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of every level")
    ap.add_argument("--rate", type=float, default=0.4, help="share of weights pruned per level")
    ap.add_argument("--rewind", type=int, default=211, help="late-rewinding step")
    ap.add_argument("--train-subset", type=int, default=0)
    ap.add_argument("--corruption-seed", type=int, default=0)
    ap.add_argument(
        "--coefficients",
        type=float,
        nargs="+",
        default=list(PoolConfig().coefficients),
        help="interpolation coefficients searched (0.5 alone: the authors' 'average' variant)",
    )
    ap.add_argument("--tag", default="", help="suffix of the result files and pool folders")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where JSON and runs go")
    ap.add_argument("--overwrite", action="store_true", help="start afresh, not resume")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    test = data.load("fashion-mnist", "test")
    sets = list(every_corruption(test, args.corruption_seed))
    rows: list[dict[str, Any]] = []
    try:
        for seed in args.seeds:
            rows += run_seed(seed, args, sets)
    except (ValueError, FileNotFoundError) as e:
        ap.error(str(e))
    table = summarise(rows, args.seeds)
    wins_test = sum(t["test_gain"] > 0 for t in table)
    wins_c = sum(t["corruption_gain"] > 0 for t in table)
    both = sum(t["test_gain"] > 0 and t["corruption_gain"] > 0 for t in table)
    out = {
        "model": "lenet300",
        "dataset": "fashion-mnist",
        "epochs_per_level": args.epochs,
        "levels": args.levels,
        "rate": args.rate,
        "rewind_step": args.rewind,
        "train_subset": args.train_subset,
        "seeds": args.seeds,
        "corruption_seed": args.corruption_seed,
        "coefficients": args.coefficients,
        "table": table,
        "rows": rows,
        "sparsities_pool_wins_test": wins_test,
        "sparsities_pool_wins_corruption": wins_c,
        "sparsities_pool_wins_both": both,
        "claim_holds": both >= 3,
        "wall_s": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"pools{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")
    md = markdown(table, args.seeds)
    (args.results / f"pools{args.tag}.md").write_text(md)
    print(md, end="")
    print(
        f"pool beats ticket: test at {wins_test}/{len(table)} sparsities, corruptions at "
        f"{wins_c}/{len(table)}, both at {both}; claim (>= 3 with both) "
        f"{'holds' if out['claim_holds'] else 'does not hold'}; {out['wall_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
