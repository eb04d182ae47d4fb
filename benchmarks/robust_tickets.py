"""Robust and certified lottery tickets on Fashion-MNIST, LeNet-300-100 (issue 14).

Two IMP runs (:mod:`sparta.experiments.robust_tickets`), each level trained with the
objective, rewound to the init, with the random-reinit control (same mask, fresh init):

* **robust**: every level trains with PGD-AT (Linf ``--eps`` 0.1, ``--adv-steps`` steps). The
  claim: at <= 20% of the weights the robust ticket keeps the dense PGD-AT model's robust
  accuracy within noise, while the reinit control falls. Robust accuracy: PGD with
  ``--eval-steps`` steps (random start) on the full test set.
* **certified**: every level trains with IBP (Gowal et al. ramp) at ``--cert-eps`` 0.1. The
  claim (Li et al. 2022, 2206.07311): the certified ticket matches the dense certified
  model's clean and verified accuracy. Verified accuracy: IBP on the full test set and CROWN
  on the first ``--crown-n`` test images.

Noise: the binomial standard error of an accuracy p on n test images is sqrt(p(1-p)/n)
(0.005 at p = 0.5, n = 10000); "within noise" is taken as within 2 standard errors of the
difference. Nothing is tuned: every choice is fixed up front (no test-set selection), and
every unit's model is its last epoch.

    python benchmarks/robust_tickets.py                      # the figures in BENCHMARKS.md
    python benchmarks/robust_tickets.py --epochs 1 --cert-epochs 1 --levels 1 \\
        --train-subset 2000 --test-subset 500 --crown-n 50 --results /tmp/rt   # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from sparta.certify.training import verified_fraction
from sparta.experiments.double_win import robust_scores
from sparta.experiments.robust_tickets import certified_lottery, robust_lottery, unit_model
from sparta.sparsity.lottery import LotteryConfig
from sparta.train import TrainConfig, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)


def robust_part(args: argparse.Namespace, cfg: TrainConfig, root: Path) -> list[dict[str, Any]]:
    t = time.perf_counter()
    res = robust_lottery(
        cfg, eps=args.eps, steps=args.adv_steps, levels=args.levels, rate=args.rate,
        controls="reinit", root=root, name="robust", resume=True,
    )  # fmt: skip
    train_s = time.perf_counter() - t
    test = load_splits(cfg).test
    rows = []
    for row in res.levels:
        out = {"level": row["level"], "remaining": row["remaining"]}
        for branch in ("ticket", "reinit") if row["level"] else ("ticket",):
            model = unit_model(res.run.path, row["level"], branch)
            scores = robust_scores(model, test, args.eps, args.eval_steps, cfg.seed)
            out.update({f"{branch}_{k}": v for k, v in scores.items()})
        rows.append(out)
        print(json.dumps(out), flush=True)
    rows[0]["train_s"] = train_s
    return rows


def certified_part(args: argparse.Namespace, cfg: TrainConfig, root: Path) -> list[dict[str, Any]]:
    opts = LotteryConfig(levels=args.levels, rate=args.rate, controls=args.cert_controls)
    t = time.perf_counter()
    res = certified_lottery(cfg, opts, args.cert_eps, root=root, name="certified", resume=True)
    train_s = time.perf_counter() - t
    test = load_splits(cfg).test
    crown = test.subset(range(min(args.crown_n, len(test))))
    rows = []
    for row in res.levels:
        out = {"level": row["level"], "remaining": row["remaining"]}
        for branch in ("ticket", *opts.control_list) if row["level"] else ("ticket",):
            model = unit_model(res.run.path, row["level"], branch)
            out[f"{branch}_clean_acc"] = evaluate(model, test)["acc"]
            out[f"{branch}_ibp_acc"] = verified_fraction(model, test, args.cert_eps, "ibp")
            out[f"{branch}_crown_acc"] = verified_fraction(model, crown, args.cert_eps, "crown")
        rows.append(out)
        print(json.dumps(out), flush=True)
    rows[0]["train_s"] = train_s
    return rows


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = "| level | weights % | " + " | ".join(keys) + " |"
    lines = [head, "|" + "---:|" * (2 + len(keys))]
    for r in rows:
        cells = [f"{r[k]:.4f}" if k in r else "-" for k in keys]
        lines.append(f"| {r['level']} | {100 * r['remaining']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(result: dict[str, Any], n_test: int, n_crown: int) -> list[str]:
    """One line per claim: held or not, with the figures."""
    out = []
    if "robust" in result:
        rows = result["robust"]
        dense, last = rows[0], rows[-1]
        d, t, r = dense["ticket_robust_acc"], last["ticket_robust_acc"], last["reinit_robust_acc"]
        noise = 2 * math.hypot(_se(d, n_test), _se(t, n_test))
        held = t >= d - noise and r < t - noise
        out.append(
            f"robust: at {100 * last['remaining']:.1f}% weights the ticket's PGD robust "
            f"accuracy is {t:.4f} vs dense {d:.4f} (2 SE = {noise:.4f}), reinit {r:.4f}: "
            + ("HELD" if held else "NOT HELD")
        )
    if "certified" in result:
        rows = result["certified"]
        dense, last = rows[0], rows[-1]
        for key, n in (("clean_acc", n_test), ("ibp_acc", n_test), ("crown_acc", n_crown)):
            d, t = dense[f"ticket_{key}"], last[f"ticket_{key}"]
            noise = 2 * math.hypot(_se(d, n), _se(t, n))
            out.append(
                f"certified {key}: ticket {t:.4f} at {100 * last['remaining']:.1f}% weights vs "
                f"dense {d:.4f} (2 SE = {noise:.4f}), reinit {last.get(f'reinit_{key}', '-')}: "
                + ("matches" if t >= d - noise else "BELOW the dense model")
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="robust,certified")
    p.add_argument("--epochs", type=int, default=3, help="PGD-AT epochs per IMP level")
    p.add_argument("--cert-epochs", type=int, default=4, help="IBP epochs per IMP level")
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--rate", type=float, default=0.6, help="IMP rate per level (output: half)")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--adv-steps", type=int, default=5)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--cert-eps", type=float, default=0.1)
    p.add_argument("--cert-controls", default="reinit", help="controls of the IBP run")
    p.add_argument("--crown-n", type=int, default=1000)
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="", help="folder of the lottery runs (default: a temp dir)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--out-name", default="robust_tickets", help="name of the .json/.md files")
    args = p.parse_args()
    root = Path(args.runs or tempfile.mkdtemp(prefix="robust_tickets-"))
    base = dict(
        dataset="fashion-mnist", model="lenet300", lr=args.lr, seed=args.seed,
        train_subset=args.train_subset, test_subset=args.test_subset, best_metric="",
    )  # fmt: skip
    result: dict[str, Any] = {"args": vars(args)}
    parts = args.parts.split(",")
    if "robust" in parts:
        result["robust"] = robust_part(args, TrainConfig(**base, epochs=args.epochs), root)
    if "certified" in parts:
        cfg = TrainConfig(**base, epochs=args.cert_epochs)
        result["certified"] = certified_part(args, cfg, root)
    n_test = len(load_splits(TrainConfig(**base)).test)
    result["verdicts"] = verdicts(result, n_test, min(args.crown_n, n_test))
    md = ["# Robust and certified lottery tickets (LeNet-300-100, Fashion-MNIST)", ""]
    if "robust" in result:
        keys = ["ticket_clean_acc", "ticket_robust_acc", "reinit_clean_acc", "reinit_robust_acc"]
        md += [f"PGD-AT IMP, eps {args.eps}, {args.epochs} epochs/level:", ""]
        md += [_table(result["robust"], keys), ""]
    if "certified" in result:
        branches = ["ticket", *LotteryConfig(controls=args.cert_controls).control_list]
        keys = [f"{b}_{k}" for b in branches for k in ("clean_acc", "ibp_acc", "crown_acc")]
        md += [f"IBP IMP, eps {args.cert_eps}, {args.cert_epochs} epochs/level:", ""]
        md += [_table(result["certified"], keys), ""]
    md += [f"- {v}" for v in result["verdicts"]]
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out_name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{args.out_name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
