"""Makes the example runnable in one command: creates Django's tables and, if asked, a staff user.

``FLOWRRA_EXAMPLE_ADMIN=name:password`` creates (or resets) that staff user, so
scripted browser tests can log in without an interactive ``createsuperuser``.
Set ``FLOWRRA_EXAMPLE_MIGRATE=0`` to skip the automatic ``migrate``.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)


def prepare_database() -> None:
    """Runs in its own thread: uvicorn imports the ASGI module with its event loop already
    running, and Django refuses ORM work on a thread with a running loop."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _prepare()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work, name="flowrra-example-bootstrap")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _prepare() -> None:
    from django.core.management import call_command

    if os.environ.get("FLOWRRA_EXAMPLE_MIGRATE", "1").strip().lower() not in {"0", "false", "no", "off"}:
        call_command("migrate", interactive=False, verbosity=0)
    spec = os.environ.get("FLOWRRA_EXAMPLE_ADMIN", "")
    if spec:
        name, sep, password = spec.partition(":")
        if not sep or not name or not password:
            raise ValueError("FLOWRRA_EXAMPLE_ADMIN must look like 'name:password', "
                             f"got {spec!r}")
        _ensure_staff_user(name, password)


def _ensure_staff_user(name: str, password: str) -> None:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(**{user_model.USERNAME_FIELD: name})
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    logger.info("%s staff user %r for the example", "created" if created else "updated", name)
