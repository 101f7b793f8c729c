"""The shape the code keeps (docs/architecture.md): no class over 300 lines and no function over
60 in the bot's own code, so that each stays readable in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def _too_long(package: str) -> list[str]:
    found = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = MAX_FUNCTION_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                where = path.relative_to(REPO_ROOT)
                found.append(f"{where}:{node.lineno} {node.name} is {lines} lines (> {limit})")
    return found


@pytest.mark.parametrize("package", ["bot", "cogs"])
def test_no_class_over_300_lines_and_no_function_over_60(package: str) -> None:
    assert _too_long(package) == []
