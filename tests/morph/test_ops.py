"""One table of operations (growsearch.morph.ops) for widen, deepen and the shrink: every
single-input operation in it, placed between two convolutions, is followed by widening
(exactly), read by deepening's rules (channel count and layout without a shape probe) and
classified by the predictions-keeping shrink (a homogeneous one passes the scale on, any other
stops it) — and no other module of the package keeps a list of torch operations of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from growsearch.grow._rescale import homogeneous_rescale
from growsearch.morph import ops, trace, widen
from growsearch.morph._graph import channels, is_spatial, kind

C = 4  # channels between the two convolutions

# arguments for the operations that need some (everything else is called with the input alone)
MODULE_ARGS = {
    "MaxPool": {"kernel_size": 2}, "AvgPool": {"kernel_size": 2}, "AdaptiveAvgPool": {"output_size": 2},
    "AdaptiveMaxPool": {"output_size": 2}, "Upsample": {"scale_factor": 2.0}, "ZeroPad": {"padding": 1},
    "ConstantPad": {"padding": 1, "value": 0.5}, "ReflectionPad": {"padding": 1},
    "ReplicationPad": {"padding": 1}, "PReLU": {"num_parameters": C}, "Dropout": {"p": 0.0},
    "AlphaDropout": {"p": 0.0},
}  # fmt: skip
FUNCTION_CALLS = {
    "max_pool": lambda f, x: f(x, 2), "avg_pool": lambda f, x: f(x, 2),
    "adaptive": lambda f, x: f(x, 2), "interpolate": lambda f, x: f(x, scale_factor=2.0),
    "upsample": lambda f, x: f(x, scale_factor=2.0), "pad": lambda f, x: f(x, (1, 1)),
    "prelu": lambda f, x: f(x, torch.full((1,), 0.25)), "leaky_relu": lambda f, x: f(x, 0.1),
    "clamp": lambda f, x: f(x, -1.0, 1.0), "clip": lambda f, x: f(x, -1.0, 1.0),
    "dropout": lambda f, x: f(x, 0.0, False), "full_like": lambda f, x: f(x, 0.5),
    "zeros_like": lambda f, x: x + f(x), "ones_like": lambda f, x: x * f(x),
    "empty_like": lambda f, x: x + torch.zeros_like(f(x)),
    "rand_like": lambda f, x: x + 0 * f(x), "randn_like": lambda f, x: x + 0 * f(x),
    "rsqrt": lambda f, x: f(x.abs() + 1), "sqrt": lambda f, x: f(x.abs()),
}  # fmt: skip
METHOD_CALLS = {
    "clamp": lambda x: x.clamp(-1.0, 1.0), "clamp_": lambda x: x.clone().clamp_(-1.0, 1.0),
    "clip": lambda x: x.clip(-1.0, 1.0), "to": lambda x: x.to(torch.float32),
    "type_as": lambda x: x.type_as(x), "pow": lambda x: x.pow(2),
    "relu_": lambda x: x.clone().relu_(), "tanh_": lambda x: x.clone().tanh_(),
    "sigmoid_": lambda x: x.clone().sigmoid_(), "double": lambda x: x.double().float(),
    "half": lambda x: x.half().float(), "bfloat16": lambda x: x.bfloat16().float(),
    "sqrt": lambda x: x.abs().sqrt(), "rsqrt": lambda x: (x.abs() + 1).rsqrt(),
}  # fmt: skip
EXACT_TOL = {"half": 1e-2, "bfloat16": 5e-2}  # the cast itself rounds


def _rank(name: str) -> int:
    return 5 if name.endswith("3d") else 4 if name.endswith("2d") else 3


def _module_case(cls: type[nn.Module]) -> nn.Module:
    kwargs = next((v for k, v in MODULE_ARGS.items() if cls.__name__.startswith(k)), {})
    return cls(**kwargs)


class Between(nn.Module):
    """conv -> op -> conv, in the op's dimensionality."""

    def __init__(self, rank: int, op: nn.Module | None, call) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        conv = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}[rank]
        self.conv1, self.conv2 = conv(2, C, 3, padding=1), conv(C, 3, 1)
        self.op, self.call = op, call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        h = self.op(h) if self.op is not None else self.call(h)
        return self.conv2(h)


def _bind(call, fn):  # type: ignore[no-untyped-def]
    return lambda x: call(fn, x)


