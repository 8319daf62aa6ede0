"""The mutations a search may apply, and pure functions that sample or plan them.

Every sampler takes the random generator as an argument (a ``random.Random`` or a numpy
``Generator``) and returns new specs; nothing here holds randomness of its own, so a controller
that saves its generator's state reproduces its proposals exactly.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, PrivateAttr

from growsearch.arch import ArchSpec, Deepen, Op, Widen, count_flops, count_params
from growsearch.space._fields import (
    Section,
    boolean,
    integer,
    invalid,
    names_or_all,
    non_empty_list,
    number,
)

Rng = random.Random | np.random.Generator
"""A seeded source of randomness passed in by the caller."""

PosInt = Annotated[int, integer(lo=1)]
ENCODING_DRAWS = 200
"""Draws of :meth:`MutationSpace.random_descendant` before it falls back to a random walk."""
Bool = Annotated[bool, boolean()]


def _ops_per_child(v: Any) -> tuple[int, int]:
    """``n`` or ``[min, max]`` with 1 <= min <= max."""
    what = "an integer > 0 or a list [min, max] with 1 <= min <= max"
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, v]
    if (
        not isinstance(v, list | tuple)
        or len(v) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)
        or not 1 <= v[0] <= v[1]
    ):
        raise invalid(what, v)
    return int(v[0]), int(v[1])


class WidenConfig(Section):
    """``mutations.widen``: Net2WiderNet mutations.

    Attributes:
        enabled: Whether widen ops are proposed at all.
        factors: New width = round(old width x factor), each factor > 1.
        max_width: No layer (or resnet stage) grows beyond this; null = no limit.
        targets: ``all``, or the names of the layers (``s0l0``...; resnet stages ``s0``...)
            that may be widened.
    """

    enabled: Bool = True
    factors: Annotated[tuple[Annotated[float, number(gt=1.0)], ...], non_empty_list()] = (1.5, 2.0)
    max_width: PosInt | None = 256
    targets: Annotated[str | tuple[str, ...], names_or_all()] = "all"


class DeepenConfig(Section):
    """``mutations.deepen``: Net2DeeperNet mutations.

    Attributes:
        enabled: Whether deepen ops are proposed at all.
        after: ``all``, or the names of the layers after which a layer may be inserted.
        max_layers_per_stage: No stage grows beyond this many layers (blocks).
        max_blocks_per_site: A user's model (``seed_model.factory``): at most this many
            residual blocks are inserted at each insertion site.
    """

    enabled: Bool = True
    after: Annotated[str | tuple[str, ...], names_or_all()] = "all"
    max_layers_per_stage: PosInt = 4
    max_blocks_per_site: PosInt = 2


class MutationSpace(Section):
    """``mutations``: which widen/deepen ops are allowed, and the limits every child respects.

    Attributes:
        widen: Widen ops.
        deepen: Deepen ops.
        max_params: No child has more trainable parameters; null = no limit.
        max_flops: No child needs more FLOPs per sample; null = no limit.
        ops_per_child: ``(min, max)`` ops per proposal of the mutation-based controllers.
    """

    widen: WidenConfig = WidenConfig()
    deepen: DeepenConfig = DeepenConfig()
    max_params: PosInt | None = 2_000_000
    max_flops: PosInt | None = None
    ops_per_child: Annotated[tuple[int, int], BeforeValidator(_ops_per_child)] = (1, 2)

    # Costs by spec digest: counting builds a model (and runs it, for FLOPs).
    _params: dict[str, int] = PrivateAttr(default_factory=dict)
    _flops: dict[str, int] = PrivateAttr(default_factory=dict)
    _buildable: dict[str, str | None] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        # The cost caches are not part of the value.
        if not isinstance(other, MutationSpace):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(repr(self))

    # ---- costs and limits -----------------------------------------------------------------
    def params(self, spec: ArchSpec) -> int:
        """Trainable parameters of ``spec`` (cached)."""
        key = spec.digest()
        if key not in self._params:
            self._params[key] = count_params(spec)
        return self._params[key]

    def flops(self, spec: ArchSpec) -> int:
        """FLOPs per sample of ``spec`` (cached)."""
        key = spec.digest()
        if key not in self._flops:
            self._flops[key] = count_flops(spec)
        return self._flops[key]

    def fits(self, spec: ArchSpec) -> bool:
        """Whether ``spec`` is within every limit (widths, layers per stage, params, FLOPs) and
        builds into a model that agrees with it (:meth:`buildable`)."""
        return self.limit_violation(spec) is None and self.buildable(spec) is None

    def limit_violation(self, spec: ArchSpec) -> str | None:
        """Which limit ``spec`` breaks, as ``"<key>: ..."`` text, or None."""
        cap = self.widen.max_width
        if cap is not None:
            widths = [x.width for x in spec.layers] + [s.width for s in spec.stages if s.width]
            if widths and max(widths) > cap:
                return f"widen.max_width: expected every width <= {cap}, got {max(widths)}"
        if spec.custom is not None:
            most = max((spec.custom.blocks_at(s[0]) for s in spec.custom.sites), default=0)
            if most > self.deepen.max_blocks_per_site:
                return (
                    f"deepen.max_blocks_per_site: expected at most {self.deepen.max_blocks_per_site} "
                    f"blocks at a site, got {most}"
                )
        elif max(len(s.layers) for s in spec.stages) > self.deepen.max_layers_per_stage:
            depth = max(len(s.layers) for s in spec.stages)
            return (
                f"deepen.max_layers_per_stage: expected every stage to have <= "
                f"{self.deepen.max_layers_per_stage} layers, got {depth}"
            )
        if self.max_params is not None and self.params(spec) > self.max_params:
            return f"max_params: expected at most {self.max_params} parameters, got {self.params(spec)}"
        if self.max_flops is not None and self.flops(spec) > self.max_flops:
            return f"max_flops: expected at most {self.max_flops} FLOPs, got {self.flops(spec)}"
        return None

    # ---- candidate ops ----------------------------------------------------------------------
    def widen_ops(self, spec: ArchSpec) -> list[Widen]:
        """Every allowed widen of ``spec`` (before the params/FLOPs limits), in a fixed order."""
        if not self.widen.enabled:
            return []
        allowed = self.widen.targets
        ops: list[Widen] = []
        for target in spec.widen_targets():
            if allowed != "all" and target not in allowed:
                continue
            old = spec.width_of(target)
            for width in self._grown(old):
                if spec.custom is not None and spec.custom.width_error(target, old, width):
                    continue  # a normalisation sees these channels together, or attention heads
                op = Widen(target, width)
                if op not in ops:
                    ops.append(op)
        return ops

    def deepen_ops(self, spec: ArchSpec) -> list[Deepen]:
        """Every allowed deepen of ``spec`` (before the params/FLOPs limits), in a fixed order."""
        if not self.deepen.enabled:
            return []
        allowed = self.deepen.after
        ops = []
        if spec.custom is not None:  # a user's model: residual blocks at its insertion sites
            for site in spec.custom.sites:
                if allowed != "all" and site[0] not in allowed:
                    continue
                if spec.custom.blocks_at(site[0]) < self.deepen.max_blocks_per_site:
                    ops.append(Deepen(site[0], spec.new_layer_name(site[0])))
            return ops
        for stage in spec.stages:
            if len(stage.layers) >= self.deepen.max_layers_per_stage:
                continue
            for layer in stage.layers:
                if allowed == "all" or layer.name in allowed:
                    ops.append(Deepen(layer.name, spec.new_layer_name(layer.name)))
        return ops

    def _grown(self, old: int) -> list[int]:
        """The widths one widen op takes ``old`` to: round(old x factor), capped, > old."""
        out = []
        for f in self.widen.factors:
            w = round(old * f)
            if self.widen.max_width is not None:
                w = min(w, self.widen.max_width)
            if w > old and w not in out:
                out.append(w)
        return out

    def width_choices(self, base: int, cap: int | None = None) -> tuple[int, ...]:
        """Every width that widen ops can take ``base`` to (``base`` included), sorted.

        Args:
            base: The starting width.
            cap: Upper bound when ``widen.max_width`` is null (default: 8 x base).
        """
        if not self.widen.enabled:
            return (base,)
        limit = self.widen.max_width if self.widen.max_width is not None else (cap or 8 * base)
        seen, todo = {base}, [base]
        while todo:
            w = todo.pop()
            for f in self.widen.factors:
                nxt = min(round(w * f), limit)
                if nxt > w and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return tuple(sorted(seen))

    # ---- sampling --------------------------------------------------------------------------
    def random_op(self, spec: ArchSpec, rng: Rng) -> Op | None:
        """A random allowed op on ``spec`` whose result respects every limit, or None.

        The kind (widen or deepen) is drawn first among the kinds with an allowed op, then the
        op uniformly within it.
        """
        both: tuple[list[Op], list[Op]] = (list(self.widen_ops(spec)), list(self.deepen_ops(spec)))
        kinds = [k for k in both if k]
        for ki in _permutation(len(kinds), rng):
            ops = kinds[ki]
            for oi in _permutation(len(ops), rng):
                if self.fits(spec.apply(ops[oi])):
                    return ops[oi]
        return None

    def random_child(self, spec: ArchSpec, rng: Rng) -> tuple[ArchSpec, tuple[Op, ...]] | None:
        """``spec`` grown by ``ops_per_child`` random ops applied in sequence, with the ops.

        Fewer ops are applied when the limits allow no more; None when none is allowed.
        """
        lo, hi = self.ops_per_child
        n = _randint(rng, lo, hi)
        child, ops = spec, []
        for _ in range(n):
            op = self.random_op(child, rng)
            if op is None:
                break
            child = child.apply(op)
            ops.append(op)
        return (child, tuple(ops)) if ops else None

    def random_descendant(self, spec: ArchSpec, rng: Rng) -> tuple[ArchSpec, tuple[Op, ...]] | None:
        """A random architecture of the space that ``spec`` grows into, with the ops that grow
        it: the sampler of a search's initial, spread-out proposals (``ops_per_child`` does
        not apply).

        Uniform over the space's encoding, as a random architecture is in regularized evolution
        and as Optuna's random start-up samples are: per stage a depth uniform between the
        stage's depth in ``spec`` and ``deepen.max_layers_per_stage``, per layer a width uniform
        among the widths widen ops reach (:meth:`width_choices`), then drawn again until the
        architecture is within every limit and grown by allowed ops only (rejection: uniform
        over what is allowed). Where that finds nothing (tight limits, or a user model, whose
        layers are not laid out in stages of widths), it falls back to a random walk of allowed
        ops to the space's limits, cut at a uniform length. None when ``spec`` cannot grow.
        """
        if spec.family != "custom":
            for _ in range(ENCODING_DRAWS):
                widths, stage_widths = self._random_encoding(spec, rng)
                ops = plan_growth(spec, widths, stage_widths)
                if not ops or not self._allowed(ops):
                    continue
                out = spec.apply_all(ops)
                if self.fits(out):
                    return out, tuple(ops)
        return self._random_walk_prefix(spec, rng)

    def _random_encoding(
        self, spec: ArchSpec, rng: Rng
    ) -> tuple[list[list[int]], list[int] | None]:
        """Depths and widths drawn uniformly over what ``spec``'s stages can grow into."""
        top = self.deepen.max_layers_per_stage
        widths = []
        for stage in spec.stages:
            have = [x.width for x in stage.layers]
            depth = len(have)
            if self.deepen.enabled and top > depth:
                depth = _randint(rng, depth, top)
            base = int(stage.width) if stage.width is not None else have[-1]
            stage_widths = []
            for j in range(depth):
                choices = self.width_choices(have[j] if j < len(have) else base)
                stage_widths.append(choices[_randint(rng, 0, len(choices) - 1)])
            widths.append(stage_widths)
        if spec.family != "resnet":
            return widths, None
        res = []
        for stage in spec.stages:
            choices = self.width_choices(int(stage.width or 1))
            res.append(choices[_randint(rng, 0, len(choices) - 1)])
        return widths, res

    def _allowed(self, ops: Sequence[Op]) -> bool:
        """Whether every op is of an enabled kind on an allowed layer (``targets``/``after``)."""
        for op in ops:
            if isinstance(op, Widen):
                if not self.widen.enabled:
                    return False
                if self.widen.targets != "all" and op.target not in self.widen.targets:
                    return False
            else:
                if not self.deepen.enabled:
                    return False
                if self.deepen.after != "all" and op.after not in self.deepen.after:
                    return False
        return True

    def _random_walk_prefix(
        self, spec: ArchSpec, rng: Rng
    ) -> tuple[ArchSpec, tuple[Op, ...]] | None:
        """Random allowed ops from ``spec`` until the limits allow none, cut at a uniformly
        random length >= 1; None when ``spec`` cannot grow."""
        path: list[Op] = []
        specs = [spec]  # specs[k]: spec after the first k ops of the path
        # a user's model can grow for hundreds of ops before a limit, each checked by building
        # it: walk a uniform length up to twice ops_per_child's maximum instead
        budget = _randint(rng, 1, 2 * self.ops_per_child[1]) if spec.custom is not None else None
        while budget is None or len(path) < budget:
            op = self.random_op(specs[-1], rng)
            if op is None:
                break
            specs.append(specs[-1].apply(op))
            path.append(op)
        if not path:
            return None
        k = _randint(rng, 1, len(path))
        return specs[k], tuple(path[:k])

    def buildable(self, spec: ArchSpec) -> str | None:
        """None if ``spec`` builds into a model that agrees with it, else the one-line reason.

        A user's model is built on the ``meta`` device and analysed again, so a proposal whose
        spec and model would disagree is never issued; the built-in families always agree.
        """
        key = spec.digest()
        if key not in self._buildable:
            if spec.custom is None:
                self._buildable[key] = None
            else:
                from growsearch.arch import mismatch

                self._buildable[key] = mismatch(spec)
        return self._buildable[key]


