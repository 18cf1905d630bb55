# ruff: noqa: E501  (expected values are verbatim README lines)
"""The markdown layer on the real lists: lossless round trip, sections, edits, lint."""

from __future__ import annotations

import difflib
import html as pyhtml
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from vpt_tracker.catalogue.markdown import Document, NewEntry, ParsedEntry, _render_like, lint, parse
from vpt_tracker.errors import UserError

LISTS = Path(__file__).parents[1] / "fixtures" / "lists"
ALL = sorted(p.name for p in LISTS.glob("*README*.md"))
STELLAR = "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
VPT = "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
PA = "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md"
ZHENG = "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md"
SYNBOL = "synbol__Awesome-Parameter-Efficient-Transfer-Learning__README.md"
TTENG = "ttengwang__Awesome_Prompting_Papers_in_Computer_Vision__README.md"
JIANG = "jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md"


def read(name: str) -> str:
    return (LISTS / name).read_text(encoding="utf-8")


def added_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """(added, removed) lines of the unified diff."""
    diff = list(difflib.unified_diff(old.splitlines(True), new.splitlines(True), n=0))
    added = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]
    removed = [d[1:] for d in diff if d.startswith("-") and not d.startswith("---")]
    return added, removed


@pytest.mark.parametrize("name", ALL)
def test_round_trip_is_byte_identical(name: str) -> None:
    text = read(name)
    doc = parse(text)
    assert doc.render() == text
    assert len(doc.entries) >= 14


def test_entry_counts_match_sources_md() -> None:
    counts = {name: len(parse(read(name)).entries) for name in ALL}
    assert counts[STELLAR] == 34  # 8 in 2026 + 26 in 2025
    assert counts["jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md"] == 84
    assert counts["JindongGu__Awesome-Prompting-on-Vision-Language-Model__README.md"] == 127
    assert counts["ustcjinggg__Awesome-PEFT-VLM__README.md"] == 18
    assert counts[PA] == 16  # 12 papers + 4 surveys; the domain/paradigm prose tables are not entries


def test_non_paper_tables_are_not_entries() -> None:
    doc = parse(read(ZHENG))
    # the base-to-novel results table (rows like "| CoOp | [Link](..) | IJCV 22 |") is not an entry
    assert not [e for e in doc.entries if e.kind == "table-row"]
    synbol = parse(read(SYNBOL))
    assert not [e for e in synbol.entries if e.title in ("FGVC", "VTAB-1k")]


def test_placeholder_rows_and_duplicate_rows() -> None:
    doc = parse(read(VPT))
    # empty "|   |   |" rows are no entries; the duplicated row is two entries
    assert all(e.title for e in doc.entries)
    dupes = [e for e in doc.entries if e.title == "Exploring Visual Prompts for Adapting Large-Scale Models"]
    assert [e.line for e in dupes] == [78, 79]


def test_ragged_row_is_realigned_on_its_year() -> None:
    doc = parse(read(PA))
    ot = next(e for e in doc.entries if e.title == "OT-VP")
    assert (ot.venue, ot.year, ot.cells["Type"], ot.cells["Notes"]) == (
        None,
        2025,
        "Learnable",
        "Optimal transport alignment",
    )


def test_commented_out_entry_is_skipped() -> None:
    doc = parse(read(ZHENG))
    assert not [e for e in doc.entries if e.short_name == "RAIL" and e.line == 390]


def test_insert_generalizable_entry_diff_is_exactly_the_new_lines() -> None:
    old = read(STELLAR)
    doc = parse(old)
    new = NewEntry(
        "FooPL: Prompting Foo", "CVPR", 2025, "https://arxiv.org/abs/2501.00001", None, "FooPL", ["Text"]
    )
    entry = doc.insert_entry(new, ["Published in 2025"])
    added, removed = added_lines(old, doc.render())
    assert removed == []
    assert added == [
        "- `FooPL` **FooPL: Prompting Foo**    CVPR 2025.   \n",
        "[[Paper Link](https://arxiv.org/abs/2501.00001)] [No code available]"
        "![](https://img.shields.io/badge/Text-green)\n",
    ]
    # after the last CVPR entry of the year section (the list groups by venue)
    assert doc.entries[entry.index - 1].short_name == "TAC"
    assert (entry.title, entry.venue, entry.year, entry.badges) == (
        "FooPL: Prompting Foo",
        "CVPR",
        2025,
        ["Text"],
    )
    assert parse(doc.render()).render() == doc.render()


# Venues of more than one word, as the sources give them and as our renderer writes them.
MULTI_WORD_VENUES = ["CVPR Workshops", "Pattern Recognition", "ICLR (Oral)", "Proc. IEEE", "ACM MM"]


@pytest.mark.parametrize("venue", MULTI_WORD_VENUES)
@pytest.mark.parametrize("title_end", ["**    ", ".** "])  # generalizable, zhengli97
def test_short_name_bullet_reads_the_whole_venue_before_the_year(venue: str, title_end: str) -> None:
    """The text between the title's closing `**` and the year is the venue: the word-shaped
    venue pattern read "CVPR Workshops 2025." as "Workshops", "Pattern Recognition" as
    "Recognition" and "ICLR (Oral)" as no venue, so a promoted paper read back as a preprint."""
    text = (
        "# L\n## Published in 2025\n"
        f"- `Foo` **Foo: A Title{title_end}{venue} 2025.   \n"
        "[[Paper](https://arxiv.org/abs/2501.00001)] [[Code](https://github.com/a/b)]\n"
    )
    entry = parse(text).entries[0]
    assert (entry.title, entry.venue, entry.year) == ("Foo: A Title", venue, 2025)
    a, b = entry.spans["venue"]
    assert entry.raw[a:b] == venue


def test_short_name_bullet_keeps_the_general_rule_when_more_follows_the_year() -> None:
    # a year glued to the venue, and more than a venue's words after the year, stay as they
    # were (zhengli97's "EMNLP 2023 Findings." is "EMNLP Findings": see below)
    lines = {
        "- `A` **A.** EMNLP 2023 Findings of the ACL, long paper.  ": ("EMNLP", 2023),
        "- `F` **F.** EMNLP 2023 Oral, Spotlight.  ": ("EMNLP", 2023),
        "- `G` **G.** EMNLP 2023 Findings2.  ": ("EMNLP", 2023),
        "- `B` **B**    CVPR2025.  ": ("CVPR", 2025),
        "- `C` **C.** 2023.  ": (None, 2023),
        "- `D` **D.** arXiv:2203.17274.  ": ("arXiv", 2022),
        "- `E` **E**    ICCV'23.  ": ("ICCV", 2023),
    }
    for line, expected in lines.items():
        entry = parse(f"# L\n{line}\n[[Paper](https://arxiv.org/abs/2501.00001)]\n").entries[0]
        assert (entry.venue, entry.year) == expected, line


def test_the_words_after_a_venues_year_are_the_venues_too() -> None:
    """zhengli97 lists Spotlighter as "EMNLP 2025 Findings.": it read as "EMNLP" (a Findings
    paper taken for a main-conference one), an upgrade wrote "TPAMI 2026 Findings.", and a new
    entry in its style "CVPR 2026 Findings."."""
    old = read(ZHENG)
    doc = parse(old)
    [entry] = [e for e in doc.entries if e.short_name == "Spotlighter"]
    assert (
        entry.raw.startswith("- `Spotlighter` **Spotlighter: Revisiting")
        and " EMNLP 2025 Findings.  \n" in entry.raw
    )
    assert (entry.venue, entry.year) == ("EMNLP Findings", 2025)
    a, b = entry.spans["venue"]
    assert entry.spans["year"] == (a, b) and entry.raw[a:b] == "EMNLP 2025 Findings"
    new = NewEntry("Prompting Foo", "CVPR", 2026, PAPER, CODE, "Foo")
    assert _render_like(entry, new, doc).startswith("- `Foo` **Prompting Foo.** CVPR 2026.  \n")
    updated = doc.update_entry(entry.index, venue="TPAMI", year=2026)
    assert updated.raw == entry.raw.replace("EMNLP 2025 Findings.", "TPAMI 2026.")
    assert (updated.venue, updated.year) == ("TPAMI", 2026)


