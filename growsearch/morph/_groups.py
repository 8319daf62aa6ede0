"""A model's search space as the engine sees it: width groups, refusals and insertion sites.

- A **width group** is a set of Linear/Conv layers whose outputs share one channel space (the
  producers a residual add, a shortcut or a channel-wise product ties together): widening any
  of them widens all of them, so the group is one searchable width.
- A **refusal** is a layer that cannot be widened exactly, with the reason (the output layer,
  a grouped convolution, a channel axis that is sliced...); the rest of the model stays
  searchable.
- An **insertion site** is the output of a named module (a block, an activation or a
  normalisation) where a residual block whose last layer is zero can be inserted: the block
  computes ``x + f(x) = x`` at first whatever the activations, so a deepen there is exact.

:func:`insert_block` inserts such a block without tracing: the site module's class is swapped
for a subclass whose forward applies the inserted blocks to its output, and the blocks are
registered as its children, so every existing module and parameter keeps its name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from growsearch.exceptions import MorphError
from growsearch.morph._coupling import (
    NORMS,
    SPATIAL_MODULES,
    UNARY_MODULES,
    Graph,
)
from growsearch.morph._graph import channel_axis
from growsearch.morph._sequence import attentions
from growsearch.morph._trace import CONV, CONV_T, WEIGHTED

BLOCKS = "gs_blocks"
"""The ModuleDict, at the model's top level, that holds every inserted block."""


@dataclass(frozen=True)
class WidthGroup:
    """Layers whose output width is one searchable width.

    Attributes:
        name: a readable name: the first producer's path, with ``.`` as ``_``.
        producers: module paths of the Linear/Conv layers that widen together.
        width: the current width.
        integer_factors: a LayerNorm or GroupNorm normalises these channels together, so the
            group grows by integer factors only (every channel replicated equally often).
        multiple_of: every width of the group is a multiple of this: the head dimension of the
            multi-head attentions that read and write it (a widening adds whole heads).
    """

    name: str
    producers: tuple[str, ...]
    width: int
    integer_factors: bool = False
    multiple_of: int = 1


@dataclass(frozen=True)
class Refusal:
    """A layer whose width cannot change, and why (one line)."""

    module: str
    reason: str


@dataclass(frozen=True)
class Site:
    """Where a residual block can be inserted: after the output of ``module``.

    ``dims`` is 0 when the block is Linear over the last axis (features, tokens), else the
    number of spatial dimensions of its convolutions; ``group`` the width group that carries the
    channels there (a block's width follows it), or ``""`` where no group does (channels no
    widen can change, e.g. a transformer's residual stream): the block then has ``channels``,
    the count the analysis found.
    """

    name: str
    module: str
    group: str
    dims: int
    channels: int


@dataclass(frozen=True)
class ModelSpace:
    """What :func:`analyse_model` found."""

    groups: tuple[WidthGroup, ...]
    refused: tuple[Refusal, ...]
    sites: tuple[Site, ...]

    def group_of(self, module: str) -> WidthGroup | None:
        """The group a producer belongs to."""
        return next((g for g in self.groups if module in g.producers), None)


def readable(path: str) -> str:
    """A module path as an identifier: ``layer2.0.conv1`` -> ``layer2_0_conv1``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", path)
    return name if name[:1].isalpha() else f"m{name}"


def analyse_model(
    model: nn.Module, example_input: torch.Tensor | Sequence[int] | None = None
) -> ModelSpace:
    """Width groups, refusals and insertion sites of ``model`` (which is not modified).

    Raises:
        MorphError: the model cannot be traced or does not run on ``example_input``.
    """
    graph = Graph(model, example_input)
    groups: list[WidthGroup] = []
    refused: list[Refusal] = []
    node_group: dict[str, tuple[str, int]] = {}  # node -> (group, channel axis), views plain
    viewed: set[str] = set()  # every node some group's channels reach
    done: set[str] = set()
    for target in graph.producers():
        if target in done:
            continue
        try:
            plan = graph.plan(target)
        except MorphError as e:
            refused.append(Refusal(target, str(e)))
            done.add(target)
            continue
        members = tuple(p for p in graph.producers() if p in plan.producers)
        done.update(members)
        name = _unique(readable(members[0]), {g.name for g in groups})
        heads = [a for _, t, _ in plan.sequence for a in attentions(graph.modules[t])]
        step = math.lcm(1, *(int(a.head_dim) for a in heads))
        groups.append(WidthGroup(name, members, plan.n, plan.uniform, step))
        viewed.update(plan.views)
        for node_name, view in plan.views.items():
            if view.plain:
                node_group.setdefault(node_name, (name, view.axis))
    for target in graph.calls:  # grouped convs are never producers
        m = graph.modules[target]
        if isinstance(m, CONV + CONV_T) and m.groups != 1 and target not in done:
            refused.append(
                Refusal(target, f"'{target}' is a grouped convolution: its width follows its input")
            )
    sites = _sites(graph, node_group, viewed)
    return ModelSpace(tuple(groups), tuple(refused), tuple(sites))


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    return out


def _sites(graph: Graph, node_group: dict[str, tuple[str, int]], viewed: set[str]) -> list[Site]:
    """Outputs of blocks, activations and normalisations that carry one width group whole, or
    channels no width group reaches (a fixed width)."""
    by_node: dict[str, str] = {}  # node name -> outermost module path whose output it is
    for path, module in graph.modules.items():
        if not path or path == BLOCKS or path.startswith(f"{BLOCKS}."):
            continue
        leaf = path in graph.calls
        composite = leaf and next(module.children(), None) is not None  # a TransformerEncoderLayer
        if (
            leaf
            and not composite
            and not isinstance(module, UNARY_MODULES + NORMS + SPATIAL_MODULES + WEIGHTED)
            and not isinstance(module, nn.LayerNorm)
        ):
            continue
        if leaf and isinstance(module, nn.Identity | nn.Dropout):
            continue
        node = _output_node(graph, path)
        if node is None:
            continue
        if (
            leaf
            and isinstance(module, WEIGHTED)
            and any(isinstance(graph.module(u), UNARY_MODULES + NORMS) for u in node.users)
        ):
            continue  # the site is after its normalisation or activation module
        old = by_node.get(node.name)
        if old is None or old.count(".") > path.count("."):
            by_node[node.name] = path
    sites = []
    taken: set[str] = set()
    nodes = {n.name: n for n in graph.gm.graph.nodes}
    order = {n.name: i for i, n in enumerate(graph.gm.graph.nodes)}
    for node_name, path in sorted(by_node.items(), key=lambda item: order[item[0]]):
        node = nodes[node_name]
        carried = node_group.get(node_name)
        shape = graph.shape(node)
        if shape is None or len(shape) < 2 or any(u.op == "output" for u in node.users):
            continue
        if carried is not None:
            group, axis = carried
        elif node_name in viewed:
            continue  # a group reaches part of these channels: a block could not follow it
        else:
            try:
                group, axis = "", channel_axis(graph.gm, node)
            except MorphError:
                continue
        if axis == len(shape) - 1:
            dims = 0  # Linear over the last axis: features, or tokens' channels
        elif axis == 1 and 3 <= len(shape) <= 5:
            dims = len(shape) - 2  # a convolution over (B, C, *spatial)
        else:
            continue
        name = _unique(readable(path), taken)
        taken.add(name)
        sites.append(Site(name, path, group, dims, int(shape[axis])))
    return sites


def _output_node(graph: Graph, path: str) -> fx.Node | None:
    """The one node holding module ``path``'s output, or None (called twice, several outputs)."""
    if path in graph.calls:
        nodes = graph.calls[path]
        return nodes[0] if len(nodes) == 1 else None
    inside = [n for n in graph.gm.graph.nodes if path in (n.meta.get("nn_module_stack") or {})]
    outs = [n for n in inside if any(u not in inside for u in n.users)]
    return outs[0] if len(outs) == 1 else None


