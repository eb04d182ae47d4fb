"""Full-size check (``pytest -m slow``): the accuracy floors on real Fashion-MNIST."""

import pytest

from sparta.train import TrainConfig, train


@pytest.mark.slow
def test_lenet300_reaches_its_floor_on_full_fashion_mnist(tmp_path):
    cfg = TrainConfig(model="lenet300", epochs=20, lr=0.05, batch_size=128)
    result = train(cfg, root=tmp_path, name="floor", quiet=True)
    assert result.summary["test_acc"] >= 0.89
    assert result.summary["n_train"] == 54_000 and result.summary["n_test"] == 10_000
