"""The one place where HTTP clients are made.

Every source talks to the outside world through `HttpClient`, so that politeness is enforced
once and for all: a User-Agent that names a contact address, timeouts, a minimum interval
between requests to one host *group* (arXiv asks for one request every 3 s across its API
and RSS hosts together), retries with exponential back-off on 429, 5xx and connection
errors that honour `Retry-After`, conditional requests, and a bound on the body size.

Time is injected (`clock`, `sleep`, `wallclock`) so that tests assert on the recorded
request times instead of waiting for real seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from vpt_tracker import __version__
from vpt_tracker.config import HttpConfig
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)

#: Redirect hops followed per request, as httpx's own default.
MAX_REDIRECTS = 20

#: 5xx that say the request itself is wrong, and would be answered so again.
_PERMANENT_5XX = frozenset({501, 505, 506, 510})


def is_transient(status: int) -> bool:
    """A status worth asking again: 429, 408 (the server gave up waiting for us), 425, and
    any 5xx but the permanent ones. Proxies and CDNs answer outside 500–504 (Cloudflare's
    520–527 when the origin is down, 529 overloaded), and those were returned as final."""
    return status in (408, 425, 429) or (500 <= status <= 599 and status not in _PERMANENT_5XX)


# Timeouts, refused or reset connections, bodies cut short: worth another try. Other httpx
# errors (an unsupported scheme, too many redirects) would fail the same way again.
_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


#: The characters of a URL that an error message shows (`shown_url`).
URL_SHOWN = 240


def shown_url(url: object) -> str:
    """A URL as an error shows it: a long one is cut in the middle, keeping its start (host,
    path, query) and its end (`start=…&max_results=…`). `catalogue enrich` asks arXiv for 100
    ids at once, and an outage was one "line" of 2,100 characters, in the terminal, the run's
    errors and the weekly digest."""
    text = str(url)
    if len(text) <= URL_SHOWN:
        return text
    head = URL_SHOWN * 2 // 3
    return f"{text[:head]}…{text[-(URL_SHOWN - head - 1) :]}"


class HttpError(Exception):
    """A request that failed for good (retries exhausted, or a body over the size bound)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


@dataclass(frozen=True)
class RequestRecord:
    """One request actually sent: what the interval and retry tests assert on."""

    time: float  # the injected clock's reading when the request was sent
    method: str
    url: str
    status: int | None  # None when the connection failed
    group: str = ""
    error: str | None = None


@dataclass
class _Validators:
    """What a conditional request sends back, and the body it stands for."""

    etag: str | None
    last_modified: str | None
    response: httpx.Response


