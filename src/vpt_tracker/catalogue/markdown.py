"""Parse, render and edit awesome-list READMEs without losing a byte.

A `Document` keeps the README as its list of lines (each with its own line ending) and
knows which line ranges are paper entries. Rendering joins the lines, so an unchanged
document renders to exactly the text it was parsed from: a maintainer's odd spacing,
comments, badges and typos survive. Edits replace or insert whole lines only, and a new
entry is rendered from a neighbouring entry of the same section used as a template, so
it looks like the maintainer wrote it: the template lends its layout, never its content.

Entry formats are those of `tests/fixtures/lists/SOURCES.md` ("Entry formats"). This
module is pure: no database, no network.
"""

from __future__ import annotations

import html
import re
import string
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from urllib.parse import quote, unquote

from vpt_tracker import normalize
from vpt_tracker.catalogue.names import titles_agree
from vpt_tracker.errors import UserError
from vpt_tracker.files import WIDE_HEAD, refuse_wide_text

# --------------------------------------------------------------------------------------
# Data


@dataclass
class ParsedEntry:
    index: int
    line: int
    raw: str
    kind: str
    style: str
    section_path: list[str]
    title: str
    short_name: str | None = None
    venue: str | None = None
    year: int | None = None
    paper_url: str | None = None
    code_url: str | None = None
    arxiv_id: str | None = None
    badges: list[str] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)
    # Character spans inside `raw` of the parts an edit may replace ("title", "venue",
    # "year", "paper", "code", "short", "badges", cell names...; "link_venue": the paper
    # link's text when it is the venue, BWLONG's `[[arXiv 2307](..)]`).
    spans: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def line_count(self) -> int:
        return len(self.raw.splitlines(keepends=True))


@dataclass
class NewEntry:
    title: str
    venue: str | None = None
    year: int | None = None
    paper_url: str | None = None
    code_url: str | None = None
    short_name: str | None = None
    badges: list[str] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)
    authors: list[str] = field(default_factory=list)  # only styles that list authors show them


@dataclass(frozen=True)
class TableRow:
    """A body row of any table: its cells (header order) and the URLs linked from it."""

    cells: list[str]
    links: list[str]


@dataclass(frozen=True)
class Problem:
    line: int
    kind: str  # "unparsed" | "duplicate" | "same-link" | "no-link"
    message: str


@dataclass
class _Section:
    path: list[str]
    level: int
    line: int  # 0-based index of the heading line
    end: int = 0  # 0-based index one past the section's own lines (up to the next heading)


@dataclass
class _Table:
    header_line: int  # 0-based
    headers: list[str]
    is_papers: bool
    body_start: int  # 0-based first line after the alignment row
    body_end: int  # 0-based one past the last row
    section: int  # index into Document._sections (-1 before any heading)


# --------------------------------------------------------------------------------------
# Inline markdown: links, badges, venue and year

# Link text may hold balanced brackets and escaped ones ("[Prompting \\[CLS\\] \\]](url)").
_LINK_OPEN = re.compile(r"(?<!!)\[((?:\\.|[^\[\]\\]|\[(?:\\.|[^\[\]\\])*\])*)\]\(", re.DOTALL)
_BADGE = re.compile(r"!\[[^\]]*\]\((https?://img\.shields\.io/badge/[^)\s]*)\)")
_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+|$)(.*?)\s*$")
_ALIGN_ROW = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>[-*+]|\d+\.)[ \t]+(?P<body>\S.*)$")
_YEAR4 = r"(?:19|20)\d{2}"
_VENUE_YEAR = re.compile(
    r"(?P<venue>[A-Za-z][A-Za-z&\-]*(?:\.[A-Za-z]+)*(?:\s(?:MM|[A-Z]{2,}[a-z]*))?)"
    r"(?:,\s*|\s*)'?(?P<year>" + _YEAR4 + r"|\d{2})(?!\d|\.\d)"
)
_ARXIV_TEXT = re.compile(r"arXiv:\s*(?:arXiv:)?\s*(\d{2})(\d{2})\.\d{4,5}", re.IGNORECASE)
_CHAR_REF = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
_TOC = {"table of contents", "contents", "toc"}  # headings that are no parent of later sections
_UNSAFE_SCHEME = re.compile(r"^\s*(?:javascript|data|vbscript|file):", re.IGNORECASE)

_PAPER_WORDS = ("paper", "pdf", "arxiv", "link")
_CODE_WORDS = ("code", "github", "pytorch", "tensorflow", "jax", "mindspore", "paddle")
_PAPER_HOSTS = (
    "arxiv.org",
    "openreview.net",
    "thecvf.com",
    "aclanthology.org",
    "doi.org",
    "springer.com",
    "ieeexplore",
    "acm.org",
    "neurips.cc",
    "mlr.press",
    "aaai.org",
    "sciencedirect",
)


@dataclass(frozen=True)
class _Link:
    text: str
    url: str
    start: int  # span of the whole `[text](url)`
    end: int


def _links(text: str) -> list[_Link]:
    """Markdown links, with URLs that may hold balanced parentheses (OpenReview referrers)."""
    found: list[_Link] = []
    position = 0
    while True:
        match = _LINK_OPEN.search(text, position)
        if not match:
            return found
        if match.start() > 0 and text[match.start() - 1] == "\\":
            position = match.start() + 1  # an escaped "\[" is text, not a link
            continue
        depth, cursor = 1, match.end()
        while cursor < len(text) and depth:
            char = text[cursor]
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif char in " \n" and depth == 1 and text[cursor - 1] != "(":
                break
            cursor += 1
        if depth:
            position = match.end()
            continue
        url = text[match.end() : cursor - 1].strip()
        found.append(_Link(match.group(1), url, match.start(), cursor))
        position = cursor


def decode_badge(url: str) -> str:
    """The text a shields.io static badge shows: `Image--Text-blue` -> `Image-Text`."""
    path = url.split("/badge/", 1)[1].split("?", 1)[0]
    parts = path.replace("--", "\0").split("-")
    if len(parts) > 1:
        parts = parts[:-1]  # the colour
    text = (
        "-".join(p for p in parts if p)
        .replace("\0", "-")
        .replace("__", "\1")
        .replace("_", " ")
        .replace("\1", "_")
    )
    return " ".join(unquote(text).split())


def _badges(text: str) -> list[str]:
    return [decode_badge(m.group(1)) for m in _BADGE.finditer(text)]


# One pass over an inline fragment's text: a backslash escape is its character (and is not
# looked at again, so an escaped `\*\*` or back quote stays), an HTML tag, `**` and a back
# quote go, a character reference (`&lt;`, `&#58;`) is its character.
_INLINE_TOKEN = re.compile(
    r"\\(?P<escaped>[\\`*_{}\[\]()#+\-.,!|<>~])"
    r"|(?P<tag><[^>]+>)"
    r"|(?P<ref>" + _CHAR_REF + r")"
    r"|\*\*|`"
)


def _plain_token(match: re.Match[str]) -> str:
    if match.group("escaped") is not None:
        return match.group("escaped")
    if match.group("ref") is not None:
        return html.unescape(match.group("ref"))
    return ""


def _strip_markdown(text: str) -> str:
    """Plain text of an inline fragment: link texts kept, emphasis and code marks dropped,
    escapes and character references resolved (`A \\[CLS\\] &lt;x&gt;` is `A [CLS] <x>`)."""
    text = _BADGE.sub("", text)
    out, last = [], 0
    for link in _links(text):
        out.append(text[last : link.start])
        out.append(link.text)
        last = link.end
    out.append(text[last:])
    plain = _INLINE_TOKEN.sub(_plain_token, "".join(out))
    return " ".join(plain.split())


def _link_role(link: _Link) -> str | None:
    """ "paper", "code" or None, from the link text first and the host second."""
    text = link.text.strip("[] ").lower()
    url = link.url.lower()
    if not url.startswith(("http://", "https://")):
        return None
    if any(word in text for word in _CODE_WORDS):
        return "code"
    if any(text.startswith(word) for word in _PAPER_WORDS) or _VENUE_YEAR.fullmatch(text.strip()):
        return "paper"
    if "github.com" in url or "gitlab.com" in url:
        return "code"
    if any(host in url for host in _PAPER_HOSTS):
        return "paper"
    return None


def _role_by_text(link: _Link) -> str | None:
    """ "paper" or "code" from the link text alone ("[Paper]", "[pdf]", "[Code]")."""
    text = link.text.strip("[] ").lower()
    if any(text.startswith(word) for word in _CODE_WORDS):
        return "code"
    if any(text.startswith(word) for word in _PAPER_WORDS):
        return "paper"
    return None


def _venue_link(raw: str, link: _Link) -> bool:
    """A paper link named by its venue, in double brackets: BWLONG's `[[CVPR 2023](..)]`
    (also what a venue upgrade makes of `[[arXiv 2307](..)]`)."""
    return _bracketed(raw, link) != (link.start, link.end) and _shows_venue(link.text)


def _shows_venue(text: str) -> bool:
    """Link text that is a venue and its year and nothing else: "CVPR 2023", and "Pattern
    Recognition 2024" as a venue upgrade writes it (the word-shaped `_VENUE_YEAR` took the
    latter for no venue, so the upgraded entry lost its venue, or its paper link)."""
    text = text.strip()
    return bool(_VENUE_YEAR.fullmatch(text)) or _venue_ending_in_year(text, 0, text) is not None


def _year(text: str) -> int | None:
    if len(text) == 2:
        return 2000 + int(text)
    return int(text)


def _find_venue_year(text: str, offset: int = 0) -> tuple[str, int, tuple[int, int], tuple[int, int]] | None:
    """The first "Venue Year" in `text`: venue, year and their spans (shifted by `offset`)."""
    arxiv = _ARXIV_TEXT.search(text)
    for match in _VENUE_YEAR.finditer(text):
        venue, year = match.group("venue"), match.group("year")
        if len(year) == 2 and not re.fullmatch(r"[A-Za-z]+", venue):
            continue
        if arxiv and arxiv.start() < match.start():
            break
        if venue.lower() in {"and", "of", "the", "in", "to", "for", "with", "at", "on", "by", "vs"}:
            continue
        v_span = (offset + match.start("venue"), offset + match.end("venue"))
        month = re.match(r"/\d{1,2}\b", text[match.end("year") :])  # ttengwang's "Arxiv 2022/05"
        y_end = match.end("year") + (month.end() if month else 0)
        y_span = (offset + match.start("year"), offset + y_end)
        return venue, _year(year) or 0, v_span, y_span
    if arxiv:
        span = (offset + arxiv.start(), offset + arxiv.end())
        return "arXiv", 2000 + int(arxiv.group(1)), span, span
    return None


def _find_bare_year(text: str, offset: int = 0) -> tuple[int, tuple[int, int]] | None:
    """A year standing alone ("EVA-CLIP ... 2023."), for entries that name no venue."""
    match = re.search(r"(?<![\w.])(" + _YEAR4 + r")(?!\d|\.\d)", text)
    if match is None:
        return None
    return int(match.group(1)), (offset + match.start(1), offset + match.end(1))


