"""Pages and front-end assets: prefix-aware links, stable ids, escaping, colour contrast."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from flowrra.ui import pages
from tests.ui.harness import Harness

STATIC = Path(pages.STATIC_ROOT)
TEMPLATES = Path(pages.TEMPLATE_ROOT)


def page_config(html: str) -> dict:
    match = re.search(r'id="flowrra-config"[^>]*data-config="([^"]*)"', html)
    assert match, "the shell must carry its config"
    return json.loads(unescape(match.group(1)))


@pytest.mark.parametrize("path, page", [("", "dashboard"), ("tasks", "tasks"),
                                        ("schedules", "schedules"), ("tasks/abc123", "task")])
async def test_pages_render_with_prefix_aware_links(make_ui, path: str, page: str) -> None:
    ui: Harness = await make_ui(prefix="/ops/queue")
    prefix = ui.prefix  # a harness that cannot remount keeps its own prefix
    reply = await ui.get(path)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    html = reply.text
    assert f'data-page="{page}"' in html and 'id="connection-mode"' in html
    for href in re.findall(r'(?:href|src)="([^"#][^"]*)"', html):
        assert href.startswith(prefix + "/"), href
    config = page_config(html)
    assert config["prefix"] == prefix and config["page"] == page
    assert config["pollInterval"] == 15000
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    for asset in re.findall(rf'(?:href|src)="{prefix}/(static/[^"?]+)', html):
        assert (await ui.get(asset)).status == 200, asset


async def test_task_detail_page_escapes_the_id(ui: Harness) -> None:
    reply = await ui.get("tasks/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert reply.status == 200
    assert "<img src=x" not in reply.text
    assert 'data-task-id="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in reply.text


async def test_unknown_page_is_404_html(ui: Harness) -> None:
    reply = await ui.get("nope")
    assert reply.status == 404 and "Not found" in reply.text


async def test_head_on_a_page(ui: Harness) -> None:
    reply = await ui.request("HEAD", "tasks")
    assert reply.status == 200 and reply.body == b""


def test_script_ids_exist_in_templates() -> None:
    """Every element the scripts look up by a literal id is present in some page template."""
    template_ids = set()
    for template in TEMPLATES.glob("*.html"):
        template_ids |= set(re.findall(r'\bid="([\w-]+)"', template.read_text()))
    script = (STATIC / "flowrra.js").read_text() + (STATIC / "pages.js").read_text()
    used = set(re.findall(r'\$\("([\w-]+)"\)', script))
    assert used, "expected lookups in the scripts"
    assert used - template_ids == set()


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_helper_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_status_colours_pass_wcag_aa(scheme: str) -> None:
    css = (STATIC / "flowrra.css").read_text()
    light, _, rest = css.partition("@media (prefers-color-scheme: dark)")
    block = light if scheme == "light" else rest.split("\n}\n", 1)[0]
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", block))
    pairs = [(k[:-3], v, colours[k[:-3] + "-fg"]) for k, v in colours.items() if k.endswith("-bg")]
    assert len(pairs) >= 10, pairs
    pairs += [("text", colours["panel"], colours["text"]), ("muted", colours["panel"], colours["muted"]),
              ("link", colours["panel"], colours["accent"]),
              ("button", colours["accent"], colours["accent-text"]),
              ("danger", colours["danger"], colours["danger-text"])]
    for name, bg, fg in pairs:
        assert contrast(bg, fg) >= 4.5, f"{scheme} {name}: {fg} on {bg} is {contrast(bg, fg):.2f}:1"
