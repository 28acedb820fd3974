"""JSON encoding of task messages and results.

JSON (not pickle) is the wire format so that messages can be read by any process,
inspected in Redis or SQLite, and never execute code on load. Values are checked
once, where they enter the system, so a bad value fails loudly at ``submit`` (for
arguments) or fails only its own task (for results).
"""

from __future__ import annotations

import json
from typing import Any

from flowrra.exceptions import SerializationError

_SCALARS = (str, int, float, bool, type(None))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads(data: str | bytes) -> Any:
    return json.loads(data)


def ensure_serializable(value: Any, what: str) -> None:
    """Raise :class:`SerializationError` naming ``what`` if ``value`` is not JSON-ready.

    Scalars and empty containers skip the encoder: they are the common case on the
    hot path and are always valid.
    """
    if type(value) in _SCALARS or (type(value) in (tuple, list, dict) and not value):
        if type(value) is float and (value != value or value in (float("inf"), float("-inf"))):
            raise SerializationError(f"{what} contains {value!r}, which JSON cannot represent")
        return
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} is not JSON-serializable ({exc}). Pass plain data "
            "(str, int, float, bool, None, list, dict) and load objects inside the task."
        ) from None
