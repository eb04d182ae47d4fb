import pytest
import torch

from sparta.sparsity.structures import Structure, nm_mask, parse_structure, select
from sparta.sparsity.topk import n_keep


def test_parse_valid():
    assert parse_structure("unstructured") == Structure("unstructured")
    assert parse_structure("NM:2:4") == Structure("nm", n=2, m=4)
    assert parse_structure("block:16") == Structure("block", block=16)
    assert parse_structure("channel").kind == "channel"
    assert str(parse_structure("nm:1:8")) == "nm:1:8" and parse_structure("nm:1:8").density == 0.125


@pytest.mark.parametrize(
    "text,needle",
    [
        ("nm:5:4", "N=5 > M=4"),
        ("nm:0:4", "N=0"),
        ("nm:a:4", "'a'"),
        ("nm:2", "allowed: unstructured, nm:N:M, block:b, channel"),
        ("block:0", "b=0"),
        ("zigzag", "'zigzag' is not known; allowed"),
    ],
)
def test_parse_errors_name_value_and_allowed(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_structure(text)


def test_check_rejects_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match="6 inputs, not a multiple of M=4"):
        parse_structure("nm:2:4").check({"w": torch.Size([8, 6])})
    with pytest.raises(
        ValueError, match=r"block size 4 does not divide the 2-D view \(10, 75\) of w"
    ):
        parse_structure("block:4").check({"w": torch.Size([10, 3, 5, 5])})
    with pytest.raises(ValueError, match="does not divide"):
        parse_structure("block:4").check({"w": torch.Size([10, 16])})
    with pytest.raises(ValueError, match="2 or more dims"):
        parse_structure("nm:2:4").check({"b": torch.Size([8])})


def test_block_divides_conv_view():
    parse_structure("block:5").check({"w": torch.Size([10, 1, 5, 5])})  # view (10, 25)


def _groups_conv(t: torch.Tensor, m: int) -> torch.Tensor:
    """[O, I, kh, kw] -> groups of m consecutive input channels, by hand with loops."""
    o, i, kh, kw = t.shape
    return torch.stack(
        [
            t[a, g * m : (g + 1) * m, b, c]
            for a in range(o)
            for b in range(kh)
            for c in range(kw)
            for g in range(i // m)
        ]
    )


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 8)])
def test_nm_conv_groups_keep_exactly_the_top_n(n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    score = torch.randn(3, 16, 3, 3, generator=g)
    mask = nm_mask(score, n, m)
    groups, kept = _groups_conv(score, m), _groups_conv(mask, m)
    assert bool((kept.sum(1) == n).all())
    top = groups.topk(n, dim=1).indices
    assert bool(kept.gather(1, top).all())


def test_nm_linear_rows_and_select_ignores_sparsity_and_scope():
    score = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    masks = [
        select("nm:2:4", {"w": score}, s, scope)["w"]
        for s, scope in ((0.9, "global"), (0.1, "erk"))
    ]
    assert torch.equal(masks[0], masks[1])
    per_group = masks[0].view(5, 3, 4)
    assert bool((per_group.sum(-1) == 2).all())
    assert torch.equal(per_group, nm_mask(score, 2, 4).view(5, 3, 4))
    expect = score.view(5, 3, 4).topk(2, -1).indices.sort(-1).values
    assert torch.equal(per_group.nonzero()[:, 2].view(5, 3, 2), expect)


def _tiles(mask: torch.Tensor, b: int) -> torch.Tensor:
    rows = mask.shape[0]
    return mask.reshape(rows, -1).reshape(rows // b, b, -1, b).permute(0, 2, 1, 3).flatten(2)


@pytest.mark.parametrize("scope", ["global", "layer", "erk"])
def test_block_tiles_all_or_nothing_and_exact_tile_count(scope):
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.rand(8, 2, 2, 2, generator=g), "b": torch.rand(4, 12, generator=g)}
    masks = select("block:4", scores, 0.6, scope)
    tiles = {n: _tiles(m, 4) for n, m in masks.items()}
    for t in tiles.values():
        per_tile = t.sum(-1)
        assert bool(((per_tile == 0) | (per_tile == 16)).all())
    kept = {n: int((t.sum(-1) == 16).sum()) for n, t in tiles.items()}
    if scope == "global":
        assert sum(kept.values()) == n_keep(2 * 2 + 1 * 3, 0.4)
    elif scope == "layer":
        assert kept == {"a": n_keep(4, 0.4), "b": n_keep(3, 0.4)}


def test_block_tile_score_is_the_sum():
    # tile 0 has the single largest entry, tile 1 the larger sum: the sum wins
    score = torch.zeros(2, 4)
    score[0, 0] = 10.0
    score[:, 2:] = 3.0
    mask = select("block:2", {"w": score}, 0.5, "global")["w"]
    assert mask.tolist() == [[False, False, True, True]] * 2


def test_select_rejects_bad_scope_and_channel():
    with pytest.raises(
        ValueError, match="distribution='row' is not allowed; expected one of global, uniform, erk"
    ):
        select("unstructured", {"w": torch.ones(2, 2)}, 0.5, "row")
    with pytest.raises(ValueError, match="channels"):
        select("channel", {"w": torch.ones(2, 2)}, 0.5)
