"""The tests' ROOT_URLCONF; tests mount what they need through the ``mount`` fixture."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
