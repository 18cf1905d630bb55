"""Shared fixtures of the sources tests: replay servers and a polite client on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sources.helpers import FIXTURES, WALLCLOCK, FakeTime, MakeClient
from vpt_tracker.config import HttpConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.replay import ReplayServer


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """The packaged replay data set (the demo's), on a real loopback server."""
    with ReplayServer() as server:
        yield server


@pytest.fixture
def fixture_replay() -> Iterator[ReplayServer]:
    """tests/fixtures/sources (arXiv API series and RSS/RDF edge cases) on a loopback server."""
    with ReplayServer(FIXTURES) as server:
        yield server


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[MakeClient]:
    """Build HttpClients on the fake clock; no interval unless a test asks for one."""
    made: list[HttpClient] = []

    def make(transport: httpx.BaseTransport | None = None, **config: object) -> HttpClient:
        settings = {"min_interval": {}, "default_min_interval": 0.0, "timeout": 5.0, **config}
        client = HttpClient(
            HttpConfig(**settings),  # type: ignore[arg-type]
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            transport=transport,
            wallclock=lambda: WALLCLOCK,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
