"""Config dataclasses: defaults, validation, environment, SQLite URL paths."""

from __future__ import annotations

import os

import pytest

from flowrra import BackendConfig, BrokerConfig, Config, ExecutorConfig, SchedulerConfig
from flowrra.urls import sqlite_path

ALL_VARS = {
    "BROKER_URL": "redis://broker:6379/1",
    "BROKER_MAX_CONNECTIONS": "7",
    "BROKER_SOCKET_TIMEOUT": "2.5",
    "BROKER_RETRY_ON_TIMEOUT": "false",
    "BACKEND_URL": "redis://backend:6379/2",
    "BACKEND_TTL": "3600",
    "BACKEND_MAX_CONNECTIONS": "9",
    "BACKEND_SOCKET_TIMEOUT": "1.5",
    "BACKEND_RETRY_ON_TIMEOUT": "no",
    "EXECUTOR_IO_WORKERS": "12",
    "EXECUTOR_CPU_WORKERS": "3",
    "EXECUTOR_MAX_QUEUE_SIZE": "50",
    "EXECUTOR_MAX_RETRIES": "0",
    "EXECUTOR_RETRY_DELAY": "0.25",
    "SCHEDULER_DATABASE_URL": "sqlite:////var/lib/flowrra/s.db",
    "SCHEDULER_CHECK_INTERVAL": "5",
    "SCHEDULER_ENABLED": "yes",
}


def test_defaults() -> None:
    broker = BrokerConfig("redis://localhost:6379/0")
    assert (broker.max_connections, broker.socket_timeout, broker.retry_on_timeout,
            broker.queue_key) == (50, 5.0, True, None)
    backend = BackendConfig("redis://localhost:6379/0")
    assert (backend.ttl, backend.max_connections, backend.socket_timeout,
            backend.retry_on_timeout) == (None, 50, 5.0, True)
    executor = ExecutorConfig()
    assert (executor.io_workers, executor.cpu_workers, executor.max_queue_size,
            executor.max_retries, executor.retry_delay) == (4, os.cpu_count() or 1, 1000, 3, 1.0)
    scheduler = SchedulerConfig()
    assert (scheduler.database_url, scheduler.check_interval, scheduler.enabled) == (None, 60.0,
                                                                                      False)
    config = Config()
    assert config.broker is None and config.backend is None and config.scheduler is None
    assert config.executor == ExecutorConfig()


@pytest.mark.parametrize(("build", "words"), [
    (lambda: BrokerConfig("localhost:6379"), ["BrokerConfig.url", "URL", "localhost:6379"]),
    (lambda: BrokerConfig(None), ["BrokerConfig.url"]),
    (lambda: BrokerConfig("redis://x", max_connections=0), ["max_connections", "greater than zero"]),
    (lambda: BrokerConfig("redis://x", socket_timeout=-1), ["socket_timeout", "-1"]),
    (lambda: BackendConfig("nope"), ["BackendConfig.url"]),
    (lambda: BackendConfig("redis://x", ttl=0), ["ttl", "greater than zero"]),
    (lambda: ExecutorConfig(io_workers=0), ["io_workers", "greater than zero", "0"]),
    (lambda: ExecutorConfig(cpu_workers=-2), ["cpu_workers", "-2"]),
    (lambda: ExecutorConfig(io_workers="4"), ["io_workers", "number", "'4'"]),
    (lambda: ExecutorConfig(io_workers=True), ["io_workers", "number"]),
    (lambda: ExecutorConfig(io_workers=2.5), ["io_workers", "2.5"]),
    (lambda: ExecutorConfig(max_queue_size=0), ["max_queue_size"]),
    (lambda: ExecutorConfig(max_retries=-1), ["max_retries", "zero or more"]),
    (lambda: ExecutorConfig(retry_delay=-0.5), ["retry_delay", "zero or more"]),
    (lambda: SchedulerConfig(check_interval=0), ["check_interval"]),
    (lambda: SchedulerConfig(database_url="flowrra.db"), ["database_url", "URL"]),
    (lambda: Config(broker="redis://x"), ["Config.broker", "BrokerConfig"]),
    (lambda: Config(executor=None), ["Config.executor", "ExecutorConfig"]),
])
def test_validation_errors_are_clear(build, words) -> None:
    with pytest.raises(ValueError) as info:
        build()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_zero_retries_and_delay_are_allowed() -> None:
    config = ExecutorConfig(max_retries=0, retry_delay=0)
    assert (config.max_retries, config.retry_delay) == (0, 0)


def test_from_env_with_no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("FLOWRRA_"):
            monkeypatch.delenv(key)
    assert Config.from_env() == Config()
    assert Config.from_env(environ={}) == Config()


def test_from_env_blank_variables_keep_defaults() -> None:
    config = Config.from_env(environ={"FLOWRRA_BROKER_URL": "", "FLOWRRA_EXECUTOR_IO_WORKERS": "  "})
    assert config == Config()


