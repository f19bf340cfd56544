"""House rules read from the code itself: short functions, and a layout where each query has one home.

The import rules (layers, no cycles) are import-linter contracts in pyproject.toml, run by `make lint`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "vectorlake"
MAX_LINES = 80
# a function may be longer when a comment on the line above its `def` says why
REASON = "# long function:"


def _long_functions(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            above = lines[first - 2] if first >= 2 else ""
            if length > MAX_LINES and REASON not in above:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_80_lines_without_a_reason() -> None:
    assert _long_functions() == []


def test_the_rule_finds_a_long_function_and_accepts_a_reason(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (package / "long.py").write_text(f"def f() -> None:\n{body}\n\n\ndef g() -> None:\n    pass\n")
    assert _long_functions(package) == [f"pkg/long.py:1 f ({MAX_LINES + 1} lines)"]
    (package / "long.py").write_text(f"{REASON} a table of cases\ndef f() -> None:\n{body}\n")
    assert _long_functions(package) == []


def test_module_names_do_not_collide_across_packages() -> None:
    """No two modules of vectorlake share a name (e.g. two stream.py), apart from package markers."""
    names: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            names.setdefault(path.stem, []).append(str(path.relative_to(PACKAGE.parent)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}
