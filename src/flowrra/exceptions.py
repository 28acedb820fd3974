"""Exceptions raised by Flowrra.

Every exception derives from :class:`FlowrraError` so applications can catch the
whole family in one place; the messages are part of the public contract.
"""

from __future__ import annotations

import asyncio


class FlowrraError(Exception):
    """Base class of every error Flowrra raises on purpose."""


class TaskNotFoundError(FlowrraError, LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        self.task_name = name  # the 0.1.8 attribute name
        super().__init__(f"Task '{name}' not registered")


class TaskTimeoutError(FlowrraError, asyncio.TimeoutError):
    """Raised by ``wait_for_result``; also an ``asyncio.TimeoutError`` so either catch works."""

    def __init__(self, task_id: str, timeout: float | None) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"Task '{task_id}' did not complete within {timeout}s")


class ExecutorNotRunningError(FlowrraError, RuntimeError):
    def __init__(self, message: str = "Executor is not running. Call start() first.") -> None:
        super().__init__(message)


class BackendError(FlowrraError):
    """A result backend or broker could not do what was asked (connection, storage)."""


class SerializationError(FlowrraError, TypeError):
    """A value cannot be encoded for the broker or the result store."""


class RegistrationError(FlowrraError, ValueError):
    """A task cannot be registered as declared; the message says how to fix it."""
