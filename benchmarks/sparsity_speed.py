"""Does sparsity buy real speed? Three ratios, each measured in one process.

(a) training-step time of LeNet-300-100 masked at 90% (sparta: the engine's MaskCallback,
    which masks gradients after backward and checks that the optimizer keeps pruned weights at
    zero, re-masking only if it does not; no hooks; and the plain loop's ``handle.step()``,
    which re-masks the weights after every step) against the dense model, against the engine's
    previous masking (a loop over the model's masks multiplying by a uint8 view of each bool
    mask: ``engine_before``) and against ``torch.nn.utils.prune.global_unstructured`` (L1,
    90%, forward pre-hooks); goal: engine and handle.step() <= 1.03x dense;
(b) CPU inference speedup of channel-pruned conv models exported with ``compact`` at 50% and
    75% channel sparsity against the dense model, next to the MAC ratio (goal: speedup >= 90%
    of the MAC ratio): ``compact_before`` is ``compact(model)`` run eagerly (the previous
    export), ``compact`` is ``compact(model, fold_bn=True)`` run in the inference mode
    ``choose_inference`` picks (eager / channels-last / jit / both; chosen in a separate timing
    run before the interleaved one), and ``dense_best`` is the dense model given the same
    treatment (BatchNorm folded, its fastest mode), for an honest like-for-like ratio;
(c) a Linear layer (default 1024 x 1024, batch 256) run as a CSR (unstructured mask) and BSR
    (block mask) sparse matrix against the dense matmul, across sparsities: where sparse wins.

Every figure is a ratio of medians over interleaved repeats; ``torch.set_num_threads`` is fixed
(``--threads``) and printed. Parts (a) and (b) report two clocks: wall time and the CPU time of
the calling thread (``*_cpu`` keys; with ``--threads 1`` every kernel runs on that thread), which
on a loaded machine counts the work done rather than the waits for a core.
Writes ``benchmarks/results/sparsity_speed.json``.

    python benchmarks/sparsity_speed.py [--threads 1] [--repeats 7] [--parts a b c]
        [--train-repeats 41]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn

from sparta import models
from sparta.data.base import DatasetInfo
from sparta.sparsity.channels import prune_channels
from sparta.sparsity.export import (
    SparseLinear,
    choose_inference,
    compact,
    fold_batchnorm,
    for_inference,
    to_sparse,
)
from sparta.sparsity.handle import MaskCallback, SparsityHandle
from sparta.sparsity.masks import attach, named_masks
from sparta.sparsity.topk import global_masks

RESULTS = Path(__file__).parent / "results"
FASHION = DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.286,), (0.353,))
CIFAR = DatasetInfo("cifar10", (3, 32, 32), 10, (0.491, 0.482, 0.447), (0.247, 0.243, 0.262))


#: wall time, and the CPU time of the calling thread (with one torch thread every kernel runs
#: on it): on a loaded machine the second counts the work done, not the waits for a core
CLOCKS = ("wall", "cpu")


def interleaved(
    fns: dict[str, Callable[[], tuple[float, float]]], repeats: int
) -> dict[str, dict[str, float]]:
    """``{clock: {name: median seconds}}``, the functions taking turns in every repeat."""
    for f in fns.values():  # warm-up
        f()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(f())
    return {
        c: {k: statistics.median(t[i] for t in v) for k, v in times.items()}
        for i, c in enumerate(CLOCKS)
    }


def timed(step: Callable[[], Any], n: int) -> Callable[[], tuple[float, float]]:
    """A function that runs ``step`` ``n`` times and returns (wall, thread CPU) seconds per
    call."""

    def run() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(n):
            step()
        return (time.perf_counter() - wall) / n, (time.thread_time() - cpu) / n

    return run


def inference(model: nn.Module, x: torch.Tensor, n: int) -> Callable[[], tuple[float, float]]:
    """Seconds per forward pass of ``model`` on ``x`` under ``inference_mode``."""

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return timed(step, n)


# ------------------------------------------------------------------ (a) training steps
def _train_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        from sparta import data as sdata

        ds = sdata.load("fashion-mnist", "train").take(n, seed=seed)
        return ds.x, ds.y, "fashion-mnist"
    except (FileNotFoundError, ValueError, OSError):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand((n, *FASHION.input_shape), generator=g)
        return x, torch.randint(0, 10, (n,), generator=g), "random"


def _mask_gradients_before(model: nn.Module) -> None:
    """The engine's masking before MaskFactors: a scan of the model's masks and a multiply
    by a uint8 view of each bool mask (kept here as the same-process baseline)."""
    with torch.no_grad():
        for _, p, mask in named_masks(model):
            if p.grad is not None:
                p.grad.mul_(mask.view(torch.uint8))


TRAIN_KINDS = ("dense", "engine", "engine_before", "handle_step", "torch_prune")


def train_steps(repeats: int, steps: int, batch: int, sparsity: float = 0.9) -> dict[str, Any]:
    x, y, source = _train_data(batch * steps)
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch)]

    def setup(kind: str) -> Callable[[], float]:
        torch.manual_seed(0)
        model = models.create("lenet300", FASHION).train()
        weights = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
        handle = None
        if kind in ("engine", "engine_before", "handle_step"):
            masks = global_masks({n: p.detach().abs() for n, p in weights.items()}, sparsity)
            handle = SparsityHandle(model, masks)
        elif kind == "torch_prune":
            mods = [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear)]
            tprune.global_unstructured(mods, tprune.L1Unstructured, amount=sparsity)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        # the engine's hooks, driven as the Trainer drives them
        cb = MaskCallback()
        trainer = SimpleNamespace(model=model, optimizer=opt)
        if kind.startswith("engine"):
            cb.on_fit_start(trainer)

        def epoch() -> None:
            for xb, yb in batches:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if kind == "engine":
                    cb.after_backward(trainer)
                elif kind == "engine_before":
                    _mask_gradients_before(model)
                opt.step()
                if kind.startswith("engine"):
                    cb.after_step(trainer)
                elif kind == "handle_step":
                    handle.step()

        run = timed(epoch, 1)
        run.handle = handle  # type: ignore[attr-defined]
        return run

    runs = {k: setup(k) for k in TRAIN_KINDS}
    med = interleaved(runs, repeats)
    exact = {
        k: bool(all(not p.masked_select(~m).any() for _, p, m in named_masks(r.handle.model)))
        for k, r in runs.items()
        if r.handle is not None
    }
    out: dict[str, Any] = {
        "model": "lenet300",
        "sparsity": sparsity,
        "data": source,
        "batch_size": batch,
        "steps_per_repeat": len(batches),
        "pruned_exactly_zero": exact,
    }
    for clock in CLOCKS:
        sfx = "" if clock == "wall" else "_cpu"
        per_step = {k: v / len(batches) for k, v in med[clock].items()}
        out[f"step{sfx}_s"] = per_step
        for k in TRAIN_KINDS[1:]:
            out[f"{k}_over_dense{sfx}"] = per_step[k] / per_step["dense"]
        out[f"engine_over_torch_prune{sfx}"] = per_step["engine"] / per_step["torch_prune"]
    return out


# ------------------------------------------------------------------ (b) compact inference
def compact_inference(
    names: list[str], sparsities: list[float], repeats: int, batch: int, choose_repeats: int = 5
) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        info = FASHION if name in ("lenet5", "lenet300") else CIFAR
        torch.manual_seed(0)
        dense = models.create(name, info).eval()
        x = torch.rand((batch, *info.input_shape), generator=torch.Generator().manual_seed(1))
        # the inference mode is chosen on its own timing run (a different random batch),
        # never on the interleaved run that is reported
        x_choose = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
        dense_best = fold_batchnorm(dense).eval()
        choose_inference(dense_best, x_choose, choose_repeats)
        fns: dict[str, nn.Module] = {"dense": dense, "dense_best": for_inference(dense_best)}
        before: dict[float, nn.Module] = {}
        modes: dict[float, str] = {}
        for s in sparsities:
            masked = models.create(name, info).eval()
            masked.load_state_dict(dense.state_dict())
            prune_channels(masked, s, "l1", "layer")
            before[s] = compact(masked).eval()
            after = compact(masked, fold_bn=True).eval()
            modes[s] = choose_inference(after, x_choose, choose_repeats)
            fns[f"before{s}"] = before[s]
            fns[f"after{s}"] = for_inference(after)
            with torch.no_grad():
                ref = masked(x)
                for k in (f"before{s}", f"after{s}"):
                    err = float((fns[k](x) - ref).abs().max())
                    assert err <= 1e-4 * max(1.0, float(ref.abs().max())), f"{k}: {err}"

        meds = interleaved({k: inference(m, x, 1) for k, m in fns.items()}, repeats)
        macs_dense = models.count_flops(dense, info.input_shape)
        params_dense = models.count_params(dense)
        for s in sparsities:
            mac_ratio = macs_dense / models.count_flops(before[s], info.input_shape)
            row: dict[str, Any] = {
                "model": name,
                "input": list(info.input_shape),
                "batch_size": batch,
                "channel_sparsity": s,
                "inference_mode": modes[s],
                "dense_inference_mode": dense_best.sparta_inference["mode"],
                "mac_ratio": mac_ratio,
                "param_ratio": params_dense / models.count_params(before[s]),
            }
            for clock in CLOCKS:
                med, sfx = meds[clock], "" if clock == "wall" else "_cpu"
                speedup = med["dense"] / med[f"after{s}"]
                speedup_before = med["dense"] / med[f"before{s}"]
                row.update(
                    {
                        f"dense{sfx}_s": med["dense"],
                        f"dense_best{sfx}_s": med["dense_best"],
                        f"compact_before{sfx}_s": med[f"before{s}"],
                        f"compact{sfx}_s": med[f"after{s}"],
                        f"speedup_before{sfx}": speedup_before,
                        f"speedup{sfx}": speedup,
                        f"speedup_over_mac_ratio_before{sfx}": speedup_before / mac_ratio,
                        f"speedup_over_mac_ratio{sfx}": speedup / mac_ratio,
                        f"speedup_vs_dense_best{sfx}": med["dense_best"] / med[f"after{s}"],
                        f"speedup_vs_dense_best_over_mac_ratio{sfx}": (
                            med["dense_best"] / med[f"after{s}"] / mac_ratio
                        ),
                    }
                )
            rows.append(row)
    return rows


# ------------------------------------------------------------------ (c) sparse matmul
def _block_mask(rows: int, cols: int, sparsity: float, block: int, g: torch.Generator):
    nb = (rows // block) * (cols // block)
    keep = max(1, round(nb * (1 - sparsity)))
    flat = torch.zeros(nb, dtype=torch.bool)
    flat[torch.randperm(nb, generator=g)[:keep]] = True
    tiles = flat.view(rows // block, cols // block)
    return tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)


def sparse_linear(
    size: int, batch: int, sparsities: list[float], block: int, repeats: int, inner: int
) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((batch, size), generator=g)
    rows = []
    for s in sparsities:
        dense = nn.Linear(size, size).eval()
        unstr = nn.Linear(size, size).eval()
        unstr.load_state_dict(dense.state_dict())
        attach(unstr, {"weight": torch.rand((size, size), generator=g) >= s})
        blocky = nn.Linear(size, size).eval()
        blocky.load_state_dict(dense.state_dict())
        attach(blocky, {"weight": _block_mask(size, size, s, block, g)})
        csr = to_sparse(nn.Sequential(unstr), "csr")[0]
        bsr = to_sparse(nn.Sequential(blocky), "bsr", blocksize=block)[0]
        assert isinstance(csr, SparseLinear) and isinstance(bsr, SparseLinear)
        with torch.no_grad():
            assert (csr(x) - unstr(x)).abs().max() <= 1e-3 * unstr(x).abs().max()
            assert (bsr(x) - blocky(x)).abs().max() <= 1e-3 * blocky(x).abs().max()
        fns = {"dense": dense, "csr": csr, "bsr": bsr}
        med = interleaved({k: inference(m, x, inner) for k, m in fns.items()}, repeats)["wall"]
        rows.append(
            {
                "size": size,
                "batch_size": batch,
                "sparsity": s,
                "blocksize": block,
                "dense_s": med["dense"],
                "csr_s": med["csr"],
                "bsr_s": med["bsr"],
                "csr_speedup": med["dense"] / med["csr"],
                "bsr_speedup": med["dense"] / med["bsr"],
            }
        )
    return rows


def _first_win(rows: list[dict[str, Any]], key: str) -> float | None:
    wins = [r["sparsity"] for r in rows if r[key] > 1.0]
    return min(wins) if wins else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    ap.add_argument("--train-steps", type=int, default=50)
    ap.add_argument("--train-repeats", type=int, default=41, help="repeats of part (a)")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--conv-models", nargs="+", default=["lenet5", "conv4", "resnet20"])
    ap.add_argument("--conv-batch", type=int, default=256)
    ap.add_argument("--channel-sparsities", nargs="+", type=float, default=[0.5, 0.75])
    ap.add_argument("--linear-size", type=int, default=1024)
    ap.add_argument("--linear-batch", type=int, default=256)
    ap.add_argument("--blocksize", type=int, default=16)
    ap.add_argument(
        "--sparsities",
        nargs="+",
        type=float,
        default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    out: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    out["repeats"] = args.repeats
    if "a" in args.parts:
        a = train_steps(args.train_repeats, args.train_steps, args.train_batch)
        out["train_step"] = a
        print(f"\n(a) training step, lenet300 at 90%, batch {a['batch_size']} ({a['data']})")
        for clock in CLOCKS:
            sfx = "" if clock == "wall" else "_cpu"
            st = a[f"step{sfx}_s"]
            print(f"  {clock}: " + "  ".join(f"{k} {st[k] * 1e3:.3f} ms" for k in TRAIN_KINDS))
            print(
                f"  {clock}: "
                + "  ".join(f"{k}/dense {a[f'{k}_over_dense{sfx}']:.3f}" for k in TRAIN_KINDS[1:])
            )
        print(f"  pruned weights exactly zero: {a['pruned_exactly_zero']}")
    if "b" in args.parts:
        b = compact_inference(
            args.conv_models, args.channel_sparsities, args.repeats, args.conv_batch
        )
        out["compact_inference"] = b
        print(f"\n(b) compact inference, batch {args.conv_batch}")
        print(
            f"  {'model':<9}{'chan.sp':>8}{'dense ms':>10}{'before ms':>10}{'after ms':>10}"
            f"{'mode':>19}{'MACx':>7}{'eff.before':>11}{'eff.':>7}{'eff.vs best dense':>18}"
        )
        for clock in CLOCKS:
            sfx = "" if clock == "wall" else "_cpu"
            for r in b:
                print(
                    f"  {r['model']:<9}{r['channel_sparsity']:>8.2f}"
                    f"{r[f'dense{sfx}_s'] * 1e3:>10.2f}{r[f'compact_before{sfx}_s'] * 1e3:>10.2f}"
                    f"{r[f'compact{sfx}_s'] * 1e3:>10.2f}{r['inference_mode']:>19}"
                    f"{r['mac_ratio']:>7.2f}{r[f'speedup_over_mac_ratio_before{sfx}']:>11.2f}"
                    f"{r[f'speedup_over_mac_ratio{sfx}']:>7.2f}"
                    f"{r[f'speedup_vs_dense_best_over_mac_ratio{sfx}']:>18.2f}  ({clock})"
                )
    if "c" in args.parts:
        c = sparse_linear(
            args.linear_size,
            args.linear_batch,
            args.sparsities,
            args.blocksize,
            args.repeats,
            inner=5,
        )
        out["sparse_linear"] = c
        out["csr_wins_from"] = _first_win(c, "csr_speedup")
        out["bsr_wins_from"] = _first_win(c, "bsr_speedup")
        print(
            f"\n(c) Linear {args.linear_size}x{args.linear_size}, batch {args.linear_batch}, "
            f"BSR blocks {args.blocksize}x{args.blocksize} (block mask)"
        )
        print(
            f"  {'sparsity':>8}{'dense ms':>10}{'csr ms':>9}{'bsr ms':>9}{'csr x':>8}{'bsr x':>8}"
        )
        for r in c:
            print(
                f"  {r['sparsity']:>8.2f}{r['dense_s'] * 1e3:>10.3f}{r['csr_s'] * 1e3:>9.3f}"
                f"{r['bsr_s'] * 1e3:>9.3f}{r['csr_speedup']:>8.2f}{r['bsr_speedup']:>8.2f}"
            )
        print(f"  CSR wins from {out['csr_wins_from']}, BSR from {out['bsr_wins_from']}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "sparsity_speed.json"
    # parts not run this time keep their previous figures
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **out}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
