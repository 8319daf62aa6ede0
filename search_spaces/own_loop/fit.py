"""A training loop of your own, in plain PyTorch: SGD with momentum, a cosine schedule after the
recipe's warm-up, and a label-smoothed loss. growsearch hands it the trial's model (already
grown from its parent) and takes back one report per epoch."""

import torch
import torch.nn.functional as F


def fit(model, data, ctx):
    x, y = data.train.x, data.train.y
    optimizer = torch.optim.SGD(model.parameters(), lr=ctx.lr, momentum=0.9, nesterov=True)
    warmup = ctx.warmup(optimizer)  # the recipe's warm-up for a grown child (none for the seed)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs)
    start = ctx.restore(model, optimizer, cosine)  # 0, or where the last report left off
    if "warmup" in ctx.state:
        warmup.load_state_dict(ctx.state["warmup"])
    generator = torch.Generator().manual_seed(ctx.seed)
    batch = ctx.hparams["batch_size"]
    with ctx.scale_steps(optimizer):  # new units catch up with the inherited ones
        for epoch in range(start, ctx.epochs):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x) - batch + 1, batch):
                idx = order[i : i + batch]
                loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.05)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                warmup.step()
            cosine.step()
            metrics = ctx.evaluate(model)  # the task's metrics on val: val_loss, val_acc
            if ctx.report(
                metrics, model=model, optimizer=optimizer, scheduler=cosine,
                state={"warmup": warmup.state_dict()},
            ):
                break