def test_a_bwlong_title_line_with_words_after_its_year_has_a_venue_and_year() -> None:
    """`* **MaPLe**: Title, CVPR, 2023, Oral (*Lab*).` was read as all title, with no venue or
    year; the words after the year are the venue's, as `(CVPR 2023, Oral)` is `CVPR Oral`."""
    old = (
        "# L\n* **MaPLe**: MaPLe: Multi-modal Prompt Learning, CVPR, 2023, Oral (*MBZUAI*)."
        " [[Paper](https://arxiv.org/abs/2210.03117)]\n"
    )
    doc = parse(old)
    [entry] = doc.entries
    assert entry.style == "bwlong" and entry.short_name == "MaPLe"
    assert (entry.title, entry.venue, entry.year) == ("MaPLe: Multi-modal Prompt Learning", "CVPR Oral", 2023)
    a, b = entry.spans["venue"]
    assert entry.spans["year"] == (a, b) and entry.raw[a:b] == "CVPR, 2023, Oral"
    assert doc.render() == old
    updated = doc.update_entry(entry.index, venue="TPAMI", year=2026)
    assert updated.raw == entry.raw.replace("CVPR, 2023, Oral", "TPAMI 2026")
    assert (updated.title, updated.venue, updated.year) == (
        "MaPLe: Multi-modal Prompt Learning",
        "TPAMI",
        2026,
    )
    # without its colon too; a plain aside may follow the words; and no venue, no tail
    oscar = parse(
        "# L\n* **Oscar** Frozen Language Models, Nips, 2021, Spotlight (DeepMind). [[paper](https://x.org/2)]\n"
    ).entries[0]
    assert (oscar.short_name, oscar.title, oscar.venue, oscar.year) == (
        "Oscar", "Frozen Language Models", "Nips Spotlight", 2021,
    )  # fmt: skip
    bare = parse("# L\n* **X**: Title, 2023, Oral (*Lab*). [[Paper](https://x.org/1)]\n").entries[0]
    assert (bare.title, bare.venue, bare.year) == ("Title, 2023, Oral", None, None)


@pytest.mark.parametrize("venue", MULTI_WORD_VENUES)
def test_insert_and_upgrade_generalizable_entry_with_a_multi_word_venue(venue: str) -> None:
    """What we write is what we read back: an inserted entry, and an upgrade of it (the
    upgrade replaced only "Workshops" of "CVPR Workshops 2025.", giving "CVPR TPAMI 2026.")."""
    doc = parse(read(STELLAR))
    new = NewEntry("FooPL: Prompting Foo", venue, 2025, "https://arxiv.org/abs/2501.00001", None, "FooPL")
    entry = doc.insert_entry(new, ["Published in 2025"])
    assert entry.raw.startswith(f"- `FooPL` **FooPL: Prompting Foo**    {venue} 2025.   \n")
    again = next(e for e in parse(doc.render()).entries if e.short_name == "FooPL")
    assert (again.venue, again.year) == (venue, 2025)
    updated = doc.update_entry(entry.index, venue="TPAMI", year=2026)
    assert updated.raw.startswith("- `FooPL` **FooPL: Prompting Foo**    TPAMI 2026.   \n")
    assert (updated.venue, updated.year) == ("TPAMI", 2026)


def test_insert_vpt_table_row_in_year_order() -> None:
    old = read(VPT)
    doc = parse(old)
    new = NewEntry("Foo Prompt", "ICLR", 2024, "https://arxiv.org/abs/2401.00002", "https://github.com/x/y")
    entry = doc.insert_entry(new, ["Core Methodologies", "1. Learnable Visual Prompts", "Token-Level"])
    added, removed = added_lines(old, doc.render())
    assert removed == []
    assert added == [
        "| [Foo Prompt](https://arxiv.org/abs/2401.00002) | ICLR | 2024 | [Github](https://github.com/x/y) |\n"
    ]
    # the Token-Level table ascends by year: after the last 2024 row, before the 2025 rows
    assert doc.entries[entry.index - 1].year == 2024 and doc.entries[entry.index + 1].year == 2025


def test_insert_into_empty_placeholder_table() -> None:
    old = read(VPT)
    doc = parse(old)
    doc.insert_entry(NewEntry("Fair Prompts", "ICML", 2024, "https://arxiv.org/abs/2402.1"), ["Fairness"])
    added, removed = added_lines(old, doc.render())
    assert removed == []
    assert added == ["| [Fair Prompts](https://arxiv.org/abs/2402.1) | ICML | 2024 | - |\n"]


def test_insert_prompt_adaptation_row_with_type_cell() -> None:
    old = read(PA)
    doc = parse(old)
    new = NewEntry(
        "NewVP", "ICCV", 2025, "https://arxiv.org/abs/2507.00001", cells={"Type": "Learnable", "Notes": "n"}
    )
    entry = doc.insert_entry(new, ["Unified Taxonomy", "Visual Prompting (VP)"])
    added, removed = added_lines(old, doc.render())
    assert removed == []
    assert added == ["| [NewVP](https://arxiv.org/abs/2507.00001) | ICCV | 2025 | Learnable | n |\n"]
    assert entry.cells == {"Venue": "ICCV", "Year": "2025", "Type": "Learnable", "Notes": "n"}


def test_a_table_that_names_papers_gets_the_new_papers_name() -> None:
    """The VPT table lists "VPT", "E2VPT", "LPT"; the VP table keeps whole titles for half of
    its rows, so a new row there is written with its title."""
    title = "LoGoPrompt: Synthetic Text Images Can Be Good Visual Prompts for Vision-Language Models"
    url = "https://arxiv.org/abs/2309.01155"
    for section, shown in (("Visual Prompt Tuning (VPT)", "LoGoPrompt"), ("Visual Prompting (VP)", title)):
        old = read(PA)
        doc = parse(old)
        new = NewEntry(title, "ICCV", 2023, url, short_name="LoGoPrompt", cells={"Type": "Learnable"})
        entry = doc.insert_entry(new, ["Unified Taxonomy", section])
        added, _ = added_lines(old, doc.render())
        assert added == [f"| [{shown}]({url}) | ICCV | 2023 | Learnable |  |\n"]
        assert entry.title == shown
    # Without a name, the whole title, even there.
    doc = parse(read(PA))
    entry = doc.insert_entry(
        NewEntry(title, "ICCV", 2023, url), ["Unified Taxonomy", "Visual Prompt Tuning (VPT)"]
    )
    assert entry.title == title


def test_insert_zhengli_and_synbol_and_ttengwang_styles() -> None:
    old = read(ZHENG)
    doc = parse(old)
    new = NewEntry(
        "Zed", "ICCV", 2025, "https://arxiv.org/abs/2501.3", "https://github.com/a/b", "Zed", ["Image-Text"]
    )
    doc.insert_entry(new, ["General Prompt Learning", "Paper List", "2025"])
    added, _ = added_lines(old, doc.render())
    assert added == [
        "- `Zed` **Zed.** ICCV 2025.   \n",
        "[[Paper](https://arxiv.org/abs/2501.3)] [[Code](https://github.com/a/b)] "
        "![](https://img.shields.io/badge/Image--Text-blue)   \n",
    ]
    old = read(SYNBOL)
    doc = parse(old)
    doc.insert_entry(
        NewEntry("Zed", "ICCV", 2025, "https://arxiv.org/abs/2501.3", authors=["A. B"]), ["Prompt Tuning"]
    )
    added, removed = added_lines(old, doc.render())
    assert removed == []
    assert added[0] == "- **[28] Zed,** ICCV 2025.\n"  # the Prompt Tuning section numbers up to 27
    assert "  *A. B.*\n" in added  # never the neighbour's authors
    old = read(TTENG)
    doc = parse(old)
    doc.insert_entry(
        NewEntry("Zed", "ICCV", 2025, "https://arxiv.org/abs/2501.3", "https://github.com/a/b"),
        ["Vision Prompt"],
    )
    added, removed = added_lines(old, doc.render())
    assert removed == []
    assert added[0] == "- Zed [[paper]](https://arxiv.org/abs/2501.3) [[code]](https://github.com/a/b)\n"
    assert any(line.strip().startswith("`ICCV 2025`") for line in added)


def test_untrusted_title_is_escaped_and_unsafe_links_dropped() -> None:
    old = read(VPT)
    doc = parse(old)
    new = NewEntry("Evil | [x](javascript:alert(1)) <script>\nnext", "ICLR", 2024, "javascript:alert(1)")
    entry = doc.insert_entry(new, ["Fairness"])
    added, _ = added_lines(old, doc.render())
    row = added[0]
    assert "<script>" not in row and "javascript:" not in row and "\n" not in row[:-1]
    assert row.count(" | ") == 3  # four cells: the title's pipe is escaped, not a new cell
    assert entry.paper_url is None
    assert entry.title.startswith("Evil | [x]")


