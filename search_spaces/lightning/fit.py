"""A LightningModule you already have, searched by growsearch: fit() wraps the trial's model in
it and trains it with a Trainer from growsearch.integrations.lightning, which restores the
trial, applies the warm-start recipe and reports every epoch's logged metrics."""

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from growsearch.integrations.lightning import trainer


class Classifier(pl.LightningModule):
    def __init__(self, model, classes, lr):
        super().__init__()
        self.model, self.lr = model, lr
        self.val_acc = MulticlassAccuracy(classes, average="micro")

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True)
        self.log("val_acc", self.val_acc, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def fit(model, data, ctx):
    loader = DataLoader(
        TensorDataset(data.train.x, data.train.y), batch_size=ctx.hparams["batch_size"],
        shuffle=True, generator=torch.Generator().manual_seed(ctx.seed),
    )  # fmt: skip
    val = DataLoader(TensorDataset(data.val.x, data.val.y), batch_size=512)
    module = Classifier(model, data.num_classes, ctx.lr)
    trainer(ctx, model).fit(module, loader, val)
