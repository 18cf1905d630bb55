"""The OpenReview API v2 source against documented-format `/notes` payloads on a loopback server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sources.helpers import FakeTime, MakeClient
from vpt_tracker.config import OpenReviewConfig, OpenReviewVenue
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Window
from vpt_tracker.replay import Fault, ReplayServer, default_root
from vpt_tracker.sources.base import SourceError
from vpt_tracker.sources.openreview import OpenReviewSource, decision_for

WINDOW = Window(datetime(2026, 8, 17, tzinfo=UTC), datetime(2026, 8, 21, tzinfo=UTC))
ICLR = OpenReviewVenue(venue_id="ICLR.cc/2024/Conference", name="ICLR", year=2024)


def _source(
    server: ReplayServer, client: HttpClient, venue: OpenReviewVenue = ICLR, page_size: int = 1000
) -> OpenReviewSource:
    config = OpenReviewConfig(base_url=server.urls()["openreview"], venues=[venue], page_size=page_size)
    return OpenReviewSource(config, client)


def _note_queries(server: ReplayServer) -> list[dict[str, str]]:
    return [r.query for r in server.requests if r.path == "/notes"]


def test_pages_with_limit_and_offset(replay: ReplayServer, make_client: MakeClient) -> None:
    pages = list(_source(replay, make_client(), page_size=30).fetch(WINDOW, {}))
    assert [len(p.records) for p in pages] == [30, 30, 20]
    queries = _note_queries(replay)
    assert [(q["offset"], q["limit"]) for q in queries] == [("0", "30"), ("30", "30"), ("60", "30")]
    assert all(q["content.venueid"] == "ICLR.cc/2024/Conference" for q in queries)
    assert pages[-1].done and json.loads(pages[-1].cursor or "")["offset"] == 80


def test_page_size_is_bounded_by_1000() -> None:
    with pytest.raises(ValueError):
        OpenReviewConfig(page_size=1001)


def test_unwraps_values_and_reads_the_venue(replay: ReplayServer, make_client: MakeClient) -> None:
    (page,) = _source(replay, make_client()).fetch(WINDOW, {})
    nemesis = next(r for r in page.records if r.openreview_id == "zmJDzPh1Dm")
    assert nemesis.title == "Nemesis: Normalizing the Soft-prompt Vectors of Vision-Language Models"
    assert nemesis.abstract.startswith("With the prevalence of large-scale pretrained vision-language models")
    assert nemesis.decision == "accepted" and nemesis.venue == "ICLR" and nemesis.year == 2024
    assert nemesis.abs_url == "https://openreview.net/forum?id=zmJDzPh1Dm"
    assert nemesis.pdf_url == "https://openreview.net/pdf?id=zmJDzPh1Dm"
    assert nemesis.published == datetime(2024, 1, 15, tzinfo=UTC)
    assert nemesis.payload["content"]["title"] == {"value": nemesis.title}


def test_resumes_from_the_offset_in_the_cursor(replay: ReplayServer, make_client: MakeClient) -> None:
    source = _source(replay, make_client(), page_size=30)
    first = next(iter(source.fetch(WINDOW, {})))
    replay.requests.clear()
    rest = list(source.fetch(WINDOW, {ICLR.venue_id: first.cursor}))
    assert [q["offset"] for q in _note_queries(replay)] == ["30", "60"]
    assert sum(len(p.records) for p in rest) == 50
    replay.requests.clear()
    assert list(source.fetch(WINDOW, {ICLR.venue_id: rest[-1].cursor})) == []
    assert _note_queries(replay) == []


def test_a_resumed_venue_whose_count_changed_starts_over(tmp_path: Path, make_client: MakeClient) -> None:
    # The replay's 80 accepted notes (synthetic, see replay_data/README.md). A fetch stores
    # the first page of 30 and stops; before it resumes, submission 5 (a decision released
    # late) joins the accepted list at its number, and every note after it moves one place.
    # Resumed at offset 30, the fetch never read it.
    recorded = json.loads((default_root() / "openreview" / "ICLR2024-accepted.json").read_text())
    root = _root(
        tmp_path, ICLR.venue_id, json.dumps({"notes": recorded["notes"][:4] + recorded["notes"][5:]}).encode()
    )
    with ReplayServer(root) as server:
        source = _source(server, make_client(), page_size=30)
        first = next(iter(source.fetch(WINDOW, {})))
        (root / "openreview" / "page.json").write_text(json.dumps(recorded))
        server.requests.clear()
        rest = list(source.fetch(WINDOW, {ICLR.venue_id: first.cursor}))
        offsets = [q["offset"] for q in _note_queries(server)]
    late = recorded["notes"][4]["id"]
    assert late in {r.source_id for p in rest for r in p.records}
    assert offsets == ["30", "0", "30", "60"]  # the count said 80, not 79: read again from 0
    assert rest[-1].done


def test_a_count_that_changes_between_pages_of_one_fetch_reads_the_venue_again(
    tmp_path: Path, make_client: MakeClient
) -> None:
    # As above, but submission 5 joins the accepted list between the first and the second page
    # of one fetch. Only a resumed fetch compared counts: this one went on at offset 30, where
    # every note had moved one place, and never read submission 5.
    recorded = json.loads((default_root() / "openreview" / "ICLR2024-accepted.json").read_text())
    root = _root(
        tmp_path, ICLR.venue_id, json.dumps({"notes": recorded["notes"][:4] + recorded["notes"][5:]}).encode()
    )
    with ReplayServer(root) as server:
        pages = iter(_source(server, make_client(), page_size=30).fetch(WINDOW, {}))
        first = next(pages)
        (root / "openreview" / "page.json").write_text(json.dumps(recorded))
        rest = list(pages)
        offsets = [q["offset"] for q in _note_queries(server)]
    assert offsets == ["0", "30", "0", "30", "60"]  # 79 notes, then 80: read again from 0
    assert recorded["notes"][4]["id"] in {r.source_id for p in rest for r in p.records}
    assert len({r.source_id for p in [first, *rest] for r in p.records}) == 80 and rest[-1].done


def test_a_count_that_keeps_changing_reads_the_venue_again_a_bounded_number_of_times(
    replay: ReplayServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    recorded = json.loads((default_root() / "openreview" / "ICLR2024-accepted.json").read_text())
    moving = json.dumps({"notes": recorded["notes"][30:60], "count": 81}).encode()
    replay.inject(Fault("status", match="offset=30&", status=200, body=moving, times=-1))
    with caplog.at_level("WARNING", logger="vpt_tracker.sources.openreview"):
        pages = list(_source(replay, make_client(), page_size=30).fetch(WINDOW, {}))
    assert [q["offset"] for q in _note_queries(replay)] == ["0", "30", "0", "30", "0", "30", "60"]
    assert pages[-1].done and "keep moving; going on at offset 30" in caplog.text


def _note(note_id: str, title: str, venueid: str) -> dict:
    return {
        "id": note_id,
        "forum": note_id,
        "invitations": ["TMLR/-/Submission"],
        "content": {
            "title": {"value": title},
            "abstract": {"value": "A synthetic abstract."},
            "venueid": {"value": venueid},
        },
        "cdate": 1700000000000,
    }


def _root(tmp_path: Path, key: str, body: bytes) -> Path:
    """A replay root with one hand-written (synthetic) `/notes` answer."""
    folder = tmp_path / "openreview"
    folder.mkdir(parents=True)
    (folder / "page.json").write_bytes(body)
    (folder / "index.json").write_text(json.dumps({key: ["page.json"]}))
    return tmp_path


def test_invitation_fetch_reads_accepted_and_rejected_from_the_venue_id(
    tmp_path: Path, make_client: MakeClient
) -> None:
    venue = OpenReviewVenue(venue_id="TMLR/-/Submission", name="TMLR", year=2024)
    notes = [
        _note("accepted01", "Synthetic accepted paper", "TMLR"),
        _note("rejected01", "Synthetic rejected paper", "TMLR/Rejected_Submission"),
        _note("withdrawn1", "Synthetic withdrawn paper", "TMLR/Withdrawn_Submission"),
    ]
    body = json.dumps({"notes": notes, "count": 3}).encode()
    with ReplayServer(_root(tmp_path, venue.venue_id, body)) as server:
        (page,) = _source(server, make_client(), venue).fetch(WINDOW, {})
        assert _note_queries(server)[0]["invitation"] == "TMLR/-/Submission"
    decided = {r.openreview_id: (r.decision, r.venue, r.year) for r in page.records}
    assert decided == {
        "accepted01": ("accepted", "TMLR", 2024),
        "rejected01": ("rejected", None, None),
        "withdrawn1": ("withdrawn", None, None),
    }
    assert decision_for("ICLR.cc/2024/Conference/Desk_Rejected_Submission", ICLR) == "desk-rejected"
    assert decision_for("NeurIPS.cc/2024/Conference", ICLR) is None


def test_flat_v1_content_is_read_too(tmp_path: Path, make_client: MakeClient) -> None:
    note = {
        "id": "flatnote01",
        "forum": "flatnote01",
        "content": {"title": "Flat title", "venueid": "ICLR.cc/2024/Conference"},
    }
    body = json.dumps({"notes": [note]}).encode()
    with ReplayServer(_root(tmp_path, ICLR.venue_id, body)) as server:
        (page,) = _source(server, make_client()).fetch(WINDOW, {})
    assert page.records[0].title == "Flat title" and page.records[0].decision == "accepted"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"notes": [{"id": "x", "content"', "malformed JSON"),
        (b'{"error": "moved", "results": []}', "has no 'notes' list"),
        (
            json.dumps({"notes": [{"uid": "a", "body": {"name": "t"}}] * 3}).encode(),
            "3 notes of ICLR.cc/2024/Conference",
        ),
    ],
    ids=["malformed-json", "no-notes-key", "changed-layout"],
)
def test_bad_payloads_are_source_errors(
    tmp_path: Path, make_client: MakeClient, body: bytes, message: str
) -> None:
    with (
        ReplayServer(_root(tmp_path, ICLR.venue_id, body)) as server,
        pytest.raises(SourceError, match=message),
    ):
        list(_source(server, make_client()).fetch(WINDOW, {}))


def test_backs_off_on_429(replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime) -> None:
    replay.inject(Fault("status", match="/notes", status=429, headers={"Retry-After": "30"}))
    (page,) = _source(replay, make_client()).fetch(WINDOW, {})
    assert len(page.records) == 80 and fake_time.sleeps == [30.0]


@pytest.mark.parametrize("stamp", [10**17, float("inf")], ids=["past-year-9999", "infinity"])
def test_an_impossible_date_is_no_date(tmp_path: Path, make_client: MakeClient, stamp: float) -> None:
    recorded = default_root() / "openreview" / "ICLR2024-accepted.json"
    notes = json.loads(recorded.read_text())
    for key in ("pdate", "cdate", "odate", "tcdate"):
        notes["notes"][0][key] = stamp
    with ReplayServer(_root(tmp_path, ICLR.venue_id, json.dumps(notes).encode())) as server:
        (page,) = _source(server, make_client()).fetch(WINDOW, {})
    assert len(page.records) == len(notes["notes"]) and page.records[0].published is None


def test_pages_ask_for_a_stable_order(replay: ReplayServer, make_client: MakeClient) -> None:
    # Without `sort`, the API promises no order, so an offset saved by one run could point
    # into a differently ordered list on the next: papers skipped or read twice. Submission
    # numbers only grow, so `number:asc` keeps earlier offsets valid (as openreview-py does).
    list(_source(replay, make_client(), page_size=30).fetch(WINDOW, {}))
    assert [q.get("sort") for q in _note_queries(replay)] == ["number:asc"] * 3


def test_a_short_page_does_not_end_paging_while_the_count_says_more_remain(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    # The API may answer fewer notes than `limit` (its own cap, notes hidden from this
    # reader); `count` says how many match. A short first page ended the venue at 25 of 80.
    recorded = json.loads((default_root() / "openreview" / "ICLR2024-accepted.json").read_text())
    short = json.dumps({"notes": recorded["notes"][:25], "count": recorded["count"]}).encode()
    replay.inject(Fault("status", match="offset=0&", status=200, body=short))
    pages = list(_source(replay, make_client(), page_size=30).fetch(WINDOW, {}))
    assert [len(p.records) for p in pages] == [25, 30, 25]
    assert [q["offset"] for q in _note_queries(replay)] == ["0", "25", "55"]
    assert len({r.openreview_id for p in pages for r in p.records}) == 80
    assert [p.done for p in pages] == [False, False, True]


@pytest.mark.parametrize(
    ("suffix", "decision"),
    [
        ("Rejected", "rejected"),
        ("Desk_Rejected", "desk-rejected"),
        ("Desk_Rejection", "desk-rejected"),
        ("Withdrawn", "withdrawn"),
        ("Withdrawn_Submission", "withdrawn"),
        ("Under_Review", "under_review"),
    ],
)
def test_every_spelling_of_a_refusal_is_one_decision(suffix: str, decision: str) -> None:
    # Venues spell their venue ids as they like ("TMLR/Rejected", "…/Desk_Rejected"). Only the
    # spellings of ICLR's conference were known; "desk_rejected" was no refusal to ingestion,
    # so the forum id of a refused submission stayed the paper's key (see ingest.REFUSED).
    tmlr = OpenReviewVenue(venue_id="TMLR/-/Submission", name="TMLR", year=2024)
    assert decision_for(f"TMLR/{suffix}", tmlr) == decision
