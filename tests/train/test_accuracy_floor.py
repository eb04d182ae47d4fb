"""Full-size check (``pytest -m slow``): the accuracy floors on real Fashion-MNIST."""

from pathlib import Path

import pytest

from sparta.train import TrainConfig, train

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed")
def test_lenet300_reaches_its_floor_on_full_fashion_mnist(tmp_path):
    cfg = TrainConfig(model="lenet300", epochs=20, lr=0.05, batch_size=128)
    result = train(cfg, root=tmp_path, name="floor", quiet=True)
    assert result.summary["test_acc"] >= 0.89
    assert result.summary["n_train"] == 54_000 and result.summary["n_test"] == 10_000
