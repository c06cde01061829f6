"""What a report page is made of, and how it becomes one self-contained HTML file.

A Page is a header (facts, a status) and Sections of Blocks: tables (optionally sortable, cells
optionally linked), figures (matplotlib SVG inlined as a data URI, with the numbers drawn kept
as JSON on the page), notes, readable examples, and the recipe. `render` fills one Jinja2
template with autoescaping on, so every string from the user's data or recipe (labels, texts,
file names) arrives on the page as text, never as markup; nothing on the page is fetched.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from pretune import atomic
from pretune.errors import PretuneError

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Cell:
    text: str
    sort: float | str | None = None  # what the column sorts by (a number sorts as a number)
    href: str | None = None  # a relative link (a trial's own report)
    css: str = ""


@dataclass
class Block:
    kind: str  # table | figure | note | warning | examples | spans | thumbs | code | facts
    title: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list = field(default_factory=list)
    sortable: bool = False
    image: str = ""  # figure: a data URI
    text: str = ""
    name: str = ""  # figure: its key in the page's figure data
    css: str = ""  # figure: half (default, two to a row) or full width


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Page:
    title: str
    kind: str  # run | study | compression | comparison
    subtitle: str = ""
    status: str = "completed"
    status_detail: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)  # the few figures shown large
    sections: list[Section] = field(default_factory=list)
    figures: dict = field(default_factory=dict)  # name -> the numbers drawn

    def section(self, id_: str, title: str) -> Section:
        found = Section(id_, title)
        self.sections.append(found)
        return found

    def figure(self, section: Section, name: str, fig, data: dict, title: str = "", text: str = "",
               css: str = "") -> None:
        """Inline `fig` as SVG in `section`; keep `data` (plain numbers) under `name` on the page."""
        from pretune.plots import svg_bytes

        uri = "data:image/svg+xml;base64," + base64.b64encode(svg_bytes(fig)).decode("ascii")
        self.figures[name] = _plain(data)
        section.blocks.append(Block("figure", title=title, image=uri, name=name, text=text, css=css))


def fmt(value, digits: int = 4) -> str:
    """A figure as a person reads it: integers with separators, floats to 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.{digits}g}"
    return str(value)


def num(value, digits: int = 4) -> Cell:
    sort = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(sort, float) and math.isnan(sort):
        sort = None
    return Cell(fmt(value, digits), sort)


def local_link(href: str | None) -> str | None:
    """`href` when it is a relative path that stays inside the page's folder (no scheme such as
    `javascript:`, no leading `/`, no `..`, no control characters), percent-encoded; else None: a
    page links only to what sits beside it, whatever a study's trials.csv or a pipeline.json says."""
    if not href or any(ord(c) < 32 or ord(c) == 127 for c in href) or "\\" in href:
        return None
    parts = PurePosixPath(href).parts
    if href.startswith("/") or ".." in parts or ":" in parts[0]:
        return None
    return quote(href, safe="/-._~")


def render(page: Page) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    for section in page.sections:  # every link checked in one place, however a page built it
        for block in section.blocks:
            for row in block.rows if block.kind == "table" else []:
                for cell in row:
                    if isinstance(cell, Cell) and cell.href is not None:
                        cell.href = local_link(cell.href)

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    js = (TEMPLATES / "page.js").read_text()
    # The page's Content-Security-Policy lets exactly this script run, named by its hash.
    script_hash = "sha256-" + base64.b64encode(hashlib.sha256(js.encode()).digest()).decode("ascii")
    return env.get_template("page.html.j2").render(page=page, created=created, js=js, script_hash=script_hash,
                                                   css=(TEMPLATES / "page.css").read_text())


def write(page: Page, out: str | Path) -> Path:
    out = Path(out)
    if not out.parent.is_dir():
        raise PretuneError(f"--out {out}: directory {out.parent} does not exist")
    atomic.write_text(out, render(page))
    return out


def _plain(value):
    """JSON-safe: numpy numbers and arrays as Python ones, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
