"""A small Vision Transformer (Dosovitskiy et al. 2021) for low-resolution images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import Normalize, check_input_shape, dataset_args
from sparta.models.registry import register_model


class Attention(nn.Module):
    """Multi-head self-attention written out with ``nn.Linear`` projections (``qkv``,
    ``proj``), so pruning and counting tools see ordinary linear layers."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape[0], x.shape[1], x.shape[2]  # indexed, so torch.fx can trace it
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(out)

    def extra_macs(self, x: torch.Tensor) -> int:
        """Multiply-accumulates of the two attention matmuls (QK^T and AV) for input ``x``."""
        b, t, d = x.shape
        return 2 * b * t * t * d


class FeedForward(nn.Module):
    """``fc1 -> GELU -> fc2``."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm transformer block with explicit residual additions."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, max(1, round(dim * mlp_ratio)), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` patches projected to ``dim`` by a strided conv."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def default_patch_size(height: int, width: int) -> int:
    """4 for inputs of 16 px and more, else 2, falling back to the largest that divides."""
    for p in (4, 2, 1) if min(height, width) >= 16 else (2, 1):
        if height % p == 0 and width % p == 0:
            return p
    return 1  # pragma: no cover - 1 always divides


class VisionTransformer(nn.Module):
    """Patch embedding, class token, learned position embedding, pre-norm blocks, final
    LayerNorm and a linear ``head`` on the class token."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        patch_size: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = check_input_shape(input_shape)
        p = default_patch_size(h, w) if patch_size is None else int(patch_size)
        if p < 1 or h % p or w % p:
            raise ValueError(f"patch_size {p} must divide the image size {h}x{w}")
        tokens = (h // p) * (w // p)
        self.patch_size = p
        self.normalize = Normalize(mean, std)
        self.patch_embed = PatchEmbed(c, dim, p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self.normalize(x))
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register_model("vit-tiny", family="vit")
def vit_tiny(
    info: DatasetInfo,
    width: float = 1.0,
    depth: int = 4,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    patch_size: int | None = None,
    dropout: float = 0.0,
) -> VisionTransformer:
    """Small ViT: dim 64 x width (a multiple of the heads), depth 4, 4 heads, MLP ratio 2;
    patch 4 for 28/32 px inputs and 2 for 8 px."""
    heads = int(heads)
    dim = max(heads, round(64 * width / heads) * heads)
    return VisionTransformer(
        *dataset_args(info),
        dim=dim,
        depth=int(depth),
        heads=heads,
        mlp_ratio=float(mlp_ratio),
        patch_size=patch_size,
        dropout=float(dropout),
    )
