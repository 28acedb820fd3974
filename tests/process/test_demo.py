"""``flowrra demo`` end to end, as a user runs it (a subprocess, output checked)."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.process.conftest import REPO, RedisServer, free_port, require_durable

pytestmark = pytest.mark.slow


def run_demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
    env["COLUMNS"] = "120"
    return subprocess.run([sys.executable, "-m", "flowrra", "demo", "--tasks", "12", "--no-ui", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def assert_summary(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "summary" in text
    # 12 tasks: every kind once or more; 2 of them fail for good (broken_report, slow_export).
    assert re.search(r"total\s*│\s*12\b", text), text
    assert re.search(r"success\s*│\s*10\b", text), text
    assert re.search(r"failed\s*│\s*2\b", text), text
    for name in ("flaky_api", "crunch_numbers", "urgent_alert", "nightly_cleanup"):
        assert name in text


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_demo_default_setup():
    out = run_demo()
    assert_summary(out)
    if importlib.util.find_spec("flowrra.brokers.sqlite") is not None:
        assert "broker sqlite:////" in flat(out.stdout)
        assert "worker in a 'flowrra worker' subprocess" in flat(out.stdout)
    else:
        assert "SQLite broker not available" in flat(out.stdout)


def test_demo_in_process():
    out = run_demo("--in-process")
    assert_summary(out)
    assert "worker in this process" in flat(out.stdout)


@pytest.mark.redis
def test_demo_with_a_redis_broker(tmp_path):
    require_durable("redis")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        out = run_demo("--broker", server.url)
        assert_summary(out)
        assert f"broker {server.url}" in flat(out.stdout)
    finally:
        server.stop()


def test_demo_serves_the_dashboard_and_keeps_scheduling(tmp_path):
    """Default with the dashboard installed: tasks, then the dashboard and scheduler stay up."""
    if importlib.util.find_spec("flowrra.ui.standalone") is None:
        pytest.skip("flowrra.ui.standalone does not exist yet")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
    env["COLUMNS"] = "120"
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        demo = subprocess.Popen([sys.executable, "-m", "flowrra", "demo", "--tasks", "12", "--ui",
                                 "--port", str(port)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to quit" not in log.read_text():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}/flowrra/api"
        assert f"http://127.0.0.1:{port}/flowrra/" in flat(log.read_text())
        schedules = httpx.get(f"{base}/schedules", timeout=10).json()
        assert {s["task_name"] for s in schedules} == {"fetch_page", "nightly_cleanup"}
        # The scheduler keeps submitting fetch_page every 5 s: the total grows past the batch.
        while httpx.get(f"{base}/stats", timeout=10).json()["total"] <= 12:
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no scheduled task ran"
            time.sleep(0.2)
        workdir = re.search(r"(/\S*flowrra-demo-\w+)/", flat(log.read_text())).group(1)
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert demo.wait(60) == 0, log.read_text()
        assert not os.path.exists(workdir)  # worker and dashboard stopped, temp files removed
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/stats", timeout=2)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
