from __future__ import annotations

import copy

import pytest
import torch

from sparta.models import Normalize
from sparta.models.layers import conv_out, scaled


def test_normalize_hand_computed_two_channels() -> None:
    norm = Normalize((0.5, 0.25), (0.5, 0.25))
    x = torch.tensor([[[[0.0, 1.0]], [[0.25, 0.75]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[[-1.0, 1.0]], [[0.0, 2.0]]]])
    assert torch.equal(norm(x), expected)


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_normalize_any_channel_count(channels: int) -> None:
    mean = [0.1 * (i + 1) for i in range(channels)]
    std = [0.2 + 0.1 * i for i in range(channels)]
    norm = Normalize(mean, std)
    assert norm.mean.shape == (1, channels, 1, 1) and norm.std.shape == (1, channels, 1, 1)
    assert norm.channels == channels
    x = torch.rand(2, channels, 4, 3)
    for c in range(channels):
        torch.testing.assert_close(norm(x)[:, c], (x[:, c] - mean[c]) / std[c])


def test_normalize_buffers_in_state_dict_and_repr() -> None:
    norm = Normalize((0.286,), (0.353,))
    assert set(norm.state_dict()) == {"mean", "std"}
    assert list(norm.parameters()) == []
    assert repr(norm) == "Normalize(mean=(0.286,), std=(0.353,))"


def test_normalize_follows_dtype_and_deepcopy() -> None:
    norm = Normalize((0.5,), (0.5,)).double()
    assert norm.mean.dtype == torch.float64
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64)
    assert torch.equal(copy.deepcopy(norm)(x), norm(x))


@pytest.mark.parametrize(
    ("mean", "std"), [((0.5,), (0.0,)), ((0.5, 0.5), (0.5,)), ((), ()), ((0.1,), (-1.0,))]
)
def test_normalize_rejects_bad_stats(mean: tuple, std: tuple) -> None:
    with pytest.raises(ValueError, match="std"):
        Normalize(mean, std)


def test_helpers() -> None:
    assert scaled(64, 0.5) == 32
    assert scaled(6, 0.01) == 1
    assert scaled(300, 1.0) == 300
    assert conv_out(28, 5, 1, 2) == 28
    assert conv_out(32, 5) == 28
    assert conv_out(32, 3, 2, 1) == 16
