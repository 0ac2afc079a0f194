"""One report document, two renderings: a self-contained HTML page and a PDF.

A report is built once as a `ReportDoc` (headings, key-value tables, data tables, and
matplotlib figures) and then rendered. HTML inlines each figure as SVG (no scripts, no
network: it opens offline, prints, and text in charts stays selectable); the PDF draws the
same figures and tables with matplotlib's own PDF backend, so the server needs no browser.
Because both come from one document, the PDF has the same content as the HTML.

Matplotlib is used through its object API (`Figure`, never pyplot): no GUI backend, no
global figure registry. Its text layout and font caches are shared, so rendering is
serialized by a lock; callers run it in a worker thread, off the event loop.
"""

from __future__ import annotations

import html
import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import matplotlib

# Text in SVG charts stays text (smaller, searchable). PDF fonts stay Type 3 subsets
# (matplotlib's default): their text extracts (pdftotext, search, copy) and they embed in
# half the time of TrueType (fonttype 42).
matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",
        "pdf.fonttype": 3,
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)

from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_RENDER_LOCK = threading.Lock()
A4_PORTRAIT = (8.27, 11.69)
PDF_TABLE_ROWS_PER_PAGE = 48


@dataclass
class KeyValues:
    """A two-column table: label and formatted value."""

    title: str
    rows: list[tuple[str, str]]


@dataclass
class DataTable:
    """A table of formatted cells; `note` says what was left out, if anything."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Chart:
    """A figure with a stable id (the HTML element id, used by tests and links)."""

    key: str
    title: str
    figure: Figure
    caption: str = ""


@dataclass
class Note:
    text: str


Block = KeyValues | DataTable | Chart | Note


@dataclass
class Section:
    heading: str
    blocks: Sequence[Block] = field(default_factory=list)


@dataclass
class ReportDoc:
    title: str
    subtitle: str
    sections: list[Section]
    generated: datetime = field(default_factory=lambda: datetime.now(UTC))

    def charts(self) -> list[Chart]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Chart)]


# -- HTML --------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2328;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.sub{color:#57606a;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{padding:2px 10px;border-bottom:1px solid #d0d7de;text-align:right;white-space:nowrap}
th{text-align:left;background:#f6f8fa}.kv th{background:none;font-weight:600}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
figcaption{color:#57606a;font-size:.85rem}.note{color:#57606a;font-size:.9rem}
.scroll{overflow-x:auto}
@media print{body{margin:0;max-width:none}figure{break-inside:avoid}}
""".replace("\n", "")


def render_html(doc: ReportDoc) -> bytes:
    with _RENDER_LOCK:
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            f"<title>{_e(doc.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_e(doc.title)}</h1>",
            f'<p class="sub">{_e(doc.subtitle)}</p>',
            f'<p class="note">Generated {doc.generated:%Y-%m-%d %H:%M} UTC by stratopt.</p>',
        ]
        for section in doc.sections:
            parts.append(f"<section><h2>{_e(section.heading)}</h2>")
            parts.extend(_html_block(b) for b in section.blocks)
            parts.append("</section>")
        parts.append("</body></html>")
    return "\n".join(parts).encode()


def _html_block(block: Block) -> str:
    if isinstance(block, Note):
        return f'<p class="note">{_e(block.text)}</p>'
    if isinstance(block, KeyValues):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in block.rows)
        title = f"<h3>{_e(block.title)}</h3>" if block.title else ""
        return f'{title}<table class="kv">{rows}</table>'
    if isinstance(block, DataTable):
        head = "".join(f"<th>{_e(c)}</th>" for c in block.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in block.rows
        )
        note = f'<p class="note">{_e(block.note)}</p>' if block.note else ""
        title = f"<h3>{_e(block.title)}</h3>" if block.title else ""
        return f'{title}{note}<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'
    svg = figure_svg(block.figure, block.key)
    cap = f"<figcaption>{_e(block.caption)}</figcaption>" if block.caption else ""
    return (
        f'<figure class="chart" id="chart-{_e(block.key)}" data-chart="{_e(block.key)}">'
        f"{svg}{cap}</figure>"
    )


