"""Branch and bound: agrees with an exhaustive grid on 2-D inputs; counterexamples are real."""

import pytest
import torch
from torch import nn

from sparta.certify import bounds, verified_accuracy, verify
from sparta.experiments.verify import pgd_falsifier
from tests.data.helpers import TORCH_FORMS, torch_form

from .helpers import small_model

STATUS_KEYS = ("n", "verified", "falsified", "unknown", "wrong")

EPS = 0.35


def tiny_net(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3)).eval()
    x = torch.rand(1, 2)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def grid_min_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    axis = torch.linspace(-eps, eps, 601)
    pts = (torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).view(-1, 2) + x).clamp(0, 1)
    with torch.no_grad():
        z = model(pts)
    margins = z[:, y] - z
    margins[:, y] = float("inf")
    return float(margins.min())


@pytest.mark.parametrize("bound", ["beta-crown", "crown"])
@pytest.mark.parametrize("seed", [4, 8, 21, 23, 41])
def test_bab_agrees_with_exhaustive_grid(seed, bound):
    model, x, y = tiny_net(seed)
    res = verify(model, x, y, EPS, method="bab", timeout=120, bab_bound=bound)
    truth = grid_min_margin(model, x, y, EPS)
    status = res.status[0]
    if status == "verified":
        assert truth > -1e-6
    else:
        assert status == "falsified" and truth < 1e-3
        x_cex = res.counterexamples[0]
        assert (x_cex - x).abs().max() <= EPS + 1e-6 and (x_cex >= 0).all() and (x_cex <= 1).all()
        assert model(x_cex).argmax(1) != y
    if seed in (23, 41):  # CROWN alone cannot decide these: branching (or alpha-CROWN) does
        assert not bounds(model, x, EPS, method="crown", y=y).verified[0]
        assert status == "verified" and (res.branches[0] > 0 or bound != "crown")


def test_beta_crown_needs_fewer_branches_than_crown():
    """On the grid problems that need branching, beta-CROWN sub-problem bounds close them in no
    more branches than plain CROWN (they are never looser than the parent's alpha-CROWN bound)."""
    fewer = 0
    for seed in (23, 41, 8):
        model, x, y = tiny_net(seed)
        found = {
            b: verify(model, x, y, EPS, method="bab", timeout=120, bab_bound=b)
            for b in ("crown", "beta-crown")
        }
        assert found["crown"].status == found["beta-crown"].status
        assert found["beta-crown"].branches[0] <= found["crown"].branches[0]
        fewer += int(found["beta-crown"].branches[0] < found["crown"].branches[0])
    assert fewer >= 1


def test_verify_passes_the_branching_rule_to_bab():
    model, x, y = tiny_net(23)
    found = {
        b: verify(model, x, y, EPS, method="bab", timeout=120, bab_branching=b)
        for b in ("intercept", "fsb")
    }
    assert found["fsb"].status == found["intercept"].status
    # the two rules split differently, so the searches differ in size
    assert found["fsb"].branches[0] != found["intercept"].branches[0]


def test_bab_branching_is_checked():
    model, x, y = tiny_net(4)
    with pytest.raises(ValueError, match="bab_branching='random'.*intercept"):
        verify(model, x, y, EPS, method="bab", bab_branching="random")


def test_bab_bound_is_checked():
    model, x, y = tiny_net(4)
    with pytest.raises(ValueError, match="bab_bound='lp'.*beta-crown"):
        verify(model, x, y, EPS, method="bab", bab_bound="lp")


def test_unknown_at_branch_limit():
    model, x, y = tiny_net(23)
    res = verify(model, x, y, EPS, method="bab", timeout=120, max_branches=2)
    assert res.status == ["unknown"] and int(res.branches[0]) == 2


@pytest.mark.parametrize("pgd_steps", [0, 10])  # found by BaB's worst points, then by PGD
def test_falsified_counterexamples_are_in_the_ball_and_misclassified(pgd_steps):
    model, ds = small_model("lenet300", (1, 8, 8), 0.1)
    x, eps = ds.x[:12], 0.3
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 4  # two clean mistakes
    falsifier = pgd_falsifier(pgd_steps)  # None at 0 steps: no falsifier
    res = verify(model, x, y, eps, method="bab", timeout=0.5, falsifier=falsifier)
    assert res.status[:2] == ["wrong", "wrong"] and "wrong" not in res.status[2:]
    assert res.counterexamples
    for i, x_cex in res.counterexamples.items():
        assert res.status[i] == "falsified"
        assert (x_cex - x[i]).abs().max() <= eps + 1e-6
        assert (x_cex >= 0).all() and (x_cex <= 1).all()
        assert model(x_cex).argmax(1) != y[i]


