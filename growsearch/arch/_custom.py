"""A user's own model as a search seed: ``factory`` + trained ``weights``, grown by recorded ops.

A spec of family ``custom`` lists the model's widenable Linear/Conv layers (found by tracing it
with torch.fx) as one stage of named layers, and carries the history of widen/deepen ops applied
to it. Building it calls the factory and replays the history (with throw-away initial values:
weights always come from a checkpoint), so a checkpoint is still ``spec + weights``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from growsearch.exceptions import SpecError


@dataclass(frozen=True)
class CustomModel:
    """Where a ``custom`` spec comes from, and what was done to it since.

    Attributes:
        factory: ``package.module:function`` or ``/path/to/file.py:function`` returning the model.
        weights: The seed's trained weights (safetensors), or None to train it from its init.
        paths: (layer name, module path) pairs: the Linear/Conv a ``Widen`` of that layer widens.
        history: The ops applied so far, in order: ``("widen", path, width)`` or
            ``("deepen", after_path, new_path)`` (a zero-initialised residual block).
    """

    factory: str
    weights: str | None
    paths: tuple[tuple[str, str], ...]
    history: tuple[tuple[Any, ...], ...] = ()
    inserted: tuple[str, ...] = ()

    def path(self, name: str) -> str:
        """The Linear/Conv that widening layer ``name`` widens."""
        for n, p in self.paths:
            if n == name:
                return p
        raise SpecError(f"no layer named {name!r} in the custom model")

    def after_path(self, name: str) -> str:
        """The module whose output a deepen after layer ``name`` follows: the layer itself, or
        for an inserted residual block, the whole block."""
        path = self.path(name)
        return path.removesuffix(".layer1") if name in self.inserted else path

    def to_dict(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "weights": self.weights,
            "paths": [list(p) for p in self.paths],
            "history": [list(h) for h in self.history],
            "inserted": list(self.inserted),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomModel:
        return cls(
            factory=str(d["factory"]),
            weights=d.get("weights"),
            paths=tuple((str(n), str(p)) for n, p in d["paths"]),
            history=tuple(tuple(h) for h in d.get("history", [])),
            inserted=tuple(str(n) for n in d.get("inserted", [])),
        )


def load_factory(factory: str) -> Callable[[], nn.Module]:
    """Import ``module:function`` or ``file.py:function``; errors are SpecErrors."""
    target, _, fn = factory.rpartition(":")
    if not target or not fn:
        raise SpecError(
            f"factory: expected 'package.module:function' or 'file.py:function', got {factory!r}"
        )
    try:
        if target.endswith(".py"):
            path = Path(target)
            name = f"growsearch_user_{abs(hash(str(path.resolve())))}"
            module = sys.modules.get(name)
            if module is None:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except (ImportError, OSError, SyntaxError) as e:
        raise SpecError(
            f"factory {factory!r}: cannot import {target!r} ({type(e).__name__}: {e})"
        ) from None
    f = getattr(module, fn, None)
    if not callable(f):
        raise SpecError(f"factory {factory!r}: {target!r} has no function {fn!r}")
    return f


def _layer_name(path: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", path)
    if not base[:1].isalpha():
        base = f"m{base}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def describe(
    factory: str, weights: str | None, input_shape: tuple[int, ...], num_classes: int
) -> dict[str, Any]:
    """Trace the user's model and list the layers the morph engine can widen.

    Returns the fields of a ``custom`` ArchSpec (see :func:`growsearch.arch.ArchSpec.from_user_model`).
    """
    from growsearch.exceptions import MorphError
    from growsearch.morph._graph import analyse_widen, trace

    model = load_factory(factory)()
    if not isinstance(model, nn.Module):
        raise SpecError(f"factory {factory!r}: returned {type(model).__name__}, not an nn.Module")
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
            out = model(torch.zeros(2, *input_shape))
        except Exception as e:  # the user's forward on the dataset's input shape
            raise SpecError(
                f"factory {factory!r}: forward on inputs of shape {tuple(input_shape)} failed ({e})"
            ) from None
    if tuple(out.shape) != (2, num_classes):
        raise SpecError(
            f"factory {factory!r}: outputs {tuple(out.shape)[1:]}, expected ({num_classes},) class scores"
        )
    gm = trace(model)
    layers: list[tuple[str, int]] = []
    paths: list[tuple[str, str]] = []
    taken: set[str] = set()
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        m = gm.get_submodule(str(node.target))
        if not isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
            continue
        try:
            analyse_widen(gm, str(node.target))
        except MorphError:
            continue  # e.g. the output layer: its width is the number of classes
        name = _layer_name(str(node.target), taken)
        taken.add(name)
        width = m.out_features if isinstance(m, nn.Linear) else m.out_channels
        layers.append((name, int(width)))
        paths.append((name, str(node.target)))
    if not layers:
        raise SpecError(f"factory {factory!r}: the model has no layer the morph engine can widen")
    return {"layers": layers, "custom": CustomModel(factory, weights, tuple(paths))}


def build_custom(custom: CustomModel, calibration: torch.Tensor | None = None) -> nn.Module:
    """The factory's model with the recorded ops replayed (new weights are placeholders)."""
    from growsearch.morph import deepen, widen

    model = load_factory(custom.factory)()
    for op in custom.history:
        if op[0] == "widen":
            model = widen(model, str(op[1]), int(op[2]), init="zero")
        else:
            model = deepen(model, str(op[1]), init="zero", new_name=str(op[2]), block="residual")
    return model
