"""The docs cannot drift silently: every search-space key is documented with its default, the
generated tables match their CSVs, results/ is indexed, links resolve, no machine paths."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from growsearch.controllers import CONTROLLERS
from growsearch.grow import WarmStartRecipe
from growsearch.space import (
    AugmentConfig,
    BudgetConfig,
    DatasetConfig,
    DeepenConfig,
    MutationSpace,
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SeedModelConfig,
    TaskConfig,
    TrainingConfig,
    WidenConfig,
)
from growsearch.space._config import SpaceModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
SEARCH_SPACE_DOC = ROOT / "docs" / "search_space.md"
MAX_README_LINES = 250
MAX_RESULTS_ENTRIES = 30
# made by `make run`, `growsearch run` and tests/browser, ignored by git
GENERATED = ("results/runs", "results/test-artifacts")
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(work|tmp|home|root|Users)/")
TEXT_SUFFIXES = {".md", ".csv", ".txt", ".json", ".yaml", ".yml", ".html"}

# Each model of a search-space file, and the heading of its section in docs/search_space.md.
SECTIONS: list[tuple[type[BaseModel], str]] = [
    (SpaceModel, "## Top level"),
    (DatasetConfig, "## dataset"),
    (SeedModelConfig, "## seed_model"),
    (MutationSpace, "## mutations"),
    (WidenConfig, "### mutations.widen"),
    (DeepenConfig, "### mutations.deepen"),
    (TaskConfig, "## task"),
    (ObjectiveConfig, "## objective"),
    (TrainingConfig, "## training"),
    (AugmentConfig, "### training.augment"),
    (BudgetConfig, "## budget"),
    (ResourcesConfig, "## resources"),
    (SchedulerConfig, "## scheduler"),
]
# null defaults the docs spell out: what null means there
NULL_MEANS = {
    (SpaceModel, "name"): "the file's stem",
    (SpaceModel, "objective"): "null",
    (SpaceModel, "objectives"): "null",
}


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split()[0]
    start = text.index(heading + "\n")
    end = re.compile(rf"^#{{1,{len(level)}}} ", re.M).search(text, start + len(heading))
    return text[start : end.start() if end else len(text)]


def _rows(section: str) -> dict[str, list[str]]:
    """Table rows of a section by the key in their first cell (`` `key` ``)."""
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([\w.]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def _yaml(value: Any) -> str:
    """A default as the docs write it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


def _check_rows(model: type[BaseModel], rows: dict[str, list[str]], where: str) -> list[str]:
    problems = []
    for name, field in model.model_fields.items():
        if name not in rows:
            problems.append(f"{where}: `{name}` has no row")
            continue
        cell = rows[name][0].replace("`", "")
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if field.is_required():
            want = "required"
        elif isinstance(default, BaseModel | dict):
            continue  # a whole section: its own table says its defaults
        elif (model, name) in NULL_MEANS:
            want = NULL_MEANS[(model, name)]
        elif model is TrainingConfig and hasattr(WarmStartRecipe, name):
            want = _yaml(getattr(WarmStartRecipe(), name))
        else:
            want = _yaml(default)
        if not (cell == want or cell.startswith(want + " ") or want == "null" and "required" in cell):  # fmt: skip
            problems.append(f"{where}: `{name}` default: the doc says {cell!r}, the code {want!r}")
    return problems


def test_every_search_space_key_is_documented_with_its_default() -> None:
    text = SEARCH_SPACE_DOC.read_text()
    problems = []
    for model, heading in SECTIONS:
        problems += _check_rows(model, _rows(_section(text, heading)), heading)
    controller = _section(text, "## controller")
    assert "| `name` | `evolution` |" in controller
    for name, cls in CONTROLLERS.items():
        if not cls.__module__.startswith("growsearch."):
            continue  # registered by a test
        assert f"**`{name}`**" in controller, f"controller {name!r} is not documented"
        options = getattr(cls, "Options", None)
        if options is None or not options.model_fields:
            continue
        part = controller[controller.index(f"**`{name}`**") :]
        end = re.search(r"\n\*\*`\w+`\*\*", part[1:])
        part = part[: end.start() + 1] if end else part
        problems += _check_rows(options, _rows(part), f"controller {name}")
    assert not problems, "docs/search_space.md is out of date:\n" + "\n".join(problems)


