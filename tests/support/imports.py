"""What a module imports, read from its source (for the architecture tests)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    """The absolute module names ``path`` imports (``import x``, ``from x import y``:
    both ``x`` and ``x.y``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)  # and each name, which may be a module (``import t``)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names