# --------------------------------------------------------------------------------------
# Headings


def clean_heading(text: str) -> str:
    """The words of a heading: no HTML, emoji shortcodes, stray `#`, emphasis or trailing colon."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r":[a-z0-9_+\-]+:", " ", text)
    text = _strip_markdown(text)
    text = text.replace("*", "").replace("#", " ")
    text = re.sub(r"^[^\w(\[]+", "", text)  # leading emoji and punctuation
    text = text.strip().rstrip(":：").strip()
    return " ".join(text.split())


# --------------------------------------------------------------------------------------
# Tables


def _split_row(line: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Cells of a table row and their spans in `line` (escaped `\\|` and pipes inside
    link brackets do not split)."""
    start = line.index("|") + 1
    cells, spans = [], []
    depth, cell_start, i = 0, start, start
    body_end = len(line.rstrip("\r\n"))
    while i < body_end:
        char = line[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif char == "|" and depth == 0:
            spans.append((cell_start, i))
            cell_start = i + 1
        i += 1
    tail = line[cell_start:body_end]
    if tail.strip():
        spans.append((cell_start, body_end))  # a row without its closing pipe
    if not spans and depth:
        spans.append((cell_start, body_end))
    cells = [line[a:b].strip() for a, b in spans]
    return cells, spans


def _header_key(header: str) -> str:
    return _strip_markdown(header).strip().lower()


# Why a table holds paper entries: it has a "Title" column. That admits the awesome-vpt
# and prompt-adaptation tables, JindongGu's tables and ustcjinggg's (titles without links),
# and leaves out tables that only mention papers: zhengli97's base-to-novel results
# ("Methods | Paper | Pub | Base | Novel ..."), whose rows repeat entries listed below
# them; synbol's datasets ("Name | Paper | Link | Notes"); prose tables such as
# "Domain | Representative Methods" and disi-unibo-nlp's tag legend.
def _is_paper_table(headers: list[str]) -> bool:
    return "title" in [_header_key(h) for h in headers]


_TABLE_STYLES = {
    ("title", "venue", "year", "keywords"): "vpt-table",
    ("title", "venue", "year", "type", "notes"): "prompt-adaptation-table",
    ("title", "venue", "year"): "survey-table",
    ("title", "venue", "year", "notes"): "survey-table",
    ("title", "venue", "year", "code if available", "comment"): "jindonggu-table",
}
_VENUE_HEADERS = ("venue", "pub", "发表情况", "publication", "conference")
_CODE_HEADERS = ("code", "code if available", "github", "link")


def _align_cells(headers: list[str], cells: list[str]) -> list[int | None]:
    """For each cell, the index of its header. A row with missing cells is realigned on
    its year cell (`| [OT-VP](..) | 2025 | Learnable | .. |` has no Venue)."""
    if len(cells) >= len(headers):
        return [i if i < len(headers) else None for i in range(len(cells))]
    keys = [_header_key(h) for h in headers]
    year_col = keys.index("year") if "year" in keys else None
    year_cell = next((i for i, c in enumerate(cells) if re.fullmatch(_YEAR4, c)), None)
    if year_col is None or year_cell is None:
        return list(range(len(cells)))
    shift = year_col - year_cell
    mapping: list[int | None] = []
    for i in range(len(cells)):
        if i < year_cell:
            mapping.append(i)
        else:
            mapping.append(i + shift)
    return mapping


# --------------------------------------------------------------------------------------
# The document


class MissingSection(UserError):
    """The list has no section at this path (it may have been renamed or removed upstream)."""

    def __init__(self, message: str, section_path: list[str]) -> None:
        super().__init__(message)
        self.section_path = section_path


class Document:
    """A parsed README: its lines, its sections and its paper entries."""

    def __init__(self, text: str) -> None:
        # A byte-order mark (Notepad writes one; GitHub shows the README as if it were not
        # there) is kept for `render` but is no part of the first line: read as one, it made a
        # heading or a table header on that line plain text.
        self._bom = "\ufeff" if text.startswith("\ufeff") else ""
        self._lines: list[str] = text[len(self._bom) :].splitlines(keepends=True)
        # The list's own line ending: lines vpt-tracker adds get it, so a README kept with
        # Windows line endings (CRLF) never ends up with mixed ones.
        crlf = text.count("\r\n")
        self.newline = "\r\n" if crlf > text.count("\n") - crlf else "\n"
        self.entries: list[ParsedEntry] = []
        self._sections: list[_Section] = []
        self._tables: list[_Table] = []
        self.unparsed: list[tuple[int, str]] = []  # (1-based line, why) of entry-like lines
        self._parse()

    # -- reading -------------------------------------------------------------------------

    def render(self) -> str:
        return self._bom + "".join(self._lines)

    def editor_lines(self) -> list[int]:
        """For each line of this document (1-based, as `ParsedEntry.line` counts them), the
        line an editor shows it on, which is the same but after a line separator (U+2028) or a
        form feed: `str.splitlines` cuts there, markdown and editors do not. Index 0 is unused."""
        numbers, number = [0], 1
        for piece in self._lines:
            numbers.append(number)
            if not piece.endswith(_OTHER_SEPARATORS):
                number += 1
        return numbers

    def section_paths(self) -> list[list[str]]:
        return [list(s.path) for s in self._sections]

    def table_rows(self, section: str) -> list[TableRow]:
        """The body rows of the tables whose section path (joined with " > ") contains
        `section`, case-insensitively, paper tables or not: zhengli97's base-to-novel
        results table holds no entries, but its rows say which papers report results."""
        wanted = section.lower()
        rows: list[TableRow] = []
        for table in self._tables:
            if wanted not in " > ".join(self._path(table.section)).lower():
                continue
            for i in range(table.body_start, table.body_end):
                cells, _ = _split_row(self._lines[i])
                rows.append(TableRow(cells, [link.url for link in _links(self._lines[i])]))
        return rows

    def _parse(self) -> None:
        lines = self._lines
        stack: list[tuple[int, str]] = []
        section = -1
        in_fence = in_comment = False
        i = 0
        while i < len(lines):
            line = lines[i].rstrip("\r\n")
            stripped = line.strip()
            if in_comment:
                in_comment = "-->" not in line
                i += 1
                continue
            if stripped.startswith("```"):
                in_fence = not in_fence if stripped.count("```") % 2 == 1 else in_fence
                i += 1
                continue
            if in_fence:
                i += 1
                continue
            if stripped.startswith("<!--") and "-->" not in stripped:
                in_comment = True
                i += 1
                continue
            heading = _HEADING.match(line)
            if heading:
                level = len(heading.group(1))
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, clean_heading(heading.group(2))))
                if self._sections:
                    self._sections[-1].end = i
                # A "Table of Contents" heading is no parent of the sections after it
                # (StellarOdys2ey puts its year sections under `# Table of Contents`).
                path = [
                    t
                    for k, (_, t) in enumerate(stack)
                    if t and (k == len(stack) - 1 or t.lower() not in _TOC)
                ]
                self._sections.append(_Section(path, level, i))
                section = len(self._sections) - 1
                i += 1
                continue
            if stripped.startswith("|") and i + 1 < len(lines) and _ALIGN_ROW.match(lines[i + 1]):
                i = self._parse_table(i, section)
                continue
            bullet = _BULLET.match(line)
            if bullet:
                i = self._parse_bullet(i, section)
                continue
            i += 1
        if self._sections:
            self._sections[-1].end = len(lines)

    def _path(self, section: int) -> list[str]:
        return list(self._sections[section].path) if section >= 0 else []

    def _parse_table(self, start: int, section: int) -> int:
        lines = self._lines
        headers, _ = _split_row(lines[start])
        end = start + 2
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        table = _Table(start, headers, _is_paper_table(headers), start + 2, end, section)
        self._tables.append(table)
        if table.is_papers:
            for i in range(start + 2, end):
                entry = self._table_entry(table, i, section)
                if entry is not None:
                    self.entries.append(entry)
        return end

    def _table_entry(self, table: _Table, i: int, section: int) -> ParsedEntry | None:
        raw = self._lines[i]
        cells, spans = _split_row(raw)
        if not any(cells):
            return None  # an empty placeholder row
        keys = [_header_key(h) for h in table.headers]
        mapping = _align_cells(table.headers, cells)
        by_key: dict[str, str] = {}
        span_by_key: dict[str, tuple[int, int]] = {}
        named: dict[str, str] = {}
        for cell, span, col in zip(cells, spans, mapping, strict=True):
            if col is None or col >= len(keys):
                continue
            by_key[keys[col]] = cell
            span_by_key[keys[col]] = span
            named[_strip_markdown(table.headers[col])] = cell
        title_cell = by_key.get("title", "")
        links = _links(title_cell)
        paper_url = links[0].url if links and title_cell.startswith("[") else None
        title = _strip_markdown(title_cell)
        if not title:
            self.unparsed.append((i + 1, "table row without a title"))
            return None
        venue: str | None = None
        year: int | None = None
        venue_key = next((k for k in keys if k in _VENUE_HEADERS), None)
        spans_out: dict[str, tuple[int, int]] = {"title": span_by_key["title"]}
        venue_text = by_key.get(venue_key, "") if venue_key else ""
        if venue_key and venue_text and venue_key in span_by_key:
            spans_out["venue"] = span_by_key[venue_key]
            if "year" in keys:
                venue = _strip_markdown(venue_text) or None
            else:
                # "Pattern Recognition 2024", ustcjinggg's "ICCV2023" and "ECCV2022(455引)"
                cell = venue_text[: _before_aside(venue_text, len(venue_text))]
                found = _venue_around_year(venue_text, 0, cell) or _find_venue_year(
                    venue_text.replace("(", " (")
                )
                if found:
                    venue, year = found[0], found[1]
                else:
                    venue = _strip_markdown(venue_text) or None
        if "year" in by_key and re.fullmatch(_YEAR4, by_key["year"]):
            year = int(by_key["year"])
            spans_out["year"] = span_by_key["year"]
        code_url = None
        for key, cell in by_key.items():
            if key == "title":
                continue
            for link in _links(cell):
                if (key in _CODE_HEADERS or _link_role(link) == "code") and code_url is None:
                    code_url = link.url
        for key, span in span_by_key.items():
            spans_out.setdefault("cell:" + key, span)
        style = _TABLE_STYLES.get(tuple(keys), "table")
        return ParsedEntry(
            index=len(self.entries),
            line=i + 1,
            raw=raw,
            kind="table-row",
            style=style,
            section_path=self._path(section),
            title=title,
            venue=venue,
            year=year,
            paper_url=paper_url,
            code_url=code_url,
            arxiv_id=normalize.arxiv_id(paper_url) if paper_url else None,
            badges=_badges(raw),
            cells={k: v for k, v in named.items() if _header_key(k) != "title"},
            spans=spans_out,
        )

    def _bullet_block_end(self, start: int) -> int:
        """One past the last line of the bullet starting at `start`.

        A bullet goes on over lines glued to it (StellarOdys2ey's unindented link line)
        and over blank lines followed by an indented line (synbol's and jianghaojun's
        author and link lines); it stops at another bullet, a heading, a table or text
        back at the margin after a blank line."""
        lines = self._lines
        end = start + 1
        while end < len(lines):
            text = lines[end].rstrip("\r\n")
            if not text.strip():
                nxt = end
                while nxt < len(lines) and not lines[nxt].strip():
                    nxt += 1
                if nxt < len(lines) and self._continues(lines[nxt].rstrip("\r\n"), indented=True):
                    end = nxt + 1
                    continue
                return end
            if not self._continues(text, indented=False):
                return end
            end += 1
        return end

    @staticmethod
    def _continues(text: str, *, indented: bool) -> bool:
        if _BULLET.match(text) or _HEADING.match(text) or text.lstrip().startswith(("|", "<!--", "```")):
            return False
        if re.match(r"^\s*(?:<br\s*/?>|</?(?:div|p|details|summary)\b)", text):
            return False
        if text.strip() in {"---", "***", "___"}:
            return False
        return not indented or text.startswith(("  ", "\t"))

    def _parse_bullet(self, start: int, section: int) -> int:
        end = self._bullet_block_end(start)
        raw = "".join(self._lines[start:end])
        entry = _parse_bullet_entry(raw)
        if entry is None:
            if _looks_like_entry(raw):
                self.unparsed.append((start + 1, "bullet looks like a paper entry but does not parse"))
            return end
        entry.index = len(self.entries)
        entry.line = start + 1
        entry.section_path = self._path(section)
        self.entries.append(entry)
        return end

    # -- editing ---------------------------------------------------------------------------

    def _section_index(self, section_path: list[str]) -> int:
        wanted = [p.strip().lower() for p in section_path]
        exact = [i for i, s in enumerate(self._sections) if [p.lower() for p in s.path] == wanted]
        if not exact:
            exact = [
                i
                for i, s in enumerate(self._sections)
                if len(s.path) >= len(wanted) and [p.lower() for p in s.path[-len(wanted) :]] == wanted
            ]
        if len(exact) != 1:
            known = "; ".join(" > ".join(p) for p in self.section_paths() if p)
            if not exact:
                message = f"no section {' > '.join(section_path)!r} in this list; sections: {known}"
                raise MissingSection(message, list(section_path))
            raise UserError(
                f"more than one section {' > '.join(section_path)!r} in this list; sections: {known}"
            )
        return exact[0]

    def insert_entry(self, new: NewEntry, section_path: list[str]) -> ParsedEntry:
        """Add `new` to a section, written like its neighbours and placed in the list's order."""
        if not new.title or not new.title.strip():
            raise UserError("a new entry needs a title")
        try:
            index = self._section_index(section_path)
        except UserError:
            if not self._add_year_section(section_path):
                raise
            index = self._section_index(section_path)
        section = self._sections[index]
        own = [e for e in self.entries if self._entry_section(e) == index]
        template = _choose_template(own, new) if own else self._fallback_template(index, new)
        if template is None:
            raise UserError(
                f"section {' > '.join(section.path)!r} has no entries or paper table to learn the style from"
            )
        raw = _render_like(template, new, self, by_name=_names_papers(own))
        at = _insertion_line(own, new) if own else self._empty_section_line(index, template)
        new_lines = [self._ended(line) for line in raw.splitlines(keepends=True)]
        if at > 0 and not self._lines[at - 1].endswith("\n"):
            self._lines[at - 1] += self.newline
        self._lines[at:at] = new_lines
        self._reparse_after_edit()
        added = next((e for e in self.entries if e.line == at + 1), None)
        if added is None:
            # The list reads an entry by its link: one written without any is not an entry here.
            # (It was a StopIteration: `review accept` of such a paper exited 1 without a word.)
            del self._lines[at : at + len(new_lines)]
            self._reparse_after_edit()
            lacking = (
                ""
                if new.paper_url or new.code_url
                else ": its entries need a paper or code link, and it has none"
            )
            raise UserError(
                f"{new.title.strip()!r} written in the style of section {' > '.join(section.path)!r} "
                f"is not read back as an entry of this list{lacking}"
            )
        return added

    def update_entry(self, index: int, *, venue: str | None, year: int | None) -> ParsedEntry:
        """Change only the venue and year text of entry `index` (a preprint becomes "CVPR 2025")."""
        if not 0 <= index < len(self.entries):
            raise UserError(f"no entry {index}; this list has {len(self.entries)} entries")
        entry = self.entries[index]
        raw = entry.raw
        spans = dict(entry.spans)
        if "venue" not in spans and "link_venue" in spans:  # "[[arXiv 2307](..)]" holds both
            spans["venue"] = spans["year"] = spans["link_venue"]
        if entry.kind == "table-row" and entry.year is not None and "venue" in spans and "year" not in spans:
            # a Venue cell of a table without a Year column holds both (ustcjinggg's "| ICCV2023 |"):
            # an upgrade failed with "no year text to update", or, given no year, lost it
            spans["year"] = spans["venue"]
        if venue is not None and year is None and spans.get("year") == spans.get("venue"):
            year = entry.year  # one text holds both: keep the year it showed
        if entry.kind == "table-row":
            self._blank_cells_to_fill(raw, spans)
        if venue is not None and "venue" not in spans and "year" in spans and self._lacks_venue_cell(entry):
            # "| [OT-VP](..) | 2025 | ..." gets its missing cell: "| WACV | 2025 |"
            a, b = spans["year"]
            cell = raw[a:b]
            lead, trail = cell[: len(cell) - len(cell.lstrip())], cell[len(cell.rstrip()) :]
            cells = f"{lead}{_escape_cell(venue)} |{lead}{year if year is not None else entry.year}{trail}"
            return self._replace_raw(entry, raw[:a] + cells + raw[b:])
        if entry.style == "disi" and year is not None and "venue" in spans and "year" not in spans:
            # disi's "(IJCAI)" names its venue without a year: "(TPAMI, 2026)", as its other
            # entries write "(WSDM 2023)" or "(Venue, Year)"; the upgrade failed ("no year text")
            a, b = spans["venue"]
            shown = _escape_inline(venue) if venue is not None else raw[a:b]
            return self._replace_raw(entry, f"{raw[:a]}{shown}, {year}{raw[b:]}")
        edits: list[tuple[tuple[int, int], str]] = []
        if venue is not None:
            if "venue" not in spans:
                raise UserError(f"entry at line {entry.line} has no venue text to update")
            text = _escape_cell(venue) if entry.kind == "table-row" else _escape_inline(venue)
            edits.append((spans["venue"], text))
        if year is not None:
            span = spans.get("year")
            if span is None:
                raise UserError(f"entry at line {entry.line} has no year text to update")
            if span == spans.get("venue"):  # "arXiv:2203.17274" carries both
                if venue is None:
                    raise UserError(f"entry at line {entry.line}: give the venue with the year")
                glued = entry.kind == "table-row" and re.search(
                    rf"[^\W\d_]{entry.year}", raw[span[0] : span[1]]
                )
                shown = f"{edits[-1][1]}{'' if glued else ' '}{year}"  # "ICCV2023" -> "TPAMI2026"
                arxiv = re.search(r"\d{4}\.\d{4,5}", raw[span[0] : span[1]])
                if _ARXIV_TEXT.fullmatch(raw[span[0] : span[1]]) and arxiv:
                    # jianghaojun writes a published paper "ECCV 2022 (arXiv:2203.12119)"
                    shown += f" (arXiv:{arxiv.group()})"
                edits[-1] = (span, shown)
            else:
                edits.append((span, str(year)))
        pads = entry.kind == "table-row" and self._pads_its_cells(entry, [span for span, _ in edits])
        for (a, b), text in sorted(edits, key=lambda e: e[0][0], reverse=True):
            if entry.kind == "table-row":
                old = raw[a:b]
                lead = old[: len(old) - len(old.lstrip())]
                trail = old[len(old.rstrip()) :]
                if old.strip() and not pads and len(trail) < 2:
                    text = lead + text + trail
                else:
                    # a blank cell, a padded one or one of a column the list pads (JindongGu's
                    # "| OpenAI Blog |") keeps its width where the text fits: "| ICML        |"
                    # gives "| TPAMI       |", not "| TPAMI        |", and "| TPAMI |"
                    text = f"{lead if old.strip() and lead else ' '}{text}".ljust(len(old) - 1) + " "
            raw = raw[:a] + text + raw[b:]
        return self._replace_raw(entry, raw)

    def _pads_its_cells(self, entry: ParsedEntry, spans: list[tuple[int, int]]) -> bool:
        """Whether the table of row `entry` pads the columns of its cells at `spans` to a width
        with spaces: the header's cell of one of them ends in two or more, or most rows' do
        (a row pasted in padded from elsewhere does not make a table padded)."""
        table = next((t for t in self._tables if t.body_start < entry.line <= t.body_end), None)
        _, row_spans = _split_row(entry.raw)
        columns = {row_spans.index(span) for span in spans if span in row_spans}
        if table is None or not columns:
            return False

        def padded(i: int) -> bool:
            line = self._lines[i].rstrip("\r\n")
            _, cells = _split_row(line)
            texts = [line[cells[k][0] : cells[k][1]] for k in columns if k < len(cells)]
            return any(text.strip() and text.endswith("  ") for text in texts)

        rows = range(table.body_start, table.body_end)
        return padded(table.header_line) or 2 * sum(map(padded, rows)) > len(rows)

    @staticmethod
    def _blank_cells_to_fill(raw: str, spans: dict[str, tuple[int, int]]) -> None:
        """A blank Venue or Year cell is the text an upgrade fills: awesome-vpt's surveys are
        "| [A Systematic Survey ..](..)      |       |      | [Code](..) |", and every upgrade
        of them failed with "no venue text to update". A Venue cell of a table without a Year
        column takes both ("CVPR 2025"), as its filled cells do."""

        def blank(key: str) -> tuple[int, int] | None:
            span = spans.get(key)
            return span if span is not None and not raw[span[0] : span[1]].strip() else None

        venue = next((blank(f"cell:{key}") for key in _VENUE_HEADERS if blank(f"cell:{key}")), None)
        if "venue" not in spans and venue is not None:
            spans["venue"] = venue
            if "cell:year" not in spans:
                spans["year"] = venue
        year = blank("cell:year")
        if "year" not in spans and year is not None:
            spans["year"] = year

    def _replace_raw(self, entry: ParsedEntry, raw: str) -> ParsedEntry:
        first = entry.line - 1
        self._lines[first : first + entry.line_count] = raw.splitlines(keepends=True)
        self._reparse_after_edit()
        return self.entries[entry.index]

    def _lacks_venue_cell(self, entry: ParsedEntry) -> bool:
        """A row of a table with a Venue column that has no cell for it (realigned on its year)."""
        if entry.kind != "table-row":
            return False
        table = next((t for t in self._tables if t.body_start < entry.line <= t.body_end), None)
        keys = [_header_key(h) for h in table.headers] if table is not None else []
        venue_key = next((k for k in keys if k in _VENUE_HEADERS), None)
        return venue_key is not None and "year" in keys and f"cell:{venue_key}" not in entry.spans

    def _add_year_section(self, section_path: list[str]) -> bool:
        """Create a missing per-year section ("Published in 2022") beside its year siblings.

        Lists sorted into year sections gain a section when the first paper of a new year
        arrives; the heading is a copy of a sibling's with the year changed, placed in the
        siblings' own order (newest first or oldest first). Where the list's table of
        contents links the siblings, the new section gets its line there too, or the
        maintainer would find a section that the contents do not reach. Any other missing
        section is still an error: vpt-tracker never invents a list's taxonomy.
        """
        if not section_path:
            return False
        wanted = section_path[-1].strip()
        match = _YEAR_IN_HEADING.search(wanted)
        if match is None:
            return False
        year = int(match.group())
        shape = (wanted[: match.start()].lower(), wanted[match.end() :].lower())
        parent = [p.strip().lower() for p in section_path[:-1]]
        siblings: list[tuple[_Section, int]] = []
        for section in self._sections:
            last = section.path[-1] if section.path else ""
            found = _YEAR_IN_HEADING.search(last)
            if found is None or (last[: found.start()].lower(), last[found.end() :].lower()) != shape:
                continue
            own_parent = [p.lower() for p in section.path[:-1]]
            if parent and own_parent[-len(parent) :] != parent:
                continue
            siblings.append((section, int(found.group())))
        if not siblings:
            return False
        newest_first = siblings[0][1] >= siblings[-1][1]
        model, model_year = siblings[0]
        heading = self._ended(self._lines[model.line].replace(str(model_year), str(year), 1))
        after = [s for s, y in siblings if (y < year if newest_first else y > year)]
        contents = self._contents_line(siblings, model_year, year, after[0] if after else None)
        if after:
            at = after[0].line
            block = [heading, self.newline]
        else:
            at = siblings[-1][0].end
            block = [self.newline, heading]
            if at > 0 and not self._lines[at - 1].endswith("\n"):
                self._lines[at - 1] += self.newline
        self._lines[at:at] = block
        if contents is not None and contents[0] <= at:  # contents above the sections
            self._lines[contents[0] : contents[0]] = [contents[1]]
        self._reparse_after_edit()
        return True

    def _contents_line(
        self, siblings: list[tuple[_Section, int]], model_year: int, year: int, before: _Section | None
    ) -> tuple[int, str] | None:
        """Where the table of contents takes a line for a new year section, and that line.

        The line is a copy of the first sibling's contents line (`- [Published in 2026]
        (#Published-in-2026)`) with the year changed in its text and its anchor, put
        before the line of the section it now precedes, or after the last sibling's. A
        list whose contents do not link every sibling gets no line: its contents are not
        a list of these sections."""
        found: dict[int, int] = {}  # sibling year -> line index of its contents link
        for i, line in enumerate(self._lines):
            for link in _links(line):
                if not link.url.startswith("#"):
                    continue
                for section, sibling_year in siblings:
                    if i < section.line and clean_heading(link.text) == section.path[-1]:
                        found.setdefault(sibling_year, i)
        if len(found) != len(siblings):
            return None
        model = self._lines[found[model_year]]
        text = self._ended(model.replace(str(model_year), str(year)))
        if before is not None:
            at = found[next(y for s, y in siblings if s is before)]
        else:
            at = max(found.values()) + 1
        return at, text

    def _ended(self, line: str) -> str:
        """`line` (a piece of `str.splitlines(keepends=True)`) with the list's own line
        ending instead of its LF, CR or CRLF; a piece cut at another separator (a form
        feed, U+2028) is part of a longer line and stays as it is."""
        if line.endswith(_OTHER_SEPARATORS):
            return line
        return line.removesuffix("\n").removesuffix("\r") + self.newline

    def _reparse_after_edit(self) -> None:
        fresh = Document(self.render())
        self.entries, self._sections, self._tables = fresh.entries, fresh._sections, fresh._tables
        self.unparsed = fresh.unparsed

    def _entry_section(self, entry: ParsedEntry) -> int:
        line = entry.line - 1
        found = -1
        for i, s in enumerate(self._sections):
            if s.line <= line:
                found = i
        return found

    def _fallback_template(self, index: int, new: NewEntry) -> ParsedEntry | None:
        """For a section without entries: an entry of the same paper table layout (empty
        tables in awesome-vpt), else the document's most common entry style."""
        tables = [t for t in self._tables if t.section == index and t.is_papers]
        if tables:
            headers = [_header_key(h) for h in tables[0].headers]
            for table in self._tables:
                if table.is_papers and [_header_key(h) for h in table.headers] == headers:
                    rows = [e for e in self.entries if table.body_start < e.line <= table.body_end]
                    if rows:
                        return _choose_template(rows, new)
            return None
        if not self.entries:
            return None
        styles: dict[str, int] = {}
        for e in self.entries:
            styles[e.style] = styles.get(e.style, 0) + 1
        best = max(styles, key=lambda s: styles[s])
        if best.endswith("table"):
            return None  # a table style needs a table to go into
        return _choose_template([e for e in self.entries if e.style == best], new)

    def _empty_section_line(self, index: int, template: ParsedEntry) -> int:
        section = self._sections[index]
        if template.kind == "table-row":
            table = next(t for t in self._tables if t.section == index and t.is_papers)
            return table.body_start  # before any placeholder rows
        end = section.end
        while end > section.line + 1 and not self._lines[end - 1].strip():
            end -= 1
        return end


