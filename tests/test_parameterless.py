"""Every pillar takes any nn.Module, including one without parameters or buffers: a
black-box wrapper that only answers queries (here around a model it hides from PyTorch)."""

import pytest
import torch
from torch import nn

import sparta.attacks  # noqa: F401  (registers every attack)
from sparta import data as sdata
from sparta.attacks import create, evaluate
from sparta.certify.smoothing import smooth
from sparta.models import device_of, input_shape_of
from sparta.train import evaluate as accuracy
from tests.attacks.helpers import digits_model


class BlackBox(nn.Module):
    """Answers logits for inputs; has no parameters, no buffers and no gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._hidden = [model]  # not a submodule: invisible to .parameters() and .buffers()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._hidden[0](x)


@pytest.fixture(scope="module")
def box():
    model, x, y = digits_model()
    bb = BlackBox(model)
    assert not list(bb.parameters()) and not list(bb.buffers())
    return bb, model, x[:40], y[:40]


def test_device_and_accuracy_of_a_parameterless_model(box):
    bb, model, x, y = box
    assert device_of(bb) == torch.device("cpu")
    with pytest.raises(ValueError, match="input_shape is needed"):
        input_shape_of(bb)
    data = sdata.load("digits", "test").subset(torch.arange(40))
    assert torch.equal(data.x, x)
    assert accuracy(bb, data)["acc"] == accuracy(model, data)["acc"]


@pytest.mark.parametrize("name", ["square", "zo-rge", "zo-cge"])
def test_black_box_attacks_on_a_parameterless_model(box, name):
    bb, model, x, y = box
    res = create(name, bb, eps=0.3, n_queries=60, num_classes=10)(x, y)
    ref = create(name, model, eps=0.3, n_queries=60, num_classes=10)(x, y)
    assert torch.equal(res.x_adv, ref.x_adv)  # the same queries, the same answers
    assert res.success.any() and res.queries is not None


def test_evaluate_runs_on_a_parameterless_model(box):
    bb, model, x, y = box
    rep = evaluate(bb, (x, y), 0.3, attacks=[("square", {"n_queries": 60})])
    ref = evaluate(model, (x, y), 0.3, attacks=[("square", {"n_queries": 60})])
    assert rep.clean_acc == ref.clean_acc and rep.robust_acc == ref.robust_acc
    assert rep.robust_acc < rep.clean_acc


def test_smoothing_certifies_a_parameterless_model(box):
    bb, model, x, y = box
    got = smooth(bb, 0.1, seed=1).certify(x[0], n0=20, n=200, alpha=0.01, batch=100)
    want = smooth(model, 0.1, seed=1).certify(x[0], n0=20, n=200, alpha=0.01, batch=100)
    assert got == want and got[0] == int(y[0])
