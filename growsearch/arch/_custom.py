"""A user's own model as a search seed: ``factory`` + trained ``weights``, grown by recorded ops.

The morph engine's analysis (:func:`growsearch.morph.analyse_model`) turns the model into a
search space: one searchable width per **width group** (the layers a residual add, a shortcut, a
channel-wise product or a concat ties together), and **insertion sites** (outputs of blocks,
normalisations, activations) where zero-initialised residual blocks may be inserted. A
``custom`` spec has one stage whose layers are the groups (and the inner width of every
inserted block), and carries the history of ops; building it calls the factory and replays the
history, so a checkpoint is still ``spec + weights``. Built on its own, a grown spec is a
freshly initialised network of its architecture: the factory's initialisation for the
original layers, fresh weights in and out for every added unit and block (not the
function-preserving zeros a morph gives them), so a from-scratch child or a shrink-and-perturb
noise network is what its name says.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from growsearch.arch._factory import load_factory
from growsearch.exceptions import GrowsearchError, MorphError, SpecError
from growsearch.morph import WidthGroup, analyse_model, insert_block, widen


@dataclass(frozen=True)
class CustomModel:
    """Where a ``custom`` spec comes from, and what was done to it since.

    Attributes:
        factory: ``package.module:function`` or ``path/to/file.py:function`` returning the model.
        weights: The seed's trained weights (safetensors), or None to train it from its init.
        groups: ``(name, module)`` per width group: widening ``name`` widens Linear/Conv
            ``module`` and everything coupled to it.
        integer: Groups that grow by integer factors only (a LayerNorm or GroupNorm normalises
            their channels together).
        multiples: ``(group, k)`` for groups whose widths are multiples of ``k`` (the head
            dimension of the attentions on them: a widening adds whole heads).
        input_dtype: ``float32``, or ``int64`` for a model fed token ids (an ``nn.Embedding``).
        sites: ``(name, module, group, dims, channels)`` per insertion site: blocks go after
            ``module``'s output, with the width of ``group``, or ``channels`` where ``group`` is
            ``""`` (channels no widen changes); Linear blocks if ``dims`` is 0, else convs.
        blocks: ``(block, site)`` per inserted block, in order.
        history: The ops applied so far, in order: ``("widen", module, width)`` or
            ``("deepen", site module, block, dims, channels)``.
        refused: ``(module, reason)`` for the layers whose width cannot change.
    """

    factory: str
    weights: str | None
    groups: tuple[tuple[str, str], ...]
    integer: tuple[str, ...] = ()
    sites: tuple[tuple[str, str, str, int, int], ...] = ()
    blocks: tuple[tuple[str, str], ...] = ()
    history: tuple[tuple[Any, ...], ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    multiples: tuple[tuple[str, int], ...] = ()
    input_dtype: str = "float32"

    def width_error(self, group: str, old: int, new: int) -> str | None:
        """Why group ``group`` cannot grow from ``old`` to ``new`` channels, or None."""
        if group in self.integer and new % old:
            return (
                f"a LayerNorm or GroupNorm normalises its channels together, so the new width "
                f"must be a multiple of {old}, got {new}"
            )
        step = dict(self.multiples).get(group, 1)
        if new % step:
            return (
                f"attention reads and writes it in heads of {step} channels, so the new width "
                f"must be a multiple of {step}, got {new}"
            )
        return None

    def example_input(self, input_shape: tuple[int, ...]) -> torch.Tensor | tuple[int, ...]:
        """A batch of two for the morph engine (see :func:`example_input`)."""
        return example_input(input_shape, self.input_dtype)

    def outline(self, widths: Sequence[tuple[str, int]]) -> str:
        """One line for the console: the searchable widths (``(group, width)`` of the spec),
        how each grows, the insertion sites and the layers that are not searchable."""
        steps = dict(self.multiples)
        parts = []
        for name, width in widths:
            how = [
                *(["integer factors"] if name in self.integer else []),
                *([f"whole attention heads of {steps[name]}"] if name in steps else []),
            ]
            parts.append(f"{name} {width}" + (f" ({', '.join(how)})" if how else ""))
        line = (
            f"your model: searchable widths {', '.join(parts) or 'none'}; "
            f"{len(self.sites)} insertion site{'' if len(self.sites) == 1 else 's'} for blocks"
        )
        if self.refused:
            line += f"; not searchable: {', '.join(dict.fromkeys(m for m, _ in self.refused))}"
        return line

    def module(self, group: str) -> str:
        """The Linear/Conv that widening group ``group`` widens."""
        for n, p in self.groups:
            if n == group:
                return p
        raise SpecError(f"no width group named {group!r}; groups are {[n for n, _ in self.groups]}")

    def site(self, name: str) -> tuple[str, str, str, int, int]:
        for s in self.sites:
            if s[0] == name:
                return s
        raise SpecError(f"no insertion site named {name!r}; sites are {[s[0] for s in self.sites]}")

    def blocks_at(self, site: str) -> int:
        """How many blocks were inserted at ``site``."""
        return sum(1 for _, s in self.blocks if s == site)

    def to_dict(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "weights": self.weights,
            "groups": [list(g) for g in self.groups],
            "integer": list(self.integer),
            "sites": [list(s) for s in self.sites],
            "blocks": [list(b) for b in self.blocks],
            "history": [list(h) for h in self.history],
            "refused": [list(r) for r in self.refused],
            "multiples": [list(m) for m in self.multiples],
            "input_dtype": self.input_dtype,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomModel:
        """Raises SpecError for a spec another growsearch version wrote in another format."""
        if "groups" not in d and ("paths" in d or "inserted" in d):
            raise SpecError(
                f"custom model {d.get('factory')!r}: saved by an older growsearch (layers by "
                "module path, before width groups), which this version cannot rebuild; start a "
                "new run from the same factory and weights"
            )
        return cls(
            factory=str(d["factory"]),
            weights=d.get("weights"),
            groups=tuple((str(n), str(p)) for n, p in d["groups"]),
            integer=tuple(str(n) for n in d.get("integer", [])),
            sites=tuple(
                (str(s[0]), str(s[1]), str(s[2]), int(s[3]), int(s[4]) if len(s) > 4 else 0)
                for s in d.get("sites", [])
            ),
            blocks=tuple((str(b), str(s)) for b, s in d.get("blocks", [])),
            history=tuple(tuple(h) for h in d.get("history", [])),
            refused=tuple((str(m), str(r)) for m, r in d.get("refused", [])),
            multiples=tuple((str(g), int(k)) for g, k in d.get("multiples", [])),
            input_dtype=str(d.get("input_dtype", "float32")),
        )


def example_input(input_shape: tuple[int, ...], dtype: str) -> torch.Tensor | tuple[int, ...]:
    """A batch of two for the morph engine: its shape for float inputs, or zeros of ``dtype``
    (token ids: the engine's fake-tensor probes must see the model's own input dtype)."""
    if dtype == "float32":
        return (2, *input_shape)
    return torch.zeros((2, *input_shape), dtype=getattr(torch, dtype))


def block_module(name: str) -> str:
    """Module path of the residual block inserted as layer ``name``."""
    return f"gs_blocks.{name}"


def make_model(factory: str, device: str | torch.device | None = None) -> nn.Module:
    """Call the factory (on ``device``: ``meta`` builds without memory); errors are SpecErrors."""
    f = load_factory(factory)
    try:
        if device is None:
            model = f()
        else:
            with torch.device(device):
                model = f()
    except GrowsearchError:
        raise
    except Exception as e:  # the user's code
        raise SpecError(f"factory {factory!r}: raised {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise SpecError(f"factory {factory!r}: returned {type(model).__name__}, not an nn.Module")
    return model


def describe(
    factory: str,
    weights: str | None,
    input_shape: tuple[int, ...],
    num_classes: int,
    input_dtype: str = "float32",
) -> dict[str, Any]:
    """Load and check the user's model, and find its width groups and insertion sites.

    Returns the fields of a ``custom`` ArchSpec (see :meth:`growsearch.arch.ArchSpec.from_user_model`).
    """

    model = make_model(factory)
    if weights is not None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            model.load_state_dict(load_file(weights), strict=True)
        except (SafetensorError, OSError, RuntimeError) as e:
            msg = str(e).splitlines()[0][:300]
            raise SpecError(
                f"weights {weights}: do not load into the factory's model ({msg})"
            ) from None
    model.eval()
    with torch.no_grad():
        try:
            out = model(torch.zeros((2, *input_shape), dtype=getattr(torch, input_dtype)))
        except Exception as e:  # the user's forward on the dataset's input shape
            raise SpecError(
                f"factory {factory!r}: forward on inputs of shape {tuple(input_shape)} failed ({e})"
            ) from None
    # num_classes 0: a task other than classification, whose probe batch checks the output
    if num_classes and (not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes)):
        shape = tuple(out.shape)[1:] if isinstance(out, torch.Tensor) else type(out).__name__
        raise SpecError(
            f"factory {factory!r}: outputs {shape}, expected ({num_classes},) class scores"
        )
    try:
        example = example_input(input_shape, input_dtype)
        space = analyse_model(model, example)
    except MorphError as e:
        raise SpecError(f"factory {factory!r}: {e}") from None
    groups, failed = _widenable(space.groups, factory, example)
    if not groups and not space.sites:
        why = "; ".join([f"{r.module}: {r.reason}" for r in space.refused] + list(failed.values()))
        raise SpecError(
            f"factory {factory!r}: the model has no layer the morph engine can widen ({why}) "
            "and no output after which it can insert a block"
        )
    sites = tuple(
        (s.name, s.module, s.group if s.group not in failed else "", s.dims, s.channels)
        for s in space.sites
    )  # a site whose group cannot widen keeps the width it has
    custom = CustomModel(
        factory,
        weights,
        groups=tuple((g.name, g.producers[0]) for g in groups),
        integer=tuple(g.name for g in groups if g.integer_factors),
        multiples=tuple((g.name, g.multiple_of) for g in groups if g.multiple_of > 1),
        input_dtype=input_dtype,
        sites=sites,
        refused=(
            *((r.module, r.reason) for r in space.refused),
            *((g.producers[0], failed[g.name]) for g in space.groups if g.name in failed),
        ),
    )
    return {"layers": [(g.name, g.width) for g in groups], "custom": custom}


def _widenable(
    groups: tuple[WidthGroup, ...], factory: str, example: Any
) -> tuple[list[WidthGroup], dict[str, str]]:
    """The groups a widen by their smallest step really widens, and why each other one fails.

    The coupling analysis follows the channels through the graph; a forward that reads a size
    from a tensor and reshapes with it (``x.view(B, T, heads, C // heads)`` in an attention
    block) only fails when the widened model runs. Each group is widened once on the ``meta``
    device (no memory, no compute) and run on fake tensors, so the search space offers only
    widths that build.
    """
    try:
        meta = make_model(factory, "meta")
    except SpecError:  # a factory that cannot build on meta: every proposal is checked later
        return list(groups), {}
    ok, failed = [], {}
    for g in groups:
        step = 2 * g.width if g.integer_factors else g.width + g.multiple_of
        try:
            widen(meta, g.producers[0], step, init="zero", example_input=example)
        except MorphError as e:
            failed[g.name] = str(e)
            continue
        ok.append(g)
    return ok, failed


def build_custom(
    custom: CustomModel, input_shape: tuple[int, ...], device: str | torch.device | None = None
) -> nn.Module:
    """The factory's model with the recorded ops replayed, freshly initialised throughout:
    added units get fresh incoming and outgoing weights (``random-pad``), inserted blocks a
    fresh last layer, all drawn from torch's global generator (seed it for a seeded build)."""
    model = make_model(custom.factory, device)
    for op in custom.history:
        model = _replay(model, op, custom.example_input(input_shape), fresh=True)
    return model


def _replay(
    model: nn.Module, op: tuple[Any, ...], example: Any, *, fresh: bool = False
) -> nn.Module:
    """One recorded op applied to ``model`` (which is not modified). ``fresh``: new weights
    freshly initialised (a network of that architecture from scratch), else the morph's
    function-preserving zeros (the values do not matter on the meta device)."""
    if op[0] == "widen":
        if not fresh:
            return widen(model, str(op[1]), int(op[2]), init="zero", example_input=example)
        seed = int(torch.randint(0, 2**31 - 1, ()).item())  # follows the caller's seeding
        return widen(
            model, str(op[1]), int(op[2]), init="random-pad", seed=seed, example_input=example,
        )  # fmt: skip
    _, site, block, dims, channels = op
    return insert_block(model, str(site), str(block), int(dims), int(channels), zero=not fresh)


_META_CACHE: OrderedDict[tuple[Any, ...], nn.Module] = OrderedDict()
_META_CACHE_SIZE = 256  # meta models hold no memory for their tensors


def build_custom_meta(custom: CustomModel, input_shape: tuple[int, ...]) -> nn.Module:
    """:func:`build_custom` on the ``meta`` device (no memory, no compute), or on the CPU if
    the user's factory does something meta tensors cannot. Shared: do not modify the result.

    A search's proposals extend their ancestors' histories, so the models of history prefixes
    are kept (by factory, input shape and ops) and a new spec replays only its new ops.
    """
    try:
        base = (custom.factory, tuple(input_shape))
        history = tuple(tuple(op) for op in custom.history)
        k = len(history)
        while k > 0 and base + history[:k] not in _META_CACHE:
            k -= 1
        model = _META_CACHE.get(base + history[:k])
        if model is None:
            model = make_model(custom.factory, "meta")
            _remember(base, model)
        for i in range(k, len(history)):
            model = _replay(model, history[i], custom.example_input(input_shape))
            _remember(base + history[: i + 1], model)
        _META_CACHE.move_to_end(base + history)
        return model
    except GrowsearchError:
        raise
    except Exception:  # the user's code on meta tensors
        return build_custom(custom, input_shape)


def _remember(key: tuple[Any, ...], model: nn.Module) -> None:
    _META_CACHE[key] = model
    _META_CACHE.move_to_end(key)
    while len(_META_CACHE) > _META_CACHE_SIZE:
        _META_CACHE.popitem(last=False)


def mismatch(spec: Any) -> str | None:
    """Why ``spec`` (a ``custom`` ArchSpec) and the model it builds disagree, or None.

    The model is built on the ``meta`` device (no memory, no compute) and analysed afresh:
    every layer of the spec must name its own width group, at the spec's width.
    """

    custom = spec.custom
    try:
        model = build_custom_meta(custom, spec.input_shape)
        space = analyse_model(model, custom.example_input(spec.input_shape))
    except GrowsearchError as e:
        return str(e)
    seen: dict[str, str] = {}
    for layer in spec.layers:
        group = space.group_of(custom.module(layer.name))
        if group is None:
            return f"{spec.summary()}: layer {layer.name} is no longer a width group of the model"
        if group.width != layer.width:
            return (
                f"{spec.summary()}: layer {layer.name} has width {layer.width} in the spec "
                f"but {group.width} in the model"
            )
        if group.name in seen.values():
            return f"{spec.summary()}: layers {layer.name} and others share one width group"
        seen[layer.name] = group.name
    return None
