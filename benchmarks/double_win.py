"""Double-Win lottery tickets (Chen et al. 2022, arXiv 2206.04762) on Fashion-MNIST.

Source task: Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat); target
task: classes 5-9 (sandal, shirt, sneaker, bag, ankle boot), relabelled 0-4, with 1%, 10% and
100% of their training images (class-split names, ``fashion-mnist:classes=5-9:fraction=0.01``).
Fashion-MNIST's two halves rather than digits as the target: same input space and size as
the source (the paper transfers ImageNet features to CIFAR), a real and non-trivial shift
(garments -> footwear, bags and shirts), and 30k target images so that 1% is still 300.

LeNet-300-100 pre-trained on the source twice from the same init for ``--epochs``: standard
training and PGD-AT (Linf ``--eps``, ``--adv-steps`` steps). From each, the ticket is one-shot
magnitude pruning (OMP, global) of the pre-trained body to ``--sparsity``, weights kept at
their pre-trained values, the output layer re-initialised (dense). Each ticket is fine-tuned
on the target with standard (ST) and adversarial (AT, PGD-AT at the same eps) training for
``--steps`` optimizer steps in every data regime, over ``--seeds`` seeds (a seed draws the
data fraction, the head and the shuffling). Scores on the full target test set (5000 images):
clean accuracy and PGD-``--eval-steps`` robust accuracy at ``--eps``.

The claim (Sec. 4.4 there): in the 1% and 10% regimes, tickets from the robust source beat
those from the standard source on downstream robust accuracy and match them on clean
accuracy. Nothing is tuned on the test set: every setting is fixed up front.

    python benchmarks/double_win.py                                   # BENCHMARKS.md figures
    python benchmarks/double_win.py --epochs 1 --steps 20 --seeds 1 --test-subset 300 \\
        --results /tmp/dw                                             # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from sparta.experiments.double_win import aggregate, double_win
from sparta.train import TrainConfig

RESULTS = Path(__file__).parent / "results"


def verdicts(agg: list[dict[str, Any]], n_test: int) -> list[str]:
    """Robust-source vs standard-source tickets per (fraction, finetune): robust accuracy
    higher by more than noise, clean accuracy within noise (2 standard errors of the
    difference of two binomial means over ``seeds`` x ``n_test`` images, or 2 seed SDs)."""
    by = {(a["fraction"], a["finetune"], a["source"]): a for a in agg}
    lines = []
    for fraction, finetune in sorted({(a["fraction"], a["finetune"]) for a in agg}):
        r, s = by.get((fraction, finetune, "robust")), by.get((fraction, finetune, "standard"))
        if r is None or s is None:
            continue

        def noise(key: str, r: dict = r, s: dict = s) -> float:
            n = n_test * r["seeds"]
            se = math.hypot(*(math.sqrt(x[key] * (1 - x[key]) / n) for x in (r, s)))
            sd = math.hypot(r[f"{key}_sd"], s[f"{key}_sd"]) / math.sqrt(r["seeds"])
            return 2 * max(se, sd)

        dr, dc = r["robust_acc"] - s["robust_acc"], r["clean_acc"] - s["clean_acc"]
        wins = dr > noise("robust_acc")
        matches = dc > -noise("clean_acc")
        lines.append(
            f"{100 * fraction:g}% data, {finetune.upper()}: robust-source minus standard-source "
            f"robust acc {dr:+.4f} (noise {noise('robust_acc'):.4f}), clean acc {dc:+.4f} "
            f"(noise {noise('clean_acc'):.4f}): "
            + ("HELD" if wins and matches else "NOT HELD")
            + ("" if wins else " (no robust win)")
            + ("" if matches else " (clean accuracy lost)")
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4, help="source pre-training epochs")
    p.add_argument("--sparsity", type=float, default=0.8)
    p.add_argument("--fractions", default="0.01,0.1,1")
    p.add_argument("--finetunes", default="st,at")
    p.add_argument("--steps", type=int, default=500, help="fine-tuning steps per transfer")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--adv-steps", type=int, default=5)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--units", default="", help="folder keeping finished units (resumable)")
    args = p.parse_args()
    cfg = TrainConfig(
        dataset="fashion-mnist:classes=0-4", model="lenet300", epochs=args.epochs, lr=args.lr,
        test_subset=args.test_subset, best_metric="",
    )  # fmt: skip
    t = time.perf_counter()
    res = double_win(
        cfg,
        target="fashion-mnist:classes=5-9",
        sparsity=args.sparsity,
        fractions=[float(f) for f in args.fractions.split(",")],
        finetunes=args.finetunes.split(","),
        steps=args.steps,
        eps=args.eps,
        attack_steps=args.adv_steps,
        eval_steps=args.eval_steps,
        seeds=range(args.seeds),
        folder=args.units or None,
        quiet=True,
    )
    wall = time.perf_counter() - t
    agg = aggregate(res.rows)
    n_test = args.test_subset or 5000
    lines = verdicts(agg, n_test)
    md = [
        "# Double-Win tickets: Fashion-MNIST 0-4 -> 5-9 (LeNet-300-100)",
        "",
        f"OMP {100 * args.sparsity:g}% of the body; {args.epochs} source epochs; "
        f"{args.steps} fine-tuning steps; eps {args.eps}; {args.seeds} seeds (mean +- sd).",
        "",
        f"| target data | fine-tune | source | clean acc | robust acc (PGD-{args.eval_steps}) |",
        "|---:|---|---|---:|---:|",
    ]
    for a in agg:
        md.append(
            f"| {100 * a['fraction']:g}% | {a['finetune'].upper()} | {a['source']} | "
            f"{a['clean_acc']:.4f} +- {a['clean_acc_sd']:.4f} | "
            f"{a['robust_acc']:.4f} +- {a['robust_acc_sd']:.4f} |"
        )
    md += ["", *[f"- {v}" for v in lines], "", f"wall time {wall:.0f} s"]
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "rows": res.rows, "aggregate": agg, "verdicts": lines}
    result["wall_s"] = wall
    (out / "double_win.json").write_text(json.dumps(result, indent=2))
    (out / "double_win.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
