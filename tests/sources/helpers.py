"""Helpers of the sources tests: an injected clock and a transport onto the replay server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from vpt_tracker.http import HttpClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
WALLCLOCK = datetime(2026, 8, 21, 6, 30, tzinfo=UTC)

# The `make_client` fixture: builds an HttpClient on the fake clock from HttpConfig overrides.
MakeClient = Callable[..., HttpClient]


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class LoopbackTransport(httpx.BaseTransport):
    """Sends every request to the replay server, keeping the original URL's host in the client.

    The client under test still sees `export.arxiv.org` and `rss.arxiv.org`, so their host
    group and interval are the production ones, while the bytes go to 127.0.0.1.
    """

    def __init__(self, base_url: str) -> None:
        self.target = httpx.URL(base_url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host=self.target.host, port=self.target.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