def test_unknown_section_raises_user_error() -> None:
    doc = parse(read(STELLAR))
    with pytest.raises(UserError, match="no section 'Workshops'"):
        doc.insert_entry(NewEntry("X"), ["Workshops"])


def test_update_entry_changes_only_venue_and_year() -> None:
    old = read(STELLAR)
    doc = parse(old)
    index = next(e.index for e in doc.entries if e.short_name == "Promise")
    entry = doc.update_entry(index, venue="TPAMI", year=2027)
    added, removed = added_lines(old, doc.render())
    assert removed == [
        "- `Promise` **PROMISE: Prompt-Robust Vision-Language Models Via Meta-Finetuning**    ICLR 2026.     \n"
    ]
    assert added == [
        "- `Promise` **PROMISE: Prompt-Robust Vision-Language Models Via Meta-Finetuning**    TPAMI 2027.     \n"
    ]
    assert (entry.venue, entry.year) == ("TPAMI", 2027)
    vpt = parse(read(VPT))
    row = next(e for e in vpt.entries if e.venue == "arXiv" and e.year == 2025)
    updated = vpt.update_entry(row.index, venue="CVPR", year=None)
    assert updated.raw == row.raw.replace("| arXiv |", "| CVPR |")


BWLONG = "BWLONG__Awesome-Prompt-Learning-CV__README.md"


def test_update_entry_rewrites_a_venue_shown_as_the_paper_links_text() -> None:
    # BWLONG shows a preprint as `[[arXiv 2307](..)]` and a published paper as
    # `[[CVPR 2023](..)]`. The upgrade said "no venue text to update" for every one of its
    # preprints, so none of them could become "ICCV 2023".
    old = read(BWLONG)
    doc = parse(old)
    entry = next(e for e in doc.entries if e.short_name == "PromptSRC")
    assert (entry.venue, entry.year) == ("arXiv", 2023)
    updated = doc.update_entry(entry.index, venue="ICCV", year=2023)
    added, removed = added_lines(old, doc.render())
    assert removed == [entry.raw]
    assert added == [entry.raw.replace("[[arXiv 2307](", "[[ICCV 2023](")]
    assert (updated.venue, updated.year, updated.title) == ("ICCV", 2023, entry.title)
    assert (updated.paper_url, updated.code_url) == (entry.paper_url, entry.code_url)

    in_link = re.compile(r"\[arxiv \d{4}\]\(", re.IGNORECASE)
    preprints = [
        e for e in parse(old).entries if (e.venue or "").lower() == "arxiv" and in_link.search(e.raw)
    ]
    assert len(preprints) >= 100
    for entry in preprints:  # every one, "[[arxiv 2111](..)]" and "[arXiv 2309](..)]" too
        doc = parse(old)
        updated = doc.update_entry(entry.index, venue="CVPR", year=2025)
        expected = in_link.sub("[CVPR 2025](", entry.raw, count=1)
        assert updated.raw == expected != entry.raw, entry.line
        lines, before = doc.render().splitlines(True), old.splitlines(True)
        first, last = entry.line - 1, entry.line - 1 + entry.line_count
        assert lines[:first] + lines[last:] == before[:first] + before[last:], entry.line
        assert (updated.venue, updated.year, updated.paper_url) == ("CVPR", 2025, entry.paper_url)


def test_update_entry_gives_a_row_without_a_venue_cell_one() -> None:
    # prompt-adaptation's "| [OT-VP](..) | 2025 | Learnable | .. |" has no Venue cell. Every
    # upgrade of it failed ("no venue text to update"), so an accepted OT-VP stayed unpublished.
    old = read(PA)
    doc = parse(old)
    row = next(e for e in doc.entries if e.title == "OT-VP")
    assert (row.venue, row.year, row.cells["Type"]) == (None, 2025, "Learnable")
    updated = doc.update_entry(row.index, venue="WACV", year=2025)
    assert updated.raw == row.raw.replace("| 2025 |", "| WACV | 2025 |")
    added, removed = added_lines(old, doc.render())
    assert (removed, added) == ([row.raw], [updated.raw])
    assert (updated.venue, updated.year, updated.cells) == ("WACV", 2025, {**row.cells, "Venue": "WACV"})


def test_update_entry_fills_an_empty_venue_and_year_cell() -> None:
    # awesome-vpt's Related Surveys rows leave Venue and Year blank ("| [A Systematic Survey
    # ..](..)      |       |      |    [Code](..) |"). Every upgrade of them failed with "no
    # venue text to update", at each publish, and an accepted upgrade was never published.
    old = read(VPT)
    doc = parse(old)
    row = next(e for e in doc.entries if e.title.startswith("A Systematic Survey of Prompt Engineering"))
    assert (row.venue, row.year) == (None, None)
    updated = doc.update_entry(row.index, venue="IJCV", year=2025)
    # the blank cells keep their width where the text fits, as the table's other rows do
    assert updated.raw == row.raw.replace(")      |       |      |", ")      | IJCV  | 2025 |", 1)
    added, removed = added_lines(old, doc.render())
    assert (removed, added) == ([row.raw], [updated.raw])
    assert (updated.venue, updated.year, updated.paper_url) == ("IJCV", 2025, row.paper_url)


JINDONG = "JindongGu__Awesome-Prompting-on-Vision-Language-Model__README.md"


def test_update_entry_keeps_the_width_of_a_padded_column() -> None:
    """JindongGu pads its Venue column ("| ICML        | 2021 |"): an upgrade kept the old
    padding after the new text, "| TPAMI        | 2026 |", one space too wide, and every later
    cell of the row moved. A list that does not pad ("| arXiv |" gives "| CVPR |") is as it was."""
    old = read(JINDONG)
    doc = parse(old)
    row = next(e for e in doc.entries if "| ICML        | 2021 |" in e.raw)
    updated = doc.update_entry(row.index, venue="TPAMI", year=2026)
    assert updated.raw == row.raw.replace("| ICML        | 2021 |", "| TPAMI       | 2026 |")
    assert added_lines(old, doc.render()) == ([updated.raw], [row.raw])
    # a cell that fills the column (its one trailing space) keeps the width too; a longer
    # venue takes what it needs
    blog = next(e for e in parse(old).entries if "| OpenAI Blog | 2019 |" in e.raw)
    assert parse(old).update_entry(blog.index, venue="ICML", year=2026).raw == blog.raw.replace(
        "| OpenAI Blog | 2019 |", "| ICML        | 2026 |"
    )
    wide = parse(old).update_entry(row.index, venue="NeurIPS Workshop", year=2026)
    assert wide.raw == row.raw.replace("| ICML        | 2021 |", "| NeurIPS Workshop | 2026 |")
    rows = [e for e in parse(old).entries if e.kind == "table-row" and "venue" in e.spans]
    assert len(rows) >= 120
    for entry in rows:  # every row of the list: only the venue and year text change
        upgraded = parse(old).update_entry(entry.index, venue="CVPR", year=2026)
        assert len(upgraded.raw) == len(entry.raw) and upgraded.venue == "CVPR", entry.line
    unpadded = parse(read(VPT))
    row = next(e for e in unpadded.entries if e.venue == "arXiv" and e.year == 2025)
    assert unpadded.update_entry(row.index, venue="CVPR", year=None).raw == row.raw.replace(
        "| arXiv |", "| CVPR |"
    )


def test_update_entry_fills_a_blank_venue_cell_of_a_table_without_a_year_column() -> None:
    text = "## S\n| Title | Venue | Code |\n|---|---|---|\n| [P](https://arxiv.org/abs/2301.00001) |  | - |\n"
    doc = parse(text)
    updated = doc.update_entry(0, venue="CVPR", year=2025)
    assert updated.raw == "| [P](https://arxiv.org/abs/2301.00001) | CVPR 2025 | - |\n"
    assert (updated.venue, updated.year) == ("CVPR", 2025)


