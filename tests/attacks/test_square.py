"""Square Attack (Linf): black-box, exact query counts, strength, schedule, errors.

Also holds the helpers the other black-box/transfer tests import: a small MLP trained on
the 8x8 digits, a model whose backward raises, and a model that counts the rows it sees.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from sparta import data
from sparta.attacks import create
from sparta.attacks.square import P_HALVING, eta, p_schedule, square_side
from sparta.train import TrainConfig, Trainer

# --------------------------------------------------------------------------- helpers


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("backward called on a black-box model")


class BackwardRaises(nn.Module):
    """Forward is the wrapped model's; any backward through it raises."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_NoBackward.apply(x))


class Counting(nn.Module):
    """Counts calls and rows (one row = one query of one example)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls, self.rows = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += len(x)
        return self.model(x)


@functools.cache
def digits_model(seed: int = 0, hidden: int = 64) -> nn.Module:
    """A small MLP trained for a few seconds on the digits (about 95% test accuracy)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    cfg = TrainConfig(
        dataset="digits", epochs=6, batch_size=64, lr=0.1, val_fraction=0.0, best_metric=""
    )
    Trainer(model, data.load("digits", "train"), cfg, quiet=True).fit()
    return model.eval()


def digits_batch(n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    test = data.load("digits", "test")
    return test.x[:n], test.y[:n]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def assert_in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0


# --------------------------------------------------------------------------- tests


def test_backward_raises_wrapper_really_raises() -> None:
    model = BackwardRaises(digits_model())
    x = digits_batch(2)[0].requires_grad_(True)
    with pytest.raises(RuntimeError, match="black-box"):
        model(x).sum().backward()


def test_square_fools_trained_model_without_gradients() -> None:
    model = digits_model()
    x, y = digits_batch(100)
    clean = accuracy(model, x, y)
    res = create("square", BackwardRaises(model), eps=0.3, n_queries=300, num_classes=10)(x, y)
    assert clean > 0.85
    assert accuracy(model, res.x_adv, y) < 0.15
    assert_in_ball(res.x_adv, x, 0.3)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)
    assert res.queries is not None and res.queries.dtype == torch.long


def test_square_query_count_is_exact_and_within_budget() -> None:
    counted = Counting(digits_model())
    x, y = digits_batch(60)
    budget = 40
    res = create("square", counted, eps=0.05, n_queries=budget, num_classes=10)(x, y)
    assert int(res.queries.max()) <= budget
    assert int(res.queries.sum()) == counted.rows
    assert int(res.queries.min()) >= 1  # the initial query counts
    # unfooled examples spend the whole budget; fooled ones stop being queried
    assert torch.all(res.queries[~res.success] == budget)
    assert (~res.success).any() and res.success.any()


def test_square_budget_one_is_only_the_stripe_init() -> None:
    counted = Counting(digits_model())
    x, y = digits_batch(20)
    eps = 0.1
    res = create("square", counted, eps=eps, n_queries=1, num_classes=10)(x, y)
    assert torch.all(res.queries == 1) and counted.rows == 20
    # vertical stripes: +-eps, one sign per column, wherever the box does not clip
    delta = res.x_adv - x
    inner = (x >= eps) & (x <= 1 - eps)
    assert torch.allclose(delta[inner].abs(), torch.full_like(delta[inner], eps), atol=1e-6)
    sign = torch.where(inner, delta.sign(), torch.zeros_like(delta))
    col_sign = sign.sum(2, keepdim=True).sign()
    assert torch.all((sign == 0) | (sign == col_sign))


def test_square_l2_stays_in_ball_and_fools() -> None:
    model = digits_model()
    x, y = digits_batch(100)
    counted = Counting(model)
    eps = 2.0
    res = create("square", counted, eps=eps, norm="l2", n_queries=300, num_classes=10)(x, y)
    assert (res.x_adv - x).flatten(1).norm(dim=1).max().item() <= eps + 1e-4
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert accuracy(model, res.x_adv, y) < 0.3
    assert int(res.queries.max()) <= 300 and int(res.queries.sum()) == counted.rows


def test_eta_bump_shape() -> None:
    m = eta(5, False)
    assert m.shape == (5, 5) and torch.isclose(m.norm(), torch.tensor(1.0))
    assert torch.all(m[:2] > 0) and torch.all(m[2:] < 0)  # + on the top half, - below
    assert m[1, 2] == m[:2].max() and m[3, 2] == m[2:].min()  # peaks at the centres
    assert torch.equal(eta(5, True), m.T)


def test_p_schedule_halves_at_rescaled_iterations() -> None:
    assert p_schedule(0, 10000, 0.8) == 0.8
    assert p_schedule(10, 10000, 0.8) == 0.8
    assert p_schedule(11, 10000, 0.8) == 0.4
    assert p_schedule(9000, 10000, 0.8) == 0.8 / 2 ** len(P_HALVING)
    # 1000 queries: iteration 6 is iteration 60 of a 10,000-query run
    assert p_schedule(6, 1000, 0.8) == 0.2
    assert square_side(0.8, 64, 1, 8) == 7
    assert square_side(1e-6, 64, 1, 8) == 1
    assert square_side(1.0, 3 * 32 * 32, 3, 32) == 32
    assert square_side(1e-6, 64, 1, 8, "l2") == 3 and square_side(0.5, 64, 1, 8, "l2") == 7


def test_square_targeted_and_deterministic() -> None:
    model = digits_model()
    x, y = digits_batch(30)
    target = (y + 1) % 10
    atk = create("square", model, eps=0.3, n_queries=200, num_classes=10, seed=3)
    a, b = atk(x, y, target), atk(x, y, target)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    with torch.no_grad():
        assert torch.equal(a.success, model(a.x_adv).argmax(1) == target)
    assert a.success.float().mean() > 0.5


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"eps": 0.1, "n_queries": 0}, "n_queries=0"),
        ({"eps": -0.1}, "eps=-0.1"),
        ({"eps": 0.1, "norm": "l3"}, "l3"),
        ({"eps": 0.1, "loss": "dlr"}, "dlr"),
    ],
)
def test_square_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create("square", digits_model(), **options)


@pytest.mark.parametrize("channels", [1, 3])
def test_square_linf_proposals_always_move_and_stay_in_bounds(channels: int) -> None:
    """Alg. 2's proposal sets one window per example to x +- eps (clipped to the box) and
    keeps every other pixel; one that would leave the point unchanged gets new signs, the
    window kept (with one channel: the other sign, which always moves it)."""
    eps, side = 0.1, 2
    atk = create("square", nn.Flatten(), eps=eps, n_queries=10)
    x = torch.zeros(64, channels, 4, 4)  # all background: half of all signs change nothing
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    x_best = lo.clone()  # every pixel at its lower bound: sign -1 would be a wasted query
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x_new = atk._propose(x, x_best, side, gen, (lo, hi))
        moved = x_new != x_best
        assert moved.flatten(1).any(1).all()  # every proposal differs from the best point
        assert ((x_new == lo) | (x_new == hi)).all()
        # the change lies in one side x side window per example
        rows, cols = moved.any(1).any(2), moved.any(1).any(1)
        assert (rows.sum(1) <= side).all() and (cols.sum(1) <= side).all()
