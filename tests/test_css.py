"""What axe-core cannot see in the style sheet: the focus ring's contrast, and `hidden`."""

from __future__ import annotations

import re
from pathlib import Path

CSS = (Path(__file__).parent.parent / "concord" / "web" / "static" / "concord.css").read_text()


def _var(name: str) -> str:
    found = re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})\s*;", CSS)
    assert found, f"--{name} is not a #rrggbb colour in concord.css"
    return found.group(1)


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#ffbf47", "#ffffff"), 2) == 1.64  # the old ring: too faint


def test_the_focus_ring_stands_out_on_every_background_it_is_drawn_on():
    """WCAG 2.2 2.4.11 / 2.1 1.4.11: a focus indicator needs 3:1 against what is next to it."""
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*3px solid var\(--focus\)", CSS)
    ring = _var("focus")
    pages = {name: _var(name) for name in ("paper", "wash", "ok-bg", "warn-bg", "bad-bg")}
    pages |= {"notice": "#e8f3f8", "white": "#ffffff"}
    weak = {n: round(contrast(ring, c), 2) for n, c in pages.items() if contrast(ring, c) < 3}
    assert weak == {}
    # The top bar is the brand colour: its ring has its own colour.
    on_brand = r"\.topbar :focus-visible\s*\{\s*outline-color:\s*var\(--focus-on-brand\)"
    assert re.search(on_brand, CSS)
    assert contrast(_var("focus-on-brand"), _var("brand")) >= 3


def test_hidden_always_hides():
    """`button { display: inline-block }` beat the `hidden` attribute (issue 16, items 7, 11)."""
    assert re.search(r"\[hidden\]\s*\{\s*display:\s*none\s*!important;\s*\}", CSS)
