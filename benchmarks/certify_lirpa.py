"""Side by side with auto_LiRPA: IBP, CROWN, alpha-CROWN and BaB on LeNet-300-100, LeNet-5, conv4.

Each model is trained on Fashion-MNIST for ``--epochs`` epochs (Adam, lr 1e-3, batch 128, seed
0; no choice is made on the data, so no validation split is needed), then the first ``--n`` test
images are bounded at Linf ``--eps`` ∩ [0, 1] (the same clipped box for both tools) in one
batch: logit bounds and margin bounds ``z_y - z_j`` in one call. sparta and auto_LiRPA run
interleaved in this process (sparta, then auto_LiRPA, per method and repeat); the time per
image is the median over ``--repeats``. Reported per (model, method): ms per image for both,
their ratio (sparta / auto_LiRPA; goal <= 0.5), verified counts (margin lower bound > 0 for
every j != y, among clean-correct images), the max |difference| of the bounds (IBP and CROWN:
they compute the same bound; goal <= 3e-5) and, for alpha-CROWN, the mean improvement of the
margin lower bounds over CROWN's for both tools. BaB (``sparta.certify.verify``,
``--bab-timeout`` seconds per image, no attack first) has no counterpart in auto_LiRPA itself
(it lives in the separate alpha-beta-CROWN verifier), so its auto_LiRPA cells are empty.

auto_LiRPA 0.7.1 cannot be pip-installed here: put its source (github:Verified-Intelligence/
auto_LiRPA) and its small dependencies (appdirs, graphviz) on the path named by the environment
variable ``AUTO_LIRPA_PATH`` (``:``-separated); without it the comparison is skipped with a
message. Writes ``benchmarks/results/certify_lirpa.json`` and a markdown table::

    AUTO_LIRPA_PATH=/tmp/auto_LiRPA:/tmp/deps python benchmarks/certify_lirpa.py
    python benchmarks/certify_lirpa.py --n 10 --epochs 1 --repeats 1 --bab-timeout 1  # smoke

``--models`` takes any registered model (conv4: Conv-4 at Fashion-MNIST's native 28x28);
``--alpha-n lenet5=4`` bounds alpha-CROWN on the first 4 images only (its rows say ``n``);
``--model-cache DIR`` reuses the trained models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sparta import data as sdata
from sparta import models
from sparta.certify import bounds, verify

RESULTS = Path(__file__).parent / "results"
_BUILT: dict = {}
CONV_MODE: dict = {}  # auto_LiRPA's conv_mode that worked, per (model, method)
METHODS = {"ibp": "IBP", "crown": "CROWN", "alpha-crown": "CROWN-Optimized"}


def train(name: str, epochs: int, cache: str | None = None) -> torch.nn.Module:
    """``name`` trained ``epochs`` epochs (seed 0); with ``cache`` (a folder), loaded from or
    saved to ``{cache}/{name}_e{epochs}.pt``."""
    path = Path(cache) / f"{name}_e{epochs}.pt" if cache else None
    if path is not None and path.exists():
        return torch.load(path, weights_only=False).eval()
    data = sdata.load("fashion-mnist", "train")
    torch.manual_seed(0)
    model = models.create(name, dataset=data.info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(data.y), generator=g).split(128):
            loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for q in model.parameters():
        q.requires_grad_(False)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model, path)
    return model.eval()


def lirpa_module():
    """auto_LiRPA from ``AUTO_LIRPA_PATH``, or None."""
    path = os.environ.get("AUTO_LIRPA_PATH")
    if path:
        sys.path[:0] = [p for p in path.split(":") if p]
    try:
        import auto_LiRPA
    except ImportError:
        return None
    return auto_LiRPA


def spec(y: torch.Tensor, k: int) -> torch.Tensor:
    """Rows ``e_j``, ``-e_j`` and ``e_y - e_j`` (B, 3K, K): lower bounds of all three give the
    logit bounds and the margins in one call, as sparta's ``bounds``."""
    eye = torch.eye(k).expand(len(y), k, k)
    return torch.cat([eye, -eye, eye[0][y].unsqueeze(1) - eye], 1)


