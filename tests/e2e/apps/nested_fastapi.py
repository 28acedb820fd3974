"""The FastAPI example's Flowrra app mounted under a deeper prefix, ``/ops/flowrra``.

Browser tests click through this one: a link or socket URL that ignored the
mount prefix (or assumed ``/flowrra``) would lead off it.

    uvicorn tests.e2e.apps.nested_fastapi:app
"""

from __future__ import annotations

from examples.fastapi_app import flowrra, lifespan, submit_add, submit_flaky
from fastapi import FastAPI

from flowrra.ui.fastapi import create_router

PREFIX = "/ops/flowrra"

app = FastAPI(title="Flowrra under a nested prefix", lifespan=lifespan)
app.include_router(create_router(flowrra), prefix=PREFIX)
app.post("/add")(submit_add)
app.post("/flaky")(submit_flaky)