def test_lint_reports_duplicates_unparsed_and_linkless() -> None:
    problems = lint(read(VPT))
    dupes = [p for p in problems if p.kind == "duplicate"]
    assert (79, "duplicate") in [(p.line, p.kind) for p in dupes]
    assert "repeats line 78" in next(p.message for p in dupes if p.line == 79)
    text = "# L\n## S\n- **A paper** [[Paper](https://arxiv.org/abs/2301.00001)]\n- `X` **Broken** ![](https://img.shields.io/badge/Text-green)\n| Title | Venue | Year |\n|---|---|---|\n| A paper | ICML | 2023 |\n"
    problems = lint(text)
    kinds = {(p.line, p.kind) for p in problems}
    assert (4, "unparsed") in kinds
    assert (7, "duplicate") in kinds and (7, "no-link") in kinds
    assert lint("# Clean\n- **A** (ICML, 2023) [[paper](https://arxiv.org/abs/2301.1)]\n") == []


def test_lint_tells_a_shared_link_from_a_duplicate() -> None:
    # zhengli97 links CoOp to CoCoOp's arXiv page. `check` said CoCoOp "repeats line 110
    # (same arXiv id)": a maintainer deleting the "duplicate" would delete CoCoOp, and keep
    # the wrong link.
    problems = {p.line: p for p in lint(read(ZHENG))}
    assert problems[112].kind == "same-link"
    assert problems[112].message == (
        "'Conditional Prompt Learning for Vision-Language Models' links arXiv 2203.05557 as line 110 "
        "does, under another title ('Learning to Prompt for Vision-Language Models'): "
        "one of the two links is wrong, or one paper is listed under two titles"
    )
    assert (problems[266].kind, problems[266].message.endswith("(same title)")) == ("duplicate", True)
    bwlong = {p.line: p.kind for p in lint(read(BWLONG))}
    # line 149 is line 58's DPT with a shorter title; line 150 is CAVPT, linked to DPT
    assert (bwlong[149], bwlong[150], bwlong[41]) == ("duplicate", "same-link", "duplicate")


# Small synthetic lists (written here, not copied from a real README) for orders and edge cases.
SYNTHETIC_DESCENDING = (
    "# L\n## Other\n"
    "- **A** (CVPR, 2024) [[paper](https://a.org/abs/3)]\n"
    "- **Z** (CVPR, 2021) [[paper](https://a.org/abs/4)]\n"
)


def test_insert_in_descending_year_order() -> None:
    doc = parse(SYNTHETIC_DESCENDING)
    entry = doc.insert_entry(NewEntry("N", "ICLR", 2022, "https://x.org/1"), ["Other"])
    assert entry.line == 4
    assert doc.render().splitlines()[3] == "- **N** (ICLR, 2022) [[paper](https://x.org/1)]"
    assert [e.year for e in doc.entries] == [2024, 2022, 2021]


def test_update_arxiv_only_entry_rewrites_the_arxiv_text() -> None:
    old = read("jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md")
    doc = parse(old)
    entry = next(e for e in doc.entries if e.title.startswith("Exploring Visual Prompts"))
    assert (entry.venue, entry.year) == ("arXiv", 2022)
    updated = doc.update_entry(entry.index, venue="CVPR", year=2023)
    # The list writes a published paper as "ECCV 2022 (arXiv:2203.12119)": the upgrade kept
    # only "CVPR 2023." and lost the arXiv id that the line showed.
    assert updated.raw == entry.raw.replace("arXiv:2203.17274.", "CVPR 2023 (arXiv:2203.17274).")
    assert "- **Visual Prompt Tuning,** ECCV 2022 (arXiv:2203.12119)." in old
    assert (updated.venue, updated.year, updated.arxiv_id) == ("CVPR", 2023, "2203.17274")
    dapl = next(e for e in parse(old).entries if e.title == "Domain Adaptation via Prompt Learning")
    doc = parse(old)
    updated = doc.update_entry(dapl.index, venue="TNNLS", year=2023)
    assert updated.raw == dapl.raw.replace("arXiv:\tarXiv:2202.06687.", "TNNLS 2023 (arXiv:2202.06687).")
    with pytest.raises(UserError, match="give the venue with the year"):
        parse(old).update_entry(entry.index, venue=None, year=2023)


def test_lint_flags_paper_table_row_without_title() -> None:
    text = "# L\n| Title | Venue | Year |\n|---|---|---|\n|  | CVPR | 2023 |\n|   |   |   |\n"
    assert [(p.line, p.kind) for p in lint(text)] == [(4, "unparsed")]


@pytest.mark.shared
def test_fixture_lists_are_byte_copies_of_the_shared_data(shared_dir: Path) -> None:
    source = shared_dir / "data" / "lists"
    names = sorted(p.name for p in source.iterdir())
    assert names == sorted(p.name for p in LISTS.iterdir() if p.name != "README.md")
    for name in names:
        assert (LISTS / name).read_bytes() == (source / name).read_bytes(), name


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def lone_line_endings(text: str) -> int:
    """Line endings that are not CRLF (a bare LF or a bare CR)."""
    return text.replace("\r\n", "").count("\n") + text.replace("\r\n", "").count("\r")


