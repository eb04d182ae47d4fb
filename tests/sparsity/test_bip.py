"""BiP (2210.04092): the implicit gradient against finite differences, the loop's masks,
channel structure with compact export, the CLI and resume after a kill."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import sparta
from sparta import data as sdata
from sparta import models
from sparta.cli import main
from sparta.sparsity.bip import (
    BiPConfig,
    ChannelScoredModel,
    bip,
    implicit_gradient,
    mask_hypergradient,
    soft_masks,
    upper_gradients,
)
from sparta.sparsity.channels import masks_for
from sparta.sparsity.export import compact
from sparta.sparsity.masks import masks_of
from sparta.sparsity.scores import ScoredModel
from sparta.train import TrainConfig
from tests.killed_run import SPARTA, kill_after_first_epoch_and_resume, same_weights

QUICK = [
    "--dataset", "digits", "--model", "lenet300", "--width", "0.32", "--batch-size", "64",
    "--lr", "0.05", "--train-subset", "256", "--test-subset", "100",
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ the implicit gradient
def _upper_objective(m: torch.Tensor, A: torch.Tensor, b: torch.Tensor, gamma: float):
    """l(m ⊙ θ*(m)) for l(z) = z'Az/2 + b'z, with θ*(m) = argmin l(m ⊙ θ) + γ/2 |θ|², solved
    exactly: (D A D + γ I) θ = -D b with D = diag(m). Returns (value, θ*)."""
    D = torch.diag(m)
    theta = torch.linalg.solve(D @ A @ D + gamma * torch.eye(len(m), dtype=m.dtype), -D @ b)
    z = m * theta
    return 0.5 * z @ A @ z + b @ z, theta


def _finite_difference(m, A, b, gamma, h=1e-6):
    out = torch.zeros_like(m)
    for i in range(len(m)):
        e = torch.zeros_like(m)
        e[i] = h
        out[i] = (
            _upper_objective(m + e, A, b, gamma)[0] - _upper_objective(m - e, A, b, gamma)[0]
        ) / (2 * h)
    return out


def test_implicit_gradient_is_exact_for_a_linear_loss_hand_computed():
    # l(z) = c'z (zero Hessian: the paper's assumption holds exactly). By hand:
    # θ*(m) = -m c / γ, l(m ⊙ θ*) = -Σ m_i² c_i² / γ, so dl/dm = -2 m c² / γ; the explicit
    # term θ ⊙ ∇_z l = -m c² / γ is only half of it, the implicit one gives the other half.
    c = torch.tensor([0.5, -2.0], dtype=torch.float64)
    m = torch.tensor([0.8, 0.3], dtype=torch.float64)
    gamma = 2.0
    A = torch.zeros(2, 2, dtype=torch.float64)
    _, theta = _upper_objective(m, A, c, gamma)
    assert torch.allclose(theta, -m * c / gamma)
    hand = -2 * m * c**2 / gamma  # [-0.2, -1.2]
    assert torch.allclose(hand, torch.tensor([-0.2, -1.2], dtype=torch.float64))
    got = mask_hypergradient(theta, m, c, gamma)
    assert torch.allclose(got, hand, atol=1e-12)
    assert torch.allclose(_finite_difference(m, A, c, gamma), hand, atol=1e-8)
    ig = implicit_gradient(c, m * c, gamma)
    assert torch.allclose(ig, -m * c**2 / gamma) and torch.allclose(theta * c + ig, hand)


def test_implicit_gradient_approximates_finite_differences_of_a_quadratic():
    # a 2-parameter quadratic with curvature: the damped (Hessian-free) IG is accurate when
    # |A| << γ, its error shrinks with |A| / γ, and without it the gradient is far off
    b = torch.tensor([1.0, -0.5], dtype=torch.float64)
    m = torch.tensor([0.9, 0.6], dtype=torch.float64)
    gamma = 1.0
    errors = []
    for scale in (0.05, 0.005):
        A = scale * torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
        _, theta = _upper_objective(m, A, b, gamma)
        grad_z = A @ (m * theta) + b
        fd = _finite_difference(m, A, b, gamma)
        got = mask_hypergradient(theta, m, grad_z, gamma)
        explicit_only = theta * grad_z
        ig = implicit_gradient(grad_z, m * grad_z, gamma)
        assert (got - fd).abs().max() < 0.25 * ig.abs().max()
        assert (explicit_only - fd).abs().max() > 0.5 * ig.abs().max()
        errors.append(float((got - fd).abs().max()))
    assert errors[1] < errors[0] / 5


def test_upper_gradients_reach_the_scores_straight_through_hand_computed():
    # Linear(2 -> 1) without bias, w = [0.2, 0.7], scores |w| at 50%: mask [0, 1]. With the
    # loss l = out = z · x and x = [1, 2], ∇_z l = x; the score gradient is
    # θ ⊙ x - (1/γ) x ⊙ m ⊙ x = [0.2, 1.4] - [0, 4] / 2 = [0.2, -0.6]
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.2, 0.7]]))
    scored = ScoredModel(lin, 0.5, init="abs", train_weights=True)
    assert scored.masks()["weight"].tolist() == [[False, True]]

    def objective(model, x, y):
        out = model(x)
        return out.sum(), out

    upper_gradients(scored, objective, torch.tensor([[1.0, 2.0]]), torch.tensor([0]), gamma=2.0)
    grad = scored.score_of("weight").grad
    assert torch.allclose(grad, torch.tensor([[0.2, -0.6]]))
    assert lin.weight.grad is None  # the upper level moves only the scores


def test_channel_soft_masks_equal_the_hard_ones_and_carry_gradients():
    torch.manual_seed(0)
    model = models.create("lenet300", dataset="digits", width=0.1)
    scored = ChannelScoredModel(model, 0.5, scope="uniform")
    soft, hard = soft_masks(scored), scored.masks()
    assert set(soft) == set(hard) and all(torch.equal(soft[n].bool(), hard[n]) for n in hard)
    sum(m.sum() for m in soft.values()).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in scored.scores)
    ones = [torch.ones(g.size, dtype=torch.bool) for g in scored.groups]
    assert all(m.all() for m in masks_for(model, scored.groups, ones).values())


# ------------------------------------------------------------------ the loop
def _digits():
    train = sdata.load("digits", "train").take(400, seed=0)
    test = sdata.load("digits", "test").take(200, seed=0)
    return train, test


def _trained(seed: int = 0) -> nn.Module:
    train, _ = _digits()
    torch.manual_seed(seed)
    model = models.create("lenet300", dataset=train.info, width=0.32)
    sparta.train.Trainer(
        model, train, TrainConfig(epochs=2, lr=0.1, batch_size=64), quiet=True
    ).fit()
    return model


@pytest.mark.parametrize("scope", ["global", "uniform"])
def test_bip_reaches_the_exact_sparsity_and_pruned_weights_are_zero(scope):
    train, _ = _digits()
    model = _trained()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(epochs=2, lr=0.02, batch_size=64)
    handle = bip(model, 0.9, train, config=cfg, scope=scope, score_lr=0.5, quiet=True)
    masks = masks_of(model)
    assert set(masks) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * total) or scope == "uniform"
    if scope == "uniform":
        for m in masks.values():
            assert int(m.sum()) == round(0.1 * m.numel())
    for name, p in model.named_parameters():
        if name in masks:
            assert (p[~masks[name]] == 0).all()
            assert not torch.equal(p[masks[name]], before[name][masks[name]])  # trained
    assert handle.sparsity() == pytest.approx(1 - sum(int(m.sum()) for m in masks.values()) / total)
    # the upper level moved the mask away from one-shot magnitude pruning's
    assert [r["epoch"] for r in handle.history] == [1, 2] and handle.history[-1]["mask_change"] > 0


def test_bip_channel_masks_compact_to_a_smaller_model_with_the_same_outputs():
    train, test = _digits()
    model = _trained()
    handle = bip(model, 0.5, train, config=TrainConfig(epochs=1, lr=0.02, batch_size=64),
                 structure="channel", scope="uniform", quiet=True)  # fmt: skip
    assert handle.channel_sparsity() == pytest.approx(0.5, abs=0.01)
    small = compact(model)
    assert sum(p.numel() for p in small.parameters()) < 0.6 * sum(
        p.numel() for p in model.parameters()
    )
    with torch.no_grad():
        assert torch.allclose(model.eval()(test.x[:32]), small.eval()(test.x[:32]), atol=1e-5)


def test_bip_refuses_a_model_that_already_has_masks():
    model = models.create("lenet300", dataset="digits", width=0.1)
    sparta.sparsity.prune(model, "magnitude", 0.5)
    with pytest.raises(ValueError, match="already carries"):
        bip(model, 0.9, _digits()[0], config=TrainConfig(epochs=1))


@pytest.mark.parametrize(
    "values,needle",
    [
        ({"sparsity": 1.0}, "sparsity=1.0"),
        ({"structure": "nm:2:4"}, "structure='nm:2:4'"),
        ({"scope": "erk", "structure": "channel"}, "scope='erk'"),
        ({"ig_gamma": 0.0}, "ig_gamma=0.0"),
        ({"lower_steps": 0}, "lower_steps=0"),
        ({"score_init": "magic"}, "score_init='magic'"),
    ],
)
def test_bad_options_name_the_value(values, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        BiPConfig(**values)


# ------------------------------------------------------------------ the command
def test_cli_bip_from_a_checkpoint(tmp_path, capsys):
    assert (
        main(["--quiet", "train", *QUICK, "--epochs", "1", "--out", str(tmp_path), "--name", "d"])
        == 0
    )
    args = ["--quiet", "bip", "--ckpt", str(tmp_path / "d"), "--sparsity", "0.8", "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path), "--name", "b"]) == 0
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert s["sparsity"] == pytest.approx(0.8, abs=1e-4) and 0 <= s["test_acc"] <= 1
    assert "fc1.weight" in (tmp_path / "b" / "sparsity.txt").read_text()
    model = sparta.load(tmp_path / "b")  # masks travel in the checkpoint
    assert set(masks_of(model)) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert "run:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--ig-gamma", "-1"], "ig_gamma=-1.0"),
        (["--epochs", "0"], "epochs=0"),
        (["--structure", "block:4"], "structure"),
        (["--scope", "sideways"], "scope='sideways'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_no_folder(flags, needle, tmp_path, capsys):
    assert main(["bip", *QUICK, "--epochs", "1", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_bip_resumes_after_a_kill_bit_exactly(tmp_path):
    args = ["bip", *QUICK, "--epochs", "3", "--sparsity", "0.8", "--out", str(tmp_path)]
    assert main(["--quiet", *args, "--name", "full"]) == 0  # uninterrupted, in this process
    rows = kill_after_first_epoch_and_resume([*SPARTA, *args], tmp_path, "cut")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert same_weights(tmp_path / "full", tmp_path / "cut")  # weights, masks: bit-identical
    full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["mask_change"] for r in full[1:]] == [r["mask_change"] for r in rows[1:]]