def theirs(lirpa, model, x, y, eps: float, method: str):
    """auto_LiRPA's (lower, upper, margin lower) logits (B, K)."""
    # auto_LiRPA 0.7.1's patches mode fails on a Normalize before a conv (a shape error in its
    # concretisation), so it gets the layers after Normalize and the normalised box: the same
    # function on the same box (Normalize is elementwise), and sparta bounds that box too.
    norm, body = model[0], torch.nn.Sequential(*list(model)[1:])
    lo_x, up_x = norm((x - eps).clamp(0, 1)), norm((x + eps).clamp(0, 1))
    key = (id(model), method)
    ptb = lirpa.PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=lo_x, x_U=up_x)
    k = 10
    bx = lirpa.BoundedTensor((lo_x + up_x) / 2, ptb)
    for mode in ("patches", "matrix"):  # its alpha-CROWN fails in patches mode on LeNet-5
        if key not in _BUILT:  # built once, in the warm-up (sparta's trace is cached likewise)
            opts = {"conv_mode": mode, "verbosity": 0}
            if method == "CROWN-Optimized":  # auto_LiRPA's defaults: lr 0.5, decay 0.98
                opts["optimize_bound_args"] = {"iteration": 20}
            _BUILT[key] = lirpa.BoundedModule(
                body, torch.zeros_like(lo_x[:1]), device="cpu", verbose=0, bound_opts=opts
            )
            CONV_MODE[key] = mode
        try:
            with torch.set_grad_enabled(method == "CROWN-Optimized"):
                lo, _ = _BUILT[key].compute_bounds(
                    x=(bx,), C=spec(y, k), method=method, bound_upper=False
                )
            break
        except RuntimeError:
            if mode == "matrix":
                raise
            del _BUILT[key]
    lo = lo.detach()
    return lo[:, :k], -lo[:, k : 2 * k], lo[:, 2 * k :]


def verified(margin: torch.Tensor, y: torch.Tensor, correct: torch.Tensor) -> int:
    is_y = torch.zeros_like(margin, dtype=torch.bool)
    is_y[torch.arange(len(y)), y] = True
    return int((((margin > 0) | is_y).all(1) & correct).sum())


def timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    res = fn()
    return time.perf_counter() - start, res


