"""CVF open access (openaccess.thecvf.com): a conference's listing, then each paper's page.

The listing `/<CONF><YEAR>?day=all` gives, per paper, a `<dt class="ptitle">` with the
paper page link, a `<dd>` of authors (hidden `query_author` inputs) and a `<dd>` of links
(pdf, `supp`, `arXiv`). The abstract is only on the paper page (`<div id="abstract">`), so
paper pages are fetched when `fetch_abstracts` is on, in batches that each become a page.
A paper whose abstract is already known (the `known_abstract` callback, which the caller
backs with the store), by its CVF page URL or by the arXiv preprint its listing entry links,
is yielded as its listing record without its page: ingestion merges it into that paper by
the same key, keeping the abstract. On a proceedings listing this saves hundreds of requests
at CVF's per-host interval, and a changed listing costs only the pages of its new papers.
A paper whose page is already stored as a CVF sighting (the `page_stored` callback) is not
yielded at all: its bare listing record differs from the stored page record (no abstract),
so it is no duplicate to ingestion, and every re-read of the listing (a backfill, which
reads it under cursors of its own, or a changed listing) stored a second, abstract-less
sighting of each such paper.

A paper page that is gone (HTTP 404 or 410) is permanent: the paper keeps its listing
record without an abstract, the page is reported in `Page.problems`, and the other papers
go on. Anything else that fails (a 5xx or a timeout after the retries) may pass, so it
stops the source as a `SourceError`: the batch is not stored, its cursor stays, and the
next run asks for the page again.

Proceedings are published once, so the cursor per conference is not tied to the window: it
keeps a fingerprint of the listing and the next paper to fetch. An unchanged listing that
was fully read costs one request; a changed one is read again (ingestion skips what it
already has), and so is one stored without its pages once `fetch_abstracts` is turned on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit

from lxml import etree, html

from vpt_tracker import normalize
from vpt_tracker.config import CvfConference, CvfConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Page, RawRecord, Window
from vpt_tracker.sources.base import Position, SourceError, fetch_ok, read_position

log = logging.getLogger(__name__)

NAME = "cvf"
CANONICAL_SITE = "https://openaccess.thecvf.com"
BATCH = 25  # paper pages per stored page: a crash loses at most this many requests
GONE = (404, 410)  # a paper page answering these will not come back: skipped, not retried
# Marks the fingerprint of a listing stored with `fetch_abstracts` off: once that is turned
# on, the listing is not "already stored", and its papers' pages are read.
LISTING_ONLY = ":listing-only"


@dataclass(frozen=True)
class ListedPaper:
    url: str  # the canonical https://openaccess.thecvf.com/... page URL (the paper's CVF key)
    page_url: str  # where to fetch that page from: the configured base URL + its path
    title: str
    authors: tuple[str, ...]
    pdf_url: str | None
    supplementary_url: str | None
    arxiv_url: str | None


def _document(body: bytes, what: str, charset: str | None = None) -> html.HtmlElement:
    """The parsed page, read in `charset` (the one the server's Content-Type names) if given.

    As in a browser, the server's charset comes before the page's own `<meta>`: lxml alone
    reads a page that declares none as Latin-1, and "Timo Lüddecke" became "Timo LÃ¼ddecke".
    """
    parser = None
    if charset:
        try:
            parser = html.HTMLParser(encoding=charset)
        except LookupError:  # a charset Python does not know: the page's own declaration, then
            parser = None
    try:
        document = html.fromstring(body, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise SourceError(NAME, f"malformed HTML in {what}: {exc}") from None
    if document is None or not isinstance(document, html.HtmlElement):
        raise SourceError(NAME, f"malformed HTML in {what}")
    return document


def _text(element: html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def parse_listing(
    body: bytes, base_url: str, what: str = "the listing", charset: str | None = None
) -> list[ListedPaper]:
    """The papers of a listing page, in page order; a page without any raises `SourceError`."""
    document = _document(body, what, charset)
    papers = []
    for title_cell in document.xpath('//dt[contains(concat(" ", normalize-space(@class), " "), " ptitle ")]'):
        links = title_cell.xpath(".//a[@href]")
        if not links:
            continue
        try:
            # Against the site, as a browser reads it: older listings link their papers
            # relative to the listing (`content_ICCV_2019/html/…`), and that path as written
            # was no CVF page, so each such paper was dropped.
            path = urlsplit(urljoin(base_url + "/", links[0].get("href"))).path
        except ValueError:  # not a URL at all ("http://[::1/..."): not a paper link
            continue
        url = normalize.cvf_url(path)
        title = _text(links[0])
        if not url or not title:
            continue
        authors: tuple[str, ...] = ()
        pdf = supp = arxiv_link = None
        for cell in title_cell.itersiblings():
            if cell.tag == "dt":
                break
            if cell.tag != "dd":
                continue
            names = cell.xpath('.//input[@name="query_author"]/@value')
            if names:
                authors = tuple(" ".join(str(name).split()) for name in names)
            links = _links(cell, base_url)
            pdf = links.get("pdf", pdf)
            supp = links.get("supp", supp)
            arxiv_link = links.get("arxiv", arxiv_link)
        papers.append(ListedPaper(url, base_url + path, title, authors, pdf, supp, arxiv_link))
    if not papers:
        raise SourceError(NAME, f"{what} lists no papers: has the CVF layout changed?")
    return papers


def _canonical_link(href: str, base_url: str) -> str:
    """Links into the CVF site (relative, or on the configured mirror) as openaccess.thecvf.com URLs.

    The file links (pdf, supplementary) keep their own path: `normalize.cvf_url` would fold a
    PDF into its paper page, which is right for identity but not for a download link.
    """
    absolute = urljoin(base_url + "/", href)
    parts = urlsplit(absolute)  # `_links` skips a link that is no URL (ValueError)
    if absolute.startswith(base_url) or (parts.hostname or "").lower().endswith("openaccess.thecvf.com"):
        return CANONICAL_SITE + parts.path
    return absolute


def _links(element: html.HtmlElement, base_url: str) -> dict[str, str]:
    """The `[pdf]`, `[supp]` and `[arXiv]` links under an element, by their label."""
    found: dict[str, str] = {}
    for anchor in element.xpath(".//a[@href]"):
        label = _text(anchor).lower()
        label = "supp" if label == "supplementary" else label
        if label in ("pdf", "supp", "arxiv") and label not in found:
            try:
                found[label] = _canonical_link(anchor.get("href"), base_url)
            except ValueError:  # not a URL at all ("http://[::1/..."): no link
                continue
    return found


@dataclass(frozen=True)
class PaperPage:
    abstract: str
    links: dict[str, str]  # "pdf" / "supp" / "arxiv" -> URL, when the page has them
    authors: tuple[str, ...]  # from the citation_author metas, as "First Last"


def parse_paper_page(body: bytes, base_url: str, what: str, charset: str | None = None) -> PaperPage:
    """A paper page; one without `<div id="abstract">` raises `SourceError`."""
    document = _document(body, what, charset)
    found = document.xpath('//div[@id="abstract"]')
    if not found:
        raise SourceError(NAME, f"{what} has no abstract: has the CVF layout changed?")
    content = document.xpath('//div[@id="content"]')
    links = _links(content[0] if content else document, base_url)
    metas = document.xpath('//meta[@name="citation_author"]/@content')
    return PaperPage(_text(found[0]), links, tuple(_first_last(str(m)) for m in metas))


def parse_abstract(body: bytes, what: str) -> str:
    """Only the abstract of a paper page (see `parse_paper_page`)."""
    return parse_paper_page(body, CANONICAL_SITE, what).abstract


def _first_last(name: str) -> str:
    """`Loy, Chen Change` as `Chen Change Loy`, the listing's spelling."""
    last, _, first = (" ".join(name.split())).partition(", ")
    return f"{first} {last}" if first else last


def listed_record(paper: ListedPaper, conference: CvfConference) -> RawRecord:
    return RawRecord(
        source=NAME,
        source_id=paper.url,
        title=paper.title,
        authors=paper.authors,
        arxiv_id=normalize.arxiv_id(paper.arxiv_url),
        cvf_url=paper.url,
        venue=conference.name,
        year=conference.year,
        pdf_url=paper.pdf_url,
        abs_url=paper.url,
        supplementary_url=paper.supplementary_url,
        payload={
            "url": paper.url,
            "title": paper.title,
            "authors": list(paper.authors),
            "pdf": paper.pdf_url,
            "supp": paper.supplementary_url,
            "arxiv": paper.arxiv_url,
            "conference": f"{conference.name}{conference.year}",
        },
    )


def fingerprint(papers: list[ListedPaper]) -> str:
    return hashlib.sha256("\n".join(p.url for p in papers).encode()).hexdigest()[:16]


class CvfSource:
    """The configured conferences' papers, with abstracts from their pages when asked."""

    name = NAME
    steady_volume = False  # an unchanged listing yields nothing (see the module docstring)

    def __init__(
        self,
        config: CvfConfig,
        client: HttpClient,
        *,
        known_abstract: Callable[[str], bool] | None = None,
        page_stored: Callable[[str], bool] | None = None,
    ) -> None:
        """`known_abstract(key)` says whether the paper with that key, its canonical CVF page
        URL or the versionless id of the arXiv preprint it links, is already stored with an
        abstract; such papers' pages are not fetched. `page_stored(url)` says whether a CVF
        sighting of that page is stored, of a paper with an abstract; such papers are not
        yielded again. Both are asked when the paper's batch is read, so they also see what
        earlier pages and sources of the same run stored."""
        self.config = config
        self.client = client
        self.known_abstract = known_abstract
        self.page_stored = page_stored

    def listing_url(self, conference: CvfConference) -> str:
        return f"{self.config.base_url.rstrip('/')}/{conference.name}{conference.year}"

    def fetch(self, window: Window, cursors: Mapping[str, str | None]) -> Iterator[Page]:
        for conference in self.config.conferences:
            key = f"{conference.name}{conference.year}"
            url = self.listing_url(conference)
            response = fetch_ok(self.client, NAME, url, {"day": "all"})
            base_url, what = self.config.base_url.rstrip("/"), f"the {key} listing"
            papers = parse_listing(response.content, base_url, what, response.charset_encoding)
            mark = fingerprint(papers)
            position = read_position(cursors.get(key), None)
            if not self.config.fetch_abstracts:
                # A listing read with its pages holds all a listing-only fetch would store.
                if position.done and position.extra in (mark, mark + LISTING_ONLY):
                    log.info("%s listing unchanged and already stored", key)
                    continue
                records = [listed_record(p, conference) for p in papers]
                finished = Position(len(papers), True, mark + LISTING_ONLY).encode(None)
                yield Page(NAME, key, records, finished, done=True)
                continue
            if position.extra != mark:  # changed, or stored without its pages (LISTING_ONLY)
                position = Position(extra=mark)
            if position.done:
                log.info("%s listing unchanged and already stored", key)
                continue
            offset = position.offset
            while offset < len(papers):
                batch = papers[offset : offset + BATCH]
                records = []
                problems: list[str] = []
                for paper in batch:
                    if self.page_stored is not None and self.page_stored(paper.url):
                        continue  # stored with its abstract: the listing adds nothing but a copy without it
                    if self._abstract_known(paper):
                        records.append(listed_record(paper, conference))
                        continue
                    record, problem = self._with_abstract(paper, conference)
                    records.append(record)
                    if problem:
                        problems.append(problem)
                offset += len(batch)
                done = offset >= len(papers)
                cursor = Position(offset, done, mark).encode(None)
                yield Page(NAME, key, records, cursor, done, tuple(problems))

    def _abstract_known(self, paper: ListedPaper) -> bool:
        """Whether the paper, by its CVF URL or its listed arXiv preprint, is stored with its
        abstract (no page needed). The CVF URL comes first: a changed listing is read again,
        and its papers without an arXiv link used to cost their pages again."""
        if self.known_abstract is None:
            return False
        if self.known_abstract(paper.url):
            return True
        arxiv_id = normalize.arxiv_id(paper.arxiv_url)
        return arxiv_id is not None and self.known_abstract(arxiv_id)

    def _with_abstract(self, paper: ListedPaper, conference: CvfConference) -> tuple[RawRecord, str | None]:
        """The paper's record completed from its page, and the problem when the page is gone."""
        record = listed_record(paper, conference)
        response = fetch_ok(self.client, NAME, paper.page_url, allow=GONE)
        what = f"the paper page {paper.url}"
        if response.status_code in GONE:
            log.warning("%s answered HTTP %d; stored without its abstract", what, response.status_code)
            return record, f"{what} answered HTTP {response.status_code}; stored without its abstract"
        base_url = self.config.base_url.rstrip("/")
        page = parse_paper_page(response.content, base_url, what, response.charset_encoding)
        # The listing is the primary record; the page fills in what the listing lacked.
        arxiv_url = paper.arxiv_url or page.links.get("arxiv")
        completed = replace(
            record,
            abstract=page.abstract,
            authors=record.authors or page.authors,
            arxiv_id=record.arxiv_id or normalize.arxiv_id(arxiv_url),
            supplementary_url=record.supplementary_url or page.links.get("supp"),
            pdf_url=record.pdf_url or page.links.get("pdf"),
            payload={**record.payload, "abstract": page.abstract, "page_links": page.links},
        )
        return completed, None
