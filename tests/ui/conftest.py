"""Fixtures of the UI suites: ``ui`` / ``make_ui`` run each test on every web framework.

Frameworks come from :data:`tests.ui.harness.FRAMEWORKS`; a framework whose
package is missing is skipped. To add one, create ``tests/ui/harness_<name>.py``
that registers a factory with ``@harness.register("<name>")`` and list the
module in ``_EXTRA_HARNESSES`` below.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from tests.ui.harness import FRAMEWORKS, Harness, UIOptions

_EXTRA_HARNESSES = ("tests.ui.harness_django",)
_REQUIRES = {"fastapi": ("fastapi", "httpx"), "quart": ("quart",), "flask": ("flask",),
             "django": ("django",)}

for _module in _EXTRA_HARNESSES:
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module)


def _available(name: str) -> bool:
    return all(importlib.util.find_spec(mod) is not None for mod in _REQUIRES.get(name, ()))


def _params() -> list[Any]:
    return [pytest.param(name, marks=() if _available(name) else
                         pytest.mark.skip(reason=f"{name} is not installed"))
            for name in FRAMEWORKS]


@pytest.fixture(params=_params())
def framework(request: pytest.FixtureRequest) -> str:
    return request.param


MakeUI = Callable[..., Coroutine[Any, Any, Harness]]


@pytest.fixture
async def make_ui(framework: str) -> AsyncIterator[MakeUI]:
    """``await make_ui(read_only=..., auth=..., scheduler=...)`` -> a started :class:`Harness`."""
    async with contextlib.AsyncExitStack() as stack:
        async def make(**options: Any) -> Harness:
            return await stack.enter_async_context(FRAMEWORKS[framework](UIOptions(**options)))

        yield make


@pytest.fixture
async def ui(make_ui: MakeUI) -> Harness:
    return await make_ui()


@pytest.fixture
async def sched_ui(make_ui: MakeUI) -> Harness:
    return await make_ui(scheduler=True)
