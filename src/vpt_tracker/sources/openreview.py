"""OpenReview API v2 (api2.openreview.net): the notes of a venue, with their decisions.

A configured venue id is fetched with `GET /notes?content.venueid=<id>` (the accepted papers
carry the bare venue id). A venue id that is an invitation (`…/-/Submission`) is fetched with
`invitation=<id>` instead, which returns every submission; each note's own
`content.venueid` then tells its fate: the bare venue id means accepted, a
`…/Rejected_Submission` suffix rejected, and so on. API v2 wraps every content field as
`{"value": …}`; flat v1-style values are read too.

Pages use `limit`/`offset` (at most 1000, the API's ceiling), sorted by `number:asc`:
without a sort the API promises no order, and an offset saved by one run could point into a
differently ordered list on the next. Submission numbers only grow, so earlier offsets stay
valid. The cursor per venue keeps the next offset for the window being fetched.

Paging ends on an empty page, or once the offset reaches the answer's `count`. A page
shorter than `limit` ends it only when the answer has no `count`: the API may answer fewer
notes than asked for while more remain.

The cursor keeps the `count` its offset was counted in. A fetch that resumes and finds
another count reads the venue again from the start: a note that joined the list (a
decision released late joins the accepted ones at its number) or left it moved every note
after it, and resuming at the offset would skip one. So does a fetch whose count changes
between two of its own pages (at most `MAX_RESTARTS` times a venue, then it goes on).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from vpt_tracker import normalize
from vpt_tracker.config import OpenReviewConfig, OpenReviewVenue
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Page, RawRecord, Window
from vpt_tracker.sources.base import Position, SourceError, fetch_ok, read_position

log = logging.getLogger(__name__)

NAME = "openreview"
MAX_PAGE = 1000
MAX_RESTARTS = 2  # reading a venue again from offset 0 when its count changed between pages
SORT = "number:asc"  # a stable order for offset paging: new submissions come last
SITE = "https://openreview.net"
_DECISIONS = {
    "Rejected_Submission": "rejected",
    "Desk_Rejected_Submission": "desk-rejected",
    "Withdrawn_Submission": "withdrawn",
    "Submission": "submitted",
}


def value(content: Mapping[str, Any], key: str) -> Any:
    """A content field, unwrapped from API v2's `{"value": …}`."""
    field = content.get(key)
    if isinstance(field, dict) and "value" in field:
        return field["value"]
    return field


def decision_for(venueid: str | None, venue: OpenReviewVenue) -> str | None:
    """`accepted`, `rejected`, `withdrawn`, … read from a note's `content.venueid`."""
    if not venueid:
        return None
    base = venue.venue_id.split("/-/", 1)[0]
    if venueid == base:
        return "accepted"
    if venueid.startswith(base + "/"):
        suffix = venueid[len(base) + 1 :]
        if suffix in _DECISIONS:
            return _DECISIONS[suffix]
        # Other venues spell refusals their own way ("TMLR/Rejected", "…/Desk_Rejected"): each
        # is one of ingestion's refusals (`ingest.REFUSED`), whatever the spelling.
        words = suffix.lower()
        if "withdraw" in words:
            return "withdrawn"
        if "reject" in words:
            return "desk-rejected" if "desk" in words else "rejected"
        return words
    return None


def _millis(stamp: Any) -> datetime | None:
    """A note's date (milliseconds since 1970); None for a missing or impossible one."""
    if isinstance(stamp, int | float) and stamp > 0:
        try:
            return datetime.fromtimestamp(stamp / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError):  # past year 9999, or infinity
            return None
    return None


