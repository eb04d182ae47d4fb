"""Backdoors on full Fashion-MNIST with LeNet-5: Trojan tickets, detection, recovery, removal.

``--models`` Trojaned and as many clean LeNet-5s are trained (SGD, lr 0.05, cosine,
``--epochs``). Trojaned model ``i`` differs in seed, target (``i mod 10``) and trigger:
BadNets 3x3 white / checkerboard / random patches in the bottom-right corner, or a blended
random-noise trigger (alpha 0.1), 5% of the non-target training images poisoned. Clean
model ``i`` has seed ``100 + i``. For every model:

* Detection (``sparta.experiments.trojan.detect``): ``--rounds`` IMP rounds at 20%, each retrained
  ``--retrain-epochs`` on ``--subset`` training samples (the suspect's own, possibly
  poisoned, training data, as in the seed); clean accuracy and ASR per sparsity (evaluation
  only), the Trojan score (LMC error barrier, seed Eq. 2) per level, and the verdict:
  trigger recovery from 100 noise images on the dense model and on the peak-score ticket
  (a label is flagged when the anomaly index of its log mask norm exceeds 2 on both).
  Detection accuracy, the flagged target, the ASR of its recovered trigger on the original
  model, and the AUROC (Trojaned vs clean) of each signal: anomaly indices, LMC score.
  ``--data-free`` also runs the noise-only variant.
* Removal (Trojaned models): unlearn the poisoned samples (``--unlearn-method``), ASR and
  clean accuracy before and after.

Writes ``benchmarks/results/backdoor.json``, ``backdoor.md`` and ``backdoor_curves.png``.
The full run (5 + 5 models) as two halves side by side on 2 cores, about an hour:

    python benchmarks/backdoor.py --kind trojan --data-free --threads 1 &
    python benchmarks/backdoor.py --kind clean --data-free --threads 1; wait
    python benchmarks/backdoor.py --merge

A reduced check:

    python benchmarks/backdoor.py --models 1 --epochs 1 --rounds 2 --train-subset 3000 \\
        --test-subset 500 --subset 500 --recover-steps 30 --unlearn-epochs 1 \\
        --results /tmp/backdoor-bench
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from sparta.backdoor import asr, poison
from sparta.backdoor.metrics import backdoor_metrics, clean_accuracy
from sparta.experiments.backdoor_removal import remove
from sparta.experiments.trojan import DetectOptions, detect
from sparta.train import TrainConfig, load_splits, train
from sparta.unlearn import UnlearnOptions

RESULTS = Path(__file__).parent / "results"
PATTERNS = ("white", "checkerboard", "random")


def poison_spec(i: int, ratio: float) -> str:
    """Trojaned model ``i``: BadNets with one of three patterns, every fourth one blended."""
    if i % 4 == 3:
        return f"blended:ratio={ratio},target={i % 10},alpha=0.1,seed={i}"
    return f"badnets:ratio={ratio},target={i % 10},size=3,pattern={PATTERNS[i % 3]},seed={i}"


def auroc(pos: list[float], neg: list[float]) -> float:
    """Probability that a Trojaned model scores above a clean one (ties count half)."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def one_model(args: argparse.Namespace, seed: int, spec: str | None) -> dict[str, Any]:
    """Train, detect, recover (and for a Trojaned model, unlearn); one row of figures."""
    cfg = TrainConfig(
        dataset="fashion-mnist", model="lenet5", epochs=args.epochs, lr=0.05, batch_size=128,
        schedule="cosine", val_fraction=0.0, best_metric="", seed=seed,
        train_subset=args.train_subset, test_subset=args.test_subset,
    )  # fmt: skip
    splits = load_splits(cfg)
    poisoned = poison(splits.train, spec) if spec else None
    if poisoned is not None:
        splits.train = poisoned.data
    start = time.perf_counter()
    model = train(cfg, splits=splits, write_run=False, quiet=True).model
    row: dict[str, Any] = {"seed": seed, "poison": spec, "trojan_true": spec is not None}
    truth = {"trigger": poisoned.trigger, "target": poisoned.config.target} if poisoned else {}
    if poisoned is not None:
        row.update(backdoor_metrics(model, splits.test, **truth))
    else:
        row["test_acc"] = clean_accuracy(model, splits.test)
    data = splits.train.take(min(args.subset, len(splits.train)), seed=seed)
    opts = DetectOptions(rounds=args.rounds, retrain_epochs=args.retrain_epochs,
                         recover_steps=args.recover_steps, transfer=args.transfer,
                         seed=seed)  # fmt: skip
    det = detect(model, data, opts, test=splits.test, **truth)
    row.update(score=det.score, trojan=det.trojan, recovered_target=det.target,
               best_level=det.best_level, levels=det.levels)  # fmt: skip
    keys = ("anomaly", "norms", "transfer")
    row.update({k: v for k, v in det.summary.items() if any(w in k for w in keys)})
    if det.target is not None:
        row["recovered_asr"] = asr(model, splits.test, det.trigger(), det.target)
    if args.data_free:
        free = detect(model, None, DetectOptions(**{**opts.to_dict(), "data_free": True}),
                      test=splits.test)  # fmt: skip
        row.update(score_data_free=free.score, trojan_data_free=free.trojan,
                   target_data_free=free.target,
                   anomaly_index_data_free=free.anomaly_index,
                   ticket_anomaly_index_data_free=free.summary["ticket_anomaly_index"])  # fmt: skip
    if poisoned is not None:
        row["target"] = poisoned.config.target
        row["target_found"] = det.target == poisoned.config.target
        uopts = UnlearnOptions(epochs=args.unlearn_epochs, mia_max=1000, seed=seed)
        rem = remove(model, poisoned, splits.test, args.unlearn_method, uopts, cfg)
        row.update({f"unlearn_{k}": rem.summary[k] for k in
                    ("asr_before", "asr", "test_acc_before", "test_acc", "rte_s")})  # fmt: skip
    row["time_s"] = time.perf_counter() - start
    logging.info("%s", {k: v for k, v in row.items() if k not in ("levels",) and "norms" not in k})
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection accuracy and AUROCs, recovery and removal figures over all models."""
    troj = [r for r in rows if r["trojan_true"]]
    clean = [r for r in rows if not r["trojan_true"]]
    roc = lambda key: auroc([r[key] for r in troj], [r[key] for r in clean])  # noqa: E731
    out: dict[str, Any] = {
        "n_trojan": len(troj),
        "n_clean": len(clean),
        "detection_acc": sum(r["trojan"] == r["trojan_true"] for r in rows) / len(rows),
        "detection_acc_anomaly_only": sum(
            (r["anomaly_index"] > DetectOptions().threshold) == r["trojan_true"] for r in rows
        )
        / len(rows),
        "true_positives": sum(r["trojan"] for r in troj),
        "false_positives": sum(r["trojan"] for r in clean),
        "target_found": sum(r["target_found"] for r in troj) / max(len(troj), 1),
        "top_label_is_target": sum(
            max(range(len(r["stable_anomaly"])), key=r["stable_anomaly"].__getitem__) == r["target"]
            for r in troj
        )
        / max(len(troj), 1),
        "auroc_anomaly_index": roc("anomaly_index"),
        "auroc_dense_anomaly_index": roc("dense_anomaly_index"),
        "auroc_ticket_anomaly_index": roc("ticket_anomaly_index"),
        "auroc_lmc_score": roc("score"),
    }
    if rows and "score_data_free" in rows[0]:
        out["detection_acc_data_free"] = sum(
            r["trojan_data_free"] == r["trojan_true"] for r in rows
        ) / len(rows)
        out["auroc_lmc_score_data_free"] = roc("score_data_free")
        out["auroc_anomaly_index_data_free"] = roc("anomaly_index_data_free")
        out["auroc_ticket_anomaly_index_data_free"] = roc("ticket_anomaly_index_data_free")
    mean = lambda key, rs: sum(r[key] for r in rs) / len(rs) if rs else float("nan")  # noqa: E731
    hits = [r for r in troj if r.get("target_found")]
    out["recovered_asr"] = mean("recovered_asr", hits)
    for key in ("asr", "test_acc", "unlearn_asr", "unlearn_test_acc"):
        out[f"mean_{key}_trojan"] = mean(key, troj)
    out["mean_test_acc_clean"] = mean("test_acc", clean)
    return out


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Per-model table, then the ASR / clean-accuracy curves vs sparsity, then the summary."""
    head = "| model | poison | test_acc | asr | LMC score | anomaly dense / ticket | flagged | "
    head += "target | rec. ASR | ASR after unlearning | acc after |"
    lines = [head, "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for i, r in enumerate(rows):
        lines.append(
            f"| {i} | {r['poison'] or 'clean'} | {f(r['test_acc'])} | {f(r.get('asr'))} | "
            f"{r['score']:.4f} | {r['dense_anomaly_index']:.2f} / "
            f"{r['ticket_anomaly_index']:.2f} | "
            f"{r['trojan']} | {r['recovered_target']} | "
            f"{f(r.get('recovered_asr'))} | {f(r.get('unlearn_asr'))} | "
            f"{f(r.get('unlearn_test_acc'))} |"
        )
    lines += ["", "Clean accuracy / ASR / Trojan score per % weights remaining:", ""]
    for i, r in enumerate(rows):
        cells = " ".join(
            f"{100 * lv['remaining']:.1f}%: {lv['test_acc']:.2f}/{lv.get('asr', float('nan')):.2f}"
            f"/{lv['score']:.3f}"
            for lv in r["levels"]
        )
        lines.append(f"- model {i} ({'trojan' if r['trojan_true'] else 'clean'}): {cells}")
    lines += ["", "| figure | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in summary.items()]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Clean accuracy (solid) and ASR (dashed) vs % weights remaining, one colour per model;
    clean models in grey; the winning ticket of each model marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, r in enumerate(rows):
        xs = [100 * lv["remaining"] for lv in r["levels"]]
        colour = f"C{i}" if r["trojan_true"] else "0.6"
        label = (r["poison"] or "clean").split(",seed")[0]
        ax.plot(xs, [lv["test_acc"] for lv in r["levels"]], "-", color=colour, lw=1)
        if r["trojan_true"]:
            ax.plot(xs, [lv["asr"] for lv in r["levels"]], "--", color=colour, lw=1.5, label=label)
        best = r["levels"][r["best_level"]]
        ax.plot(100 * best["remaining"], best["test_acc"], "o", color=colour, ms=4)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("% of prunable weights remaining (IMP, 20% per round)")
    ax.set_ylabel("clean accuracy (solid) / ASR (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=5, help="Trojaned models (and as many clean)")
    p.add_argument("--kind", choices=("all", "trojan", "clean"), default="all",
                   help="run only the Trojaned or only the clean models (to run both halves "
                   "side by side; then --merge)")  # fmt: skip
    p.add_argument("--merge", action="store_true", help="combine the two halves' results")
    p.add_argument("--first", type=int, default=0, help="first model index (a fresh set)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=DetectOptions().rounds)
    p.add_argument("--retrain-epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=5000, help="defender samples for detection")
    p.add_argument("--data-free", action="store_true", help="also the noise-only detection")
    p.add_argument("--recover-steps", type=int, default=300)
    p.add_argument("--transfer", type=float, default=DetectOptions().transfer,
                   help="transfer check of a flagged trigger on the defender's images")  # fmt: skip
    p.add_argument("--unlearn-method", default="rl")
    p.add_argument("--unlearn-epochs", type=int, default=0, help="0: the method's default")
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("sparta").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        halves = [json.loads((out / f"backdoor-{k}.json").read_text()) for k in ("trojan", "clean")]
        rows = halves[0]["models"] + halves[1]["models"]
        args = argparse.Namespace(**{**halves[0]["args"], "kind": "all"})
    else:
        rows = []
        if args.kind in ("all", "trojan"):
            ids = range(args.first, args.first + args.models)
            rows += [one_model(args, i, poison_spec(i, args.ratio)) for i in ids]
        if args.kind in ("all", "clean"):
            ids = range(args.first, args.first + args.models)
            rows += [one_model(args, 100 + i, None) for i in ids]
    if args.kind != "all":
        (out / f"backdoor-{args.kind}.json").write_text(
            json.dumps({"args": vars(args), "models": rows}, indent=1) + "\n"
        )
        return
    summary = summarise(rows)
    (out / "backdoor.json").write_text(
        json.dumps({"args": vars(args), "summary": summary, "models": rows}, indent=1) + "\n"
    )
    (out / "backdoor.md").write_text(markdown(rows, summary))
    plot_curves(rows, out / "backdoor_curves.png")
    print(markdown(rows, summary))


if __name__ == "__main__":
    main()
