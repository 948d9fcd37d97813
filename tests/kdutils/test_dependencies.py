"""kdutils needs only the standard library and NumPy: any package may import it."""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "kdutils").rglob("*.py"))


def top_level_imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_kdutils_imports_only_the_standard_library_numpy_and_itself(path):
    allowed = set(sys.stdlib_module_names) | {"numpy", "kdutils"}
    offending = sorted(set(top_level_imports(path)) - allowed)
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


def test_every_kdutils_module_is_checked():
    names = {path.name for path in SOURCES}
    assert {"checks.py", "digests.py", "staging.py"} <= names
