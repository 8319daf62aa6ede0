"""A rescaling that keeps a positively homogeneous network's predictions: weights × λ.

For ReLU networks f(λ·x) = λ·f(x) layer by layer, so multiplying a Linear/Conv's weight by λ and
its bias by λ^e (e: the exponent of λ its output carries) scales what flows downstream by λ^e
and changes nothing else. A normalisation (BatchNorm, LayerNorm, GroupNorm) divides the scale
out again (its running statistics are rescaled with it), and the model's output carries λ^e: a
logit temperature, so every input keeps its predicted class.

:func:`homogeneous_rescale` finds the exponents on the model's torch.fx graph, not per model:
an exponent flows forward through the graph; a Linear/Conv adds 1 (fewer where a constraint
caps it); ReLU, pooling, reshapes, dropout keep it; normalisations reset it to 0; an add or a
concat needs equal exponents on its inputs, a product adds them, and an op that is not
positively homogeneous (GELU, sigmoid, softmax, an add of a constant, an unknown module or
function) needs exponent 0 on its inputs. Where a constraint fails, the producers upstream of
the offending input are capped and the exponents recomputed until every constraint holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from growsearch.morph import WEIGHTED, ops, trace

# From the package's one table of operations (growsearch.morph.ops): the operations widening
# and deepening follow are the ones the shrink knows.
_NORMS = ops.modules("norm", "group_norm", "layer_norm")
# m(λ·x) = λ·m(x) for λ > 0
_KEEP_MODULES = ops.modules(homogeneous=True)
_KEEP_FUNCTIONS = ops.functions(homogeneous=True)
_KEEP_METHODS = ops.methods(homogeneous=True)
_ADD_FUNCTIONS, _ADD_METHODS = ops.functions(combine="add"), ops.methods(combine="add")
_MUL_FUNCTIONS, _MUL_METHODS = ops.functions(combine="mul"), ops.methods(combine="mul")
_DIV_FUNCTIONS, _DIV_METHODS = ops.functions(combine="div"), ops.methods(combine="div")
_CAT_FUNCTIONS = ops.functions("cat", "stack")
_NON_TENSOR_METHODS = ops.methods("neutral")


@dataclass(frozen=True)
class Rescaling:
    """What :func:`homogeneous_rescale` did.

    Attributes:
        output_exponent: The model's outputs are the parent's × factor ** output_exponent.
        exponents: Per shrunk Linear/Conv module, the power of the factor its weight was
            multiplied by (its bias: the power of its output, ``out_exponents``).
        out_exponents: Per Linear/Conv module, the exponent its output carries.
    """

    output_exponent: int
    exponents: dict[str, int]
    out_exponents: dict[str, int]


def _is_producer(model: nn.Module, node: fx.Node) -> bool:
    return node.op == "call_module" and isinstance(model.get_submodule(str(node.target)), WEIGHTED)


def _is_norm(model: nn.Module, node: fx.Node) -> bool:
    return node.op == "call_module" and isinstance(model.get_submodule(str(node.target)), _NORMS)


def _nodes(args: object) -> list[fx.Node]:
    """The fx nodes in (nested) args."""
    out: list[fx.Node] = []
    fx.node.map_arg(args, out.append)  # type: ignore[type-var]
    return out


def _has_constant(node: fx.Node) -> bool:
    """An add/sub with a non-zero number among its operands (not homogeneous unless scale 0)."""
    return any(isinstance(a, int | float) and a != 0 for a in node.args)


class _Exponents:
    """Forward propagation of exponents with caps on the producers' output exponents."""

    def __init__(self, model: nn.Module, gm: fx.GraphModule, scale_norms: bool = False) -> None:
        self.model, self.gm, self.scale_norms = model, gm, scale_norms
        calls = Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_module")
        self.calls = calls
        self.cap: dict[str, int] = {}
        for n in gm.graph.nodes:
            if (_is_producer(model, n) or _is_norm(model, n)) and calls[str(n.target)] > 1:
                self.cap[str(n.target)] = 0  # one module, several inputs: leave it alone
        self.exp: dict[fx.Node, int | None] = {}

    def propagate(self) -> tuple[fx.Node, int] | None:
        """Recompute the exponents; return (node, target) for the first violated constraint."""
        self.exp = {}
        for node in self.gm.graph.nodes:
            violation = self._visit(node)
            if violation is not None:
                return violation
        return None

    def _e(self, a: object) -> int | None:
        return self.exp.get(a) if isinstance(a, fx.Node) else None

    def _exps(self, nodes: list[fx.Node]) -> list[int]:
        return [e for a in nodes if (e := self.exp.get(a)) is not None]

    def _require(self, inputs: list[fx.Node], target: int) -> tuple[fx.Node, int] | None:
        for a in inputs:
            e = self.exp.get(a)
            if e is not None and e > target:
                return a, target
        return None

    def _visit(self, node: fx.Node) -> tuple[fx.Node, int] | None:
        exp = self.exp
        inputs = [a for a in _nodes((node.args, node.kwargs)) if self.exp.get(a) is not None]
        first = self._e(node.args[0]) if node.args else None
        if node.op in ("placeholder", "get_attr"):
            exp[node] = 0
        elif node.op == "output":
            es = self._exps(inputs)
            if len(set(es)) > 1:  # several outputs: one temperature for all
                return self._require(inputs, min(es))
        elif node.op == "call_module":
            mod = self.model.get_submodule(str(node.target))
            if isinstance(mod, WEIGHTED):
                e_in = first or 0
                cap = self.cap.get(str(node.target))
                if cap is not None and e_in > cap:
                    return node.args[0], cap  # type: ignore[return-value]
                exp[node] = e_in + 1 if cap is None else min(e_in + 1, cap)
            elif isinstance(mod, _NORMS):
                # an affine normalisation whose scale and shift are × λ outputs × λ
                cap = self.cap.get(str(node.target), 1 if self._affine(mod) else 0)
                exp[node] = min(1, cap)
                if self.calls[str(node.target)] > 1:  # one set of statistics, several inputs
                    return self._require(inputs, 0)
            elif isinstance(mod, _KEEP_MODULES):
                exp[node] = first
            else:
                exp[node] = 0
                return self._require(inputs, 0)
        elif node.op == "call_function" and node.target is getattr:
            exp[node] = None  # x.shape and friends
        elif (node.op == "call_function" and node.target in _KEEP_FUNCTIONS) or (
            node.op == "call_method" and node.target in _KEEP_METHODS
        ):
            exp[node] = first
        elif node.op == "call_function" and node.target is F.pad:
            value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
            mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
            if value not in (None, 0):  # padding with a constant: not homogeneous
                exp[node] = 0
                return self._require(inputs, 0)
            exp[node] = first if mode in ("constant", "reflect", "replicate", "circular") else 0
        elif node.op == "call_method" and node.target in _NON_TENSOR_METHODS:
            exp[node] = None
        elif (node.op == "call_function" and node.target in _ADD_FUNCTIONS) or (
            node.op == "call_method" and node.target in _ADD_METHODS
        ):
            es = self._exps(inputs)
            if _has_constant(node):
                exp[node] = 0
                return self._require(inputs, 0)
            if not es:
                exp[node] = None
            elif len(set(es)) > 1:
                return self._require(inputs, min(es))
            else:
                exp[node] = es[0]
        elif (node.op == "call_function" and node.target in _MUL_FUNCTIONS) or (
            node.op == "call_method" and node.target in _MUL_METHODS
        ):
            exp[node] = sum(self.exp[a] or 0 for a in inputs) if inputs else None
        elif (node.op == "call_function" and node.target in _DIV_FUNCTIONS) or (
            node.op == "call_method" and node.target in _DIV_METHODS
        ):
            num = node.args[0] if node.args else None
            violation = self._require([a for a in inputs if a is not num], 0)
            if violation is not None:
                return violation
            exp[node] = self._e(num)
        elif node.op == "call_function" and node.target in _CAT_FUNCTIONS:
            es = self._exps(inputs)
            if len(set(es)) > 1:
                return self._require(inputs, min(es))
            exp[node] = es[0] if es else None
        else:  # not known to be positively homogeneous
            exp[node] = 0
            return self._require(inputs, 0)
        return None

    def _affine(self, mod: nn.Module) -> bool:
        """Whether the rescale multiplies this normalisation's scale and shift by λ."""
        return self.scale_norms and getattr(mod, "weight", None) is not None

    def lower(self, node: fx.Node, target: int) -> bool:
        """Cap the producers upstream of ``node`` so that its exponent is at most ``target``."""
        e = self.exp.get(node)
        if e is None or e <= target:
            return False
        if _is_norm(self.model, node):
            self.cap[str(node.target)] = 0  # its output exponent is 1 at most: now 0
            return True
        if _is_producer(self.model, node):
            name = str(node.target)
            changed = self.cap.get(name, e) > target
            self.cap[name] = min(self.cap.get(name, target), target)
            src = node.args[0]
            if isinstance(src, fx.Node):
                changed = self.lower(src, target) or changed
            return changed
        inputs = [a for a in _nodes((node.args, node.kwargs)) if self.exp.get(a) is not None]
        if (node.op == "call_function" and node.target in _MUL_FUNCTIONS) or (
            node.op == "call_method" and node.target in _MUL_METHODS
        ):
            rest = sum(self.exp[a] or 0 for a in inputs[1:])
            if rest <= target:
                return self.lower(inputs[0], target - rest)
            return any([self.lower(a, 0) for a in inputs])
        if (node.op == "call_function" and node.target in _DIV_FUNCTIONS) or (
            node.op == "call_method" and node.target in _DIV_METHODS
        ):
            inputs = inputs[:1]
        return any([self.lower(a, target) for a in inputs])


