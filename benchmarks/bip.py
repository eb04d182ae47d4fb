"""BiP vs IMP vs one-shot magnitude + fine-tune (claim of Zhang et al. 2022, arXiv 2210.04092).

Claim checked: BiP (bi-level pruning with the implicit gradient, :mod:`sparta.sparsity.bip`)
reaches IMP's accuracy at 80-95% sparsity at a fraction of IMP's cost, and beats one-shot
magnitude pruning + fine-tuning at the same cost.

Full Fashion-MNIST (54k train / 6k validation held out of the training set by the seed / 10k
test), LeNet-300-100, SGD momentum 0.9, batch 128, cosine schedule, weight decay 5e-4, per seed:

* ``dense``: trained ``--epochs`` from its init (this is also IMP's level 0);
* ``IMP``: lottery-ticket IMP, global magnitude ranking, rewinding to the init, each level
  trained ``--epochs`` (lr 0.05) at the rate ``1 - (1 - --top) ** (1 / --levels)`` (7 levels
  to 95%: 81.9%, 92.3%, 95.0% at the compared levels 4, 6, 7). Its cost to reach level k is
  the dense training plus k retrainings. BiP and OMP+FT run at the exact sparsities of the
  compared levels;
* ``BiP``: from the dense model, ``--bip-epochs`` epochs of BiP (one lower SGD step and one
  upper score step per mini-batch), lower-level lr ``--ft-lr``, score lr 0.1, global
  ranking, scores from |w|. Its γ is chosen on the validation split at the middle compared
  sparsity (first seed) among ``--gammas``; the other BiP runs use the chosen γ. ``inf`` in
  ``--gammas`` is the implicit gradient switched off: reported as an ablation, never chosen;
* ``OMP+FT``: one-shot global magnitude pruning of the dense model, then fine-tuning at lr
  ``--ft-lr`` for ``2 * --bip-epochs`` epochs: as many gradient evaluations as BiP (which
  takes one for each level per mini-batch), so at least BiP's cost.

Every final model is evaluated on the test set once. Costs are wall times of the runs, all in
this one process, one after another (a shared, loaded machine: compare the ratios).

    python benchmarks/bip.py          # full: about 30 min on a loaded 2-core machine
    python benchmarks/bip.py --seeds 0 --epochs 1 --bip-epochs 1 --levels 3 --report 2 3 \\
        --train-subset 3000 --test-subset 500 --results /tmp/bip   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import models
from sparta.sparsity import prune
from sparta.sparsity.bip import bip
from sparta.sparsity.lottery import imp_masks, rewound
from sparta.train import TrainConfig, Trainer, evaluate, load_splits
from sparta.train.masks import MaskCallback

RESULTS = Path(__file__).parent / "results"


def fit(model: nn.Module, splits: Any, cfg: TrainConfig, epochs: int, lr: float, masked: bool):
    """Train ``model`` in place; returns the wall time."""
    run_cfg = TrainConfig.from_dict({**cfg.to_dict(), "epochs": epochs, "lr": lr})
    start = time.perf_counter()
    cbs = [MaskCallback()] if masked else []
    Trainer(model, splits.train, run_cfg, callbacks=cbs, quiet=True).fit()
    return time.perf_counter() - start


def acc(model: nn.Module, data: Any) -> float:
    return float(evaluate(model, data, 2000)["acc"])


def run_bip(
    dense: nn.Module, splits: Any, cfg: TrainConfig, sparsity: float, gamma: float, args: Any
) -> tuple[nn.Module, float, list[dict[str, Any]]]:
    model = copy.deepcopy(dense)
    run_cfg = TrainConfig.from_dict({**cfg.to_dict(), "epochs": args.bip_epochs, "lr": args.ft_lr})
    start = time.perf_counter()
    handle = bip(model, sparsity, splits.train, config=run_cfg, ig_gamma=gamma, quiet=True)
    elapsed = time.perf_counter() - start
    assert abs(handle.sparsity() - sparsity) < 1e-4, handle.sparsity()
    return handle.model, elapsed, handle.history


def one_seed(seed: int, args: argparse.Namespace, chosen: dict[str, float]) -> dict[str, Any]:
    cfg = TrainConfig(
        model="lenet300",
        dataset="fashion-mnist",
        epochs=args.epochs,
        lr=0.05,
        batch_size=128,
        weight_decay=5e-4,
        val_fraction=0.1,
        best_metric="",
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        seed=seed,
    )
    splits = load_splits(cfg)
    torch.manual_seed(seed)
    model = models.create("lenet300", dataset=splits.train.info)
    init = copy.deepcopy(model.state_dict())
    template = copy.deepcopy(model)
    t_dense = fit(model, splits, cfg, args.epochs, 0.05, masked=False)
    dense = model.eval()
    out: dict[str, Any] = {
        "seed": seed,
        "dense": {"test_acc": acc(dense, splits.test), "time_s": t_dense},
        "imp": {},
        "bip": {},
        "omp_ft": {},
        "gamma_choice": {},
    }
    print(f"seed {seed}: dense {out['dense']['test_acc']:.4f} ({t_dense:.0f} s)", flush=True)

    # IMP: --levels levels of the rate that reaches --top; BiP and OMP+FT are run at the
    # sparsities of the --report levels
    rate = 1.0 - (1.0 - args.top) ** (1.0 / args.levels)
    ticket, cost = dense, t_dense
    sparsities = []
    for level in range(1, max(args.report) + 1):
        masks = imp_masks(ticket, rate, distribution="global")
        ticket = rewound(template, init, masks)
        cost += fit(ticket, splits, cfg, args.epochs, 0.05, masked=True)
        ticket.eval()
        if level in args.report:
            kept = sum(int(m.sum()) for m in masks.values())
            total = sum(m.numel() for m in masks.values())
            sparsities.append(round(1.0 - kept / total, 4))
            row = {
                "level": level,
                "sparsity": 1.0 - kept / total,
                "test_acc": acc(ticket, splits.test),
                "time_s": cost,
            }
            out["imp"][str(sparsities[-1])] = row
            print(f"  IMP level {level}: {row}", flush=True)

    # BiP's gamma, chosen on the validation split at the middle sparsity (first seed only)
    out["sparsities"] = sparsities
    if "gamma" not in chosen:
        s_choice = sparsities[len(sparsities) // 2]
        for gamma in args.gammas:
            m, t, hist = run_bip(dense, splits, cfg, s_choice, gamma, args)
            val = acc(m, splits.val)
            out["gamma_choice"][str(gamma)] = {"val_acc": val, "time_s": t, "model": m}
            print(f"  BiP gamma {gamma} at {s_choice}: val {val:.4f}", flush=True)
        finite = {g: r for g, r in out["gamma_choice"].items() if math.isfinite(float(g))}
        chosen["gamma"] = float(max(finite, key=lambda g: finite[g]["val_acc"]))
        chosen["sparsity"] = s_choice
    for s in sparsities:
        reuse = out["gamma_choice"].get(str(chosen["gamma"])) if s == chosen["sparsity"] else None
        if reuse is not None:
            m, t = reuse["model"], reuse["time_s"]
        else:
            m, t, _ = run_bip(dense, splits, cfg, s, chosen["gamma"], args)
        out["bip"][str(s)] = {
            "test_acc": acc(m, splits.test),
            "time_s": t_dense + t,
            "gamma": chosen["gamma"],
        }
        if s == chosen["sparsity"]:  # the ablation: the implicit gradient off
            off = {g: r for g, r in out["gamma_choice"].items() if not math.isfinite(float(g))}
            for r in off.values():
                out["bip"][str(s)]["no_ig_test_acc"] = acc(r["model"], splits.test)
        print(f"  BiP {s}: {out['bip'][str(s)]}", flush=True)

        m = copy.deepcopy(dense)
        handle = prune(m, "magnitude", s, scope="global")
        t_ft = fit(m, splits, cfg, 2 * args.bip_epochs, args.ft_lr, masked=True)
        assert abs(handle.sparsity() - s) < 1e-4
        out["omp_ft"][str(s)] = {"test_acc": acc(m.eval(), splits.test), "time_s": t_dense + t_ft}
        print(f"  OMP+FT {s}: {out['omp_ft'][str(s)]}", flush=True)
    for r in out["gamma_choice"].values():
        r.pop("model", None)
    return out


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| sparsity | seed | IMP acc | BiP acc | OMP+FT acc | BiP no-IG acc | IMP time | BiP time"
        " | OMP+FT time | IMP/BiP time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for s in r["sparsities"]:
            k = str(s)
            imp, b, o = r["imp"][k], r["bip"][k], r["omp_ft"][k]
            no_ig = b.get("no_ig_test_acc")
            lines.append(
                f"| {100 * s:.1f}% | {r['seed']} | {imp['test_acc']:.4f} | {b['test_acc']:.4f} | "
                f"{o['test_acc']:.4f} | {'' if no_ig is None else f'{no_ig:.4f}'} | "
                f"{imp['time_s']:.0f} s | {b['time_s']:.0f} s | {o['time_s']:.0f} s | "
                f"{imp['time_s'] / b['time_s']:.1f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--top", type=float, default=0.95, help="IMP's sparsity after --levels")
    p.add_argument("--levels", type=int, default=7, help="IMP levels to --top")
    p.add_argument("--report", type=int, nargs="+", default=[4, 6, 7], help="levels compared")
    p.add_argument("--epochs", type=int, default=2, help="dense and every IMP level")
    p.add_argument("--bip-epochs", type=int, default=2, help="BiP epochs (OMP+FT: twice)")
    p.add_argument("--ft-lr", type=float, default=0.01, help="BiP lower level and OMP fine-tune")
    p.add_argument("--gammas", type=float, nargs="+", default=[0.1, 1.0, math.inf])
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    chosen: dict[str, float] = {}
    runs = []
    args.results.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # results written after every seed
        runs.append(one_seed(seed, args, chosen))
        md = table(runs)
        args_ = {k: str(v) for k, v in vars(args).items()}
        summary = {"args": args_, "chosen": chosen, "runs": runs}
        (args.results / "bip.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.results / "bip.md").write_text(md + "\n")
        print(md, flush=True)


if __name__ == "__main__":
    main()
