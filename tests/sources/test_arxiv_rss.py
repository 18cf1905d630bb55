"""The arXiv RSS source against real RSS 2.0 and RDF daily feeds on a loopback server."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sources.helpers import MakeClient
from vpt_tracker.config import ArxivRssConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Page, Window
from vpt_tracker.replay import ReplayServer, default_root
from vpt_tracker.sources.arxiv_rss import ArxivRssSource
from vpt_tracker.sources.base import SourceError


def _source(
    server: ReplayServer, client: HttpClient, categories: tuple[str, ...] = ("cs.CV",)
) -> ArxivRssSource:
    return ArxivRssSource(
        ArxivRssConfig(base_url=server.urls()["arxiv_rss"], categories=list(categories)), client
    )


def _fetch(
    server: ReplayServer,
    client: HttpClient,
    day: str,
    since: date,
    until: date,
    cursors: dict[str, str | None] | None = None,
) -> list[Page]:
    server.rss_date = day
    return list(_source(server, client).fetch(Window.for_days(since, until), cursors or {}))


def test_two_consecutive_days(replay: ReplayServer, make_client: MakeClient) -> None:
    client = make_client()
    (first,) = _fetch(replay, client, "2026-08-19", date(2026, 8, 19), date(2026, 8, 19))
    (second,) = _fetch(
        replay, client, "2026-08-20", date(2026, 8, 20), date(2026, 8, 20), {"cs.CV": first.cursor}
    )
    assert (len(first.records), len(second.records)) == (171, 152)
    assert first.cursor != second.cursor
    types = Counter(r.announce_type for r in first.records)
    assert set(types) == {"new", "cross", "replace", "replace-cross"}
    assert types["replace-cross"] == 18
    record = second.records[0]
    assert (
        record.arxiv_id == "2608.18184" and record.source_id == "2608.18184v1" and record.arxiv_version == 1
    )
    assert record.title == "Human-Centric Intelligence in the Era of Foundation Models: A Survey"
    assert record.abstract.startswith("Human-centric intelligence is evolving in the foundation-model era")
    assert "Announce Type" not in record.abstract
    assert record.authors[:2] == ("Yang Chen", "Tianqi Wang") and len(record.authors) == 16
    assert record.published == datetime(2026, 8, 20, 4, 0, tzinfo=UTC)
    with_ref = next(r for r in second.records if r.arxiv_id == "2608.18193")
    assert with_ref.journal_ref == "MICCAI-UNSURE 2026" and with_ref.categories == ("cs.CV", "cs.AI", "cs.LG")


def test_a_replacement_is_dated_by_its_announcement_not_published_then(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    # The 2026-08-20 feed re-announces 2503.08484 (v2) from March 2025. Its <pubDate> is the day
    # of the replacement; taken for the publication date, the paper was stored as "arXiv 2026".
    (page,) = _fetch(replay, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    announced = datetime(2026, 8, 20, 4, 0, tzinfo=UTC)
    replaced = next(r for r in page.records if r.arxiv_id == "2503.08484")
    assert replaced.announce_type == "replace" and replaced.arxiv_version == 2
    assert replaced.published is None and replaced.updated == announced
    for record in page.records:
        if record.announce_type in ("replace", "replace-cross"):
            assert record.published is None and record.updated == announced
        else:  # a new submission or its cross-listing: announced that day
            assert record.published == announced


def test_an_old_paper_newly_cross_listed_is_not_published_that_day(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # The real cs.CL feed of 2026-08-19 cross-lists 2311.06273 (November 2023, still v1) and
    # 2602.14784 as `cross`, like the day's new papers. arXiv gives an id in the month of a
    # paper's first announcement, so an id months older is not a paper announced that day.
    fixture_replay.rss_date = "2026-08-19"
    source = ArxivRssSource(
        ArxivRssConfig(base_url=fixture_replay.urls()["arxiv_rss"], categories=["cs.CL"]), make_client()
    )
    (page,) = source.fetch(Window.for_days(date(2026, 8, 19), date(2026, 8, 19)), {})
    announced = datetime(2026, 8, 19, 4, 0, tzinfo=UTC)
    records = {r.arxiv_id: r for r in page.records}
    for old in ("2311.06273", "2602.14784"):
        assert records[old].announce_type == "cross"
        assert records[old].published is None and records[old].updated == announced
    fresh = [
        r
        for r in page.records
        if r.announce_type in ("new", "cross") and (r.arxiv_id or "")[:4] in ("2607", "2608")
    ]
    assert len(fresh) > 50 and all(r.published == announced for r in fresh)


def test_the_first_category_of_an_item_is_its_primary(replay: ReplayServer, make_client: MakeClient) -> None:
    # In the real cs.CV feed of 2026-08-20, a `new` or `replace` item lists cs.CV first and a
    # cross-listing its own archive first (2608.18185: cs.LG, cs.CV). Records had no primary
    # category, so a paper seen only in the feeds never got one stored.
    (page,) = _fetch(replay, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    cross = next(r for r in page.records if r.arxiv_id == "2608.18185")
    assert cross.announce_type == "cross" and cross.categories == ("cs.LG", "cs.CV")
    assert cross.primary_category == "cs.LG"
    for record in page.records:
        own = record.announce_type in ("new", "replace")
        assert (record.primary_category == "cs.CV") is own, record.source_id
        assert record.primary_category == record.categories[0]


def test_affiliations_in_the_author_list_are_not_authors(
    replay: ReplayServer, fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # Real <dc:creator> lists give affiliations in parentheses, with commas inside. They were
    # split into authors such as "Karachi" and "Pakistan)", and "Kai Van Brunt (Massachusetts
    # Institute of Technology)" had the surname "technology".
    (today,) = _fetch(replay, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    (before,) = _fetch(replay, make_client(), "2026-08-19", date(2026, 8, 19), date(2026, 8, 19))
    fish = next(r for r in today.records if r.arxiv_id == "2608.18602")
    assert fish.authors == ("Kai Van Brunt", "Justin Kay", "Sara Beery")
    karachi = next(r for r in before.records if r.arxiv_id == "2608.17942")
    assert karachi.authors[:3] == ("Syed Ali Ahmed", "Syed Bilal Ahsan", "Muhammad Zaigham Zaheer")
    assert not any("(" in a or ")" in a for p in (today, before) for r in p.records for a in r.authors)
    # The legacy RDF feed: "<a …>Yingyan</a> (Celine)Lin".
    (legacy,) = _fetch(fixture_replay, make_client(), "2024-01-22", date(2024, 1, 22), date(2024, 1, 23))
    lin = next(r for r in legacy.records if r.arxiv_id == "2312.11841")
    assert lin.authors == ("Chaojian Li", "Bichen Wu", "Peter Vajda", "Yingyan Lin")


def test_an_unclosed_parenthesis_keeps_the_names_after_it() -> None:
    from vpt_tracker.sources.arxiv_rss import _authors

    assert _authors("Ann Lee (MIT, Bo Chen, Cy Wu") == ("Ann Lee (MIT", "Bo Chen", "Cy Wu")
    assert _authors("Ann Lee ((1) MIT (2) CMU), Bo Chen)") == ("Ann Lee", "Bo Chen)")
    assert _authors("(" * 50_000 + "Bo Chen") == ("(" * 50_000 + "Bo Chen",)


def test_angle_brackets_in_titles_and_abstracts_are_text(
    replay: ReplayServer, make_client: MakeClient, tmp_path: Path
) -> None:
    # RSS 2.0 titles and descriptions are plain text. Read as HTML, feedparser dropped what
    # looked like a tag and the tag stripper the rest: 2608.14778's "improving survival from
    # <20% to >70%" was stored as "improving survival from 70%".
    (page,) = _fetch(replay, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    hcc = next(r for r in page.records if r.arxiv_id == "2608.14778")
    assert "with early detection improving survival from <20% to >70%. The standardized" in hcc.abstract
    assert hcc.payload["summary"].startswith("arXiv:2608.14778v2 Announce Type: replace")
    assert "from <20% to >70%" in hcc.payload["summary"]
    svr = next(r for r in page.records if r.arxiv_id == "2608.18616")
    assert "$p < 0.0001$)" in svr.abstract and "$p<0.05$)" in svr.abstract

    # A real title of the corpus (arXiv 2510.16374) put into a real feed: synthetic.
    folder = tmp_path / "arxiv_rss" / "cs.CV"
    folder.mkdir(parents=True)
    feed = (default_root() / "arxiv_rss" / "cs.CV" / "2026-08-20.xml").read_text()
    title = "Human-Centric Intelligence in the Era of Foundation Models: A Survey"
    think = "Before you &lt;think&gt;, monitor: Implementing Flavell's metacognitive framework in LLMs"
    (folder / "2026-08-20.xml").write_text(feed.replace(f"<title>{title}</title>", f"<title>{think}</title>"))
    with ReplayServer(tmp_path) as server:
        (edited,) = _fetch(server, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    record = next(r for r in edited.records if r.arxiv_id == "2608.18184")
    assert (
        record.title == "Before you <think>, monitor: Implementing Flavell's metacognitive framework in LLMs"
    )


def test_same_announcement_is_not_stored_twice(replay: ReplayServer, make_client: MakeClient) -> None:
    (page,) = _fetch(replay, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    again = _fetch(
        replay, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20), {"cs.CV": page.cursor}
    )
    assert again == []


def test_announcement_outside_the_window_is_skipped(replay: ReplayServer, make_client: MakeClient) -> None:
    assert _fetch(replay, make_client(), "2026-08-20", date(2026, 8, 1), date(2026, 8, 10)) == []


def test_an_unchanged_feed_costs_a_304_and_its_cursor_says_it_is_stored(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    client = make_client()
    (page,) = _fetch(replay, client, "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
    again = _fetch(replay, client, "2026-08-20", date(2026, 8, 20), date(2026, 8, 20), {"cs.CV": page.cursor})
    assert again == [] and replay.requests[-1].status == 304


def test_a_feed_skipped_for_one_window_is_stored_for_the_next(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    # A nightly run reads the feed for a queued refetch window first (outside it: skipped),
    # then for the current window with the same client. The 304 of the second request must
    # not pass for "already stored": the day's papers were lost that way.
    client = make_client()
    assert _fetch(replay, client, "2026-08-20", date(2026, 8, 15), date(2026, 8, 16)) == []
    (page,) = _fetch(replay, client, "2026-08-20", date(2026, 8, 19), date(2026, 8, 20))
    assert len(page.records) > 100
    assert [request.status for request in replay.requests[-2:]] == [200, 304]


def test_empty_weekend_feed_is_not_an_error(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    (page,) = _fetch(fixture_replay, make_client(), "2024-06-08", date(2024, 6, 8), date(2024, 6, 8))
    assert page.records == [] and page.done


def test_legacy_rdf_feed(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    (page,) = _fetch(fixture_replay, make_client(), "2024-01-22", date(2024, 1, 22), date(2024, 1, 23))
    assert len(page.records) == 125
    types = Counter(r.announce_type for r in page.records)
    assert types == {"new": 31, "replace": 91, "cross": 3}
    olor = next(r for r in page.records if r.arxiv_id == "2401.10962")
    assert olor.title == "One Step Learning, One Step Review"
    assert olor.primary_category == "cs.CV" and olor.arxiv_version == 1
    assert olor.authors[0] == "Xiaolong Huang" and all("<" not in name for name in olor.authors)
    assert (
        olor.abstract.startswith("Visual fine-tuning has garnered significant attention")
        and "<p>" not in olor.abstract
    )


def test_items_without_a_date_of_their_own_are_dated_by_the_feeds_announcement(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # The RSS 2.0 items of 2024 had no <pubDate> (they have since 2025), and RDF items never
    # had a date: the announcement is the channel's <pubDate> / <dc:date>. Every record of
    # these feeds came without a date, so their papers had no year.
    (page,) = _fetch(fixture_replay, make_client(), "2024-03-04", date(2024, 3, 4), date(2024, 3, 4))
    announced = datetime(2024, 3, 4, 5, 0, tzinfo=UTC)  # Mon, 04 Mar 2024 00:00:00 -0500
    records = {r.arxiv_id: r for r in page.records}
    assert len(records) == 112
    new, replaced = records["2403.00068"], next(r for r in page.records if r.announce_type == "replace")
    assert (new.announce_type, new.published, new.updated) == ("new", announced, None)
    assert (replaced.published, replaced.updated) == (None, announced)
    assert all((r.published or r.updated) == announced for r in page.records)

    (legacy,) = _fetch(fixture_replay, make_client(), "2024-01-22", date(2024, 1, 22), date(2024, 1, 23))
    rdf_announced = datetime(2024, 1, 23, 1, 30, tzinfo=UTC)  # <dc:date>2024-01-22T20:30:00-05:00
    olor = next(r for r in legacy.records if r.arxiv_id == "2401.10962")
    assert (olor.announce_type, olor.published, olor.updated) == ("new", rdf_announced, None)
    assert all((r.published or r.updated) == rdf_announced for r in legacy.records)
    assert all(r.published is None for r in legacy.records if r.announce_type == "replace")


def test_empty_rdf_feed(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    (page,) = _fetch(fixture_replay, make_client(), "2023-08-31", date(2023, 8, 31), date(2023, 9, 1))
    assert page.records == []


def _root_with(tmp_path: Path, body: bytes) -> Path:
    """A replay root with one cs.CV feed (hand-written, synthetic)."""
    folder = tmp_path / "arxiv_rss" / "cs.CV"
    folder.mkdir(parents=True)
    (folder / "2026-08-20.xml").write_bytes(body)
    return tmp_path


REAL = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "vpt_tracker"
    / "replay_data"
    / "arxiv_rss"
    / "cs.CV"
    / "2026-08-20.xml"
)


def test_malformed_feed_is_a_source_error(tmp_path: Path, make_client: MakeClient) -> None:
    body = REAL.read_bytes()[:5000]
    with (
        ReplayServer(_root_with(tmp_path, body)) as server,
        pytest.raises(SourceError, match=r"malformed XML in the cs\.CV feed"),
    ):
        _fetch(server, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))


def test_changed_layout_is_a_source_error(tmp_path: Path, make_client: MakeClient) -> None:
    # Items whose titles and links moved elsewhere: a non-empty feed with no readable record.
    body = REAL.read_bytes()
    for tag in (b"title", b"link", b"description", b"guid"):
        body = body.replace(b"<" + tag + b">", b"<x" + tag + b">").replace(
            b"</" + tag + b">", b"</x" + tag + b">"
        )
        body = body.replace(b"<" + tag + b" ", b"<x" + tag + b" ")
    with (
        ReplayServer(_root_with(tmp_path, body)) as server,
        pytest.raises(SourceError, match="152 items but none could be read"),
    ):
        _fetch(server, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))


def test_not_a_feed_is_a_source_error(tmp_path: Path, make_client: MakeClient) -> None:
    with (
        ReplayServer(_root_with(tmp_path, b"<html><body>maintenance</body></html>")) as server,
        pytest.raises(SourceError, match=r"neither RSS 2\.0 nor RDF"),
    ):
        _fetch(server, make_client(), "2026-08-20", date(2026, 8, 20), date(2026, 8, 20))
