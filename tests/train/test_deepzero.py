"""DeepZero: zeroth-order training from forward passes (sparta.train.deepzero)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.train import TrainConfig, Trainer
from sparta.train.deepzero import (
    DeepZero,
    ZOOptions,
    layer_ratios,
    sequential_layers,
    weight_names,
    zo_grasp_scores,
)
from sparta.train.zo import cge, rge

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def synthetic(n: int = 64, shape=(1, 6, 6), classes: int = 4):
    return sdata.load("synthetic", "train", n=n, shape=shape, num_classes=classes, seed=0)


def small_conv(info) -> nn.Sequential:
    """A tiny conv net (a conv, a pool, two linears) for fast, exact checks."""
    torch.manual_seed(0)
    c = info.input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 8),
        nn.Tanh(),
        nn.Linear(8, info.num_classes),
    ).double()


def true_grad(model: nn.Module, x, y) -> dict[str, torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    out = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    return out


# ---------------------------------------------------------------- estimators on quadratics
def test_cge_on_a_quadratic_is_the_gradient_plus_half_mu_times_the_diagonal():
    # f(x) = x^T A x / 2 + b^T x: (f(x + mu e_i) - f(x)) / mu = (A x + b)_i + mu A_ii / 2
    torch.manual_seed(0)
    d = 7
    m = torch.randn(d, d, dtype=torch.float64)
    a, b = m @ m.T + torch.eye(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    x = torch.randn(1, d, dtype=torch.float64)

    def f(z):
        return 0.5 * torch.einsum("mni,ij,mnj->mn", z, a, z) + z @ b

    mu = 1e-3
    g = cge(f, x, mu, batch=3)
    expected = x[0] @ a + b + mu * a.diagonal() / 2
    assert torch.allclose(g[0], expected, atol=1e-9)
    # a subset of coordinates: exactly those, zero elsewhere
    g = cge(f, x, mu, coords=torch.tensor([1, 4]))
    assert torch.allclose(g[0, [1, 4]], expected[[1, 4]], atol=1e-9)
    assert torch.count_nonzero(g[0, [0, 2, 3, 5, 6]]) == 0


def test_rge_on_a_quadratic_averages_to_the_gradient():
    torch.manual_seed(0)
    d = 5
    a = torch.diag(torch.arange(1.0, d + 1, dtype=torch.float64))
    b = torch.ones(d, dtype=torch.float64)
    x = torch.randn(1, d, dtype=torch.float64)

    def f(z):
        return 0.5 * torch.einsum("mni,ij,mnj->mn", z, a, z) + z @ b

    grad = x[0] @ a + b
    for dist in ("sphere", "gaussian"):
        g = rge(f, x, 40000, 1e-4, torch.Generator().manual_seed(1), dist, batch=5000)[0]
        assert torch.allclose(g, grad, rtol=0.05, atol=0.05), (dist, g, grad)


# ---------------------------------------------------------------- the DeepZero step
def test_dense_cge_step_matches_backprop_and_costs_one_query_per_coordinate_plus_one():
    data = synthetic()
    model = small_conv(data.info)
    x, y = data.x[:16].double(), data.y[:16]
    obj = DeepZero("cge", mu=1e-6, sparsity=0.0, batch=5)
    loss, logits = obj.step(model, x, y)
    assert obj.queries == 1 + sum(p.numel() for p in model.parameters())
    assert torch.allclose(loss, F.cross_entropy(model(x), y))
    zo = {n: p.grad.clone() for n, p in model.named_parameters()}
    exact = true_grad(model, x, y)
    for n in zo:
        assert torch.allclose(zo[n], exact[n], atol=1e-5), n


@pytest.mark.parametrize("reuse", [True, False])
def test_feature_reuse_gives_the_losses_of_full_forwards(reuse):
    data = synthetic()
    model = small_conv(data.info)
    x, y = data.x[:16].double(), data.y[:16]
    layers = sequential_layers(model)
    acts = [x]
    for m in layers:
        acts.append(m(acts[-1]))
    obj = DeepZero("cge", sparsity=0.0, reuse=reuse)
    w = model[4].weight  # the first Linear: layers before it are reused (or recomputed)
    z = w.detach().flatten().repeat(3, 1, 1)
    z[0, 0, 5] += 0.3
    z[1, 0, 17] -= 0.2
    got = obj._layer_oracle(layers, 4, "weight", acts, x, y)(z)
    full = obj._model_oracle(model, {"4.weight": w}, x, y)(z)
    for k in range(3):
        ref = nn.Sequential(*[m for m in model])  # an explicit full forward per copy
        with torch.no_grad():
            ref[4].weight.copy_(z[k, 0].view_as(w))
            value = F.cross_entropy(ref(x), y)
            ref[4].weight.copy_(w)
        assert torch.allclose(got[k, 0], value, atol=1e-12)
        assert torch.allclose(full[k, 0], value, atol=1e-12)


def test_reuse_and_batching_leave_the_estimate_unchanged():
    data = synthetic()
    model = small_conv(data.info)
    x, y = data.x[:16].double(), data.y[:16]
    grads = []
    for reuse, batch in ((True, 64), (False, 64), (True, 1)):
        obj = DeepZero("cge", sparsity=0.5, ratios="uniform", reuse=reuse, batch=batch)
        obj.step(model, x, y)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-9)
    assert torch.allclose(grads[0], grads[2], atol=1e-9)


class Wrapped(nn.Module):
    """A non-Sequential model that counts its forwards (the fallback path: full forwards)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_query_counts_are_exact_and_a_full_forward_each_without_a_sequential_view():
    data = synthetic()
    model = Wrapped(small_conv(data.info))
    x, y = data.x[:8].double(), data.y[:8]
    assert sequential_layers(model) is None
    obj = DeepZero("cge", sparsity=0.9, ratios="uniform")
    obj.step(model, x, y)
    # weights keep round(0.1 n) coordinates, biases all: 1 (base) + the sum
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    want = 1 + sum(max(1, round(0.1 * s)) if n.endswith("weight") else s for n, s in sizes.items())
    assert obj.queries == want
    assert model.calls == want
    model.calls = 0
    rg = DeepZero("rge", q=7, sparsity=0.0, batch=3)
    rg.step(model, x, y)
    assert rg.queries == 8 and model.calls == 8
    assert rg.total_queries == 8