def _cases() -> list[tuple[str, int, nn.Module | None, object, ops.OpInfo]]:
    cases = []
    roles = ("elementwise", "spatial")
    for cls, info in ops.MODULES.items():
        if info.role in roles:
            cases.append((cls.__name__, _rank(cls.__name__), _module_case(cls), None, info))
    for fn, info in ops.FUNCTIONS.items():
        if info.role in roles:
            name = fn.__name__
            call = next((c for k, c in FUNCTION_CALLS.items() if k in name), lambda f, x: f(x))
            cases.append((f"F.{name}", _rank(name), None, _bind(call, fn), info))
    for meth, info in ops.METHODS.items():
        if info.role == "elementwise":
            call = METHOD_CALLS.get(meth, (lambda m: lambda x: getattr(x, m)())(meth))
            cases.append((f".{meth}", 3, None, call, info))
    return cases


CASES = _cases()


@pytest.mark.filterwarnings("ignore:`nn.functional.upsample` is deprecated")
@pytest.mark.parametrize(
    ("name", "rank", "module", "call", "info"), CASES, ids=[c[0] for c in CASES]
)
def test_every_single_input_op_is_followed_by_widen_deepen_and_the_shrink(
    name: str,
    rank: int,
    module: nn.Module | None,
    call,
    info: ops.OpInfo,  # type: ignore[no-untyped-def]
) -> None:
    torch.manual_seed(0)
    model = Between(rank, module, call).eval()
    x = torch.randn(2, 2, *([6] * (rank - 2)))
    # widen follows it, exactly
    child = widen(model, "conv1", 2 * C, init="net2net", seed=0, example_input=x).eval()
    with torch.no_grad():
        err = (child(x) - model(x)).abs().max().item()
    assert err <= EXACT_TOL.get(name.lstrip("."), 1e-5), (name, err)
    # deepen's rules read its channel count and layout (no shape probe recorded)
    gm = trace(model)
    conv2 = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "conv2")
    # the op's node (a Python wrapper such as F.sigmoid traces to what it calls: conv2's input)
    node = next((n for n in gm.graph.nodes if _is_the_op(n, module, call, name)), conv2.args[0])
    assert kind(gm, node) == "pass", name
    assert channels(gm, node) == C and is_spatial(gm, node), name
    # the shrink passes the scale through a homogeneous op and stops it at any other
    scaled = Between(rank, module, call).eval()
    scaled.load_state_dict(model.state_dict())
    r = homogeneous_rescale(scaled, 0.5)
    homogeneous = (
        info.homogeneous or name == "F.pad"
    )  # zero padding: the shrink reads F.pad's value
    assert r.out_exponents["conv1"] == (1 if homogeneous else 0), name
    with torch.no_grad():
        want = model(x) * 0.5**r.output_exponent
        assert torch.allclose(scaled(x), want, atol=1e-4, rtol=1e-4), name


def _is_the_op(node, module, call, name) -> bool:  # type: ignore[no-untyped-def]
    if module is not None:
        return node.op == "call_module" and node.target == "op"
    if name.startswith("."):
        return node.op == "call_method" and node.target == name[1:]
    return node.op == "call_function" and getattr(node.target, "__name__", None) == name[2:]


def test_no_other_module_of_the_package_lists_torch_operations() -> None:
    """The op table is the only place that lists activations and pooling functions (a tuple or
    set of them): a second list would let widen, deepen and the shrink disagree again."""
    root = Path(__file__).resolve().parents[2] / "growsearch"
    pattern = re.compile(r"\b(F\.(relu|gelu|max_pool[123]d|dropout)|nn\.(ReLU|GELU|MaxPool[123]d|"
                         r"Dropout)|torch\.(relu|sigmoid|tanh))\b,")  # fmt: skip
    listed = []
    for path in root.rglob("*.py"):
        if path.name == "ops.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith(("#", '"', "return")):
                listed.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert not listed, "\n".join(listed)


def test_nonnegative_values_are_known_by_their_role() -> None:
    """Deepening puts an identity layer with a ReLU only after a non-negative value: a ReLU,
    a sigmoid or an exp, maybe pooled; not after a tanh or a pooled tanh."""
    from growsearch.morph._graph import is_nonnegative

    class M(nn.Module):
        def __init__(self, act) -> None:  # type: ignore[no-untyped-def]
            super().__init__()
            self.conv, self.act, self.pool = nn.Conv1d(1, 2, 3), act, nn.MaxPool1d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(self.act(self.conv(x)))

    for act, want in [(nn.ReLU(), True), (nn.Sigmoid(), True), (nn.Hardsigmoid(), True),
                      (nn.Tanh(), False), (nn.GELU(), False)]:  # fmt: skip
        gm = trace(M(act))
        out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
        assert is_nonnegative(gm, out) is want, act
    assert F.relu in ops.functions(nonneg=True) and "relu" in ops.methods(nonneg=True)
