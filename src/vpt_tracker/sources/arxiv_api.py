"""The arXiv API (export.arxiv.org/api/query): windows of submissions, id lists and title search.

The `arxiv` package builds the request (`arxiv.Search` turns a query, an id list and a sort
order into the API's URL arguments), but its `Client` does its own HTTP with its own
sleeping and retries, which would bypass `HttpClient`'s shared 3 s arXiv budget. So the
request goes through `HttpClient`, and the Atom body is parsed here by namespace with lxml
(as the `arxiv` package itself does since 4.0), strictly: a malformed document must become
a `SourceError`, whereas the package's parser recovers silently and would return nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import arxiv
from lxml import etree

from vpt_tracker import normalize
from vpt_tracker.config import ArxivApiConfig
from vpt_tracker.http import HttpClient, shown_url
from vpt_tracker.models import Page, RawRecord, Window
from vpt_tracker.sources.base import Position, SourceError, fetch_ok, query_mark, read_position

log = logging.getLogger(__name__)

NAME = "arxiv_api"
CURSOR_KEY = "query"
MAX_PAGE = 2000  # the API's documented ceiling for max_results
MAX_REACHABLE = 30000  # the API serves no result past this offset
EMPTY_PAGE_RETRIES = 2  # asking again for an empty page before `totalResults` says the end
MAX_RESTARTS = 2  # starting a window over when its total changed between pages (`_moved`)
ID_BATCH = 100

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
}
_SPACES = re.compile(r"\s+")


def build_query(
    categories: list[str],
    keywords: list[str],
    window: Window | None = None,
    lookback: timedelta = timedelta(0),
) -> str:
    """`(cat:A OR cat:B) AND (all:k1 OR all:"k 2") AND submittedDate:[from TO to]`.

    submittedDate bounds are inclusive minutes, so the half-open window ends one minute early.
    `from` is `lookback` before the window: the API serves a submission only once arXiv has
    announced it (20:00 ET for what came in by 14:00 ET, after the weekend for Friday
    afternoon's), so when the previous window was fetched, its last hours were not there
    yet. What the look-back reads again is stored already and ingestion skips it.
    """
    parts = []
    if categories:
        parts.append("(" + " OR ".join(f"cat:{category}" for category in categories) + ")")
    if keywords:
        terms = [f'all:"{word}"' if " " in word else f"all:{word}" for word in keywords]
        parts.append("(" + " OR ".join(terms) + ")")
    if window is not None:
        last = window.end - timedelta(minutes=1)
        parts.append(f"submittedDate:[{_minute(window.start - lookback)} TO {_minute(last)}]")
    if not parts:
        raise ValueError("an arXiv query needs categories, keywords or a window")
    return " AND ".join(parts)


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


class FeedPage:
    """One parsed API response: its totals and the records of its entries."""

    def __init__(self, total: int, entries: int, records: list[RawRecord]) -> None:
        self.total = total
        self.entries = entries
        self.records = records


def parse_feed(body: bytes, *, source: str = NAME, what: str = "response") -> FeedPage:
    """Parse an API Atom response; errors, malformed XML and unknown layouts raise `SourceError`."""
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise SourceError(source, f"malformed XML in {what}: {exc}") from None
    if root.tag != f"{{{NS['atom']}}}feed":
        raise SourceError(source, f"{what} is not an Atom feed (root element {root.tag!r})")
    entries = root.findall("atom:entry", NS)
    for entry in entries:
        entry_id = _text(entry, "atom:id") or ""
        if "/api/errors" in entry_id:
            message = _text(entry, "atom:summary") or entry_id.rsplit("#", 1)[-1]
            raise SourceError(source, f"arXiv API error: {message}")
    total_text = _text(root, "opensearch:totalResults")
    try:
        total = int(total_text) if total_text is not None else -1
    except ValueError:
        total = -1
    records = [record for record in (_record(entry) for entry in entries) if record is not None]
    if entries and not records:
        raise SourceError(
            source, f"{what} has {len(entries)} entries but none could be read: has the API layout changed?"
        )
    return FeedPage(total, len(entries), records)


def _text(element: Any, path: str) -> str | None:
    found = element.find(path, NS)
    if found is None or found.text is None:
        return None
    return str(found.text)


def _clean(text: str | None) -> str:
    return _SPACES.sub(" ", text or "").strip()


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record(entry: Any) -> RawRecord | None:
    """An entry as a `RawRecord`; None for an entry without an arXiv id or title."""
    entry_url = _text(entry, "atom:id")
    identifier = normalize.arxiv_id(entry_url)
    title = _clean(_text(entry, "atom:title"))
    if not identifier or not title or entry_url is None:
        return None
    versioned = entry_url.rstrip("/").rsplit("/abs/", 1)[-1]
    authors = tuple(_clean(_text(author, "atom:name")) for author in entry.findall("atom:author", NS))
    categories = tuple(cat.get("term") for cat in entry.findall("atom:category", NS) if cat.get("term"))
    primary = entry.find("arxiv:primary_category", NS)
    pdf_url = abs_url = doi_url = None
    for link in entry.findall("atom:link", NS):
        href = link.get("href")
        if link.get("title") == "pdf":
            pdf_url = href
        elif link.get("title") == "doi":
            doi_url = href
        elif link.get("rel") == "alternate":
            abs_url = href
    published = _when(_text(entry, "atom:published"))
    updated = _when(_text(entry, "atom:updated"))
    comment = _clean(_text(entry, "arxiv:comment")) or None
    journal_ref = _clean(_text(entry, "arxiv:journal_ref")) or None
    doi = normalize.doi(_text(entry, "arxiv:doi")) or normalize.doi(doi_url)
    abstract = _clean(_text(entry, "atom:summary"))
    payload = {
        "id": entry_url,
        "title": title,
        "summary": abstract,
        "authors": list(authors),
        "categories": list(categories),
        "primary_category": primary.get("term") if primary is not None else None,
        "published": _text(entry, "atom:published"),
        "updated": _text(entry, "atom:updated"),
        "comment": comment,
        "journal_ref": journal_ref,
        "doi": doi,
        "pdf": pdf_url,
        "abs": abs_url,
    }
    return RawRecord(
        source=NAME,
        source_id=versioned,
        title=title,
        abstract=abstract,
        authors=authors,
        arxiv_id=identifier,
        arxiv_version=normalize.arxiv_version(versioned),
        doi=doi,
        venue="arXiv",
        year=published.year if published else None,
        published=published,
        updated=updated,
        categories=categories,
        primary_category=primary.get("term") if primary is not None else None,
        comment=comment,
        journal_ref=journal_ref,
        pdf_url=pdf_url,
        abs_url=abs_url or f"https://arxiv.org/abs/{versioned}",
        payload=payload,
    )


def _stays_empty(offset: int, expected: int, size: int) -> None:
    """An empty page at `offset` that asking again did not fill, of `expected` results.

    `totalResults` can overstate a little, so an empty page a few results short of it is the
    end of the window: short by less than a page (the last page would have held what is
    missing) and by less than the results before it (most of what was announced came). A
    page further short, or an empty first page that announces results, is arXiv's empty-page
    glitch outlasting the retries, so the source fails for this run, as the `arxiv` package
    raises `UnexpectedEmptyPageError`: ending the window there would mark it done and lose
    every result after `offset` for good. The pages before stay stored and the cursor stays
    at `offset`, so the next fetch of the window resumes there. An empty page's own count is
    not trusted over an earlier page's (kept in the cursor): arXiv's empty answers say 0 results.
    """
    missing = min(expected, MAX_REACHABLE) - offset
    if missing < min(size, offset):
        log.warning(
            "arXiv stays empty at start=%d of %d results (%d short, less than a page of %d and "
            "than the %d before it): the window ends here",
            offset,
            expected,
            missing,
            size,
            offset,
        )
        return
    raise SourceError(
        NAME,
        f"arXiv gave an empty page at start={offset} of {expected} results {EMPTY_PAGE_RETRIES + 1} "
        f"times: {missing} reachable results are still missing; the next fetch resumes at start={offset}",
    )


def _moved(page: FeedPage, offset: int, expected: int) -> bool:
    """Whether a page at `offset` shows the window's results moved since the pages before it.

    An offset only means the same results while the query announces the same total: a
    submission announced late (held for moderation) or removed since the page before (of this
    fetch, or of the one that saved the cursor) shifts every result after it, and going on at
    the offset would skip one. The fetch then starts the window over (ingestion skips what is
    stored). arXiv's empty glitch says 0 results, which is no new total: that page is asked
    for again as on any fetch. A cursor without a total cannot show the results did not move,
    so it starts over too.
    """
    if expected >= 0 and (page.total == expected or (not page.entries and page.total <= 0)):
        return False
    log.info(
        "arXiv announces %d results for this window, not the %d of the pages before start=%d: "
        "the results may have moved, so the window starts over",
        page.total,
        expected,
        offset,
    )
    return True


def _count(expected: int) -> str | None:
    return str(expected) if expected >= 0 else None


class ArxivApiSource:
    """Submissions to the configured categories (and keywords) within a window, oldest first."""

    name = NAME
    steady_volume = True

    def __init__(self, config: ArxivApiConfig, client: HttpClient) -> None:
        self.config = config
        self.client = client

    def _params(
        self, query: str = "", ids: list[str] | None = None, start: int = 0, size: int = 10
    ) -> dict[str, str]:
        search = arxiv.Search(
            query=query,
            id_list=ids or [],
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Ascending,
        )
        params = dict(search._url_args())
        if not ids:
            params.pop("id_list", None)
        params.update({"start": str(start), "max_results": str(size)})
        return params

    def _page(self, params: dict[str, str]) -> FeedPage:
        response = fetch_ok(self.client, NAME, self.config.base_url, params, allow=(400,))
        what = f"the response to start={params.get('start')}"
        page = parse_feed(response.content, what=what)
        if response.status_code == 400:
            raise SourceError(NAME, f"arXiv API answered HTTP 400 to {shown_url(response.request.url)}")
        return page

    def fetch(self, window: Window, cursors: Mapping[str, str | None]) -> Iterator[Page]:
        lookback = timedelta(days=self.config.lookback_days)
        query = build_query(self.config.categories, self.config.keywords, window, lookback)
        mark = query_mark(query)
        position = read_position(cursors.get(CURSOR_KEY), window, query=mark)
        if position.done:
            return
        size = min(self.config.page_size, MAX_PAGE)
        offset = position.offset
        # The most results any page of this window has announced, kept in the cursor: a fetch
        # resumed after an empty page must not take arXiv's empty answer ("0 results") for the end.
        expected = int(position.extra) if position.extra and position.extra.isdigit() else -1
        resumed = offset > 0
        restarts = 0
        while True:
            page = self._page(self._params(query, start=offset, size=size))
            for _ in range(EMPTY_PAGE_RETRIES):
                if page.entries or offset >= max(expected, page.total):
                    break
                # arXiv sometimes answers an empty page in the middle of a result set, and the
                # same request a moment later is full (the `arxiv` package retries it too).
                log.info(
                    "arXiv gave an empty page at start=%d of %d results; asking again",
                    offset,
                    max(expected, page.total),
                )
                page = self._page(self._params(query, start=offset, size=size))
            # Checked on every page after the first, not only on a resumed one: 3 s between
            # pages is time enough for arXiv's evening announcement to add to the window.
            if (resumed or (offset > 0 and expected >= 0)) and _moved(page, offset, expected):
                if restarts < MAX_RESTARTS:
                    restarts += 1
                    offset, expected, resumed = 0, -1, False
                    continue
                log.warning("arXiv's results for this window keep moving; going on at start=%d", offset)
            resumed = False
            expected = max(expected, page.total)
            if not page.entries and offset < expected:
                _stays_empty(offset, expected, size)
            # By entries, not records: an entry that cannot be read is skipped, not asked for again.
            offset += page.entries
            exhausted = (
                not page.entries or (page.total >= 0 and offset >= page.total) or offset >= MAX_REACHABLE
            )
            if offset >= MAX_REACHABLE and page.total > MAX_REACHABLE:
                log.warning("arXiv query has %d results; only the first %d are reachable", page.total, offset)
            yield Page(
                source=NAME,
                cursor_key=CURSOR_KEY,
                records=page.records,
                cursor=Position(offset, exhausted, _count(expected), mark).encode(window),
                done=exhausted,
            )
            if exhausted:
                return

    def fetch_ids(self, ids: list[str]) -> Iterator[RawRecord]:
        """The current version of each id (unknown ids are simply absent), in batches of 100."""
        for first in range(0, len(ids), ID_BATCH):
            batch = ids[first : first + ID_BATCH]
            yield from self._page(self._params(ids=batch, size=len(batch))).records

    def search_title(self, title: str, limit: int = 10) -> list[RawRecord]:
        """Papers whose title matches `title` as a phrase (quotes and punctuation dropped)."""
        phrase = " ".join(normalize.fold_text(title).split())
        if not phrase:
            return []
        return self._page(self._params(query=f'ti:"{phrase}"', size=limit)).records
