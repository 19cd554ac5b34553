"""The code's shape (issue 22): every module says first what it is for, and no function is over 60 lines."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p for folder in ("shared", "services", "bench") for p in (ROOT / folder).rglob("*.py"))
LONGEST = 60


def test_there_are_modules_to_check() -> None:
    assert len(MODULES) > 100


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_starts_with_what_it_is_for_and_has_no_long_function(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert path.stat().st_size == 0 or ast.get_docstring(tree), "no module docstring"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= LONGEST]
    assert not long, long
