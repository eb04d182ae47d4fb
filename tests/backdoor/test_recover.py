"""Trigger recovery finds the planted target; the anomaly index flags small outliers only."""

import math

import pytest
import torch

from sparta import data, models
from sparta.backdoor import PatchTrigger, RecoverOptions, anomaly_index, asr, poison, recover
from sparta.train import TrainConfig, Trainer


def test_anomaly_index_by_hand():
    norms = [10.0, 11.0, 9.0, 10.0, 2.0, 10.5, 9.5, 30.0]
    idx = anomaly_index(norms)
    med = torch.tensor(norms, dtype=torch.float64).median().item()  # lower median: 10.0
    mad = 1.4826 * torch.tensor([abs(n - med) for n in norms]).median().item()
    assert idx[4] == pytest.approx((med - 2.0) / mad)
    assert idx[4] > 2 and idx[7] < 0  # the large outlier is not flagged
    assert [i for i, a in enumerate(idx) if a > 2] == [4]
    assert anomaly_index([3.0, 3.0, 1.0])[2] == math.inf


def _trojaned(target=3):
    train = data.load("digits", "train")
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.5)
    poisoned = poison(train, f"badnets:ratio=0.1,target={target},size=3").data
    cfg = TrainConfig(epochs=15, lr=0.05, batch_size=64, val_fraction=0, best_metric="")
    Trainer(model, poisoned, cfg, quiet=True).fit()
    return model


def test_recovery_finds_planted_target_without_data():
    model = _trojaned(target=3)
    test = data.load("digits", "test")
    assert asr(model, test, PatchTrigger(3), 3) > 0.95
    res = recover(model, (1, 8, 8), 10, RecoverOptions(steps=200))
    assert res.target == 3
    assert res.norms[3] == min(res.norms)
    assert asr(model, test, res.trigger(3), 3) > 0.5  # the recovered trigger works on real data


def test_recover_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        RecoverOptions(labels="1,12").label_list(10)
