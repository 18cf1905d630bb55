"""The CVF open-access source against documented-layout listing and paper pages on loopback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sources.helpers import MakeClient
from vpt_tracker.config import CvfConference, CvfConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Window
from vpt_tracker.replay import Fault, ReplayServer, default_root
from vpt_tracker.sources.base import SourceError
from vpt_tracker.sources.cvf import BATCH, CvfSource

WINDOW = Window(datetime(2026, 8, 17, tzinfo=UTC), datetime(2026, 8, 21, tzinfo=UTC))
CVPR = CvfConference(name="CVPR", year=2022)
COCOOP = "https://openaccess.thecvf.com/content/CVPR2022/html/Zhou_Conditional_Prompt_Learning_for_Vision-Language_Models_CVPR_2022_paper.html"


def _source(
    server: ReplayServer, client: HttpClient, fetch_abstracts: bool = True, *conferences: CvfConference
) -> CvfSource:
    config = CvfConfig(
        base_url=server.urls()["cvf"],
        conferences=list(conferences or [CVPR]),
        fetch_abstracts=fetch_abstracts,
    )
    return CvfSource(config, client)


def test_listing_then_paper_pages(replay: ReplayServer, make_client: MakeClient) -> None:
    pages = list(_source(replay, make_client()).fetch(WINDOW, {}))
    assert [len(p.records) for p in pages] == [BATCH, 30 - BATCH]
    assert replay.requests[0].path == "/CVPR2022" and replay.requests[0].query == {"day": "all"}
    assert len(replay.requests) == 1 + 30
    cocoop = next(r for p in pages for r in p.records if r.cvf_url == COCOOP)
    assert cocoop.title == "Conditional Prompt Learning for Vision-Language Models"
    assert cocoop.authors == ("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu")
    assert cocoop.arxiv_id == "2203.05557"
    assert cocoop.venue == "CVPR" and cocoop.year == 2022
    assert cocoop.abstract.startswith(
        "With the rise of powerful pre-trained vision-language models like CLIP"
    )
    assert cocoop.supplementary_url == COCOOP.replace("/html/", "/supplemental/").replace(
        "_paper.html", "_supplemental.pdf"
    )
    assert cocoop.pdf_url == COCOOP.replace("/html/", "/papers/").replace(".html", ".pdf")
    without_supp = [r for p in pages for r in p.records if r.supplementary_url is None]
    assert len(without_supp) == 20


def test_without_abstracts_the_listing_is_one_page(replay: ReplayServer, make_client: MakeClient) -> None:
    (page,) = _source(replay, make_client(), False).fetch(WINDOW, {})
    assert len(page.records) == 30 and all(r.abstract == "" for r in page.records)
    assert len(replay.requests) == 1


def test_resumes_at_the_next_paper_and_skips_a_finished_listing(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    source = _source(replay, make_client())
    first = next(iter(source.fetch(WINDOW, {})))
    replay.requests.clear()
    rest = list(source.fetch(WINDOW, {"CVPR2022": first.cursor}))
    assert len(replay.requests) == 1 + (30 - BATCH)
    assert [len(p.records) for p in rest] == [30 - BATCH]
    replay.requests.clear()
    assert list(source.fetch(WINDOW, {"CVPR2022": rest[-1].cursor})) == []
    assert [r.path for r in replay.requests] == ["/CVPR2022"]


def test_a_changed_listing_is_read_again(
    tmp_path: Path, replay: ReplayServer, make_client: MakeClient
) -> None:
    (page,) = _source(replay, make_client(), False).fetch(WINDOW, {})
    root = tmp_path / "root"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    listing = root / "cvf" / "CVPR2022.html"
    text = listing.read_text()
    cut = text.index('<dt class="ptitle">', text.index('<dt class="ptitle">') + 1)
    listing.write_text(text[: text.index('<dt class="ptitle">')] + text[cut:])  # one paper fewer
    with ReplayServer(root) as server:
        (again,) = _source(server, make_client(), False).fetch(WINDOW, {"CVPR2022": page.cursor})
    assert len(again.records) == 29
    assert json.loads(again.cursor or "")["extra"] != json.loads(page.cursor or "")["extra"]


def test_pages_are_read_in_the_charset_the_server_names(tmp_path: Path, make_client: MakeClient) -> None:
    # The server says "text/html; charset=utf-8". A page that declared no charset of its own
    # (or another one) was read as Latin-1: "Timo Lüddecke" became "Timo LÃ¼ddecke", a
    # surname no other source spells that way. A browser takes the server's charset first.
    root = tmp_path / "root"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    luddecke = "Luddecke_Image_Segmentation_Using_Text_and_Image_Prompts_CVPR_2022_paper.html"
    for page in (root / "cvf" / "CVPR2022.html", root / "cvf" / "content" / "CVPR2022" / "html" / luddecke):
        page.write_bytes(page.read_bytes().replace(b'<meta charset="utf-8">', b""))  # synthetic edit
    with ReplayServer(root) as server:
        pages = list(_source(server, make_client()).fetch(WINDOW, {}))
    record = next(r for p in pages for r in p.records if r.cvf_url and luddecke in r.cvf_url)
    assert record.authors == ("Timo Lüddecke", "Alexander Ecker")
    assert "Ã" not in record.abstract and all(
        "Ã" not in a for p in pages for r in p.records for a in r.authors
    )


def _broken(tmp_path: Path, listing: str | None = None, paper: str | None = None) -> Path:
    """A copy of the replay CVF data with a hand-written (synthetic) listing or paper page."""
    root = tmp_path / "broken"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    if listing is not None:
        (root / "cvf" / "CVPR2022.html").write_text(listing)
    if paper is not None:
        for page in (root / "cvf" / "content" / "CVPR2022" / "html").glob("*.html"):
            page.write_text(paper)
    return root


@pytest.mark.parametrize(
    ("listing", "paper", "message"),
    [
        ("", None, "malformed HTML in the CVPR2022 listing"),
        (
            '<html><body><div id="content"><ul><li class="paper"><a href="/x.html">A</a></li></ul></div>'
            "</body></html>",
            None,
            "the CVPR2022 listing lists no papers: has the CVF layout changed",
        ),
        (
            None,
            "<html><body><div id='summary'>moved</div></body></html>",
            "has no abstract: has the CVF layout changed",
        ),
    ],
    ids=["empty-document", "changed-listing", "changed-paper-page"],
)
def test_bad_pages_are_source_errors(
    tmp_path: Path, make_client: MakeClient, listing: str | None, paper: str | None, message: str
) -> None:
    with ReplayServer(_broken(tmp_path, listing, paper)) as server, pytest.raises(SourceError, match=message):
        list(_source(server, make_client()).fetch(WINDOW, {}))


def test_missing_conference_is_a_source_error(replay: ReplayServer, make_client: MakeClient) -> None:
    with pytest.raises(SourceError, match="answered HTTP 404"):
        list(_source(replay, make_client(), True, CvfConference(name="WACV", year=2030)).fetch(WINDOW, {}))


def test_paper_page_fills_in_links_and_authors_the_listing_lacks(
    tmp_path: Path, make_client: MakeClient
) -> None:
    root = tmp_path / "root"
    shutil.copytree(default_root() / "cvf", root / "cvf")
    listing = root / "cvf" / "CVPR2022.html"
    # A listing that shows no arXiv/supp links and no authors (hand-edited copy, synthetic).
    text = listing.read_text()
    text = "\n".join(
        line for line in text.splitlines() if ">arXiv</a>]" not in line and ">supp</a>]" not in line
    )
    text = "\n".join(line for line in text.splitlines() if 'name="query_author"' not in line)
    listing.write_text(text)
    with ReplayServer(root) as server:
        pages = list(_source(server, make_client()).fetch(WINDOW, {}))
    cocoop = next(r for p in pages for r in p.records if r.cvf_url == COCOOP)
    assert cocoop.arxiv_id == "2203.05557"
    assert cocoop.supplementary_url and cocoop.supplementary_url.endswith("_supplemental.pdf")
    assert cocoop.authors == ("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu")


COCOOP_PAGE = COCOOP.removeprefix("https://openaccess.thecvf.com")  # its path on the replay server


def test_a_listed_preprint_with_a_known_abstract_costs_no_page(
    replay: ReplayServer, make_client: Callable[..., HttpClient]
) -> None:
    asked: list[str] = []

    def known_abstract(arxiv_id: str) -> bool:
        asked.append(arxiv_id)
        return arxiv_id == "2203.05557"

    config = CvfConfig(base_url=replay.urls()["cvf"], conferences=[CVPR], fetch_abstracts=True)
    pages = list(CvfSource(config, make_client(), known_abstract=known_abstract).fetch(WINDOW, {}))

    paths = [r.path for r in replay.requests]
    assert COCOOP_PAGE not in paths  # the listing links its stored preprint: no page request
    assert paths[0] == "/CVPR2022" and len(paths) == 1 + 29  # every other paper's page, once
    # Each paper is looked up by its CVF URL; only those whose entry links a preprint by that too.
    assert [key for key in asked if not key.startswith("https://")] == ["2203.05557"]
    assert len(asked) == 30 + 1 and COCOOP in asked
    cocoop = next(r for p in pages for r in p.records if r.cvf_url == COCOOP)
    assert (cocoop.arxiv_id, cocoop.title, cocoop.venue, cocoop.year) == (
        "2203.05557",
        "Conditional Prompt Learning for Vision-Language Models",
        "CVPR",
        2022,
    )
    assert cocoop.authors == ("Kaiyang Zhou", "Jingkang Yang", "Chen Change Loy", "Ziwei Liu")
    assert cocoop.abstract == ""  # ingestion keeps the stored one
    others = [r for p in pages for r in p.records if r.cvf_url != COCOOP]
    assert len(others) == 29 and all(r.abstract for r in others)


def test_a_listed_preprint_without_a_known_abstract_still_costs_its_page(
    replay: ReplayServer, make_client: Callable[..., HttpClient]
) -> None:
    config = CvfConfig(base_url=replay.urls()["cvf"], conferences=[CVPR], fetch_abstracts=True)
    pages = list(CvfSource(config, make_client(), known_abstract=lambda _id: False).fetch(WINDOW, {}))
    assert COCOOP_PAGE in [r.path for r in replay.requests] and len(replay.requests) == 1 + 30
    cocoop = next(r for p in pages for r in p.records if r.cvf_url == COCOOP)
    assert cocoop.abstract.startswith("With the rise of powerful pre-trained vision-language models")


def test_a_link_that_is_no_url_is_skipped(tmp_path: Path, make_client: MakeClient) -> None:
    listing = (default_root() / "cvf" / "CVPR2022.html").read_text()
    paper_link = listing.index('href="/content/CVPR2022/html/')
    pdf_link = listing.index('href="/content/CVPR2022/papers/')
    no_url = 'href="http://[::1'
    broken = listing[:pdf_link] + no_url + listing[pdf_link + len('href="') :]  # a bad pdf link
    broken = broken[:paper_link] + no_url + broken[paper_link + len('href="') :]  # a bad title link
    with ReplayServer(_broken(tmp_path, broken)) as server:
        (page,) = _source(server, make_client(), False).fetch(WINDOW, {})
    assert len(page.records) == 29  # the paper whose title link is no URL; the others are read


def test_relative_paper_links_are_read_against_the_listing(tmp_path: Path, make_client: MakeClient) -> None:
    # Older CVF listings link their papers relative to the listing (`content_ICCV_2019/html/…`,
    # no leading slash); the replay listing with its links so written (a synthetic edit). The
    # pdf links were resolved so, but a title link was taken for a path as written, which is
    # no CVF page: every paper was dropped ("lists no papers: has the CVF layout changed?").
    listing = (
        (default_root() / "cvf" / "CVPR2022.html").read_text().replace('href="/content/', 'href="content/')
    )
    with ReplayServer(_broken(tmp_path, listing)) as server:
        pages = list(_source(server, make_client()).fetch(WINDOW, {}))
        paper_requests = [r.path for r in server.requests if r.path.startswith("/content/")]
    records = {r.cvf_url: r for p in pages for r in p.records}
    assert len(records) == 30 and COCOOP in records
    assert records[COCOOP].abstract and records[COCOOP].pdf_url == COCOOP.replace(
        "/html/", "/papers/"
    ).replace(".html", ".pdf")
    assert len(paper_requests) == 30


def test_a_paper_page_that_is_gone_is_reported_and_the_other_papers_are_fetched(
    tmp_path: Path, make_client: MakeClient
) -> None:
    # One dead link (HTTP 404) made the whole conference fail on every run: the cursor never
    # passed its batch. A 404 is permanent: the paper keeps its listing record, and the page
    # is reported on the Page for the run's health.
    root = _broken(tmp_path)
    (root / "cvf" / COCOOP_PAGE.lstrip("/")).unlink()  # the recorded listing, one page missing
    with ReplayServer(root) as server:
        pages = list(_source(server, make_client()).fetch(WINDOW, {}))
    assert [len(p.records) for p in pages] == [BATCH, 30 - BATCH]
    assert pages[-1].done and json.loads(pages[-1].cursor or "")["offset"] == 30
    assert pages[0].problems == (f"the paper page {COCOOP} answered HTTP 404; stored without its abstract",)
    assert pages[1].problems == ()
    cocoop = next(r for p in pages for r in p.records if r.cvf_url == COCOOP)
    assert cocoop.abstract == "" and cocoop.arxiv_id == "2203.05557"
    assert cocoop.title == "Conditional Prompt Learning for Vision-Language Models"
    assert all(r.abstract for p in pages for r in p.records if r.cvf_url != COCOOP)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("status", match="Conditional_Prompt_Learning", status=503, times=-1), "HTTP 503 after 2"),
        (Fault("delay", match="Conditional_Prompt_Learning", delay=1.0, times=-1), "failed after 2 attempts"),
    ],
    ids=["5xx", "timeout"],
)
def test_a_paper_page_that_keeps_failing_stops_the_conference_to_be_fetched_again(
    replay: ReplayServer, make_client: MakeClient, fault: Fault, message: str
) -> None:
    # A 5xx or a timeout after the retries may pass: unlike a 404, the batch is not stored,
    # so its cursor stays and the next run asks for the page again.
    replay.inject(fault)
    fetched = _source(replay, make_client(max_retries=1, timeout=0.2)).fetch(WINDOW, {})
    with pytest.raises(SourceError, match=message):
        next(iter(fetched))


def test_a_paper_whose_cvf_url_is_stored_with_an_abstract_costs_no_page(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    # A changed listing is read again: its papers without an arXiv link were looked up by
    # arXiv id only, so each cost its page again. The CVF URL is a key of its own.
    config = CvfConfig(base_url=replay.urls()["cvf"], conferences=[CVPR], fetch_abstracts=True)
    source = CvfSource(config, make_client(), known_abstract=lambda key: key.startswith("https://"))
    pages = list(source.fetch(WINDOW, {}))
    assert [r.path for r in replay.requests] == ["/CVPR2022"]
    assert sum(len(p.records) for p in pages) == 30


def test_a_paper_whose_page_is_stored_as_a_cvf_sighting_is_not_yielded_again(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    # Its bare listing record (no abstract) hashes apart from the stored page record, so
    # ingestion kept it as a second sighting each time the listing was read again.
    config = CvfConfig(base_url=replay.urls()["cvf"], conferences=[CVPR], fetch_abstracts=True)
    source = CvfSource(
        config, make_client(), known_abstract=lambda _key: True, page_stored=lambda url: url != COCOOP
    )
    pages = list(source.fetch(WINDOW, {}))
    assert [r.path for r in replay.requests] == ["/CVPR2022"]
    assert [r.cvf_url for p in pages for r in p.records] == [COCOOP]  # only the one not stored
    assert pages[-1].done  # the cursor still moves past the papers left out


def test_turning_abstracts_on_reads_the_pages_of_a_listing_stored_without_them(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    # A listing stored with `fetch_abstracts` off left a finished cursor with the listing's
    # fingerprint. Turned on, the same listing was "unchanged and already stored": its papers
    # never got their abstracts (which the classifier and the review need).
    (listed,) = _source(replay, make_client(), False).fetch(WINDOW, {})
    replay.requests.clear()
    pages = list(_source(replay, make_client(), True).fetch(WINDOW, {"CVPR2022": listed.cursor}))
    assert len(replay.requests) == 1 + 30
    assert sum(len(p.records) for p in pages) == 30
    assert all(r.abstract for p in pages for r in p.records)
    # A listing read with its pages holds everything a listing-only fetch would store.
    replay.requests.clear()
    assert list(_source(replay, make_client(), False).fetch(WINDOW, {"CVPR2022": pages[-1].cursor})) == []
    assert [r.path for r in replay.requests] == ["/CVPR2022"]
