"""Engine throughput vs a bare hand-written loop, on full Fashion-MNIST.

For each model, one epoch of sparta's ``Trainer`` and one epoch of the minimum loop
(slice a shuffled batch, forward, cross-entropy, zero_grad, backward, SGD step) run
interleaved in the same process, ``--repeats`` times; the figure is the ratio of median
epoch times (bare / engine: 1.0 means the engine costs nothing, goal >= 0.9).

    python benchmarks/train_throughput.py [--models lenet300 lenet5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sparta import data as sdata
from sparta import models
from sparta.train import TrainConfig, Trainer

RESULTS = Path(__file__).parent / "results"


def bare_epoch(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    opt: torch.optim.Optimizer,
    seed: int,
) -> float:
    """The minimum training loop over in-memory tensors; returns seconds."""
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(y), generator=g)
    for i in range(0, len(y), batch):
        idx = order[i : i + batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def engine_epoch(trainer: Trainer) -> float:
    start = time.perf_counter()
    trainer.train_epoch()
    return time.perf_counter() - start


def measure(name: str, data: sdata.ImageDataset, repeats: int, batch: int) -> dict:
    cfg = TrainConfig(
        model=name,
        epochs=repeats + 1,
        batch_size=batch,
        lr=0.05,
        schedule="constant",
        val_fraction=0.0,
        weight_decay=5e-4,
    )
    torch.manual_seed(0)
    bare_model = models.create(name, dataset=data.info)
    engine_model = models.create(name, dataset=data.info)
    opt = torch.optim.SGD(bare_model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    trainer = Trainer(engine_model, data, cfg, quiet=True)
    bare_epoch(bare_model, data.x, data.y, batch, opt, seed=99)  # warm-up, both sides
    engine_epoch(trainer)
    bare, engine = [], []
    for r in range(repeats):
        bare.append(bare_epoch(bare_model, data.x, data.y, batch, opt, seed=r))
        engine.append(engine_epoch(trainer))
    return {
        "model": name,
        "samples": len(data),
        "batch_size": batch,
        "bare_epoch_s": statistics.median(bare),
        "engine_epoch_s": statistics.median(engine),
        "ratio_bare_over_engine": statistics.median(bare) / statistics.median(engine),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet300", "lenet5"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", default="fashion-mnist")
    args = ap.parse_args()
    data = sdata.load(args.dataset, "train")
    rows = [measure(m, data, args.repeats, args.batch_size) for m in args.models]
    for r in rows:
        print(
            f"{r['model']:<9} bare {r['bare_epoch_s']:.2f} s/epoch  engine "
            f"{r['engine_epoch_s']:.2f} s/epoch  ratio {r['ratio_bare_over_engine']:.3f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
