"""Trigger recovery finds the planted target; the anomaly index flags small outliers only."""

import math
import statistics

import pytest
import torch

from sparta import data
from sparta.backdoor import PatchTrigger, RecoverOptions, anomaly_index, asr, recover
from sparta.backdoor.recover import noise_outside


def test_anomaly_index_by_hand():
    norms = [10.0, 11.0, 9.0, 10.0, 2.0, 10.5, 9.5, 30.0]
    idx = anomaly_index(norms)
    # sorted: 2 9 9.5 10 | 10 10.5 11 30 -> median (10 + 10) / 2 = 10
    # |n - 10| sorted: 0 0 0.5 0.5 | 1 1 8 20 -> MAD (0.5 + 1) / 2 = 0.75 (the lower one is 0.5)
    assert idx[4] == pytest.approx((10.0 - 2.0) / (1.4826 * 0.75))
    assert idx[7] == pytest.approx((10.0 - 30.0) / (1.4826 * 0.75))
    assert idx[4] > 2 and idx[7] < 0  # the large outlier is not flagged
    assert [i for i, a in enumerate(idx) if a > 2] == [4]
    assert anomaly_index([3.0, 3.0, 1.0])[2] == math.inf


def test_anomaly_index_even_count_takes_the_mean_of_the_two_middle_values():
    # median of [1, 2, 4, 10] is 3 (not the lower 2); |n - 3| = 2 1 1 7 -> MAD (1 + 2) / 2 = 1.5
    idx = anomaly_index([1.0, 2.0, 4.0, 10.0])
    mad = 1.4826 * 1.5
    assert idx == pytest.approx([2 / mad, 1 / mad, -1 / mad, -7 / mad])


def test_log_anomaly_index_by_hand():
    norms = [9.0, 15.0, 53.0, 54.0, 39.0, 49.0, 24.0, 52.0, 27.0, 65.0]
    logs = torch.log1p(torch.tensor(norms, dtype=torch.float64))
    med = statistics.median(logs.tolist())  # even count: the mean of the two middle values
    mad = 1.4826 * statistics.median((logs - med).abs().tolist())
    expected = ((med - logs) / mad).tolist()
    assert anomaly_index(norms, "log") == pytest.approx(expected)
    assert anomaly_index(norms, "log")[0] > 2 > anomaly_index(norms)[0]  # 9 is an outlier in log


def test_noise_outside_skips_images_already_in_the_label():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05]])
    assert noise_outside(probs, 1, 2).tolist() == [0, 2]  # pool order among the others
    assert noise_outside(probs, 0, 3).tolist() == [1, 3, 2]  # then the least confident in 0
    assert noise_outside(probs, 0, 5).tolist() == [1, 3, 2, 0, 4]


@pytest.fixture()
def trojaned(planted):
    return planted[0]


def test_recovery_finds_planted_target_without_data(trojaned):
    test = data.load("digits", "test")
    assert asr(trojaned, test, PatchTrigger(3), 3) > 0.95
    res = recover(trojaned, (1, 8, 8), 10, RecoverOptions(steps=200))
    assert res.target == 3
    assert res.norms[3] == min(res.norms)
    assert asr(trojaned, test, res.trigger(3), 3) > 0.5  # the recovered trigger works on real data


def test_recovery_on_the_defenders_images_finds_the_target(trojaned):
    """Neural Cleanse with data: the defender's images replace the noise pool."""
    train = data.load("digits", "train")
    res = recover(trojaned, (1, 8, 8), 10, RecoverOptions(steps=200, n=100), images=train.x)
    assert res.target == 3 and res.norms[3] == min(res.norms)


def test_recover_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        RecoverOptions(labels="1,12").label_list(10)
