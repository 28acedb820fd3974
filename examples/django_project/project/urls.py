"""URLs of the example: the dashboard at /flowrra/, Django's admin for logging in, a demo page."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from examples.django_project.project import views
from examples.django_project.project.tasks import flowrra

from flowrra.ui.django import get_urls

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/submit", views.submit_demo, name="submit-demo"),
    path("admin/", admin.site.urls),
    # Importing `flowrra` here is also what registers its cross-process relay.
    path("flowrra/", include(get_urls(flowrra))),
    *staticfiles_urlpatterns(),  # the admin's CSS under DEBUG
]
