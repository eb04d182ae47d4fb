"""Properties every attack must have (hypothesis over random models and inputs), and the
closed-form minimal adversarial distance of a linear classifier."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparta.attacks import base
from tests.attacks.helpers import (
    cnn,
    fast_options,
    import_all_attacks,
    linear_problem,
    mlp,
    one_thread,  # noqa: F401  (autouse fixture)
)

NAMES = import_all_attacks()  # every registered attack, A2's and A3's included
MINE = {"fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t"}


def _norms(name):
    """The norms an attack accepts (some black-box attacks are Linf only)."""
    ok = []
    for norm in base.NORMS:
        try:
            base.create(name, mlp(0), eps=0.1, norm=norm, **fast_options(name))
            ok.append(norm)
        except ValueError:
            pass
    return ok


def _distance(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("name", NAMES)
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["mlp", "cnn"]),
    eps=st.floats(0.0, 0.3),
    norm_pick=st.integers(0, 1),
    n=st.integers(1, 4),
    targeted=st.booleans(),
)
def test_output_in_ball_and_box_and_model_state_restored(
    name, seed, kind, eps, norm_pick, n, targeted
):
    norms = _norms(name)
    norm = norms[norm_pick % len(norms)]
    model = mlp(seed, dropout=True) if kind == "mlp" else cnn(seed)
    model.train()
    first = next(model.parameters())
    first.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # pixels on the box's faces
    y = torch.randint(0, 5, (n,), generator=g)
    target = (y + 1 + torch.randint(0, 4, (n,), generator=g)) % 5
    use_target = targeted and name in MINE

    res = base.create(name, model, eps=eps, norm=norm, seed=seed, **fast_options(name))(
        x, y, target=target if use_target else None
    )

    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    assert (_distance(res.x_adv - x, norm) <= eps + 1e-6).all()
    assert res.x_adv.min() >= 0.0 and res.x_adv.max() <= 1.0
    assert res.success.shape == (n,) and res.success.dtype == torch.bool
    assert res.loss.shape == (n,)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), buffers, strict=True))
    # a claimed success is a real one at the returned point
    with torch.no_grad():
        pred = model.eval()(res.x_adv).argmax(1)
    fooled = pred == target if use_target else pred != y
    assert not (res.success & ~fooled).any()
    if res.queries is not None:
        assert res.queries.shape == (n,) and (res.queries >= 0).all()


RATIOS = [0.5, 0.9, 0.95, 1.05, 1.2, 2.0]  # eps / minimal adversarial distance


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.1)])
@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "fab-t"])
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_classifier_succeeds_exactly_above_the_minimal_distance(name, norm, eps, seed):
    """For ``z_1 - z_0 = w.x + b`` the smallest perturbation that flips the label has size
    ``|w.x + b| / ||w||_1`` (Linf) or ``/ ||w||_2`` (L2) while the box does not bind: an
    attack must succeed for eps >= 1.05 x that distance and can never succeed below it."""
    model, x, y, _ = linear_problem(norm, eps, RATIOS, seed)
    opts = {"steps": 20} if name != "fgsm" else {}
    res = base.create(name, model, eps=eps, norm=norm, **opts)(x, y)
    want = torch.tensor([r >= 1.05 for r in RATIOS])
    assert torch.equal(res.success, want), (res.success, want)
