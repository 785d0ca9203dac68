"""The shape of the code: the worker runs without the web layer, and imports sit at the top."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

DRIP = Path(__file__).resolve().parent.parent / "drip"
LAZY_ALLOWED = {DRIP / "magnets.py"}  # WeasyPrint takes a second to import: only when typesetting


def test_worker_imports_no_flask() -> None:
    probe = (
        "import drip.worker, sys; print(sorted(m for m in sys.modules if m.startswith('flask')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_import_sits_at_the_top_of_its_module() -> None:
    inside: list[str] = []
    for path in sorted(DRIP.rglob("*.py")):
        if path in LAZY_ALLOWED or "migrations" in path.parts:
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
