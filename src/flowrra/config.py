"""Configuration dataclasses, validated on construction.

Every field has a default and every environment variable is optional, so
``Config.from_env()`` on an empty environment yields the embedded default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _positive(name: str, value: float | int, *, allow_zero: bool = False,
              integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def _url(name: str, value: Any) -> None:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError(
            f"{name} must be a URL such as 'redis://localhost:6379/0' or "
            f"'sqlite:///flowrra.db', got {value!r}"
        )


@dataclass
class BrokerConfig:
    url: str
    max_connections: int = 50
    socket_timeout: float = 5.0
    retry_on_timeout: bool = True
    queue_key: str | None = None
    #: Seconds a claimed task stays leased to a worker without a renewal; a
    #: killed worker's tasks run again elsewhere after at most this long.
    visibility_timeout: float = 30.0

    def __post_init__(self) -> None:
        _url("BrokerConfig.url", self.url)
        _positive("BrokerConfig.max_connections", self.max_connections, integer=True)
        _positive("BrokerConfig.socket_timeout", self.socket_timeout)
        _positive("BrokerConfig.visibility_timeout", self.visibility_timeout)


@dataclass
class BackendConfig:
    url: str
    ttl: int | None = None
    max_connections: int = 50
    socket_timeout: float = 5.0
    retry_on_timeout: bool = True

    def __post_init__(self) -> None:
        _url("BackendConfig.url", self.url)
        if self.ttl is not None:
            _positive("BackendConfig.ttl", self.ttl)
        _positive("BackendConfig.max_connections", self.max_connections, integer=True)
        _positive("BackendConfig.socket_timeout", self.socket_timeout)


@dataclass
class ExecutorConfig:
    io_workers: int = 4
    cpu_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_queue_size: int = 1000
    max_retries: int = 3
    retry_delay: float = 1.0
    #: Upper bound of the exponential backoff between retries, in seconds.
    max_retry_delay: float = 300.0
    #: Default time limit of a task in seconds (None: no limit).
    task_timeout: float | None = None

    def __post_init__(self) -> None:
        _positive("ExecutorConfig.io_workers", self.io_workers, integer=True)
        _positive("ExecutorConfig.cpu_workers", self.cpu_workers, integer=True)
        _positive("ExecutorConfig.max_queue_size", self.max_queue_size, integer=True)
        _positive("ExecutorConfig.max_retries", self.max_retries, allow_zero=True, integer=True)
        _positive("ExecutorConfig.retry_delay", self.retry_delay, allow_zero=True)
        _positive("ExecutorConfig.max_retry_delay", self.max_retry_delay, allow_zero=True)
        if self.task_timeout is not None:
            _positive("ExecutorConfig.task_timeout", self.task_timeout)


@dataclass
class SchedulerConfig:
    database_url: str | None = None
    check_interval: float = 60.0
    enabled: bool = False

    def __post_init__(self) -> None:
        if self.database_url is not None:
            _url("SchedulerConfig.database_url", self.database_url)
        _positive("SchedulerConfig.check_interval", self.check_interval)


@dataclass
class Config:
    broker: BrokerConfig | None = None
    backend: BackendConfig | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    scheduler: SchedulerConfig | None = None

    def __post_init__(self) -> None:
        for name, kind in (("broker", BrokerConfig), ("backend", BackendConfig),
                           ("scheduler", SchedulerConfig)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"Config.{name} must be a {kind.__name__}, got {value!r}")
        if not isinstance(self.executor, ExecutorConfig):
            raise ValueError(f"Config.executor must be an ExecutorConfig, got {self.executor!r}")

    @classmethod
    def from_env(cls, prefix: str = "FLOWRRA_", environ: Mapping[str, str] | None = None) -> Config:
        """Build a config from environment variables; any of them may be absent."""
        env = _Env(os.environ if environ is None else environ, prefix)
        broker = backend = scheduler = None
        if env.has("BROKER_URL"):
            broker = BrokerConfig(
                url=env.str("BROKER_URL"),
                **env.pick(max_connections=("BROKER_MAX_CONNECTIONS", int),
                           socket_timeout=("BROKER_SOCKET_TIMEOUT", float),
                           retry_on_timeout=("BROKER_RETRY_ON_TIMEOUT", bool),
                           queue_key=("BROKER_QUEUE_KEY", str),
                           visibility_timeout=("BROKER_VISIBILITY_TIMEOUT", float)),
            )
        if env.has("BACKEND_URL"):
            backend = BackendConfig(
                url=env.str("BACKEND_URL"),
                **env.pick(ttl=("BACKEND_TTL", int),
                           max_connections=("BACKEND_MAX_CONNECTIONS", int),
                           socket_timeout=("BACKEND_SOCKET_TIMEOUT", float),
                           retry_on_timeout=("BACKEND_RETRY_ON_TIMEOUT", bool)),
            )
        executor = ExecutorConfig(
            **env.pick(io_workers=("EXECUTOR_IO_WORKERS", int),
                       cpu_workers=("EXECUTOR_CPU_WORKERS", int),
                       max_queue_size=("EXECUTOR_MAX_QUEUE_SIZE", int),
                       max_retries=("EXECUTOR_MAX_RETRIES", int),
                       retry_delay=("EXECUTOR_RETRY_DELAY", float),
                       task_timeout=("EXECUTOR_TASK_TIMEOUT", float))
        )
        sched = env.pick(database_url=("SCHEDULER_DATABASE_URL", str),
                         check_interval=("SCHEDULER_CHECK_INTERVAL", float),
                         enabled=("SCHEDULER_ENABLED", bool))
        if sched:
            scheduler = SchedulerConfig(**sched)
        return cls(broker=broker, backend=backend, executor=executor, scheduler=scheduler)


class _Env:
    def __init__(self, environ: Mapping[str, str], prefix: str) -> None:
        self.environ = environ
        self.prefix = prefix

    def has(self, key: str) -> bool:
        return bool(self.environ.get(self.prefix + key, "").strip())

    def str(self, key: str) -> str:
        return self.environ[self.prefix + key].strip()

    def pick(self, **fields: tuple[str, type]) -> dict[str, Any]:
        """Convert the variables that are set; absent or blank ones keep their default."""
        out: dict[str, Any] = {}
        for attr, (key, kind) in fields.items():
            if self.has(key):
                out[attr] = self._convert(key, kind)
        return out

    def _convert(self, key: str, kind: type) -> Any:
        raw = self.str(key)
        name = self.prefix + key
        if kind is bool:
            lowered = raw.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {raw!r}")
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, "
                             f"got {raw!r}") from None
