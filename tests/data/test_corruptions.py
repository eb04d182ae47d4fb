"""Fashion-MNIST-C corruptions: deterministic, in [0, 1], monotone in severity."""

from __future__ import annotations

import pytest
import torch

from sparta import data
from sparta.data.corruptions import CONSTANTS, CORRUPTIONS, SEVERITIES, corrupt, corrupted


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 28, 28, generator=g)
    return torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # some structure, values inside (0, 1)


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_deterministic_in_range_and_input_untouched(images, kind):
    before = images.clone()
    for s in SEVERITIES:
        a, b = corrupt(images, kind, s, seed=3), corrupt(images, kind, s, seed=3)
        assert torch.equal(a, b)
        assert a.shape == images.shape and a.dtype == images.dtype
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert not torch.equal(a, images)
    assert torch.equal(images, before)


@pytest.mark.parametrize("kind", ["gaussian-noise", "shot-noise"])
def test_noise_depends_on_the_seed(images, kind):
    assert not torch.equal(corrupt(images, kind, 3, seed=0), corrupt(images, kind, 3, seed=1))


@pytest.mark.parametrize(
    "kind", ["gaussian-noise", "shot-noise", "gaussian-blur", "contrast", "brightness"]
)
def test_distance_from_clean_grows_with_severity(images, kind):
    d = [_rms(corrupt(images, kind, s, seed=0), images) for s in SEVERITIES]
    assert all(a < b for a, b in zip(d, d[1:], strict=False)), d


def test_pixelate_resolution_falls_with_severity(images):
    # pixelate's distance is not monotone (the block grid aliases), its resolution is: the
    # number of distinct consecutive rows is at most int(28 c) and falls with severity
    def changes(x: torch.Tensor) -> int:
        return int((x[..., 1:, :] != x[..., :-1, :]).any(-1).sum(-1).max())

    rows = [changes(corrupt(images, "pixelate", s)) for s in SEVERITIES]
    assert rows == [int(28 * c) - 1 for c in CONSTANTS["pixelate"]], rows


def test_hand_computed_values():
    x = torch.tensor([0.2, 0.4, 0.6, 1.0]).view(1, 1, 2, 2)
    # contrast 3: (x - 0.55) * 0.4 + 0.55
    assert torch.allclose(corrupt(x, "contrast", 3), (x - 0.55) * 0.4 + 0.55)
    # brightness 5: x + 0.3, clipped
    assert torch.allclose(corrupt(x, "brightness", 5), (x + 0.3).clamp(max=1))
    # gaussian noise: the same draw scaled by the severity's std (0.04 vs 0.10)
    mid = torch.full_like(x, 0.5)
    n1 = corrupt(mid, "gaussian-noise", 1, seed=7) - 0.5
    n5 = corrupt(mid, "gaussian-noise", 5, seed=7) - 0.5
    assert n5.abs().max() < 0.5  # no clipping in this draw
    assert torch.allclose(n1 * 0.10 / 0.04, n5, atol=1e-5)
    # blur keeps a constant image, and the mean roughly
    flat = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(corrupt(flat, "gaussian-blur", 5), flat)


def test_names_and_bad_input(images):
    assert torch.equal(corrupt(images, "shot_noise", 2), corrupt(images, "shot-noise", 2))
    with pytest.raises(ValueError, match="unknown corruption 'fog'.*allowed: gaussian-noise"):
        corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity=6"):
        corrupt(images, "contrast", 6)


def test_corrupted_dataset_keeps_labels():
    ds = data.load("digits", "test")
    c = corrupted(ds, "contrast", 2)
    assert torch.equal(c.y, ds.y) and torch.equal(c.indices, ds.indices)
    assert c.split == "test-contrast-2" and c.info == ds.info
    assert len(list(data.corruptions.every_corruption(ds.take(5)))) == 30


def test_fashion_mnist_c_dataset():
    c = data.load("fashion-mnist-c", "test", corruption="pixelate", severity=5, seed=1)
    clean = data.load("fashion-mnist", "test")
    assert c.info.name == "fashion-mnist-c" and c.info.input_shape == clean.info.input_shape
    assert torch.equal(c.y, clean.y)
    assert torch.equal(c.x[:50], corrupt(clean.x[:50], "pixelate", 5))
    with pytest.raises(ValueError, match="unknown corruption"):
        data.load("fashion-mnist-c", "test", corruption="snow")