_ID = re.compile(r'\bid="([^"]+)"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def figure_svg(fig: Figure, prefix: str) -> str:
    """The figure as an inline <svg> element whose ids are prefixed, so several charts in
    one page cannot collide (matplotlib names clip paths and glyphs the same in every
    file)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = _METADATA.sub("", text)  # RDF boilerplate with external namespace URLs
    ids = set(_ID.findall(text))
    if ids:
        pattern = re.compile(r'(id="|#)(' + "|".join(re.escape(i) for i in ids) + r')(?=["\)])')
        text = pattern.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{_e(prefix)}" ', 1)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# -- PDF ---------------------------------------------------------------------------------


def render_pdf(doc: ReportDoc) -> bytes:
    """Title page (title, subtitle and the first section's key-value tables), then every
    block in order: charts a page each, tables paginated."""
    buf = io.BytesIO()
    with _RENDER_LOCK:
        meta = {"Title": doc.title, "Creator": "stratopt", "CreationDate": doc.generated}
        with PdfPages(buf, metadata=meta) as pdf:
            page = _Page(pdf)
            page.text(doc.title, size=16, weight="bold")
            page.text(doc.subtitle, size=9, color="#57606a", wrap=110)
            page.text(f"Generated {doc.generated:%Y-%m-%d %H:%M} UTC by stratopt.", size=8)
            for section in doc.sections:
                if section.blocks and not isinstance(section.blocks[0], Chart):
                    page.heading(section.heading)  # a chart page titles itself
                for block in section.blocks:
                    if isinstance(block, Note):
                        page.text(block.text, size=8, color="#57606a", wrap=120)
                    elif isinstance(block, KeyValues):
                        page.table(block.title, ["", ""], [list(r) for r in block.rows], "")
                    elif isinstance(block, DataTable):
                        page.table(block.title, block.columns, block.rows, block.note)
                    else:
                        page.flush()
                        block.figure.suptitle(section.heading, x=0.01, ha="left", size=8)
                        pdf.savefig(block.figure)
                        if block.caption:
                            page.text(block.caption, size=8, color="#57606a", wrap=120)
            page.flush()
    return buf.getvalue()


class _Page:
    """A portrait A4 page written top to bottom; starts a new page when full."""

    LINE = 0.0165

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf = pdf
        self.fig: Figure | None = None
        self.y = 0.0

    def _need(self, lines: float) -> Figure:
        if self.fig is None or self.y - lines * self.LINE < 0.04:
            self.flush()
            self.fig = Figure(figsize=A4_PORTRAIT)
            self.y = 0.96
        return self.fig

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def text(
        self, text: str, *, size: float = 9, weight: str = "normal", color: str = "#1f2328",
        wrap: int = 0,
    ) -> None:  # fmt: skip
        lines = _wrap(text, wrap) if wrap else [text]
        scale = size / 9
        for line in lines:
            fig = self._need(1.4 * scale)
            fig.text(0.06, self.y, line, size=size, weight=weight, color=color, va="top")
            self.y -= self.LINE * 1.3 * scale

    def heading(self, text: str) -> None:
        self._need(4)
        self.y -= self.LINE * 0.6
        self.text(text, size=12, weight="bold")
        self.y -= self.LINE * 0.3

    def table(self, title: str, columns: Sequence[str], rows: list[list[str]], note: str) -> None:
        if title:
            self._need(3)
            self.text(title, size=10, weight="bold")
        if note:
            self.text(note, size=7.5, color="#57606a", wrap=130)
        # One monospaced line per row (padded columns): a tenth of the text objects of a
        # cell-per-text layout, and the columns line up exactly.
        widths = [
            max([len(c), *(len(r[i]) for r in rows)], default=1) for i, c in enumerate(columns)
        ]
        chars = max(sum(widths) + 2 * max(len(widths) - 1, 0), 1)
        size = max(4.5, min(8.0, 0.88 * A4_PORTRAIT[0] * 72 / (0.6 * chars)))
        step = self.LINE * size / 8.5 * 1.15

        def line(row: Sequence[str]) -> str:
            cells = [
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(cells)

        def draw(fig: Figure, row: Sequence[str], bold: bool) -> None:
            fig.text(
                0.06, self.y, line(row), size=size, family="DejaVu Sans Mono", va="top",
                weight="bold" if bold else "normal",
            )  # fmt: skip
            self.y -= step

        header = list(columns) if any(columns) else None
        if header:
            draw(self._need(3), header, True)
        for row in rows:
            before = self.fig
            fig = self._need(1.2)
            if header and fig is not before:  # a new page repeats the header
                draw(fig, header, True)
            draw(fig, row, False)
        self.y -= self.LINE * 0.5


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*out, line] if line else out or [""]
