#!/usr/bin/env python
"""Django's command-line utility for the Flowrra example; run it from anywhere."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # The settings live in the package `examples.django_project.project`, so the
    # repository root must be importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
