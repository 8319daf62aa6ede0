"""Architecture specs: immutable, hashable, JSON-serialisable descriptions of a network.

A spec is a list of stages, each a list of named layers with a width. Layer names are stable
identities, not positions: deepening inserts a layer with a fresh name and every existing layer
keeps its own, so the module names of a built model (``layers.<name>.conv``) survive morphs and a
checkpoint is always ``spec + weights``.

Families (the dimensionality of convolutions follows ``input_shape``: ``(C, L)`` is 1-D,
``(C, H, W)`` is 2-D):

- ``mlp``: each layer is Linear → BatchNorm → ReLU; the input is flattened first.
- ``cnn``: each layer is Conv → BatchNorm → ReLU; max-pooling (2) after each stage, then flatten
  and a linear head.
- ``custom``: a user's own model (``CustomModel``: a factory, trained weights, and the history
  of ops applied to it); one stage listing its widenable Linear/Conv layers. A deepen inserts a
  zero-initialised residual block after the layer.
- ``resnet``: a stem conv, then per stage basic blocks; ``Stage.width`` is the residual width of
  the stage (shared by every block through the identity shortcuts), ``Layer.width`` the inner
  width of a block. Stages after the first downsample (stride 2, projection shortcut); global
  average pooling, flatten, linear head.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from growsearch.arch._custom import CustomModel, block_module
from growsearch.exceptions import SpecError

if TYPE_CHECKING:
    import torch

FAMILIES = ("mlp", "cnn", "resnet", "custom")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Layer:
    """One layer (mlp, cnn) or one basic block (resnet)."""

    name: str
    width: int


@dataclass(frozen=True)
class Stage:
    """A run of layers at one resolution; ``width`` is the residual width (resnet only)."""

    layers: tuple[Layer, ...]
    width: int | None = None


@dataclass(frozen=True)
class Widen:
    """Widen a layer (or, for ``resnet``, a stage named ``s<i>``) to ``width`` units."""

    target: str
    width: int

    def to_dict(self) -> dict[str, Any]:
        return {"op": "widen", "target": self.target, "width": self.width}

    def __str__(self) -> str:
        return f"widen({self.target}→{self.width})"


@dataclass(frozen=True)
class Deepen:
    """Insert a new identity-initialised layer named ``name`` right after layer ``after``."""

    after: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"op": "deepen", "after": self.after, "name": self.name}

    def __str__(self) -> str:
        return f"deepen(after {self.after}: {self.name})"


Op = Widen | Deepen


def op_from_dict(d: dict[str, Any]) -> Op:
    """Inverse of ``op.to_dict()``."""
    kind = d.get("op")
    if kind == "widen":
        return Widen(str(d["target"]), int(d["width"]))
    if kind == "deepen":
        return Deepen(str(d["after"]), str(d["name"]))
    raise SpecError(f"op: expected 'widen' or 'deepen', got {kind!r}")


@dataclass(frozen=True)
class ArchSpec:
    """An immutable architecture; every method that changes it returns a new spec."""

    family: str
    input_shape: tuple[int, ...]
    num_classes: int
    stages: tuple[Stage, ...]
    kernel_size: int = 3
    batch_norm: bool = True
    dropout: float = 0.0
    custom: CustomModel | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise SpecError(f"family: must be one of {list(FAMILIES)}, got {self.family!r}")
        if not self.input_shape or any(int(s) < 1 for s in self.input_shape):
            raise SpecError(f"input_shape: expected positive sizes, got {self.input_shape!r}")
        if (self.family == "custom") != (self.custom is not None):
            raise SpecError("custom: a custom spec needs its CustomModel, and only it")
        if self.family in ("cnn", "resnet") and len(self.input_shape) not in (2, 3):
            raise SpecError(
                f"input_shape: family {self.family!r} needs (C, L) or (C, H, W), "
                f"got {tuple(self.input_shape)!r}"
            )
        if self.num_classes < (0 if self.family == "custom" else 1):
            raise SpecError(f"num_classes: expected an integer >= 1, got {self.num_classes!r}")
        if not self.stages or any(not s.layers for s in self.stages) and self.family != "custom":
            # a user's model may have no width to search, only sites to grow blocks at
            raise SpecError("stages: expected at least one stage, each with at least one layer")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise SpecError(f"kernel_size: expected an odd integer >= 1, got {self.kernel_size!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        seen: set[str] = set()
        for i, stage in enumerate(self.stages):
            if self.family == "resnet":
                if stage.width is None or stage.width < 1:
                    raise SpecError(f"stages[{i}].width: resnet stages need a width >= 1")
            elif stage.width is not None:
                raise SpecError(f"stages[{i}].width: only resnet stages have a width")
            for layer in stage.layers:
                if not _NAME.match(layer.name) or layer.name in seen:
                    raise SpecError(
                        f"stages[{i}]: layer name {layer.name!r} is invalid or repeated"
                    )
                if layer.width < 1:
                    raise SpecError(f"layer {layer.name}: width must be >= 1, got {layer.width}")
                seen.add(layer.name)

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        family: str,
        input_shape: tuple[int, ...] | list[int],
        num_classes: int,
        widths: list[list[int]] | list[int],
        stage_widths: list[int] | None = None,
        **kwargs: Any,
    ) -> ArchSpec:
        """Build a spec from plain widths, naming layers ``s<stage>l<k>``.

        ``widths`` is a list per stage (a flat list means one stage per entry for cnn/resnet and
        one stage for mlp).
        """
        if widths and not isinstance(widths[0], list | tuple):
            flat = [int(w) for w in widths]  # type: ignore[arg-type]
            widths = [flat] if family == "mlp" else [[w] for w in flat]
        stages = []
        for i, ws in enumerate(widths):
            layers = tuple(Layer(f"s{i}l{k}", int(w)) for k, w in enumerate(cast("list[int]", ws)))
            sw = None if stage_widths is None else int(stage_widths[i])
            stages.append(Stage(layers, sw))
        return cls(
            family, tuple(int(s) for s in input_shape), int(num_classes), tuple(stages), **kwargs
        )

    @classmethod
    def from_user_model(
        cls,
        factory: str,
        weights: str | None,
        input_shape: tuple[int, ...],
        num_classes: int,
        input_dtype: str = "float32",
    ) -> ArchSpec:
        """A ``custom`` spec for a user's model: its widenable layers, found by tracing it
        (``input_dtype`` ``int64`` for a model fed token ids)."""
        from growsearch.arch._custom import describe

        d = describe(factory, weights, tuple(input_shape), int(num_classes), input_dtype)
        layers = tuple(Layer(n, int(w)) for n, w in d["layers"])
        return cls(
            "custom", tuple(input_shape), int(num_classes), (Stage(layers),), custom=d["custom"]
        )

    # ---- queries ---------------------------------------------------------------------------
    @property
    def input_dtype(self) -> str:
        """``float32``, or ``int64`` for a user's model fed token ids."""
        return "float32" if self.custom is None else self.custom.input_dtype

    def example_input(self) -> torch.Tensor | tuple[int, ...]:
        """A batch of two for the morph engine: its shape, or zeros of a model fed token ids."""
        return (
            (2, *self.input_shape)
            if self.custom is None
            else self.custom.example_input(self.input_shape)
        )

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(layer for s in self.stages for layer in s.layers)

    def locate(self, name: str) -> tuple[int, int]:
        """(stage index, position) of the layer called ``name``."""
        for i, s in enumerate(self.stages):
            for k, layer in enumerate(s.layers):
                if layer.name == name:
                    return i, k
        raise SpecError(f"no layer named {name!r}; layers are {[x.name for x in self.layers]}")

    def layer(self, name: str) -> Layer:
        i, k = self.locate(name)
        return self.stages[i].layers[k]

    def stage_index(self, target: str) -> int | None:
        """The stage index if ``target`` names a resnet stage (``s<i>``), else None."""
        m = re.fullmatch(r"s(\d+)", target)
        if self.family == "resnet" and m and int(m.group(1)) < len(self.stages):
            return int(m.group(1))
        return None

    def width_of(self, target: str) -> int:
        si = self.stage_index(target)
        if si is not None:
            return int(self.stages[si].width)  # type: ignore[arg-type]
        return self.layer(target).width

    def widen_targets(self) -> list[str]:
        """Everything that can be widened: every layer, plus every stage for resnet."""
        names = [layer.name for layer in self.layers]
        if self.family == "resnet":
            names += [f"s{i}" for i in range(len(self.stages))]
        return names

    def new_layer_name(self, after: str) -> str:
        """A fresh name in the stage of ``after``: ``s<i>l<k>`` with the smallest unused k
        (``custom``: ``<site>_b<k>`` for a block inserted at site ``after``)."""
        used = {layer.name for layer in self.layers}
        if self.custom is not None:
            k = 0
            while f"{after}_b{k}" in used:
                k += 1
            return f"{after}_b{k}"
        i, _ = self.locate(after)
        k = 0
        while f"s{i}l{k}" in used:
            k += 1
        return f"s{i}l{k}"

    def dominates(self, other: ArchSpec) -> bool:
        """True if this spec can be grown from ``other``: same skeleton, every width >= and every
        layer of ``other`` present (by name, in the same stage and order)."""
        if (self.family, self.input_shape, self.num_classes, len(self.stages)) != (
            other.family,
            other.input_shape,
            other.num_classes,
            len(other.stages),
        ):
            return False
        if self.custom is not None or other.custom is not None:
            # a user's model grows by its recorded history: the ancestor's is a prefix
            if self.custom is None or other.custom is None:
                return False
            mine_c, theirs_c = self.custom, other.custom
            return (mine_c.factory, mine_c.weights) == (theirs_c.factory, theirs_c.weights) and (
                mine_c.history[: len(theirs_c.history)] == theirs_c.history
            )
        if (self.kernel_size, self.batch_norm, self.dropout) != (
            other.kernel_size,
            other.batch_norm,
            other.dropout,
        ):
            return False
        for mine, theirs in zip(self.stages, other.stages):
            if mine.width is not None and theirs.width is not None and mine.width < theirs.width:
                return False
            names = [layer.name for layer in mine.layers]
            pos = -1
            for layer in theirs.layers:
                if layer.name not in names:
                    return False
                p = names.index(layer.name)
                if p < pos or mine.layers[p].width < layer.width:
                    return False
                pos = p
        return True

    # ---- mutation (returns new specs) --------------------------------------------------------
    def apply(self, op: Op) -> ArchSpec:
        """The spec after ``op``; raises SpecError if the op does not fit this spec."""
        if self.custom is not None:
            return self._apply_custom(op)
        return self._apply(op)

    def _apply_custom(self, op: Op) -> ArchSpec:
        """A user's model: widen a width group, or insert a residual block at a site."""
        c = self.custom
        assert c is not None  # only called for custom specs
        if isinstance(op, Widen):
            old = self.width_of(op.target)
            why = c.width_error(op.target, old, op.width)
            if why is not None:
                raise SpecError(f"widen {op.target}: {why}")
            child = self._apply(op)
            custom = dataclasses.replace(
                c, history=(*c.history, ("widen", c.module(op.target), op.width))
            )
            return dataclasses.replace(child, custom=custom)
        site, module, group, dims, fixed = c.site(op.after)
        if not _NAME.match(op.name) or op.name in {x.name for x in self.layers}:
            raise SpecError(f"deepen: new layer name {op.name!r} is invalid or taken")
        channels = self.layer(group).width if group else fixed
        layers = (*self.stages[0].layers, Layer(op.name, channels))
        custom = dataclasses.replace(
            c,
            groups=(*c.groups, (op.name, f"{block_module(op.name)}.layer1")),
            blocks=(*c.blocks, (op.name, site)),
            history=(*c.history, ("deepen", module, op.name, dims, channels)),
        )
        stages = (dataclasses.replace(self.stages[0], layers=layers), *self.stages[1:])
        return dataclasses.replace(self, stages=stages, custom=custom)

    def apply_all(self, ops: Iterable[Op]) -> ArchSpec:
        """The spec after ``ops``, applied in order (:meth:`apply` each)."""
        spec = self
        for op in ops:
            spec = spec.apply(op)
        return spec

    def _apply(self, op: Op) -> ArchSpec:
        if isinstance(op, Widen):
            old = self.width_of(op.target)
            if op.width <= old:
                raise SpecError(f"widen {op.target}: new width {op.width} must exceed {old}")
            si = self.stage_index(op.target)
            if si is not None:
                stages = list(self.stages)
                stages[si] = dataclasses.replace(stages[si], width=op.width)
                return dataclasses.replace(self, stages=tuple(stages))
            i, k = self.locate(op.target)
            layers = list(self.stages[i].layers)
            layers[k] = Layer(op.target, op.width)
        elif isinstance(op, Deepen):
            i, k = self.locate(op.after)
            if not _NAME.match(op.name) or op.name in {x.name for x in self.layers}:
                raise SpecError(f"deepen: new layer name {op.name!r} is invalid or taken")
            width = (
                self.stages[i].width if self.family == "resnet" else self.stages[i].layers[k].width
            )
            layers = list(self.stages[i].layers)
            layers.insert(k + 1, Layer(op.name, int(width)))  # type: ignore[arg-type]
        else:  # pragma: no cover - Op is a closed union
            raise SpecError(f"unknown op {op!r}")
        stages = list(self.stages)
        stages[i] = dataclasses.replace(stages[i], layers=tuple(layers))
        return dataclasses.replace(self, stages=tuple(stages))

    # ---- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "stages": [
                {"width": s.width, "layers": [[x.name, x.width] for x in s.layers]}
                for s in self.stages
            ],
            "kernel_size": self.kernel_size,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
            **({"custom": self.custom.to_dict()} if self.custom is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchSpec:
        try:
            stages = tuple(
                Stage(tuple(Layer(str(n), int(w)) for n, w in s["layers"]), s.get("width"))
                for s in d["stages"]
            )
            return cls(
                family=str(d["family"]),
                input_shape=tuple(int(x) for x in d["input_shape"]),
                num_classes=int(d["num_classes"]),
                stages=stages,
                kernel_size=int(d.get("kernel_size", 3)),
                batch_norm=bool(d.get("batch_norm", True)),
                dropout=float(d.get("dropout", 0.0)),
                custom=CustomModel.from_dict(d["custom"]) if d.get("custom") else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"architecture spec: malformed ({type(e).__name__}: {e})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str) -> ArchSpec:
        try:
            return cls.from_dict(json.loads(s))
        except json.JSONDecodeError as e:
            raise SpecError(f"architecture spec: invalid JSON ({e})") from None

    def digest(self) -> str:
        """A short content hash (stable across processes, unlike ``hash()``)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def shape_digest(self) -> str:
        """A content hash of the architecture alone: a user's factory and weights count by
        file name, not by path, so the same architecture hashes alike wherever the search
        space lives (``digest`` tells specs apart, paths included)."""
        d = self.to_dict()
        custom = d.get("custom")
        if custom:
            module, _, fn = str(custom["factory"]).rpartition(":")
            weights = custom.get("weights")
            d["custom"] = {
                **custom,
                "factory": f"{Path(module).name}:{fn}",
                "weights": None if weights is None else Path(str(weights)).name,
            }
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))  # as to_json: a built-in
        return hashlib.sha256(text.encode()).hexdigest()[:12]  # family's equals its digest

    def summary(self) -> str:
        """Compact human-readable form, e.g. ``cnn[32,32|64]`` or ``resnet[16:16,16|32:32]``."""
        parts = []
        for s in self.stages:
            ws = ",".join(str(x.width) for x in s.layers)
            parts.append(f"{s.width}:{ws}" if s.width is not None else ws)
        return f"{self.family}[{'|'.join(parts)}]"
