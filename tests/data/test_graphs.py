"""The stochastic-block-model graph: seeded, with the stated block structure and splits."""

import pytest
import torch

from sparta.data.graphs import block_sizes, sbm


def test_same_seed_same_graph_other_seed_other_graph():
    a, b, c = sbm(n_nodes=300, seed=4), sbm(n_nodes=300, seed=4), sbm(n_nodes=300, seed=5)
    for f in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert not torch.equal(a.x, c.x) and not torch.equal(a.adjacency(), c.adjacency())


def test_blocks_are_contiguous_equal_sized_and_edges_follow_p_in_p_out():
    n, k, p_in, p_out = 1003, 4, 0.05, 0.005
    g = sbm(n_nodes=n, n_blocks=k, p_in=p_in, p_out=p_out, seed=0)
    sizes = block_sizes(n, k)
    assert sizes == [251, 251, 251, 250]
    assert g.y.tolist() == sum(([b] * s for b, s in enumerate(sizes)), [])
    a = g.adjacency()
    assert torch.equal(a, a.T) and not a.diagonal().any()  # undirected, no self-loops
    assert g.edge_index.shape[1] == int(a.sum())  # each edge listed once per direction
    same = g.y[:, None] == g.y[None, :]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    for where, p in ((same & upper, p_in), (~same & upper, p_out)):
        pairs = int(where.sum())
        edges = int(a[where].sum())
        sd = (pairs * p * (1 - p)) ** 0.5
        assert abs(edges - pairs * p) < 5 * sd  # Bernoulli(p) per pair, within 5 sigma


def test_features_are_block_means_plus_noise_and_splits_are_planetoid_like():
    g = sbm(n_nodes=2000, n_blocks=4, n_features=16, feature_noise=1.0, n_val=300, seed=1)
    centroids = torch.stack([g.x[g.y == b].mean(0) for b in range(4)])
    assert torch.allclose(centroids.norm(dim=1), torch.ones(4), atol=0.1)  # unit-norm means
    resid = g.x - centroids[g.y]
    assert float(resid.norm(dim=1).pow(2).mean()) == pytest.approx(1.0, rel=0.1)  # noise^2
    assert [int((g.train_mask & (g.y == b)).sum()) for b in range(4)] == [20] * 4
    assert int(g.val_mask.sum()) == 300
    masks = g.train_mask.int() + g.val_mask.int() + g.test_mask.int()
    assert bool((masks == 1).all())  # disjoint and covering
    assert g.num_nodes == 2000 and g.num_classes == 4 and g.x.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"n_blocks": 1}, "n_blocks=1"),
        ({"p_in": 0.01, "p_out": 0.1}, "p_in, p_out"),
        ({"n_nodes": 100, "train_per_class": 20, "n_val": 50}, "train_per_class, n_val"),
        ({"feature_noise": -1.0}, "feature_noise=-1.0"),
    ],
)
def test_bad_parameters_are_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        sbm(**kwargs)
