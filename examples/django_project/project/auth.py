"""An auth hook that lets everyone in; the example uses it only when FLOWRRA_UI_PUBLIC=1."""

from __future__ import annotations

from typing import Any


def allow_everyone(request: Any) -> bool:
    """Anyone who can reach the server may watch and act. Never use this in production."""
    return True
