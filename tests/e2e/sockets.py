"""WebSocket clients for end-to-end tests: a reading one (``websockets``) and one that never reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

FINAL = frozenset({"success", "failed", "cancelled"})


@contextlib.asynccontextmanager
async def live_socket(url: str, timeout: float = 15.0, **options: Any) -> AsyncIterator[ClientConnection]:
    """A connected client that has received the server's ``hello`` (so its subscription is live).

    It sends the ``Origin`` a browser on the dashboard's own page would send
    (Channels' AllowedHostsOriginValidator refuses handshakes without one).
    """
    options.setdefault("origin", "http://" + url.split("://", 1)[1].split("/", 1)[0])
    async with connect(url, open_timeout=timeout, max_size=None, **options) as ws:
        try:
            async with asyncio.timeout(timeout):
                hello = json.loads(await ws.recv())
        except TimeoutError:
            pytest.fail(f"no hello frame from {url} within {timeout}s")
        assert hello.get("type") == "hello", f"first frame from {url} was {hello!r}, not hello"
        yield ws


async def task_frames(ws: ClientConnection, task_id: str, timeout: float = 30.0,
                      context: str = "") -> list[dict[str, Any]]:
    """Every ``task.update`` of ``task_id`` until its final state; fails after ``timeout`` seconds."""
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while not frames or frames[-1]["status"] not in FINAL:
                frame = json.loads(await ws.recv())
                task = frame.get("task") if frame.get("type") == "task.update" else None
                if isinstance(task, dict) and task.get("task_id") == task_id:
                    frames.append(task)
    except TimeoutError:
        pytest.fail(f"task {task_id} did not reach a final state on the socket within {timeout}s; "
                    f"states so far {[f['status'] for f in frames]}\n{context}")
    return frames


class NeverReadingSocket:
    """A WebSocket client that completes the handshake, reads the hello frame, then never reads.

    Its receive buffer is shrunk before connecting, so the kernel holds only a
    little on its side; whatever the server keeps sending piles up in the server.
    """

    def __init__(self, port: int, path: str, timeout: float = 15.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Origin: http://127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        received = b""
        deadline = time.monotonic() + timeout
        while b'"hello"' not in received:
            if time.monotonic() > deadline:
                pytest.fail(f"no hello on the never-reading socket within {timeout}s: {received[:300]!r}")
            chunk = self.sock.recv(4096)
            if not chunk:
                pytest.fail(f"the server closed the socket during the handshake: {received[:300]!r}")
            received += chunk
        status = received.split(b"\r\n", 1)[0]
        assert b" 101 " in status, f"handshake refused: {status!r}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