# ---- inserting residual blocks ---------------------------------------------------------------
class InsertedBlock(nn.Module):
    """``x + layer2(act(layer1(x)))`` with ``layer2`` zero at insertion: the identity at first.

    Linear over the last axis (``dims == 0``) or a 'same'-padded convolution over
    ``(B, C, *spatial)``.
    """

    def __init__(self, dims: int, channels: int, kernel_size: int = 3):
        super().__init__()
        if dims == 0:
            self.layer1: nn.Module = nn.Linear(channels, channels)
            self.layer2: nn.Module = nn.Linear(channels, channels)
        else:
            conv = CONV[dims - 1]
            pad = kernel_size // 2
            self.layer1 = conv(channels, channels, kernel_size, padding=pad)
            self.layer2 = conv(channels, channels, kernel_size, padding=pad)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer2(self.act(self.layer1(x)))


_GROWN: dict[type, type] = {}


def _grown_class(cls: type) -> type:
    """``cls`` with a forward that applies the inserted blocks after the original forward."""
    if getattr(cls, "_gs_grown", False):
        return cls
    if cls not in _GROWN:

        def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            out = cls.forward(self, *args, **kwargs)
            for block in self._gs_blocks:
                out = block(out)
            return out

        _GROWN[cls] = type(
            cls.__name__, (cls,), {"forward": forward, "_gs_grown": True, "__module__": __name__}
        )
    return _GROWN[cls]


def insert_block(
    model: nn.Module, site: str, name: str, dims: int, channels: int, *, zero: bool = True
) -> nn.Module:
    """A copy of ``model`` with an :class:`InsertedBlock` after the output of module ``site``.

    The block is registered in the model's ``gs_blocks`` ModuleDict under ``name`` (so a
    container site such as an ``nn.Sequential`` does not run it as one of its own children);
    the site module only refers to it. With ``zero`` its last layer is zero, so the child
    computes the parent's function exactly.
    """
    import copy

    child = copy.deepcopy(model)
    try:
        host = child.get_submodule(site) if site else None
    except AttributeError:
        host = None
    if host is None or host is child:
        raise MorphError(f"deepen: no module '{site}' in the model")
    registry = getattr(child, BLOCKS, None)
    if registry is None:
        registry = nn.ModuleDict()
        child.add_module(BLOCKS, registry)
    elif not isinstance(registry, nn.ModuleDict):
        raise MorphError(f"deepen: the model has an attribute '{BLOCKS}' of its own")
    if name in registry:
        raise MorphError(f"deepen: a block named '{name}' already exists")
    ref = next(iter(child.parameters()), None)
    block = InsertedBlock(dims, channels)
    if ref is not None:
        block = block.to(device=ref.device, dtype=ref.dtype)
    if zero:
        with torch.no_grad():
            block.layer2.weight.zero_()  # type: ignore[operator]
            block.layer2.bias.zero_()  # type: ignore[union-attr,operator]
    block.train(child.training)
    registry[name] = block
    host.__class__ = _grown_class(type(host))
    # a plain attribute, not a child: the block's parameters live once, in the registry
    object.__setattr__(host, "_gs_blocks", [*getattr(host, "_gs_blocks", []), block])
    return child


def block_path(name: str) -> str:
    """Module path of the inserted block ``name``."""
    return f"{BLOCKS}.{name}"


__all__ = [
    "BLOCKS",
    "block_path",
    "InsertedBlock",
    "ModelSpace",
    "Refusal",
    "Site",
    "WidthGroup",
    "analyse_model",
    "insert_block",
    "readable",
]
