"""Backdoors on full Fashion-MNIST with LeNet-5: Trojan tickets, detection, recovery, removal.

``--models`` Trojaned and as many clean LeNet-5s are trained (SGD, lr 0.05, cosine,
``--epochs``). Trojaned model ``i`` differs in seed, target (``i mod 10``) and trigger:
BadNets 3x3 white / checkerboard / random patches in the bottom-right corner, or a blended
random-noise trigger (alpha 0.1), 5% of the non-target training images poisoned. Clean
model ``i`` has seed ``100 + i``. For every model:

* Trojan tickets (``sparta.backdoor.detect``): ``--rounds`` IMP rounds at 20%, each
  retrained ``--retrain-epochs`` on ``--subset`` training samples (the suspect's own,
  possibly poisoned, training data, as in the seed); clean accuracy and ASR per sparsity
  (evaluation only) and the Trojan score (LMC error barrier, seed Eq. 2). Detection
  accuracy uses ``--threshold``; the AUROC of the score (Trojaned vs clean) needs none.
  ``--data-free`` also runs the noise-only variant.
* Trigger recovery on the peak-score ticket from 100 noise images (Neural Cleanse + TABOR
  regularisers, anomaly index > 2): target found?, mask L1, ASR of the recovered trigger
  on the original model; false flags on clean models.
* Removal (Trojaned models): unlearn the poisoned samples (``--unlearn-method``), ASR and
  clean accuracy before and after.

Writes ``benchmarks/results/backdoor.json`` and ``backdoor.md``. Full run (5 + 5 models,
20 epochs, 15 rounds) on 2 idle cores: roughly 2-3 hours; a reduced check:

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

from sparta.backdoor import DetectOptions, RecoverOptions, asr, detect, poison, recover, remove
from sparta.backdoor.metrics import backdoor_metrics, clean_accuracy
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
                         threshold=args.threshold, seed=seed)  # fmt: skip
    det = detect(model, data, opts, test=splits.test, **truth)
    row.update(score=det.score, trojan=det.trojan, best_level=det.best_level, levels=det.levels)
    if args.data_free:
        free = detect(model, None, DetectOptions(**{**opts.to_dict(), "data_free": True}),
                      test=splits.test)  # fmt: skip
        row.update(score_data_free=free.score, trojan_data_free=free.trojan)
    info = splits.test.info
    rec = recover(det.ticket, tuple(info.input_shape), info.num_classes,
                  RecoverOptions(steps=args.recover_steps, seed=seed))  # fmt: skip
    row.update(recovered_target=rec.target, anomaly_index=max(rec.anomaly), norms=rec.norms)
    if rec.target is not None:
        row["recovered_asr"] = asr(model, splits.test, rec.trigger(rec.target), rec.target)
    if poisoned is not None:
        row["target"] = poisoned.config.target
        row["target_found"] = rec.target == poisoned.config.target
        uopts = UnlearnOptions(epochs=args.unlearn_epochs, mia_max=1000, seed=seed)
        rem = remove(model, poisoned, splits.test, args.unlearn_method, uopts, cfg)
        row.update({f"unlearn_{k}": rem.summary[k] for k in
                    ("asr_before", "asr", "test_acc_before", "test_acc", "rte_s")})  # fmt: skip
    row["time_s"] = time.perf_counter() - start
    logging.info("%s", {k: v for k, v in row.items() if k not in ("levels", "norms")})
    return row


def summarise(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Detection accuracy and AUROC, recovery and removal figures over all models."""
    troj = [r for r in rows if r["trojan_true"]]
    clean = [r for r in rows if not r["trojan_true"]]
    out: dict[str, Any] = {
        "n_trojan": len(troj),
        "n_clean": len(clean),
        "threshold": threshold,
        "detection_acc": sum(r["trojan"] == r["trojan_true"] for r in rows) / len(rows),
        "score_auroc": auroc([r["score"] for r in troj], [r["score"] for r in clean]),
        "target_found": sum(r["target_found"] for r in troj) / max(len(troj), 1),
        "clean_false_flags": sum(r["recovered_target"] is not None for r in clean)
        / max(len(clean), 1),
    }
    if rows and "score_data_free" in rows[0]:
        out["score_auroc_data_free"] = auroc(
            [r["score_data_free"] for r in troj], [r["score_data_free"] for r in clean]
        )
    mean = lambda key, rs: sum(r[key] for r in rs) / len(rs) if rs else float("nan")  # noqa: E731
    hits = [r for r in troj if r.get("target_found")]
    out["recovered_asr"] = mean("recovered_asr", hits)
    for key in ("asr", "test_acc", "unlearn_asr", "unlearn_test_acc"):
        out[f"mean_{key}_trojan"] = mean(key, troj)
    out["mean_test_acc_clean"] = mean("test_acc", clean)
    return out


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Per-model table, then the ASR / clean-accuracy curves vs sparsity, then the summary."""
    head = "| model | poison | test_acc | asr | score | flagged | recovered | rec. ASR | "
    head += "ASR after unlearning | acc after |"
    lines = [head, "|---|---|---:|---:|---:|---|---|---:|---:|---:|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for i, r in enumerate(rows):
        lines.append(
            f"| {i} | {r['poison'] or 'clean'} | {f(r['test_acc'])} | {f(r.get('asr'))} | "
            f"{r['score']:.4f} | {r['trojan']} | {r['recovered_target']} | "
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=5, help="Trojaned models (and as many clean)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--ratio", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--retrain-epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=5000, help="defender samples for detection")
    p.add_argument("--threshold", type=float, default=DetectOptions().threshold)
    p.add_argument("--data-free", action="store_true", help="also the noise-only detection")
    p.add_argument("--recover-steps", type=int, default=300)
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
    rows = [one_model(args, i, poison_spec(i, args.ratio)) for i in range(args.models)]
    rows += [one_model(args, 100 + i, None) for i in range(args.models)]
    summary = summarise(rows, args.threshold)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "backdoor.json").write_text(
        json.dumps({"args": vars(args), "summary": summary, "models": rows}, indent=1) + "\n"
    )
    (out / "backdoor.md").write_text(markdown(rows, summary))
    print(markdown(rows, summary))


if __name__ == "__main__":
    main()
