"""Where the files that ship with drip are: found through the installed package, not a checkout.

The repository keeps the templates at its root; the build maps that folder into the wheel as
the package `drip.templates` (pyproject.toml), and an editable install maps it the same way.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = Path(str(files("drip.templates")))
STATIC = PACKAGE / "web" / "static"