def bench(name: str, args: argparse.Namespace, lirpa) -> list[dict[str, Any]]:
    model = train(name, args.epochs, args.model_cache)
    test = sdata.load("fashion-mnist", "test")
    with torch.no_grad():
        correct_all = model(test.x[: args.n]).argmax(1) == test.y[: args.n]
    rows = []
    found: dict[str, Any] = {}
    for method, lm in METHODS.items():
        if method not in args.methods:
            continue
        ours_t, their_t = [], []
        n = args.n if method != "alpha-crown" or name not in args.alpha_n else args.alpha_n[name]
        x, y, correct = test.x[:n], test.y[:n], correct_all[:n]
        with_lirpa = lirpa is not None and (method != "alpha-crown" or name in args.lirpa_alpha)
        bounds(model, x[:2], args.eps, method=method, y=y[:2])  # warm-up
        if with_lirpa:
            theirs(lirpa, model, x[:2], y[:2], args.eps, lm)
        for _ in range(args.repeats):
            t, b = timed(lambda m=method, x=x, y=y: bounds(model, x, args.eps, method=m, y=y))
            ours_t.append(t)
            if with_lirpa:
                t2, tb = timed(lambda lm=lm, x=x, y=y: theirs(lirpa, model, x, y, args.eps, lm))
                their_t.append(t2)
        found[method] = (b, tb if with_lirpa else None)
        row: dict[str, Any] = {
            "model": name,
            "method": method,
            "n": n,
            "ms_per_image": 1000 * statistics.median(ours_t) / len(y),
            "verified": verified(b.margin_lower, y, correct),
        }
        if with_lirpa:
            lo, up, m_lo = tb
            row["lirpa_ms_per_image"] = 1000 * statistics.median(their_t) / len(y)
            row["time_ratio"] = row["ms_per_image"] / row["lirpa_ms_per_image"]
            row["lirpa_verified"] = verified(m_lo, y, correct)
            diff = [(b.lower - lo).abs().max(), (b.upper - up).abs().max()]
            diff.append((b.margin_lower - m_lo).abs().max())
            row["max_abs_diff"] = float(torch.stack(diff).max())
            # tighter (> 0) or looser (< 0) than auto_LiRPA: mean margin lower-bound gap
            row["mean_margin_gain"] = float((b.margin_lower - m_lo).mean())
            row["lirpa_conv_mode"] = CONV_MODE[(id(model), lm)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    if "crown" in found and "alpha-crown" in found:
        crown, alpha = found["crown"], found["alpha-crown"]
        n = len(alpha[0].margin_lower)  # alpha-CROWN may bound the first n images only
        gain = (alpha[0].margin_lower - crown[0].margin_lower[:n]).mean()
        rows[-1]["alpha_gain_over_crown"] = float(gain)
        if alpha[1] is not None and crown[1] is not None:
            gain = (alpha[1][2] - crown[1][2][:n]).mean()
            rows[-1]["lirpa_alpha_gain_over_crown"] = float(gain)
    if "bab" not in args.methods:
        return rows
    x, y = test.x[: args.n], test.y[: args.n]
    t, res = timed(
        lambda: verify(model, x, y, args.eps, method="bab", timeout=args.bab_timeout, batch=64)
    )
    counts = res.counts()
    rows.append(
        {
            "model": name,
            "method": "bab",
            "ms_per_image": 1000 * t / len(y),
            "verified": counts["verified"],
            "falsified": counts["falsified"],
            "unknown": counts["unknown"],
            "lirpa": "no BaB in auto_LiRPA (alpha-beta-CROWN is a separate verifier)",
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def f(r: dict, k: str, fmt: str) -> str:
        return format(r[k], fmt) if k in r else "-"

    out = [
        "| model | method | images | sparta ms/img | auto_LiRPA ms/img | ratio | verified "
        "(sparta / auto_LiRPA) | max abs diff | alpha gain over CROWN (sparta / auto_LiRPA) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ver = f"{r['verified']} / {r.get('lirpa_verified', '-')}"
        gain = (
            f"{f(r, 'alpha_gain_over_crown', '.4f')} / {f(r, 'lirpa_alpha_gain_over_crown', '.4f')}"
        )
        out.append(
            f"| {r['model']} | {r['method']} | {r.get('n', '-')} | {r['ms_per_image']:.2f} | "
            f"{f(r, 'lirpa_ms_per_image', '.2f')} | {f(r, 'time_ratio', '.2f')} | {ver} | "
            f"{f(r, 'max_abs_diff', '.1e')} | {gain if r['method'] == 'alpha-crown' else '-'} |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet300,lenet5")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=0.01)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--bab-timeout", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--lirpa-alpha",
        default="lenet300",
        help="models on which auto_LiRPA's alpha-CROWN runs (on LeNet-5 it fails in patches "
        "mode and its matrix mode took over 15 min for 6 images here)",
    )
    p.add_argument("--methods", default="ibp,crown,alpha-crown,bab")
    p.add_argument(
        "--alpha-n",
        default="",
        help="MODEL=N,...: alpha-CROWN on the first N images only for these models (its "
        "20 steps on LeNet-5 cost tens of seconds per image on one loaded core)",
    )
    p.add_argument("--model-cache", default=None, help="folder to load/save trained models")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lirpa = lirpa_module()
    if lirpa is None:
        print("auto_LiRPA is not importable (set AUTO_LIRPA_PATH): comparison skipped")
    args.methods = args.methods.split(",")
    args.alpha_n = {k: int(v) for k, v in (kv.split("=") for kv in args.alpha_n.split(",") if kv)}
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        rows += bench(name, args, lirpa)
        write(rows, args, lirpa)  # after every model: a killed run keeps its figures


def write(rows: list[dict[str, Any]], args: argparse.Namespace, lirpa) -> None:
    result = {
        "dataset": "fashion-mnist",
        "n": args.n,
        "eps": args.eps,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "bab_timeout_s": args.bab_timeout,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "auto_lirpa": getattr(lirpa, "__version__", None) if lirpa else "not importable",
        "rows": rows,
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "certify_lirpa.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "certify_lirpa.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
