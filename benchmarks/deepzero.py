"""DeepZero (2310.02025) on Fashion-MNIST: ZO training from loss values vs backprop.

Model: LeNet-5 at half width (``--width 0.5``: conv 3 -> conv 8 -> 60 -> 42 -> 10, 15.7k
parameters) -- full LeNet-5 (61.7k) costs ~14 s per sparse-CGE step at batch 128 on this
machine, far beyond the time budget. Three parts, one process, written after each part:

1. ``estimators``: at init, on one training batch: CGE against explicit forward finite
   differences (a full forward per coordinate, weight edited in place) coordinate by
   coordinate; the cosine similarity to the backprop gradient of CGE (random coordinates)
   and RGE (random directions) at equal queries, over query budgets (3 seeds).
2. ``training``: ZO-SGD runs at one query budget ``Q`` (the queries DeepZero spends in
   ``--steps`` steps), each stopped when it has spent ``Q``: DeepZero (sparse CGE at 90%,
   ZO-GraSP ratios, feature reuse, batched forwards), dense CGE (no sparsity: fewer steps),
   uniform layer ratios (no ZO-GraSP), RGE (same queries per step as DeepZero); and
   backprop (SGD) for the same number of steps / epochs as DeepZero. Validation accuracy
   (held out of the training subset) for every run, the test set once per run at the end.
3. ``timing``: seconds per step, interleaved in one process (``--repeats`` rounds): a
   first-order step, DeepZero with and without feature reuse, and with one forward per
   query (no batching); feature reuse and batching do not change the estimate (tested in
   tests/train/test_deepzero.py), so they are measured in time only.

Learning rates: for backprop and for DeepZero, the best validation accuracy of
``--pilot-steps`` pilots over ``--lrs`` (the paper uses 0.1); the DeepZero ablations use
DeepZero's. RGE (``--rge-run``, off by default: its queries are full forwards, too slow here)
uses 0.01, untuned. SGD momentum 0.9, weight decay 5e-4, cosine schedule over each run's own
steps, mu = 5e-3.

    python benchmarks/deepzero.py                 # the BENCHMARKS.md figures (~20 min, loaded)
    python benchmarks/deepzero.py --steps 5 --train-subset 600 --repeats 1 --budgets 16 64 \
        --results /tmp/dz                          # smoke test
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
import torch.nn.functional as F
from torch import nn

from sparta import models
from sparta.train import TrainConfig, evaluate, load_splits
from sparta.train.deepzero import DeepZero, sequential_layers
from sparta.train.schedule import lr_factor
from sparta.train.zo import cge

RESULTS = Path(__file__).parent / "results"


def flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def backprop_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return flat_grad(model)


def estimators(model: nn.Module, x: torch.Tensor, y: torch.Tensor, args) -> dict[str, Any]:
    """Part 1: CGE == forward finite differences, and cosine to the true gradient."""
    true = backprop_grad(model, x, y)
    d = true.numel()
    # CGE (feature reuse, batched) against a full forward per coordinate, 200 coordinates
    layers = sequential_layers(model)
    acts = [x]
    with torch.no_grad():
        for m in layers:
            acts.append(m(acts[-1]))
        fx = F.cross_entropy(acts[-1], y).view(1)
    zo = DeepZero("cge", mu=args.mu, sparsity=0.0)
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    rows = []
    for name, p in model.named_parameters():
        index = next(i for i, m in enumerate(layers) if any(q is p for q in m.parameters()))
        local = name.split(".", 1)[1]
        idx = torch.randperm(p.numel(), generator=gen)[: min(40, p.numel())]
        f = zo._layer_oracle(layers, index, local, acts, x, y)
        with torch.no_grad():
            est = cge(f, p.detach().reshape(1, -1), args.mu, idx, fx)[0, idx]
            fd = []
            for i in idx.tolist():
                flat = p.data.view(-1)
                old = flat[i].item()
                flat[i] = old + args.mu
                fd.append((F.cross_entropy(model(x), y) - fx[0]) / args.mu)
                flat[i] = old
            fd = torch.stack(fd)
        err = float((est - fd).abs().max())
        worst = max(worst, err)
        rows.append({"param": name, "coords": len(idx), "max_abs_diff": err})
    out: dict[str, Any] = {"d": d, "cge_vs_fd": rows, "cge_vs_fd_max_abs_diff": worst}
    # cosine to the backprop gradient at equal queries
    table = []
    for q in [b for b in args.budgets if b <= d] + [d]:
        cos = {"cge": [], "rge": []}
        for seed in range(3):
            if q == d:
                obj = DeepZero("cge", mu=args.mu, sparsity=0.0)
            else:  # q random coordinates: CGE over a uniform mask of density q / d
                obj = DeepZero("cge", mu=args.mu, sparsity=0.0, seed=seed)
            coords = _random_coords(model, q, seed) if q < d else None
            _step_on(obj, model, x, y, coords)
            cos["cge"].append(float(F.cosine_similarity(flat_grad(model), true, dim=0)))
            if q <= args.rge_max:
                rg = DeepZero("rge", mu=args.mu, q=q, sparsity=0.0, seed=seed)
                rg.step(model, x, y)
                cos["rge"].append(float(F.cosine_similarity(flat_grad(model), true, dim=0)))
        row = {"queries": q, "cge_cos": statistics.mean(cos["cge"])}
        if cos["rge"]:
            row["rge_cos"] = statistics.mean(cos["rge"])
        table.append(row)
        print(f"  q={q}: {row}", flush=True)
    out["cosine"] = table
    return out


def _random_coords(model: nn.Module, q: int, seed: int) -> dict[str, torch.Tensor]:
    """``q`` coordinates drawn uniformly over all parameters, per parameter name."""
    sizes = [(n, p.numel()) for n, p in model.named_parameters()]
    total = sum(s for _, s in sizes)
    pick = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:q].sort().values
    out, start = {}, 0
    for n, s in sizes:
        sel = pick[(pick >= start) & (pick < start + s)] - start
        out[n] = sel
        start += s
    return out


def _step_on(obj: DeepZero, model, x, y, coords) -> None:
    """One DeepZero step, on the given coordinates (None: all)."""
    if coords is not None:
        obj.coordinates = lambda model, epoch: coords  # type: ignore[method-assign]
    obj.step(model, x, y)


def zo_run(
    name: str,
    init: nn.Module,
    splits,
    args,
    budget: int | None,
    steps: int,
    obj: DeepZero | None,
    lr: float,
) -> dict[str, Any]:
    """Train a copy of ``init`` with SGD on ZO (``obj``) or backprop gradients for ``steps``
    steps or until ``budget`` queries are spent; validation and test accuracy at the end."""
    model = copy.deepcopy(init)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    train = splits.train
    per_epoch = len(train) // args.batch_size
    g = torch.Generator().manual_seed(args.seed)
    order = torch.cat([torch.randperm(len(train), generator=g) for _ in range(100)])
    start, spent, done = time.perf_counter(), 0, 0
    losses = []
    for step in range(steps):
        idx = order[step * args.batch_size : (step + 1) * args.batch_size]
        x, y = train.x[idx], train.y[idx]
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(step, steps, "cosine")
        opt.zero_grad(set_to_none=True)
        model.train()
        if obj is None:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
        else:
            loss, _ = obj.step(model, x, y, epoch=step // per_epoch, step=step, data=train)
            spent += obj.queries
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if budget is not None and obj is not None and spent + obj.queries > budget:
            break  # the next step would overdraw the query budget
        if done % max(1, steps // 5) == 0:
            print(f"  {name}: step {done}/{steps} loss {statistics.mean(losses[-20:]):.3f} "
                  f"queries {spent} {time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip
    wall = time.perf_counter() - start
    val = evaluate(model, splits.val)["acc"]
    test = evaluate(model, splits.test)["acc"]
    row = {
        "run": name,
        "steps": done,
        "epochs": round(done * args.batch_size / len(train), 3),
        "queries": spent,
        "val_acc": val,
        "test_acc": test,
        "train_loss_last20": statistics.mean(losses[-20:]),
        "wall_s": wall,
    }
    if obj is not None and obj.ratios:
        row["ratios"] = {k: round(v, 4) for k, v in obj.ratios.items()}
    print(f"  {row}", flush=True)
    return row


def timing(init: nn.Module, splits, args) -> dict[str, Any]:
    """Part 3: seconds per step, the variants interleaved round by round."""
    model = copy.deepcopy(init)
    x, y = splits.train.x[: args.batch_size], splits.train.y[: args.batch_size]
    variants = {
        "first-order": None,
        "deepzero (reuse, batched)": DeepZero("cge", mu=args.mu, ratios="uniform"),
        "deepzero, no feature reuse": DeepZero("cge", mu=args.mu, ratios="uniform", reuse=False),
        "deepzero, one forward per query": DeepZero("cge", mu=args.mu, ratios="uniform", batch=1),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for k, obj in variants.items():
            t = time.perf_counter()
            if obj is None:
                model.zero_grad()
                F.cross_entropy(model(x), y).backward()
            else:
                obj.step(model, x, y)
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    fo = med["first-order"]
    out = {k: {"s_per_step": v, "vs_first_order": v / fo} for k, v in med.items()}
    out["queries_per_step"] = variants["deepzero (reuse, batched)"].queries
    print(f"  {out}", flush=True)
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# DeepZero on Fashion-MNIST ({res['model']})", ""]
    if "estimators" in res:
        e = res["estimators"]
        lines += [
            f"CGE vs forward finite differences ({sum(r['coords'] for r in e['cge_vs_fd'])} "
            f"coordinates): max |diff| = {e['cge_vs_fd_max_abs_diff']:.2e}",
            "",
            "| queries | CGE cos | RGE cos |",
            "|---:|---:|---:|",
        ]
        for r in e["cosine"]:
            rge = f"{r['rge_cos']:.3f}" if "rge_cos" in r else "-"
            lines.append(f"| {r['queries']} | {r['cge_cos']:.3f} | {rge} |")
        lines.append("")
    if "training" in res:
        lines += [
            f"learning rates (validation pilots): {res.get('lr')}",
            "",
            "| run | steps | epochs | queries | val acc | test acc | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in res["training"]:
            lines.append(
                f"| {r['run']} | {r['steps']} | {r['epochs']} | {r['queries']} | "
                f"{r['val_acc']:.4f} | {r['test_acc']:.4f} | {r['wall_s']:.0f} |"
            )
        lines.append("")
    if "timing" in res:
        lines += ["| step | s/step | x first-order |", "|---|---:|---:|"]
        for k, v in res["timing"].items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {v['s_per_step']:.3f} | {v['vs_first_order']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--train-subset", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=300, help="DeepZero's steps (sets Q)")
    p.add_argument("--mu", type=float, default=5e-3)
    p.add_argument("--budgets", type=int, nargs="+", default=[64, 512, 4096])
    p.add_argument("--rge-max", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    p.add_argument("--pilot-steps", type=int, default=60)
    p.add_argument("--rge-run", action="store_true", help="also train with RGE (slow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", nargs="+", default=["estimators", "training", "timing"])
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(
        dataset="fashion-mnist", model="lenet5", train_subset=args.train_subset, seed=args.seed
    )
    splits = load_splits(cfg)
    torch.manual_seed(args.seed)
    init = models.create("lenet5", dataset=splits.train.info, width=args.width)
    res: dict[str, Any] = {
        "model": f"lenet5 width {args.width} ({models.count_params(init)} params)",
        "args": vars(args),
        "n_train": len(splits.train),
        "n_val": len(splits.val),
        "n_test": len(splits.test),
    }
    if (out / "deepzero.json").is_file() and "training" not in args.parts:
        # a later part joins the earlier parts' results (e.g. --parts dense-lr)
        res = {**json.loads((out / "deepzero.json").read_text()), "model": res["model"]}

    def save() -> None:
        (out / "deepzero.json").write_text(json.dumps(res, indent=2))
        (out / "deepzero.md").write_text(markdown(res))

    if "estimators" in args.parts:
        print("estimators", flush=True)
        x, y = splits.train.x[: args.batch_size], splits.train.y[: args.batch_size]
        res["estimators"] = estimators(copy.deepcopy(init), x, y, args)
        save()
    if "training" in args.parts:
        print("training", flush=True)
        # the learning rate of each method: the best validation accuracy of short pilots
        pilots = []
        lr = {}
        for method in ("backprop", "deepzero"):
            best = None
            for cand in args.lrs:
                obj = None if method == "backprop" else DeepZero("cge", mu=args.mu, seed=args.seed)
                row = zo_run(
                    f"pilot {method}", init, splits, args, None, args.pilot_steps, obj, cand
                )
                row["lr"] = cand
                pilots.append(row)
                if best is None or row["val_acc"] > best["val_acc"]:
                    best = row
            lr[method] = best["lr"]
        res["pilots"] = [{k: r[k] for k in ("run", "lr", "steps", "val_acc")} for r in pilots]
        res["lr"] = lr
        save()
        runs = []
        dz = DeepZero("cge", mu=args.mu, seed=args.seed)
        runs.append(zo_run("deepzero", init, splits, args, None, args.steps, dz, lr["deepzero"]))
        budget = runs[0]["queries"]
        res["training"] = runs
        save()
        runs.append(zo_run("backprop", init, splits, args, None, args.steps, None, lr["backprop"]))
        save()
        d = models.count_params(init)
        variants = [
            (
                "dense CGE (no sparsity)",
                DeepZero("cge", mu=args.mu, sparsity=0.0),
                lr["deepzero"],
                max(1, budget // (d + 1)),
            ),
            (
                "uniform ratios (no ZO-GraSP)",
                DeepZero("cge", mu=args.mu, ratios="uniform"),
                lr["deepzero"],
                args.steps + 1,
            ),
        ]
        if args.rge_run:  # full forwards per query: as slow as CGE without feature reuse
            # DeepZero's queries per step, without ZO-GraSP's one-off 2 (q + 1)
            per_step = (budget - 2 * (dz.grasp_q + 1)) // args.steps
            rge = DeepZero("rge", mu=args.mu, q=per_step - 1, sparsity=0.0)
            variants.append((f"RGE q={per_step - 1}", rge, 0.01, args.steps))
        for name, obj, lr, steps in variants:
            obj.seed = args.seed
            # each run's schedule spans the steps the budget buys; it stops at the budget
            runs.append(zo_run(name, init, splits, args, budget, steps, obj, lr))
            save()
    if "dense-lr" in args.parts:
        # dense CGE estimates the full gradient: also at backprop's validated lr (its
        # training row above uses DeepZero's), same query budget
        print("dense CGE at the backprop lr", flush=True)
        budget, lr = res["training"][0]["queries"], res["lr"]["backprop"]
        d = models.count_params(init)
        obj = DeepZero("cge", mu=args.mu, sparsity=0.0, seed=args.seed)
        name = f"dense CGE (no sparsity), lr {lr}"
        row = zo_run(name, init, splits, args, budget, max(1, budget // (d + 1)), obj, lr)
        res["training"] = [r for r in res["training"] if r["run"] != name] + [row]
        save()
    if "timing" in args.parts:
        print("timing", flush=True)
        res["timing"] = timing(init, splits, args)
        save()
    print(markdown(res))


if __name__ == "__main__":
    main()