def _all_capped(model: nn.Module, gm: fx.GraphModule) -> dict[str, int]:
    """Every producer and normalisation capped at 0: nothing rescaled (always consistent)."""
    return {
        str(n.target): 0 for n in gm.graph.nodes if _is_producer(model, n) or _is_norm(model, n)
    }


def _solve(model: nn.Module, scale_norms: bool) -> tuple[fx.GraphModule, _Exponents]:
    """The model's graph and exponents that satisfy every constraint."""
    gm = trace(model)
    ex = _Exponents(model, gm, scale_norms)
    for _ in range(10 * len(gm.graph.nodes) + 10):
        violation = ex.propagate()
        if violation is None:
            break
        if not ex.lower(*violation):  # cannot happen: lowering always caps something upstream
            ex.cap = _all_capped(model, gm)
    else:
        ex.cap = _all_capped(model, gm)
        ex.propagate()
    return gm, ex


def _output_exponent(gm: fx.GraphModule, ex: _Exponents) -> int:
    for node in gm.graph.nodes:
        if node.op == "output":
            es = ex._exps(_nodes(node.args))
            return es[0] if es else 0
    return 0


def rescale_output_exponent(model: nn.Module, *, scale_norms: bool = False) -> int:
    """The power of λ that :func:`homogeneous_rescale` would leave on ``model``'s output
    (its logit temperature is λ to this power); ``model`` is not modified.

    Raises:
        MorphError: The model cannot be traced with torch.fx.
    """
    return _output_exponent(*_solve(model, scale_norms))


