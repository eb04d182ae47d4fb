"""Is APP's anytime curve above one-shot pruning's and close to dense? (Misra et al. 2022,
arXiv 2204.01640)

Fashion-MNIST's training set (54k; 6k validation held out and used only for monitoring) is
split by seed into ``--megabatches`` disjoint mega-batches that arrive one after the other;
after each the model trains ``--epochs`` on every mega-batch so far (replay, the reference
default; warm start, a fresh cosine lr schedule per mega-batch) and is evaluated on the 10k
test set: the anytime curve. LeNet-300-100, SNIP over the whole network (the reference
default). Branches on the same stream and init: ``app`` (progressive: sparsity
``1 - 0.8 ** e_i``, ``e_i`` linear from 1 to the target's exponent, the target at the last
mega-batch), ``oneshot`` (Anytime OSP: SNIP at the target before the first mega-batch) and
``dense``. For each target sparsity and seed: the final test accuracy, the mean test
accuracy over the mega-batches (area under the anytime curve) and the paper's cumulative
error rate (CER, the sum of the test errors after each mega-batch).

Writes ``app.json`` and ``app.md`` to ``--results``:

    python benchmarks/app.py
    python benchmarks/app.py --epochs 1 --train-subset 3000 --seeds 0 --sparsities 0.9 \
        --results /tmp/app   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sparta.sparsity.anytime import AnytimeConfig, run_anytime
from sparta.train import TrainConfig

RESULTS = Path(__file__).parent / "results"


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"LeNet-300-100, Fashion-MNIST, {args.megabatches} mega-batches (replay), "
        f"{args.epochs} epochs per mega-batch, SNIP (global)",
        "",
        "| sparsity | seed | branch | test acc after each mega-batch | final | mean | CER |",
        "|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        for branch, curve in r["curves"].items():
            accs = [c["test_acc"] for c in curve]
            lines.append(
                f"| {r['sparsity']} | {r['seed']} | {branch} | "
                f"{' '.join(f'{a:.3f}' for a in accs)} | {accs[-1]:.4f} | "
                f"{statistics.mean(accs):.4f} | {sum(1 - a for a in accs):.3f} |"
            )
    lines += [
        "",
        "| sparsity | APP - one-shot, final (pts) | APP - one-shot, mean (pts) | "
        "dense - APP, final (pts) | dense - APP, mean (pts) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in args.sparsities:
        sel = [r for r in rows if r["sparsity"] == s]

        def gap(a: str, b: str, key: str, sel: list[dict[str, Any]] = sel) -> float:
            return statistics.mean(100 * (r[a][key] - r[b][key]) for r in sel)

        lines.append(
            f"| {s} | {gap('app', 'oneshot', 'final'):+.2f} | {gap('app', 'oneshot', 'mean'):+.2f}"
            f" | {gap('dense', 'app', 'final'):+.2f} | {gap('dense', 'app', 'mean'):+.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sparsities", type=float, nargs="*", default=[0.9, 0.634])
    p.add_argument("--megabatches", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2, help="epochs per mega-batch")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            cfg = TrainConfig(
                dataset="fashion-mnist",
                model="lenet300",
                epochs=args.epochs,
                lr=args.lr,
                train_subset=args.train_subset,
                seed=seed,
                best_metric="",
            )
            dense: dict[str, Any] | None = None
            for s in args.sparsities:
                start = time.perf_counter()
                # the dense baseline does not depend on the sparsity: trained once per seed
                opts = AnytimeConfig(
                    megabatches=args.megabatches,
                    sparsity=s,
                    baselines="oneshot" if dense else "oneshot,dense",
                )
                res = run_anytime(cfg, opts, root=root, name=f"s{seed}-{s}")
                curves = dict(res.curves)
                dense = dense or curves["dense"]
                curves["dense"] = dense
                row: dict[str, Any] = {"sparsity": s, "seed": seed, "curves": curves}
                for branch, curve in curves.items():
                    accs = [c["test_acc"] for c in curve]
                    row[branch] = {"final": accs[-1], "mean": statistics.mean(accs)}
                row["time_s"] = time.perf_counter() - start
                print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
                rows.append(row)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "app.json").write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2))
    table = markdown(rows, args)
    (out / "app.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
