"""The arXiv daily feeds per category (rss.arxiv.org/rss/<cat>), parsed with feedparser.

A feed holds one announcement: the papers announced that day as `new`, `cross`, `replace`
or `replace-cross`. Both formats arXiv has served are read: RSS 2.0 (since 2024-03, the
type in `<arxiv:announce_type>`, the abstract after "Abstract:" in the description) and the
legacy RSS 1.0/RDF feed (the type in a title suffix such as `(arXiv:2401.1v2 [cs.CV]
UPDATED)`, authors as escaped HTML links). Weekend and holiday feeds have no items: that
is a normal, empty result.

The feed only ever shows the latest announcement, so the window decides whether that
announcement is wanted (its date must fall inside), and the cursor per category remembers
the last announcement stored, so that a rerun the same day stores nothing twice.
"""

from __future__ import annotations

import calendar
import html
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser
from lxml import etree

from vpt_tracker import normalize
from vpt_tracker.config import ArxivRssConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Page, RawRecord, Window
from vpt_tracker.sources.base import Position, SourceError, fetch_ok, read_position

log = logging.getLogger(__name__)

NAME = "arxiv_rss"
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
_ROOTS = ("rss", "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF")
_RSS2_DESCRIPTION = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?(?P<abstract>.*)$", re.S
)
_LEGACY_TITLE = re.compile(
    r"^(?P<title>.*?)\.?\s*\(arXiv:(?P<id>\S+?)\s*\[(?P<cat>[^\]]+)\]"
    r"\s*(?P<flag>UPDATED|CROSS LISTED)?\)\s*$",
    re.S,
)
_TAGS = re.compile(r"<[^<>]+>")  # not [^>]: a run of "<" without ">" would scan quadratically
_SPACES = re.compile(r"\s+")


class Announcement:
    """One parsed feed: when it was announced and the records it lists."""

    def __init__(self, announced: datetime | None, items: int, records: list[RawRecord]) -> None:
        self.announced = announced
        self.items = items
        self.records = records


def parse_feed(body: bytes, category: str) -> Announcement:
    """Parse an RSS 2.0 or RDF daily feed; malformed or unknown layouts raise `SourceError`."""
    what = f"the {category} feed"
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise SourceError(NAME, f"malformed XML in {what}: {exc}") from None
    if root.tag not in _ROOTS:
        raise SourceError(NAME, f"{what} is neither RSS 2.0 nor RDF (root element {root.tag!r})")
    parsed = feedparser.parse(body)
    items = len(root.findall(".//item")) + len(root.findall(".//{http://purl.org/rss/1.0/}item"))
    if items and not parsed.entries:
        # lxml reads items that feedparser cannot (an encoding it guesses wrong): not an empty day.
        raise SourceError(NAME, f"{what} has {items} items but none could be decoded: wrong encoding?")
    legacy = parsed.version == "rss10"
    announced = _struct_time(parsed.feed.get("published_parsed") or parsed.feed.get("updated_parsed"))
    texts = None if legacy else _item_texts(root)
    if texts is not None and len(texts) != len(parsed.entries):
        texts = None  # lxml and feedparser disagree on the items: feedparser's texts, as before
    records = []
    for position, entry in enumerate(parsed.entries):
        if legacy:
            record = _legacy_record(entry, announced)
        else:
            record = _record(entry, texts[position] if texts else None, announced)
        if record is not None:
            records.append(record)
    if parsed.entries and not records:
        raise SourceError(
            NAME,
            f"{what} has {len(parsed.entries)} items but none could be read: has the feed layout changed?",
        )
    return Announcement(announced, len(parsed.entries), records)


def _item_texts(root: Any) -> list[tuple[str | None, str | None]]:
    """Each RSS 2.0 item's `<title>` and `<description>` as the feed wrote them.

    arXiv writes both as plain text. feedparser takes a description for HTML: it dropped
    what looked like a tag ("a hybrid token, <HYBNEXT>"), and the tag stripper that HTML
    needs took "<20% to >" out of "survival from <20% to >70%".
    """
    return [(item.findtext("title"), item.findtext("description")) for item in root.findall("./channel/item")]


_NEW_STYLE_ID = re.compile(r"^(\d{2})(\d{2})\.\d{4,5}$")


