"""Train the seed model with your own training loop and save its weights for the search.

    .venv/bin/python search_spaces/custom_resnet/train_seed.py
    .venv/bin/growsearch run search_spaces/custom_resnet/space.yaml

Any training code works: growsearch needs only the weights, as a safetensors file whose keys are
the model's ``state_dict()`` keys. The data comes from growsearch.data so that the seed sees the
same training split as the search (scikit-learn's 8x8 digits; nothing is downloaded).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from growsearch.data import load_dataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import resnet  # noqa: E402

EPOCHS, BATCH, LR = 5, 64, 3e-3


def main() -> None:
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = resnet()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = data.train.x, data.train.y
    for epoch in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(y)).split(BATCH):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(data.val.x).argmax(1) == data.val.y).float().mean().item()
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss.item():.3f}, val acc {acc:.3f}")
    out = HERE / "seed.safetensors"
    save_file(model.state_dict(), str(out))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
