"""How much server memory does a WebSocket client that never reads cost? (Django example)

Starts examples/django_project under a real ASGI server (daphne or uvicorn) with
Redis as broker, opens a raw WebSocket that completes the handshake and then
never reads (tiny receive buffer), publishes N task events of ~1 KB each
through Redis from this process (as separate workers would), and reports the
server's resident memory before and after.

    .venv/bin/python benchmarks/django_slow_client.py --server daphne --events 20000
    .venv/bin/python benchmarks/django_slow_client.py --server uvicorn --events 20000

Needs Redis at FLOWRRA_TEST_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/redis.py would shadow the redis package when this runs as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))

import psutil  # noqa: E402

REDIS_URL = os.environ.get("FLOWRRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    target = "examples.django_project.project.asgi:application"
    bin_dir = Path(sys.executable).parent
    if kind == "daphne":
        cmd = [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port), target]
    else:
        cmd = [str(bin_dir / "uvicorn"), "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", target]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"server did not listen on {port}")


def never_reading_socket(port: int) -> socket.socket:
    """Complete a WebSocket handshake, then never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /flowrra/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit("server closed the socket during the handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise SystemExit(f"handshake refused: {head[:200]!r}")
    return sock


def read_frames_until(sock: socket.socket, marker: bytes, timeout: float) -> int:
    """Start reading after all: count text frames until one containing ``marker`` arrives."""
    sock.settimeout(timeout)
    buf = b""
    frames = 0

    def need(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("server closed the socket")
            buf += chunk
        data, buf = buf[:n], buf[n:]
        return data

    while True:
        head = need(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(need(2), "big")
        elif length == 127:
            length = int.from_bytes(need(8), "big")
        payload = need(length)
        frames += 1
        if marker in payload:
            return frames


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 1e6


async def publish(events: int, payload: int) -> None:
    from flowrra import Config, Flowrra

    app = Flowrra(Config.from_env())
    await app.connect()
    blob = "x" * payload
    for i in range(events):
        await app.transport.publish({"type": "task.update", "origin": "bench",
                                     "task": {"task_id": f"bench-{i}", "status": "success",
                                              "task_name": "bench", "result": blob}})
        if i % 500 == 499:
            await asyncio.sleep(0.05)  # keep the publisher's own bounded queue from dropping
    await asyncio.sleep(1)
    await app.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--payload", type=int, default=1000)
    args = parser.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWRRA_", "DJANGO_"))}
    env.update(FLOWRRA_BROKER_URL=REDIS_URL, FLOWRRA_BROKER_QUEUE_KEY=prefix, FLOWRRA_UI_PUBLIC="1",
               FLOWRRA_EXAMPLE_DB=f"/tmp/{prefix}.sqlite3", FLOWRRA_LOG_LEVEL="ERROR")
    os.environ.update(FLOWRRA_BROKER_URL=REDIS_URL, FLOWRRA_BROKER_QUEUE_KEY=prefix)
    port = free_port()
    server = start_server(args.server, port, env)
    try:
        wait_for_port(port, time.monotonic() + 30)
        proc = psutil.Process(server.pid)
        sock = never_reading_socket(port)
        time.sleep(1.0)
        before = rss_mb(proc)
        started = time.monotonic()
        asyncio.run(publish(args.events, args.payload))
        peak = before
        stable_since, last = time.monotonic(), before
        while time.monotonic() - stable_since < 3 and time.monotonic() - started < 120:
            time.sleep(0.5)
            now = rss_mb(proc)
            peak = max(peak, now)
            if abs(now - last) > 0.5:
                stable_since = time.monotonic()
            last = now
        sent_mb = args.events * (args.payload + 150) / 1e6
        print(f"{args.server}: {args.events} events x ~{args.payload} B (~{sent_mb:.0f} MB of frames) to a "
              f"client that never reads: server RSS {before:.0f} MB -> peak {peak:.0f} MB "
              f"(+{peak - before:.0f} MB)")
        delivered = read_frames_until(sock, f'"bench-{args.events - 1}"'.encode(), 60)
        print(f"  once the client reads again it gets {delivered} frames ending with the newest "
              f"state (the stream keeps at most the latest state of 1000 tasks)")
        sock.close()
    finally:
        server.terminate()
        server.wait(15)
        Path(f"/tmp/{prefix}.sqlite3").unlink(missing_ok=True)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()