def _first_announced(identifier: str, announced: datetime | None) -> bool:
    """Whether a paper announced at `announced` can be a first announcement.

    arXiv gives an id in the month of a paper's first announcement (an evening announcement
    may date from the next day, hence the month before too); an older id is an older paper.
    """
    match = _NEW_STYLE_ID.match(identifier)
    if announced is None:
        return True
    if match is None:  # an old-style id: before 2007
        return False
    months = (announced.year - 2000) * 12 + announced.month - (int(match.group(1)) * 12 + int(match.group(2)))
    return months <= 1


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)


def _plain(text: str | None) -> str:
    """Text without HTML tags or entities, on one line."""
    return _one_line(html.unescape(_TAGS.sub(" ", text or "")))


def _authors(text: str | None) -> tuple[str, ...]:
    """The names of a comma-separated author list, without the affiliations some give.

    Real lists read "Siqi Li (Peking University, Chinese Institute for Brain Research,
    Beijing), Zhi Li (NeuCyber Neurotech)" (RSS 2.0) or "Jesper Jensen (1, 2), ... ((1)
    Aalborg University, ...)" (RDF). Split as they came, they gave authors "Beijing)", and
    surnames such as "neurotech" that no other source's list of the paper shares.
    """
    names = _without_parentheses(text or "").split(",")
    return tuple(name for name in (_plain(part) for part in names) if name)


def _without_parentheses(text: str) -> str:
    """`text` without its parenthesised groups (nested ones too), in one pass.

    An opening parenthesis that never closes is kept with what follows it: a truncated list
    keeps its names.
    """
    kept: list[str] = []
    opened: list[int] = []  # where in `kept` each open group starts
    for char in text:
        if char == "(":
            opened.append(len(kept))
        elif char == ")" and opened:
            del kept[opened.pop() :]
            kept.append(" ")
            continue
        kept.append(char)
    return "".join(kept)


def _categories(entry: Any) -> tuple[str, ...]:
    return tuple(tag["term"] for tag in entry.get("tags", []) if tag.get("term"))