def test_verified_accuracy_counts():
    model, ds = small_model("lenet5", (1, 8, 8), 0.25)
    out = verified_accuracy(model, ds, 0.01, method="crown", n=20, batch_size=8)
    assert out["n"] == 20
    assert sum(out[k] for k in ("verified", "falsified", "unknown", "wrong")) == 20
    assert out["verified_acc"] == out["verified"] / 20 <= out["clean_acc"]
    with pytest.raises(ValueError, match="method"):
        verified_accuracy(model, ds, 0.01, method="lp", n=2)


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_verified_accuracy_takes_a_torch_dataset_or_loader(kind):
    model, ds = small_model("lenet5", (1, 8, 8), 0.25)
    ref = verified_accuracy(model, ds, 0.01, method="crown", n=12, batch_size=8)
    got = verified_accuracy(model, torch_form(ds, kind), 0.01, method="crown", n=12, batch_size=8)
    assert {k: got[k] for k in STATUS_KEYS} == {k: ref[k] for k in STATUS_KEYS}


def pool_net(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """2 pixels -> 1x1 conv (8 maps) -> ReLU -> MaxPool over the 2 pixels -> 12 -> 3."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 1), nn.ReLU(), nn.MaxPool2d((1, 2)), nn.Flatten(),
        nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 3),
    ).eval()  # fmt: skip
    x = torch.rand(1, 1, 1, 2)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("bound", ["beta-crown", "crown"])
@pytest.mark.parametrize("seed", [4, 26, 28])
def test_bab_lp_finish_on_maxpool_nets_is_sound_and_closes_leaves(seed, bound, monkeypatch):
    from sparta.certify.bab import BaB

    model, x, y = pool_net(seed)
    leaves = []
    leaf = BaB._leaf

    def spy(self, *args):
        found = leaf(self, *args)
        leaves.append(found[0])
        return found

    monkeypatch.setattr(BaB, "_leaf", spy)
    res = verify(model, x, y, EPS, method="bab", timeout=120, bab_bound=bound)
    truth = grid_min_margin(lambda p: model(p.view(-1, 1, 1, 2)), x.view(1, 2), y, EPS)
    assert not bounds(model, x, EPS, method="crown", y=y).verified[0]
    if truth < -1e-3:  # a counterexample exists: never "verified"
        assert res.status[0] in ("falsified", "unknown")
    if res.status[0] == "falsified":
        assert model(res.counterexamples[0]).argmax(1) != y
    if seed == 28 and bound == "crown":  # margin 0.004 > 0: leaves closed by the LP (with
        # beta-CROWN the warm-started bounds close those sub-problems before they are leaves)
        assert truth > 0 and "verified" in leaves


@pytest.mark.parametrize("branching", ["fsb", "intercept"])
@pytest.mark.parametrize("bound", ["beta-crown", "alpha-crown"])
def test_bab_branchings_agree_with_the_grid(bound, branching):
    """Every branching heuristic and warm-started alpha/beta bound closes the two grid problems
    CROWN cannot decide (both verified: true margins 0.000 and 0.029)."""
    from sparta.certify.bab import BaB
    from sparta.certify.graph import trace

    for seed in (23, 41):
        model, x, y = tiny_net(seed)
        assert grid_min_margin(model, x, y, EPS) > -1e-6
        bab = BaB(trace(model, (2,), "crown"), EPS, bound=bound, branching=branching)
        res = bab.run(x, int(y), timeout=1e9, max_branches=5000)
        assert res.status == "verified", (seed, res)


def test_fsb_candidates_are_the_top_scores_of_each_layer():
    """FSB's candidates: the top-k BaBSR scores and the top-k (most negative) intercept scores
    over all layers, mapped back to (layer, neuron); stable neurons (score -1) never."""
    from sparta.certify.bab import _candidates, _Domain

    score = {"a": torch.tensor([0.5, -1.0, 0.1]), "b": torch.tensor([0.9, 0.2])}
    icp = {"a": torch.tensor([-0.1, 0.0, -0.7]), "b": torch.tensor([0.0, -0.3])}
    d = _Domain(torch.zeros(1), {}, score, icp, {}, {})
    assert _candidates(d, 2) == [("b", 0), ("a", 0), ("a", 2), ("b", 1)]
    assert _candidates(d, 1) == [("b", 0), ("a", 2)]
    assert _candidates(d, 1, "intercept") == [("a", 2)]
    assert _candidates(d, 2, "babsr") == [("b", 0), ("a", 0)]
    stable = {k: torch.full_like(v, -1.0) for k, v in score.items()}
    assert _candidates(_Domain(torch.zeros(1), {}, stable, icp, {}, {}), 3) == []


def test_branching_is_checked():
    from sparta.certify.bab import BaB
    from sparta.certify.graph import trace

    model, _, _ = tiny_net(4)
    with pytest.raises(ValueError, match="branching='random'.*fsb"):
        BaB(trace(model, (2,), "crown"), EPS, branching="random")
