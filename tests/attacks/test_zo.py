"""Zeroth-order estimators (RGE, CGE) and the ZO attacks built on them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sparta.attacks import create
from sparta.attacks.zo import cge, rge
from tests.attacks.test_square import (
    BackwardRaises,
    Counting,
    accuracy,
    assert_in_ball,
    digits_batch,
    digits_model,
)


def smooth(z: torch.Tensor) -> torch.Tensor:
    """A smooth test function on the last dim, applied to any leading dims."""
    return torch.sin(z).sum(-1) + 0.5 * (z**2).sum(-1) + z[..., 0] * z[..., 1]


def smooth_grad(x: torch.Tensor) -> torch.Tensor:
    g = torch.cos(x) + x
    g[:, 0] += x[:, 1]
    g[:, 1] += x[:, 0]
    return g


def quadratic(d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    return m @ m.T + torch.eye(d, dtype=torch.float64), torch.randn(d, generator=gen).double()


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def test_cge_is_forward_finite_differences_exactly() -> None:
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu = 1e-3
    expected = torch.zeros_like(x)
    for i in range(10):
        e = torch.zeros(10, dtype=torch.float64)
        e[i] = 1.0
        expected[:, i] = (smooth(x + mu * e) - smooth(x)) / mu
    assert torch.equal(cge(smooth, x, mu), expected)
    assert torch.equal(cge(smooth, x, mu, batch=3), expected)  # chunked: same numbers
    # a subset of coordinates (shared or per row): exact there, zero elsewhere
    sub = cge(smooth, x, mu, coords=torch.tensor([2, 7]))
    assert torch.equal(sub[:, [2, 7]], expected[:, [2, 7]])
    assert torch.all(sub[:, [0, 1, 3, 4, 5, 6, 8, 9]] == 0)
    per_row = torch.tensor([[0, 1], [5, 9], [3, 4]])
    sub = cge(smooth, x, mu, coords=per_row)
    assert torch.equal(sub.gather(1, per_row), expected.gather(1, per_row))
    assert int((sub != 0).sum()) == 6


def test_cge_approximates_the_true_gradient() -> None:
    x = torch.randn(4, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = cge(smooth, x, 1e-5)
    assert cosine(g, smooth_grad(x)).min() > 0.99
    assert torch.allclose(g, smooth_grad(x), atol=1e-3)


def test_estimators_query_counts() -> None:
    calls: list[int] = []

    def f(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0] * z.shape[1])
        return smooth(z)

    x = torch.randn(5, 12)
    rge(f, x, 7, 1e-2, torch.Generator().manual_seed(0), batch=3)
    assert sum(calls) == 5 * (7 + 1) and len(calls) == 1 + 3  # f(x) + ceil(7 / 3) calls
    calls.clear()
    cge(f, x, 1e-2, fx=smooth(x))
    assert sum(calls) == 5 * 12 and len(calls) == 1


def test_rge_cosine_grows_with_q_and_stays_far_below_cge() -> None:
    d = 100
    a, b = quadratic(d)

    def f(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((z @ a) * z).sum(-1) + z @ b

    x = torch.randn(20, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    true = x @ a + b
    cos = {}
    for q in (10, 100, 1000):
        est = rge(f, x, q, 1e-4, torch.Generator().manual_seed(q))
        cos[q] = cosine(est, true).mean().item()
    assert cos[10] < cos[100] < cos[1000]
    assert cos[1000] > 0.85
    cge_cos = cosine(cge(f, x, 1e-4), true).min().item()  # d = 100 queries, as rge at q=100
    assert cge_cos > 0.99 and cos[100] < 0.85
    gauss = rge(f, x, 1000, 1e-4, torch.Generator().manual_seed(0), distribution="gaussian")
    assert cosine(gauss, true).mean() > 0.85


@pytest.mark.parametrize(("name", "opts"), [("zo-rge", {"q": 10}), ("zo-cge", {})])
def test_zo_attacks_fool_trained_model_without_gradients(name: str, opts: dict) -> None:
    model = digits_model()
    x, y = digits_batch(100)
    res = create(name, BackwardRaises(model), eps=0.3, n_queries=400, num_classes=10, **opts)(x, y)
    assert accuracy(model, x, y) > 0.85
    assert accuracy(model, res.x_adv, y) < 0.2
    assert_in_ball(res.x_adv, x, 0.3)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


@pytest.mark.parametrize(
    ("name", "opts", "cost"),
    [("zo-rge", {"q": 6}, 6), ("zo-cge", {"n_coords": 9}, 9), ("zo-cge", {}, 64)],
)
def test_zo_query_count_is_exact_and_within_budget(name: str, opts: dict, cost: int) -> None:
    counted = Counting(digits_model())
    x, y = digits_batch(50)
    budget = 150
    res = create(name, counted, eps=0.03, n_queries=budget, num_classes=10, max_batch=128, **opts)(
        x, y
    )
    steps = (budget - 1) // (cost + 1)
    assert int(res.queries.max()) <= budget
    assert int(res.queries.sum()) == counted.rows
    assert torch.all(res.queries[~res.success] == 1 + steps * (cost + 1))
    assert (~res.success).any()


def test_zo_tiny_budget_only_evaluates() -> None:
    counted = Counting(digits_model())
    x, y = digits_batch(10)
    res = create("zo-rge", counted, eps=0.1, n_queries=5, q=10, num_classes=10)(x, y)
    assert torch.all(res.queries == 1) and counted.rows == 10
    assert torch.equal(res.x_adv, x)


def test_zo_l2_and_targeted() -> None:
    model = digits_model()
    x, y = digits_batch(20)
    res = create("zo-rge", model, eps=1.0, norm="l2", n_queries=200, num_classes=10)(x, y)
    assert (res.x_adv - x).flatten(1).norm(dim=1).max() <= 1.0 + 1e-5
    target = (y + 1) % 10
    res = create("zo-cge", model, eps=0.3, n_queries=300, num_classes=10)(x, y, target)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) == target)
    assert res.success.any()


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("zo-rge", {"eps": 0.1, "n_queries": 0}, "n_queries=0"),
        ("zo-cge", {"eps": 0.1, "n_queries": -3}, "n_queries=-3"),
        ("zo-rge", {"eps": -1.0}, "eps=-1.0"),
        ("zo-cge", {"eps": 0.1, "norm": "l1"}, "l1"),
        ("zo-rge", {"eps": 0.1, "q": 0}, "q=0"),
        ("zo-rge", {"eps": 0.1, "distribution": "cauchy"}, "cauchy"),
        ("zo-rge", {"eps": 0.1, "mu": 0.0}, "mu=0.0"),
        ("zo-cge", {"eps": 0.1, "n_coords": 0}, "n_coords=0"),
    ],
)
def test_zo_bad_options(name: str, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create(name, digits_model(), **options)
