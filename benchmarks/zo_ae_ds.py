"""Certifying a black box on Fashion-MNIST: the classifier smoothed directly vs first-order
denoised smoothing (Salman et al. 2020, arXiv 2003.01908) vs ZO-AE-DS (Zhang et al. 2022,
arXiv 2203.14195), certified accuracy at L2 radii 0.25 / 0.5 / 0.75.

1. One off-the-shelf classifier (LeNet-300-100, standard cross-entropy training, no noise
   augmentation) on the 54k training split (6k held out for validation).
2. Per sigma, one DnCNN denoiser pre-trained with the MSE objective on ``--den-subset``
   training images (``--pretrain-epochs``) and copied into both pipelines; the ZO pipeline's
   autoencoder (code size ``--latent``) is pre-trained once on clean images
   (``--ae-epochs``). Neither needs the classifier.
3. (b) FO-DS: ``--den-epochs`` of the stability loss with gradients through the classifier.
   (c) ZO-AE-DS: the same budget of the stability loss, the classifier behind a
   :class:`sparta.models.BlackBox` (its backward raises), RGE with ``--q`` directions and
   ``mu = --mu`` at the autoencoder's code; queries counted.
4. CERTIFY (Cohen et al.) of (a) the classifier, (b), (c) on ``--n-test`` test images with
   ``n0 = 100``, ``--n`` samples, ``alpha = 0.001``. The noisy-input accuracy of each pipeline
   on the validation split is reported too (the only figure that could guide a choice; no
   hyper-parameter was tuned: lr and mu are the reference code's).

Writes ``zo_ae_ds.json`` and ``zo_ae_ds.md`` to ``--results``:

    python benchmarks/zo_ae_ds.py                                   # the BENCHMARKS.md run
    python benchmarks/zo_ae_ds.py --train-subset 3000 --den-subset 1000 --n-test 5 --n 100 \
        --epochs 1 --results /tmp/zo                                # smoke test
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

from sparta import models
from sparta.certify.smoothing import certify_examples
from sparta.defenses import DenoiserObjective, freeze_classifier, mse_pretrain, noisy_accuracy
from sparta.train import TrainConfig, Trainer, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"
RADII = (0.0, 0.25, 0.5, 0.75)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sigmas", type=float, nargs="*", default=[0.25, 0.5])
    p.add_argument("--model", default="lenet300")
    p.add_argument("--epochs", type=int, default=3, help="classifier epochs")
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--den-subset", type=int, default=10000, help="images to train denoisers on")
    p.add_argument("--depth", type=int, default=4, help="DnCNN depth")
    p.add_argument("--width", type=float, default=0.5, help="DnCNN 32 and AE 16 features x this")
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--ae-epochs", type=int, default=6)
    p.add_argument("--ae-lr", type=float, default=2e-3)
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--den-epochs", type=int, default=1)
    p.add_argument("--den-lr", type=float, default=1e-3)
    p.add_argument("--q", type=int, default=20)
    p.add_argument("--mu", type=float, default=0.005)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.manual_seed(args.seed)
    cfg = TrainConfig(
        dataset="fashion-mnist",
        model=args.model,
        epochs=args.epochs,
        lr=0.05,
        train_subset=args.train_subset,
        seed=args.seed,
    )
    splits = load_splits(cfg)
    den_train = splits.train.take(min(args.den_subset, len(splits.train)), seed=args.seed)
    val = splits.val.take(min(2000, len(splits.val)), seed=args.seed)
    test = splits.test.take(min(args.n_test, len(splits.test)), seed=args.seed)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    clf = models.create(args.model, dataset=splits.train.info)
    Trainer(clf, splits.train, cfg, val_data=splits.val, quiet=True).fit()
    clf.eval()
    timings["classifier_s"] = time.perf_counter() - start
    clean = {"test_acc": evaluate(clf, splits.test)["acc"]}
    print(json.dumps({"classifier": clean}), flush=True)

    # the autoencoder's white-box pre-training on clean images (ZO-AE-DS Sec. 4, stage 1)
    torch.manual_seed(args.seed)
    base = models.create_denoised(clf, args.depth, args.latent, args.width)
    start = time.perf_counter()
    ae_mse = mse_pretrain(
        nn.Sequential(base.encoder, base.decoder), den_train, 0.0, args.ae_epochs,
        args.ae_lr, seed=args.seed, quiet=True,
    )  # fmt: skip
    timings["ae_pretrain_s"] = time.perf_counter() - start
    ae_acc = noisy_accuracy(nn.Sequential(base.encoder, base.decoder, clf), val, 0.0, args.seed)
    print(json.dumps({"ae_mse": ae_mse, "val_acc_through_ae": ae_acc}), flush=True)

    den_cfg = TrainConfig(
        dataset="fashion-mnist",
        model=args.model,
        epochs=args.den_epochs,
        optimizer="adam",
        lr=args.den_lr,
        weight_decay=0.0,
        schedule="constant",
        batch_size=128,
        seed=args.seed,
    )
    rows: list[dict[str, Any]] = []
    fresh = copy.deepcopy(base.denoiser.state_dict())
    for sigma in args.sigmas:
        base.denoiser.load_state_dict(fresh)  # one fresh denoiser per sigma
        start = time.perf_counter()
        mse_pretrain(base.denoiser, den_train, sigma, args.pretrain_epochs, args.den_lr,
                     seed=args.seed, quiet=True)  # fmt: skip
        timings[f"denoiser_mse_s_sigma{sigma:g}"] = time.perf_counter() - start
        fo = freeze_classifier(models.create_denoised(clf, args.depth, 0, args.width))
        fo.denoiser.load_state_dict(base.denoiser.state_dict())
        zo = freeze_classifier(copy.deepcopy(base))
        pipelines: list[tuple[str, nn.Module, DenoiserObjective | None]] = [
            ("(a) classifier smoothed", clf, None),
            ("(b) FO denoised smoothing", fo, DenoiserObjective(sigma, False, seed=args.seed)),
            (
                "(c) ZO-AE-DS",
                zo,
                DenoiserObjective(sigma, True, args.q, args.mu, seed=args.seed),
            ),
        ]
        for name, model, objective in pipelines:
            train_s, before = 0.0, noisy_accuracy(model, val, sigma, args.seed)
            if objective is not None:
                start = time.perf_counter()
                Trainer(model, den_train, den_cfg, objective=objective, quiet=True).fit()
                train_s = time.perf_counter() - start
            model.eval()
            report = certify_examples(model, test, sigma, args.n0, args.n, args.alpha, 1000,
                                      args.seed)  # fmt: skip
            row = {
                "method": name,
                "sigma": sigma,
                "val_noisy_acc_stage1": before,  # MSE denoiser (+ AE), before the stability loss
                "val_noisy_acc": noisy_accuracy(model, val, sigma, args.seed),
                "clean_test_acc": noisy_accuracy(model, test, 0.0, args.seed),
                "train_time_s": train_s,
                "queries": objective.queries if objective is not None else 0,
                **report.summary(RADII),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"config": vars(args), "classifier": clean, "ae_mse": ae_mse,
               "val_acc_through_ae": ae_acc, "timings": timings, "rows": rows}  # fmt: skip
    (out / "zo_ae_ds.json").write_text(json.dumps(payload, indent=2))
    head = "| sigma | method | val noisy acc (after stage 1) | " + " | ".join(
        f"r = {r:g}" for r in RADII
    )
    lines = [
        f"Fashion-MNIST, {args.model} (test acc {clean['test_acc']:.3f}), n = {args.n}, "
        f"alpha = {args.alpha}, {len(test)} test images; certified accuracy at L2 radius r",
        "",
        head + " | queries |",
        "|" + "---|" * (len(RADII) + 4),
    ]
    for r in rows:
        accs = " | ".join(f"{r[f'certified_acc_r{x:g}']:.3f}" for x in RADII)
        lines.append(
            f"| {r['sigma']:g} | {r['method']} | {r['val_noisy_acc']:.3f} "
            f"({r['val_noisy_acc_stage1']:.3f}) | {accs} | "
            f"{r['queries']:,} |"
        )
    (out / "zo_ae_ds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
