"""Does pruning raise verified accuracy? (seed claim of Li et al. 2022, arXiv 2206.07311)

Fashion-MNIST, LeNet-300-100 (``--hidden`` for a smaller MLP), standard training, then for
each sparsity (50/70/90%) and pruning method a one-shot prune and a short fine-tune:

* ``magnitude``: unstructured global weight magnitude (the sparsity issue's criterion; the
  sparsity is the fraction of weights removed);
* ``l1-neuron``: structured, the neurons with the smallest incoming-weight L1 norm;
* ``stability``: structured, the most unstable neurons at eps (IBP bounds on ``--n-score``
  training images, :func:`sparta.experiments.stability.prune_unstable`).

For the two neuron methods the sparsity is the fraction of hidden neurons removed (the table
also lists the resulting weight sparsity). Every model (dense included) is measured on the
same ``--n-test`` test images (``dense+ft``: the dense model fine-tuned as long as the pruned
ones, the fair baseline): clean accuracy, CROWN-verified accuracy, BaB with a fixed
per-image timeout (verified / falsified / unknown, branches), and the mean number of unstable
ReLUs per image under CROWN pre-activation bounds.

Why eps = 0.02 (about 5/255): measured on LeNet-300-100 after 3 epochs on 10k training
images (200 test images, clean accuracy 0.835), CROWN verifies 0.80 / 0.73 / 0.585 / 0.38 /
0.07 at eps 0.005 / 0.01 / 0.02 / 0.03 / 0.05, with 37 / 75 / 155 / 230 / 326 unstable ReLUs
per image. At 0.01 most correct images are already verified (as in the issue's auto_LiRPA
check, 70 of 79), and at 0.05 almost none are, so neither end could show a change from
pruning; at 0.02 about 40% of the 400 ReLUs are unstable and 70% of correct images verify,
leaving room both ways. ``--eps`` changes it (any value in 0.01-0.05 is in scope).

Writes ``certify_pruning.json`` and ``certify_pruning.md`` to ``--results``. Full run (slow):

    python benchmarks/certify_pruning.py
    python benchmarks/certify_pruning.py --epochs 1 --finetune-epochs 1 --train-subset 2000 \
        --n-test 20 --n-score 200 --timeout 1 --sparsities 0.5 --results /tmp/cp   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.certify.stability import count_unstable
from sparta.experiments.stability import finetune, prune_unstable
from sparta.experiments.verify import verified_accuracy
from sparta.sparsity import prune
from sparta.sparsity.handle import SparsityHandle
from sparta.train import TrainConfig, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"
METHODS = ("magnitude", "l1-neuron", "stability")


def pruned(
    dense: nn.Module, method: str, sparsity: float, score_x: torch.Tensor, eps: float
) -> tuple[nn.Module, SparsityHandle]:
    """A pruned copy of ``dense``."""
    model = copy.deepcopy(dense)
    if method == "magnitude":
        return model, prune(model, "magnitude", sparsity, distribution="global")
    if method == "l1-neuron":
        return model, prune(model, "l1", sparsity, structure="channel", distribution="uniform")
    return model, prune_unstable(model, score_x, eps, sparsity, method="ibp", scope="layer")


def measure(model: nn.Module, test: sdata.ImageDataset, args: argparse.Namespace) -> dict[str, Any]:
    """Clean / CROWN / BaB figures and unstable-neuron counts on the test subset."""
    row: dict[str, Any] = {"test_acc": evaluate(model, test)["acc"]}
    crown = verified_accuracy(model, test, args.eps, method="crown")
    row.update(crown_verified_acc=crown["verified_acc"], crown_time_s=crown["time_s"])
    unstable = count_unstable(model, test, args.eps, method="crown")
    row["unstable_per_image"] = unstable["total"]
    if args.timeout > 0:
        bab = verified_accuracy(model, test, args.eps, method="bab", timeout=args.timeout)
        row.update(
            bab_verified_acc=bab["verified_acc"],
            bab_falsified=bab["falsified"],
            bab_unknown=bab["unknown"],
            bab_branches=bab["branches"],
            bab_time_s=bab["time_s"],
        )
    return row


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zero entries over all Linear/Conv weights."""
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    total = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / total


def markdown(rows: list[dict[str, Any]], eps: float, timeout: float) -> str:
    cols = [
        ("method", "method"),
        ("sparsity", "sparsity"),
        ("weight_sparsity", "weight sp."),
        ("test_acc", "clean acc"),
        ("crown_verified_acc", "CROWN verified"),
        ("bab_verified_acc", f"BaB verified ({timeout:g}s)"),
        ("bab_unknown", "BaB unknown"),
        ("bab_branches", "BaB branches"),
        ("unstable_per_image", "unstable ReLUs / image"),
    ]
    lines = [
        f"Fashion-MNIST, Linf eps = {eps:g}",
        "",
        "| " + " | ".join(h for _, h in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eps", type=float, default=0.02)
    p.add_argument("--hidden", type=int, nargs="*", default=[300, 100])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--sparsities", type=float, nargs="*", default=[0.5, 0.7, 0.9])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--n-score", type=int, default=1000, help="training images for stability")
    p.add_argument("--timeout", type=float, default=10.0, help="BaB seconds per image (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--results", default=str(RESULTS))
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
    score_x = splits.train.take(min(args.n_score, len(splits.train)), seed=args.seed).x
    dense = models.create("lenet300", dataset=splits.train.info, hidden=tuple(args.hidden))
    start = time.perf_counter()
    finetune(dense, None, splits.train, cfg, splits.val)
    rows = [{"method": "dense", "sparsity": 0.0, "train_time_s": time.perf_counter() - start}]
    rows[0].update(weight_sparsity=weight_sparsity(dense), **measure(dense, test, args))
    ft_cfg = TrainConfig.from_dict({**cfg.to_dict(), "epochs": args.finetune_epochs})
    # the same fine-tuning without pruning: pruned models must beat this, not just "dense"
    dense_ft = copy.deepcopy(dense)
    finetune(dense_ft, None, splits.train, ft_cfg, splits.val)
    rows.append({"method": "dense+ft", "sparsity": 0.0, "weight_sparsity": 0.0})
    rows[-1].update(measure(dense_ft, test, args))
    for sparsity in args.sparsities:
        for method in args.methods:
            start = time.perf_counter()
            model, handle = pruned(dense, method, sparsity, score_x, args.eps)
            finetune(model, handle, splits.train, ft_cfg, splits.val)
            row: dict[str, Any] = {"method": method, "sparsity": sparsity}
            row.update(
                train_time_s=time.perf_counter() - start, weight_sparsity=weight_sparsity(model)
            )
            row.update(measure(model, test, args))
            rows.append(row)
            print(json.dumps(row))
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    result = {"config": vars(args), "rows": rows}
    (out / "certify_pruning.json").write_text(json.dumps(result, indent=2))
    (out / "certify_pruning.md").write_text(markdown(rows, args.eps, args.timeout))
    print(markdown(rows, args.eps, args.timeout))


if __name__ == "__main__":
    main()
