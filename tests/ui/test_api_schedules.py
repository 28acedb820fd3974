"""JSON API: schedules (with an in-memory scheduler, and without any) — on every framework."""

from __future__ import annotations

import pytest

from tests.ui.harness import Harness
from tests.ui.test_api_tasks import assert_error, finish

CRON = {"task_name": "ui.add", "cron": "*/5 * * * *", "args": [1, 2], "kwargs": {},
        "enabled": True, "description": "every five minutes", "priority": 3}


async def create_cron(ui: Harness, **changes) -> str:
    reply = await ui.post("api/schedules/cron", json={**CRON, **changes})
    assert reply.status == 201, reply.text
    return reply.json()["schedule_id"]


async def test_no_scheduler_gives_a_clear_503_everywhere(ui: Harness) -> None:
    calls = [("GET", "api/schedules", None), ("GET", "api/schedules/x", None),
             ("GET", "api/scheduler", None), ("POST", "api/schedules/cron", CRON),
             ("POST", "api/schedules/interval", {"task_name": "ui.add", "interval": 5}),
             ("PUT", "api/schedules/x/enable", None), ("PUT", "api/schedules/x/disable", None),
             ("DELETE", "api/schedules/x", None), ("POST", "api/schedules/x/run", None)]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        reply = await ui.request(method, path, **kwargs)
        error = assert_error(reply, 503, "no_scheduler")
        assert "create_scheduler" in error["error"], (method, path)


async def test_create_list_get_cron_schedule(sched_ui: Harness) -> None:
    ui = sched_ui
    assert (await ui.get("api/schedules")).json() == []
    sid = await create_cron(ui)
    assert await create_cron(ui) == sid, "creating the same schedule twice returns its id"
    items = (await ui.get("api/schedules")).json()
    assert [s["id"] for s in items] == [sid]
    detail = (await ui.get(f"api/schedules/{sid}")).json()
    assert detail["cron"] == "*/5 * * * *" and detail["task_name"] == "ui.add"
    assert detail["args"] == [1, 2] and detail["priority"] == 3 and detail["enabled"] is True
    assert detail["description"] == "every five minutes" and detail["next_run_at"]
    assert_error(await ui.get("api/schedules/missing"), 404, "not_found")
    stats = (await ui.get("api/scheduler")).json()
    assert stats["total"] == 1 and stats["enabled"] == 1
    assert (await ui.get("api/stats")).json()["scheduler"]["total"] == 1


async def test_create_interval_schedule(sched_ui: Harness) -> None:
    reply = await sched_ui.post("api/schedules/interval",
                                json={"task_name": "ui.add", "interval": 30, "args": [2, 3]})
    assert reply.status == 201
    sid = reply.json()["schedule_id"]
    detail = (await sched_ui.get(f"api/schedules/{sid}")).json()
    assert detail["kind"] == "interval" and detail["interval"] == 30.0


@pytest.mark.parametrize("body, words", [
    ({**CRON, "cron": "61 * * * *"}, "cron"),
    ({**CRON, "cron": "not a cron"}, "cron"),
    ({**CRON, "cron": ""}, "cron"),
    ({**CRON, "cron": 5}, "cron"),
    ({**CRON, "task_name": "no.such.task"}, "not registered"),
    ({**CRON, "args": "1,2"}, "args"),
    ({**CRON, "kwargs": [1]}, "kwargs"),
    ({**CRON, "priority": "high"}, "priority"),
    ({**CRON, "enabled": "yes"}, "enabled"),
    ({**CRON, "surprise": 1}, "surprise"),
    ({k: v for k, v in CRON.items() if k != "task_name"}, "task_name"),
])
async def test_create_cron_rejects_bad_input(sched_ui: Harness, body, words) -> None:
    error = assert_error(await sched_ui.post("api/schedules/cron", json=body), 400)
    assert words in error["error"], error


async def test_create_rejects_bad_bodies(sched_ui: Harness) -> None:
    json_header = {"Content-Type": "application/json"}
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'):
        assert_error(await sched_ui.post("api/schedules/cron", body=raw, headers=json_header), 400)
    assert_error(await sched_ui.post("api/schedules/cron"), 400)
    reply = await sched_ui.post("api/schedules/cron", body=b'{"task_name": "ui.add"}',
                                headers={"Content-Type": "text/plain"})
    assert_error(reply, 415, "unsupported_media_type")
    for interval in (0, -1, "x", None, True):
        body = {"task_name": "ui.add", "interval": interval}
        assert_error(await sched_ui.post("api/schedules/interval", json=body), 400)


async def test_enable_disable_and_enabled_only(sched_ui: Harness) -> None:
    ui = sched_ui
    sid = await create_cron(ui)
    other = await create_cron(ui, cron="0 7 * * mon-fri", enabled=False)
    only = (await ui.get("api/schedules?enabled_only=true")).json()
    assert [s["id"] for s in only] == [sid]
    assert len((await ui.get("api/schedules?enabled_only=false")).json()) == 2
    assert_error(await ui.get("api/schedules?enabled_only=maybe"), 400)

    reply = await ui.put(f"api/schedules/{sid}/disable")
    assert reply.status == 200
    assert reply.json() == {"status": "disabled", "schedule_id": sid, "enabled": False}
    assert (await ui.get(f"api/schedules/{sid}")).json()["enabled"] is False
    assert (await ui.put(f"api/schedules/{other}/enable")).json()["enabled"] is True
    only = (await ui.get("api/schedules?enabled_only=1")).json()
    assert [s["id"] for s in only] == [other]
    assert_error(await ui.put("api/schedules/missing/enable"), 404)
    assert_error(await ui.put("api/schedules/missing/disable"), 404)


async def test_run_now_and_delete(sched_ui: Harness) -> None:
    ui = sched_ui
    sid = await create_cron(ui)
    reply = await ui.post(f"api/schedules/{sid}/run")
    assert reply.status == 202
    task_id = reply.json()["task_id"]
    result = await finish(ui, task_id)
    assert result.result == 3
    assert_error(await ui.post("api/schedules/missing/run"), 404)

    deleted = await ui.delete(f"api/schedules/{sid}")
    assert deleted.status == 200 and deleted.json() == {"deleted": True, "schedule_id": sid}
    assert_error(await ui.get(f"api/schedules/{sid}"), 404)
    assert_error(await ui.delete(f"api/schedules/{sid}"), 404)