def test_sparse_cge_touches_only_the_masked_coordinates_and_reshuffles_per_period():
    data = synthetic()
    model = small_conv(data.info)
    x, y = data.x[:16].double(), data.y[:16]
    obj = DeepZero("cge", sparsity=0.8, ratios="uniform", reshuffle=2)
    obj.step(model, x, y, epoch=0)
    coords = obj.coordinates(model, 0)
    for n, p in model.named_parameters():
        outside = torch.ones(p.numel(), dtype=torch.bool)
        outside[coords[n]] = False
        assert torch.count_nonzero(p.grad.flatten()[outside]) == 0, n
        assert torch.count_nonzero(p.grad.flatten()[coords[n]]) > 0, n
        if n.endswith("weight"):
            assert len(coords[n]) == max(1, round(0.2 * p.numel()))
    same = obj.coordinates(model, 1)
    moved = obj.coordinates(model, 2)
    for n in weight_names(model):
        assert torch.equal(coords[n], same[n])
    assert any(not torch.equal(coords[n], moved[n]) for n in weight_names(model))


def test_zo_grasp_ratios_keep_the_asked_share_globally():
    data = synthetic(n=80)
    model = small_conv(data.info)
    scores, queries = zo_grasp_scores(model, data.x.double(), data.y, q=16)
    assert queries == 2 * 17
    assert set(scores) == set(weight_names(model))
    ratios = layer_ratios(scores, 0.75)
    sizes = {n: model.get_parameter(n).numel() for n in ratios}
    kept = sum(ratios[n] * sizes[n] for n in ratios)
    assert abs(kept - 0.25 * sum(sizes.values())) < 1.5
    assert len(set(round(r, 6) for r in ratios.values())) > 1  # not uniform
    # the step spends the ZO-GraSP queries once, at the first step, and records the ratios
    obj = DeepZero("cge", sparsity=0.75, grasp_q=16, grasp_per_class=5)
    obj.step(model, data.x[:8].double(), data.y[:8], data=data)
    first = obj.queries
    obj.step(model, data.x[:8].double(), data.y[:8], data=data)
    assert first - obj.queries == 2 * 17
    assert obj.state_dict()["ratios"] == obj.ratios


def test_options_reject_bad_values_and_zo_flags_without_zo():
    with pytest.raises(ValueError, match="zo='sgd'"):
        ZOOptions(zo="sgd")
    with pytest.raises(ValueError, match="zo_sparsity=1"):
        ZOOptions(zo="cge", zo_sparsity=1)
    with pytest.raises(ValueError, match="zo_mu=0.1 is not allowed without --zo"):
        ZOOptions(zo_mu=0.1)


