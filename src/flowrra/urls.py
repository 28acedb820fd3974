"""Choosing an implementation class from a URL scheme, with errors that say what to do."""

from __future__ import annotations

import importlib
from typing import Any


def scheme_of(url: str) -> str:
    if "://" not in url:
        raise ValueError(f"{url!r} is not a URL; expected something like 'redis://localhost:6379/0'")
    return url.split("://", 1)[0].lower()


def load_by_scheme(kind: str, url: str, table: dict[str, tuple[str, str, str | None]],
                   options: dict[str, Any]) -> Any:
    """Instantiate ``table[scheme]`` with ``url``; explain unsupported schemes and missing extras."""
    scheme = scheme_of(url)
    if scheme not in table:
        supported = ", ".join(f"{s}://" for s in table)
        raise ValueError(f"Unsupported {kind} URL scheme {scheme + '://'!r}. Supported: {supported}")
    module_name, class_name, extra = table[scheme]
    module = import_optional(module_name, extra)
    cls = getattr(module, class_name)
    if scheme == "memory":
        return cls(**options)
    return cls(url, **options)


def import_optional(module_name: str, extra: str | None) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or module_name in str(exc):
            raise
        raise ImportError(
            f"{module_name} needs an optional dependency ({exc.name}). "
            f"Install it with: pip install 'flowrra[{extra}]'"
        ) from exc


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    if not url.lower().startswith("sqlite:///"):
        raise ValueError(
            f"SQLite URLs look like 'sqlite:///relative.db' or 'sqlite:////absolute/path.db', got {url!r}"
        )
    path = url[len("sqlite:///"):].split("?", 1)[0]
    if not path:
        raise ValueError(f"{url!r} names no database file")
    return path
