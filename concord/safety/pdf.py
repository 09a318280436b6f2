"""The safety plan as a one-page PDF the size of a pocket card (A6, 105 x 148 mm), which
also reads well on a phone screen. The text is set as large as the plan allows: the font
shrinks step by step until the whole plan fits on the one page. A plan too long to fit at
the smallest readable size (6.5 points) continues on a second page instead."""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A6
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate

from concord.i18n import N_, translate
from concord.safety.plans import SECTIONS

PAGE = A6
MARGIN = 6 * mm
SIZES = (10.5, 10, 9.5, 9, 8.5, 8, 7.5, 7, 6.5)  # points, largest first
# Fonts with wide character coverage: DejaVu where the system has it, else the Bitstream Vera
# fonts that ship inside ReportLab (Latin scripts).
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)


@lru_cache(maxsize=1)
def fonts() -> tuple[str, str]:
    import reportlab

    candidates = [(d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf") for d in FONT_DIRS]
    bundled = Path(reportlab.__file__).parent / "fonts"
    candidates.append((bundled / "Vera.ttf", bundled / "VeraBd.ttf"))
    for regular, bold in candidates:
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("PlanSans", str(regular)))
            pdfmetrics.registerFont(TTFont("PlanSans-Bold", str(bold)))
            return "PlanSans", "PlanSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _styles(size: float) -> dict[str, ParagraphStyle]:
    regular, bold = fonts()
    return {
        "title": ParagraphStyle(
            "title", fontName=bold, fontSize=size + 3, leading=(size + 3) * 1.2, spaceAfter=1
        ),
        "meta": ParagraphStyle(
            "meta",
            fontName=regular,
            fontSize=size - 2,
            leading=(size - 2) * 1.25,
            textColor=colors.HexColor("#444444"),
            spaceAfter=size * 0.4,
        ),
        "heading": ParagraphStyle(
            "heading",
            fontName=bold,
            fontSize=size + 0.5,
            leading=(size + 0.5) * 1.2,
            spaceBefore=size * 0.5,
            spaceAfter=1,
            textColor=colors.HexColor("#0b4f6c"),
        ),
        "entry": ParagraphStyle(
            "entry",
            fontName=regular,
            fontSize=size,
            leading=size * 1.25,
            leftIndent=size * 0.9,
            bulletIndent=0,
            bulletFontName=regular,
        ),
        "crisis": ParagraphStyle(
            "crisis",
            fontName=bold,
            fontSize=size,
            leading=size * 1.25,
            leftIndent=size * 0.9,
            bulletIndent=0,
            bulletFontName=regular,
        ),
        "empty": ParagraphStyle(
            "empty",
            fontName=regular,
            fontSize=size - 1,
            leading=(size - 1) * 1.25,
            leftIndent=size * 0.9,
            textColor=colors.HexColor("#666666"),
        ),
    }


def _story(
    size: float,
    *,
    lang: str,
    name: str,
    meta: str,
    content: dict[str, list[Any]],
    crisis: list[dict[str, str]],
) -> list[Flowable]:
    st = _styles(size)
    story: list[Flowable] = [
        Paragraph(escape(translate(N_("My safety plan"), lang)), st["title"]),
        Paragraph(escape(f"{name} · {meta}"), st["meta"]),
    ]
    for section in SECTIONS:
        number = f"{section.step}. " if section.step else ""
        story.append(Paragraph(escape(number + translate(section.heading, lang)), st["heading"]))
        entries: list[str] = []
        if section.key == "professionals":
            for line in crisis:
                if line.get("contact"):
                    text = f"{line['name']}: {line['contact']}"
                    story.append(Paragraph(escape(text), st["crisis"], bulletText="•"))
        for entry in content.get(section.key, []):
            if isinstance(entry, dict):
                entries.append(
                    f"{entry['name']}: {entry['contact']}"
                    if entry.get("contact")
                    else entry["name"]
                )
            else:
                entries.append(str(entry))
        if not entries and not (section.key == "professionals" and crisis):
            story.append(
                Paragraph(escape(translate(N_("(nothing written yet)"), lang)), st["empty"])
            )
        for text in entries:
            story.append(Paragraph(escape(text), st["entry"], bulletText="•"))
    return story


def _height(story: Iterable[Flowable], width: float) -> float:
    total = 0.0
    for flowable in story:
        _, h = flowable.wrap(width, 10_000)
        total += h + flowable.getSpaceBefore() + flowable.getSpaceAfter()
    return total


def render(
    *,
    lang: str,
    name: str,
    meta: str,
    content: dict[str, list[Any]],
    crisis: list[dict[str, str]],
    notice: str | None = None,
) -> bytes:
    """The PDF bytes: one A6 page, the largest type that fits. `notice`: the lines the PDF
    must end with, a paragraph each (the 42 CFR 2.32 notice when it holds Part 2 records, and
    the consents they were disclosed under)."""
    # The frame SimpleDocTemplate lays out into has 6 points of padding on every side.
    width = PAGE[0] - 2 * MARGIN - 12
    height = PAGE[1] - 2 * MARGIN - 12
    chosen: list[Flowable] | None = None
    for size in SIZES:
        story = _story(size, lang=lang, name=name, meta=meta, content=content, crisis=crisis)
        if _height(story, width) <= height - 4:  # a little room for rounding
            chosen = story
            break
    if chosen is None:
        # A plan too long for one page at a readable size goes on to a second page rather
        # than shrinking past reading.
        chosen = _story(SIZES[-1], lang=lang, name=name, meta=meta, content=content, crisis=crisis)
    if notice:
        style = _styles(SIZES[-1])["meta"]
        chosen = [*chosen, *(Paragraph(escape(line), style) for line in notice.splitlines())]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=translate(N_("My safety plan"), lang),
        author="Concord",
    )
    doc.build(chosen)
    return buffer.getvalue()