def plan_growth(
    ancestor: ArchSpec,
    target_widths: Sequence[Sequence[int]],
    stage_widths: Sequence[int] | None = None,
) -> list[Op] | None:
    """The ops that grow ``ancestor`` into the architecture with the given widths, or None.

    Deepen ops come first (each new layer starts at the width of the ancestor layer it follows,
    or at the stage width for resnet), then widen ops. The ancestor's layers keep their order
    and names; which target position each one takes is the first feasible placement.

    Args:
        ancestor: The architecture to grow.
        target_widths: Widths per stage, one per layer (block), as in ``seed_model.stages``.
        stage_widths: resnet only: the target residual width of each stage (default: the
            ancestor's).

    Returns:
        The ops (possibly empty, when the target is the ancestor), or None if some stage has
        fewer layers or some width is smaller than the ancestor's.
    """
    target = [[int(w) for w in ws] for ws in target_widths]
    if len(target) != len(ancestor.stages) or any(not ws for ws in target):
        return None
    resnet = ancestor.family == "resnet"
    if stage_widths is not None and not resnet:
        return None
    if resnet:
        have_sw = [s.width or 0 for s in ancestor.stages]
        wanted = have_sw if stage_widths is None else [int(w) for w in stage_widths]
        if len(wanted) != len(ancestor.stages) or any(w < h for w, h in zip(wanted, have_sw)):
            return None

    placements = []
    for stage, want in zip(ancestor.stages, target):
        have = [x.width for x in stage.layers]
        new_base = [int(stage.width)] * len(have) if resnet else have  # type: ignore[arg-type]
        slots = _place(have, new_base, want)
        if slots is None:
            return None
        placements.append(slots)

    ops: list[Op] = []
    spec = ancestor
    names_per_stage = []
    for stage, want, slots in zip(ancestor.stages, target, placements):
        names: list[str | None] = [None] * len(want)
        for layer, pos in zip(stage.layers, slots):
            names[pos] = layer.name
        for q in range(len(want)):
            if names[q] is None:
                after = names[q - 1]
                assert after is not None  # slot 0 always holds the first ancestor layer
                op = Deepen(after, spec.new_layer_name(after))
                spec = spec.apply(op)
                ops.append(op)
                names[q] = op.name
        names_per_stage.append(names)
    if resnet:
        for i, w in enumerate(wanted):
            if w > int(spec.stages[i].width):  # type: ignore[arg-type]
                ops.append(Widen(f"s{i}", w))
                spec = spec.apply(ops[-1])
    for names, want in zip(names_per_stage, target):
        for name, w in zip(names, want):
            if w > spec.layer(name).width:  # type: ignore[arg-type]
                ops.append(Widen(name, w))  # type: ignore[arg-type]
                spec = spec.apply(ops[-1])
    return ops


