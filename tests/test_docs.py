"""The documents name only what exists, and explain themselves without the tracker."""

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = ["BUILD.md", "README.md", "benchmarks/README.md", "docs/scaling.md"]
PACKAGES = ("kdkeras", "export", "models", "experiments", "benchmarks", "examples")
# A file path of the repository, as the documents write them in backticks.
PATH = re.compile(r"`((?:{}|tests)/[\w/.-]*)`".format("|".join(PACKAGES)))
# A dotted module path in backticks, `python -m` commands included.
MODULE = re.compile(r"(?:`|python -m )((?:{})(?:\.\w+)+)".format("|".join(PACKAGES)))


def _paths(text):
    return sorted({match.rstrip("/.") for match in PATH.findall(text)})


def _modules(text):
    return sorted(set(MODULE.findall(text)))


def _module_exists(dotted):
    """`a.b.c` names a module or package, or a name defined in one (`a.b.name`,
    `a.b.Class.method`): the longest module prefix must define the next part."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ROOT.joinpath(*parts[:end])
        for source in (candidate.with_suffix(".py"), candidate / "__init__.py"):
            if source.is_file():
                if end == len(parts):
                    return True
                name = re.escape(parts[end])
                defines = (
                    rf"(def|class) {name}\b|^{name}\b.*=|import .*\b{name}\b"
                    rf"|\"{name}\""
                )
                return re.search(defines, source.read_text(), re.M) is not None
    return False


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_path_a_document_names_exists(document):
    text = (ROOT / document).read_text()
    missing = [path for path in _paths(text) if not (ROOT / path).exists()]
    assert not missing, f"{document} names paths that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_module_a_document_names_exists(document):
    text = (ROOT / document).read_text()
    missing = [name for name in _modules(text) if not _module_exists(name)]
    assert not missing, f"{document} names modules that do not exist: {missing}"


def test_the_check_sees_a_missing_module(tmp_path):
    assert _modules("see `kdkeras.step_loss` and python -m kdkeras.launch") == [
        "kdkeras.launch",
        "kdkeras.step_loss",
    ]
    assert not _module_exists("kdkeras.no_such_module.name")
    assert _module_exists("kdkeras.losses.kd_loss")
    assert _paths("in `kdkeras/targets/shards/` and `export/cli.py`.") == [
        "export/cli.py",
        "kdkeras/targets/shards",
    ]


TRACKER = re.compile(r"\b[Ii]ssues? \d+\b|\(#\d+\)")


def _tracked_files():
    suffixes = {".py", ".md", ".cfg", ".toml", ".yaml"}
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and name not in {"__pycache__", "demo_output"}
        )
        for name in sorted(names):
            path = pathlib.Path(folder, name)
            if path.suffix in suffixes or name == "Makefile":
                yield path


def test_no_tracker_issue_numbers_in_code_or_documents():
    """The repository explains itself: no "issue 15" (other projects' issues,
    `owner/repo#N`, are citations and stay)."""
    offending = []
    for path in _tracked_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if TRACKER.search(line) and path.name != "test_docs.py":
                offending.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offending, f"tracker issue numbers: {offending[:20]}"
