"""The ``flowrra`` command: ``worker``, ``scheduler``, ``ui`` and ``demo``.

Argument mistakes exit with status 2 and a message saying what to type instead;
an app that cannot be loaded exits with status 1 and the loader's explanation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence
from typing import Any

from flowrra import __version__

logger = logging.getLogger("flowrra.cli")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class CLIError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 1."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text}")
    return value


def _queue_list(text: str) -> list[str]:
    queues = [q.strip() for q in text.split(",")]
    if not text.strip() or any(not q for q in queues):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated queue names such as 'default,emails', got {text!r}")
    return queues


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {value}")
    return value


def _add_app_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="MODULE:APP",
                        help="where your Flowrra app lives, e.g. 'myproject.tasks:app' or "
                             "'path/to/tasks.py:app'")


def _add_loglevel(parser: argparse.ArgumentParser, default: str = "info") -> None:
    parser.add_argument("-l", "--loglevel", default=default, type=str.lower, choices=LOG_LEVELS,
                        help=f"logging level (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrra", description="Flowrra: asyncio-native background tasks.")
    parser.add_argument("--version", action="version", version=f"flowrra {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    worker = commands.add_parser(
        "worker", help="run tasks from the broker in this process",
        description="Claim and run tasks until SIGTERM/SIGINT (a second signal stops at once).")
    _add_app_argument(worker)
    worker.add_argument("-c", "--concurrency", type=_positive_int, default=None,
                        help="I/O tasks run at once (default: the app's ExecutorConfig.io_workers)")
    worker.add_argument("--cpu-workers", type=_positive_int, default=None,
                        help="processes for cpu_bound tasks (default: ExecutorConfig.cpu_workers)")
    worker.add_argument("-Q", "--queues", type=_queue_list, default=None,
                        help="comma-separated queues to consume (default: 'default')")
    _add_loglevel(worker)
    worker.add_argument("--shutdown-timeout", type=_non_negative_float, default=30.0,
                        help="seconds running tasks get to finish on SIGTERM before they are "
                             "handed back (default: 30)")
    worker.add_argument("--with-scheduler", action="store_true",
                        help="also run the scheduler in this process")

    scheduler = commands.add_parser("scheduler", help="run the scheduler only (submits due tasks)")
    _add_app_argument(scheduler)
    _add_loglevel(scheduler)

    ui = commands.add_parser("ui", help="serve the web dashboard")
    _add_app_argument(ui)
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ui.add_argument("--port", type=_port, default=8000, help="port (default: 8000)")
    _add_loglevel(ui)

    from flowrra.demo import add_arguments as add_demo_arguments

    demo = commands.add_parser("demo", help="a zero-setup demo with live progress",
                               description="Submit a mix of example tasks and watch them run.")
    add_demo_arguments(demo)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="[%(asctime)s] %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")


def _load(reference: str) -> Any:
    from flowrra.loader import AppLoadError, load_app

    try:
        return load_app(reference)
    except AppLoadError as exc:
        raise CLIError(str(exc)) from exc


def _require_scheduler(flag: str) -> None:
    try:
        module = importlib.import_module("flowrra.scheduler")
    except ImportError as exc:
        raise CLIError(f"{flag} needs the scheduler (flowrra.scheduler), which cannot be "
                       f"imported: {exc}") from exc
    if not hasattr(module, "create_scheduler"):
        raise CLIError(f"{flag} needs flowrra.scheduler.create_scheduler, which this "
                       "installation of flowrra does not have.")


def cmd_worker(args: argparse.Namespace) -> int:
    from flowrra.process import WorkerOptions, run_worker

    configure_logging(args.loglevel)
    if args.with_scheduler:
        _require_scheduler("--with-scheduler")
    app = _load(args.app)
    if not app.broker.shared:
        logger.warning("%s uses the in-process broker: this worker only sees tasks submitted in "
                       "its own process. Configure a shared broker (FLOWRRA_BROKER_URL=redis://... "
                       "or sqlite:///...) to run tasks submitted elsewhere.", args.app)
    options = WorkerOptions(concurrency=args.concurrency, cpu_workers=args.cpu_workers,
                            queues=args.queues, shutdown_timeout=args.shutdown_timeout,
                            with_scheduler=args.with_scheduler)
    asyncio.run(run_worker(app, options))
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from flowrra.process import run_scheduler

    configure_logging(args.loglevel)
    _require_scheduler("'flowrra scheduler'")
    app = _load(args.app)
    asyncio.run(run_scheduler(app))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    configure_logging(args.loglevel)
    app = _load(args.app)
    try:
        standalone = importlib.import_module("flowrra.ui.standalone")
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name in ("flowrra.ui", "flowrra.ui.standalone"):
            raise CLIError("The standalone dashboard (flowrra.ui.standalone) is not available in "
                           "this installation of flowrra.") from exc
        raise CLIError(f"The dashboard cannot start: {exc}. "
                       "Install its dependencies with: pip install 'flowrra[ui-fastapi]'") from exc
    if app.config.scheduler is not None and app.scheduler is None:
        # Configured schedules show on the dashboard; creating the scheduler does not start it.
        with contextlib.suppress(ImportError):
            app.create_scheduler(check_interval=app.config.scheduler.check_interval)
    result = standalone.serve(app, args.host, args.port)
    if inspect.isawaitable(result):
        asyncio.run(_await(result))
    return 0


async def _await(awaitable: Any) -> Any:
    return await awaitable


def cmd_demo(args: argparse.Namespace) -> int:
    from flowrra.demo import run

    return run(args)


COMMANDS = {"worker": cmd_worker, "scheduler": cmd_scheduler, "ui": cmd_ui, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowrra`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CLIError as exc:
        print(f"flowrra {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Before the signal handlers are installed, or raised by a task (a CPU pool
        # process that received the terminal's Ctrl-C): say so rather than exit silently.
        print(f"flowrra {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
