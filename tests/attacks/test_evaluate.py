"""evaluate(): cumulative ensemble logic, worst case, checks, curve and plot."""

import logging

import pytest
import torch
from torch import nn

import sparta.attacks.apgd  # noqa: F401  (registers apgd-ce, apgd-t)
import sparta.attacks.whitebox  # noqa: F401  (registers pgd, fgsm)
from sparta import data as sdata
from sparta.attacks.base import Attack, AttackResult, names, register_attack
from sparta.attacks.evaluate import (
    RobustReport,
    evaluate,
    resolve_attacks,
    robust_curve,
)
from sparta.report.attacks import plot_robust_curve  # the plot is report's, on real reports
from tests.data.helpers import TORCH_FORMS, torch_form


# ---------------------------------------------------------------- stubs
# Inputs are (1, 2, 2): pixel (0,0) decides the class (2 classes, boundary 0.5); pixels
# (0,1), (1,0), (1,1) are tags saying which stub attack may break the example.
class Threshold(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(100.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.w * (x[:, 0, 0, 0] - 0.5)
        return torch.stack([-z, z], 1)


class _Stub(Attack):
    """Pushes tagged examples across the boundary by eps; records the labels it saw."""

    tag = (0, 0)
    seen: list[torch.Tensor] = []

    def perturb(self, x, y, target):
        type(self).seen.append(x.clone())
        tagged = x[:, 0, self.tag[0], self.tag[1]] > 0.5
        step = torch.where(y == 1, -self.eps, self.eps) * tagged
        x_adv = x.clone()
        x_adv[:, 0, 0, 0] += step
        pred = self.model(x_adv).argmax(1)
        return AttackResult(x_adv, pred != y, torch.zeros(len(y)))


def _stub(name, tag, black_box=False):
    if name in names():
        return sparta.attacks.base._ATTACKS[name]
    cls = type(name, (_Stub,), {"tag": tag, "seen": [], "black_box": black_box})
    return register_attack(name)(cls)


STUB_A = _stub("t-eval-a", (0, 1))
STUB_B = _stub("t-eval-b", (1, 0))
STUB_C = _stub("t-eval-bb", (1, 1), black_box=True)


@pytest.fixture(autouse=True, scope="module")
def _unregister_stubs():
    """The stubs leave the global attack registry when this module's tests are done."""
    yield
    for stub in (STUB_A, STUB_B, STUB_C):
        sparta.attacks.base.ATTACKS.remove(stub.name)


def _tagged_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 2, 2, generator=g)
    side = torch.rand(n, generator=g) > 0.5
    x[:, 0, 0, 0] = torch.where(side, 0.55, 0.45)  # 0.05 from the boundary
    y = side.long()
    y[:6] = 1 - y[:6]  # six misclassified without attack
    return x, y


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than they save
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _reset():
    for cls in (STUB_A, STUB_B, STUB_C):
        cls.seen = []


def test_each_attack_only_sees_still_robust_examples_and_worst_case_is_and():
    x, y = _tagged_data()
    model = Threshold().eval()
    rep = evaluate(model, (x, y), 0.1, attacks=["t-eval-a", "t-eval-b"], batch_size=16)
    clean = (x[:, 0, 0, 0] > 0.5).long() == y
    tag_a, tag_b = x[:, 0, 0, 1] > 0.5, x[:, 0, 1, 0] > 0.5
    assert torch.equal(rep.clean, clean)
    assert rep.clean_acc == pytest.approx(clean.float().mean().item())
    # A saw exactly the clean-correct examples, B only those A left robust
    seen_a, seen_b = torch.cat(STUB_A.seen), torch.cat(STUB_B.seen)
    assert torch.equal(seen_a, x[clean])
    assert torch.equal(seen_b, x[clean & ~tag_a])
    expected = clean & ~tag_a & ~tag_b
    assert torch.equal(rep.robust, expected)
    assert rep.robust_acc == pytest.approx(expected.float().mean().item())
    assert rep.robust_acc_by_attack["t-eval-a"] == pytest.approx((clean & ~tag_a).float().mean())
    assert rep.robust_acc_by_attack["t-eval-b"] == rep.robust_acc
    assert torch.equal(rep.broken_by == 0, clean & tag_a)
    assert torch.equal(rep.broken_by == 1, clean & ~tag_a & tag_b)
    assert rep.robust_acc <= rep.clean_acc
    assert set(rep.attack_time_s) == {"t-eval-a", "t-eval-b"}
    assert rep.warnings == []
    s = rep.summary()
    assert {"clean_acc", "robust_acc", "robust_acc_t_eval_a", "robust_acc_t_eval_b"} <= set(s)
    assert s["n"] == 64 and s["eps"] == 0.1 and s["norm"] == "linf" and s["warnings"] == []


def test_black_box_beating_white_box_warns(caplog):
    x, y = _tagged_data()
    with caplog.at_level(logging.WARNING):
        rep = evaluate(Threshold().eval(), (x, y), 0.1, attacks=["t-eval-a", "t-eval-bb"])
    assert any("black-box attack t-eval-bb broke" in w for w in rep.warnings)
    assert "t-eval-bb" in caplog.text
    # run first, the black-box attack has nothing to be compared with: no warning
    rep = evaluate(Threshold().eval(), (x, y), 0.1, attacks=["t-eval-bb", "t-eval-a"])
    assert not any("black-box" in w for w in rep.warnings)


def test_eps_zero_and_n_subset():
    x, y = _tagged_data()
    rep = evaluate(Threshold().eval(), (x, y), 0.0, attacks=["t-eval-a"], n=20)
    assert rep.n == 20 and rep.robust_acc == rep.clean_acc


# ---------------------------------------------------------------- checks
def _mlp(extra=()):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 16), *extra, nn.Linear(16, 2))


