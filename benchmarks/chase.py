"""Chase vs RigL at the same budget: accuracy, exported speed, training time (2305.19454).

Fashion-MNIST at 28 px (54k train / 6k validation / 10k test), Conv-4 (``--width`` scales
its channels; 0.25 by default so that three runs fit a shared, loaded 2-core CPU), Adam,
the same epochs, batch, learning rate and update interval (20 updates a run, as the card's
RigL) for every run:

* ``dense``: the dense model (the speed baseline);
* ``rigl``: RigL at ``--sparsity`` (ERK);
* ``chase``: Chase at ``--sparsity`` (ERK), removing ``--channel-sparsity`` of the channels
  between 10% and 50% of training (physically: the model shrinks while it trains).

Reported per seed: validation and test accuracy (test once, at the end), the exported
models' CPU inference latency at batch 256 against the dense model (interleaved in one
process, median of ``--repeats``; RigL's export is its dense-format weights, Chase's is the
shrunk model without masks), the recorded epoch times (first vs last epoch, total vs RigL;
sequential runs on a loaded machine) and, measured interleaved in one process, the time of
one training step (forward, backward, masked SGD step, batch 128) of the full-size masked
model (what RigL trains, and Chase at its start) against Chase's final shrunk model.

Writes ``chase.json`` and ``chase.md`` to ``--results``. Full run (about 30 min on one
thread of a loaded machine):

    OMP_NUM_THREADS=1 python benchmarks/chase.py
    OMP_NUM_THREADS=1 python benchmarks/chase.py --epochs 1 --train-subset 1000 \\
        --repeats 3 --results /tmp/chase   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import models
from sparta.models.timing import measure_latency, time_ms
from sparta.sparsity import create_dst
from sparta.sparsity.masks import detach_masks, mask_gradients, masks_of
from sparta.train import TrainConfig, Trainer, evaluate, load_splits

RESULTS = Path(__file__).parent / "results"


def train(splits: Any, cfg: TrainConfig, method: str, args: argparse.Namespace) -> dict:
    """Train one model; returns it with its figures."""
    torch.manual_seed(cfg.seed)
    model = models.create(cfg.model, dataset=splits.train.info, width=args.width)
    weights = sum(m.numel() for m in _weights(model))
    callbacks: list[Any] = []
    steps = cfg.epochs * -(-len(splits.train) // cfg.batch_size)
    interval = args.update_interval or max(1, steps // 20)  # the card's: 20 updates a run
    dst = None
    if method != "dense":
        extra = {"channel_sparsity": args.channel_sparsity} if method == "chase" else {}
        dst = create_dst(
            method,
            model,
            args.sparsity,
            distribution="erk",
            update_interval=interval,
            seed=cfg.seed,
            **extra,
        )
        callbacks.append(dst)
    start = time.perf_counter()
    trainer = Trainer(
        model, splits.train, cfg, val_data=splits.val, callbacks=callbacks, quiet=True
    )
    history = trainer.fit()
    total = time.perf_counter() - start
    model.eval()
    test = evaluate(model, splits.test)
    masks = masks_of(model)
    active = sum(int(masks[n].sum()) for n in masks) if masks else weights
    row = {
        "method": method,
        "seed": cfg.seed,
        "val_acc": history[-1]["val_acc"],
        "test_acc": test["acc"],
        "epoch_time_s": [h["epoch_time_s"] for h in history],
        "train_time_s": total,
        "active_weights": active,
        "dense_weights": weights,
        "sparsity_vs_dense": 1.0 - active / weights,
        "params": sum(p.numel() for p in model.parameters()),
        "update_interval": interval,
    }
    if method == "chase":
        row["channels"] = [h["channels"] for h in history]
        row["total_channels"] = dst.total_channels
        row["widths"] = {  # (out, in) of every conv/linear of the shrunk model
            n: list(m.weight.shape[:2])
            for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        }
    return {"row": row, "model": model}


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def exported(model: nn.Module) -> nn.Module:
    """The model as deployed: masks dropped (zeros stay in dense weights), eval mode."""
    out = copy.deepcopy(model)
    detach_masks(out)
    return out.eval()


def step_times(
    nets: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, repeats: int
) -> dict[str, float]:
    """Median time (ms) of one masked SGD training step per model, interleaved."""
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in nets.items()}
    loss_fn = nn.CrossEntropyLoss()

    def step(k: str) -> None:
        m, opt = nets[k], opts[k]
        opt.zero_grad(set_to_none=True)
        loss_fn(m(x), y).backward()
        mask_gradients(m)
        opt.step()

    for k in nets:
        nets[k].train()
        step(k)
    times: dict[str, list[float]] = {k: [] for k in nets}
    for _ in range(repeats):
        for k in nets:
            times[k].append(time_ms(lambda k=k: step(k)))
    return {k: statistics.median(v) for k, v in times.items()}


def markdown(rows: list[dict[str, Any]], speed: list[dict[str, Any]], args: Any) -> str:
    lines = [
        f"Conv-4 (width {args.width}), Fashion-MNIST 28 px, sparsity {args.sparsity} (ERK), "
        f"{args.epochs} epochs, batch {args.batch_size}, {args.optimizer} lr {args.lr}; "
        f"Chase removes {args.channel_sparsity:.0%} of the channels; "
        f"torch threads {torch.get_num_threads()}",
        "",
        "| method | seed | val acc | test acc | weights kept (of dense) | params | "
        "epoch 1 (s) | last epoch (s) | train total (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['val_acc']:.4f} | {r['test_acc']:.4f} | "
            f"{1 - r['sparsity_vs_dense']:.3f} | {r['params']:,} | {r['epoch_time_s'][0]:.1f} | "
            f"{r['epoch_time_s'][-1]:.1f} | {r['train_time_s']:.1f} |"
        )
    lines += [
        "",
        "| seed | chase - rigl test (pts) | inference b256: dense / rigl / chase (ms) | "
        "chase speedup vs dense | train step: full masked / chase final (ms) | step speedup |",
        "|---:|---:|---|---:|---|---:|",
    ]
    for s in speed:
        lat, st = s["latency_b256_ms"], s["train_step_ms"]
        lines.append(
            f"| {s['seed']} | {100 * s['gap']:+.2f} | {lat['dense']:.1f} / {lat['rigl']:.1f} / "
            f"{lat['chase']:.1f} | {lat['dense'] / lat['chase']:.2f}x | "
            f"{st['full']:.1f} / {st['chase']:.1f} | {st['full'] / st['chase']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="conv4")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--channel-sparsity", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="adam", choices=("sgd", "adam", "adamw"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--update-interval", type=int, default=0, help="0: total steps // 20")
    p.add_argument("--methods", nargs="*", default=["dense", "rigl", "chase"])
    p.add_argument("--seeds", type=int, nargs="*", default=[0])
    p.add_argument("--repeats", type=int, default=20, help="latency and step-time repeats")
    p.add_argument("--train-subset", type=int, default=0, help="0: all 60k (54k train, 6k val)")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    rows, speed = [], []
    for seed in args.seeds:
        cfg = TrainConfig(
            dataset="fashion-mnist",
            model=args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            train_subset=args.train_subset,
            seed=seed,
        )
        splits = load_splits(cfg)
        runs = {}
        for m in args.methods:
            runs[m] = train(splits, cfg, m, args)
            print(json.dumps(runs[m]["row"]), flush=True)
            rows.append(runs[m]["row"])
        if set(runs) != {"dense", "rigl", "chase"}:
            continue
        x = splits.test.x[:256]
        lat = measure_latency({k: exported(r["model"]) for k, r in runs.items()}, x, args.repeats)
        xb, yb = splits.train.x[: args.batch_size], splits.train.y[: args.batch_size]
        st = step_times(
            {"full": copy.deepcopy(runs["rigl"]["model"]), "chase": runs["chase"]["model"]},
            xb,
            yb,
            args.repeats,
        )
        gap = runs["chase"]["row"]["test_acc"] - runs["rigl"]["row"]["test_acc"]
        speed.append({"seed": seed, "gap": gap, "latency_b256_ms": lat, "train_step_ms": st})
        print(json.dumps(speed[-1]), flush=True)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chase.json").write_text(
        json.dumps({"config": vars(args), "rows": rows, "speed": speed}, indent=2)
    )
    table = markdown(rows, speed, args)
    (out / "chase.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