def test_the_search_space_example_loads(tmp_path: Path) -> None:
    """The complete example of docs/search_space.md is a valid search space."""
    import growsearch

    text = _section(SEARCH_SPACE_DOC.read_text(), "## A complete example")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    (tmp_path / "example.yaml").write_text(block.group(1))
    space = growsearch.load_space(tmp_path / "example.yaml")
    assert space.seed_arch.summary() == "cnn[32|64]"
    assert space.training.recipe() == WarmStartRecipe()


def _docs_tables() -> Any:
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "benchmarks" / "docs_tables.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_match_their_csvs(capsys: pytest.CaptureFixture[str]) -> None:
    """`python benchmarks/docs_tables.py --check`: the committed docs are what the CSVs give."""
    rc = _docs_tables().main(["--check"])
    assert rc == 0, "run python benchmarks/docs_tables.py\n" + capsys.readouterr().out[-4000:]


def test_every_table_marker_names_a_table() -> None:
    tables = _docs_tables().TABLES
    for path in (ROOT / "README.md", ROOT / "docs" / "benchmarks.md"):
        names = re.findall(r"<!-- table: ([\w-]+) -->", path.read_text())
        assert names and set(names) <= set(tables), path
        assert path.read_text().count("<!-- /table -->") == len(names), path


def _results_files() -> list[str]:
    """Files under results/ that git tracks or would track (not the ignored run folders)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "results"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        files = [f for f in out.splitlines() if (ROOT / f).exists()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        files = [str(p.relative_to(ROOT)) for p in RESULTS.rglob("*") if p.is_file()]
    return [f for f in files if not f.startswith(GENERATED)]


def test_results_is_small_and_indexed() -> None:
    entries = sorted({f.split("/")[1] for f in _results_files()})
    assert len(entries) <= MAX_RESULTS_ENTRIES, entries
    index = (RESULTS / "README.md").read_text()
    for name in entries:
        if name == "README.md":
            continue
        shown = f"`{name}/`" if (RESULTS / name).is_dir() else f"`{name}`"
        assert shown in index, f"results/README.md does not list {shown}"


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def _docs() -> list[Path]:
    return [ROOT / "README.md", RESULTS / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return out


def _check_target(target: Path, anchor: str | None, where: str) -> str | None:
    if not target.exists():
        return f"{where}: {target.relative_to(ROOT)} does not exist"
    if anchor and target.suffix == ".md" and anchor not in _anchors(target):
        return f"{where}: {target.relative_to(ROOT)} has no heading #{anchor}"
    return None


def test_links_and_paths_in_the_docs_exist() -> None:
    """Markdown links (relative to their file) and repository paths in backticks (relative to the
    root) of README.md, results/README.md and docs/*.md, and the ``docs/*.md#anchor`` references
    in the package's docstrings."""
    problems = []
    top = "|".join(re.escape(p.name) for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))  # fmt: skip
    for doc in _docs():
        text = doc.read_text()
        where = str(doc.relative_to(ROOT))
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue  # http(s), mailto
            path, _, anchor = link.partition("#")
            target = (doc.parent / path).resolve() if path else doc
            problems.append(_check_target(target, anchor or None, where))
        for path in re.findall(rf"`((?:{top})/[^`\s]*)`", text):
            if re.search(r"[<>{}*]", path) or path.startswith(GENERATED):
                continue  # a pattern or a placeholder, or a folder a run creates
            problems.append(_check_target(ROOT / path.split(":")[0], None, where))
    for py in (ROOT / "growsearch").rglob("*.py"):
        for path, anchor in re.findall(r"(docs/[\w.]+\.md)#([\w-]+)", py.read_text()):
            problems.append(_check_target(ROOT / path, anchor, str(py.relative_to(ROOT))))
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)


def test_no_machine_paths() -> None:
    files = [*_docs(), *(ROOT / f for f in _results_files())]
    found = []
    for path in files:
        if path.suffix not in TEXT_SUFFIXES:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "absolute machine paths:\n" + "\n".join(found)
