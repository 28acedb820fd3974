"""CPU-bound task functions for the core tests.

They run in a forkserver process pool, which imports them by module path, so
they live at the top level of an importable module and import nothing heavy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


def explode(message: str) -> None:
    raise ValueError(message)


def rendezvous(directory: str, me: str, other: str, deadline: float) -> dict[str, Any]:
    """Announce ``me`` and wait (up to ``deadline`` s) to see ``other``: meets only if concurrent."""
    Path(directory, me).touch()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if Path(directory, other).exists():
            return {"pid": os.getpid(), "met": True}
        time.sleep(0.005)
    return {"pid": os.getpid(), "met": False}


def wait_for_file(path: str, deadline: float) -> bool:
    """Block until ``path`` exists (a test releases it) or ``deadline`` s pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.005)
    return False


def ignores_ctrl_c() -> bool:
    """True when this pool process leaves Ctrl-C (SIGINT) to the worker."""
    import signal

    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN
