"""Net2DeeperNet on any fx-traceable model: :func:`deepen`."""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import fx, nn

from growsearch.exceptions import MorphError
from growsearch.morph import _functional as Fm
from growsearch.morph._blocks import ConvBlock, LinearBlock, bn_nd, conv_nd
from growsearch.morph._graph import (
    BATCH_NORMS,
    channels,
    is_nonnegative,
    is_spatial,
    kind,
    module_of,
    traced_shape,
)
from growsearch.morph._inits import check_init, reinitialise
from growsearch.morph._trace import (
    CONV,
    CONV_T,
    WEIGHTED,
    describe,
    guess_input_shape,
    propagate_shapes,
    tensor_args,
    trace,
)


class ResidualBlock(nn.Module):
    """x + branch(x), where branch = layer2(act(bn1(layer1(x)))) ends in a zero-initialised layer,
    so the block starts as the identity whatever the activation around it."""

    def __init__(self, dims: int, channels: int, k: int, batch_norm: bool):
        super().__init__()
        if dims == 0:
            self.layer1: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d = nn.Linear(
                channels, channels
            )
            self.layer2: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d = nn.Linear(
                channels, channels
            )
            self.bn1: nn.Module = nn.BatchNorm1d(channels) if batch_norm else nn.Identity()
        else:
            self.layer1 = conv_nd(dims, channels, channels, k)
            self.layer2 = conv_nd(dims, channels, channels, k)
            self.bn1 = bn_nd(dims, channels) if batch_norm else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer2(self.act(self.bn1(self.layer1(x))))


def insert_after(model: nn.Module, name: str, module: nn.Module, new_name: str) -> fx.GraphModule:
    """A copy of ``model`` (as a GraphModule) with ``module`` applied to the output of ``name``.

    Existing submodules keep their qualified names; the new one is ``new_name``.
    """
    gm = trace(copy.deepcopy(model))
    node = output_node(gm, name)
    if _has_module(gm, new_name):
        raise MorphError(f"deepen: a module named '{new_name}' already exists")
    gm.add_submodule(new_name, module)
    with gm.graph.inserting_after(node):
        new = gm.graph.call_module(new_name, (node,))
    node.replace_all_uses_with(new, delete_user_cb=lambda u: u is not new)
    gm.graph.lint()
    gm.recompile()
    return gm


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def output_node(gm: fx.GraphModule, name: str) -> fx.Node:
    """The node holding the output of module ``name`` (a leaf call, or the last node of a
    traced-through submodule whose value leaves it)."""
    calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == name]
    if len(calls) == 1:
        return calls[0]
    if len(calls) > 1:
        raise MorphError(f"deepen: module '{name}' is called {len(calls)} times")
    inside = [n for n in gm.graph.nodes if name in (n.meta.get("nn_module_stack") or {})]
    if not inside:
        raise MorphError(f"deepen: no module '{name}' is called in the model's forward")
    outs = [n for n in inside if any(u not in inside for u in n.users)]
    if len(outs) != 1:
        raise MorphError(f"deepen: module '{name}' has {len(outs)} outputs; name a leaf layer")
    return outs[0]


def _upstream_producer(gm: fx.GraphModule, node: fx.Node) -> tuple[nn.Module | None, bool]:
    """The nearest Linear/Conv/transposed Conv above ``node`` and whether a BatchNorm sits in
    between."""
    saw_bn = False
    while True:
        m = module_of(gm, node)
        if isinstance(m, WEIGHTED):
            return m, saw_bn
        if isinstance(m, BATCH_NORMS):
            saw_bn = True
        args = tensor_args(node)
        if not args or kind(gm, node) not in ("pass", "per_channel", "binary", "producer"):
            return None, saw_bn
        node = args[0]