# What `str.splitlines` also splits at, besides LF, CR and CRLF: not line endings in markdown.
_OTHER_SEPARATORS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_YEAR_IN_HEADING = re.compile(r"\b(?:19|20)\d{2}\b")


def parse(text: str) -> Document:
    return Document(text)


# --------------------------------------------------------------------------------------
# Bullet entries


_BOLD = re.compile(r"\*\*((?:\\.|[^\\\n])+?)\*\*")  # an escaped `\*` inside does not close it


def _parse_bullet_entry(raw: str) -> ParsedEntry | None:
    """Recognise one bullet block; None for a bullet that is not a paper entry."""
    first_end = raw.find("\n")
    first = raw if first_end < 0 else raw[:first_end]
    bullet = _BULLET.match(first)
    if bullet is None:
        return None
    body_start = bullet.start("body")
    body = bullet.group("body")
    links = _links(raw)
    paper = code = None
    for link in links:
        role = _link_role(link)
        if role == "paper" and paper is None:
            paper = link
        elif role == "code" and code is None:
            code = link
    if paper is None:  # `[[Pattern Recognition 2024](..)]`, a venue upgrade's, to a host not known
        paper = next((link for link in links if link is not code and _venue_link(raw, link)), None)
    if paper is None and code is None and not re.search(r"\[\s*No paper", raw):
        return None
    spans: dict[str, tuple[int, int]] = {}
    short_name: str | None = None
    title = ""
    style = "bullet"
    rest_start = body_start  # where to look for "Venue Year"
    short = re.match(r"`([^`]+)`\s*", body)
    bold = _BOLD.search(body)
    if short and bold and bold.start() == short.end():
        # generalizable / zhengli97: - `Short` **Title** Venue Year.
        short_name = short.group(1).strip()
        spans["short"] = (body_start + short.start(1), body_start + short.end(1))
        inner = bold.group(1)
        title = _trim_end(inner, ".")
        spans["title"] = (body_start + bold.start(1), body_start + bold.start(1) + len(title))
        dotted = _ends_with_mark(inner.rstrip(), ".") or body[bold.end() :].startswith(".")
        style = "zhengli97" if dotted else "generalizable"
        rest_start = body_start + bold.end()
    elif bold and bold.start() == 0:
        inner = bold.group(1)
        if re.fullmatch(r"\[[^\]]*\]", inner.strip()):
            return None  # a dated news item ("**[Oct 2025]** Preprint available"), not a paper
        after = body[bold.end() :]
        numbered = re.match(r"\[(\d+)\]\s*", inner)
        if numbered:  # synbol: - **[n] Title,** Venue Year.
            title = _trim_end(inner[numbered.end() :], ",")
            offset = body_start + bold.start(1) + numbered.end()
            spans["title"] = (offset, offset + len(title))
            spans["number"] = (
                body_start + bold.start(1) + 1,
                body_start + bold.start(1) + 1 + len(numbered.group(1)),
            )
            style = "synbol"
            rest_start = body_start + bold.end()
        elif gap := re.match(r"\s*[:：]\s*", after) or _unmarked_short_name(after):
            # BWLONG: * **Short**: Title, Venue, Year (*Aff*). [[Paper]..]; a few of its
            # entries leave out the colon: * **Oscar** Title, Nips, 2021 (DeepMind). [[paper]..]
            # "?" is this list's mark for a paper without a short name
            short_name = inner.strip() if inner.strip() != "?" else None
            spans["short"] = (body_start + bold.start(1), body_start + bold.end(1))
            t_start = body_start + bold.end() + gap.end()
            segment = raw[t_start : first_end if first_end >= 0 else len(raw)]
            cut = re.search(r"\s*(?<!\\)(?:\(\*|\[)", segment)  # not at an escaped "\["
            head = segment[: cut.start()] if cut else segment
            tail = _bwlong_tail(head)
            if tail:
                title = head[: tail.start].strip()
                bw_venue, bw_year = tail.venue, tail.year
                if tail.venue_span is not None:  # "Title, 2023 (*Lab*)" names no venue
                    spans["venue"] = (t_start + tail.venue_span[0], t_start + tail.venue_span[1])
                spans["year"] = (t_start + tail.year_span[0], t_start + tail.year_span[1])
            else:
                title = _trim_end(head.strip(), ",.")
                bw_venue, bw_year = None, None
                # its affiliation without the asterisks: "Title(UNC Chapel Hill).[[ICML 2021](..)]"
                # ("(*Lab*)" is cut above; "Title, 2021 (Lab)" by _BWLONG_TAIL)
                aside = re.search(r"\s*\([^()*]*\)$", title)
                if aside and aside.start() > 0:
                    title = _trim_end(title[: aside.start()], ",.")
            spans["title"] = (t_start, t_start + len(title))
            style = "bwlong"
            rest_start = -1
        elif _ends_with_mark(inner.rstrip(), ",") or after.startswith(
            ","
        ):  # jianghaojun: - **Title,** Venue Year (arXiv:id).
            title = _trim_end(inner, ",")
            spans["title"] = (body_start + bold.start(1), body_start + bold.start(1) + len(title))
            style = "jianghaojun"
            rest_start = body_start + bold.end()
        else:  # disi (1. **Title** (Venue, Year)), ttengwang pilots (- **Title** [[paper]](..))
            title = _trim_end(inner.strip(), ".")
            spans["title"] = (body_start + bold.start(1), body_start + bold.start(1) + len(title))
            style = "ttengwang" if re.search(r"\[\[(?:paper|pdf|code)\]\]\(", raw, re.I) else "disi"
            rest_start = body_start + bold.end()
    else:
        # ttengwang (- Title [[paper]](..)) and plain lists (- Title. [[Paper](..)])
        cut = re.search(r"\s*(?<!\\)\[\[|\s*(?<!\\)\[(?:\\.|[^\]\\])*\]\(", body)
        head = body[: cut.start()] if cut else body
        title = _trim_end(head.strip(), ".")
        named = any(_role_by_text(lk) or _venue_link(raw, lk) for lk in links)
        if not title or re.search(r"(?<!\\)\]\(", title) or not named:
            return None  # prose with a link ("inspired by [this](..)") is not an entry
        spans["title"] = (body_start, body_start + len(title))
        style = "ttengwang" if re.search(r"\[\[(?:paper|pdf|code)\]\]\(", raw, re.I) else "plain"
        rest_start = body_start + (cut.start() if cut else len(body))
    title = _strip_markdown(title)
    if not title:
        return None
    venue: str | None = None
    year: int | None = None
    if style == "bwlong":  # read from its title line above
        venue, year = bw_venue, bw_year
    elif rest_start >= 0:
        found = _venue_up_to_year(raw, rest_start, style, links) or _venue_year_after(
            raw, rest_start, style, links
        )
        # one level of brackets inside: "(Electronics (Switzerland))" read as no venue
        paren = (
            re.match(r"\s*\(((?:[^(),\n]|\([^(),\n]*\))+?)\)", raw[rest_start:]) if style == "disi" else None
        )
        if found:
            venue, year, spans["venue"], spans["year"] = found
        elif paren:  # disi-unibo-nlp without a year: **Title** (IJCAI)
            venue = paren.group(1).strip()
            spans["venue"] = (rest_start + paren.start(1), rest_start + paren.start(1) + len(venue))
        else:
            # outside links and badges: "[[paper](https://www.ijcai.org/proceedings/2022/..)]"
            # names no year of the entry's
            bare = _find_bare_year(_masked_line(raw, rest_start, links), rest_start)
            if bare:
                year, spans["year"] = bare
    if venue is None and style in ("bwlong", "plain") and paper is not None:
        # the venue is the paper link's text: [[CVPR 2023](..)] or [[arXiv 2310](..)] (YYMM)
        yymm = re.fullmatch(r"(arXiv)\s+(\d{2})(\d{2})", paper.text.strip(), re.IGNORECASE)
        shown = _link_venue_year(paper.text)
        if yymm:
            venue, year = yymm.group(1), 2000 + int(yymm.group(2))
        elif shown:
            venue, year = shown
        if venue is not None:  # what a venue upgrade rewrites: "[[arXiv 2307](..)]" -> "[[ICCV 2023](..)]"
            text_start = paper.start + 1 + len(paper.text) - len(paper.text.lstrip())
            spans["link_venue"] = (text_start, text_start + len(paper.text.strip()))
    if paper is not None:
        spans["paper"] = _bracketed(raw, paper)
    if code is not None:
        spans["code"] = _bracketed(raw, code)
    badge_matches = list(_BADGE.finditer(raw))
    if badge_matches:
        spans["badges"] = (badge_matches[0].start(), badge_matches[-1].end())
    paper_url = paper.url if paper else None
    return ParsedEntry(
        index=0,
        line=0,
        raw=raw,
        kind="bullet",
        style=style,
        section_path=[],
        title=title,
        short_name=short_name,
        venue=venue,
        year=year,
        paper_url=paper_url,
        code_url=code.url if code else None,
        arxiv_id=normalize.arxiv_id(paper_url) if paper_url else None,
        badges=_badges(raw),
        spans=spans,
    )


