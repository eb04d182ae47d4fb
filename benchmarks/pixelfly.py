"""Pixelated Butterfly (2112.00029) on CPU: layer speed and training time vs dense.

(a) Layer speed: ``nn.Linear(w, w)`` vs ``PixelflyLinear`` (block 32, density 0.25: flat
block butterfly + low rank) forward + backward on a batch of 256, widths 256..4096,
interleaved, median of ``--repeats``; also the forward alone against torch's BSR sparse
matmul of the same butterfly (BSR has no CPU backward in torch 2.13: "addmm: computation on
CPU is not implemented for Strided + SparseBsc @ Strided").

(b) Training: ``mlp-wide`` (3 x 1024 ReLU) and ``vit-tiny`` on full Fashion-MNIST (54k train
/ 6k validation held out by seed / 10k test), dense vs Pixelfly at the same budget (epochs,
batch, optimizer, schedule, seed). Epochs of the two run interleaved in one process, so the
time ratio sees the same machine load; validation accuracy after every epoch, the test set
once at the end. Nothing was tuned: block 32 (16 for the ViT, whose width is 64), density
0.25, the optimizers are the library's usual ones.

The paper's claim: up to 2.5x faster training (GPU, ImageNet/WikiText scale) at no accuracy
drop.

    python benchmarks/pixelfly.py [--parts layers mlp vit] [--epochs-mlp 3] [--epochs-vit 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import models
from sparta.models.pixelfly import PixelflyLinear, pixelfly_
from sparta.train import TrainConfig, Trainer, evaluate

RESULTS = Path(__file__).parent / "results"


def _time(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timed(fn: Any) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn()``; with one thread the CPU time is the work done,
    far less sensitive than the wall time to other processes on a loaded machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _layer_row(w: int, batch: int, block: int, density: float, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    dense = nn.Linear(w, w)
    fly = PixelflyLinear.from_linear(dense, block, density)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "BSR support is in beta"
        bsr = fly.dense_weight().to_sparse_bsr((block, block))
    x = torch.randn(batch, w, requires_grad=True)

    def step(m: nn.Module) -> None:
        x.grad = None
        m.zero_grad(set_to_none=True)
        m(x).sum().backward()

    def fwd(m: Any) -> None:
        with torch.no_grad():
            m(x)

    cases = {
        "dense": lambda: step(dense),
        "pixelfly": lambda: step(fly),
        "dense_fwd": lambda: fwd(dense),
        "fly_fwd": lambda: fwd(fly),
        "bsr_fwd": lambda: fwd(lambda v: (bsr @ v.t()).t()),
    }
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(repeats + 1):
        for k, fn in cases.items():  # interleaved; the first round warms up
            a, c = _timed(fn)
            if r:
                wall[k].append(a)
                cpu[k].append(c)
    mw = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
    mc = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
    return {
        "width": w,
        "density": fly.density(),
        "factors": fly.factors,
        "rank": fly.rank,
        "wall_ms": mw,
        "cpu_ms": mc,
        "speedup_fwd_bwd": mw["dense"] / mw["pixelfly"],
        "speedup_fwd_bwd_cpu": mc["dense"] / mc["pixelfly"],
        "speedup_fwd": mw["dense_fwd"] / mw["fly_fwd"],
        "speedup_fwd_cpu": mc["dense_fwd"] / mc["fly_fwd"],
        "bsr_over_fly_fwd_cpu": mc["bsr_fwd"] / mc["fly_fwd"],
    }


def layer_speed(widths: list[int], batch: int, block: int, density: float, repeats: int) -> list:
    """Dense vs Pixelfly forward+backward (and forward vs BSR) per width, interleaved."""
    rows = []
    for w in widths:
        r = _layer_row(w, batch, block, density, repeats)
        rows.append(r)
        print(
            f"width {w:5d} density {r['density']:.3f}: dense {r['cpu_ms']['dense']:.2f} ms, "
            f"pixelfly {r['cpu_ms']['pixelfly']:.2f} ms CPU (x{r['speedup_fwd_bwd_cpu']:.2f} "
            f"fwd+bwd, x{r['speedup_fwd_cpu']:.2f} fwd; wall x{r['speedup_fwd_bwd']:.2f}); "
            f"BSR fwd / pixelfly fwd {r['bsr_over_fly_fwd_cpu']:.2f}",
            flush=True,
        )
    return rows


def train_pair(
    name: str,
    model_name: str,
    epochs: int,
    block: int,
    density: float,
    cfg_kwargs: dict[str, Any],
    splits: Any,
) -> dict[str, Any]:
    """Dense and Pixelfly ``model_name`` trained side by side, epochs interleaved."""
    cfg = TrainConfig(model=model_name, epochs=epochs, **cfg_kwargs)
    torch.manual_seed(cfg.seed)
    dense = models.create(model_name, dataset=splits.train.info)
    torch.manual_seed(cfg.seed)
    fly = models.create(model_name, dataset=splits.train.info)
    replaced = pixelfly_(fly, block=block, density=density)
    trainers = {
        "dense": Trainer(dense, splits.train, cfg, quiet=True),
        "pixelfly": Trainer(fly, splits.train, cfg, quiet=True),
    }
    times: dict[str, list[float]] = {k: [] for k in trainers}
    cpu: dict[str, list[float]] = {k: [] for k in trainers}
    val: dict[str, list[float]] = {k: [] for k in trainers}
    for e in range(epochs):
        order = list(trainers) if e % 2 == 0 else list(reversed(trainers))
        for k in order:
            a, c = _timed(trainers[k].train_epoch)
            times[k].append(a)
            cpu[k].append(c)
            val[k].append(evaluate(trainers[k].model, splits.val)["acc"])
        print(
            f"{name} epoch {e + 1}/{epochs}: "
            + ", ".join(
                f"{k} {times[k][-1]:.1f} s ({cpu[k][-1]:.1f} s CPU) val {val[k][-1]:.4f}"
                for k in trainers
            ),
            flush=True,
        )
    test = {k: evaluate(t.model, splits.test)["acc"] for k, t in trainers.items()}
    rep = {k: models.count_params(t.model) for k, t in trainers.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "model": model_name,
        "epochs": epochs,
        "block": block,
        "density": density,
        "replaced": replaced,
        "params": rep,
        "epoch_s": med,
        "epoch_s_all": times,
        "epoch_cpu_s": med_cpu,
        "epoch_cpu_s_all": cpu,
        "speedup": med["dense"] / med["pixelfly"],
        "speedup_cpu": med_cpu["dense"] / med_cpu["pixelfly"],
        "val_acc": val,
        "test_acc": test,
        "test_acc_drop": test["dense"] - test["pixelfly"],
        "config": cfg.to_dict(),
    }


def _write(out: dict[str, Any], name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["layers", "mlp", "vit"])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--density", type=float, default=0.25)
    ap.add_argument("--epochs-mlp", type=int, default=3)
    ap.add_argument("--epochs-vit", type=int, default=1)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--json", default="pixelfly", help="results file name (without .json)")
    args = ap.parse_args()
    out: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "args": vars(args),
    }
    if "layers" in args.parts:
        out["layers"] = layer_speed(args.widths, args.batch, 32, args.density, args.repeats)
        _write(out, args.json)
    from sparta.train import load_splits

    splits = load_splits(TrainConfig(dataset=args.dataset, val_fraction=0.1, seed=0))
    common = {"dataset": args.dataset, "batch_size": 128, "val_fraction": 0.1, "seed": 0}
    runs: list[dict[str, Any]] = []
    out["training"] = runs
    if "mlp" in args.parts:
        sgd = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
        cfg = {**common, **sgd}
        runs.append(
            train_pair("mlp-wide", "mlp-wide", args.epochs_mlp, 32, args.density, cfg, splits)
        )
        _write(out, args.json)
    if "vit" in args.parts:
        adamw = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05}
        cfg = {**common, **adamw}
        runs.append(
            train_pair("vit-tiny", "vit-tiny", args.epochs_vit, 16, args.density, cfg, splits)
        )
        _write(out, args.json)
    print("\n| width | density | dense fwd+bwd ms (CPU) | pixelfly ms | speedup | fwd speedup |")
    print("|---|---|---|---|---|---|")
    for r in out.get("layers", []):
        print(
            f"| {r['width']} | {r['density']:.3f} | {r['cpu_ms']['dense']:.2f} | "
            f"{r['cpu_ms']['pixelfly']:.2f} | {r['speedup_fwd_bwd_cpu']:.2f}x | "
            f"{r['speedup_fwd_cpu']:.2f}x |"
        )
    print(
        "\n| model | epochs | dense s/epoch | pixelfly s/epoch | speedup (wall) | speedup (CPU) "
        "| dense test | pixelfly test |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['model']} | {r['epochs']} | {r['epoch_s']['dense']:.1f} | "
            f"{r['epoch_s']['pixelfly']:.1f} | {r['speedup']:.2f}x | {r['speedup_cpu']:.2f}x | "
            f"{r['test_acc']['dense']:.4f} | {r['test_acc']['pixelfly']:.4f} |"
        )


if __name__ == "__main__":
    main()