def note_record(note: Mapping[str, Any], venue: OpenReviewVenue) -> RawRecord | None:
    """A note as a `RawRecord`; None when it lacks an id or a title."""
    content = note.get("content")
    note_id = note.get("id")
    if not isinstance(content, dict) or not isinstance(note_id, str):
        return None
    title = value(content, "title")
    if not isinstance(title, str) or not title.strip():
        return None
    forum = note.get("forum") if isinstance(note.get("forum"), str) else note_id
    authors = value(content, "authors")
    venueid = value(content, "venueid")
    decision = decision_for(venueid if isinstance(venueid, str) else None, venue)
    pdf = value(content, "pdf")
    code = value(content, "code")
    abstract = value(content, "abstract")
    keywords = value(content, "keywords")
    return RawRecord(
        source=NAME,
        source_id=note_id,
        title=" ".join(title.split()),
        abstract=" ".join(abstract.split()) if isinstance(abstract, str) else "",
        authors=tuple(a for a in authors if isinstance(a, str)) if isinstance(authors, list) else (),
        openreview_id=normalize.openreview_id(forum),
        # Only an accepted paper is a venue paper: a rejected one must not upgrade a preprint.
        venue=venue.name if decision == "accepted" else None,
        year=venue.year if decision == "accepted" else None,
        published=_millis(note.get("pdate")) or _millis(note.get("cdate")),
        updated=_millis(note.get("tmdate")) or _millis(note.get("mdate")),
        categories=tuple(k for k in keywords if isinstance(k, str)) if isinstance(keywords, list) else (),
        pdf_url=SITE + pdf
        if isinstance(pdf, str) and pdf.startswith("/")
        else (pdf if isinstance(pdf, str) else None),
        abs_url=f"{SITE}/forum?id={forum}",
        code_url=code if isinstance(code, str) and code.startswith("http") else None,
        decision=decision,
        comment=value(content, "venue") if isinstance(value(content, "venue"), str) else None,
        payload=dict(note),
    )


class OpenReviewSource:
    """Every configured venue, page by page."""

    name = NAME
    steady_volume = True

    def __init__(self, config: OpenReviewConfig, client: HttpClient) -> None:
        self.config = config
        self.client = client

    def _params(self, venue: OpenReviewVenue, offset: int, limit: int) -> dict[str, str]:
        key = "invitation" if "/-/" in venue.venue_id else "content.venueid"
        return {
            key: venue.venue_id,
            "sort": SORT,
            "limit": str(limit),
            "offset": str(offset),
            "count": "true",
        }

    def _notes(self, venue: OpenReviewVenue, params: dict[str, str]) -> tuple[list[Any], int | None]:
        response = fetch_ok(self.client, NAME, f"{self.config.base_url.rstrip('/')}/notes", params)
        what = f"the {venue.venue_id} notes at offset {params['offset']}"
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise SourceError(NAME, f"malformed JSON in {what}: {exc}") from None
        except RecursionError:  # hostile nesting ([[[[...) exhausts the decoder's stack
            raise SourceError(NAME, f"malformed JSON in {what}: nested too deeply") from None
        if not isinstance(body, dict) or not isinstance(body.get("notes"), list):
            raise SourceError(NAME, f"{what} has no 'notes' list: has the API changed?")
        count = body.get("count")
        return body["notes"], count if isinstance(count, int) else None

    def fetch(self, window: Window, cursors: Mapping[str, str | None]) -> Iterator[Page]:
        limit = min(self.config.page_size, MAX_PAGE)
        for venue in self.config.venues:
            position = read_position(cursors.get(venue.venue_id), window)
            if position.done:
                continue
            offset = position.offset
            saved = int(position.extra) if position.extra and position.extra.isdigit() else None
            resumed = offset > 0
            restarts = 0
            while True:
                notes, count = self._notes(venue, self._params(venue, offset, limit))
                # Resumed, or past this fetch's first page, and the list is not the one the
                # offset was counted in: a note joined (a decision released late) or left it,
                # and every note after it moved. Read the venue again from the start;
                # ingestion skips what it has.
                moved = count is None or count != saved
                if moved and (resumed or (offset > 0 and saved is not None)):
                    if restarts < MAX_RESTARTS:
                        restarts += 1
                        log.info(
                            "%s: %s notes now, not the %s of the pages before offset %d: reading it again",
                            venue.venue_id,
                            count,
                            saved,
                            offset,
                        )
                        offset, resumed, saved = 0, False, None
                        continue
                    log.warning("%s: its notes keep moving; going on at offset %d", venue.venue_id, offset)
                resumed = False
                saved = count
                records = [r for r in (note_record(n, venue) for n in notes if isinstance(n, dict)) if r]
                if notes and not records:
                    raise SourceError(
                        NAME,
                        f"{len(notes)} notes of {venue.venue_id} at offset {offset} had no readable "
                        "id and title: has the API changed?",
                    )
                offset += len(notes)
                # Without a count, a short page is the only sign of the end.
                done = not notes or (offset >= count if count is not None else len(notes) < limit)
                yield Page(
                    source=NAME,
                    cursor_key=venue.venue_id,
                    records=records,
                    cursor=Position(offset, done, None if count is None else str(count)).encode(window),
                    done=done,
                )
                if done:
                    break