# ---------------------------------------------------------------- the engine
def test_zo_training_never_calls_backward_and_still_learns(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("backward called in ZO training")

    monkeypatch.setattr(torch.Tensor, "backward", boom)
    monkeypatch.setattr(torch.autograd, "backward", boom)
    data = sdata.load("digits", "train").take(400, seed=0)
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=data.info, width=0.1)
    cfg = TrainConfig(
        dataset="digits", model="lenet300", epochs=4, batch_size=32, lr=0.1,
        schedule="constant", weight_decay=0.0,
    )  # fmt: skip
    obj = DeepZero("cge", sparsity=0.5, ratios="uniform")
    history = Trainer(model, data, cfg, objective=obj, quiet=True).fit()
    assert history[-1]["train_acc"] > 0.5  # 10 classes: chance is 0.1
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.3
    steps = 13  # ceil(400 / 32)
    assert history[0]["queries"] == obj.total_queries // 4 == steps * obj.queries


def test_cli_zo_run_logs_queries_per_step_and_resumes_after_a_kill(tmp_path):
    from sparta.cli import main
    from tests.killed_run import SPARTA, kill_after_first_epoch_and_resume, same_weights

    flags = [
        "train",
        *("--dataset", "digits", "--model", "lenet300", "--width", "0.1", "--epochs", "3"),
        *("--batch-size", "32", "--train-subset", "120", "--val-fraction", "0.2"),
        *("--test-subset", "50", "--zo", "cge", "--zo-grasp-q", "8", "--zo-reshuffle", "1"),
        *("--out", str(tmp_path)),
    ]
    assert main(["--quiet", *flags, "--name", "full"]) == 0
    rows = [json.loads(r) for r in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "queries" in r and "train_loss" not in r]
    epochs = [r for r in rows if "train_loss" in r]
    assert len(steps) == 3 * 3  # 96 training examples / 32
    assert steps[0]["queries"] - steps[1]["queries"] == 2 * 9  # ZO-GraSP at the first step
    assert sum(r["queries"] for r in steps) == epochs[-1]["total_queries"]
    config = (tmp_path / "full" / "config.yaml").read_text()
    assert "zo: cge" in config and "zo_sparsity: 0.9" in config
    rows = kill_after_first_epoch_and_resume([*SPARTA, *flags], tmp_path, "killed")
    assert same_weights(tmp_path / "full", tmp_path / "killed")
    assert [r["epoch"] for r in rows if "train_loss" in r] == [1, 2, 3]
    assert len([r for r in rows if "train_loss" not in r]) == 9


@pytest.mark.parametrize(
    "bad,needle",
    [
        (["--zo", "sgd"], "zo='sgd'"),
        (["--zo-mu", "0.1"], "zo_mu=0.1 is not allowed without --zo"),
        (["--zo", "cge", "--zo-sparsity", "1.5"], "zo_sparsity=1.5"),
        (["--zo", "cge", "--adv", "pgd-at"], "--zo cge sets the training objective"),
    ],
)
def test_cli_rejects_bad_zo_values_with_one_line(bad, needle, tmp_path, capsys):
    from sparta.cli import main

    code = main(["train", "--dataset", "digits", "--out", str(tmp_path), *bad])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_two_gloo_processes_give_the_one_process_weights_exactly(tmp_path):
    args = [
        "--quiet",
        "train",
        *("--dataset", "digits", "--model", "lenet300", "--width", "0.1", "--epochs", "1"),
        *("--batch-size", "50", "--train-subset", "150", "--val-fraction", "0"),
        *("--best-metric", "", "--zo", "cge", "--zo-grasp-q", "8", "--zo-batch", "16"),
        *("--out", str(tmp_path)),
    ]
    from sparta.cli import main

    assert main([*args, "--name", "single"]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
        + [f"--master_port={port}", "-m", "sparta", *args, "--name", "two"],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "single" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    # every coordinate is estimated by one rank with the same batched call as one process,
    # the other rank adds an exact 0: the weights are bit-identical
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    init = models.create("lenet300", dataset=sdata.info("digits"), width=0.1).state_dict()
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-3


def test_batched_rge_equals_one_forward_per_direction():
    data = synthetic()
    model = small_conv(data.info)
    x, y = data.x[:8].double(), data.y[:8]
    a = DeepZero("rge", q=6, sparsity=0.5, ratios="uniform", batch=4, seed=3)
    a.step(model, x, y, step=2)  # the sequential model: vmap over the perturbed copies
    ga = torch.cat([p.grad.flatten() for p in model.parameters()])
    wrapped = Wrapped(model)
    b = DeepZero("rge", q=6, sparsity=0.5, ratios="uniform", batch=4, seed=3)
    b.step(wrapped, x, y, step=2)  # not sequential: one functional forward per direction
    gb = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert wrapped.calls == 7
    assert torch.allclose(ga, gb, atol=1e-10) and ga.abs().sum() > 0
