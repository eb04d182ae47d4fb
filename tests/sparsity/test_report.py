import pytest
import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.sparsity.masks import attach
from sparta.sparsity.report import format_report, layer_macs, report


def _lenet5():
    torch.manual_seed(0)
    return models.create("lenet5", dataset=sdata.info("fashion-mnist"))


def test_report_counts_and_macs_follow_layer_density():
    model = _lenet5()
    mask = torch.zeros_like(model.fc1.weight, dtype=torch.bool)
    mask[:, :100] = True  # fc1 keeps 100 of its 400 inputs
    attach(model, {"fc1.weight": mask})
    rep = report(model)
    rows = {r["name"]: r for r in rep["layers"]}
    assert list(rows) == [f"{n}.weight" for n in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    fc1 = rows["fc1.weight"]
    assert (fc1["numel"], fc1["nonzero"], fc1["masked"]) == (48000, 12000, True)
    assert fc1["sparsity"] == 0.75 and fc1["macs"] == 48000 and fc1["macs_kept"] == 12000
    assert not rows["conv1.weight"]["masked"] and rows["conv1.weight"]["macs"] == 6 * 25 * 28 * 28
    dense_macs = models.count_flops(model, (1, 28, 28))
    g = rep["global"]
    assert g["macs"] == dense_macs and g["macs_kept"] == dense_macs - 36000
    assert g["kept_macs_fraction"] == pytest.approx((dense_macs - 36000) / dense_macs)
    assert g["sparsity"] == 0.75  # among masked parameters only
    assert g["params"] == models.count_params(model)
    assert g["kept_params_fraction"] == pytest.approx((g["params"] - 36000) / g["params"])


def test_layer_macs_restores_mode_and_matches_count_flops():
    model = _lenet5().train()
    macs = layer_macs(model, (1, 28, 28))
    assert model.training and sum(macs.values()) == models.count_flops(model, (1, 28, 28))


def test_report_without_input_shape_has_no_macs_and_table_formats():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    attach(model, {"0.weight": torch.tensor([[True, False] * 2] * 3)})
    rep = report(model)
    assert "macs" not in rep["global"] and rep["global"]["sparsity"] == 0.5
    assert report(model, (4,))["global"]["macs"] == 18
    table = format_report(report(model, (4,)))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["layer", "shape"] and "2.weight (dense)" in table
    assert lines[-1].split()[0] == "total" and "0.5000" in lines[-1]
