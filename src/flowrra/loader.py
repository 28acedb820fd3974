"""Find the user's :class:`~flowrra.Flowrra` app from a command-line reference.

Accepted forms (the same spirit as ``uvicorn`` and ``celery -A``):

* ``package.module:app`` — an attribute of an importable module;
* ``package.module:holder.app`` — a dotted attribute path;
* ``package.module:create_app()`` — a factory called with no arguments;
* ``path/to/file.py:app`` — a file that is not on ``sys.path``;
* ``package.module`` — the module's ``app`` attribute, or its only Flowrra instance.

The current directory is put on ``sys.path`` first, because a console script
does not have it there and users expect ``flowrra worker myproject.tasks:app``
to work from their project root.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

from flowrra.app import Flowrra

__all__ = ["AppLoadError", "load_app", "split_reference"]


class AppLoadError(Exception):
    """The reference could not be resolved to a Flowrra app; the message says why and what to do."""


def split_reference(reference: str) -> tuple[str, str | None]:
    """``'pkg.mod:app'`` -> ``('pkg.mod', 'app')``; the attribute part is optional."""
    if not isinstance(reference, str) or not reference.strip():
        raise AppLoadError("No app given. Pass it as MODULE:ATTRIBUTE, e.g. 'myproject.tasks:app'.")
    reference = reference.strip()
    # A Windows drive letter ("C:\\x.py:app") is not the separator: split on the last colon.
    module_part, sep, attr = reference.rpartition(":")
    if not sep or (len(module_part) == 1 and module_part.isalpha() and attr.startswith("\\")):
        module_part, attr = reference, ""
    if not module_part:
        raise AppLoadError(f"{reference!r} has no module before ':'. Expected MODULE:ATTRIBUTE, "
                           "e.g. 'myproject.tasks:app'.")
    if sep and not attr:
        raise AppLoadError(f"{reference!r} has nothing after ':'. Name the attribute that holds "
                           "the app, e.g. 'myproject.tasks:app'.")
    if attr:
        path = attr.removesuffix("()")
        if not path or not all(part.isidentifier() for part in path.split(".")):
            raise AppLoadError(f"{attr!r} in {reference!r} is not an attribute name. Expected e.g. "
                               "'app', 'holder.app' or 'create_app()'.")
    return module_part, attr or None


def load_app(reference: str, *, cwd: str | os.PathLike[str] | None = None) -> Flowrra:
    """Import the module named by ``reference`` and return the Flowrra app it designates."""
    module_part, attr = split_reference(reference)
    base = Path(cwd) if cwd is not None else Path.cwd()
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    module = _import_module(module_part, base)
    if attr is None:
        return _default_app(module, reference)
    return _resolve_attribute(module, attr, reference)


def _import_module(module_part: str, base: Path) -> types.ModuleType:
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        return _import_file(Path(module_part) if Path(module_part).is_absolute()
                            else base / module_part)
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_part == missing or module_part.startswith(missing + "."):
            raise AppLoadError(
                f"Cannot import module {module_part!r}: no module named {exc.name!r}. Run the "
                f"command from your project root (searched {base}), install your package, or "
                "add its directory to PYTHONPATH."
            ) from exc
        raise AppLoadError(
            f"Importing {module_part!r} failed because it imports {exc.name!r}, which is not "
            "installed. Install it in this environment."
        ) from exc
    except Exception as exc:
        raise AppLoadError(
            f"Importing {module_part!r} raised {type(exc).__name__}: {exc}") from exc


def _import_file(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise AppLoadError(f"File {str(path)!r} does not exist. Give a path relative to the "
                           "current directory or an absolute path, e.g. 'app/tasks.py:app'.")
    if path.suffix != ".py":
        raise AppLoadError(f"{str(path)!r} is not a Python file (expected a '.py' file).")
    # Importable under its plain name so CPU-bound tasks defined there can be pickled
    # by reference in the worker's process pool.
    name = path.stem
    directory = str(path.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"Cannot load {str(path)!r} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise AppLoadError(f"Running {str(path)!r} raised {type(exc).__name__}: {exc}") from exc
    return module


def _resolve_attribute(module: types.ModuleType, attr: str, reference: str) -> Flowrra:
    call = attr.endswith("()")
    path = attr.removesuffix("()")
    value: object = module
    for part in path.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            found = _flowrra_names(module)
            hint = f" It defines: {', '.join(found)}." if found else (
                " It defines no Flowrra app at module level.")
            raise AppLoadError(f"Module {module.__name__!r} has no attribute {path!r}.{hint}") from None
    if call:
        if not callable(value):
            raise AppLoadError(f"{path!r} in {module.__name__!r} is not callable; drop the '()'.")
        try:
            value = value()
        except Exception as exc:
            raise AppLoadError(f"Calling {path}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, Flowrra):
        advice = " Add '()' to call it as a factory." if callable(value) and not call else ""
        raise AppLoadError(f"{reference!r} is a {type(value).__name__}, not a Flowrra app.{advice}")
    return value


def _flowrra_names(module: types.ModuleType) -> list[str]:
    return sorted(name for name, value in vars(module).items() if isinstance(value, Flowrra))


def _default_app(module: types.ModuleType, reference: str) -> Flowrra:
    candidate = getattr(module, "app", None)
    if isinstance(candidate, Flowrra):
        return candidate
    names = _flowrra_names(module)
    if len(names) == 1:
        return getattr(module, names[0])
    if not names:
        raise AppLoadError(f"Module {module.__name__!r} defines no Flowrra app. Create one "
                           f"(app = Flowrra(...)) or name it: '{reference}:ATTRIBUTE'.")
    raise AppLoadError(f"Module {module.__name__!r} defines several Flowrra apps "
                       f"({', '.join(names)}); say which one, e.g. '{reference}:{names[0]}'.")
