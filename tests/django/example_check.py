"""Drives examples/django_project through its real ASGI application, in this process.

Run by test_example.py in a subprocess (the example has its own Django settings).
Prints one line per check; exits non-zero on the first failure.
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from channels.testing import WebsocketCommunicator

TIMEOUT = 10


async def main() -> None:
    from examples.django_project.project.asgi import application

    # What a browser on the dashboard's own page sends; the example's asgi.py wraps the
    # socket in AllowedHostsOriginValidator, which refuses handshakes without an Origin.
    BROWSER = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
    from examples.django_project.project.tasks import flowrra

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        home = await client.get("/")
        assert home.status_code == 200, home.status_code
        public = os.environ.get("FLOWRRA_UI_PUBLIC") == "1"
        dash = await client.get("/flowrra/")
        if not public:
            assert dash.status_code == 302 and dash.headers["location"].startswith("/admin/login/"), \
                dash.status_code
            comm = WebsocketCommunicator(application, "/flowrra/ws", headers=BROWSER)
            ok, code = await comm.connect(timeout=TIMEOUT)
            assert not ok and code == 4401, (ok, code)
            print("anonymous refused")
            return
        assert dash.status_code == 200 and "csrftoken" in client.cookies, dash.status_code
        comm = WebsocketCommunicator(application, "/flowrra/ws", headers=BROWSER)
        ok, code = await comm.connect(timeout=TIMEOUT)
        assert ok, code
        hello = await comm.receive_json_from(timeout=TIMEOUT)
        assert hello["type"] == "hello", hello
        reply = await client.post("/demo/submit", json={"count": 1},
                                  headers={"X-CSRFToken": client.cookies["csrftoken"]})
        assert reply.status_code == 200, (reply.status_code, reply.text[:300])
        (task_id,) = reply.json()["task_ids"]
        states = []
        while not states or states[-1] not in ("success", "failed"):
            frame = await comm.receive_json_from(timeout=TIMEOUT)
            if frame["type"] == "task.update" and frame["task"]["task_id"] == task_id:
                states.append(frame["task"]["status"])
        print("states", " ".join(states))
        assert states[-1] == "success", states
        stats = await client.get("/flowrra/api/stats")
        assert stats.json()["tasks"]["success"] >= 1, stats.text
        await comm.disconnect()
    await flowrra.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as exc:
        print("FAILED", exc, file=sys.stderr)
        raise
