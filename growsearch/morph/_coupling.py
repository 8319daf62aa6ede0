"""Channel coupling on any fx-traceable model: which modules change when one width grows.

Widening a Linear/Conv changes a *channel space*. The analysis follows that space through the
traced graph with the shapes of every value (propagated on fake tensors: no memory, no compute)
and records, at every node that carries it, a :class:`View`: the axis that holds it and how its
channels sit in that axis (an index range inside a larger axis after a concat; a block of
features per channel after a flatten or a depthwise multiplier; repeated ``outer`` times when
other dimensions were merged in front of it). Layers that produce the space (every operand of a
residual add, a squeeze-and-excitation gate, ...) form one **width group**; per-channel layers
(BatchNorm, depthwise convs, LayerNorm over the channels, learned per-channel tensors) follow the
mapping; layers that read it get their input columns split over the replicas.

What cannot be done exactly is refused with a :class:`MorphError` naming the node: a grouped
convolution, a channel axis that is sliced, chunked or reaches the model's output, a shared
module. Normalisations over the channels themselves (LayerNorm, GroupNorm) are exact only when
every channel is replicated the same number of times, so their groups grow by integer factors.
This is the dependency analysis that structured pruning does in reverse (Fang et al., DepGraph).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import torch
from torch import fx, nn

from growsearch.exceptions import MorphError
from growsearch.morph import ops
from growsearch.morph._functional import View
from growsearch.morph._sequence import (
    ATTENTION,
    RNNS,
    TRANSFORMERS,
    attention_refusal,
    attentions,
    rnn_refusal,
)
from growsearch.morph._trace import (
    CONV,
    CONV_T,
    EMBED,
    LINEAR,
    PRODUCING,
    WEIGHTED,
    cat_dim,
    describe,
    input_shape_of,
    propagate_shapes,
    tensor_args,
    trace,
)

# The roles the walk follows, from the package's one table of operations (growsearch.morph.ops).
NORMS = ops.modules("norm")
UNARY_MODULES = ops.modules("elementwise")
SPATIAL_MODULES = ops.modules("spatial")
RESHAPE_MODULES = ops.modules("reshape")
UNARY_FUNCTIONS, UNARY_METHODS = ops.functions("elementwise"), ops.methods("elementwise")
SPATIAL_FUNCTIONS = ops.functions("spatial")
BINARY_FUNCTIONS, BINARY_METHODS = ops.functions("binary"), ops.methods("binary")
RESHAPE_FUNCTIONS, RESHAPE_METHODS = ops.functions("reshape"), ops.methods("reshape")
PERMUTE_FUNCTIONS, PERMUTE_METHODS = ops.functions("permute"), ops.methods("permute")
REDUCE_FUNCTIONS, REDUCE_METHODS = ops.functions("reduce"), ops.methods("reduce")
NEUTRAL_METHODS = ops.methods("neutral")
BROADCAST_FUNCTIONS = ops.functions("broadcast")
BROADCAST_METHODS = ops.methods("broadcast")  # pass when the channel axis keeps its size
CAT_FUNCTIONS = ops.functions("cat")
SPLIT_FUNCTIONS, SPLIT_METHODS = ops.functions("split"), ops.methods("split")


@dataclass(frozen=True)
class Touch:
    """A tensor of a module (or a module attribute) that follows the mapping along ``dim``."""

    target: str
    attr: str
    dim: int
    view: View


@dataclass
class WidenPlan:
    """Everything that changes when the channel space of one width group grows.

    ``producers`` output the channels; ``follow`` are tensors that copy the mapping (norm
    statistics, depthwise kernels, per-channel parameters); ``consumers`` read the channels and
    get their input columns split over the replicas; ``resized`` lists modules whose size
    attributes change. ``uniform`` (LayerNorm, GroupNorm over the channels) requires every
    channel to be replicated the same number of times; ``groups`` the GroupNorm group count.
    ``views`` holds the view at every node that carries the channels. ``sequence`` lists the
    torch sequence layers the channels pass, as ``(role, module, view)``: ``"rnn_in"`` for a
    recurrent layer that reads them as its inputs, ``"attention"`` for a multi-head attention
    and ``"transformer"`` for a transformer layer or stack, which read and write them (their
    embedding width, d_model); a recurrent layer whose hidden size they are is a producer.
    """

    n: int
    producers: list[str] = field(default_factory=list)
    follow: list[Touch] = field(default_factory=list)
    consumers: list[tuple[str, View]] = field(default_factory=list)
    uniform: bool = False
    groups: int = 1
    norm_modules: list[str] = field(default_factory=list)
    views: dict[str, View] = field(default_factory=dict)
    sequence: list[tuple[str, str, View]] = field(default_factory=list)


class Graph:
    """A traced model with the shape of every value.

    Args:
        model: the model to analyse (not modified).
        example_input: an input batch, or only its shape ``(B, ...)``; when None a shape is
            guessed from the first layer (see :func:`guess_input_shape`).
    """

    def __init__(self, model: nn.Module, example_input: torch.Tensor | Sequence[int] | None = None):
        self.model = model
        self.gm = trace(model)
        self.modules = dict(self.gm.named_modules())
        self.calls: dict[str, list[fx.Node]] = {}
        for node in self.gm.graph.nodes:
            if node.op == "call_module":
                self.calls.setdefault(str(node.target), []).append(node)
        shape = input_shape_of(model, example_input)
        # an example batch's dtype is kept: a model fed integers (token ids into an
        # nn.Embedding) cannot run on floats
        dtype = example_input.dtype if isinstance(example_input, torch.Tensor) else None
        propagate_shapes(self.gm, shape, dtype)

    # ---- per node ----------------------------------------------------------------------------
    def shape(self, node: Any) -> tuple[int, ...] | None:
        if not isinstance(node, fx.Node):
            return None
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        return None if shape is None else tuple(int(s) for s in shape)

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.modules.get(str(node.target)) if node.op == "call_module" else None

    def producer_axis(self, node: fx.Node) -> int | None:
        """The axis a Linear/Conv node writes its outputs along (None for other nodes)."""
        m = self.module(node)
        shape = self.shape(node)
        if shape is None:
            return None
        if isinstance(m, LINEAR + EMBED):
            return len(shape) - 1
        if isinstance(m, CONV + CONV_T) and m.groups == 1:
            return 1
        return None

    def producers(self) -> list[str]:
        """Every Linear, Embedding, ungrouped (transposed) Conv and recurrent layer called once,
        in the order of the forward."""
        out = []
        for target, nodes in self.calls.items():
            m = self.modules[target]
            if isinstance(m, PRODUCING + RNNS) and len(nodes) == 1:
                out.append(target)
        return out

    # ---- the analysis ------------------------------------------------------------------------
    def plan(self, name: str) -> WidenPlan:
        """Every module coupled to the outputs of Linear/Conv ``name``; MorphError if the
        widening cannot be done exactly."""
        if name not in self.calls:
            raise MorphError(f"widen: no layer '{name}' is called in the model's forward")
        m = self.modules[name]
        if not isinstance(m, PRODUCING + RNNS):
            raise MorphError(
                f"widen: '{name}' is a {type(m).__name__}; only Linear, Conv, ConvTranspose, "
                "Embedding and recurrent (RNN, GRU, LSTM) layers can be widened"
            )
        if len(self.calls[name]) != 1:
            raise MorphError(
                f"widen {name}: module '{name}' is called {len(self.calls[name])} times; "
                "shared layers cannot be widened"
            )
        if isinstance(m, CONV + CONV_T) and m.groups != 1:
            raise MorphError(
                f"widen {name}: grouped convolution '{name}' (groups={m.groups}) ties its "
                "outputs to its inputs; widen the layer that feeds it"
            )
        if isinstance(m, EMBED) and m.max_norm is not None:
            raise MorphError(
                f"widen {name}: embedding '{name}' renormalises its rows to max_norm="
                f"{m.max_norm}, which a wider row would change; widen it without max_norm"
            )
        start = self.calls[name][0]
        if isinstance(m, RNNS):
            return _Walk(self, name).run_rnn(start, m)
        shape = self.shape(start)
        axis = self.producer_axis(start)
        if shape is None or axis is None:
            raise MorphError(f"widen {name}: cannot infer its output shape")
        return _Walk(self, name).run(start, View(axis, 0, shape[axis]))


def _grouped_transposed(node: fx.Node, m: nn.Module) -> str:
    return (
        f"grouped transposed convolution {describe(node)} (groups={getattr(m, 'groups', '?')}) "
        "ties its outputs to its inputs in groups; it cannot follow a widening"
    )


class _Walk:
    """One traversal of the graph from a widened producer (see :meth:`Graph.plan`)."""

    def __init__(self, g: Graph, name: str):
        self.g = g
        self.name = name
        self.views: dict[fx.Node, View] = {}
        self.queue: list[fx.Node] = []
        self.consumers: dict[fx.Node, View] = {}
        self.plan = WidenPlan(n=0)
        self.gn_groups: set[int] = set()

    def fail(self, why: str) -> MorphError:
        return MorphError(f"widen {self.name}: {why}")

    def visit(self, node: fx.Node, view: View, why: str) -> None:
        shape = self.g.shape(node)
        if shape is None:
            raise self.fail(f"{describe(node)} is not a tensor the channels can be tracked in")
        if view.axis < 0:
            view = replace(view, axis=view.axis + len(shape))
        if not (0 if node.op == "get_attr" else 1) <= view.axis < len(shape):
            raise self.fail(f"the channels would move to the batch axis at {describe(node)}")
        if node in self.views:
            if self.views[node] != view:
                raise self.fail(
                    f"{describe(node)} would carry the widened channels at two different "
                    f"positions ({why})"
                )
            return
        if shape[view.axis] != view.outer * view.total * view.inner:
            raise self.fail(f"cannot follow the channels into {describe(node)} ({why})")
        self.views[node] = view
        self.queue.append(node)

    def run(self, start: fx.Node, view: View) -> WidenPlan:
        self.plan.n = view.total
        self.visit(start, view, "start")
        return self._finish()

    def run_rnn(self, start: fx.Node, m: nn.Module) -> WidenPlan:
        """From the hidden size of recurrent layer ``start``."""
        self.plan.n = int(cast(int, m.hidden_size))
        self._rnn_produces(start)
        return self._finish()

    def _finish(self) -> WidenPlan:
        plan = self.plan
        while self.queue:
            node = self.queue.pop()
            self.backward(node, self.views[node])
            for user in list(node.users):
                self.forward(node, user, self.views[node])
        for user, v in self.consumers.items():
            plan.consumers.append((str(user.target), v))
        modules = set(plan.producers) | {c for c, _ in plan.consumers}
        modules |= {t.target for t in plan.follow if t.attr != "<attr>"}
        modules |= {target for _, target, _ in plan.sequence}
        for target in modules:
            if len(self.g.calls.get(target, [])) != 1:
                raise self.fail(
                    f"module '{target}' is called {len(self.g.calls.get(target, []))} times; "
                    "shared layers cannot be widened"
                )
        if len(self.gn_groups) > 1:
            raise self.fail(f"GroupNorms with different group counts {sorted(self.gn_groups)}")
        plan.groups = next(iter(self.gn_groups), 1)
        if not plan.consumers and not plan.sequence:
            raise self.fail("no layer reads its outputs")
        plan.views = {n.name: v for n, v in self.views.items()}
        plan.producers.sort()
        return plan

    # ---- what a node that carries the channels needs from its inputs ------------------------
    def backward(self, node: fx.Node, view: View) -> None:
        g = self.g
        m = g.module(node)
        if node.op == "call_module":
            assert m is not None
            if isinstance(m, EMBED):  # reads ids: it can only produce the channels
                if (
                    view.axis != g.producer_axis(node)
                    or not view.plain
                    or view.total != self.plan.n
                ):
                    raise self.fail(
                        f"{describe(node)} is coupled to the widened channels only in part; "
                        "it cannot be widened exactly"
                    )
                if str(node.target) not in self.plan.producers:
                    self.plan.producers.append(str(node.target))
                return
            if isinstance(m, WEIGHTED):
                out_axis = g.producer_axis(node)
                if isinstance(m, CONV_T) and m.groups != 1:
                    raise self.fail(_grouped_transposed(node, m))
                if isinstance(m, CONV) and m.groups != 1:
                    self._depthwise(node, m, view, backward=True)
                elif view.axis == out_axis:
                    if not view.plain or view.total != self.plan.n:
                        raise self.fail(
                            f"{describe(node)} is coupled to the widened channels only in part "
                            "(through a concat or flatten); it cannot be widened exactly"
                        )
                    if str(node.target) not in self.plan.producers:
                        self.plan.producers.append(str(node.target))
                elif isinstance(m, LINEAR):  # acts on another axis, independently per channel
                    self.visit(tensor_args(node)[0], view, f"input of {describe(node)}")
                else:
                    raise self.fail(f"the channels sit on a spatial axis of {describe(node)}")
                return
            self._through_module(node, m, view, backward=True)
            return
        self._through_op(node, view, backward=True)

    # ---- where the channels go from a node to one of its users -----------------------------
    def forward(self, node: fx.Node, user: fx.Node, view: View) -> None:
        g = self.g
        if user.op == "output":
            raise self.fail(
                "the widened channels reach the model's output, so its shape would change"
            )
        if user.op == "call_module":
            m = g.module(user)
            assert m is not None
            if isinstance(m, RNNS):
                self._into_rnn(node, user, m, view)
                return
            if isinstance(m, ATTENTION):
                self._attention(user, m, view)
                return
            if isinstance(m, TRANSFORMERS):
                self._transformer(user, m, view)
                return
            if isinstance(m, WEIGHTED):
                if isinstance(m, CONV_T) and m.groups != 1:
                    raise self.fail(_grouped_transposed(user, m))
                if isinstance(m, CONV) and m.groups != 1:
                    self._depthwise(user, m, view, backward=False)
                    return
                read = len(g.shape(node) or ()) - 1 if isinstance(m, LINEAR) else 1
                if view.axis == read:
                    if user in self.consumers and self.consumers[user] != view:
                        raise self.fail(f"{describe(user)} reads the channels twice")
                    self.consumers[user] = view
                elif isinstance(m, LINEAR):
                    self.visit(user, view, f"{describe(user)} acts per channel")
                else:
                    raise self.fail(f"the channels sit on a spatial axis of {describe(user)}")
                return
            self._through_module(user, m, view, backward=False, source=node)
            return
        self._through_op(user, view, backward=False, source=node)

    # ---- modules other than Linear/Conv -----------------------------------------------------
    def _through_module(
        self,
        node: fx.Node,
        m: nn.Module,
        view: View,
        *,
        backward: bool,
        source: fx.Node | None = None,
    ) -> None:
        """``backward``: ``node`` carries ``view``, make its input carry it; else ``source``
        (its input) carries ``view``, make ``node`` carry it."""
        if isinstance(m, TRANSFORMERS):
            self._transformer(node, m, view)
            return
        if backward:
            inp = tensor_args(node)[0]
            target_node, out_view = inp, view
        else:
            target_node, out_view = node, view
        shape_in = self.g.shape(tensor_args(node)[0])
        shape_out = self.g.shape(node)
        if isinstance(m, UNARY_MODULES):
            if isinstance(m, nn.PReLU) and m.num_parameters > 1:
                self._follow(node, "weight", 0, view)
            self.visit(target_node, out_view, f"through {describe(node)}")
        elif isinstance(m, NORMS + (nn.GroupNorm,)):
            if view.axis != 1:
                raise self.fail(f"{describe(node)} normalises along the channels' axis")
            if isinstance(m, nn.GroupNorm) and m.num_groups != m.num_channels:
                self._uniform(node, view, "GroupNorm")
                self.gn_groups.add(m.num_groups)
            if getattr(m, "weight", None) is not None:
                self._follow(node, "weight", 0, view)
                self._follow(node, "bias", 0, view)
            for buf in ("running_mean", "running_var"):
                if getattr(m, buf, None) is not None:
                    self._follow(node, buf, 0, view)
            if not any(t.target == str(node.target) for t in self.plan.follow):
                self._follow(node, "<size>", 0, view)
            self.plan.norm_modules.append(str(node.target))
            self.visit(target_node, out_view, f"through {describe(node)}")
        elif isinstance(m, nn.LayerNorm):
            nd = len(shape_out or ())
            first = nd - len(m.normalized_shape)
            if view.axis >= first:  # the channels are normalised together: replicate uniformly
                self._uniform(node, view, "LayerNorm")
                if m.weight is not None:
                    self._follow(node, "weight", view.axis - first, view)
                if m.bias is not None:
                    self._follow(node, "bias", view.axis - first, view)
                if m.weight is None and m.bias is None:
                    self._follow(node, "<size>", view.axis - first, view)
                self.plan.norm_modules.append(str(node.target))
            self.visit(target_node, out_view, f"through {describe(node)}")
        elif isinstance(m, SPATIAL_MODULES):
            if view.axis != 1:
                raise self.fail(f"{describe(node)} mixes values along the channels' axis")
            self.visit(target_node, out_view, f"through {describe(node)}")
        elif isinstance(m, RESHAPE_MODULES):
            self._reshape(node, view, shape_in, shape_out, backward)
        else:
            raise self.fail(f"cannot propagate the widening through {describe(node)}")

    # ---- torch's sequence layers (see growsearch.morph._sequence) ---------------------------
    def _rnn_produces(self, node: fx.Node) -> None:
        """Recurrent layer ``node``'s hidden size is the widened space: every output and
        initial state that holds it carries it."""
        m = self.g.module(node)
        assert isinstance(m, RNNS)
        target = str(node.target)
        if target in self.plan.producers:
            return
        why = rnn_refusal(m)
        if why is not None:
            raise self.fail(f"{describe(node)} has {why}")
        if m.hidden_size != self.plan.n:
            raise self.fail(
                f"{describe(node)} is coupled to the widened channels only in part; "
                "it cannot be widened exactly"
            )
        self.plan.producers.append(target)
        for item, path in _tuple_items(node):
            shape = self.g.shape(item)
            if not path or shape is None:
                raise self.fail(f"{describe(item)} uses the outputs of {describe(node)} whole")
            outer = (2 if m.bidirectional else 1) if path == (0,) else 1
            self.visit(item, View(len(shape) - 1, 0, self.plan.n, 1, outer), describe(node))
        for state in _rnn_states(node):
            shape = self.g.shape(state)
            if shape is None:
                raise self.fail(f"cannot follow the initial state of {describe(node)}")
            self.visit(state, View(len(shape) - 1, 0, self.plan.n), f"state of {describe(node)}")

    def _into_rnn(self, node: fx.Node, user: fx.Node, m: nn.Module, view: View) -> None:
        """``node`` carries the channels into recurrent layer ``user``: as its input features
        (a reader) or as its initial state (its hidden size: a producer)."""
        nd = len(self.g.shape(node) or ())
        if node in _rnn_states(user):
            if view.axis != nd - 1 or not view.plain:
                raise self.fail(
                    f"the channels sit on another axis of the state of {describe(user)}"
                )
            self._rnn_produces(user)
            return
        if view.axis != nd - 1:
            raise self.fail(f"the channels sit on the time or batch axis of {describe(user)}")
        entry = ("rnn_in", str(user.target), view)
        known = [e for e in self.plan.sequence if e[1] == entry[1] and e[0] == "rnn_in"]
        if known and known[0] != entry:
            raise self.fail(f"{describe(user)} reads the channels twice")
        if not known:
            self.plan.sequence.append(entry)

    def _attention(self, node: fx.Node, m: nn.Module, view: View) -> None:
        """Multi-head attention ``node`` reads and writes the channels (its embedding width)."""
        assert isinstance(m, nn.MultiheadAttention)
        if any(e[1] == str(node.target) for e in self.plan.sequence):
            return
        why = attention_refusal(m)
        if why is not None:
            raise self.fail(f"{describe(node)} has {why}")
        if not view.plain or view.total != self.plan.n or m.embed_dim != self.plan.n:
            raise self.fail(
                f"{describe(node)} is coupled to the widened channels only in part; "
                "its embedding width cannot follow them exactly"
            )
        self.plan.sequence.append(("attention", str(node.target), view))
        for arg in _attention_inputs(node):
            nd = len(self.g.shape(arg) or ())
            self.visit(arg, View(nd - 1, 0, self.plan.n), f"input of {describe(node)}")
        for item, path in _tuple_items(node):
            shape = self.g.shape(item)
            if not path or shape is None:
                raise self.fail(f"{describe(item)} uses the outputs of {describe(node)} whole")
            if path != (0,):
                raise self.fail(
                    f"{describe(item)} uses the attention weights of {describe(node)}, which "
                    "average over the heads a widening adds"
                )
            self.visit(item, View(len(shape) - 1, 0, self.plan.n), describe(node))

    def _transformer(self, node: fx.Node, m: nn.Module, view: View) -> None:
        """A transformer layer or stack ``node`` reads and writes the channels (its d_model):
        its inputs (``src``; ``tgt`` and ``memory``) and its output carry them."""
        if any(e[1] == str(node.target) for e in self.plan.sequence):
            return
        for attn in attentions(m):
            why = attention_refusal(attn)
            if why is not None:
                raise self.fail(f"{describe(node)} has an attention with {why}")
        nd = len(self.g.shape(node) or ())
        if view.axis != nd - 1 or not view.plain:
            raise self.fail(f"the channels sit on another axis than d_model of {describe(node)}")
        self._uniform(node, view, type(m).__name__)  # its LayerNorms see the channels together
        self.plan.sequence.append(("transformer", str(node.target), view))
        decoder = isinstance(m, nn.TransformerDecoder | nn.TransformerDecoderLayer)
        for i, key in enumerate(("tgt", "memory") if decoder else ("src",)):
            arg = node.args[i] if len(node.args) > i else node.kwargs.get(key)
            if isinstance(arg, fx.Node):
                nd_in = len(self.g.shape(arg) or ())
                self.visit(arg, View(nd_in - 1, 0, self.plan.n), f"input of {describe(node)}")
        self.visit(node, view, describe(node))

    def _depthwise(self, node: fx.Node, m: nn.Module, view: View, *, backward: bool) -> None:
        assert isinstance(m, CONV)
        if m.groups != m.in_channels:
            raise self.fail(
                f"grouped convolution '{node.target}' (groups={m.groups}) mixes channels "
                "within groups; only depthwise convolutions can follow a widening"
            )
        mult = m.out_channels // m.in_channels
        if view.axis != 1:
            raise self.fail(f"the channels sit on a spatial axis of {describe(node)}")
        if backward:
            if view.inner % mult:
                raise self.fail(f"{describe(node)} splits a channel's features")
            in_view = replace(view, inner=view.inner // mult)
            out_view = view
        else:
            in_view = view
            out_view = replace(view, inner=view.inner * mult)
        self._follow(node, "weight", 0, out_view)
        if m.bias is not None:
            self._follow(node, "bias", 0, out_view)
        self._follow(node, "<in>", 0, in_view)
        if backward:
            self.visit(tensor_args(node)[0], in_view, f"input of {describe(node)}")
        else:
            self.visit(node, out_view, f"through {describe(node)}")

    def _uniform(self, node: fx.Node, view: View, what: str) -> None:
        if view.offset != 0 or view.outer != 1 or view.total != self.plan.n:
            raise self.fail(
                f"{what} '{node.target}' normalises the widened channels together with others; "
                "it cannot be widened exactly"
            )
        self.plan.uniform = True

    def _follow(self, node: fx.Node, attr: str, dim: int, view: View) -> None:
        t = Touch(str(node.target), attr, dim, view)
        if t not in self.plan.follow:
            self.plan.follow.append(t)

    # ---- functions and methods -------------------------------------------------------------
    def _through_op(
        self, node: fx.Node, view: View, *, backward: bool, source: fx.Node | None = None
    ) -> None:
        g = self.g
        op, target = node.op, node.target
        args = tensor_args(node)
        shape_out = g.shape(node)
        if op in ("placeholder",):
            raise self.fail(
                f"the widened channels are combined with the model's input '{node.name}', "
                "whose width cannot change"
            )
        if op == "get_attr":
            if not backward:  # pragma: no cover - get_attr has no inputs
                return
            self._follow(node, "<attr>", view.axis, view)
            return
        if (
            op == "call_function"
            and target is getattr
            or (op == "call_method" and target in NEUTRAL_METHODS)
        ):
            return
        if _is(node, UNARY_FUNCTIONS, UNARY_METHODS):
            self._same(node, args[0], view, backward)
        elif _is(node, SPATIAL_FUNCTIONS, set()):
            if view.axis != 1:
                raise self.fail(f"{describe(node)} mixes values along the channels' axis")
            self._same(node, args[0], view, backward)
        elif _is(node, BINARY_FUNCTIONS, BINARY_METHODS):
            nd = len(shape_out or ())
            if not backward:
                assert source is not None
                self.visit(node, _shift(view, nd - len(g.shape(source) or ())), "operand")
            else:
                for a in args:
                    sa = g.shape(a)
                    if sa is None:
                        continue
                    ax = view.axis - (nd - len(sa))
                    if ax < 0 or (sa[ax] == 1 and (shape_out or ())[view.axis] != 1):
                        continue  # broadcast along the channels: carries none of them
                    self.visit(a, replace(view, axis=ax), f"operand of {describe(node)}")
        elif _is(node, CAT_FUNCTIONS, set()):
            self._cat(node, view, backward, source)
        elif _is(node, RESHAPE_FUNCTIONS, RESHAPE_METHODS):
            self._reshape(node, view, g.shape(args[0]), shape_out, backward)
        elif _is(node, PERMUTE_FUNCTIONS, PERMUTE_METHODS):
            perm = _permutation(node, len(shape_out or ()))
            if backward:
                self.visit(
                    args[0], replace(view, axis=perm[view.axis]), f"input of {describe(node)}"
                )
            else:
                self.visit(node, replace(view, axis=perm.index(view.axis)), describe(node))
        elif _is(node, BROADCAST_FUNCTIONS, BROADCAST_METHODS):
            shape_in = g.shape(args[0])
            if (
                shape_in is None
                or shape_out is None
                or len(shape_in) != len(shape_out)
                or shape_in[view.axis] != shape_out[view.axis]
            ):
                raise self.fail(f"{describe(node)} repeats the widened channels")
            self._same(node, args[0], view, backward)
        elif _is(node, REDUCE_FUNCTIONS, REDUCE_METHODS):
            self._reduce(node, view, backward)
        elif op == "call_function" and target is operator.getitem:
            self._getitem(node, view, backward)
        else:
            raise self.fail(f"cannot propagate the widening through {describe(node)}")

    def _same(self, node: fx.Node, inp: fx.Node, view: View, backward: bool) -> None:
        if backward:
            self.visit(inp, view, f"input of {describe(node)}")
        else:
            self.visit(node, view, f"through {describe(node)}")

    def _reshape(
        self,
        node: fx.Node,
        view: View,
        shape_in: tuple[int, ...] | None,
        shape_out: tuple[int, ...] | None,
        backward: bool,
    ) -> None:
        if shape_in is None or shape_out is None:
            raise self.fail(f"cannot infer the shapes around {describe(node)}")
        dest = tensor_args(node)[0] if backward else node
        options = (
            reshape_views(shape_out, shape_in, view)
            if backward
            else reshape_views(shape_in, shape_out, view)
        )
        if not options:
            raise self.fail(f"cannot follow the channels through {describe(node)}")
        known = self.views.get(dest)
        self.visit(dest, known if known in options else options[0], describe(node))

    def _cat(self, node: fx.Node, view: View, backward: bool, source: fx.Node | None) -> None:
        g = self.g
        parts = _cat_parts(node)
        nd = len(g.shape(node) or ())
        dim = cat_dim(node) % nd
        if dim != view.axis:  # stacked along another axis: every part carries the channels
            if not backward:
                self.visit(node, view, "concat")
                return
            for a in parts:
                self.visit(a, view, f"operand of {describe(node)}")
            return
        # every part holds the same channels (the two directions' final states of a
        # bidirectional RNN, side by side): the concat repeats them, as a flatten does
        same = [self.views.get(a) for a in parts]
        repeated = (
            view.outer == len(parts) and view.offset == 0 and view.inner == 1
            and view.total == self.plan.n
            if backward
            else all(v is not None and v.plain and v == same[0] for v in same)
        )  # fmt: skip
        if len(parts) > 1 and repeated:
            if backward:
                for a in parts:
                    self.visit(a, replace(view, outer=1), f"operand of {describe(node)}")
            else:
                self.visit(node, replace(view, outer=len(parts)), "concat of copies")
            return
        if view.outer != 1:
            raise self.fail(f"concat of flattened features at {describe(node)}")
        sizes = [(g.shape(a) or (0,) * nd)[dim] for a in parts]
        if any(s % view.inner for s in sizes):
            raise self.fail(f"{describe(node)} splits a channel's features")
        if not backward:
            assert source is not None
            before = 0
            for a, s in zip(parts, sizes):
                if a is source:
                    break
                before += s
            total = sum(sizes) // view.inner
            self.visit(
                node,
                replace(view, offset=view.offset + before // view.inner, total=total),
                "concat",
            )
            return
        before = 0
        for a, s in zip(parts, sizes):
            lo, hi = before // view.inner, (before + s) // view.inner
            if lo <= view.offset and view.offset + self.plan.n <= hi:
                self.visit(a, replace(view, offset=view.offset - lo, total=hi - lo), "concat part")
                return
            before += s
        raise self.fail(f"the widened channels span several operands of {describe(node)}")

    def _reduce(self, node: fx.Node, view: View, backward: bool) -> None:
        g = self.g
        inp = tensor_args(node)[0]
        nd_in = len(g.shape(inp) or ())
        dims = _reduce_dims(node, nd_in)
        keep = bool(node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False))
        if dims is None:
            raise self.fail(f"{describe(node)} reduces over the widened channels")
        if backward:
            ax = view.axis
            if not keep:
                for d in sorted(dims):
                    if d <= ax:
                        ax += 1
            if ax in dims:
                raise self.fail(f"{describe(node)} reduces over the widened channels")
            self.visit(inp, replace(view, axis=ax), f"input of {describe(node)}")
        else:
            if view.axis in dims:
                raise self.fail(f"{describe(node)} reduces over the widened channels")
            ax = view.axis if keep else view.axis - sum(1 for d in dims if d < view.axis)
            self.visit(node, replace(view, axis=ax), describe(node))

    def _getitem(self, node: fx.Node, view: View, backward: bool) -> None:
        g = self.g
        src = node.args[0]
        shape_src = g.shape(src)
        if not isinstance(src, fx.Node) or shape_src is None:
            root, path = _tuple_root(node)
            m = g.module(root) if root is not None else None
            if root is not None and isinstance(m, RNNS + ATTENTION):
                if not backward:  # pragma: no cover - a tuple never carries a view
                    raise self.fail(f"{describe(node)} takes a part of a tuple")
                if isinstance(m, RNNS):
                    self._rnn_produces(root)
                elif path == (0,):
                    self._attention(root, m, view)
                else:
                    raise self.fail(
                        f"{describe(node)} takes the attention weights of {describe(root)}"
                    )
                return
            if isinstance(src, fx.Node) and not _is(src, SPLIT_FUNCTIONS, SPLIT_METHODS):
                # an item of what a module or function returns as a tuple (e.g. the output
                # of nn.MultiheadAttention or nn.LSTM): the widening cannot pass the producer
                raise self.fail(
                    f"cannot propagate the widening through {describe(src)}, which returns "
                    f"several values ({describe(node)} takes one of them)"
                )
            raise self.fail(f"{describe(node)} takes a part of a split of the channels")
        index = node.args[1]
        items = list(index) if isinstance(index, tuple) else [index]
        nd_in = len(shape_src)
        n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
        out_axis: dict[int, int] = {}  # input axis -> output axis, for axes kept whole
        i_in = i_out = 0
        for it in items:
            if it is Ellipsis:
                for _ in range(nd_in - n_real):
                    out_axis[i_in] = i_out
                    i_in, i_out = i_in + 1, i_out + 1
            elif it is None:
                i_out += 1
            elif isinstance(it, int):
                i_in += 1
            elif isinstance(it, slice):
                if it == slice(None):
                    out_axis[i_in] = i_out
                i_in, i_out = i_in + 1, i_out + 1
            else:
                raise self.fail(f"{describe(node)} indexes with a tensor")
        while i_in < nd_in:
            out_axis[i_in] = i_out
            i_in, i_out = i_in + 1, i_out + 1
        if backward:
            inv = {o: i for i, o in out_axis.items()}
            if view.axis not in inv:
                raise self.fail(f"{describe(node)} slices the widened channels")
            self.visit(src, replace(view, axis=inv[view.axis]), f"input of {describe(node)}")
        else:
            if view.axis not in out_axis:
                raise self.fail(f"{describe(node)} slices the widened channels")
            self.visit(node, replace(view, axis=out_axis[view.axis]), describe(node))


# ---- helpers -------------------------------------------------------------------------------
def _tuple_items(
    node: fx.Node, path: tuple[int, ...] = ()
) -> list[tuple[fx.Node, tuple[int, ...]]]:
    """The tensors taken out of tuple-valued ``node`` (a module returning ``(out, h_n)`` or
    ``(out, (h_n, c_n))``) that are used, with their index paths; a use of the tuple other
    than an item (passed whole to a function) is returned as ``(user, ())``."""
    out: list[tuple[fx.Node, tuple[int, ...]]] = []
    for user in node.users:
        if (
            user.op == "call_function"
            and user.target is operator.getitem
            and isinstance(user.args[1], int)
        ):
            sub = (*path, int(user.args[1]))
            if user.meta.get("tensor_meta") is not None and hasattr(
                user.meta["tensor_meta"], "shape"
            ):
                if user.users:
                    out.append((user, sub))
            else:
                out.extend(_tuple_items(user, sub))
        else:
            out.append((user, ()))
    return out


def _tuple_root(node: fx.Node) -> tuple[fx.Node | None, tuple[int, ...]]:
    """The module node whose tuple output ``node`` is an item of, and the item's index path."""
    path: list[int] = []
    while node.op == "call_function" and node.target is operator.getitem:
        if not isinstance(node.args[1], int) or not isinstance(node.args[0], fx.Node):
            return None, ()
        path.insert(0, int(node.args[1]))
        node = node.args[0]
    return (node, tuple(path)) if node.op == "call_module" else (None, ())