def _place(have: list[int], new_base: list[int], want: list[int]) -> tuple[int, ...] | None:
    """Target positions of the ancestor's layers in one stage, or None if none is feasible.

    Ancestor layer j must land on a position with a width >= ``have[j]``; a new layer inserted
    after ancestor layer j starts at ``new_base[j]`` and must not need to shrink. Deepen inserts
    *after* a layer, so the first ancestor layer takes position 0.
    """
    n, m = len(have), len(want)
    if m < n or want[0] < have[0]:
        return None
    for rest in itertools.combinations(range(1, m), n - 1):
        slots = (0, *rest)
        if any(want[p] < have[j] for j, p in enumerate(slots)):
            continue
        owner, ok = 0, True
        for q in range(m):
            if owner + 1 < n and slots[owner + 1] == q:
                owner += 1
            if q not in slots and want[q] < new_base[owner]:
                ok = False
                break
        if ok:
            return slots
    return None


def _permutation(n: int, rng: Rng) -> list[int]:
    """A random order of ``range(n)``."""
    order = list(range(n))
    rng.shuffle(order)
    return order


def _randint(rng: Rng, lo: int, hi: int) -> int:
    """A uniform integer in ``[lo, hi]``."""
    if isinstance(rng, random.Random):
        return rng.randint(lo, hi)
    return int(rng.integers(lo, hi + 1))


