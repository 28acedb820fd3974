"""Flowrra: an asyncio-native background task queue with a live web dashboard."""

from flowrra.app import Flowrra
from flowrra.config import BackendConfig, BrokerConfig, Config, ExecutorConfig, SchedulerConfig
from flowrra.exceptions import (
    BackendError,
    ExecutorNotRunningError,
    FlowrraError,
    RegistrationError,
    SerializationError,
    TaskNotFoundError,
    TaskTimeoutError,
)
from flowrra.executors import CPUExecutor, IOExecutor
from flowrra.registry import TaskRegistry
from flowrra.task import Task, TaskResult, TaskStatus

__version__ = "0.2.0"

__all__ = [
    "BackendConfig",
    "BackendError",
    "BrokerConfig",
    "CPUExecutor",
    "Config",
    "ExecutorConfig",
    "ExecutorNotRunningError",
    "Flowrra",
    "FlowrraError",
    "IOExecutor",
    "RegistrationError",
    "SchedulerConfig",
    "SerializationError",
    "Task",
    "TaskNotFoundError",
    "TaskRegistry",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
]
