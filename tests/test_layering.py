"""connector and registry never import each other; mesh imports neither (DESIGN §2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"connector": {"registry", "areamesh"}, "registry": {"connector", "areamesh"},
             "mesh": {"connector", "registry", "areamesh"}}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_dependency_direction(package: str):
    files = list((ROOT / package).rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package])
                 for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_checker_sees_a_violation(tmp_path: Path):
    bad = tmp_path / "x.py"
    bad.write_text("from registry.store import RegistryStore\nimport connector.app\n")
    assert imported_roots(bad) >= {"registry", "connector"}
