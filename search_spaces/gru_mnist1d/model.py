"""Your own recurrent classifiers for MNIST-1D read as a sequence of 40 steps.

growsearch traces the forward with torch.fx and finds the searchable widths: the projection's
output (read by the recurrent layer's input weights) and the recurrent layer's hidden size
(every gate, the recurrent matrix, stacked and bidirectional layers grow with it). Samples are
``(1, 40)``: one channel, 40 time steps.
"""

from __future__ import annotations

import torch
from torch import nn


class GRUClassifier(nn.Module):
    """Linear(1 → 16) per step → GRU(16 → 32) → the last step's state → Linear(32 → 10)."""

    def __init__(self, hidden: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.proj = nn.Linear(1, 16)
        self.act = nn.Tanh()
        self.rnn = nn.GRU(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.act(self.proj(x.transpose(1, 2)))  # (B, 40, 16)
        out, _ = self.rnn(steps)
        return self.head(out[:, -1])


class LSTMClassifier(nn.Module):
    """Linear(1 → 16) per step → a 2-layer bidirectional LSTM → both directions' final states
    (``h_n``) → Linear(2·32 → 10)."""

    def __init__(self, hidden: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.proj = nn.Linear(1, 16)
        self.rnn = nn.LSTM(16, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.rnn(torch.relu(self.proj(x.transpose(1, 2))))
        return self.head(torch.cat([h[-2], h[-1]], dim=1))  # the last layer, both directions


def gru() -> nn.Module:
    return GRUClassifier()


def lstm() -> nn.Module:
    return LSTMClassifier()
