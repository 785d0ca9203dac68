"""Module and function size: under 450 and 60 lines, so each reads in one sitting.

The modules and functions over the limits when the limits came in are listed with the size
they had then, as debts: each may shrink but never grow, a new one over the limit fails, and
one brought under the limit must leave the list (so the list only gets shorter)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_LINES = 450
FUNCTION_LINES = 60
MODULE_DEBTS: dict[str, int] = {}
FUNCTION_DEBTS: dict[str, int] = {}


def sources() -> list[Path]:
    """drip's modules, the migrations' versions left out (generated, one per schema step)."""
    return [p for p in sorted((ROOT / "drip").rglob("*.py")) if "versions" not in p.parts]


def module_sizes() -> dict[str, int]:
    return {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in sources()
    }


def function_sizes() -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{path.relative_to(ROOT)}:{node.name}"
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                sizes[key] = max(size, sizes.get(key, 0))
    return sizes


def over(sizes: dict[str, int], limit: int, debts: dict[str, int]) -> list[str]:
    """What breaks the rule: over the limit and not a debt, or a debt that grew."""
    return [
        f"{name}: {size} lines (limit {debts.get(name, limit)})"
        for name, size in sorted(sizes.items())
        if size > debts.get(name, limit)
    ]


def paid(sizes: dict[str, int], limit: int, debts: dict[str, int]) -> list[str]:
    """Debts no longer owed (under the limit, or gone): to strike from the list."""
    return sorted(name for name in debts if sizes.get(name, 0) <= limit)


def test_no_module_is_over_450_lines_beyond_its_recorded_debt() -> None:
    assert over(module_sizes(), MODULE_LINES, MODULE_DEBTS) == []


def test_no_function_is_over_60_lines_beyond_its_recorded_debt() -> None:
    assert over(function_sizes(), FUNCTION_LINES, FUNCTION_DEBTS) == []


def test_the_lists_of_debts_hold_only_what_is_still_owed() -> None:
    assert paid(module_sizes(), MODULE_LINES, MODULE_DEBTS) == []
    assert paid(function_sizes(), FUNCTION_LINES, FUNCTION_DEBTS) == []


def test_the_rule_finds_a_module_that_grew_and_one_paid_off() -> None:
    assert over({"a.py": 451, "b.py": 500}, 450, {"b.py": 499}) == [
        "a.py: 451 lines (limit 450)",
        "b.py: 500 lines (limit 499)",
    ]
    assert paid({"b.py": 450}, 450, {"b.py": 499, "c.py": 600}) == ["b.py", "c.py"]
