"""The package's layering: no import cycles between its parts, and an engine that needs torch only.

Every import counts, including those inside functions (a late import hides a cycle from Python,
not from a reader); imports under ``if TYPE_CHECKING:`` do not, as they never run.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "growsearch"

# Lowest first: a part may import only parts listed before it (and itself).
LAYERS = [
    "exceptions",
    "storage",  # run locations: local paths and URIs (pyarrow.fs)
    "morph",  # the engine: graph analysis, widen, deepen, inits
    "data",
    "arch",  # specs and building models from them
    "tasks",  # losses and metrics: what a trial trains for and how a split is scored
    "checkpoint",
    "train",
    "grow",  # a child from a parent: spec ops and the warm-start recipe
    "space",
    "controllers",
    "results",  # a run's trials table and study: read by everything above, written by the runner
    "runner",
    "integrations",  # training frameworks a user's loop is written in (Lightning)
    "api",
    "viz",
    "report",
    "dashboard",
    "cli",
]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, wherever the import statement is."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative import (the package imports absolutely)"
            mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from growsearch import api`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        src = rel.parts[0].removesuffix(".py")
        if src == "__init__":
            continue  # the package's front door re-exports everything
        deps = graph.setdefault(src, set())
        for mod in imports(path):
            dst = _part(mod) if mod.startswith("growsearch.") else ""
            if (
                dst
                and dst != src
                and ((PACKAGE / dst).is_dir() or (PACKAGE / f"{dst}.py").exists())
            ):
                deps.add(dst)
    return graph


def test_every_part_has_a_layer() -> None:
    assert sorted(part_graph()) == sorted(LAYERS)


def test_parts_import_only_lower_layers() -> None:
    rank = {p: i for i, p in enumerate(LAYERS)}
    upward = [
        f"{src} imports {dst}"
        for src, deps in part_graph().items()
        for dst in sorted(deps)
        if rank[dst] > rank[src]
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = part_graph()
    seen: dict[str, int] = {}  # 1: on the stack, 2: done

    def cycle_from(node: str, stack: list[str]) -> list[str] | None:
        seen[node] = 1
        for dst in sorted(graph.get(node, ())):
            if seen.get(dst) == 1:
                return [*stack[stack.index(dst) :], dst] if dst in stack else [node, dst]
            if dst not in seen and (found := cycle_from(dst, [*stack, dst])):
                return found
        seen[node] = 2
        return None

    for start in sorted(graph):
        if start not in seen and (found := cycle_from(start, [start])):
            pytest.fail("import cycle: " + " -> ".join(found))


ENGINE_ALLOWED = {"torch", "growsearch.exceptions", "growsearch.morph", "__future__"}


@pytest.mark.parametrize("path", sorted((PACKAGE / "morph").glob("*.py")), ids=lambda p: p.name)
def test_engine_depends_on_torch_only(path: Path) -> None:
    stdlib = set(sys.stdlib_module_names)
    foreign = sorted(
        mod
        for mod in imports(path)
        if mod.split(".")[0] not in stdlib
        and not any(mod == a or mod.startswith(a + ".") for a in ENGINE_ALLOWED)
    )
    assert foreign == []


def test_no_part_imports_another_parts_private_module() -> None:
    """A part uses another part through its public names (``growsearch.space.integer``), never
    through a private module (``growsearch.space._fields``): what other parts need is public."""
    private = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for mod in imports(path):
            parts = mod.split(".")
            if (
                len(parts) > 2
                and parts[0] == "growsearch"
                and parts[1] != own
                and parts[2].startswith("_")
                and not parts[2].startswith("__")
            ):
                private.append(f"{path.relative_to(PACKAGE)} imports {mod}")
    assert private == []
