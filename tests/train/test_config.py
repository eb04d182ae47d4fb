import pytest

from sparta.train.config import TrainConfig, read_yaml


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", -1),
        ("batch_size", 0),
        ("lr", 0.0),
        ("optimizer", "rmsprop"),
        ("schedule", "poly"),
        ("val_fraction", 1.0),
        ("momentum", 1.0),
        ("width", -2),
    ],
)
def test_bad_values_name_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"{field}={value!r}"):
        TrainConfig(**{field: value})


def test_unknown_key_lists_allowed():
    with pytest.raises(ValueError, match="unknown option 'epoch'.*epochs"):
        TrainConfig.from_dict({"epoch": 3})


def test_round_trip_through_dict():
    cfg = TrainConfig(epochs=3, milestones=[1, 2])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.milestones == [1.0, 2.0]


def test_read_yaml_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        read_yaml(lst)
    ok = tmp_path / "ok.yaml"
    ok.write_text("batch-size: 32\nlr: 0.01\n")
    assert read_yaml(ok) == {"batch_size": 32, "lr": 0.01}
