"""Your own transformer over token ids: MNIST-1D as 40 tokens (the built-in ``mnist1d_tokens``
dataset: every value one of 16 bins).

Token and position embeddings, two pre-norm blocks of ``nn.MultiheadAttention`` and an MLP, a
mean over the tokens, a linear head. growsearch finds the residual stream (the embedding width:
the embedding, both attentions' ``in_proj``/``out_proj`` and the MLPs' outputs, one width group
that grows by whole heads) and each block's MLP width as searchable.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.fc2(torch.relu(self.fc1(self.norm2(x))))


class TokenTransformer(nn.Module):
    def __init__(
        self, vocab: int = 16, length: int = 40, dim: int = 32, heads: int = 4, classes: int = 10
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        self.blocks = nn.Sequential(Block(dim, heads), Block(dim, heads))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos  # (B, 40, dim)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))


def transformer() -> nn.Module:
    return TokenTransformer()