def deepen(
    model: nn.Module,
    name: str,
    *,
    init: str = "net2net",
    calibration: torch.Tensor | None = None,
    seed: int = 0,
    new_name: str | None = None,
    block: str = "auto",
    kernel_size: int | None = None,
) -> nn.Module:
    """Return a copy of ``model`` with a new layer computing the identity after module ``name``.

    After a ReLU-like output the new layer is Linear/Conv (identity kernel, centre tap 1) →
    BatchNorm (if the network uses BatchNorm; calibrated on ``calibration`` to undo its own
    normalisation) → ReLU. Elsewhere it is a residual block whose last layer is zero, which is
    the identity for any activation.

    Args:
        model: any torch.fx-traceable module; it is not modified.
        name: the module after whose output the layer is inserted (as in ``named_modules()``).
        init: ``net2net``/``zero`` (exact), ``net2net-noise`` (identity plus small noise),
            ``random-pad`` (a freshly initialised layer) or ``scratch`` (whole child fresh).
        calibration: an input batch for the model; needed when the new layer has a BatchNorm.
        seed: seeds any random initialisation.
        new_name: qualified name of the new module (default ``<name>_deepen``).
        block: ``auto``, ``layer`` or ``residual``.
        kernel_size: of a new conv (default: the kernel of the conv that feeds ``name``).

    Returns:
        A ``torch.fx.GraphModule`` whose existing modules keep their names.
    """
    check_init(init)
    if block not in ("auto", "layer", "residual"):
        raise MorphError(
            f"deepen: block must be one of ['auto', 'layer', 'residual'], got {block!r}"
        )
    gm = trace(model)
    node = output_node(gm, name)
    try:
        c, spatial = channels(gm, node), is_spatial(gm, node)
    except MorphError:
        if not _probe_shapes(gm, model, calibration):
            raise
        c, spatial = channels(gm, node), is_spatial(gm, node)  # now read from the probe
    producer, saw_bn = _upstream_producer(gm, node)
    dims = 0
    if spatial:
        shape = traced_shape(node)
        if shape is not None:
            dims = len(shape) - 2
        elif isinstance(producer, CONV + CONV_T):
            dims = len(producer.kernel_size)
        else:
            raise MorphError(
                f"deepen {name}: cannot find the convolution that feeds {describe(node)}"
            )
        if dims not in (1, 2, 3):
            raise MorphError(
                f"deepen {name}: {describe(node)} is a {dims}-d feature map; a new layer can be "
                "1-, 2- or 3-d"
            )
    uses_bn = saw_bn or (
        producer is None and any(isinstance(m, BATCH_NORMS) for m in model.modules())
    )
    if uses_bn and not spatial and traced_shape(node) is None:
        _probe_shapes(gm, model, calibration)
    features_shape = traced_shape(node)
    if uses_bn and not spatial and features_shape is not None and len(features_shape) > 2:
        # features with more axes than (B, C), e.g. tokens (B, T, C): a BatchNorm1d would
        # normalise dim 1 (T), not the channels; the new block goes without one
        uses_bn = False
    k = kernel_size or (producer.kernel_size[0] if isinstance(producer, CONV + CONV_T) else 3)
    if k % 2 == 0:
        k += 1  # an identity kernel needs a centre tap
    nonneg = is_nonnegative(gm, node)
    if block == "auto":
        block = "layer" if nonneg else "residual"
    if block == "layer" and not nonneg and init in ("net2net", "zero"):
        raise MorphError(
            f"deepen {name}: its output is not ReLU-like ({describe(node)}), so an identity layer "
            "followed by ReLU would not be exact; use block='residual'"
        )
    new_name = new_name or _fresh_name(gm, f"{name}_deepen")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if block == "layer":
            new: nn.Module = (
                LinearBlock(c, c, batch_norm=uses_bn)
                if dims == 0
                else ConvBlock(dims, c, c, k, batch_norm=uses_bn)
            )
        else:
            new = ResidualBlock(dims, c, k, uses_bn)
    ref = next(iter(model.parameters()), None)
    if ref is not None:
        new = new.to(device=ref.device, dtype=ref.dtype)
    if init in ("net2net", "zero", "net2net-noise"):
        _init_identity(new, block, gen, noise=init == "net2net-noise")
        if uses_bn and block == "layer":
            if calibration is None:
                raise MorphError(
                    f"deepen {name}: the new layer has a BatchNorm that must be calibrated; pass calibration=<input batch>"
                )
            _calibrate(gm, node, cast("nn.modules.batchnorm._BatchNorm", new.bn), calibration)
    new.train(model.training)
    child = insert_after(model, name, new, new_name)
    if init == "scratch":
        reinitialise(child, seed)
    return child


def _probe_shapes(gm: fx.GraphModule, model: nn.Module, calibration: torch.Tensor | None) -> bool:
    """Record every value's shape on ``gm``, on the calibration batch's shape or a guessed one;
    False if neither runs."""
    try:
        if calibration is None:
            propagate_shapes(gm, guess_input_shape(model))
        else:
            propagate_shapes(gm, tuple(calibration.shape), calibration.dtype)
        return True
    except MorphError:
        return False


def _fresh_name(gm: nn.Module, base: str) -> str:
    name, i = base, 2
    while _has_module(gm, name):
        name, i = f"{base}{i}", i + 1
    return name


def _init_identity(new: nn.Module, block: str, gen: torch.Generator, noise: bool) -> None:
    with torch.no_grad():
        if block == "layer":
            layer = new.linear if isinstance(new, LinearBlock) else cast(ConvBlock, new).conv
            w = Fm.identity_weight(layer.weight.shape[0], tuple(layer.weight.shape[2:]))
            if noise:
                w += torch.randn(w.shape, generator=gen) * 1e-2 * (1.0 / w.shape[1]) ** 0.5
            layer.weight.copy_(w)
            if layer.bias is not None:
                layer.bias.zero_()
        else:  # residual: zero the last layer so the branch adds nothing
            assert isinstance(new, ResidualBlock)  # deepen builds one for block='residual'
            new.layer2.weight.zero_()
            if noise:
                new.layer2.weight.add_(torch.randn(new.layer2.weight.shape, generator=gen) * 1e-3)
            if new.layer2.bias is not None:
                new.layer2.bias.zero_()


@torch.no_grad()
def _calibrate(
    gm: fx.GraphModule, node: fx.Node, bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor
) -> None:
    """Set the new BatchNorm to undo itself: γ = sqrt(var + eps), β = mean, running stats = batch stats.

    The statistics are those of the value at ``node`` on ``x`` in train mode (BatchNorm using batch
    statistics, dropout off), so the layer is the identity in eval mode and on that batch in train mode.
    """
    probe = copy.deepcopy(gm)  # a forward in train mode would move the original's running stats
    probe.train()
    for m in probe.modules():
        if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d):
            m.eval()
    captured: dict[str, torch.Tensor] = {}

    class _Capture(fx.Interpreter):
        def run_node(self, n: fx.Node):  # type: ignore[no-untyped-def]
            out = super().run_node(n)
            if n.name == node.name:
                captured["v"] = out
            return out

    ref = next(iter(gm.parameters()), None)
    x = x.to(ref.device) if ref is not None else x
    _Capture(probe).run(x)
    v = captured["v"].to(torch.float64)
    if v.shape[0] < 2:
        raise MorphError("deepen: the calibration batch needs at least 2 samples")
    dims = [0] + list(range(2, v.dim()))
    mean = v.mean(dim=dims)
    var = v.var(dim=dims, unbiased=False)
    bn.weight.copy_(torch.sqrt(var + bn.eps))
    bn.bias.copy_(mean)
    assert bn.running_mean is not None and bn.running_var is not None  # tracked by default
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