@pytest.mark.parametrize("name", ALL)
def test_a_crlf_list_parses_like_its_lf_copy_and_new_entries_get_crlf(name: str) -> None:
    """Windows line endings: the same entries with no `\\r` in any field, and a new entry
    gives exactly the LF copy's edit with CRLF line endings."""
    lf_doc, crlf_doc = parse(read(name)), parse(crlf(read(name)))
    assert crlf_doc.render() == crlf(read(name))
    assert crlf_doc.section_paths() == lf_doc.section_paths()
    fields = ("title", "short_name", "venue", "year", "paper_url", "code_url", "arxiv_id", "badges", "cells")
    for lf_entry, crlf_entry in zip(lf_doc.entries, crlf_doc.entries, strict=True):
        values = [getattr(crlf_entry, f) for f in fields]
        assert values == [getattr(lf_entry, f) for f in fields]
        assert "\r" not in repr(values) + repr(crlf_entry.section_path)
    middle = lf_doc.entries[len(lf_doc.entries) // 2]
    new = NewEntry(
        "Zed: A New Paper",
        "ICCV",
        2025,
        "https://arxiv.org/abs/2501.3",
        "https://github.com/a/b",
        "Zed",
        ["Text"],
        authors=["A. B"],
    )
    lf_doc.insert_entry(new, middle.section_path)
    crlf_doc.insert_entry(new, middle.section_path)
    assert crlf_doc.render() == crlf(lf_doc.render())
    assert lone_line_endings(crlf_doc.render()) == 0


def test_crlf_survives_an_entry_after_an_unterminated_last_line_and_a_new_year_section() -> None:
    text = crlf(SYNTHETIC_DESCENDING).removesuffix("\r\n")  # the last line has no line ending
    doc = parse(text)
    doc.insert_entry(NewEntry("N", "ICLR", 2020, "https://x.org/1"), ["Other"])
    assert doc.render() == text + "\r\n- **N** (ICLR, 2020) [[paper](https://x.org/1)]\r\n"
    old = crlf(read(STELLAR))
    doc = parse(old)
    entry = doc.insert_entry(
        NewEntry("FooPL: Prompting Foo", "CVPR", 2027, "https://arxiv.org/abs/2701.00001", None, "FooPL"),
        ["Published in 2027"],
    )
    assert entry.section_path[-1] == "Published in 2027" and entry.title == "FooPL: Prompting Foo"
    added, removed = added_lines(old, doc.render())
    assert removed == [] and len(added) == 5  # contents line, blank line, heading, the entry's two lines
    assert all(line.endswith("\r\n") for line in added)
    assert lone_line_endings(doc.render()) == 0


# Titles as the sources give them, with every character markdown gives a meaning to.
TRICKY_TITLES = [
    "A [Bracketed] Title",
    "[CLS] Tokens Are All You Need",
    "Ends With a Bracket ]",
    "Pipes | In | Titles",
    "Stars *and* _Underscores_ and `Code`",
    "Bold ** and __ Marks",
    "Less <Than> & More &amp; an Entity",
    "Back\\slash, \\[ and \\* Escapes",
    "Prompt (P) [v2]: a_b ~x~ #3",
    "Prompts, Adapters, etc.",
]
PAPER, CODE = "https://arxiv.org/abs/2501.30001", "https://github.com/a/b"


def _visible(html: str) -> str:
    """The text a reader sees in rendered HTML."""
    return " ".join(pyhtml.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _rendered_entry(name: str, title: str) -> tuple[ParsedEntry, ParsedEntry, str]:
    """`title` inserted next to the middle entry of list `name`: the inserted entry, the
    entry parsed back from the new README, and the HTML of the entry (a row with its table
    header) as a CommonMark + GFM renderer shows it."""
    doc = parse(read(name))
    before = len(doc.entries)
    middle = doc.entries[before // 2]
    entry = doc.insert_entry(NewEntry(title, "ICCV", 2025, PAPER, CODE), middle.section_path)
    again = parse(doc.render())
    assert len(again.entries) == before + 1, title
    [found] = [e for e in again.entries if e.line == entry.line]
    markdown = found.raw
    if found.kind == "table-row":
        lines = doc.render().splitlines()
        align = next(i for i in range(entry.line - 1, -1, -1) if re.match(r"^\s*\|?\s*:?-{2,}", lines[i]))
        markdown = "\n".join([lines[align - 1], lines[align], lines[entry.line - 1]]) + "\n"
    return entry, found, MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def _tags(html: str) -> list[str]:
    return sorted(re.findall(r"<([a-z][a-z0-9]*)", html))


@pytest.mark.parametrize("name", ALL)
def test_titles_with_markdown_characters_are_escaped_and_parse_back(name: str) -> None:
    """Every style: a title with markdown's characters adds no markup (no link, emphasis,
    code span, tag or table cell of its own), shows as itself, and parses back unchanged."""
    _, plain, plain_html = _rendered_entry(name, "Plain Title Words")
    for title in TRICKY_TITLES:
        entry, found, html = _rendered_entry(name, title)
        assert entry.title == title
        assert (found.title, found.paper_url, found.code_url) == (title, PAPER, plain.code_url), found.raw
        assert _tags(html) == _tags(plain_html), found.raw
        assert title in _visible(html), found.raw
        if found.kind == "table-row":
            link = re.search(rf'<a href="{re.escape(PAPER)}">(.*?)</a>', html)
            assert link is not None and _visible(link.group(1)) == title, html


def test_existing_entries_with_escaped_brackets_parse_to_the_plain_title() -> None:
    text = (
        "# L\n## Tables\n| Title | Venue | Year |\n|---|---|---|\n"
        "| [Prompting \\[CLS\\] Tokens \\]](https://arxiv.org/abs/2301.1) | CVPR | 2023 |\n"
        "## Bullets\n"
        "- `Pct` **Prompting \\[CLS\\] \\*Tokens\\***    ICCV 2023.   \n"
        "[[Paper Link](https://arxiv.org/abs/2301.2)] [No code available]\n"
        "## BWLONG\n"
        "* **Pct**: Prompting \\[CLS\\] Tokens, CVPR, 2022 (*Lab*). [[Paper](https://arxiv.org/abs/2301.3)]\n"
        "## Plain\n"
        "- Prompting \\[CLS\\](x) Tokens. [[Paper](https://arxiv.org/abs/2301.4)]\n"
    )
    doc = parse(text)
    assert [(e.title, e.paper_url, e.venue, e.year) for e in doc.entries] == [
        ("Prompting [CLS] Tokens ]", "https://arxiv.org/abs/2301.1", "CVPR", 2023),
        ("Prompting [CLS] *Tokens*", "https://arxiv.org/abs/2301.2", "ICCV", 2023),
        ("Prompting [CLS] Tokens", "https://arxiv.org/abs/2301.3", "CVPR", 2022),
        ("Prompting [CLS](x) Tokens", "https://arxiv.org/abs/2301.4", None, None),
    ]
    assert doc.render() == text


# A new paper whose every part differs from everything in the real lists.
PAPER_URL, CODE_URL = "https://arxiv.org/abs/3101.00001", "https://github.com/newowner/newrepo"
NEIGHBOUR_FREE = NewEntry(
    "Zyxwvut Prompting Qrstuv",
    "WACV",
    2031,
    PAPER_URL,
    CODE_URL,
    "Zyx",
    [],
    authors=["Ann Newauthor"],
)
# Words a new entry may show besides its own: the lists' link words and placeholders, our
# "Authors not listed", and the parts of a shields.io badge URL.
LAYOUT_WORDS = {
    "paper", "pdf", "code", "link", "no", "available", "not", "found", "authors", "listed",
    "br", "https", "img", "shields", "io", "badge", "style", "flat", "square", "blue",
}  # fmt: skip


_WORD = r"[^\W\d_]\w+"  # letters first, in any script ("论文解读" is a word too)


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(_WORD, text)}


def _new_parts(new: NewEntry, text: str) -> str:
    """`text` without the new entry's own parts (its links, badges, words and numbers)."""
    text = re.sub(r"https://img\.shields\.io/badge/[^)\s]*", " ", text)
    for part in (new.paper_url, new.code_url, "arXiv 3101", "3101.00001"):
        text = text.replace(part or "\0", " ")
    own = _words(" ".join([new.title, new.venue or "", new.short_name or "", *new.authors]))
    return " ".join(w for w in re.findall(_WORD, text) if w.lower() not in own)


@pytest.mark.parametrize("with_code", [True, False], ids=["code", "no-code"])
def test_a_new_bullet_entry_takes_only_the_layout_of_its_template(with_code: bool) -> None:
    """Every bullet entry of every real list, used as the template of a new entry: nothing of
    its own (title, short name, venue, year, links, affiliation, authors, arXiv id, notes,
    extra links, badges) is in the new entry, and the new entry parses back to itself."""
    new = NEIGHBOUR_FREE if with_code else replace(NEIGHBOUR_FREE, code_url=None)
    leaks: list[str] = []
    templates = [(name, doc, e) for name in ALL for doc in [parse(read(name))] for e in doc.entries]
    templates = [(name, doc, e) for name, doc, e in templates if e.kind == "bullet"]
    assert len(templates) > 600
    for name, doc, template in templates:
        text = _render_like(template, new, doc)
        left = _words(_new_parts(new, text)) - LAYOUT_WORDS
        urls = set(re.findall(r"\]\((https?://[^)\s]+)\)", text)) - {new.paper_url, new.code_url}
        urls = {u for u in urls if not u.startswith("https://img.shields.io/badge/")}
        if left or urls:
            leaks.append(f"{name}:{template.line}: {sorted(left)} {sorted(urls)}\n  {text!r}")
            continue
        litter = re.search(r"\[\s*\]|\(\s*\)|,\s*[.,]", text)  # what is left of a thing left out
        if litter and not re.search(re.escape(litter.group()), template.raw):
            leaks.append(f"{name}:{template.line}: {litter.group()!r} left\n  {text!r}")
            continue
        parsed = [(e.title, e.paper_url, e.code_url) for e in parse(text).entries]
        if parsed != [(new.title, new.paper_url, new.code_url)]:
            leaks.append(f"{name}:{template.line}: parses as {parsed}\n  {text!r}")
    assert not leaks, f"{len(leaks)} of {len(templates)}:\n" + "\n".join(leaks[:40])


@pytest.mark.parametrize("name", [n for n in ALL if any(e.kind == "bullet" for e in parse(read(n)).entries)])
def test_a_new_entry_in_every_bullet_section_shows_only_the_new_paper(name: str) -> None:
    """Through `insert_entry`, in every section of bullets: the template is chosen among
    neighbours with affiliations, notes, extra links and badges; the new entry has none."""
    sections = {tuple(e.section_path) for e in parse(read(name)).entries if e.kind == "bullet"}
    for section in sorted(sections):
        doc = parse(read(name))
        entry = doc.insert_entry(NEIGHBOUR_FREE, list(section))
        left = _words(_new_parts(NEIGHBOUR_FREE, entry.raw)) - LAYOUT_WORDS
        urls = set(re.findall(r"\]\((https?://[^)\s]+)\)", entry.raw)) - {PAPER_URL, CODE_URL}
        assert not left and not urls, entry.raw
        assert (entry.title, entry.paper_url, entry.code_url) == (NEIGHBOUR_FREE.title, PAPER_URL, CODE_URL)
        assert entry.venue in ("WACV", None) and entry.year in (2031, None), entry.raw


def test_marks_notes_and_comments_of_the_neighbour_stay_with_it() -> None:
    """A synthetic neighbour with what the real lists show only now and then: an affiliation,
    an emoji, a star count, a comment, a named badge and a note line."""
    text = (
        "# L\n## S\n"
        "- **A Title,** CVPR 2022&nbsp;(*Lab*) [[Paper](https://arxiv.org/abs/2201.1)] "
        "![Foo](https://img.shields.io/badge/Foo-red) 🔥 Oral ⭐ 120 <!-- seen -->\n"
        "  Highlight: neat.\n"
    )
    doc = parse(text)
    entry = doc.insert_entry(
        NewEntry(
            "New T", "ICCV", 2025, "https://arxiv.org/abs/2501.2", "https://github.com/a/b", None, ["Bar"]
        ),
        ["S"],
    )
    assert entry.raw == (
        "- **New T,** ICCV 2025&nbsp; [[Paper](https://arxiv.org/abs/2501.2)] [[Code](https://github.com/a/b)] "
        "![Bar](https://img.shields.io/badge/Bar-blue)\n"
    )
    assert doc.render() == text + entry.raw


# Titles whose last characters are the punctuation the entry styles put after a title
# ("**Title.**", "**[n] Title,**", "- Title. [[Paper](..)]"): the title's own must stay.
PUNCTUATED_TITLES = [
    "Prompting Ends With a Dot.",
    "Prompts, Adapters, etc.",
    "Prompting Ends With a Comma,",
    "Two Dots..",
    "A Comma Then a Dot,.",
    "A Dot Then a Comma.,",
    "A Spaced Dot .",
    "A Backslash Dot C:\\.",
    "A Backslash Comma C:\\,",
]


def _parsed_back(template: ParsedEntry, text: str, lines: list[str]) -> ParsedEntry:
    """`text`, rendered from `template`, parsed on its own (a table row under its table's header)."""
    if template.kind == "table-row":
        align = next(i for i in range(template.line - 2, -1, -1) if re.match(r"^\s*\|?\s*:?-{2,}", lines[i]))
        text = lines[align - 1] + lines[align] + text
    [entry] = parse(text).entries
    return entry


def test_a_title_ending_in_a_dot_or_comma_parses_back_whole_in_every_style() -> None:
    """Every entry of every real list, as the template of a new entry whose title ends in
    "." or ",": the entry parses back to that very title, in every bullet and table style."""
    wrong: dict[tuple[str, str], str] = {}
    styles: set[str] = set()
    for name in ALL:
        doc = parse(read(name))
        lines = doc.render().splitlines(keepends=True)
        for template in doc.entries:
            styles.add(template.style)
            for title in PUNCTUATED_TITLES:
                text = _render_like(template, NewEntry(title, "ICCV", 2025, PAPER, CODE), doc)
                found = _parsed_back(template, text, lines)
                if found.title != title:
                    why = f"{name}:{template.line} -> {found.title!r}\n  {text!r}"
                    wrong.setdefault((template.style, title), why)
    bullets = {"generalizable", "zhengli97", "synbol", "jianghaojun", "bwlong", "disi", "ttengwang", "plain"}
    assert styles >= bullets | {"vpt-table", "prompt-adaptation-table", "jindonggu-table", "table"}
    assert not wrong, f"{len(wrong)} (style, title) pairs:\n" + "\n".join(
        f"{style} {title!r}: {why}" for (style, title), why in sorted(wrong.items())
    )


def test_a_title_ending_in_a_question_mark_gets_no_dot_after_it() -> None:
    """zhengli97 writes "**Title.**": a new paper "Why Is Prompt Tuning … Robust to Noisy
    Labels?" was written "**… Labels?.**", as no list writes a title. Every entry of every
    real list as the template: no "?." or "!.", and the title parses back whole."""
    wrong: dict[tuple[str, str], str] = {}
    for name in ALL:
        doc = parse(read(name))
        lines = doc.render().splitlines(keepends=True)
        for template in doc.entries:
            for title in ("Why Is Prompt Tuning Robust to Noisy Labels?", "Prompt, Then Tune!"):
                text = _render_like(template, NewEntry(title, "ICCV", 2025, PAPER, CODE), doc)
                found = _parsed_back(template, text, lines)
                if found.title != title or f"{title}." in text:
                    wrong.setdefault(
                        (template.style, title), f"{name}:{template.line} -> {found.title!r}\n  {text!r}"
                    )
    assert not wrong, "\n".join(f"{style} {title!r}: {why}" for (style, title), why in sorted(wrong.items()))


def _one_template_per_style() -> list[tuple[str, Document, list[str], ParsedEntry]]:
    found = []
    for name in ALL:
        doc = parse(read(name))
        lines = doc.render().splitlines(keepends=True)
        styles: set[str] = set()
        for entry in doc.entries:
            if entry.style not in styles:
                styles.add(entry.style)
                found.append((name, doc, lines, entry))
    return found


STYLE_TEMPLATES = _one_template_per_style()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.text(alphabet=st.sampled_from("abXY .,\\:?!-'"), max_size=12),
    end=st.sampled_from([".", ",", "..", ",.", ".,", "\\.", "\\,", " .", " ,", "etc."]),
)
def test_any_title_ending_in_a_dot_or_comma_parses_back_in_each_style(words: str, end: str) -> None:
    """The property behind the test above, over titles hypothesis makes up: rendered from
    an entry of each style of each real list, the title parses back unchanged."""
    title = " ".join(f"Prompt {words}{end}".split())
    for name, doc, lines, template in STYLE_TEMPLATES:
        text = _render_like(template, NewEntry(title, "ICCV", 2025, PAPER, CODE), doc)
        assert _parsed_back(template, text, lines).title == title, f"{name}:{template.line} {text!r}"


def test_a_bwlong_short_name_without_its_colon_is_still_a_short_name() -> None:
    """Three BWLONG entries leave out the colon after the bold short name. They were read as
    disi entries titled "Oscar", "HierKD" and "Survey", so their papers were never matched,
    and a new entry written like one of them carried a stray "?"."""
    doc = parse(read(BWLONG))
    by_line = {e.line: e for e in doc.entries}
    assert [
        (by_line[n].short_name, by_line[n].title, by_line[n].venue, by_line[n].year) for n in (180, 181, 182)
    ] == [
        ("Oscar", "Multimodal Few-Shot Learning with Frozen Language Models", "Nips", 2021),
        ("HierKD", "Open-Vocabulary One-Stage Detection with Hierarchical Visual-Language", "CVPR", 2022),
        (
            "Survey",
            "What learning algorithm is in-context learning? Investigations with linear models",
            "arxiv",
            2022,
        ),
    ]
    assert {by_line[n].style for n in (180, 181, 182)} == {"bwlong"}
    text = _render_like(by_line[182], NewEntry("Prompting Foo", "ICCV", 2025, PAPER, CODE, "Foo"), doc)
    assert "?" not in text and "Prompting Foo, ICCV, 2025" in text
    # A bold title followed by its venue stays a title (zhengli97, disi).
    assert (
        parse("- **Visual Prompting via Image Inpainting.** NeurIPS 2022.   [[Paper](https://x.org/1)]\n")
        .entries[0]
        .title
        == "Visual Prompting via Image Inpainting"
    )


DISI = "disi-unibo-nlp__awesome-prompt-learning__README.md"
JIANG = "jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md"
USTC = "ustcjinggg__Awesome-PEFT-VLM__README.md"


def test_the_multi_word_venues_of_the_real_bullet_lists_read_whole() -> None:
    """disi-unibo-nlp's "(The 34th International Conference on Software Engineering and
    Knowledge Engineering, 2022)" read as "Engineering" (and an upgrade replaced only that
    word), synbol's "WANT @ ICML 2024." (a workshop) as the main conference "ICML"."""
    old = read(DISI)
    doc = parse(old)
    entry = next(e for e in doc.entries if e.title.startswith("AESPrompt"))
    venue = "The 34th International Conference on Software Engineering and Knowledge Engineering"
    assert f"with Prompt Tuning** ({venue}, 2022) [[paper](" in old  # the list's own line
    assert (entry.venue, entry.year) == (venue, 2022)
    updated = doc.update_entry(entry.index, venue="SEKE", year=2022)
    assert updated.raw == entry.raw.replace(f"({venue}, 2022)", "(SEKE, 2022)")
    assert (updated.venue, updated.year) == ("SEKE", 2022)
    synbols = [n for n in ALL if n.startswith("synbol")]
    assert len(synbols) == 3
    for name in synbols:
        [entry] = [e for e in parse(read(name)).entries if e.title.startswith("Enhancing Fine-grained Multi")]
        assert entry.raw.startswith("- **[29] Enhancing") and ",** WANT @ ICML 2024.\n" in entry.raw, name
        assert (entry.venue, entry.year) == ("WANT @ ICML", 2024), name


# One real entry of each style whose venue the parser read by its last word, by (list, line);
# the tests make it synthetic by putting a venue of several words where the list has its own.
REAL_ENTRY_OF_EACH_STYLE = {
    "synbol": (SYNBOL, 65),  # - **[1] AdaptFormer: ...,** NeurIPS 2022.
    "jianghaojun": (JIANG, 52),  # - **Visual Prompt Tuning,** ECCV 2022 (arXiv:2203.12119). badges
    "disi": (DISI, 79),  # 3. **PADA: ...** (ACL, 2022) [[paper](..)] [[code](..)]<br>![](badge)
    "ttengwang": (TTENG, 63),  # - Diversity-Aware Meta Visual Prompting [[paper]](..) + `CVPR 2023`
    "bwlong": (BWLONG, 22),  # * **MaPLe**: Multi-modal Prompt Learning [[CVPR 2023](..)] [[Code](..)]
    # * Open-Set Domain Adaptation with Visual-Language Foundation Models[[arXiv 2307](..)]: with
    # its venue upgraded to several words, it was no entry at all (its only link named nothing)
    "plain": (BWLONG, 201),
    "table": (USTC, 20),  # | Bridging Vision and Language Encoders: ... | ICCV2023 | ...
}


@pytest.mark.parametrize("venue", ["Pattern Recognition", "CVPR Workshops", "ICLR (Oral)", "Proc. IEEE"])
@pytest.mark.parametrize("style", sorted(REAL_ENTRY_OF_EACH_STYLE))
def test_a_venue_of_several_words_reads_whole_in_every_style(style: str, venue: str) -> None:
    """A real entry with a venue of several words put in place of its own (synthetic): the
    venue is all of it, as written, not its last word ("Pattern Recognition 2024" read as
    "Recognition", "ICLR (Oral)" as no venue); its span is that text, so an upgrade
    replaces all of it."""
    name, line = REAL_ENTRY_OF_EACH_STYLE[style]
    old = read(name)
    real = next(e for e in parse(old).entries if e.line == line)
    assert real.style == style
    span = real.spans.get("venue") or real.spans["link_venue"]
    own = real.raw[span[0] : span[1]]
    shown = venue if "venue" in real.spans else f"{venue} {real.year}"  # [[CVPR 2023](..)]
    if style == "table":  # a Venue cell without a Year column holds both: "| ICCV2023 |"
        shown = f" {venue}{real.year} "
    text = old.replace(real.raw, real.raw[: span[0]] + shown + real.raw[span[1] :], 1)
    assert text != old and own.strip().startswith(real.venue or "?")
    doc = parse(text)
    entry = next(e for e in doc.entries if e.line == line)
    assert (entry.title, entry.venue, entry.year) == (real.title, venue, real.year)
    updated = doc.update_entry(entry.index, venue="TPAMI", year=2026)
    assert (updated.venue, updated.year) == ("TPAMI", 2026)
    assert venue not in updated.raw


@pytest.mark.parametrize(
    ("after", "venue"),
    [
        (" Findings", "EMNLP Findings"),
        (", Oral", "EMNLP Oral"),
        (" Workshop", "EMNLP Workshop"),
        (" Short Papers", "EMNLP Short Papers"),
    ],
)
@pytest.mark.parametrize("style", ["synbol", "jianghaojun", "disi", "ttengwang", "table"])
def test_words_after_the_year_are_the_venues_in_every_style(style: str, after: str, venue: str) -> None:
    """A real entry whose venue and year are replaced by "EMNLP YEAR Findings" (synthetic; as
    `(CVPR 2023, Oral)` or `` `ICCV 2023 Workshop` ``): the venue read as the word before the
    year ("EMNLP"), and an upgrade left the words after it ("TPAMI 2026 Findings")."""
    name, line = REAL_ENTRY_OF_EACH_STYLE[style]
    old = read(name)
    real = next(e for e in parse(old).entries if e.line == line)
    start = real.spans["venue"][0]
    end = max(real.spans["venue"][1], real.spans.get("year", (0, 0))[1])
    shown = f" EMNLP {real.year}{after} " if style == "table" else f"EMNLP {real.year}{after}"
    text = old.replace(real.raw, real.raw[:start] + shown + real.raw[end:], 1)
    assert text != old
    doc = parse(text)
    entry = next(e for e in doc.entries if e.line == line)
    assert (entry.title, entry.venue, entry.year) == (real.title, venue, real.year)
    updated = doc.update_entry(entry.index, venue="TPAMI", year=2026)
    assert (updated.venue, updated.year) == ("TPAMI", 2026)
    assert "EMNLP" not in updated.raw and after.strip(", ") not in updated.raw


@pytest.mark.parametrize("venue", ["Pattern Recognition", "ICLR (Oral)"])
def test_a_new_entry_with_a_venue_of_several_words_reads_back_in_every_section(venue: str) -> None:
    """What we write is what we read: a paper inserted in every section of every real list
    reads back with its whole venue, and its upgrade leaves none of that venue behind. Written
    like a synbol, jianghaojun, disi, ttengwang, BWLONG or ustcjinggg neighbour, it read back
    as "Recognition" or "Oral" or no venue, and the upgrade made "Pattern TPAMI 2026"."""
    new = NewEntry("Prompting Foo", venue, 2025, PAPER, CODE, "Foo", authors=["A. B"])
    styles: set[str] = set()
    for name in (n for n in ALL if "@" not in n):  # the newest version of each list
        for section in sorted({tuple(e.section_path) for e in parse(read(name)).entries}):
            doc = parse(read(name))
            try:
                entry = doc.insert_entry(new, list(section))
            except UserError:
                continue  # a section name that two sections share
            if entry.venue is None and entry.year is None:
                continue  # a style that shows no venue (the plain surveys' "- Title. [[Paper](..)]")
            where = f"{name} {section}: {entry.raw!r}"
            assert (entry.venue, entry.year) == (venue, 2025), where
            styles.add(entry.style)
            updated = doc.update_entry(entry.index, venue="TPAMI", year=2026)
            assert (updated.venue, updated.year) == ("TPAMI", 2026), where
            assert venue not in updated.raw, where
    assert styles >= {"synbol", "jianghaojun", "disi", "ttengwang", "bwlong", "table", "generalizable"}


def test_an_upgrade_of_a_venue_cell_that_holds_the_year_too() -> None:
    """ustcjinggg's table has no Year column: "| ICCV2023 |" holds both. Its upgrade failed
    with "no year text to update", and an upgrade of the venue alone wrote "| TPAMI |",
    losing the year. Now the cell is rewritten whole, glued as the list writes it."""
    old = read(USTC)
    row = next(e for e in parse(old).entries if e.line == 20)
    assert (row.venue, row.year) == ("ICCV", 2023) and "| ICCV2023 |" in row.raw
    doc = parse(old)
    updated = doc.update_entry(row.index, venue="Pattern Recognition", year=2026)
    assert updated.raw == row.raw.replace("| ICCV2023 |", "| Pattern Recognition2026 |")
    assert (updated.venue, updated.year) == ("Pattern Recognition", 2026)
    added, removed = added_lines(old, doc.render())
    assert (removed, added) == ([row.raw], [updated.raw])
    updated = parse(old).update_entry(row.index, venue="TPAMI", year=None)
    assert updated.raw == row.raw.replace("| ICCV2023 |", "| TPAMI2023 |")
    assert (updated.venue, updated.year) == ("TPAMI", 2023)


def _real_line_changed(name: str, line: int, old: str, new: str) -> ParsedEntry:
    """The entry at `line` of a real list, parsed with `old` replaced by `new` in it (synthetic)."""
    text = read(name)
    real = next(e for e in parse(text).entries if e.line == line)
    assert old in real.raw
    changed = text.replace(real.raw, real.raw.replace(old, new, 1), 1)
    return next(e for e in parse(changed).entries if e.line == line)


def test_a_comma_before_the_year_is_no_venue() -> None:
    """Real lines with a comma where the list has a venue or a space (synthetic): BWLONG's
    "Title, 2022 (*Lab*)." read as the venue "" (stored, and shown by `stats`), and a
    jianghaojun "**Focus Your Attention when Few-Shot Classification,** NeurIPS, 2023." (without
    its badge) as a BWLONG entry with the short name "Focus Your ...," and the title "NeurIPS"."""
    coop = _real_line_changed(BWLONG, 27, ", IJCV, 2022 (*NTU", ", 2022 (*NTU")
    assert (coop.style, coop.short_name, coop.title) == (
        "bwlong",
        "CoOp",
        "Learning to Prompt for Vision-Language Models",
    )
    assert (coop.venue, coop.year) == (None, 2022)
    badge = " ![](https://img.shields.io/badge/Image_Classification-green)"
    focus = _real_line_changed(JIANG, 198, f",** NeurIPS 2023{badge}", ",** NeurIPS, 2023.")
    assert (focus.style, focus.short_name, focus.title) == (
        "jianghaojun",
        None,
        "Focus Your Attention when Few-Shot Classification",
    )
    assert (focus.venue, focus.year) == ("NeurIPS", 2023)


def test_a_year_in_a_link_is_not_the_entrys_year() -> None:
    """disi-unibo-nlp's "**Title** (IJCAI) [[paper](https://www.ijcai.org/proceedings/2022/0560.pdf)]"
    without its "(IJCAI)" (synthetic) took 2022 from the link's address for the entry's year;
    a year the line writes outside its links still counts (zhengli97's EVA-CLIP "2023.")."""
    entry = _real_line_changed(DISI, 99, "** (IJCAI) [[paper]", "** [[paper]")
    assert entry.paper_url == "https://www.ijcai.org/proceedings/2022/0560.pdf"
    assert (entry.venue, entry.year) == (None, None)
    eva = next(e for e in parse(read(ZHENG)).entries if e.line == 47)
    assert (eva.title, eva.venue, eva.year) == (
        "EVA-CLIP: Improved Training Techniques for CLIP at Scale",
        None,
        2023,
    )


def test_a_venue_written_before_the_links_and_markup_of_its_line_reads_whole() -> None:
    """disi-unibo-nlp's PADA line with its "(ACL, 2022)" written bare as "Pattern Recognition
    2022", before its links, `<br>` and badges (synthetic): the brackets around its links and
    the `<br>` were taken for words after the year, and the venue read as "Recognition"."""
    entry = _real_line_changed(DISI, 79, "** (ACL, 2022) [[paper]", "** Pattern Recognition 2022 [[paper]")
    assert "[[code](https://github.com/eyalbd2/PADA)]<br>![](https://img.shields.io/badge/" in entry.raw
    assert (entry.style, entry.venue, entry.year) == ("disi", "Pattern Recognition", 2022)


def test_a_link_named_by_a_venue_of_several_words_is_the_paper_link_on_any_host() -> None:
    """BWLONG's "* Open-Set Domain Adaptation ...[[arXiv 2307](..)]" with its paper at an MDPI
    journal (synthetic; MDPI's "Electronics" and "Applied Sciences" are venues of the
    disi-unibo-nlp list): a link named "Electronics 2023" was the paper link wherever it
    pointed, one named "Applied Sciences 2023" was no link at all, and the entry was lost."""
    url = "https://www.mdpi.com/2079-9292/12/1/1"
    for venue in ("Electronics", "Applied Sciences"):
        entry = _real_line_changed(
            BWLONG, 201, "[[arXiv 2307](https://arxiv.org/abs/2307.16204)]", f"[[{venue} 2023]({url})]"
        )
        assert (entry.title, entry.venue, entry.year, entry.paper_url) == (
            "Open-Set Domain Adaptation with Visual-Language Foundation Models",
            venue,
            2023,
            url,
        )


def test_lint_does_not_flag_every_entry_of_a_list_without_links() -> None:
    # ustcjinggg's tables have no link column: `check` said "18 entries, 18 problems", one
    # `no-link` per entry, for a list written that way on purpose.
    assert [p for p in lint(read(USTC)) if p.kind == "no-link"] == []
    # a list that links its papers still hears about the one that has no link
    text = (
        "# L\n## S\n| Title | Venue | Year |\n|---|---|---|\n"
        "| [A](https://arxiv.org/abs/2301.00001) | ICML | 2023 |\n| B | ICML | 2023 |\n"
    )
    assert [(p.line, p.kind) for p in lint(text)] == [(6, "no-link")]


def test_bwlong_affiliation_without_asterisks_is_not_part_of_the_title() -> None:
    # "* **Frozen**: Multimodal Few-Shot Learning with Frozen Language Models(DeepMind).[[arXiv
    # 2106](..)]": the title read "...Language Models(DeepMind)", so `check` missed that line 180
    # lists the same paper, and the title matched no paper of that name.
    doc = parse(read(BWLONG))
    titles = {entry.line: entry.title for entry in doc.entries}
    assert titles[168] == "Multimodal Few-Shot Learning with Frozen Language Models"
    assert titles[172] == "Attentive Mask CLIP"
    assert titles[198] == "AD-CLIP: Adapting Domains in Prompt Space Using CLIP"
    assert not [title for title in titles.values() if title.endswith(")")]
    problems = {(p.line, p.kind) for p in lint(read(BWLONG))}
    assert (180, "duplicate") in problems


def test_update_entry_gives_a_disi_venue_without_a_year_its_year() -> None:
    # disi's "64. **One Model for All Domains: ...** (IJCAI) [[paper](..)]" names no year: its
    # upgrade failed with "entry at line 175 has no year text to update".
    doc = parse(read(DISI))
    index, entry = next((i, e) for i, e in enumerate(doc.entries) if e.line == 175)
    assert (entry.venue, entry.year) == ("IJCAI", None)
    updated = doc.update_entry(index, venue="TPAMI", year=2026)
    assert updated.raw == entry.raw.replace("(IJCAI)", "(TPAMI, 2026)", 1)
    assert (updated.venue, updated.year, updated.title) == ("TPAMI", 2026, entry.title)
    assert doc.render() == read(DISI).replace(entry.raw, updated.raw, 1)


def test_a_disi_venue_with_brackets_of_its_own_is_read() -> None:
    # "61. **Research on ...** (Electronics (Switzerland)) [[paper](..)]" had no venue at all
    # (10 of the list's entries: Electronics, Applied Sciences, Information).
    venues = {e.line: e.venue for e in parse(read(DISI)).entries}
    assert venues[171] == "Electronics (Switzerland)"
    assert venues[175] == "IJCAI"
    assert sum(v is not None and v.endswith("(Switzerland)") for v in venues.values()) == 10


def test_a_new_entry_without_a_venue_leaves_no_stray_separator() -> None:
    """A paper with a year and no venue was written "**Title**,  2025." in jianghaojun's
    "Papers > Adapter", and one with neither "**Title**,  ." (a "," before nothing)."""
    for venue, year, shown in (("CVPR", 2025, ", CVPR 2025."), (None, 2025, ", 2025."), (None, None, ".")):
        doc = parse(read(JIANG))
        added = doc.insert_entry(
            NewEntry("Adapters for Frozen ViTs", venue, year, PAPER), ["Papers", "Adapter"]
        )
        assert added.raw.startswith(f"- **Adapters for Frozen ViTs**{shown}  \n"), added.raw
        assert (added.title, added.venue, added.year) == ("Adapters for Frozen ViTs", venue, year)


def test_an_entry_the_list_cannot_read_back_is_refused_and_leaves_the_list_as_it_was() -> None:
    """The list reads a bullet entry by its link: a paper with none, placed in jianghaojun's
    "Papers > Adapter", ended `insert_entry` in a StopIteration (`review accept` exited 1
    without a word). It is a UserError that says why, and the list is unchanged."""
    doc = parse(read(JIANG))
    before = doc.render()
    with pytest.raises(
        UserError, match=r"'Adapters for Frozen ViTs' .*Papers > Adapter'.* need a paper or code link"
    ):
        doc.insert_entry(NewEntry("Adapters for Frozen ViTs", "CVPR", 2025), ["Papers", "Adapter"])
    assert doc.render() == before
    assert len(doc.entries) == len(parse(before).entries)
    added = doc.insert_entry(NewEntry("Adapters for Frozen ViTs", "CVPR", 2025, PAPER), ["Papers", "Adapter"])
    assert (added.title, added.venue, added.year, added.paper_url) == (
        "Adapters for Frozen ViTs",
        "CVPR",
        2025,
        PAPER,
    )
