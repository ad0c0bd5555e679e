"""The documentation's promises point at tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ``tests/path.py::test_name`` or ``tests/path.py::test_name[param-id]``
REFERENCE = re.compile(r"``(tests/[\w/]+\.py)::(test_\w+)(?:\[([^\]]+)\])?``")


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_test_named_in_the_robustness_table_exists():
    text = (ROOT / "docs" / "robustness.rst").read_text(encoding="utf-8")
    references = REFERENCE.findall(text)
    assert len(references) >= 40  # the table is not accidentally empty
    missing = []
    for path, name, param_id in references:
        file = ROOT / path
        if not file.is_file() or name not in _test_functions(file):
            missing.append(f"{path}::{name}")
        elif param_id and f'id="{param_id}"' not in file.read_text(encoding="utf-8"):
            missing.append(f"{path}::{name}[{param_id}]")
    assert not missing, f"docs/robustness.rst names tests that do not exist: {missing}"
