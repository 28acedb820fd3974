"""A home page with a button that submits a few demo tasks, so the dashboard has something to show."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.utils.html import escape
from examples.django_project.project.tasks import ensure_started, flaky, flowrra, sleep_then_echo

MAX_DEMO_TASKS = 200


def home(request: HttpRequest) -> HttpResponse:
    from django.middleware.csrf import get_token

    token = escape(get_token(request))
    user = request.user if request.user.is_authenticated else None
    who = f"Logged in as {escape(user.get_username())}." if user else "Not logged in."
    return HttpResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Flowrra Django example</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem">
<h1>Flowrra + Django Channels</h1>
<p>{who} <a href="/admin/login/?next=/flowrra/">Log in</a> as a staff user to see the dashboard
(or start the server with <code>FLOWRRA_UI_PUBLIC=1</code>).</p>
<p><a href="/flowrra/">Open the dashboard</a></p>
<form method="post" action="/demo/submit">
<input type="hidden" name="csrfmiddlewaretoken" value="{token}">
<label>Tasks to submit <input type="number" name="count" value="5" min="1" max="{MAX_DEMO_TASKS}"></label>
<button type="submit">Submit demo tasks</button></form></body></html>""")


def _requested_count(request: HttpRequest) -> int | None:
    raw: object = request.POST.get("count", 5)
    if request.content_type == "application/json":
        try:
            raw = json.loads(request.body or b"{}").get("count", 5)
        except (ValueError, AttributeError):
            return None
    try:
        count = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return count if 1 <= count <= MAX_DEMO_TASKS else None


async def submit_demo(request: HttpRequest) -> HttpResponse:
    """Submit ``count`` tasks; a form post is redirected to the dashboard, JSON gets the ids."""
    # Checked here rather than with @require_POST, which wraps async views only from Django 5.0.
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    count = _requested_count(request)
    if count is None:
        return JsonResponse({"error": f"count must be an integer from 1 to {MAX_DEMO_TASKS}"}, status=400)
    await ensure_started()
    ids = []
    for i in range(count):
        if i % 4 == 3:
            ids.append(await flowrra.submit(flaky, 0.5))
        else:
            ids.append(await flowrra.submit(sleep_then_echo, f"demo #{i + 1}", 0.5 + (i % 3) * 0.5))
    if request.content_type == "application/json":
        return JsonResponse({"task_ids": ids})
    return redirect("/flowrra/")
