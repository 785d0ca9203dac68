"""The shape of the code: the worker and the command line run without the web layer,
imports sit at the top, and no module imports one that imports it back."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DRIP = Path(__file__).resolve().parent.parent.parent / "drip"
DRIP_COMMAND = str(Path(sys.executable).with_name("drip"))
# Imports inside a function, each for a reason: WeasyPrint takes a second to import (only when
# typesetting: drip.content.magnets, and drip.content.fetch_rule on main), PDFium only when a
# first-page image is made (drip.content.pdf_preview); Flask loads for `drip serve` only.
LAZY_ALLOWED = {
    "drip.content.magnets",
    "drip.content.fetch_rule",
    "drip.content.pdf_preview",
    "drip.cli.running",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(DRIP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of drip by dotted name, the migrations' versions left out (Alembic loads
    them by path, one at a time)."""
    return {
        module_name(path): path
        for path in sorted(DRIP.rglob("*.py"))
        if "versions" not in path.relative_to(DRIP).parts
    }


def flask_modules(stderr: str) -> list[str]:
    """The flask modules in a `python -X importtime` trace."""
    names = (line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line)
    return sorted(name for name in names if name.split(".")[0] == "flask")


def flask_loaded_by(*command: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return flask_modules(done.stderr)


@pytest.mark.slow
def test_the_worker_loads_no_flask() -> None:
    assert flask_loaded_by("-c", "import drip.jobs.worker") == []


@pytest.mark.slow
def test_the_command_line_loads_no_flask_but_for_serve() -> None:
    assert flask_loaded_by("-c", "import drip.cli") == []
    assert flask_loaded_by(DRIP_COMMAND, "worker", "--help") == []
    assert flask_loaded_by(DRIP_COMMAND, "dispatch", "--help") == []
    assert "flask" in flask_loaded_by("-c", "import drip.cli.serving")  # the probe sees it


def test_every_import_sits_at_the_top_of_its_module() -> None:
    inside: list[str] = []
    for name, path in modules().items():
        if name in LAZY_ALLOWED or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inside += [
                    f"{path.relative_to(DRIP.parent)}:{child.lineno}"
                    for child in ast.walk(node)
                    if isinstance(child, ast.Import | ast.ImportFrom)
                ]
    assert inside == []


def imported(name: str, tree: ast.Module, known: set[str]) -> Iterator[str]:
    """The drip modules that importing `name` runs first: each one named at its top level,
    and the packages above it (but not `name`'s own packages, already being imported)."""
    targets: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets += [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            step = ".".join(parts[:i])
            if step in known and step not in own and step != name:
                yield step


def cycle_in(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as the path that closes it, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: set(imported(name, ast.parse(path.read_text(encoding="utf-8")), known))
        for name, path in found.items()
    }


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["drip.app"]  # the walk found the package and its imports
    cycle = cycle_in(graph)
    assert cycle == [], " -> ".join(cycle)


def test_the_cycle_finder_names_the_modules_of_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycle_in(graph) == ["a", "b", "c", "a"]
    assert cycle_in({**graph, "c": {"d"}}) == []


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph seen from above: `drip.mail.links -> drip.core.clock` becomes
    `mail -> core`; a package's imports of itself are left out."""

    def top(name: str) -> str:
        return name.split(".")[1] if "." in name else ""

    packages: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if top(name):
            packages.setdefault(top(name), set()).update(
                top(t) for t in targets if top(t) and top(t) != top(name)
            )
    return packages


def test_no_package_imports_one_that_imports_it_back() -> None:
    """The packages stand in layers (core, store, content, mail, audience, ... web, cli):
    rendering never reaches up into sending or into the readers' side, so each can be read
    and tested from below."""
    packages = package_graph(import_graph())
    assert {"core", "store", "content", "mail", "audience", "dispatch", "web"} <= set(packages)
    assert packages["mail"] and packages["web"]  # the walk found what they import
    cycle = cycle_in(packages)
    assert cycle == [], " -> ".join(cycle)


def test_the_package_graph_folds_modules_into_their_packages() -> None:
    graph = {"drip.mail.links": {"drip.core.clock", "drip.mail.tokens"}, "drip.core.clock": set()}
    assert package_graph(graph) == {"mail": {"core"}, "core": set()}
