"""The adapter classes of flowrra 0.1.8, kept so code written for them still runs.

``FastAPIAdapter(flowrra, **options).get_routes()`` (and the Flask and Django
ones) were 0.1.8's documented way to mount the dashboard. Here each is nothing
but a cached call of the adapter's factory (``create_router``,
``create_blueprint``, ``get_urls``) with the same options, so they share every
security default and hold no logic of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["LegacyAdapter"]

Routes = TypeVar("Routes")


class LegacyAdapter(Generic[Routes]):
    """Builds the adapter's routes once, from ``factory(flowrra, **options)``."""

    factory: Callable[..., Routes]

    def __init__(self, flowrra_app: Flowrra, **options: Any) -> None:
        self.flowrra = flowrra_app
        self.options = options
        self._routes: Routes | None = None

    def get_routes(self) -> Routes:
        if self._routes is None:
            self._routes = type(self).factory(self.flowrra, **self.options)
        return self._routes
