import pytest
import torch

from sparta.sparsity.topk import check_sparsity, global_masks, keep_top, layer_masks, n_keep


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_check_sparsity_rejects_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=str(bad)):
        check_sparsity(bad)


def test_n_keep_and_keep_top_exact():
    assert n_keep(10, 0.25) == 2 and n_keep(10, 0.35) == 4
    score = torch.tensor([[0.1, 0.9], [0.5, 0.3]])
    assert torch.equal(keep_top(score, 2), torch.tensor([[False, True], [True, False]]))
    assert int(keep_top(score, 0).sum()) == 0


def test_global_masks_keeps_exactly_k_with_ties():
    scores = {"a": torch.ones(3, 4), "b": torch.ones(5), "c": torch.zeros(6)}
    masks = global_masks(scores, 0.5)  # 23 entries, keep round(11.5) = 12
    assert sum(int(m.sum()) for m in masks.values()) == n_keep(23, 0.5)
    assert not bool(masks["c"].any())  # zeros never beat ones
    # ties at the threshold are filled in parameter order
    assert bool(masks["a"].all()) and int(masks["b"].sum()) == n_keep(23, 0.5) - 12


def test_global_masks_uses_one_threshold():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.randn(50, generator=g), "b": torch.randn(30, 2, generator=g) + 1}
    masks = global_masks(scores, 0.7)
    kept = torch.cat([s[m] for s, m in ((scores[n], masks[n]) for n in scores)])
    dropped = torch.cat([s[~m] for s, m in ((scores[n], masks[n]) for n in scores)])
    assert kept.numel() == n_keep(110, 0.3) and float(kept.min()) > float(dropped.max())
    assert all(bool(m.all()) for m in global_masks(scores, 0.0).values())


def test_layer_masks_density_per_tensor():
    scores = {"a": torch.arange(10.0), "b": torch.arange(4.0)}
    masks = layer_masks(scores, {"a": 0.3, "b": 0.5})
    assert masks["a"].tolist() == [False] * 7 + [True] * 3
    assert masks["b"].tolist() == [False, False, True, True]
