"""export/ stands on its own: of this repository it imports only itself, `models`
and `kdutils`, never kdkeras, nor another module's private names."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "export").rglob("*.py"))
#: The repository's top-level packages, and those export/ may import.
FIRST_PARTY = {
    "benchmarks",
    "examples",
    "experiments",
    "export",
    "kdkeras",
    "kdutils",
    "models",
    "tests",
}
ALLOWED = {"export", "kdutils", "models"}


def imports(path):
    """`(module, name)` of every import in `path` (name None for `import module`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def test_every_export_module_is_checked():
    names = {path.relative_to(ROOT).as_posix() for path in SOURCES}
    assert {"export/cli.py", "export/runtimes.py", "export/measure/child.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_kdkeras_import(path):
    offending = [
        module
        for module, name in imports(path)
        if module == "kdkeras" or module.startswith("kdkeras.")
    ]
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_only_export_models_and_kdutils_are_imported(path):
    offending = sorted(
        module
        for module, _ in imports(path)
        if module.split(".")[0] in FIRST_PARTY - ALLOWED
    )
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


def test_export_uses_kdutils():
    users = [
        path
        for path in SOURCES
        if any(m == "kdutils" or m.startswith("kdutils.") for m, _ in imports(path))
    ]
    assert users, "no export module imports kdutils: the check above sees nothing"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_private_name_imported_across_modules(path):
    private = [
        f"{module}.{name}"
        for module, name in imports(path)
        if name and name.startswith("_") and module.split(".")[0] == "export"
    ]
    private += [
        module
        for module, _ in imports(path)
        if any(part.startswith("_") for part in module.split("."))
        and module.startswith("export")
    ]
    assert not private, f"{path.relative_to(ROOT)} imports private {private}"


def test_the_check_would_see_a_kdkeras_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from kdkeras.data import load\n")
    assert ("kdkeras.data", "load") in imports(sample)