def _rnn_states(node: fx.Node) -> list[fx.Node]:
    """The initial-state nodes of a recurrent layer call (``h0``, or ``h0`` and ``c0``)."""
    hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
    if isinstance(hx, fx.Node):
        return [hx]
    if isinstance(hx, list | tuple):
        return [h for h in hx if isinstance(h, fx.Node)]
    return []


def _attention_inputs(node: fx.Node) -> list[fx.Node]:
    """The query, key and value nodes of a multi-head attention call."""
    names = ("query", "key", "value")
    found = [
        node.args[i] if len(node.args) > i else node.kwargs.get(k) for i, k in enumerate(names)
    ]
    return list(dict.fromkeys(a for a in found if isinstance(a, fx.Node)))


def _is(node: fx.Node, functions: set[Any], methods: set[str]) -> bool:
    if node.op == "call_function":
        return node.target in functions
    if node.op == "call_method":
        return node.target in methods
    return False


def _shift(view: View, by: int) -> View:
    return replace(view, axis=view.axis + by)


def _cat_parts(node: fx.Node) -> list[fx.Node]:
    seq = node.args[0] if node.args else node.kwargs.get("tensors")
    return [a for a in seq if isinstance(a, fx.Node)] if isinstance(seq, list | tuple) else []


def _reduce_dims(node: fx.Node, nd: int) -> set[int] | None:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dim is None:
        return None
    dims = [dim] if isinstance(dim, int) else list(cast("Sequence[int]", dim))
    return {int(d) % nd for d in dims}


