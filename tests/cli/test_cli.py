"""The flowrra command line: argument errors, app-loading errors, missing optional parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowrra import cli

REPO = Path(__file__).resolve().parents[2]


def run_main(capsys, *argv: str) -> tuple[int, str]:
    """Run ``flowrra ARGV`` in this process; returns (exit status, stderr)."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # argparse errors and --help
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    ((), "the following arguments are required: COMMAND"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("worker",), "the following arguments are required: MODULE:APP"),
    (("worker", "m:app", "--concurrency", "0"), "must be 1 or more, got 0"),
    (("worker", "m:app", "-c", "many"), "expected a whole number, got 'many'"),
    (("worker", "m:app", "--cpu-workers", "-2"), "must be 1 or more, got -2"),
    (("worker", "m:app", "--queues", "a,,b"), "expected comma-separated queue names"),
    (("worker", "m:app", "--queues", ""), "expected comma-separated queue names"),
    (("worker", "m:app", "--loglevel", "loud"), "invalid choice: 'loud'"),
    (("worker", "m:app", "--shutdown-timeout", "-1"), "must be zero or more seconds"),
    (("worker", "m:app", "--shutdown-timeout", "soon"), "expected a number of seconds"),
    (("worker", "m:app", "--shutdown-timeout", "nan"), "must be zero or more seconds"),
    (("worker", "m:app", "--bogus"), "unrecognized arguments: --bogus"),
    (("scheduler",), "the following arguments are required: MODULE:APP"),
    (("ui", "m:app", "--port", "70000"), "a port is between 1 and 65535, got 70000"),
    (("ui", "m:app", "--port", "http"), "expected a port number, got 'http'"),
    (("demo", "--tasks", "0"), "must be between 1 and 100000, got 0"),
])
def test_argument_errors_exit_2_with_a_message(capsys, argv, message):
    status, err = run_main(capsys, *argv)
    assert status == 2
    assert message in err


def test_loglevel_is_case_insensitive():
    args = cli.build_parser().parse_args(["worker", "m:app", "--loglevel", "DEBUG", "-Q", "a, b"])
    assert args.loglevel == "debug"
    assert args.queues == ["a", "b"]
    assert args.shutdown_timeout == 30.0
    assert args.concurrency is None and args.with_scheduler is False


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("flowrra ")


@pytest.mark.parametrize("command", ["worker", "scheduler", "ui"])
def test_unloadable_app_exits_1_with_the_loader_message(capsys, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    status, err = run_main(capsys, command, "no_such_module_q7:app")
    assert status == 1
    assert f"flowrra {command}: error: Cannot import module 'no_such_module_q7'" in err


def test_ui_without_the_standalone_dashboard(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "flowrra.ui.standalone", None)  # makes the import fail
    status, err = run_main(capsys, "ui", "flowrra.demo_tasks:app")
    assert status == 1
    assert "flowrra.ui.standalone" in err and "not available" in err


def test_scheduler_commands_without_the_scheduler(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "flowrra.scheduler", None)
    status, err = run_main(capsys, "scheduler", "flowrra.demo_tasks:app")
    assert status == 1
    assert "'flowrra scheduler' needs the scheduler" in err
    status, err = run_main(capsys, "worker", "flowrra.demo_tasks:app", "--with-scheduler")
    assert status == 1
    assert "--with-scheduler needs the scheduler" in err


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "flowrra", "worker", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--shutdown-timeout" in out.stdout and "--with-scheduler" in out.stdout