@pytest.mark.parametrize(
    "model,needle",
    [
        (_mlp([nn.Dropout(0.5)]).train(), "train mode and its outputs differ"),
        (nn.Sequential(_mlp(), nn.Softmax(dim=1)).eval(), "look like probabilities"),
        (nn.Sequential(_mlp(), nn.ReLU(), nn.Hardtanh(-10, -5)).eval(), "zero input gradient"),
    ],
)
def test_gradient_masking_checks_warn(model, needle):
    x, y = _tagged_data()
    was_training = model.training
    rep = evaluate(model, (x, y), 0.1, attacks=["t-eval-a"])
    assert any(needle in w for w in rep.warnings), rep.warnings
    assert model.training == was_training  # the caller's mode is restored


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, x):
        return self.net(x) + torch.randn(len(x), 2)


def test_random_output_warns():
    x, y = _tagged_data()
    rep = evaluate(Noisy().eval(), (x, y), 0.1, attacks=["t-eval-a"])
    assert any("differs between two forward passes" in w for w in rep.warnings)


# ---------------------------------------------------------------- suites and errors
def test_suites_resolve():
    fast = resolve_attacks("fast", num_classes=4, steps=5)
    assert all(o.get("steps") == 5 for _, o in fast)
    assert dict(fast)["apgd-t"]["n_target_classes"] == 3  # at most num_classes - 1
    pytest.importorskip("sparta.attacks.fab")
    pytest.importorskip("sparta.attacks.square")
    std = resolve_attacks("standard", num_classes=10, queries=100)
    assert [n for n, _ in std] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert dict(std)["square"]["n_queries"] == 100 and dict(std)["apgd-t"]["n_target_classes"] == 9
    # custom names resolve through the registry: any case, `_` for `-`, aliases
    assert [n for n, _ in resolve_attacks("custom", ["PGD", "APGD_CE"])] == ["pgd", "apgd-ce"]


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"eps": -0.1}, "eps=-0.1"),
        ({"norm": "l1"}, "norm 'l1'"),
        ({"attacks": ["nope"]}, "attack 'nope' is not known"),
        ({"suite": "strong"}, "suite 'strong'"),
        ({"suite": "custom"}, "needs a list of attacks"),
        ({"attacks": ["t-eval-a"], "suite": "fast"}, "use suite 'custom'"),
        ({"queries": 0, "attacks": ["t-eval-a"]}, "queries=0"),
        ({"n": 0, "attacks": ["t-eval-a"]}, "n=0"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, needle):
    x, y = _tagged_data()
    kwargs = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        evaluate(Threshold().eval(), (x, y), **kwargs)


# ---------------------------------------------------------------- with the real PGD
@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train = sdata.load("synthetic", "train", n=512, shape=(1, 6, 6), num_classes=4, seed=0)
    test = sdata.load("synthetic", "test", n=128, shape=(1, 6, 6), num_classes=4, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(15):
        for xb, yb in train.batches(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval(), test


def test_robust_curve_non_increasing_and_plot(trained, tmp_path):
    model, test = trained
    reps = robust_curve(model, test, [0.3, 0.0, 0.05, 0.15], attacks=[("pgd", {"steps": 10})])
    assert [r.eps for r in reps] == [0.0, 0.05, 0.15, 0.3]
    accs = [r.robust_acc for r in reps]
    assert reps[0].robust_acc == reps[0].clean_acc > 0.8
    assert all(a >= b for a, b in zip(accs, accs[1:], strict=False))
    assert accs[-1] < 0.05  # a large eps breaks almost everything
    assert all(isinstance(r, RobustReport) and r.robust_acc <= r.clean_acc for r in reps)
    png = plot_robust_curve(reps, tmp_path / "curve.png")
    assert png.stat().st_size > 5000


@pytest.mark.parametrize("kind", TORCH_FORMS)
def test_evaluate_takes_a_torch_dataset_or_loader(trained, kind):
    model, test = trained
    ref = evaluate(model, test, 0.1, attacks=["fgsm"], n=40, checks=False)
    got = evaluate(model, torch_form(test, kind), 0.1, attacks=["fgsm"], n=40, checks=False)
    assert got.n == 40
    assert torch.equal(got.robust, ref.robust) and got.clean_acc == ref.clean_acc
