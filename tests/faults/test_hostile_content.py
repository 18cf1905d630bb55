"""Hostile titles and abstracts render inert: in the README (table intact, no active links)
and in the HTML digest (escaped).

Titles come from arXiv, OpenReview and CVF pages, that is from anyone. Each hostile title
is inserted into a real list the way promotion does it (`Preset.entry_for` then
`Document.insert_entry`), and the README is then read back twice: by our own parser (the
entry is one entry, in its section, with no paper link) and by a CommonMark + GFM-tables
renderer (markdown-it), whose HTML must hold no script, no event handler and no link that
is not http(s), and whose tables keep one cell per column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import Engine

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.digest.build import Week, build_digest, render
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, PaperRow

LISTS = Path(__file__).resolve().parents[1] / "fixtures" / "lists"

HOSTILE_TITLES = [
    "Prompts | with | pipes | that | split | cells",
    "Click [here](javascript:alert(document.cookie)) for prompts",
    "[[Paper LinK](javascript:alert(1))] visual prompts",
    "![x](javascript:alert(1)) image prompt",
    "<script>alert('x')</script> Visual Prompt Tuning",
    '<img src=x onerror="alert(1)"> <a href="javascript:alert(2)">link</a> Prompting',
    "Line one\nLine two\r\n| forged | row | 2026 | x |\n## Forged heading",
    "\u202eRTL override\u202c and \u200f RLM \u2067isolate\u2069 prompts",
    "Backslash \\| escape `code` *em* _under_ ~~strike~~ prompts",
    "Long " + "prompt " * 900,
    "<https://evil.example/autolink> and www.evil.example prompts",
]
HOSTILE_URLS = ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", " JaVaScRiPt:alert(1)"]

# (list fixture, preset, labels for the placement)
STYLES = [
    (
        "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md",
        "awesome-vpt",
        ["learnable", "pixel"],
    ),
    (
        "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md",
        "generalizable-vlm",
        ["image-text"],
    ),
]


class _Tags(HTMLParser):
    """Every start tag and its attributes in an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def tags_of(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def link_targets(html: str) -> set[str]:
    return {
        v
        for _, attrs in tags_of(html).tags
        for k, v in attrs.items()
        if k in ("href", "src") and v is not None
    }


def assert_inert(html: str, known: set[str] | None = None) -> None:
    """No script, no event handler, no link or image that is not plain http(s).

    `known`: link targets the maintainers wrote themselves (a real list has an empty href).
    """
    known = known or set()
    for tag, attrs in tags_of(html).tags:
        assert tag not in ("script", "iframe", "object", "embed"), f"<{tag}> in output"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}=...> in output"
            if name in ("href", "src") and value is not None and value not in known:
                assert value.startswith(("https://", "http://", "#", "mailto:")), f"<{tag} {name}={value!r}>"


def gfm() -> MarkdownIt:
    # html=True: a raw <script> in the README would come out as a tag, exactly as on GitHub
    # before its sanitiser; the README must be inert without relying on that sanitiser.
    return MarkdownIt("commonmark", {"html": True}).enable("table")


def table_shapes(markdown: str) -> list[tuple[int, list[int]]]:
    """Per table: (header cells, cells of each body row), from the markdown-it token stream."""
    shapes: list[tuple[int, list[int]]] = []
    header = 0
    rows: list[int] = []
    cells = 0
    in_head = False
    for token in gfm().parse(markdown):
        if token.type == "table_open":
            header, rows = 0, []
        elif token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            cells = 0
        elif token.type in ("th_open", "td_open"):
            cells += 1
        elif token.type == "tr_close":
            if in_head:
                header = cells
            else:
                rows.append(cells)
        elif token.type == "table_close":
            shapes.append((header, rows))
    return shapes