# BWLONG's end of a title line: ", Venue, Year" (or ", Year") and maybe a plain
# "(Affiliation)". The venue starts with a word: ", 2023" once read as the venue " " (stored
# as ""), and a jianghaojun-like "**Title,** CVPR, 2023." as a BWLONG entry titled "CVPR".
_BWLONG_TAIL = re.compile(r",\s*(?:([^,\s][^,]*?),?\s*)?(" + _YEAR4 + r")\s*(?:\([^()*]*\))?\s*$")


@dataclass(frozen=True)
class _BwlongTail:
    """BWLONG's ", Venue, Year" at the end of a title line: where it starts (the title ends
    there), the venue and year it names, and their spans in the line's head."""

    start: int
    venue: str | None
    year: int
    venue_span: tuple[int, int] | None
    year_span: tuple[int, int]


def _bwlong_tail(head: str) -> _BwlongTail | None:
    """The ", Venue, Year" that ends `head` (a BWLONG title line up to its affiliation or
    links), or ", Venue, Year, Words" with one to three words after the year: those are the
    venue's, after its name, as in every other style (`_venue_around_year`): `MaPLe: ...,
    CVPR, 2023, Oral` is "CVPR Oral" of 2023; before, the whole line was read as the title.
    Venue and year are then one span, so an upgrade writes "TPAMI 2026" over "CVPR, 2023,
    Oral". Words after a year with no venue before it (", 2023, Oral") are no tail."""
    core = head.rstrip(". ")
    tail = _BWLONG_TAIL.search(core)
    if tail:
        year = int(tail.group(2))
        if tail.group(1) is None:
            return _BwlongTail(tail.start(), None, year, None, tail.span(2))
        return _BwlongTail(tail.start(), tail.group(1).strip(), year, tail.span(1), tail.span(2))
    aside = _before_aside(core, len(core))  # "2023, Oral (DeepMind)"
    after = _words_after_year(core[:aside].rstrip())
    if after is None:
        return None
    before, words = after
    tail = _BWLONG_TAIL.search(before)
    if tail is None or tail.group(1) is None:
        return None
    span = (tail.start(1), len(core[:aside].rstrip()))
    return _BwlongTail(tail.start(), f"{tail.group(1).strip()} {words}", int(tail.group(2)), span, span)


