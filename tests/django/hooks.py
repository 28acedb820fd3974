"""Objects the tests name by dotted path in settings."""

from __future__ import annotations

from typing import Any

from flowrra import Flowrra

flowrra = Flowrra()
not_an_app = object()


def everyone(request: Any) -> bool:
    return True
