"""A paper from a year the list has no section for gets one, in the list's year order."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TypedDict

import pytest

from vpt_tracker.catalogue.markdown import NewEntry, parse
from vpt_tracker.errors import UserError

LISTS = Path(__file__).resolve().parents[1] / "fixtures" / "lists"
STELLAR = LISTS / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"


class _EntryFields(TypedDict):
    """The NewEntry fields every test here shares; each test adds its own year."""

    title: str
    venue: str
    paper_url: str
    short_name: str
    badges: list[str]


COCOOP = _EntryFields(
    title="Conditional Prompt Learning for Vision-Language Models",
    venue="CVPR",
    paper_url="https://arxiv.org/abs/2203.05557",
    short_name="CoCoOp",
    badges=["Text"],
)


def added_lines(old: str, new: str) -> list[str]:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]


def removed_lines(old: str, new: str) -> list[str]:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return [line for line in diff if line.startswith("-") and not line.startswith("---")]


def test_older_year_section_is_appended_after_the_oldest() -> None:
    text = STELLAR.read_text(encoding="utf-8")
    doc = parse(text)
    entry = doc.insert_entry(NewEntry(year=2022, **COCOOP), ["Published in 2022"])
    out = doc.render()
    assert entry.section_path == ["Published in 2022"]
    assert removed_lines(text, out) == []
    assert added_lines(text, out) == [
        "    - [Published in 2022](#Published-in-2022)",
        "",
        "## Published in 2022",
        "- `CoCoOp` **Conditional Prompt Learning for Vision-Language Models**    CVPR 2022.   ",
        "[[Paper Link](https://arxiv.org/abs/2203.05557)] [No code available]"
        "![](https://img.shields.io/badge/Text-green)",
    ]
    assert parse(out).render() == out
    sections = [p[-1] for p in parse(out).section_paths() if p and p[-1].startswith("Published")]
    assert sections == ["Published in 2026", "Published in 2025", "Published in 2022"]


def test_newer_year_section_goes_before_the_newest() -> None:
    text = STELLAR.read_text(encoding="utf-8")
    doc = parse(text)
    doc.insert_entry(NewEntry(year=2027, **COCOOP), ["Published in 2027"])
    sections = [p[-1] for p in parse(doc.render()).section_paths() if p and p[-1].startswith("Published")]
    assert sections == ["Published in 2027", "Published in 2026", "Published in 2025"]
    assert removed_lines(text, doc.render()) == []


def test_a_missing_topic_section_is_still_refused() -> None:
    doc = parse(STELLAR.read_text(encoding="utf-8"))
    with pytest.raises(UserError, match="no section 'Segmentation'"):
        doc.insert_entry(NewEntry(year=2022, **COCOOP), ["Segmentation"])


def test_the_table_of_contents_links_a_new_year_section_in_order() -> None:
    text = STELLAR.read_text(encoding="utf-8")
    doc = parse(text)
    doc.insert_entry(NewEntry(year=2022, **COCOOP), ["Published in 2022"])
    doc.insert_entry(NewEntry(year=2027, **COCOOP), ["Published in 2027"])
    out = doc.render()
    assert removed_lines(text, out) == []
    contents = [line for line in out.splitlines() if "](#Published-in-" in line]
    assert contents == [
        "    - [Published in 2027](#Published-in-2027)",
        "    - [Published in 2026](#Published-in-2026)",
        "    - [Published in 2025](#Published-in-2025)",
        "    - [Published in 2022](#Published-in-2022)",
    ]
    assert parse(out).render() == out
    assert len(parse(out).entries) == len(parse(text).entries) + 2


def test_a_list_whose_contents_skip_a_year_section_gets_no_contents_line() -> None:
    text = STELLAR.read_text(encoding="utf-8").replace("    - [Published in 2025](#Published-in-2025)\n", "")
    doc = parse(text)
    doc.insert_entry(NewEntry(year=2022, **COCOOP), ["Published in 2022"])
    assert "(#Published-in-2022)" not in doc.render()
