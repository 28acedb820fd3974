"""flowrra.loader: every accepted reference form, and an explanation for every mistake."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from flowrra import Flowrra
from flowrra.loader import AppLoadError, load_app, split_reference
from tests.conftest import unique


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def make_module(tmp_path, monkeypatch):
    """Write a uniquely named module into tmp_path; returns its name. Cleaned from sys.modules."""
    names: list[str] = []
    monkeypatch.chdir(tmp_path)

    def make(source: str, name: str | None = None) -> str:
        name = name or unique("mod").replace("-", "_")
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


APP_SOURCE = """
from flowrra import Flowrra
app = Flowrra()
other = Flowrra()
class Holder:
    inner = app
def create_app():
    return app
def broken_factory():
    raise RuntimeError("no config")
not_an_app = 42
"""


def test_module_colon_attribute(make_module, tmp_path):
    name = make_module(APP_SOURCE)
    app = load_app(f"{name}:app", cwd=tmp_path)
    assert isinstance(app, Flowrra)
    assert load_app(f"{name}:other", cwd=tmp_path) is sys.modules[name].other


def test_dotted_attribute_and_factory(make_module, tmp_path):
    name = make_module(APP_SOURCE)
    module_app = load_app(f"{name}:app", cwd=tmp_path)
    assert load_app(f"{name}:Holder.inner", cwd=tmp_path) is module_app
    assert load_app(f"{name}:create_app()", cwd=tmp_path) is module_app


def test_module_without_attribute_prefers_app(make_module, tmp_path):
    name = make_module(APP_SOURCE)
    assert load_app(name, cwd=tmp_path) is sys.modules[name].app


def test_module_with_single_unnamed_app(make_module, tmp_path):
    name = make_module("from flowrra import Flowrra\nqueue = Flowrra()\n")
    assert load_app(name, cwd=tmp_path) is sys.modules[name].queue


def test_module_with_several_apps_and_no_app_attribute(make_module, tmp_path):
    name = make_module("from flowrra import Flowrra\nfirst = Flowrra()\nsecond = Flowrra()\n")
    with pytest.raises(AppLoadError, match=r"several Flowrra apps \(first, second\).*:first"):
        load_app(name, cwd=tmp_path)


def test_module_with_no_app(make_module, tmp_path):
    name = make_module("x = 1\n")
    with pytest.raises(AppLoadError, match="defines no Flowrra app"):
        load_app(name, cwd=tmp_path)


def test_file_path_reference(tmp_path, monkeypatch):
    name = unique("filemod").replace("-", "_")
    sub = tmp_path / "pkgdir"
    sub.mkdir()
    (sub / f"{name}.py").write_text("from flowrra import Flowrra\napp = Flowrra()\n")
    monkeypatch.chdir(tmp_path)
    try:
        app = load_app(f"pkgdir/{name}.py:app", cwd=tmp_path)
        assert isinstance(app, Flowrra)
        assert sys.modules[name].app is app  # importable by name: CPU tasks pickle by reference
        absolute = load_app(f"{sub / (name + '.py')}:app", cwd="/")
        assert isinstance(absolute, Flowrra)
    finally:
        sys.modules.pop(name, None)


def test_missing_module_says_where_it_looked(tmp_path):
    with pytest.raises(AppLoadError, match=r"Cannot import module 'no_such_mod_x1'.*project root"):
        load_app("no_such_mod_x1:app", cwd=tmp_path)


def test_missing_dependency_of_the_module_is_named(make_module, tmp_path):
    name = make_module("import not_installed_dep_zz\n")
    with pytest.raises(AppLoadError, match="imports 'not_installed_dep_zz', which is not installed"):
        load_app(f"{name}:app", cwd=tmp_path)


def test_module_raising_on_import(make_module, tmp_path):
    name = make_module("raise RuntimeError('bad settings')\n")
    with pytest.raises(AppLoadError, match="raised RuntimeError: bad settings"):
        load_app(f"{name}:app", cwd=tmp_path)


def test_missing_attribute_lists_the_apps_found(make_module, tmp_path):
    name = make_module(APP_SOURCE)
    with pytest.raises(AppLoadError, match=r"no attribute 'application'. It defines: app, other"):
        load_app(f"{name}:application", cwd=tmp_path)


def test_attribute_that_is_not_an_app(make_module, tmp_path):
    name = make_module(APP_SOURCE)
    with pytest.raises(AppLoadError, match="is a int, not a Flowrra app"):
        load_app(f"{name}:not_an_app", cwd=tmp_path)
    with pytest.raises(AppLoadError, match=r"Add '\(\)' to call it as a factory"):
        load_app(f"{name}:create_app", cwd=tmp_path)


def test_factory_errors(make_module, tmp_path):
    name = make_module(APP_SOURCE)
    with pytest.raises(AppLoadError, match=r"Calling broken_factory\(\) raised RuntimeError: no config"):
        load_app(f"{name}:broken_factory()", cwd=tmp_path)
    with pytest.raises(AppLoadError, match="not callable"):
        load_app(f"{name}:not_an_app()", cwd=tmp_path)


@pytest.mark.parametrize("reference, message", [
    ("", "No app given"),
    ("   ", "No app given"),
    (":app", "has no module before ':'"),
    ("tasks:", "has nothing after ':'"),
    ("tasks:app-1", "is not an attribute name"),
    ("tasks:()", "is not an attribute name"),
])
def test_malformed_references(reference, message, tmp_path):
    with pytest.raises(AppLoadError, match=message):
        load_app(reference, cwd=tmp_path)


def test_file_errors(tmp_path):
    with pytest.raises(AppLoadError, match="does not exist"):
        load_app("nowhere/tasks.py:app", cwd=tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AppLoadError, match="is not a Python file"):
        load_app(f"{tmp_path / 'notes.txt'}:app", cwd=tmp_path)


def test_split_reference():
    assert split_reference("a.b:c") == ("a.b", "c")
    assert split_reference("a.b") == ("a.b", None)
    assert split_reference("dir/x.py:app") == ("dir/x.py", "app")
    assert split_reference(str(Path("/abs/x.py")) + ":app") == ("/abs/x.py", "app")
