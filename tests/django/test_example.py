"""examples/django_project works as documented: its ASGI app, settings and management command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("FLOWRRA_", "DJANGO_")) and k != "REDIS_URL"}
    environ.update(FLOWRRA_EXAMPLE_DB=str(tmp_path / "example.sqlite3"), **env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=90)


@pytest.mark.parametrize("public", ["1", "0"], ids=["public", "staff-only"])
def test_example_streams_a_demo_task(tmp_path: Path, public: str) -> None:
    result = run(["-m", "tests.django.example_check"], tmp_path, FLOWRRA_UI_PUBLIC=public)
    assert result.returncode == 0, result.stdout + result.stderr
    if public == "1":
        assert "states pending" in result.stdout and result.stdout.strip().endswith("success")
    else:
        assert "anonymous refused" in result.stdout


def test_manage_py_check_from_anywhere(tmp_path: Path) -> None:
    manage = ROOT / "examples" / "django_project" / "manage.py"
    result = subprocess.run([sys.executable, str(manage), "check"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=90,
                            env={**os.environ, "FLOWRRA_EXAMPLE_DB": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
