"""The documentation keeps up with the code: every setting, command, option and webhook
event is documented under docs/, nothing documented is gone, and every link between the
pages leads somewhere. The README stays a short front door."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import click

from drip.cli import cli
from drip.core.config import documented_settings
from drip.integrations.hooks import EVENT_TYPES
from tests.conftest import TESTS

REPO = TESTS.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MENTION = re.compile(r"`drip ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
MODULE_NAME = re.compile(r"(?<![\w/.-])drip(?:\.\w+)+")
MIGRATIONS = REPO / "drip" / "store" / "migrations" / "versions"


def commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    """Every command a user can run, by its full name ("segment create")."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| `drip ")]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_settings_table_is_every_setting_with_its_help_in_order() -> None:
    text = (DOCS / "operating.md").read_text()
    rows = re.findall(r"^\| `(DRIP_\w+)` \| (.*) \|$", text, re.MULTILINE)
    assert rows == documented_settings()


def test_every_command_has_a_row_naming_each_of_its_options() -> None:
    rows = table_rows((DOCS / "operating.md").read_text())
    missing = []
    for name, command in commands().items():
        mine = [row for row in rows if f"`drip {name}" in row]
        options = [opt for p in command.params for opt in p.opts if opt.startswith("--")]
        if not mine:
            missing.append(name)
        missing += [f"{name} {opt}" for opt in options if not any(opt in row for row in mine)]
    assert missing == []


def test_no_page_names_a_command_drip_does_not_have() -> None:
    known = set(commands())
    groups = {name for name, c in cli.commands.items() if isinstance(c, click.Group)}
    stale = []
    for page in PAGES:
        for first, second in MENTION.findall(page.read_text()):
            name = f"{first} {second}" if first in groups else first
            if name not in known:
                stale.append(f"{page.relative_to(REPO)}: drip {name}")
    assert stale == []


def test_every_webhook_event_is_documented_and_no_other() -> None:
    text = (DOCS / "api.md").read_text()
    paragraph = text[text.index("The events are") :].split("\n\n")[0]
    assert re.findall(r"`([a-z]+\.[a-z]+)`", paragraph) == list(EVENT_TYPES)


def test_every_link_between_the_pages_leads_to_a_file_and_heading() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), re.MULTILINE)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target}")
    assert broken == []


def test_the_readme_is_a_short_front_door_opening_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    first_block = readme.split("```")[1].splitlines()[1:]
    assert [line.split("#")[0].strip() for line in first_block] == ["make run", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert all((DOCS / name).exists() for name in re.findall(r"\(docs/(\w+\.md)\)", readme))


def test_every_page_under_docs_is_linked_from_the_readme_and_the_index() -> None:
    readme = (REPO / "README.md").read_text()
    index = (DOCS / "README.md").read_text()
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert {p for p in pages if f"(docs/{p})" not in readme} == set()
    assert {p for p in pages if f"({p})" not in index} == set()


def test_every_variable_the_pages_name_is_one_drip_or_its_tests_read() -> None:
    settings = {name for name, _help in documented_settings()}
    sources = "".join(
        path.read_text() for path in [*(REPO / "drip").rglob("*.py"), TESTS / "conftest.py"]
    )
    named = {name for page in PAGES for name in re.findall(r"DRIP_[A-Z][A-Z_]*", page.read_text())}
    assert {name for name in named - settings if f'"{name}"' not in sources} == set()


def module_names() -> tuple[set[str], set[str]]:
    """drip's modules and its packages, by the names the architecture page gives them: a
    package's `__init__.py` is named by its package, the migration revisions by their folder."""
    modules, packages = set(), set()
    for path in (REPO / "drip").rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        if path.name == "__init__.py":
            packages.add(".".join(path.parent.relative_to(REPO).parts))
        else:
            folder = MIGRATIONS if path.parent == MIGRATIONS else path.with_suffix("")
            modules.add(".".join(folder.relative_to(REPO).parts))
    return modules, packages - {"drip"}


def table_of_each_module(text: str) -> dict[str, list[str]]:
    """Each module that begins a table row, with the names in the heading over its table."""
    tables: dict[str, list[str]] = {}
    heading: list[str] = []
    for line in text.splitlines():
        if line.startswith("### "):
            heading = re.findall(r"`(drip(?:\.\w+)*)`", line)
        elif found := re.match(r"\| `(drip(?:\.\w+)+)` \|", line):
            tables[found[1]] = heading
    return tables


def packages_mapped_elsewhere() -> set[str]:
    """Packages the build maps from another folder (`drip.templates` from templates/)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(setuptools.get("package-dir", {}))


def defined_in(module: Path) -> set[str]:
    """The top-level names a module defines (classes, functions, constants)."""
    names = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def exists(name: str) -> bool:
    """A module, a package (a folder of modules), or a name defined in a module."""
    path = REPO.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file() or any(path.glob("*.py")):
        return True
    module, _, attribute = name.rpartition(".")
    source = REPO.joinpath(*module.split(".")).with_suffix(".py")
    return source.is_file() and attribute in defined_in(source)


def test_the_architecture_page_has_a_row_for_every_module_in_its_packages_table() -> None:
    text = (DOCS / "architecture.md").read_text()
    modules, packages = module_names()
    tables = table_of_each_module(text)
    unnamed = {name for name in packages if f"`{name}`" not in text}
    rowless = {name for name in modules if name not in tables}
    elsewhere = {
        name
        for name, heading in tables.items()
        if name in modules and not any(name.startswith(f"{h}.") for h in heading)
    }
    assert (sorted(unnamed), sorted(rowless), sorted(elsewhere)) == ([], [], [])


def test_every_module_the_architecture_page_names_exists() -> None:
    text = (DOCS / "architecture.md").read_text()
    allowed = packages_mapped_elsewhere()
    gone = {name for name in MODULE_NAME.findall(text) if name not in allowed and not exists(name)}
    assert sorted(gone) == []