def _permutation(node: fx.Node, nd: int) -> list[int]:
    """perm such that output axis i is input axis perm[i]."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    rest: list[Any] = list(node.args[1:])
    kw: dict[str, Any] = dict(node.kwargs)
    if name == "permute":
        dims = rest[0] if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest
        return [int(d) % nd for d in (dims or kw["dims"])]
    if name in ("transpose", "swapaxes", "swapdims", "transpose_"):
        a = int(rest[0] if rest else kw["dim0"]) % nd
        b = int(rest[1] if len(rest) > 1 else kw["dim1"]) % nd
        perm = list(range(nd))
        perm[a], perm[b] = perm[b], perm[a]
        return perm
    src = rest[0] if rest else kw["source"]
    dst = rest[1] if len(rest) > 1 else kw["destination"]
    srcs = [int(s) % nd for s in (src if isinstance(src, list | tuple) else [src])]
    dsts = [int(d) % nd for d in (dst if isinstance(dst, list | tuple) else [dst])]
    perm = [-1] * nd
    for s, d in zip(srcs, dsts):
        perm[d] = s
    others = iter(i for i in range(nd) if i not in srcs)
    return [p if p >= 0 else next(others) for p in perm]


def reshape_views(shape_in: Sequence[int], shape_out: Sequence[int], view: View) -> list[View]:
    """Every view the channels can have after a reshape (row-major, as ``view``/``flatten`` do),
    first axis first; empty if they do not land in one axis of the output. More than one only
    when size-1 axes make the layout ambiguous."""
    inner_total = view.inner * math.prod(shape_in[view.axis + 1 :])
    block = view.total * inner_total  # one repeat of the channel sub-axis, in flat elements
    out = []
    for a in range(1, len(shape_out)):
        suffix = math.prod(shape_out[a + 1 :])
        if inner_total % suffix or (shape_out[a] * suffix) % block:
            continue
        outer = shape_out[a] * suffix // block
        out.append(View(a, view.offset, view.total, inner_total // suffix, outer))
    return out


__all__ = [
    "Graph",
    "Touch",
    "View",
    "WidenPlan",
    "reshape_views",
]
