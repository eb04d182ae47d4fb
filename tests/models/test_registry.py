from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from sparta import models
from sparta.data.base import DatasetInfo, ImageDataset
from sparta.models import create, from_spec, names, register_model, spec_of
from sparta.models.registry import entry, resolve_dataset

from .conftest import CIFAR, DIGITS, FASHION

EXPECTED = {
    "lenet300",
    "lenet5",
    "conv2",
    "conv4",
    "conv6",
    "vgg11",
    "vgg16",
    "resnet20",
    "resnet18",
    "wrn16-4",
    "vit-tiny",
}


def test_names_lists_every_architecture_sorted() -> None:
    assert EXPECTED <= set(names())
    assert names() == sorted(names())


def test_names_pattern_and_family() -> None:
    assert names("resnet*") == ["resnet18", "resnet20"]
    assert names("conv?") == ["conv2", "conv4", "conv6"]
    assert names("nothing*") == []
    assert names(family="vgg") == ["vgg11", "vgg16"]


def test_alias_and_spelling_resolve_to_canonical() -> None:
    assert spec_of(create("mlp", FASHION))["name"] == "lenet300"
    assert spec_of(create("WRN16_4", DIGITS, width=0.25))["name"] == "wrn16-4"
    assert entry("mlp").family == "mlp"


def test_unknown_name_lists_allowed() -> None:
    with pytest.raises(ValueError, match="model 'resnet99' is not known") as err:
        create("resnet99", FASHION)
    for n in EXPECTED:
        assert n in str(err.value)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), float("inf")])
def test_bad_width_raises(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        create("lenet300", FASHION, width=width)


def test_unknown_option_raises() -> None:
    with pytest.raises(ValueError, match="'depth'.*allowed options: hidden"):
        create("lenet300", FASHION, depth=3)


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("lenet300")(lambda info, width=1.0: nn.Identity())
    with pytest.raises(ValueError, match="already registered"):
        register_model("brand-new-net", aliases=("mlp",))(lambda info, width=1.0: nn.Identity())
    assert "brand-new-net" not in names()


def test_spec_is_json_and_round_trips() -> None:
    torch.manual_seed(0)
    model = create("lenet300", CIFAR, width=0.5, hidden=(40, 20))
    spec = spec_of(model)
    assert spec == {
        "name": "lenet300",
        "dataset": {
            "name": "cifar10",
            "input_shape": [3, 32, 32],
            "num_classes": 10,
            "mean": list(CIFAR.mean),
            "std": list(CIFAR.std),
            "classes": [],
        },
        "width": 0.5,
        "kwargs": {"hidden": [40, 20]},
    }
    spec = json.loads(json.dumps(spec))
    rebuilt = from_spec(spec)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(rebuilt(x), model(x))
    assert rebuilt.fc1.out_features == 20  # hidden option and width both honoured
    assert spec_of(create(**spec))["kwargs"] == {"hidden": [40, 20]}


def test_spec_of_is_a_copy_and_needs_create() -> None:
    model = create("lenet5", DIGITS)
    spec_of(model)["width"] = 3.0
    assert spec_of(model)["width"] == 1.0
    with pytest.raises(ValueError, match="not built by sparta.models.create"):
        spec_of(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="'name'"):
        from_spec({"width": 1.0})


def test_dataset_forms_are_equivalent() -> None:
    ds = ImageDataset(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), DIGITS)
    as_dict = spec_of(create("lenet300", DIGITS))["dataset"]
    assert resolve_dataset(ds) == DIGITS
    assert resolve_dataset(as_dict) == DIGITS
    assert spec_of(create("lenet300", ds))["dataset"] == as_dict
    with pytest.raises(ValueError, match="dataset must be"):
        resolve_dataset(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_shape"):
        resolve_dataset({"num_classes": 10})


def test_dataset_name_is_resolved_through_data_info(monkeypatch: pytest.MonkeyPatch) -> None:
    import sparta.data as data

    monkeypatch.setattr(data, "info", lambda name: FASHION, raising=False)
    model = create("lenet300", "fashion-mnist")
    assert spec_of(model)["dataset"]["input_shape"] == [1, 28, 28]


def test_bad_dataset_metadata_raises() -> None:
    bad = DatasetInfo("bad", (3, 32, 32), 10, (0.5, 0.5), (0.5, 0.5))
    with pytest.raises(ValueError, match="mean/std"):
        create("lenet300", bad)


def test_creation_is_deterministic_under_seed() -> None:
    torch.manual_seed(123)
    a = create("resnet20", CIFAR, width=0.25).state_dict()
    torch.manual_seed(123)
    b = create("resnet20", CIFAR, width=0.25).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dataset_name_with_real_data_package() -> None:
    model = create("lenet5", "fashion-mnist")
    assert spec_of(model)["dataset"]["input_shape"] == [1, 28, 28]
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


# ------------------------------------------------------------------ your own model
USER_MODELS = """
import torch
from torch import nn


def make_net(num_classes, input_shape, hidden=16):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def with_info(info, width=1.0, **kw):
    return make_net(info.num_classes, info.input_shape, int(8 * width))


def not_a_module(info):
    return 3
"""


@pytest.fixture()
def user_models(tmp_path, monkeypatch):
    (tmp_path / "my_models_mod.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models_mod"
    sys.modules.pop("my_models_mod", None)


def test_create_from_an_import_path_records_it(user_models):
    info = DatasetInfo("toy", (1, 4, 4), 3, (0.5,), (0.25,))
    net = models.create(f"{user_models}:make_net", dataset=info, hidden=5)
    assert net[1].out_features == 5 and net[3].out_features == 3
    spec = models.spec_of(net)
    assert spec["name"] == f"{user_models}:make_net" and spec["kwargs"] == {"hidden": 5}
    again = models.from_spec(spec)
    assert [p.shape for p in again.parameters()] == [p.shape for p in net.parameters()]
    wide = models.create(f"{user_models}:with_info", dataset=info, width=2.0)
    assert wide[1].out_features == 16  # info and width passed by name
    with pytest.raises(ValueError, match="has no option 'depth'"):
        models.create(f"{user_models}:make_net", dataset=info, depth=3)
    with pytest.raises(ValueError, match="not an nn.Module"):
        models.create(f"{user_models}:not_a_module", dataset=info)
    with pytest.raises(ValueError, match="cannot import module 'nowhere_xyz'"):
        models.create("nowhere_xyz:make_net", dataset=info)