@pytest.mark.parametrize(("fixture", "preset_name", "labels"), STYLES, ids=[s[1] for s in STYLES])
@pytest.mark.parametrize("title", HOSTILE_TITLES, ids=range(len(HOSTILE_TITLES)))
def test_hostile_title_renders_inert_in_the_readme(
    fixture: str, preset_name: str, labels: list[str], title: str
) -> None:
    original = (LISTS / fixture).read_text(encoding="utf-8")
    preset = load_preset(preset_name)
    document = parse(original)
    section = preset.section_for(labels, year=2026)
    assert section is not None
    before = len(document.entries)
    tables_before = table_shapes(original)

    new = preset.entry_for(title, "CVPR", 2026, HOSTILE_URLS[0], HOSTILE_URLS[1], labels)
    inserted = document.insert_entry(new, section)
    text = document.render()

    # Our parser: exactly one more entry, in its section, one line of text, no links kept.
    assert inserted.raw.count("\n") <= 2 and "\r" not in inserted.raw
    again = parse(text)
    assert len(again.entries) == before + 1
    [found] = [e for e in again.entries if e.line == inserted.line]
    assert found.section_path == section
    assert found.paper_url is None and found.code_url is None
    assert "javascript" not in text.replace("javascript&#58;", "")
    assert "data:text/html" not in text
    # No new heading was forged: the sections are the ones the list had.
    assert again.section_paths() == parse(original).section_paths()

    # A CommonMark + GFM renderer: the HTML is inert, the tables keep their shape.
    html = gfm().render(text)
    assert_inert(html, known=link_targets(gfm().render(original)))
    tables_after = table_shapes(text)
    assert len(tables_after) == len(tables_before)
    grown = [(b, a) for b, a in zip(tables_before, tables_after, strict=True) if b != a]
    if inserted.kind == "table-row":
        [(old, new_shape)] = grown
        assert new_shape[0] == old[0] and len(new_shape[1]) == len(old[1]) + 1
        assert all(cells == new_shape[0] for cells in new_shape[1]), "a row has the wrong number of cells"
    else:
        assert grown == []
    # The words of the title are still there as text, not swallowed by markup.
    visible = " ".join("".join(tags_of(html).text).split())
    first_word = next(word for word in title.split() if word.isalpha() and len(word) > 3)
    assert first_word in visible


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_link_targets_never_become_links(url: str) -> None:
    preset = load_preset("awesome-vpt")
    original = (LISTS / STYLES[0][0]).read_text(encoding="utf-8")
    document = parse(original)
    section = preset.section_for(["learnable", "token"])
    assert section is not None
    document.insert_entry(
        preset.entry_for("Plain Prompt Title", "ICCV", 2025, url, url, ["learnable"]), section
    )
    assert_inert(gfm().render(document.render()), known=link_targets(gfm().render(original)))


# --------------------------------------------------------------------------- digest

WEEK = Week(2026, 47)
IN_WEEK = datetime(2026, 11, 18, 7, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _seed_hostile(engine: Engine, pdf_url: str | None = None) -> None:
    with transaction(engine) as session:
        catalogue = CatalogueRow(name="awesome-vpt", preset="awesome-vpt", source_text="", source_sha256="0")
        session.add(catalogue)
        session.flush()
        for number, title in enumerate(HOSTILE_TITLES):
            paper = PaperRow(
                title=title,
                title_key=f"hostile {number}",
                abstract=title,
                venue="<b>CVPR</b>",
                year=2026,
                pdf_url=pdf_url,
            )
            session.add(paper)
            session.flush()
            session.add(
                CandidateRow(
                    paper_id=paper.id,
                    catalogue_id=catalogue.id,
                    relevance=0.9 - number / 100,
                    proposed_labels=[f"group-{number}"],  # one per group: all are shown
                    created_at=IN_WEEK,
                )
            )


def test_hostile_titles_are_escaped_in_the_html_digest(engine: Engine) -> None:
    _seed_hostile(engine)
    text, html = render(build_digest(engine, WEEK, now=NOW))
    assert_inert(html)
    assert "<script>" not in html and "<img" not in html and "<b>CVPR" not in html
    visible = " ".join("".join(tags_of(html).text).split())
    for title in HOSTILE_TITLES:
        # Escaped, not dropped: a reader sees the title as it was sent (whitespace folded).
        assert " ".join(title.split())[:200] in visible
    assert HOSTILE_TITLES[4] in text  # the text part is plain text: shown as is


def test_hostile_pdf_url_is_not_an_active_link_in_the_digest(engine: Engine) -> None:
    _seed_hostile(engine, pdf_url="javascript:alert(1)")
    _, html = render(build_digest(engine, WEEK, now=NOW))
    assert_inert(html)
