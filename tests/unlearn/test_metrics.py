"""UA/RA/TA, MIA features and efficacy, Avg. Gap: hand-computed cases and the MIA's power."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sparta import models
from sparta.data import DatasetInfo, ImageDataset
from sparta.unlearn import accuracies, avg_gap, mia_features, svc_attack_accuracy, svc_mia
from sparta.unlearn.metrics import mia_efficacy

from .conftest import fit, tiny_data


def test_features_by_hand():
    p = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.0, 0.9]])
    y = torch.tensor([0, 2])
    conf = mia_features(p, y, "confidence").ravel()
    assert conf == pytest.approx([0.5, 0.9])
    assert mia_features(p, y, "loss").ravel() == pytest.approx([math.log(2), -math.log(0.9)])
    ent0 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    ent1 = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))
    assert mia_features(p, y, "entropy").ravel() == pytest.approx([ent0, ent1])
    # modified entropy: -(1-p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
    m0 = -(0.5 * math.log(0.5)) - 2 * 0.25 * math.log(0.75)
    m1 = -(0.1 * math.log(0.9)) - 0.1 * math.log(0.9)
    assert mia_features(p, y, "m_entropy").ravel() == pytest.approx([m0, m1])
    with pytest.raises(ValueError, match="allowed: confidence"):
        mia_features(p, y, "margin")


class Constant(nn.Module):
    """Always predicts class ``c``."""

    def __init__(self, c, k=3):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.logits = torch.nn.functional.one_hot(torch.tensor(c), k).float()

    def forward(self, x):
        return self.logits.expand(len(x), -1) + 0 * self.w


def _ds(labels):
    info = DatasetInfo("toy", (1, 1, 1), 3, (0.0,), (1.0,))
    return ImageDataset(torch.zeros(len(labels), 1, 1, 1), torch.tensor(labels), info)


def test_accuracies_by_hand():
    forget, retain, test = _ds([0, 0, 1, 2]), _ds([0, 1, 1, 1, 2]), _ds([0, 0, 0, 2])
    acc = accuracies(Constant(0), forget, retain, test)
    assert acc == pytest.approx({"ua": 1 - 2 / 4, "ra": 1 / 5, "ta": 3 / 4})


def test_avg_gap_by_hand():
    a = {"ua": 0.1, "ra": 0.9, "ta": 0.8, "mia_efficacy": 0.2, "rte_s": 5.0}
    b = {"ua": 0.2, "ra": 0.9, "ta": 0.7, "mia_efficacy": 0.6}
    assert avg_gap(a, b) == pytest.approx((0.1 + 0 + 0.1 + 0.4) / 4)
    with pytest.raises(ValueError, match="missing 'mia_efficacy'"):
        avg_gap(a, {"ua": 0, "ra": 0, "ta": 0})


def test_svc_mia_separable_features():
    rng = np.random.default_rng(0)
    members = rng.normal(1.0, 0.05, (50, 1))
    non = rng.normal(0.0, 0.05, (50, 1))
    assert svc_mia(members, non, rng.normal(0.0, 0.05, (20, 1))) == 1.0  # all non-member
    assert svc_mia(members, non, rng.normal(1.0, 0.05, (20, 1))) == 0.0
    assert svc_mia(members, non, np.array([[0.0], [1.0]])) == 0.5


@pytest.fixture(scope="module")
def overfit():
    """A model that memorises noisy data: high train accuracy, much lower test accuracy."""
    torch.manual_seed(1)
    train, test = tiny_data(n_train=200, n_test=200, noise=1.5)
    model = models.create("lenet300", train, width=0.5)
    fit(model, train, epochs=60, lr=0.05, weight_decay=0.0)
    return model, train, test


def _conf(model, data):
    from sparta.unlearn.metrics import _probs

    return mia_features(_probs(model, data, 1000), data.y, "confidence")


def test_mia_above_chance_on_overfit_model(overfit):
    model, train, test = overfit
    acc = svc_attack_accuracy(_conf(model, train), _conf(model, test), seed=0)
    assert acc > 0.65, acc
    # applied to members, efficacy (share called non-member) is low; to non-members high
    half = train.subset(torch.arange(100))
    rest = train.subset(torch.arange(100, 200))
    on_members = mia_efficacy(model, half, test.subset(torch.arange(100)), rest, ["confidence"])
    on_non = mia_efficacy(
        model, half, test.subset(torch.arange(100)), test.subset(torch.arange(100, 200)),
        ["confidence", "entropy", "loss"],
    )  # fmt: skip
    assert on_members["confidence"] < 0.35 < 0.65 < on_non["confidence"]
    assert set(on_non) == {"confidence", "entropy", "loss"}


def test_mia_near_chance_on_members_vs_members(overfit):
    model, train, _ = overfit
    a, b = train.subset(torch.arange(0, 200, 2)), train.subset(torch.arange(1, 200, 2))
    accs = [svc_attack_accuracy(_conf(model, a), _conf(model, b), seed=s) for s in range(3)]
    assert 0.38 < float(np.mean(accs)) < 0.62, accs
