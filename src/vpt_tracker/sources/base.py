"""What every source shares: the `Source` protocol, `SourceError` and cursor helpers.

A source turns one time window into `Page`s of `RawRecord`s. Each page carries the cursor
value that is valid once it is stored; ingestion stores records and cursor in one
transaction, so a killed run resumes at the first page it did not store.

Cursor values are JSON strings that name the window they belong to. A cursor left by an
earlier window is ignored (that window is finished or is the pipeline's to refetch), one
for the same window resumes where it stopped, and a finished one makes the key a no-op.
A source whose request depends on more than the window (arXiv's categories and keywords)
also names its query: an offset into the answer to another query points at other results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from vpt_tracker.http import HttpClient, HttpError, shown_url
from vpt_tracker.models import Page, Window


class SourceError(Exception):
    """A source that cannot go on: an outage, a malformed payload or a changed layout.

    The pipeline records the message on the run and goes on with the other sources; the
    page that failed is not stored and its cursor does not advance.
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class Source(Protocol):
    name: str
    #: Whether every window brings this source its own records, so that a window with far
    #: fewer than usual points at a fault (the health check). arXiv announces new papers
    #: every weekday and OpenReview's venues are read again for each window; a CVF listing is
    #: read only when it changed, so most nights CVF rightly stores nothing.
    steady_volume: bool

    def fetch(self, window: Window, cursors: Mapping[str, str | None]) -> Iterator[Page]:
        """Pages for `window`, resuming each cursor key from `cursors` (a fresh run passes {})."""
        ...


def window_label(window: Window) -> str:
    return f"{window.start.isoformat()}/{window.end.isoformat()}"


@dataclass(frozen=True)
class Position:
    """Where a cursor key stands inside one window: the next offset, or finished."""

    offset: int = 0
    done: bool = False
    extra: str | None = None  # a source-specific marker, e.g. a listing fingerprint
    query: str | None = None  # `query_mark()` of the request the offset is into

    def encode(self, window: Window | None) -> str:
        data: dict[str, Any] = {"offset": self.offset, "done": self.done}
        if window is not None:
            data["window"] = window_label(window)
        if self.extra is not None:
            data["extra"] = self.extra
        if self.query is not None:
            data["query"] = self.query
        return json.dumps(data, sort_keys=True)


def query_mark(query: str) -> str:
    """A short fingerprint of a query, kept in the cursor in place of the (long) query."""
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def _decode(value: str | None) -> dict[str, Any] | None:
    """A stored cursor value as its JSON object; None when absent or not one."""
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_position(value: str | None, window: Window | None, *, query: str | None = None) -> Position:
    """The stored position for this window (and `query`, a `query_mark()`, when given); a
    fresh one when absent, stale, for another query or unreadable.

    An unreadable value is not fatal: starting the window again only re-reads records that
    ingestion recognises as duplicate sightings. Nor is one for another query (the config's
    categories or keywords changed since): its offset counts results of that query, and
    resuming there would skip results of this one. A cursor that names no query (written
    before queries were named) counts as another query.
    """
    data = _decode(value)
    if data is None:
        return Position()
    if window is not None and data.get("window") != window_label(window):
        return Position()
    if query is not None and data.get("query") != query:
        return Position()
    offset = data.get("offset", 0)
    return Position(
        offset=offset if isinstance(offset, int) and offset >= 0 else 0,
        done=bool(data.get("done", False)),
        extra=data.get("extra") if isinstance(data.get("extra"), str) else None,
        query=query,
    )


def unfinished(value: str | None, window: Window) -> bool:
    """Whether `value` is a position part-way into `window`: one a refetch of it can resume.

    A finished position is not: the pipeline refetches a window whose source returned far
    fewer records than usual too, and that refetch must read it whole again.
    """
    position = read_position(value, window)  # a fresh one (offset 0) for anything else
    return not position.done and position.offset > 0


def reopen(value: str | None, window: Window) -> str | None:
    """`value` without its "done" flag when it is a finished position in `window`.

    For a window that has not ended yet: the next fetch of it resumes at the same offset
    instead of taking the window for finished. Other values are returned as they are.
    """
    data = _decode(value)
    if data is None or data.get("window") != window_label(window) or not data.get("done"):
        return value
    return json.dumps({**data, "done": False}, sort_keys=True)


def fetch_ok(
    client: HttpClient,
    source: str,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    conditional: bool = False,
    allow: tuple[int, ...] = (),
) -> httpx.Response:
    """GET through the polite client; transport failures and bad statuses become `SourceError`."""
    try:
        response = client.get(url, params, conditional=conditional)
    except HttpError as exc:
        raise SourceError(source, str(exc)) from exc
    if response.status_code == 200 or response.status_code in allow:
        return response
    raise SourceError(source, f"GET {shown_url(response.request.url)} answered HTTP {response.status_code}")
