"""Settings of the Flowrra Django example. Every knob is an environment variable.

- ``FLOWRRA_BROKER_URL`` (and the other ``FLOWRRA_*`` variables of
  ``Config.from_env``): where tasks are queued. Unset: inside this process.
- ``REDIS_URL``: if set, Channels uses ``channels_redis`` as its layer. Flowrra
  does not need a layer; this only shows that one does no harm.
- ``FLOWRRA_UI_PUBLIC=1``: open the dashboard without logging in. The default
  (unset) is the safe one: only staff users (log in at /admin/login/) may see
  the dashboard and its live socket.
- ``FLOWRRA_EXAMPLE_DB``: the SQLite file for Django's own tables (users,
  sessions). ``DJANGO_DEBUG``, ``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str, default: str = "") -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-key-for-the-flowrra-example-only")
DEBUG = _flag("DJANGO_DEBUG", "1")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "daphne",  # makes `manage.py runserver` serve WebSockets too
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "examples.django_project.project.urls"
ASGI_APPLICATION = "examples.django_project.project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("FLOWRRA_EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }

LOGIN_URL = "/admin/login/"
STATIC_URL = "static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- Flowrra -------------------------------------------------------------------------
# The app whose cross-process events the socket relays. urls.py imports it anyway;
# the setting makes the consumer import it even if the pages were not mounted.
FLOWRRA_APP = "examples.django_project.project.tasks:flowrra"

if _flag("FLOWRRA_UI_PUBLIC"):
    # Guards pages, JSON API and socket alike. Without it: active staff users only.
    FLOWRRA_UI_AUTH = "examples.django_project.project.auth.allow_everyone"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "flowrra": {"handlers": ["console"], "level": os.environ.get("FLOWRRA_LOG_LEVEL", "INFO"),
                    "propagate": False},
        "examples": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