def _unmarked_short_name(after: str) -> re.Match[str] | None:
    """The gap after a bold short name that BWLONG wrote without its colon, when what follows
    reads as its "Title, Venue, Year" (`**Oscar** Multimodal Few-Shot Learning with Frozen
    Language Models, Nips, 2021 (DeepMind).`); None for any other bold-first bullet, whose
    bold text is the title (disi, ttengwang)."""
    gap = re.match(r"\s+(?=[^\s(\[])", after)
    if gap is None:
        return None
    line = after[gap.end() :].split("\n", 1)[0]
    cut = re.search(r"\s*(?<!\\)(?:\(\*|\[)", line)
    head = line[: cut.start()] if cut else line
    tail = _bwlong_tail(head)
    return gap if tail and tail.venue is not None else None


def _escaped_at(text: str, i: int) -> bool:
    """True when `text[i]` is backslash-escaped: an odd run of backslashes before it."""
    run = 0
    while run < i and text[i - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _ends_with_mark(text: str, mark: str) -> bool:
    """`text` ends with `mark` as punctuation of the list's, not as an escaped `\\.` of the title's."""
    return text.endswith(mark) and not _escaped_at(text, len(text) - 1)


def _trim_end(text: str, marks: str) -> str:
    """`text` without the spaces and the punctuation (`marks`) a list puts after a title
    ("**Title.**", "**[n] Title,**", "- Title. [[Paper](..)]"), like
    `.rstrip().rstrip(marks).rstrip()`, except that an escaped mark ends the title: a new
    entry whose title ends in "." or "," is written with it escaped (`_bullet_title`)."""
    text = text.rstrip()
    end = len(text)
    while end and text[end - 1] in marks and not _escaped_at(text, end - 1):
        end -= 1
    return text[:end].rstrip()


def _bracketed(raw: str, link: _Link) -> tuple[int, int]:
    """The span of a link including the `[...]` some lists wrap it in (`[[Paper](..)]`)."""
    start, end = link.start, link.end
    if start > 0 and raw[start - 1] == "[" and end < len(raw) and raw[end] == "]":
        return start - 1, end + 1
    return start, end


def _venue_year_after(
    raw: str, start: int, style: str, links: list[_Link]
) -> tuple[str, int, tuple[int, int], tuple[int, int]] | None:
    """Venue and year after the title: on the rest of the first line, or (ttengwang) in
    the back-quoted `CVPR 2023` of a following line. Text inside links is skipped."""
    if style == "ttengwang":
        code = re.search(r"`([^`]+)`", raw[start:])
        if code:
            return _find_venue_year(code.group(1), start + code.start(1))
        return None
    return _find_venue_year(_masked_line(raw, start, links), start)


def _masked_line(raw: str, start: int, links: list[_Link]) -> str:
    """The rest of the line from `start`, with links (and the brackets some lists put around
    them, `[[Paper](..)]`), badges and HTML tags (`<br>`) blanked out (same length): what is
    left is the entry's own words, where a venue and year may be written."""
    line_end = raw.find("\n", start)
    segment = raw[start : line_end if line_end >= 0 else len(raw)]
    masked = list(segment)
    for link in links:
        a, b = _bracketed(raw, link)
        for k in range(max(a, start), min(b, start + len(segment))):
            masked[k - start] = " "
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", lambda m: " " * len(m.group(0)), "".join(masked))
    return _HTML_TAG.sub(lambda m: " " * len(m.group(0)), text)


_LINE_END_YEAR = re.compile(r"(?<![\d.])'?(" + _YEAR4 + r"|\d{2})$")
_MONTH_END = re.compile(r"(?<=\d{4})/\d{1,2}$")  # ttengwang's "Arxiv 2022/05"
# disi-unibo-nlp's "(Venue, Year)" right after the title; one level of parentheses inside
_LEADING_PAREN = re.compile(r"\s*\(((?:[^()\n]|\([^()\n]*\))*)\)")

_Found = tuple[str, int, tuple[int, int], tuple[int, int]]


def _venue_up_to_year(raw: str, start: int, style: str, links: list[_Link]) -> _Found | None:
    """Venue and year of a bullet from the text the list keeps for them, read whole: the rest
    of the title's line (``- `Short` **Title**    Venue Year.``, ``- **[n] Title,** Venue
    Year.``, ``- **Title,** Venue Year (arXiv:id).``), disi-unibo-nlp's ``(Venue, Year)`` and
    ttengwang's back-quoted `` `Venue Year` ``. All of it before a year that ends it is the
    venue, so "CVPR Workshops 2025", "Pattern Recognition 2025", "ICLR (Oral) 2025" and
    "WANT @ ICML 2024" read back as the list (or our own renderer) wrote them: the
    word-shaped `_VENUE_YEAR` kept only the last word ("Recognition") or nothing, and a
    venue upgrade then replaced only that word. A word or three after the year are the
    venue's too (`_venue_around_year`: "EMNLP 2023 Findings.", "(CVPR 2023, Oral)"); None
    when more follows: the general rule reads those, as before."""
    if style == "ttengwang":
        code = re.search(r"`([^`]+)`", raw[start:])
        return _venue_around_year(raw, start + code.start(1), code.group(1)) if code else None
    text = _masked_line(raw, start, links)
    paren = _LEADING_PAREN.match(text) if style == "disi" else None
    if paren:
        return _venue_around_year(raw, start + paren.start(1), paren.group(1))
    end = len(text.rstrip())
    if text[:end].endswith("."):
        end -= 1
    return _venue_around_year(raw, start, text[: _before_aside(text, end)])


def _before_aside(text: str, end: int) -> int:
    """Where `text[:end]` ends without a last bracketed aside: jianghaojun's "CVPR 2023
    (arXiv:2303.03369)", ustcjinggg's "ECCV2022(455引)". Plain string scans."""
    core = text[:end].rstrip()
    if core.endswith(")"):
        opening = core.rfind("(")
        if opening > 0 and ")" not in core[opening:-1]:
            return len(core[:opening].rstrip())
    return end


def _venue_ending_in_year(raw: str, offset: int, text: str) -> _Found | None:
    """`text`, which is `raw[offset : offset + len(text)]` with links and badges blanked,
    read whole as "Venue Year": the venue is all of it before a year (and month) that ends
    it, less the spaces, commas and dots around it. None for a year glued to a word by
    anything but a letter, a venue with a link or badge inside, or no letter at all ("2023
    2024"). Plain string scans, no backtracking regex: a line may be any length (a first
    regex version took 29 s on a line of 20,000 ". ")."""
    end = len(text.rstrip())
    month = _MONTH_END.search(text, 0, end)
    year = _LINE_END_YEAR.search(text, 0, month.start() if month else end)
    if year is None:
        return None
    before = text[: year.start()]
    v_end = len(before.rstrip(" \t,"))
    # A year glued to the venue is one of four digits after its last letter or bracket:
    # "CVPR2025", ustcjinggg's "ICCV2023" (and so "ICLR (Oral)2025"); "arXiv:2203.17274" is none
    glued = v_end == len(before) and not year.group().startswith("'")
    if glued and (len(year.group(1)) != 4 or not (before[-1:].isalpha() or before.endswith(")"))):
        return None
    v_start = len(before) - len(before.lstrip(" \t.,"))
    if v_start >= v_end:
        return None
    shown = raw[offset + v_start : offset + v_end]
    venue = _strip_markdown(shown)
    if shown != text[v_start:v_end] or not re.search(r"[A-Za-z]", venue):
        return None  # a link or badge inside, or no word at all ("2023 2024.")
    if len(year.group(1)) == 2 and re.search(r"\d", venue):
        return None  # "arXiv:2203.172 74" is no "Venue 'YY"
    v_span = (offset + v_start, offset + v_end)
    return venue, _year(year.group(1)) or 0, v_span, (offset + year.start(1), offset + end)


_MAX_WORDS_AFTER_YEAR = 3  # "Findings", "Workshop", "Oral", "Short Papers", "Datasets and Benchmarks"
_WORD_LETTERS = frozenset(string.ascii_letters + "-")


def _venue_around_year(raw: str, offset: int, text: str) -> _Found | None:
    """`text` (as `_venue_ending_in_year` takes it) read as "Venue Year", or as "Venue Year
    Words" with a word or three after the year: "EMNLP 2023 Findings", "CVPR 2023, Oral",
    "ICCV 2023 Workshop". Those words are part of the venue, after its name ("EMNLP Findings",
    "CVPR Oral", "ICCV Workshop", as "CVPR Workshops 2025" is "CVPR Workshops"): the word
    before the year alone made a Findings or workshop paper a main-conference one. One span
    holds the venue and the year, as in "arXiv:2203.17274": an upgrade or a new entry in the
    style of this one writes "TPAMI 2026" over all of it, where it wrote "TPAMI 2026 Findings".
    Plain string scans, as in `_venue_ending_in_year`."""
    found = _venue_ending_in_year(raw, offset, text)
    if found is not None:
        return found
    core = text.rstrip()
    after = _words_after_year(core)
    if after is None:
        return None
    head, words = after
    found = _venue_ending_in_year(raw, offset, head)
    if found is None:
        return None
    venue, year, (v_start, _v_end), _year_span = found
    span = (v_start, offset + len(core))
    return f"{venue} {words}", year, span, span


def _words_after_year(core: str) -> tuple[str, str] | None:
    """`core` (no trailing spaces) split as "... Year" and the one to three words after the
    year ("Findings", "Oral", "Short Papers"), which are the venue's; None when `core` does not
    end so. Shared by `_venue_around_year` and BWLONG's `, Venue, Year, Oral`."""
    words: list[str] = []
    end = len(core)
    while len(words) < _MAX_WORDS_AFTER_YEAR:
        start = end
        while start > 0 and core[start - 1] in _WORD_LETTERS:
            start -= 1
        if start == end or not core[start].isalpha():
            return None
        words.insert(0, core[start:end])
        gap = len(core[:start].rstrip(" \t"))
        comma = core[:gap].endswith(",")
        head = core[: len(core[:gap].rstrip(" \t,"))]
        if gap == start and not comma:
            return None  # "2023Findings", "ICCV-W": not a word after the year
        if head[-1:].isdigit():
            return head, " ".join(words)
        if comma:
            return None  # "CVPR 2023 Oral, Spotlight": a list, not one venue's words
        end = gap
    return None


def _link_venue_year(text: str) -> tuple[str, int] | None:
    """The venue and year a link's text shows: BWLONG's `[[CVPR 2023](..)]`, and what a venue
    upgrade writes there (`[[Pattern Recognition 2024](..)]`, which read as no venue)."""
    found = _venue_ending_in_year(text, 0, text) or _find_venue_year(text)
    if found is None or found[2][0] != len(text) - len(text.lstrip()):
        return None  # the text starts with something else ("Slides, CVPR 2023")
    return found[0], found[1]


def _looks_like_entry(raw: str) -> bool:
    """A bullet that a maintainer meant as a paper entry: a paper/code link or a badge,
    with a bold or back-quoted name, or a "[[Paper" bracket; anchors alone do not count."""
    if re.search(r"\[\[?(?:paper|pdf|code)\b", raw, re.IGNORECASE):
        return True
    return bool(_BADGE.search(raw) and re.search(r"\*\*|`", raw))


# --------------------------------------------------------------------------------------
# Rendering new entries in a neighbour's style


def _safe_url(url: str | None) -> str | None:
    """An http(s) URL safe inside `[..](..)`, or None for anything else (javascript:, data:...)."""
    if not url:
        return None
    url = url.strip()
    if _UNSAFE_SCHEME.match(url) or not re.match(r"^https?://[^\s]+$", url, re.IGNORECASE):
        return None
    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")


def _escape_inline(text: str) -> str:
    """Untrusted text made inert in markdown: one line, no link, emphasis, code, strike-through
    or HTML syntax, and no cell break in a table. `_strip_markdown` reads it back as `text`."""
    text = " ".join(text.split())
    text = re.sub(_CHAR_REF, lambda m: "&amp;" + m.group()[1:], text)  # a literal "&lt;" stays so
    text = re.sub(r"(?i)javascript:", lambda m: m.group()[:-1] + "&#58;", text)
    text = text.replace("\\", "\\\\")
    for char in "[]*`_|~":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _bullet_title(title: str) -> str:
    """A new bullet entry's title: inert like any inline text, and a last "." or "," escaped.

    Every bullet style puts a "." or "," of its own after the title ("**Title.**",
    "**[n] Title,**", "- Title. [[Paper](..)]", "`Short` **Title**    Venue Year."), and
    parsing drops it; an escaped one (`\\.`, `\\,`) is the title's own, so "Prompts,
    Adapters, etc." reads back whole. A reader sees the plain character.
    """
    text = _escape_inline(title)
    if text.endswith((".", ",")):  # never escaped already: `_escape_inline` doubles backslashes
        text = text[:-1] + "\\" + text[-1]
    return text


def _escape_cell(text: str) -> str:
    return _escape_inline(text)


def _choose_template(candidates: list[ParsedEntry], new: NewEntry) -> ParsedEntry:
    """The entry whose shape is closest to `new` (same links and short name present),
    latest first, so that the neighbours' current habits win over old ones."""

    def score(entry: ParsedEntry) -> tuple[int, int]:
        same = (
            (entry.paper_url is not None) == (new.paper_url is not None)
            and (entry.code_url is not None) == (new.code_url is not None)
            and (entry.short_name is not None) == (new.short_name is not None)
            and bool(entry.badges) == bool(new.badges)
            and "venue" in entry.spans
        )
        return (1 if same else 0) + (1 if "venue" in entry.spans else 0), entry.index

    return max(candidates, key=score)


def _insertion_line(own: list[ParsedEntry], new: NewEntry) -> int:
    """0-based line to insert at: the section's year order if it has one, after the
    entries of the same venue if they are grouped, else after the last entry."""
    last = own[-1]
    after_last = last.line - 1 + last.line_count
    years = [e.year for e in own if e.year is not None]
    if new.year is not None and len(set(years)) >= 2 and len(years) == len(own):
        if all(a >= b for a, b in pairwise(years)):
            for e in own:
                if e.year is not None and e.year < new.year:
                    return e.line - 1
            return after_last
        if all(a <= b for a, b in pairwise(years)):
            for e in own:
                if e.year is not None and e.year > new.year:
                    return e.line - 1
            return after_last
    if new.venue:
        same = [e for e in own if (e.venue or "").lower() == new.venue.lower()]
        if same:
            return same[-1].line - 1 + same[-1].line_count
    return after_last


def _names_papers(rows: list[ParsedEntry]) -> bool:
    """True for a table whose rows mostly call a paper by its method name, not its title.

    The prompt-adaptation list's VPT table lists "VPT", "E2VPT", "LPT": a new row there reads
    "LoGoPrompt", not the whole title. A name is at most two words; of all tables in the real
    lists, only that one is mostly names (its VP table, 3 of 6, keeps whole titles).
    """
    rows = [row for row in rows if row.kind == "table-row"]
    return sum(len(row.title.split()) <= 2 for row in rows) * 2 > len(rows)


def _render_like(template: ParsedEntry, new: NewEntry, doc: Document, *, by_name: bool = False) -> str:
    if template.kind == "table-row":
        return _render_row_like(template, new, by_name=by_name)
    return _render_bullet_like(template, new, doc)


def _render_row_like(template: ParsedEntry, new: NewEntry, *, by_name: bool = False) -> str:
    raw = template.raw
    cells, spans = _split_row(raw)
    paper = _safe_url(new.paper_url)
    code = _safe_url(new.code_url)
    title_text = _escape_cell(new.short_name if by_name and new.short_name else new.title)
    # The title links to the paper when there is one (even in ustcjinggg's link-less tables:
    # a link is never worse than none); otherwise it is plain text.
    title_cell = f"[{title_text}]({paper})" if paper else title_text
    new_cells = {k.lower(): v for k, v in new.cells.items()}
    out = []
    last = 0
    key_of_span = {span: key for key, span in template.spans.items() if key.startswith("cell:")}
    for cell, span in zip(cells, spans, strict=True):
        key = key_of_span.get(span, "")[5:]
        if key == "title":
            value = title_cell
        elif key in _VENUE_HEADERS:
            if "year" in key_of_span.values() or any(k == "cell:year" for k in template.spans):
                value = _escape_cell(new.venue or "")
            else:
                value = _escape_cell(f"{new.venue or ''}{new.year or ''}")
        elif key == "year":
            value = str(new.year) if new.year else ""
        elif key in _CODE_HEADERS:
            link_text = next((lk.text for lk in _links(cell)), "Github")
            empty = cell if not _links(cell) else "---"
            value = f"[{link_text}]({code})" if code else empty
        elif key == "keywords":
            link_text = next((lk.text for lk in _links(cell)), "Code")
            parts = [f"[{link_text}]({code})"] if code else []
            if new_cells.get("keywords"):
                parts.append(_escape_cell(new_cells["keywords"]))
            value = ", ".join(parts) if parts else "-"
        else:
            value = _escape_cell(new_cells.get(key, ""))
        old = raw[span[0] : span[1]]
        lead = old[: len(old) - len(old.lstrip())] or " "
        trail = old[len(old.rstrip()) :] or " "
        # Pad only where the maintainer aligns columns (JindongGu); elsewhere one space.
        width = len(old) - len(lead) - len(trail) if len(trail) > 1 else 0
        if not old.strip():
            lead, trail, width = " ", " ", 0
        out.append(raw[last : span[0]] + lead + value.ljust(max(width, 0)) + trail)
        last = span[1]
    out.append(raw[last:])
    text = "".join(out)
    return text if text.endswith("\n") else text + "\n"


# What a bullet template may lend a new entry is its layout: the marker, spacing, line
# structure, punctuation, link words and badge form. Everything else in it is the
# neighbour's own: its title, names, venue, links, affiliation ("(*Huawei*)"), arXiv id,
# authors, notes ("Highlight: ..."), extra links ("[[Website](..)]"), comments. The new
# entry is built from the template's *slots* (title, short name, number, venue, year,
# paper and code link or placeholder, badges, authors), each refilled from the new paper,
# and whatever lies outside them that is not layout is left out.
# "[No code available]", "[Code Not Found]", "[No Code]", synbol's link-less "[Code]"
_PLACEHOLDER = re.compile(
    r"\[(?:No\s+)?(?:paper|code|pdf)(?:\s+(?:not\s+found|found|available|not\s+available))?\](?!\()",
    re.IGNORECASE,
)
_IMAGE = re.compile(r"!\[[^\]\n]*\]\((?:[^()\n]|\([^()\n]*\))*\)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>")
# A word, number or symbol of the neighbour's ("Oral", "🔥", "⭐ 120"): anything but spaces and
# ASCII punctuation, which are layout.
_CONTENT_WORD = re.compile(r"[^\s!-/:-@\[-`{-~]+(?:['’&/-][^\s!-/:-@\[-`{-~]+)*")
_PAPER_LINK_WORDS = {"paper", "pdf", "link", "arxiv"}
_CODE_LINK_WORDS = {"code", "link", "github", "gitlab"}
_AUTHOR_STYLES = ("synbol", "jianghaojun")  # their second line names the authors
_AUTHORS = re.compile(r"(?<!\*)\*(?!\*)[^*\n]+\*(?!\*)")


class _Rewrite:
    """The template's text with its slots replaced, text inserted at points and the rest of
    its characters kept or dropped; slots and drops never overlap."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.slots: dict[int, tuple[int, str]] = {}  # start -> (end, replacement)
        self.inserts: dict[int, str] = {}
        self.protected = [False] * len(raw)
        self.dropped = [False] * len(raw)

    def slot(self, span: tuple[int, int], text: str) -> None:
        a, b = span
        if any(self.protected[a:b]):
            return  # already a slot (a span the parser gave twice)
        self.slots[a] = (b, text)
        self.protect(span)

    def protect(self, span: tuple[int, int]) -> None:
        for i in range(*span):
            self.protected[i] = True

    def insert(self, at: int, text: str) -> None:
        self.inserts[at] = self.inserts.get(at, "") + text

    def free(self, a: int, b: int) -> bool:
        return not any(self.protected[a:b])

    def drop(self, a: int, b: int, *, space_before: bool = True) -> None:
        """Leave out raw[a:b] (never a slot), with the spaces just before it on its line."""
        if space_before:
            while a > 0 and self.raw[a - 1] in " \t" and not self.protected[a - 1]:
                a -= 1
        for i in range(a, b):
            if not self.protected[i]:
                self.dropped[i] = True

    def render(self) -> str:
        out: list[str] = []
        i = 0
        while i < len(self.raw):
            out.append(self.inserts.get(i, ""))
            if i in self.slots:
                end, text = self.slots[i]
                out.append(text)
                i = end
                continue
            if not self.dropped[i]:
                out.append(self.raw[i])
            i += 1
        out.append(self.inserts.get(len(self.raw), ""))
        return "".join(out)


def _no_dot_after_a_question(out: _Rewrite, end: int, title: str) -> None:
    """Leave out the "." a style puts after its titles (zhengli97's "**Title.**") when the new
    title ends in "?" or "!": "**… Robust to Noisy Labels?.**" is in no list, and the parser
    reads the title the same without it. A "," stays (synbol writes "**[n] … Better?,**").
    Called once the template's own asides are left out: BWLONG's "Title, (*UMD*). [[..]]"
    has its "." after the affiliation."""
    while end < len(out.raw) and out.dropped[end]:  # what the template had there and was left out
        end += 1
    if title.rstrip().endswith(("?", "!")) and out.raw[end : end + 1] == "." and out.free(end, end + 1):
        out.drop(end, end + 1, space_before=False)


def _render_bullet_like(template: ParsedEntry, new: NewEntry, doc: Document) -> str:
    raw = template.raw
    spans = dict(template.spans)
    out = _Rewrite(raw)
    bullet = _BULLET.match(raw.split("\n", 1)[0])
    if bullet is not None:
        out.protect((0, bullet.start("body")))  # the marker ("-", "13.") and its indent
    out.slot(spans["title"], _bullet_title(new.title))
    _short_slot(out, template, new)
    if "number" in spans:
        numbers = [
            int(e.raw[e.spans["number"][0] : e.spans["number"][1]])
            for e in doc.entries
            if "number" in e.spans and e.section_path == template.section_path
        ]
        out.slot(spans["number"], str(max(numbers) + 1))
    _venue_slots(out, template, new)
    placeholders = _placeholders(raw, out)
    for role, url in (("paper", _safe_url(new.paper_url)), ("code", _safe_url(new.code_url))):
        _link_slot(out, template, role, url, doc, placeholders, new)
    if "badges" in spans:
        out.slot(spans["badges"], _badge_text(raw, spans["badges"], new.badges, doc))
    if template.style in _AUTHOR_STYLES:
        first_end = raw.find("\n")
        authors = _AUTHORS.search(raw, first_end) if first_end >= 0 else None
        if authors is not None:
            names = ", ".join(_escape_inline(a) for a in new.authors) if new.authors else "Authors not listed"
            out.slot(authors.span(), f"*{names}.*")
    _leave_out_the_rest(out)
    _no_dot_after_a_question(out, spans["title"][1], new.title)
    text = out.render()
    return text if text.endswith("\n") else text + "\n"


def _short_slot(out: _Rewrite, template: ParsedEntry, new: NewEntry) -> None:
    if "short" not in template.spans:
        return
    raw = out.raw
    a, b = template.spans["short"]
    if new.short_name:
        short = (
            new.short_name.replace("`", "'") if template.style != "bwlong" else _escape_inline(new.short_name)
        )
        out.slot((a, b), " ".join(short.split()))
    elif template.style == "bwlong":
        out.slot((a, b), "?")  # the list's own mark for a paper without a short name
    else:
        # drop "`Short` " (generalizable) when the new paper has no short name
        a2 = a - 1 if raw[a - 1 : a] == "`" else a
        b2 = b + 1 if raw[b : b + 1] == "`" else b
        while b2 < len(raw) and raw[b2] == " ":
            b2 += 1
        out.slot((a2, b2), "")


def _venue_slots(out: _Rewrite, template: ParsedEntry, new: NewEntry) -> None:
    """The new venue and year where the template has its own. Words before the venue up to
    its opening bracket, comma or emphasis are the neighbour's too ("WANT @ ICML 2024",
    "(The 34th International Conference on ... Engineering, 2022)")."""
    raw = out.raw
    venue = _escape_inline(new.venue) if new.venue else ""
    year = str(new.year) if new.year else ""
    both = f"{venue} {year}".strip()
    v, y = template.spans.get("venue"), template.spans.get("year")
    if v is not None:
        start = v[0]
        while start > 0 and raw[start - 1] not in "(,*`:：\n" and out.free(start - 1, start):
            start -= 1
        while start < v[0] and raw[start] in " \t":
            start += 1
        v = (start, v[1])
    if v is not None and y is not None and v != y and v[1] <= y[0]:
        if venue or raw[v[1] : y[0]].strip():
            out.slot(v, venue)
        else:  # no venue: "CVPR 2024" becomes "2024", not " 2024"
            out.slot((v[0], y[0]), "")
        out.slot(y, year)
    elif v is not None and y is not None:  # one text holds both ("arXiv:2203.17274")
        out.slot((min(v[0], y[0]), max(v[1], y[1])), both)
    elif v is not None:
        out.slot(v, both)
    elif y is not None:
        out.slot(y, both)
    if not both and (v or y):
        _drop_separator_before(out, min(span[0] for span in (v, y) if span is not None))


def _drop_separator_before(out: _Rewrite, at: int) -> None:
    """Leave out the ", " that led to a venue and year the new entry has neither of:
    "**Title**, CVPR 2024." becomes "**Title**.", not "**Title**,  "."""
    start = at
    while start > 0 and out.raw[start - 1] in " \t":
        start -= 1
    if start > 0 and out.raw[start - 1] == "," and out.free(start - 1, at):
        out.drop(start - 1, at)


def _placeholders(raw: str, out: _Rewrite) -> dict[str, tuple[int, int]]:
    """The template's words for a missing link ("[No code available]", "[Code]"), by role."""
    found: dict[str, tuple[int, int]] = {}
    for match in _PLACEHOLDER.finditer(raw):
        if match.start() > 0 and raw[match.start() - 1] == "[":
            continue  # "[[Code]](..)" is a link
        if out.free(*match.span()):
            role = "paper" if "paper" in match.group().lower() else "code"
            found.setdefault(role, match.span())
    return found


def _link_slot(
    out: _Rewrite,
    template: ParsedEntry,
    role: str,
    url: str | None,
    doc: Document,
    placeholders: dict[str, tuple[int, int]],
    new: NewEntry,
) -> None:
    raw = out.raw
    span = template.spans.get(role)
    if span is not None:
        if url:
            out.slot(span, _relinked(raw[span[0] : span[1]], role, url, new, template.style))
            return
        placeholder = _placeholder(doc, role)
        if placeholder:
            out.slot(span, placeholder)
            return
        # no placeholder in this list: remove the link and one separating space
        a, b = span
        if b < len(raw) and raw[b] == " ":
            b += 1
        out.slot((a, b), "")
        return
    if role in placeholders:
        if url:
            out.slot(placeholders[role], _link_like(doc, template, role, url, new))
        else:
            out.protect(placeholders[role])  # the list's own words for it: layout
        return
    if not url:
        return
    # The template has neither: add the link next to the other one, shaped like the list's.
    other_role = "code" if role == "paper" else "paper"
    other = template.spans.get(other_role) or placeholders.get(other_role)
    if other is None:
        return
    link = _link_like(doc, template, role, url, new)
    if role == "paper":
        out.insert(other[0], link + " ")
    else:
        out.insert(other[1], " " + link)


def _relinked(text: str, role: str, url: str, new: NewEntry, style: str) -> str:
    """A link slot (`[[Paper LinK](..)]`, `[[IJCV 2022](..)]`, `[[paper]](..)`) pointing at
    `url`, its words cleaned of the neighbour's (a venue, "PyTorch", "(Empty)")."""
    links = _links(text)
    if not links:
        return text
    link = links[0]
    inner = link.text
    lead = inner[: len(inner) - len(inner.lstrip("["))]
    trail = inner[len(inner.rstrip("]")) :]
    words = _link_words(inner[len(lead) : len(inner) - len(trail)], role, new)
    if style == "plain" and role == "paper" and not words.lower().startswith(tuple(_PAPER_WORDS)):
        words = "Paper"  # a plain entry is known by its "[Paper]"-like link
    return text[: link.start] + f"[{lead}{words}{trail}]({url})" + text[link.end :]


def _link_words(words: str, role: str, new: NewEntry) -> str:
    core = " ".join(re.sub(r"\s*\([^)]*\)", " ", words).split())
    if role == "paper":
        if _shows_venue(core) or re.fullmatch(r"arXiv\s+\d{4}", core, re.IGNORECASE):
            # the link shows the venue (BWLONG's "[[CVPR 2023](..)]"): the new paper's
            arxiv = normalize.arxiv_id(new.paper_url) if new.paper_url else None
            if (new.venue is None or normalize.is_preprint_venue(new.venue)) and arxiv:
                return f"arXiv {arxiv[:4]}"
            shown = " ".join(p for p in (_escape_inline(new.venue or ""), str(new.year or "")) if p)
            return shown or "Paper"
        allowed, default = _PAPER_LINK_WORDS, "Paper"
    else:
        allowed, default = _CODE_LINK_WORDS, "Code"
    found = {w.lower() for w in re.findall(r"\w+", core)}
    return core if found and found <= allowed else default


def _link_like(doc: Document, template: ParsedEntry, role: str, url: str, new: NewEntry) -> str:
    """A `role` link to `url` shaped like the list's own (`[[Code Link](..)]`): from another
    entry of the template's style, else like the template's other link."""
    for entry in reversed(doc.entries):
        span = entry.spans.get(role)
        if entry.style == template.style and entry.kind == "bullet" and span is not None:
            return _relinked(entry.raw[span[0] : span[1]], role, url, new, entry.style)
    other = template.spans.get("code" if role == "paper" else "paper")
    word = "Paper" if role == "paper" else "Code"
    if other is None:
        return f"[[{word}]({url})]"
    other_text = template.raw[other[0] : other[1]]
    return re.sub(r"\[([^\[\]]*)\]\((?:[^()]|\([^()]*\))*\)", f"[{word}]({url})", other_text, count=1)


def _leave_out_the_rest(out: _Rewrite) -> None:
    """Drop what is the neighbour's own outside the slots: lines of notes, extra links and
    images, comments, bracketed asides and any other word."""
    raw = out.raw
    # continuation lines with no slot ("Highlight: ...", "Comments: ..."), and the blank
    # lines before them
    starts = [0] + [m.end() for m in re.finditer(r"\n", raw)]
    lines = [(a, starts[k + 1] if k + 1 < len(starts) else len(raw)) for k, a in enumerate(starts)]
    for k, (a, b) in enumerate(lines):
        if k == 0 or a >= b or not raw[a:b].strip() or not out.free(a, b):
            continue
        first = k
        while first > 1 and not raw[lines[first - 1][0] : lines[first - 1][1]].strip():
            first -= 1
        out.drop(lines[first][0], b, space_before=False)
    for link in _links(raw):
        a, b = _bracketed(raw, link)
        if out.free(a, b):
            out.drop(a, b)
    for pattern in (_IMAGE, _COMMENT):
        for match in pattern.finditer(raw):
            if out.free(*match.span()):
                out.drop(*match.span())
    # bracketed asides without a slot: "(*Huawei*)", "(arXiv:2109.01134)", "(Empty)"
    masked = "".join("\0" if out.protected[i] else ("\1" if out.dropped[i] else c) for i, c in enumerate(raw))
    while True:
        found = [m for m in re.finditer(r"\((?:[^()\0\n])*\)", masked) if m.group().strip("()\1 ")]
        if not found:
            break
        for m in found:
            a, b = m.span()
            # "Title, (*UMD*). [[..": the comma goes with the aside
            before = raw[:a].rstrip(" \t")
            after = raw[b:].lstrip(" \t")
            if (
                before.endswith(",")
                and after[:1] in (".", ",", ";", "\n", "\r", "")
                and out.free(len(before) - 1, a)
            ):
                a = len(before) - 1
            out.drop(a, b)
            masked = masked[:a] + "\1" * (b - a) + masked[b:]
    # markup is layout: "<br>", "&nbsp;"
    tags = [m.span() for m in _HTML_TAG.finditer(raw)] + [m.span() for m in re.finditer(_CHAR_REF, raw)]
    for match in _CONTENT_WORD.finditer(raw):
        a, b = match.span()
        if out.free(a, b) and not any(t0 <= a < t1 for t0, t1 in tags):
            out.drop(a, b)
    # brackets whose content was all left out ("[Code(None)]", "([[Website](..)])")
    while True:
        masked = "".join(
            "\0" if out.protected[i] else ("\1" if out.dropped[i] else c) for i, c in enumerate(raw)
        )
        empty = [m.span() for m in re.finditer(r"\[[ \t\1]*\]|\([ \t\1]*\)", masked) if "\1" in m.group()]
        if not empty:
            return
        for a, b in empty:
            out.drop(a, b)


def _placeholder(doc: Document, role: str) -> str | None:
    """The list's own words for a missing link, e.g. "[No code available]"."""
    pattern = (
        r"\[(?:No paper available|Paper Not Found)\]"
        if role == "paper"
        else r"\[(?:No code available|Code Not Found|No Code Found)\]"
    )
    match = re.search(pattern, doc.render(), re.IGNORECASE)
    return match.group(0) if match else None


def _badge_text(raw: str, span: tuple[int, int], badges: list[str], doc: Document) -> str:
    """New badges in the template's badge form, each in the colour the list uses for it."""
    old = raw[span[0] : span[1]]
    matches = list(_BADGE.finditer(old))
    if not badges:
        return ""
    colours: dict[str, str] = {}
    for m in list(_BADGE.finditer(doc.render())) + matches:
        path = m.group(1).split("/badge/", 1)[1]
        colours.setdefault(decode_badge(m.group(1)).lower(), path.split("?")[0].rsplit("-", 1)[-1])
    first = matches[0].group(0)
    gap = old[matches[0].end() : matches[1].start()] if len(matches) > 1 else " "
    query = "?" + matches[0].group(1).split("?", 1)[1] if "?" in matches[0].group(1) else ""
    alt = re.match(r"!\[([^\]]*)\]", first)
    out = []
    for badge in badges:
        colour = colours.get(badge.lower(), "blue")
        encoded = quote(badge.replace("-", "--").replace("_", "__").replace(" ", "_"), safe="_-")
        url = f"https://img.shields.io/badge/{encoded}-{colour}{query}"
        # the neighbour's alt text names its badge: the new one names its own
        shown = _escape_inline(badge) if alt and alt.group(1) else ""
        out.append(f"![{shown}]({url})")
    return gap.join(out)


# --------------------------------------------------------------------------------------
# Lint


def lint(text: str) -> list[Problem]:
    """Problems a maintainer would want to fix, by line: entry-like lines that do not
    parse, the same paper twice (normalised title, or arXiv id with the same title as far as
    `names.titles_agree` tells), one arXiv link under two titles, entries with no link (in a
    list that links its papers)."""
    doc = parse(text)
    at = doc.editor_lines()  # `FILE:LINE` is for an editor
    # A list that links none of its papers (ustcjinggg's tables have no link column) is
    # written that way: flagging every one of its entries as `no-link` is noise, not a finding.
    links_papers = any(entry.paper_url or entry.code_url for entry in doc.entries)
    problems = [Problem(at[line], "unparsed", why) for line, why in doc.unparsed]
    seen_title: dict[str, ParsedEntry] = {}
    seen_arxiv: dict[str, ParsedEntry] = {}
    for entry in doc.entries:
        key = normalize.title_key(entry.title)
        first = seen_title.get(key) or (seen_arxiv.get(entry.arxiv_id) if entry.arxiv_id else None)
        if (
            first is not None
            and seen_title.get(key) is not first
            and not titles_agree(entry.title, first.title)
        ):
            problems.append(
                Problem(
                    at[entry.line],
                    "same-link",
                    f"{entry.title!r} links arXiv {entry.arxiv_id} as line {at[first.line]} does, under "
                    f"another title ({first.title!r}): one of the two links is wrong, or one paper is listed "
                    "under two titles",
                )
            )
        elif first is not None:
            why = "same title" if seen_title.get(key) is first else f"same arXiv id {entry.arxiv_id}"
            problems.append(
                Problem(at[entry.line], "duplicate", f"{entry.title!r} repeats line {at[first.line]} ({why})")
            )
        seen_title.setdefault(key, entry)
        if entry.arxiv_id:
            seen_arxiv.setdefault(entry.arxiv_id, entry)
        if links_papers and entry.paper_url is None and entry.code_url is None:
            problems.append(Problem(at[entry.line], "no-link", f"{entry.title!r} has no paper or code link"))
    return sorted(problems, key=lambda p: (p.line, p.kind))


def read_markdown(path: Path) -> str:
    """The text of a README file; a one-line UserError for a missing, binary or non-markdown file.

    `catalogue import`/`lint` and `classify replay` read their READMEs here, so that each says
    the same of the same file (replay had a reader of its own that said less).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a README file") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    refuse_wide_text(path, data[:WIDE_HEAD])
    if b"\0" in data:
        raise UserError(f"{path} is a binary file, not a markdown README")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text, so not a markdown README") from None
    doc = parse(text)
    if not doc.entries and not doc.section_paths():
        raise UserError(f"{path} does not look like a markdown list: no headings and no entries")
    return text