class HttpClient:
    """A polite `httpx.Client` wrapper; see the module docstring for what it enforces."""

    def __init__(
        self,
        config: HttpConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.wallclock = wallclock
        self.request_log: list[RequestRecord] = []
        self._last_sent: dict[str, float] = {}
        self._validators: dict[str, _Validators] = {}
        self._client = httpx.Client(
            headers={"User-Agent": self.user_agent},
            timeout=httpx.Timeout(config.timeout),
            # Followed here, one hop at a time (`_exchange`): each hop is a request to its
            # host and waits that host's turn, which httpx following them itself skipped.
            follow_redirects=False,
            transport=transport,
        )

    @property
    def user_agent(self) -> str:
        return f"vpt-tracker/{__version__} (+https://github.com/vpt-tracker; mailto:{self.config.contact})"

    # ------------------------------------------------------------------ politeness

    def host_group(self, host: str) -> str:
        """Hosts in one group share one interval budget; by default a host is its own group."""
        return self.config.host_groups.get(host, host)

    def min_interval(self, host: str) -> float:
        """The interval of the host's group: the longest configured for the group or any host
        in it, else the default. (A group set by its name has no host defaults left beside
        it, `HttpConfig._over_arxiv_defaults`: `{"arxiv": 1.0}` lowers arXiv's 3 s.)

        One interval for the whole group, whichever of its hosts is asked: a host's own value
        came first, so with `min_interval = { "rss.arxiv.org" = 1.0 }` a feed went out 1 s
        after an API request, where arXiv asks for 3 s between any two of its requests.
        """
        group = self.host_group(host)
        intervals = self.config.min_interval
        grouped = [
            value for name, value in intervals.items() if name == group or self.host_group(name) == group
        ]
        return max(grouped) if grouped else self.config.default_min_interval

    def _wait_turn(self, host: str) -> str:
        group = self.host_group(host)
        last = self._last_sent.get(group)
        if last is not None:
            due = last + self.min_interval(host)
            now = self.clock()
            if now < due:
                self.sleep(due - now)
        return group

    def retry_delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number `attempt` (1-based), capped at `backoff_cap`.

        A server's `Retry-After` (seconds or an HTTP date) wins over the exponential
        back-off, because the server knows when it will take requests again.
        """
        cap = self.config.backoff_cap
        if response is not None:
            after = _retry_after_seconds(response.headers.get("Retry-After"), self.wallclock())
            if after is not None:
                return min(max(after, 0.0), cap)
        return float(min(self.config.backoff_base ** (attempt - 1), cap))

    # ------------------------------------------------------------------ requests

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        conditional: bool = False,
    ) -> httpx.Response:
        """GET with retries; returns the final response (any status `is_transient` does not retry).

        With `conditional=True`, the ETag / Last-Modified of the previous 200 for the same
        URL is sent back. An unchanged resource answers 304, and the client returns the body
        of that previous 200 (with the 304 in the request log), as an HTTP cache would. A
        304 says only that the body has not changed since *this client* last read it, not
        that the caller stored it: a nightly run reads the same RSS feed for a refetch
        window, which skips it, and then for the current one, which must store it.
        Other 4xx are returned for the caller to read
        (the arXiv API explains a bad query in a 400 body). Raises `HttpError` when the
        retries run out or the body exceeds `max_body_bytes`.
        """
        request = self._client.build_request("GET", url, params=params)
        full_url = str(request.url)
        shown = shown_url(full_url)
        if conditional:
            cached = self._validators.get(full_url)
            if cached and cached.etag:
                request.headers["If-None-Match"] = cached.etag
            if cached and cached.last_modified:
                request.headers["If-Modified-Since"] = cached.last_modified
        attempts = self.config.max_retries + 1
        tries = plural(attempts, "attempt")  # `max_retries = 0` said "after 1 attempts"
        for attempt in range(1, attempts + 1):
            try:
                response = self._exchange(request)
            except _RETRY_ERRORS as exc:
                reason = _reason(exc)
                if attempt == attempts:
                    raise HttpError(f"GET {shown} failed after {tries}: {reason}", url=full_url) from exc
                delay = self.retry_delay(attempt, None)
                log.info("GET %s: %s; retrying in %.1fs", full_url, reason, delay)
                self.sleep(delay)
                continue
            except httpx.HTTPError as exc:
                raise HttpError(f"GET {shown} failed: {_reason(exc)}", url=full_url) from exc
            if is_transient(response.status_code):
                if attempt == attempts:
                    raise HttpError(
                        f"GET {shown} answered HTTP {response.status_code} after {tries}",
                        url=full_url,
                        status=response.status_code,
                    )
                delay = self.retry_delay(attempt, response)
                log.info("GET %s: HTTP %d; retrying in %.1fs", full_url, response.status_code, delay)
                self.sleep(delay)
                continue
            if conditional and response.status_code == 200:
                self._remember_validators(full_url, response)
            if conditional and response.status_code == 304 and full_url in self._validators:
                log.info("GET %s: not modified; its body is the one read before", full_url)
                return self._validators[full_url].response
            return response
        raise AssertionError("unreachable")

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send `request` in its host's turn and follow its redirects, each hop in its own turn.

        A hop is a request like any other: to arXiv, `http://` answered 301 to `https://`
        and the hop went out at once (two requests against one per 3 s); a hop to a host of
        another group skipped that group's interval and did not count as its last request.
        Each hop is in the request log. A failure is logged on the hop it happened on.
        """
        for _hop in range(MAX_REDIRECTS + 1):
            group = self._wait_turn(request.url.host)
            sent_at = self.clock()
            self._last_sent[group] = sent_at
            url = str(request.url)
            try:
                response = self._send(request)
            except httpx.HTTPError as exc:
                self.request_log.append(RequestRecord(sent_at, "GET", url, None, group, _reason(exc)))
                raise
            except HttpError as exc:  # an answer refused for its size: sent, and answered
                self.request_log.append(RequestRecord(sent_at, "GET", url, exc.status, group, str(exc)))
                raise
            self.request_log.append(RequestRecord(sent_at, "GET", url, response.status_code, group))
            if response.next_request is None:
                return response
            log.info("GET %s: HTTP %d to %s", url, response.status_code, response.next_request.url)
            request = response.next_request
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send and read the body, refusing one larger than `max_body_bytes`."""
        limit = self.config.max_body_bytes
        shown = shown_url(request.url)
        response = self._client.send(request, stream=True)
        try:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise HttpError(
                    f"GET {shown}: body of {int(declared)} bytes exceeds the {limit}-byte limit",
                    url=str(request.url),
                    status=response.status_code,
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise HttpError(
                        f"GET {shown}: body exceeds the {limit}-byte limit",
                        url=str(request.url),
                        status=response.status_code,
                    )
                chunks.append(chunk)
        finally:
            response.close()
        # Re-wrap the decoded bytes so that `.content` / `.text` work after the stream closed;
        # the encoding headers no longer describe them (httpx would decode them twice).
        headers = httpx.Headers(response.headers)
        for name in ("Content-Encoding", "Content-Length", "Transfer-Encoding"):
            headers.pop(name, None)
        read = httpx.Response(
            response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=request,
        )
        read.next_request = response.next_request  # the redirect to follow, if any
        return read

    def _remember_validators(self, url: str, response: httpx.Response) -> None:
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if etag or modified:
            self._validators[url] = _Validators(etag, modified, response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²", which isdigit() also accepts
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()
