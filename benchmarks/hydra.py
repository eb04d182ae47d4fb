"""HYDRA vs magnitude pruning under robust training (Sehwag et al. 2020, arXiv 2002.10509).

HYDRA's three phases (§3): a dense network is pre-trained with a robust objective, pruned by
learning importance scores under that objective with the weights frozen, then fine-tuned.
The baseline (the paper's "LWM", least weight magnitude) prunes the same pre-trained network
by layer-wise weight magnitude (the same per-layer fraction HYDRA keeps) and gets the same
fine-tune (same objective, epochs and learning rate). ``magnitude+`` also fine-tunes for the
score epochs on top, so that it has spent as many robust-training epochs after pruning as
HYDRA (the equal-cost baseline). Claims checked (§4.1, Table 1-2):

* adversarial (PGD-AT, Linf eps 0.1): HYDRA's robust accuracy (the fast suite: APGD-CE and
  APGD-T, 20 steps each) at 90 / 95 / 99% sparsity is above the magnitude baseline's;
* certified (IBP training, Gowal et al.'s loss, as HYDRA uses CROWN-IBP/MixTrain, §4.2):
  HYDRA's CROWN-verified accuracy is above the magnitude baseline's at the same sparsity.

Fashion-MNIST (full: 54k training images, 6k held out for validation, test set once),
LeNet-300-100. No choice is made on the test set: every figure is the final epoch's (the
validation accuracy is logged in the run folders). Writes ``hydra.json`` and ``hydra.md``
(``--out-name``) to ``--results`` and the run folders under ``--results/runs/hydra`` (a
killed run resumes where it stopped when started again with the same settings).

    python benchmarks/hydra.py --kinds adv --out-name hydra-adv    # the BENCHMARKS.md
    python benchmarks/hydra.py --kinds cert --out-name hydra-cert  # figures (in parallel)
    python benchmarks/hydra.py --train-subset 2000 --pre-epochs 1 --score-epochs 1 \
        --finetune-epochs 1 --n-test 50 --sparsities 0.9 --results /tmp/hy   # smoke test
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

import sparta.attacks  # noqa: F401  (registers every attack)
import sparta.attacks.apgd  # noqa: F401  (apgd-ce, apgd-t: the fast suite)
import sparta.certify  # noqa: F401  (registers ibp)
import sparta.defenses  # noqa: F401  (registers pgd-at)
from sparta.attacks.evaluate import evaluate as attack_suite
from sparta.certify.training import IBPSchedule
from sparta.certify.verify import verified_accuracy
from sparta.sparsity import prune
from sparta.sparsity.hydra import HydraOptions, hydra
from sparta.train import TrainConfig, create_objective, evaluate, load_splits, train

RESULTS = Path(__file__).parent / "results"


def pretrain(args: argparse.Namespace, kind: str, seed: int, splits: Any, root: Path) -> nn.Module:
    """Phase 1: the dense robust model (PGD-AT, or IBP with Gowal et al.'s ramp)."""
    cfg = base_config(args, seed, epochs=args.pre_epochs, lr=args.lr)
    if kind == "adv":
        objective = create_objective("pgd-at", eps=args.eps, steps=args.attack_steps, seed=seed)
        callbacks: list[Any] = []
    else:
        objective = create_objective("ibp", eps=args.cert_eps, kappa=0.5)
        callbacks = [IBPSchedule(objective, args.cert_eps, 0.5)]
    res = train(
        cfg,
        root=root,
        name=f"dense-{kind}-s{seed}",
        resume=True,
        model=None,
        objective=objective,
        callbacks=callbacks,
        quiet=True,
        splits=splits,
        extra_config={"objective": kind},
    )
    return res.model


def base_config(args: argparse.Namespace, seed: int, epochs: int, lr: float) -> TrainConfig:
    return TrainConfig(
        dataset="fashion-mnist",
        model="lenet300",
        epochs=epochs,
        lr=lr,
        batch_size=args.batch_size,
        seed=seed,
        train_subset=args.train_subset,
        best_metric="",
    )


def magnitude(
    dense: nn.Module, opts: HydraOptions, cfg: TrainConfig, splits: Any, root: Path, name: str
) -> nn.Module:
    """The LWM baseline: layer-wise magnitude pruning at HYDRA's per-layer k, then the same
    robust fine-tune."""
    from sparta.sparsity.handle import SparsityHandle

    model = copy.deepcopy(dense)
    prune(model, "magnitude", opts.sparsity, distribution="uniform")
    res = train(
        cfg,
        root=root,
        name=name,
        resume=True,
        model=model,
        objective=opts.create_objective(cfg.seed),
        callbacks=[SparsityHandle(model).callback()],
        quiet=True,
        splits=splits,
        extra_config={"baseline": "magnitude", **opts.to_dict()},
    )
    return res.model


def measure(model: nn.Module, kind: str, test: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Test accuracy; robust accuracy (fast suite) or CROWN-verified accuracy."""
    row: dict[str, Any] = {"test_acc": evaluate(model, test)["acc"]}
    if kind == "adv":
        rep = attack_suite(model, test, args.eps, suite="fast", n=args.n_test, seed=0)
        row.update(clean_acc=rep.clean_acc, robust_acc=rep.robust_acc)
    else:
        ver = verified_accuracy(model, test, args.cert_eps, method="crown", n=args.n_test)
        row.update(clean_acc=ver["clean_acc"], verified_acc=ver["verified_acc"])
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    zeros = sum(int((p == 0).sum()) for p in weights)
    row["weight_sparsity"] = zeros / sum(p.numel() for p in weights)
    return row


def run_kind(
    args: argparse.Namespace, kind: str, seed: int, splits: Any, root: Path
) -> list[dict[str, Any]]:
    rows = []
    start = time.perf_counter()
    dense = pretrain(args, kind, seed, splits, root)
    pre_time = time.perf_counter() - start
    rows.append(
        {
            "kind": kind,
            "seed": seed,
            "method": "dense",
            "sparsity": 0.0,
            "time_s": pre_time,
            **measure(dense, kind, splits.test, args),
        }
    )
    objective = "pgd-at" if kind == "adv" else "ibp"
    eps = args.eps if kind == "adv" else args.cert_eps
    ft = base_config(args, seed, epochs=args.finetune_epochs, lr=args.finetune_lr)
    ft_plus = base_config(
        args, seed, epochs=args.finetune_epochs + args.score_epochs, lr=args.finetune_lr
    )
    for sparsity in args.sparsities:
        opts = HydraOptions(
            sparsity=sparsity,
            objective=objective,
            eps=eps,
            attack_steps=args.attack_steps,
            score_epochs=args.score_epochs,
            score_lr=args.score_lr,
        )
        tag = f"{kind}-s{seed}-{sparsity}"
        for method in ("hydra", "magnitude", "magnitude+"):
            t = time.perf_counter()
            if method == "hydra":
                res = hydra(
                    copy.deepcopy(dense),
                    ft,
                    opts,
                    splits=splits,
                    root=root,
                    name=f"hydra-{tag}",
                    resume=True,
                )
                model, extra = res.model, {"pruned_acc": res.summary["pruned_test_acc"]}
            else:
                cfg = ft if method == "magnitude" else ft_plus
                model = magnitude(dense, opts, cfg, splits, root, f"{method}-{tag}")
                extra = {}
            took = time.perf_counter() - t
            row = {
                "kind": kind,
                "seed": seed,
                "method": method,
                "sparsity": sparsity,
                "time_s": took,
                **extra,
                **measure(model, kind, splits.test, args),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| objective | seed | method | sparsity | test acc | robust (fast) | CROWN-verified "
        "| weight sparsity | time s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rob = f"{r['robust_acc']:.4f}" if "robust_acc" in r else "-"
        ver = f"{r['verified_acc']:.4f}" if "verified_acc" in r else "-"
        lines.append(
            f"| {'PGD-AT' if r['kind'] == 'adv' else 'IBP'} | {r['seed']} | {r['method']} | "
            f"{r['sparsity']:.2f} | {r['test_acc']:.4f} | {rob} | {ver} | "
            f"{r['weight_sparsity']:.4f} | {r['time_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", nargs="+", default=["adv", "cert"], choices=["adv", "cert"])
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--pre-epochs", type=int, default=3)
    p.add_argument("--score-epochs", type=int, default=1)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.1, help="pre-training peak lr")
    p.add_argument("--score-lr", type=float, default=0.1, help="HYDRA: 0.1")
    p.add_argument("--finetune-lr", type=float, default=0.01, help="HYDRA: 0.01")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eps", type=float, default=0.1, help="Linf eps of PGD-AT and the attacks")
    p.add_argument("--attack-steps", type=int, default=5, help="PGD steps while training")
    p.add_argument("--cert-eps", type=float, default=0.05, help="IBP training / CROWN eps")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out-name", default="hydra", help="results file stem (<stem>.json/.md)")
    args = p.parse_args()
    torch.set_num_threads(1)
    args.results.mkdir(parents=True, exist_ok=True)
    root = args.results / "runs" / "hydra"
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for seed in args.seeds:
        splits = load_splits(base_config(args, seed, 1, 0.1))
        for kind in args.kinds:
            rows.extend(run_kind(args, kind, seed, splits, root))
    out = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
        "total_time_s": time.perf_counter() - start,
    }
    (args.results / f"{args.out_name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.results / f"{args.out_name}.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