def custom_params(space: MutationSpace, seed: ArchSpec) -> dict[str, tuple[int, ...]]:
    """The encoding of a user's model for samplers that jump anywhere in the space (optuna):
    ``width_<group>`` (the widths widen ops reach from the seed's; multiples of it for groups
    that grow by integer factors) and ``blocks_<site>`` (0 to ``max_blocks_per_site``)."""
    assert seed.custom is not None
    out: dict[str, tuple[int, ...]] = {}
    for layer in seed.layers:
        choices = tuple(
            w
            for w in space.width_choices(layer.width)
            if w == layer.width or not seed.custom.width_error(layer.name, layer.width, w)
        )
        if space.widen.targets != "all" and layer.name not in space.widen.targets:
            choices = (layer.width,)
        out[f"width_{layer.name}"] = choices
    top = space.deepen.max_blocks_per_site if space.deepen.enabled else 0
    for site in seed.custom.sites:
        allowed = space.deepen.after == "all" or site[0] in space.deepen.after
        out[f"blocks_{site[0]}"] = tuple(range(top + 1)) if allowed else (0,)
    return out


def custom_encode(arch: ArchSpec, seed: ArchSpec) -> dict[str, int]:
    """The :func:`custom_params` point of ``arch`` (a descendant of ``seed``)."""
    assert arch.custom is not None and seed.custom is not None
    params = {f"width_{x.name}": arch.width_of(x.name) for x in seed.layers}
    params.update({f"blocks_{s[0]}": arch.custom.blocks_at(s[0]) for s in seed.custom.sites})
    return params


def plan_custom_growth(ancestor: ArchSpec, params: dict[str, Any]) -> list[Op] | None:
    """The ops that grow ``ancestor`` (a user's model) to the :func:`custom_params` point
    ``params``, or None if it cannot: a width below the ancestor's, fewer blocks at a site, or a
    width that is not a multiple of the ancestor's for a group that grows by integer factors.

    Widen ops come first, then the blocks (which so take their site's new width).
    """
    assert ancestor.custom is not None
    c = ancestor.custom
    ops: list[Op] = []
    spec = ancestor
    for key, value in params.items():
        if not key.startswith("width_"):
            continue
        name, want = key[len("width_") :], int(value)
        have = spec.width_of(name)
        if want < have or (want > have and c.width_error(name, have, want)):
            return None
        if want > have:
            ops.append(Widen(name, want))
            spec = spec.apply(ops[-1])
    for site in c.sites:
        want = int(params.get(f"blocks_{site[0]}", 0))
        have = c.blocks_at(site[0])
        if want < have:
            return None
        for _ in range(want - have):
            ops.append(Deepen(site[0], spec.new_layer_name(site[0])))
            spec = spec.apply(ops[-1])
    return ops
