"""Django settings for the tests: configured once per process, in-memory SQLite.

The database is a *shared-cache* in-memory SQLite, so the worker thread that
``sync_to_async`` uses sees the tables and users created from the main thread.
No CsrfViewMiddleware on purpose: the dashboard must enforce CSRF by itself.
"""

from __future__ import annotations

import django
from django.conf import settings


def configure() -> None:
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="flowrra-django-tests",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "channels",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="tests.django.urls",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": "file:flowrra-django-tests?mode=memory&cache=shared"}},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGIN_URL="/login/",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