def test_from_env_with_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ALL_VARS.items():
        monkeypatch.setenv("FLOWRRA_" + key, value)
    config = Config.from_env()
    assert config.broker == BrokerConfig("redis://broker:6379/1", max_connections=7,
                                         socket_timeout=2.5, retry_on_timeout=False)
    assert config.backend == BackendConfig("redis://backend:6379/2", ttl=3600, max_connections=9,
                                           socket_timeout=1.5, retry_on_timeout=False)
    executor = config.executor
    assert (executor.io_workers, executor.cpu_workers, executor.max_queue_size,
            executor.max_retries, executor.retry_delay) == (12, 3, 50, 0, 0.25)
    assert config.scheduler == SchedulerConfig("sqlite:////var/lib/flowrra/s.db", 5.0, True)
    assert isinstance(executor.io_workers, int) and isinstance(config.backend.ttl, int)


def test_from_env_custom_prefix() -> None:
    config = Config.from_env(prefix="APP_", environ={"APP_EXECUTOR_IO_WORKERS": "2",
                                                     "FLOWRRA_EXECUTOR_IO_WORKERS": "9"})
    assert config.executor.io_workers == 2


def test_from_env_partial_sections() -> None:
    config = Config.from_env(environ={"FLOWRRA_SCHEDULER_ENABLED": "on"})
    assert config.scheduler == SchedulerConfig(enabled=True)
    assert config.broker is None and config.backend is None


@pytest.mark.parametrize("raw", ["true", "TRUE", "True", "1", "yes", "YES", "on", "On", " on "])
def test_from_env_true_values(raw: str) -> None:
    env = {"FLOWRRA_BROKER_URL": "redis://x", "FLOWRRA_BROKER_RETRY_ON_TIMEOUT": raw,
           "FLOWRRA_SCHEDULER_ENABLED": raw}
    config = Config.from_env(environ=env)
    assert config.broker.retry_on_timeout is True
    assert config.scheduler.enabled is True


@pytest.mark.parametrize("raw", ["false", "FALSE", "0", "no", "off", "Off"])
def test_from_env_false_values(raw: str) -> None:
    env = {"FLOWRRA_BACKEND_URL": "redis://x", "FLOWRRA_BACKEND_RETRY_ON_TIMEOUT": raw,
           "FLOWRRA_SCHEDULER_ENABLED": raw}
    config = Config.from_env(environ=env)
    assert config.backend.retry_on_timeout is False
    assert config.scheduler.enabled is False


def test_from_env_bad_boolean_names_the_variable() -> None:
    with pytest.raises(ValueError, match="FLOWRRA_SCHEDULER_ENABLED") as info:
        Config.from_env(environ={"FLOWRRA_SCHEDULER_ENABLED": "maybe"})
    assert "'maybe'" in str(info.value) and "true" in str(info.value)


@pytest.mark.parametrize(("key", "raw"), [
    ("EXECUTOR_IO_WORKERS", "four"),
    ("EXECUTOR_IO_WORKERS", "2.5"),
    ("EXECUTOR_CPU_WORKERS", ""),
    ("EXECUTOR_MAX_QUEUE_SIZE", "1e3x"),
    ("EXECUTOR_MAX_RETRIES", "-"),
    ("EXECUTOR_RETRY_DELAY", "fast"),
    ("BROKER_MAX_CONNECTIONS", "many"),
    ("BROKER_SOCKET_TIMEOUT", "5s"),
    ("BACKEND_TTL", "1h"),
    ("BACKEND_MAX_CONNECTIONS", "x"),
    ("BACKEND_SOCKET_TIMEOUT", "?"),
    ("SCHEDULER_CHECK_INTERVAL", "1m"),
])
def test_from_env_bad_numbers_name_the_variable(key: str, raw: str) -> None:
    env = {"FLOWRRA_BROKER_URL": "redis://x", "FLOWRRA_BACKEND_URL": "redis://x",
           "FLOWRRA_" + key: raw}
    if not raw:
        assert Config.from_env(environ=env) is not None  # blank means "not set"
        return
    with pytest.raises(ValueError, match="FLOWRRA_" + key) as info:
        Config.from_env(environ=env)
    assert repr(raw) in str(info.value)


def test_from_env_out_of_range_value_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="io_workers"):
        Config.from_env(environ={"FLOWRRA_EXECUTOR_IO_WORKERS": "0"})


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:////abs/path/flowrra.db", "/abs/path/flowrra.db"),
    ("sqlite:///relative.db", "relative.db"),
    ("sqlite:///dir/rel.db?timeout=5", "dir/rel.db"),
    ("SQLITE:////tmp/x.db", "/tmp/x.db"),
])
def test_sqlite_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "postgresql:///x", "sqlite:///"])
def test_sqlite_path_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        sqlite_path(url)
