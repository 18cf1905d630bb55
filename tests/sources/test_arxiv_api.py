"""The arXiv API source against recorded API responses on a loopback server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sources.helpers import FIXTURES, MakeClient
from vpt_tracker.config import ArxivApiConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Window
from vpt_tracker.replay import Fault, ReplayServer
from vpt_tracker.sources.arxiv_api import ArxivApiSource, build_query
from vpt_tracker.sources.base import SourceError

WINDOW = Window(datetime(2026, 8, 17, tzinfo=UTC), datetime(2026, 8, 21, tzinfo=UTC))


def _source(server: ReplayServer, client: HttpClient, **config: object) -> ArxivApiSource:
    settings = {"base_url": server.urls()["arxiv_api"], "page_size": 10, **config}
    return ArxivApiSource(ArxivApiConfig(**settings), client)  # type: ignore[arg-type]


def _api_requests(server: ReplayServer) -> list[dict[str, str]]:
    return [r.query for r in server.requests if r.path == "/api/query"]


def test_pages_until_total_results(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    pages = list(_source(fixture_replay, make_client()).fetch(WINDOW, {}))
    assert [len(p.records) for p in pages] == [10, 10, 10]
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "20"]
    assert all(q["max_results"] == "10" for q in _api_requests(fixture_replay))
    assert [p.done for p in pages] == [False, False, True]
    assert json.loads(pages[-1].cursor or "")["done"] is True
    # The last recorded page says totalResults 30 (see tests/fixtures/sources/README.md).
    ids = [r.arxiv_id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == 30


def _empty_feed() -> bytes:
    """A real first page with its entries taken out: same header, totalResults 30."""
    page = (FIXTURES / "arxiv_api" / "q_testing_s0_m10_bc5a6c384fe9.xml").read_bytes()
    return page.split(b"<entry>", 1)[0] + b"</feed>\n"


SERIES = {
    0: "q_testing_s0_m10_bc5a6c384fe9.xml",
    10: "q_testing_s10_m10_34e56e15aaac.xml",
    20: "q_testing_s20_m10_348a237fecab.xml",
}


def _series_saying(server: ReplayServer, total: int) -> None:
    """Serve the recorded series with every page saying `total` results (synthetic counts)."""
    for start, name in SERIES.items():
        page = (FIXTURES / "arxiv_api" / name).read_bytes()
        body = re.sub(
            rb"<opensearch:totalResults>\d+</opensearch:totalResults>",
            f"<opensearch:totalResults>{total}</opensearch:totalResults>".encode(),
            page,
        )
        server.inject(Fault("status", match=f"start={start}&", status=200, body=body))


def test_an_empty_page_in_the_middle_is_asked_for_again(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    fixture_replay.inject(Fault("status", match="start=10&", status=200, body=_empty_feed(), times=1))
    pages = list(_source(fixture_replay, make_client()).fetch(WINDOW, {}))
    assert [len(p.records) for p in pages] == [10, 10, 10]  # nothing lost to the glitch
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "10", "20"]


def test_an_empty_page_that_outlasts_the_retries_fails_and_the_next_fetch_resumes_there(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # arXiv answers start=10 empty three times in a row (the first ask and both retries).
    fixture_replay.inject(Fault("status", match="start=10&", status=200, body=_empty_feed(), times=3))
    source = _source(fixture_replay, make_client())
    stored = []
    with pytest.raises(SourceError, match=r"empty page at start=10 of 30 results 3 times") as failed:
        for page in source.fetch(WINDOW, {}):
            stored.append(page)
    assert "the next fetch resumes at start=10" in str(failed.value)
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "10", "10"]
    # The window is not finished: what was stored stays, and the cursor is at the empty page.
    assert [len(p.records) for p in stored] == [10]
    cursor = json.loads(stored[-1].cursor or "")
    assert (cursor["offset"], cursor["done"], stored[-1].done) == (10, False, False)
    fixture_replay.requests.clear()
    rest = list(source.fetch(WINDOW, {"query": stored[-1].cursor}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["10", "20"]
    assert [len(p.records) for p in rest] == [10, 10] and rest[-1].done
    ids = {r.arxiv_id for p in stored + rest for r in p.records}
    assert len(ids) == 30  # nothing lost


def test_a_fetch_resumed_at_an_empty_page_remembers_the_count_of_the_pages_before(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # The glitch at start=10 outlasts a run, and its empty answer says 0 results (as the
    # replay's, and arXiv's, empty feed does): the count is the cursor's, from start=0.
    empty = re.sub(rb"<opensearch:totalResults>\d+<", b"<opensearch:totalResults>0<", _empty_feed())
    fixture_replay.inject(Fault("status", match="start=10&", status=200, body=empty, times=6))
    source = _source(fixture_replay, make_client())
    first = next(iter(source.fetch(WINDOW, {})))
    assert json.loads(first.cursor or "")["extra"] == "30"
    with pytest.raises(SourceError, match=r"start=10 of 30 results"):
        list(source.fetch(WINDOW, {"query": first.cursor}))
    with pytest.raises(SourceError, match=r"start=10 of 30 results"):  # not done on resuming
        list(source.fetch(WINDOW, {"query": first.cursor}))
    rest = list(source.fetch(WINDOW, {"query": first.cursor}))
    assert [len(p.records) for p in rest] == [10, 10] and rest[-1].done


def test_an_empty_page_saying_no_results_after_pages_that_said_many_is_not_the_end(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # The series as recorded: every page says 214881, and past start=20 nothing is recorded,
    # so start=30 gets the replay's empty feed, which (as arXiv's own empty answers) says 0.
    _series_saying(fixture_replay, 214881)
    stored = []
    with pytest.raises(SourceError, match=r"start=30 of 214881 results"):
        for page in _source(fixture_replay, make_client()).fetch(WINDOW, {}):
            stored.append(page)
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "20", "30", "30", "30"]
    assert [len(p.records) for p in stored] == [10, 10, 10] and not stored[-1].done


def test_an_empty_first_page_that_announces_results_is_not_the_end(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # Five results announced, less than a page of 10, but none before the empty page: not an
    # overstated count (what would be "the rest" is all of it), the glitch.
    empty = re.sub(rb"<opensearch:totalResults>\d+<", b"<opensearch:totalResults>5<", _empty_feed())
    fixture_replay.inject(Fault("status", match="start=0&", status=200, body=empty, times=3))
    source = _source(fixture_replay, make_client())
    with pytest.raises(SourceError, match=r"empty page at start=0 of 5 results 3 times"):
        list(source.fetch(WINDOW, {}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "0", "0"]
    pages = list(source.fetch(WINDOW, {}))  # the next fetch gets the window
    assert [len(p.records) for p in pages] == [10, 10, 10] and pages[-1].done


def test_an_empty_page_less_than_a_page_before_total_results_ends_the_window(
    fixture_replay: ReplayServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # totalResults overstates by 5, less than a page of 10: the empty page at 30 is the end.
    _series_saying(fixture_replay, 35)
    with caplog.at_level("WARNING", logger="vpt_tracker.sources.arxiv_api"):
        pages = list(_source(fixture_replay, make_client()).fetch(WINDOW, {}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "20", "30", "30", "30"]
    assert [len(p.records) for p in pages] == [10, 10, 10, 0]
    cursor = json.loads(pages[-1].cursor or "")
    assert (cursor["offset"], cursor["done"], pages[-1].done) == (30, True, True)
    assert "stays empty at start=30 of 35 results (5 short, less than a page of 10 and than the 30" in (
        caplog.text
    )


def test_an_entry_that_cannot_be_read_is_skipped_not_asked_for_again(
    tmp_path: Path, make_client: MakeClient
) -> None:
    folder = tmp_path / "arxiv_api"
    folder.mkdir()
    first = (FIXTURES / "arxiv_api" / "q_testing_s0_m10_bc5a6c384fe9.xml").read_text()
    start = first.index("<title>", first.index("<entry>"))
    end = first.index("</title>", start)
    (folder / "first.xml").write_text(first[:start] + "<title>" + first[end:])  # one entry, no title
    index = [{"match": {"start": "0"}, "status": 200, "file": "first.xml"}]
    later = [(10, "q_testing_s10_m10_34e56e15aaac.xml"), (20, "q_testing_s20_m10_348a237fecab.xml")]
    for offset, name in later:
        (folder / name).write_bytes((FIXTURES / "arxiv_api" / name).read_bytes())
        index.append({"match": {"start": str(offset)}, "status": 200, "file": name})
    (folder / "index.json").write_text(json.dumps(index))
    with ReplayServer(tmp_path) as server:
        pages = list(_source(server, make_client()).fetch(WINDOW, {}))
        starts = [q["start"] for q in _api_requests(server)]
    assert [len(p.records) for p in pages] == [9, 10, 10]
    assert starts[:3] == ["0", "10", "20"]  # not start=9, which would ask for that entry again


def test_query_names_categories_keywords_and_the_submitted_window(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    source = _source(
        fixture_replay, make_client(), categories=["cs.CV", "cs.LG"], keywords=["prompt", "visual prompt"]
    )
    next(iter(source.fetch(WINDOW, {})))
    query = _api_requests(fixture_replay)[0]
    assert query["search_query"] == (
        '(cat:cs.CV OR cat:cs.LG) AND (all:prompt OR all:"visual prompt") '
        "AND submittedDate:[202608130000 TO 202608202359]"  # from `lookback_days` (4) before
    )
    assert query["sortBy"] == "submittedDate" and query["sortOrder"] == "ascending"
    assert "id_list" not in query


def test_page_size_is_bounded_by_2000() -> None:
    with pytest.raises(ValueError):
        ArxivApiConfig(page_size=2001)
    assert build_query([], ["prompt"]) == "(all:prompt)"


def test_reads_comment_journal_ref_doi_versions_and_primary(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    pages = list(_source(fixture_replay, make_client()).fetch(WINDOW, {}))
    records = {r.arxiv_id: r for p in pages for r in p.records}
    rest = records["2204.08348"]
    assert rest.source_id == "2204.08348v3" and rest.arxiv_version == 3
    assert rest.title == "Automated Test Generation for REST APIs: No Time to Rest Yet"
    assert rest.comment and rest.comment.startswith("13 pages, 6 figures")
    assert rest.journal_ref == (
        "InProceedings of the 31st ACM SIGSOFT International Symposium on Software Testing and Analysis "
        "2022 Jul 18 (pp. 289-301)"
    )
    assert rest.doi == "10.1145/3533767.3534401"
    assert rest.primary_category == "cs.SE" and rest.categories == ("cs.SE",)
    assert rest.authors == ("Myeongsoo Kim", "Qi Xin", "Saurabh Sinha", "Alessandro Orso")
    assert rest.published == datetime(2022, 4, 18, 14, 46, 24, tzinfo=UTC)
    assert rest.updated == datetime(2022, 7, 6, 5, 12, 56, tzinfo=UTC)
    assert rest.year == 2022 and rest.venue == "arXiv"
    assert rest.pdf_url == "https://arxiv.org/pdf/2204.08348v3"
    assert rest.payload["journal_ref"] == rest.journal_ref


def test_resumes_mid_window_from_a_cursor(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    source = _source(fixture_replay, make_client())
    first = next(iter(source.fetch(WINDOW, {})))
    fixture_replay.requests.clear()
    rest = list(source.fetch(WINDOW, {"query": first.cursor}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["10", "20"]
    assert [len(p.records) for p in rest] == [10, 10]


def test_a_resumed_fetch_whose_window_announces_another_total_starts_over(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # The cursor was saved when start=0 said 214881 results; now the window says 30 (synthetic
    # counts): results were announced late or removed in between, and an offset into the old
    # answer could skip one of the new. The window is read again from start=0.
    source = _source(fixture_replay, make_client())
    _series_saying(fixture_replay, 214881)
    first = next(iter(source.fetch(WINDOW, {})))
    fixture_replay.clear_faults()
    fixture_replay.requests.clear()
    pages = list(source.fetch(WINDOW, {"query": first.cursor}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["10", "0", "10", "20"]
    assert [len(p.records) for p in pages] == [10, 10, 10] and pages[-1].done


def _page_saying(start: int, total: int) -> bytes:
    """The recorded page at `start`, saying `total` results (a synthetic count)."""
    page = (FIXTURES / "arxiv_api" / SERIES[start]).read_bytes()
    return re.sub(rb"<opensearch:totalResults>\d+<", f"<opensearch:totalResults>{total}<".encode(), page)


def test_a_total_that_changes_between_pages_of_one_fetch_starts_the_window_over(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # start=0 says 30 results, and start=10, asked for 3 s later, 31: a submission was announced
    # in between, and every result after it moved one place. Going on at start=10 read the
    # window as if nothing had moved (only a resumed fetch compared totals), and a result that
    # moved before start=10 was never fetched. The window is read again from start=0.
    fixture_replay.inject(Fault("status", match="start=10&", status=200, body=_page_saying(10, 31)))
    pages = list(_source(fixture_replay, make_client()).fetch(WINDOW, {}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "0", "10", "20"]
    assert [len(p.records) for p in pages] == [10, 10, 10, 10] and pages[-1].done
    assert json.loads(pages[-1].cursor or "")["extra"] == "30"


def test_a_total_that_keeps_changing_starts_the_window_over_a_bounded_number_of_times(
    fixture_replay: ReplayServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    fixture_replay.inject(Fault("status", match="start=10&", status=200, body=_page_saying(10, 31), times=-1))
    with caplog.at_level("WARNING", logger="vpt_tracker.sources.arxiv_api"):
        pages = list(_source(fixture_replay, make_client()).fetch(WINDOW, {}))
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["0", "10", "0", "10", "0", "10", "20"]
    assert pages[-1].done and "keep moving; going on at start=10" in caplog.text


def test_a_cursor_for_another_query_starts_over(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    # The same window, but the categories changed since the cursor was saved: its offset
    # counts results of the old query. A cursor that names no query (an older version's) too.
    first = next(iter(_source(fixture_replay, make_client(), categories=["cs.SE"]).fetch(WINDOW, {})))
    legacy = json.dumps(
        {key: value for key, value in json.loads(first.cursor or "").items() if key != "query"}
    )
    for categories, cursor in ((["cs.SE", "cs.LG"], first.cursor), (["cs.SE"], legacy)):
        fixture_replay.requests.clear()
        source = _source(fixture_replay, make_client(), categories=categories)
        next(iter(source.fetch(WINDOW, {"query": cursor})))
        assert [q["start"] for q in _api_requests(fixture_replay)] == ["0"]
    fixture_replay.requests.clear()  # the same query resumes
    next(
        iter(
            _source(fixture_replay, make_client(), categories=["cs.SE"]).fetch(
                WINDOW, {"query": first.cursor}
            )
        )
    )
    assert [q["start"] for q in _api_requests(fixture_replay)] == ["10"]


def test_a_cursor_of_another_window_starts_over_and_a_done_one_does_nothing(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    source = _source(fixture_replay, make_client())
    pages = list(source.fetch(WINDOW, {}))
    fixture_replay.requests.clear()
    assert list(source.fetch(WINDOW, {"query": pages[-1].cursor})) == []
    assert _api_requests(fixture_replay) == []
    other = Window(datetime(2026, 8, 10, tzinfo=UTC), datetime(2026, 8, 11, tzinfo=UTC))
    next(iter(source.fetch(other, {"query": pages[0].cursor})))
    assert _api_requests(fixture_replay)[0]["start"] == "0"


def test_error_feed_becomes_a_source_error_with_the_arxiv_message(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    with pytest.raises(SourceError, match="arXiv API error: incorrect id format for abc"):
        list(_source(fixture_replay, make_client()).fetch_ids(["abc"]))


def test_unknown_ids_give_no_records(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    source = _source(fixture_replay, make_client())
    assert list(source.fetch_ids(["0000.0000"])) == []
    found = list(source.fetch_ids(["0808.05394", "1707.08567"]))
    assert [r.arxiv_id for r in found] == ["1707.08567"]
    assert _api_requests(fixture_replay)[-1]["id_list"] == "0808.05394,1707.08567"


def test_legacy_format_is_read_by_namespace(fixture_replay: ReplayServer, make_client: MakeClient) -> None:
    (record,) = _source(fixture_replay, make_client()).fetch_ids(["1111.2011v2"])
    assert (
        record.title
        == "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    )
    assert record.abstract.startswith(
        "Theoretical description of anisotropic systems, such as layered superconductors"
    )
    assert record.arxiv_version == 2 and record.published and record.published.year == 2011


def test_title_search_sends_a_phrase_query(replay: ReplayServer, make_client: MakeClient) -> None:
    source = ArxivApiSource(ArxivApiConfig(base_url=replay.urls()["arxiv_api"]), make_client())
    found = source.search_title("Conditional Prompt Learning for Vision-Language Models")
    assert (
        _api_requests(replay)[-1]["search_query"]
        == 'ti:"conditional prompt learning for vision language models"'
    )
    assert "2203.05557" in {r.arxiv_id for r in found}


def _broken_root(tmp_path: Path, body: bytes) -> Path:
    """A replay root whose every API answer is `body` (hand-written, synthetic)."""
    folder = tmp_path / "arxiv_api"
    folder.mkdir(parents=True)
    (folder / "bad.xml").write_bytes(body)
    (folder / "index.json").write_text(json.dumps([{"match": {}, "status": 200, "file": "bad.xml"}]))
    return tmp_path


def test_malformed_xml_is_a_source_error(tmp_path: Path, make_client: MakeClient) -> None:
    good = (FIXTURES / "arxiv_api" / "q_testing_s0_m10_bc5a6c384fe9.xml").read_bytes()
    with (
        ReplayServer(_broken_root(tmp_path, good[: len(good) // 2])) as server,
        pytest.raises(SourceError, match="malformed XML in the response to start=0"),
    ):
        list(_source(server, make_client()).fetch(WINDOW, {}))


def test_changed_layout_is_a_source_error(tmp_path: Path, make_client: MakeClient) -> None:
    # Entries that no longer carry <id>/<title> where they used to: a non-empty page, no records.
    good = (FIXTURES / "arxiv_api" / "q_testing_s0_m10_bc5a6c384fe9.xml").read_bytes()
    changed = good.replace(b"<id>", b"<identifier>").replace(b"</id>", b"</identifier>")
    with (
        ReplayServer(_broken_root(tmp_path, changed)) as server,
        pytest.raises(SourceError, match="10 entries but none could be read"),
    ):
        list(_source(server, make_client()).fetch(WINDOW, {}))


def test_an_html_error_page_is_a_source_error(tmp_path: Path, make_client: MakeClient) -> None:
    with (
        ReplayServer(_broken_root(tmp_path, b"<html><body>Service moved</body></html>")) as server,
        pytest.raises(SourceError, match="not an Atom feed"),
    ):
        list(_source(server, make_client()).fetch(WINDOW, {}))


def test_outage_after_retries_is_a_source_error(
    fixture_replay: ReplayServer, make_client: MakeClient
) -> None:
    from vpt_tracker.replay import Fault

    fixture_replay.inject(Fault("status", match="/api/query", status=503, times=-1))
    with pytest.raises(SourceError, match="HTTP 503 after 2 attempts"):
        list(_source(fixture_replay, make_client(max_retries=1)).fetch(WINDOW, {}))


class _AnnouncingArxiv(ThreadingHTTPServer):
    """An arXiv API that, like the real one, serves a submission only once it is announced.

    The entries are real (the `testing` page); their submission and announcement times are
    set by the test (synthetic), after arXiv's schedule: submissions until 14:00 ET are
    announced at 20:00 ET the same day, later ones a day later.
    """

    def __init__(self, times: dict[str, tuple[datetime, datetime]]) -> None:
        super().__init__(("127.0.0.1", 0), _AnnouncingHandler)
        page = (FIXTURES / "arxiv_api" / "q_testing_s0_m10_bc5a6c384fe9.xml").read_text()
        self.head = page.split("<entry>", 1)[0]
        self.entries = {
            re.search(r"<id>http://arxiv.org/abs/(\d{4}\.\d{4,5})", entry).group(1): "<entry>" + entry  # type: ignore[union-attr]
            for entry in page.split("<entry>")[1:]
        }
        self.times = times  # arXiv id -> (submitted, announced)
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def answer(self, query: str) -> bytes:
        low, high = re.search(r"submittedDate:\[(\d{12}) TO (\d{12})\]", query).groups()  # type: ignore[union-attr]
        first = datetime.strptime(low, "%Y%m%d%H%M").replace(tzinfo=UTC)
        last = datetime.strptime(high, "%Y%m%d%H%M").replace(tzinfo=UTC) + timedelta(minutes=1)
        shown = [
            self.entries[key].split("</entry>")[0] + "</entry>\n"
            for key, (submitted, announced) in sorted(self.times.items(), key=lambda item: item[1])
            if first <= submitted < last and announced <= self.now
        ]
        head = re.sub(r"<opensearch:totalResults>\d+", f"<opensearch:totalResults>{len(shown)}", self.head)
        return (head + "".join(shown) + "</feed>\n").encode()


class _AnnouncingHandler(BaseHTTPRequestHandler):
    server: _AnnouncingArxiv

    def do_GET(self) -> None:
        params = parse_qs(urlsplit(self.path).query)
        start = int(params["start"][0])
        # One page holds them all; a later page is empty.
        query = params["search_query"][0] if start == 0 else "submittedDate:[200001010000 TO 200001010000]"
        body = self.server.answer(query)
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def announcing_arxiv() -> Iterator[_AnnouncingArxiv]:
    tuesday = datetime(2026, 8, 18, tzinfo=UTC)  # EDT: 14:00 ET is 18:00 UTC, 20:00 ET is 00:00 UTC
    server = _AnnouncingArxiv(
        {
            # before Tuesday's cut-off: announced Tuesday 20:00 ET
            "2202.12139": (tuesday + timedelta(hours=12), tuesday + timedelta(days=1)),
            # after it: announced Wednesday 20:00 ET, after the Wednesday 06:30 UTC nightly
            "2405.13786": (tuesday + timedelta(hours=20), tuesday + timedelta(days=2)),
            # Wednesday morning: announced Wednesday 20:00 ET too
            "2005.14124": (tuesday + timedelta(days=1, hours=10), tuesday + timedelta(days=2)),
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_nightly_windows_get_the_submissions_arxiv_announced_after_their_window_was_fetched(
    announcing_arxiv: _AnnouncingArxiv, make_client: MakeClient
) -> None:
    # The API serves a submission only once it is announced, up to a day after it came in
    # (three over a weekend). A nightly window ends at the run's start, so what came in after
    # the last cut-off is not there yet, and the next window starts after it: 2405.13786 was
    # never fetched. Each window's query now reaches `lookback_days` further back.
    base_url = f"http://127.0.0.1:{announcing_arxiv.server_address[1]}/api/query"
    config = ArxivApiConfig(base_url=base_url, categories=["cs.SE"], keywords=[])
    source = ArxivApiSource(config, make_client())
    seen: set[str | None] = set()
    runs = [datetime(2026, 8, 19, 6, 30, tzinfo=UTC), datetime(2026, 8, 20, 6, 30, tzinfo=UTC)]
    for start, end in zip([runs[0] - timedelta(days=1), *runs], runs, strict=False):
        announcing_arxiv.now = end
        seen |= {r.arxiv_id for page in source.fetch(Window(start, end), {}) for r in page.records}
    assert seen == {"2202.12139", "2405.13786", "2005.14124"}