@torch.no_grad()
def homogeneous_rescale(model: nn.Module, factor: float, *, scale_norms: bool = False) -> Rescaling:
    """Shrink every Linear/Conv of ``model`` by ``factor`` where that keeps its predictions.

    In place. Weights are multiplied by ``factor ** k`` (k is 1 unless a constraint caps it)
    and biases by ``factor`` to the power of the exponent of their output; BatchNorm running
    statistics are rescaled with their input (mean × factor^e, var × factor^2e). With
    ``scale_norms`` every affine normalisation's weight and bias are × ``factor`` as well
    (where the graph allows), so its output carries ``factor`` on: the shrink then reaches the
    layers after each normalisation as the whole-network shrink does, without moving any
    prediction. Afterwards the model's output is the old one × ``factor ** output_exponent``
    (exactly, up to float rounding and the normalisations' eps), so every input keeps its
    predicted class.

    Raises:
        MorphError: The model cannot be traced with torch.fx.
        ValueError: ``factor`` is not > 0.
    """
    if not factor > 0:
        raise ValueError(f"homogeneous_rescale: expected factor > 0, got {factor!r}")
    gm, ex = _solve(model, scale_norms)
    exponents: dict[str, int] = {}
    out_exponents: dict[str, int] = {}
    output_exp = _output_exponent(gm, ex)
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = model.get_submodule(str(node.target))
        e_in = ex.exp.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else 0
        e_in = e_in or 0
        if isinstance(mod, WEIGHTED):
            name = str(node.target)
            if name in out_exponents:  # called more than once: capped at 0, nothing to do
                continue
            e_out = int(ex.exp[node] or 0)
            out_exponents[name] = e_out
            k = e_out - e_in
            if k:
                mod.weight.mul_(factor**k)
                exponents[name] = k
            if mod.bias is not None and e_out:
                mod.bias.mul_(factor**e_out)
        elif isinstance(mod, _NORMS):
            mean, var = getattr(mod, "running_mean", None), getattr(mod, "running_var", None)
            if e_in and mean is not None and var is not None:
                s2 = factor ** (2 * e_in)
                if getattr(mod, "weight", None) is not None:
                    # eps is added to a variance now s2 times smaller: the scale makes up for
                    # it per channel, so eval mode gives exactly what it gave before
                    eps = float(getattr(mod, "eps", 0.0))
                    mod.weight.mul_(((s2 * var + eps) / (s2 * (var + eps))).sqrt())
                mean.mul_(factor**e_in)
                var.mul_(s2)
            if ex.exp.get(node):  # scale_norms: its affine output carries factor
                mod.weight.mul_(factor)
                if mod.bias is not None:
                    mod.bias.mul_(factor)
    return Rescaling(output_exp, exponents, out_exponents)


__all__ = ["Rescaling", "homogeneous_rescale", "rescale_output_exponent"]
