"""Tiny model families for the morph contract suite: spec-built and hand-written."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from growsearch.arch import ArchSpec, build, module_name, output_name


def rel_err(parent: nn.Module, child: nn.Module, x: torch.Tensor, train: bool) -> float:
    """max |child(x) - parent(x)| / max |parent(x)|, both in ``train`` mode, without grad."""
    parent.train(train)
    child.train(train)
    with torch.no_grad():
        a, b = parent(x), child(x)
    assert a.shape == b.shape
    return float((a - b).abs().max() / a.abs().max())


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-default BatchNorm statistics and affine parameters (an untrained BN hides bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g))
    return model


class FunctionalNet(nn.Module):
    """Own forward with functional ops, a residual add, a concat and flatten(1)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.b2 = nn.BatchNorm2d(8)
        self.c3 = nn.Conv2d(8, 6, 3, padding=1)
        self.c4 = nn.Conv2d(14, 10, 1)
        self.fc = nn.Linear(10 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.b1(self.c1(x)))  # (B, 8, 8, 8)
        r = F.relu(self.b2(self.c2(a)) + a)  # residual: c1 and c2 are coupled
        y = torch.cat([r, F.relu(self.c3(r))], dim=1)  # (B, 14, 8, 8)
        y = F.max_pool2d(F.relu(self.c4(y)), 2)  # (B, 10, 4, 4)
        return self.fc(y.flatten(1))


class TanhMLP(nn.Module):
    """An MLP with a non-ReLU activation and dropout: deepen must use a residual block."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(x))
        h = torch.tanh(self.fc2(h))
        return self.out(h)


def sequential_cnn1d() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 12, 3, padding=1), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.0),
        nn.Flatten(), nn.Linear(12 * 20, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


SPECS = {
    "mlp": ArchSpec.create("mlp", (1, 40), 10, [[24, 16]]),
    "cnn1d": ArchSpec.create("cnn", (1, 40), 10, [[8, 8], [12]], kernel_size=5),
    "cnn2d": ArchSpec.create("cnn", (1, 8, 8), 10, [[8], [12]]),
    "cnn2d_nobn": ArchSpec.create("cnn", (1, 8, 8), 10, [[8], [12]], batch_norm=False),
    "resnet2d": ArchSpec.create("resnet", (1, 8, 8), 10, [[8, 8], [12]], stage_widths=[8, 16]),
    "resnet1d": ArchSpec.create("resnet", (1, 40), 10, [[8], [8]], stage_widths=[8, 12]),
}


def family_cases() -> list[tuple[str, nn.Module, tuple[int, ...], list[str], list[str]]]:
    """(id, model, input shape, layers to widen, modules to deepen after) for every family."""
    cases = []
    for key, spec in SPECS.items():
        model = randomise_bn(build(spec, seed=1))
        widen_names = [module_name(spec, t) for t in spec.widen_targets()]
        deepen_names = [output_name(spec, layer.name) for layer in spec.layers]
        cases.append((f"spec-{key}", model, spec.input_shape, widen_names, deepen_names))
    cases.append(
        (
            "sequential-cnn1d",
            randomise_bn(sequential_cnn1d()),
            (1, 40),
            ["0", "4", "9"],
            ["2", "3", "6", "10"],
        )
    )
    cases.append(
        (
            "functional-net",
            randomise_bn(FunctionalNet()),
            (3, 8, 8),
            ["c1", "c2", "c3", "c4"],
            ["c4", "b2"],
        )
    )
    cases.append(("tanh-mlp", TanhMLP(), (12,), ["fc1", "fc2"], ["fc1", "fc2"]))
    return cases
