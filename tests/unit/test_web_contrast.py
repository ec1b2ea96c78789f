"""Every text/background colour pair of the web space's stylesheet meets WCAG 2.1 AA (4.5:1
for normal text): the pairs are read from web.css itself, so a new colour is checked too.

A rule that sets a colour and a background is one pair. A rule that sets only one of them
takes the other from the rule of its leading element (`button.danger` from `button`,
`header.top a` from `header.top`), or of the element it sits in (INSIDE: what base.html
puts in the header), else from the page: the ink on white, and on the light grey of notes,
filters and table heads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mailgw.http.web

CSS = (Path(mailgw.http.web.__file__).parent / "static" / "web.css").read_text()
AA = 4.5
RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")


def _vars() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", CSS)
    assert root, "web.css has no :root colours"
    return dict(re.findall(r"(--[\w-]+)\s*:\s*([^;]+);", root.group(1)))


VARS = _vars()


def _colour(value: str) -> str | None:
    """The hex colour a declaration's value names (through var()), or None (none, inherit,
    currentColor …)."""
    value = re.sub(r"var\((--[\w-]+)\)", lambda m: VARS[m.group(1)], value)
    hit = HEX.search(value)
    if not hit:
        return None
    h = hit.group(0)[1:]
    return "#" + ("".join(c * 2 for c in h) if len(h) == 3 else h).lower()


def luminance(colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def ratio(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rules() -> list[tuple[str, str | None, str | None]]:
    """(selector, colour, background) of every rule that sets either, one per selector."""
    body = re.sub(r"/\*.*?\*/", "", CSS, flags=re.S)
    body = re.sub(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*)\s*\}", r"\1", body)
    found = []
    for selectors, decls in RULE.findall(body):
        if selectors.strip() == ":root":
            continue
        props = dict((k.strip(), v.strip()) for k, _, v in
                     (d.partition(":") for d in decls.split(";") if ":" in d))
        fg = _colour(props["color"]) if "color" in props else None
        bg = next((_colour(props[k]) for k in ("background-color", "background")
                   if k in props), None)
        if fg or bg:
            found += [(sel.strip(), fg, bg) for sel in selectors.split(",")]
    return found


RULES = _rules()
PAGE_BG = ("#ffffff", _colour("var(--bg)") or "")
INSIDE = {".who": "header.top", "button.link": "header.top"}  # base.html's header


def _leading(selector: str) -> tuple[str | None, str | None]:
    """The colour and background of the rule for the selector's leading element."""
    head = selector.split()[0]
    for base in (INSIDE.get(selector, head), re.split(r"[.:\[]", head)[0]):
        for sel, fg, bg in RULES:
            if sel == base and sel != selector:
                return fg, bg
    return None, None


def pairs() -> list[tuple[str, str, str]]:
    out = []
    for sel, fg, bg in RULES:
        base_fg, base_bg = _leading(sel)
        text = fg or base_fg or _colour("var(--ink)")
        grounds = (bg,) if bg else (base_bg,) if base_bg else PAGE_BG
        out += [(sel, text, ground) for ground in grounds if text and ground]
    return out


def test_the_pairs_are_found() -> None:
    found = {sel for sel, _fg, _bg in pairs()}
    assert {".badge.delivered_all", "button.danger", "header.top a", ".meta"} <= found


def test_the_ratio_is_the_wcag_one() -> None:
    assert ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("selector,text,ground", pairs())
def test_every_pair_meets_aa(selector: str, text: str, ground: str) -> None:
    assert ratio(text, ground) >= AA, f"{selector}: {text} on {ground}"


def test_the_focus_ring_stands_out() -> None:
    """The keyboard's focus ring (`:focus-visible`) is a UI part: 3:1 against what it is
    drawn on (outside the element: the page, or the header's dark band)."""
    rings = []
    body = re.sub(r"/\*.*?\*/", "", CSS, flags=re.S)
    for selectors, decls in RULE.findall(body):
        if ":focus-visible" not in selectors:
            continue
        hit = re.search(r"outline(?:-color)?\s*:\s*([^;]+)", decls)
        colour = _colour(hit.group(1)) if hit else None
        assert colour, f"{selectors.strip()}: a focus style with no outline colour"
        inside = selectors.strip().split()[0]
        grounds = [bg for sel, _fg, bg in RULES if sel == inside and bg] or PAGE_BG
        rings += [(selectors.strip(), colour, g) for g in grounds]
    assert any("button:focus-visible" in sel for sel, _c, _g in rings)
    assert any(g == "#102a43" for _s, _c, g in rings), "no ring for the header"
    for sel, colour, ground in rings:
        assert ratio(colour, ground) >= 3.0, f"{sel}: {colour} on {ground}"