def _dates(
    announce: str, identifier: str, announced: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """(published, updated) of an item announced at `announced`, by its announce type.

    An item's announcement day is when a new paper (or its cross-listing) came out, but a
    replacement re-announces a paper of any age, and so does a cross-listing added later
    (2311.06273 in cs.CL in August 2026): its date is when it was updated. Taken for its
    publication, it made a 2025 paper "arXiv 2026".
    """
    replaced = announce not in ("new", "cross") or not _first_announced(identifier, announced)
    return (None, announced) if replaced else (announced, None)


def _record(
    entry: Any, texts: tuple[str | None, str | None] | None = None, feed_announced: datetime | None = None
) -> RawRecord | None:
    """An RSS 2.0 item; None when it has no arXiv id or title.

    `texts` are the item's title and description as written (see `_item_texts`); without
    them, feedparser's are read as HTML. An item's `<pubDate>` is its announcement; items
    without one (all of them until 2025) were announced with the feed (`feed_announced`,
    the channel's `<pubDate>`), and used to get no date at all, so their papers no year.
    """
    raw_title, raw_summary = texts or (None, None)
    clean = _one_line if raw_summary is not None else _plain
    summary = raw_summary if raw_summary is not None else entry.get("summary", "")
    match = _RSS2_DESCRIPTION.match(summary)
    versioned = match.group("id") if match else (entry.get("id", "").rsplit(":", 1)[-1] or None)
    identifier = normalize.arxiv_id(versioned) or normalize.arxiv_id(entry.get("link"))
    title = _one_line(raw_title) if raw_title is not None else _plain(entry.get("title"))
    if not identifier or not title:
        return None
    announce = (entry.get("arxiv_announce_type") or (match.group("type") if match else "") or "").strip()
    abstract = clean(match.group("abstract")) if match else clean(summary)
    announced = _struct_time(entry.get("published_parsed")) or feed_announced
    published, updated = _dates(announce, identifier, announced)
    categories = _categories(entry)
    return _build(
        entry,
        identifier=identifier,
        versioned=versioned or identifier,
        title=title,
        abstract=abstract,
        authors=_authors(entry.get("author")),
        announce_type=announce if announce in ANNOUNCE_TYPES else announce or None,
        published=published,
        updated=updated,
        doi=normalize.doi(entry.get("arxiv_doi")),
        journal_ref=_plain(entry.get("arxiv_journal_reference")) or None,
        # The first <category> is the paper's primary: the feed's own for `new` and `replace`,
        # another for a cross-listing (checked on every item of nine real feeds, 2024-2026).
        primary=categories[0] if categories else None,
        source_texts=(raw_title, raw_summary) if texts else None,
    )


def _legacy_record(entry: Any, announced: datetime | None = None) -> RawRecord | None:
    """An RDF item; the announce type is the title's `UPDATED` / `CROSS LISTED` suffix.

    RDF items carry no date: each was announced with the feed (`announced`, the channel's
    `<dc:date>`), and is dated by it as an RSS 2.0 item is (they used to get no date).
    """
    match = _LEGACY_TITLE.match(_plain(entry.get("title")))
    if not match:
        return None
    versioned = match.group("id")
    identifier = normalize.arxiv_id(versioned)
    if not identifier:
        return None
    flag = match.group("flag")
    announce = {"UPDATED": "replace", "CROSS LISTED": "cross"}.get(flag or "", "new")
    published, updated = _dates(announce, identifier, announced)
    return _build(
        entry,
        identifier=identifier,
        versioned=versioned,
        title=match.group("title").strip(),
        abstract=_plain(entry.get("summary")),
        authors=_authors(html.unescape(_TAGS.sub("", entry.get("author", "")))),
        announce_type=announce,
        published=published,
        updated=updated,
        doi=None,
        journal_ref=None,
        primary=match.group("cat").strip(),
    )


def _build(
    entry: Any,
    *,
    identifier: str,
    versioned: str,
    title: str,
    abstract: str,
    authors: tuple[str, ...],
    announce_type: str | None,
    published: datetime | None,
    doi: str | None,
    journal_ref: str | None,
    primary: str | None = None,
    updated: datetime | None = None,
    source_texts: tuple[str | None, str | None] | None = None,
) -> RawRecord:
    categories = _categories(entry) or ((primary,) if primary else ())
    title_text, summary_text = source_texts or (entry.get("title"), entry.get("summary"))
    payload = {
        "id": entry.get("id"),
        "link": entry.get("link"),
        "title": title_text,
        "summary": summary_text,
        "author": entry.get("author"),
        "categories": list(categories),
        "announce_type": announce_type,
        "published": entry.get("published"),
        "doi": doi,
        "journal_ref": journal_ref,
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
        published=published,
        updated=updated,
        categories=categories,
        primary_category=primary,
        journal_ref=journal_ref,
        abs_url=f"https://arxiv.org/abs/{identifier}",
        pdf_url=f"https://arxiv.org/pdf/{versioned}",
        announce_type=announce_type,
        payload=payload,
    )


class ArxivRssSource:
    """The latest announcement of each configured category, when it falls in the window."""

    name = NAME
    steady_volume = True

    def __init__(self, config: ArxivRssConfig, client: HttpClient) -> None:
        self.config = config
        self.client = client

    def feed_url(self, category: str) -> str:
        return f"{self.config.base_url.rstrip('/')}/{category}"

    def fetch(self, window: Window, cursors: Mapping[str, str | None]) -> Iterator[Page]:
        for category in self.config.categories:
            previous = read_position(cursors.get(category), None)
            response = fetch_ok(self.client, NAME, self.feed_url(category), conditional=True, allow=(304,))
            if response.status_code == 304:
                log.info("%s feed unchanged since the last request", category)
                continue
            feed = parse_feed(response.content, category)
            stamp = feed.announced.isoformat() if feed.announced else None
            if feed.announced is not None and not (window.start <= feed.announced < window.end):
                log.info("%s feed of %s is outside the window; skipped", category, stamp)
                continue
            if stamp is not None and previous.extra == stamp:
                log.info("%s feed of %s is already stored", category, stamp)
                continue
            if not feed.items:
                log.info("%s feed of %s is empty (weekend or holiday)", category, stamp)
            records = feed.records
            yield Page(
                source=NAME,
                cursor_key=category,
                records=records,
                cursor=Position(offset=len(records), done=True, extra=stamp).encode(None),
                done=True,
            )
