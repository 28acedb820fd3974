"""Every Python block in README.md and docs/*.md still works, so examples cannot rot.

A block that is a complete program (it calls ``asyncio.run`` or checks
``__main__``) is run as a script in an empty directory and must exit 0. A
program that serves forever carries a directive in the HTML comment line just
above its fence, ``<!-- doc-test: expect="TEXT" -->``: it is run until TEXT
appears in its output, then stopped. Every other block is a fragment; it must
at least compile (top-level ``await`` allowed), so a renamed keyword or a
broken edit shows up here.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"(?:<!-- doc-test: (?P<directive>.*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
_EXPECT = re.compile(r'expect="(?P<text>[^"]+)"')
RUN_LIMIT = 120.0


def _blocks() -> list[tuple[str, str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in _FENCE.finditer(text):
            line = text[:match.start("code")].count("\n")
            found.append((f"{path.name}:{line}", match.group("code"), match.group("directive") or ""))
    return found


BLOCKS = _blocks()
PROGRAMS = [b for b in BLOCKS if "asyncio.run(" in b[1] or "__main__" in b[1]]
FRAGMENTS = [b for b in BLOCKS if b not in PROGRAMS]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRRA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_until(script: Path, expect: str) -> str:
    """Run a serve-forever program until ``expect`` is printed; return its output."""
    out = script.with_suffix(".out")
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, script.name], cwd=script.parent, env=_env(),
                                stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + RUN_LIMIT
        try:
            while expect not in out.read_text() and proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"{expect!r} not printed within {RUN_LIMIT}s:\n{out.read_text()}")
                time.sleep(0.05)  # polling a child's output file for a condition
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out.read_text()


def test_the_docs_have_programs_to_run() -> None:
    assert len(PROGRAMS) >= 2 and FRAGMENTS


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code", "directive"), PROGRAMS, ids=[b[0] for b in PROGRAMS])
def test_doc_program_runs(where: str, code: str, directive: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(code)
    expect = _EXPECT.search(directive)
    if expect is not None:
        output = _run_until(script, expect.group("text"))
        assert expect.group("text") in output, output
        assert "Traceback" not in output, output
        return
    done = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=RUN_LIMIT)
    assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize(("where", "code", "directive"), FRAGMENTS, ids=[b[0] for b in FRAGMENTS])
def test_doc_fragment_compiles(where: str, code: str, directive: str) -> None:
    compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
