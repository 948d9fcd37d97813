"""`--import=MODULES`: the user's modules, imported before a `.keras` file loads.

A `.keras` file naming a class the user registered with
`@keras.saving.register_keras_serializable` loads only in a process that
imported the module doing so. Every command line that loads a `.keras` file
(`export`'s tools and report, `kdkeras.targets.cli`,
`benchmarks.inference_latency`) takes the same flag, `FLAG_NAME` with
`FLAG_HELP`, checked by `parse_module_names` before any work: module names
only (dotted identifiers, never file paths), echoed in bounded form when
refused. Each command line defines it in its own module (so that its help
lists it), e.g. `flags.DEFINE_string(FLAG_NAME, None, FLAG_HELP)`.

Example:

>>> parse_module_names("my_package.layers, other")
('my_package.layers', 'other')
"""

import importlib
import os
import re
import sys

from kdutils.echo import bounded

FLAG_NAME = "import"
FLAG_HELP = (
    "Comma-separated Python modules to import before loading a .keras file: "
    "the modules registering your own classes "
    "(@keras.saving.register_keras_serializable), e.g. my_package.layers. "
    "Module names only (importable from the current folder or PYTHONPATH), "
    "not file paths."
)
# A Python module name: dotted identifiers, never a file path.
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IMPORTED = []


class ModuleImportError(ValueError):
    """A module named by `--import` exists as a name but cannot be imported."""


def parse_module_names(text, flag="--import"):
    """The module names of a comma-separated `--import` value, checked.

    Args:
        text: `"my_package.layers,other.module"`, a list of names, or None.
        flag: Argument name for error messages.

    Returns:
        A tuple of module names (empty for None or an empty value).

    Raises:
        ValueError: an entry is not a dotted Python module name (a file path,
            say).
    """
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    for name in names:
        # `layers.py` would name a submodule `py`: surely a file meant as a module.
        if not _MODULE_NAME.match(name) or name.endswith((".py", ".pyc")):
            raise ValueError(
                f"`{flag}` must be comma-separated Python module names (dotted "
                "identifiers such as my_package.layers, importable from the "
                f"current folder or PYTHONPATH; not file paths). Received: "
                f"{flag}={bounded(name, 80)}"
            )
    return names


def import_modules(names, flag="--import"):
    """Imports the modules registering the user's Keras classes, and remembers them.

    The names are remembered (`imported_modules`), so that child processes
    can import them too.

    Args:
        names: Module names, or a comma-separated string of them
            (`parse_module_names` checks it).
        flag: Argument name for error messages.

    Raises:
        ValueError: a name is not a module name.
        ModuleImportError: a module cannot be imported (missing, or raising).
    """
    for name in parse_module_names(names, flag):
        try:
            importlib.import_module(name)
        except Exception as error:  # Whatever the user's module raises.
            raise ModuleImportError(
                f"`{flag}` module {name} could not be imported: "
                f"{type(error).__name__}: {bounded(_first_line(error), 200)}"
            ) from None
        if name not in _IMPORTED:
            _IMPORTED.append(name)


def imported_modules():
    """The modules `import_modules` imported in this process, in order."""
    return tuple(_IMPORTED)


def imported_module_roots():
    """The `sys.path` folders `imported_modules` were found in, in order.

    A child process started with `python -P` (no current folder on its path)
    puts them first on its `sys.path` to import the same files.
    """
    roots = []
    for name in _IMPORTED:
        top = sys.modules.get(name.split(".")[0])
        locations = list(getattr(top, "__path__", None) or [])
        if locations:  # A package: its folder's parent.
            root = os.path.dirname(os.path.abspath(locations[0]))
        elif getattr(top, "__file__", None):
            root = os.path.dirname(os.path.abspath(top.__file__))
        else:
            continue  # A built-in module.
        if root not in roots:
            roots.append(root)
    return tuple(roots)


def _first_line(error):
    """The first non-empty line of an error's message, whitespace collapsed."""
    for line in str(error).splitlines():
        if line.strip():
            return " ".join(line.split())
    return type(error).__name__
