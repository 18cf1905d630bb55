"""HttpClient against a real loopback server: retries, Retry-After, faults, intervals, 304."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from itertools import pairwise

import pytest

from sources.helpers import WALLCLOCK, FakeTime, LoopbackTransport, MakeClient
from vpt_tracker.config import ArxivApiConfig, ArxivRssConfig, HttpConfig
from vpt_tracker.http import HttpClient, HttpError
from vpt_tracker.models import Window
from vpt_tracker.replay import Fault, ReplayServer
from vpt_tracker.sources.arxiv_api import ArxivApiSource
from vpt_tracker.sources.arxiv_rss import ArxivRssSource

FEED = "/rss/cs.CV"


def test_user_agent_names_the_contact_and_reaches_the_server(
    replay: ReplayServer, make_client: MakeClient
) -> None:
    client = make_client(contact="Jane Maintainer <jane@example.org>")
    response = client.get(replay.base_url + FEED)
    assert response.status_code == 200
    sent = replay.requests[-1].headers["user-agent"]
    assert "jane@example.org" in sent and sent.startswith("vpt-tracker/")


def test_429_with_retry_after_seconds_is_waited_out(
    replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    replay.inject(Fault("status", match=FEED, status=429, headers={"Retry-After": "7"}))
    client = make_client()
    response = client.get(replay.base_url + FEED)
    assert response.status_code == 200
    assert [r.status for r in client.request_log] == [429, 200]
    assert fake_time.sleeps == [7.0]
    assert client.request_log[1].time - client.request_log[0].time == pytest.approx(7.0)


def test_retry_after_as_http_date(replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime) -> None:
    when = format_datetime(WALLCLOCK + timedelta(seconds=42), usegmt=True)
    replay.inject(Fault("status", match=FEED, status=429, headers={"Retry-After": when}))
    client = make_client()
    assert client.get(replay.base_url + FEED).status_code == 200
    assert fake_time.sleeps == [42.0]


def test_retry_after_is_capped(replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime) -> None:
    replay.inject(Fault("status", match=FEED, status=429, headers={"Retry-After": "86400"}))
    client = make_client(backoff_cap=60.0)
    assert client.get(replay.base_url + FEED).status_code == 200
    assert fake_time.sleeps == [60.0]


def test_503_backs_off_exponentially(
    replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    replay.inject(Fault("status", match=FEED, status=503, times=3))
    client = make_client(backoff_base=2.0)
    assert client.get(replay.base_url + FEED).status_code == 200
    assert [r.status for r in client.request_log] == [503, 503, 503, 200]
    assert fake_time.sleeps == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("status", [408, 520, 522, 529])
def test_transient_statuses_beyond_500_to_504_are_retried(
    replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime, status: int
) -> None:
    """A request timeout, Cloudflare's origin-down answers (520–527) and 529 "overloaded" pass
    as 503 does; they were returned as final, and the source failed for the night."""
    replay.inject(Fault("status", match=FEED, status=status, times=2))
    client = make_client(backoff_base=2.0)
    assert client.get(replay.base_url + FEED).status_code == 200
    assert [r.status for r in client.request_log] == [status, status, 200]
    assert fake_time.sleeps == [1.0, 2.0]


@pytest.mark.parametrize("status", [404, 501, 505])
def test_answers_that_would_repeat_are_returned_at_once(
    replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime, status: int
) -> None:
    replay.inject(Fault("status", match=FEED, status=status, times=-1))
    client = make_client()
    assert client.get(replay.base_url + FEED).status_code == status
    assert len(client.request_log) == 1 and fake_time.sleeps == []


def test_persistent_503_gives_up_after_max_retries(replay: ReplayServer, make_client: MakeClient) -> None:
    replay.inject(Fault("status", match=FEED, status=503, times=-1))
    client = make_client(max_retries=2)
    with pytest.raises(HttpError, match="HTTP 503 after 3 attempts") as caught:
        client.get(replay.base_url + FEED)
    assert caught.value.status == 503
    assert len(client.request_log) == 3


def test_without_retries_one_attempt_is_counted_as_one(replay: ReplayServer, make_client: MakeClient) -> None:
    # `max_retries = 0` (no retries): it said "after 1 attempts".
    replay.inject(Fault("status", match=FEED, status=503, times=-1))
    with pytest.raises(HttpError, match=r"answered HTTP 503 after 1 attempt$"):
        make_client(max_retries=0).get(replay.base_url + FEED)


def test_timeout_is_retried(replay: ReplayServer, make_client: MakeClient) -> None:
    replay.inject(Fault("delay", match=FEED, delay=1.0))
    client = make_client(timeout=0.2)
    assert client.get(replay.base_url + FEED).status_code == 200
    first, second = client.request_log
    assert first.status is None and "Timeout" in (first.error or "")
    assert second.status == 200


def test_connection_reset_is_retried(replay: ReplayServer, make_client: MakeClient) -> None:
    replay.inject(Fault("reset", match=FEED))
    client = make_client()
    response = client.get(replay.base_url + FEED)
    assert response.status_code == 200 and b"<rss" in response.content
    assert client.request_log[0].status is None
    assert len(client.request_log) == 2


def test_truncated_body_is_retried_then_reported(replay: ReplayServer, make_client: MakeClient) -> None:
    replay.inject(Fault("truncate", match=FEED))
    client = make_client()
    full = client.get(replay.base_url + FEED)
    assert full.status_code == 200 and full.content.rstrip().endswith(b"</rss>")
    assert client.request_log[0].status is None and "Protocol" in (client.request_log[0].error or "")

    replay.inject(Fault("truncate", match=FEED, times=-1))
    with pytest.raises(HttpError, match="failed after 2 attempts"):
        make_client(max_retries=1).get(replay.base_url + FEED)


def test_body_size_bound(replay: ReplayServer, make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=10_000)
    with pytest.raises(HttpError, match="exceeds the 10000-byte limit"):
        client.get(replay.base_url + FEED)
    # The request was sent and answered: it is in the log (and in a fetch's request count),
    # which it was not, unlike one whose connection failed.
    [record] = client.request_log
    assert record.status == 200 and "exceeds the 10000-byte limit" in (record.error or "")


def test_4xx_is_returned_not_retried(replay: ReplayServer, make_client: MakeClient) -> None:
    client = make_client()
    response = client.get(replay.base_url + "/rss/no.SUCH")
    assert response.status_code == 404
    assert len(client.request_log) == 1


def test_conditional_request_gets_304(replay: ReplayServer, make_client: MakeClient) -> None:
    client = make_client()
    first = client.get(replay.base_url + FEED, conditional=True)
    second = client.get(replay.base_url + FEED, conditional=True)
    # The server answers 304; the client gives back the body it read before, as a cache would.
    assert replay.requests[-1].status == 304 and client.request_log[-1].status == 304
    assert second.status_code == 200 and second.content == first.content and len(first.content) > 1000
    assert replay.requests[-1].headers["if-none-match"] == first.headers["ETag"]
    assert first.headers["Last-Modified"] == "Thu, 20 Aug 2026 04:00:02 GMT"  # the feed's lastBuildDate
    assert replay.requests[-1].headers["if-modified-since"] == first.headers["Last-Modified"]
    # Without `conditional`, no validator is sent and the body comes again.
    assert client.get(replay.base_url + FEED).status_code == 200
    assert "if-none-match" not in replay.requests[-1].headers


def test_arxiv_api_and_rss_share_one_3s_budget(replay: ReplayServer, fake_time: FakeTime) -> None:
    """The production hosts and config: export.arxiv.org and rss.arxiv.org are one group."""
    client = HttpClient(
        HttpConfig(),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        transport=LoopbackTransport(replay.base_url),
    )
    api = ArxivApiSource(ArxivApiConfig(), client)
    rss = ArxivRssSource(ArxivRssConfig(categories=["cs.CV", "cs.CV"]), client)
    window = Window(WALLCLOCK - timedelta(days=3), WALLCLOCK)
    list(api.fetch(window, {}))
    list(rss.fetch(window, {}))
    list(api.fetch(Window(WALLCLOCK - timedelta(days=4), WALLCLOCK), {}))
    hosts = [r.url.split("/")[2] for r in client.request_log]
    assert hosts[0] == "export.arxiv.org" and "rss.arxiv.org" in hosts
    assert {r.group for r in client.request_log} == {"arxiv"}
    times = [r.time for r in client.request_log]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert len(times) == 4
    assert all(gap >= 3.0 for gap in gaps), gaps
    assert fake_time.sleeps and all(s <= 3.0 for s in fake_time.sleeps)
    client.close()


def test_other_hosts_are_not_held_by_the_arxiv_budget(replay: ReplayServer, make_client: MakeClient) -> None:
    client = make_client(
        transport=LoopbackTransport(replay.base_url),
        min_interval={"export.arxiv.org": 3.0},
        host_groups={"export.arxiv.org": "arxiv"},
    )
    client.get("https://export.arxiv.org/api/query", {"search_query": "all:x"})
    client.get("https://api2.openreview.net/notes", {"content.venueid": "ICLR.cc/2024/Conference"})
    first, second = client.request_log
    assert second.time == first.time  # different group: no wait
    client.get("https://export.arxiv.org/api/query", {"search_query": "all:y"})
    assert client.request_log[2].time - first.time == pytest.approx(3.0)


def test_a_group_has_one_interval_whichever_of_its_hosts_is_asked(
    replay: ReplayServer, fake_time: FakeTime
) -> None:
    # A maintainer sets the feeds' host to 1 s; arXiv's 3 s for the API host stay (the tables
    # are set over the defaults). A feed asked for right after an API request went out after
    # 1 s, the feed host's own value: the group's 3 s held only in one direction.
    client = HttpClient(
        HttpConfig(min_interval={"rss.arxiv.org": 1.0}),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        transport=LoopbackTransport(replay.base_url),
    )
    client.get("https://export.arxiv.org/api/query", {"search_query": "all:x"})
    client.get("https://rss.arxiv.org/rss/cs.CV")
    client.get("https://rss.arxiv.org/rss/cs.CV")
    times = [r.time for r in client.request_log]
    assert [later - earlier for earlier, later in pairwise(times)] == [3.0, 3.0]
    assert client.min_interval("rss.arxiv.org") == client.min_interval("export.arxiv.org") == 3.0
    client.close()


def test_the_group_name_lowers_the_whole_groups_interval(replay: ReplayServer, fake_time: FakeTime) -> None:
    # Lowering arXiv's 3 s took all three hosts: the group's name could only raise it over
    # the hosts' defaults. One setting does it now, for the API and the feeds together.
    client = HttpClient(
        HttpConfig(min_interval={"arxiv": 1.0}),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        transport=LoopbackTransport(replay.base_url),
    )
    client.get("https://export.arxiv.org/api/query", {"search_query": "all:x"})
    client.get("https://rss.arxiv.org/rss/cs.CV")
    client.get("https://export.arxiv.org/api/query", {"search_query": "all:y"})
    times = [r.time for r in client.request_log]
    assert [later - earlier for earlier, later in pairwise(times)] == [1.0, 1.0]
    client.close()


def test_errors_that_would_repeat_are_not_retried(make_client: MakeClient, fake_time: FakeTime) -> None:
    client = make_client()
    with pytest.raises(HttpError, match="UnsupportedProtocol"):
        client.get("ftp://127.0.0.1/feed")
    assert fake_time.sleeps == [] and len(client.request_log) == 1


def test_refused_connection_is_retried_then_reported(make_client: MakeClient, fake_time: FakeTime) -> None:
    with ReplayServer() as server:
        url = server.base_url + FEED
    client = make_client(max_retries=2)  # the server is gone: nothing listens on its port
    with pytest.raises(HttpError, match="ConnectError"):
        client.get(url)
    assert fake_time.sleeps == [1.0, 2.0] and len(client.request_log) == 3


def test_an_error_shows_a_long_url_cut_in_the_middle(make_client: MakeClient, fake_time: FakeTime) -> None:
    """`catalogue enrich` asks arXiv for 100 ids at once: an outage was one "line" of 2,100
    characters. The message keeps the URL's start and end (the page asked for), 240 in all."""
    with ReplayServer() as server:
        base = server.base_url + "/api/query"
    ids = ",".join(f"2501.{n:05d}" for n in range(100))
    client = make_client(max_retries=0)  # nothing listens on the port any more
    with pytest.raises(HttpError) as caught:
        client.get(base, {"id_list": ids, "start": "0", "max_results": "100"})
    message = str(caught.value)
    shown = message.removeprefix("GET ").split(" failed after ")[0]
    assert len(shown) == 240 and len(caught.value.url) > 1000  # the error keeps the whole URL
    assert shown.startswith(base + "?id_list=2501.00000%2C2501.00001") and shown.endswith(
        "&start=0&max_results=100"
    )
    assert "…" in shown and message.endswith("ConnectError: [Errno 111] Connection refused")


def test_last_modified_alone_gives_304(replay: ReplayServer) -> None:
    """A server that only knows Last-Modified: If-Modified-Since decides (no ETag sent back)."""
    import httpx

    with httpx.Client() as http:
        modified = http.get(replay.base_url + FEED).headers["Last-Modified"]
        assert http.get(replay.base_url + FEED, headers={"If-Modified-Since": modified}).status_code == 304
        older = "Wed, 19 Aug 2026 04:00:02 GMT"
        assert http.get(replay.base_url + FEED, headers={"If-Modified-Since": older}).status_code == 200


def test_a_retry_after_that_is_no_number_falls_back_to_backoff(
    replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    # "²" passes str.isdigit() but not float().
    replay.inject(Fault("status", match=FEED, status=429, headers={"Retry-After": "\u00b2"}))
    client = make_client()
    assert client.get(replay.base_url + FEED).status_code == 200
    assert [r.status for r in client.request_log] == [429, 200] and len(fake_time.sleeps) == 1


def test_a_redirect_waits_the_turn_of_the_host_it_leads_to(replay: ReplayServer, fake_time: FakeTime) -> None:
    """httpx followed redirects inside one `send`: the hop skipped the interval and the log.

    `http://export.arxiv.org/api/query` (the arxiv package's own default for years) answers
    301 to `https://`: the hop went to arXiv at once, two requests in no time against its
    one per 3 s. A redirect to a host of another group was sent without waiting that
    group's turn either, and did not count as its last request.
    """
    client = HttpClient(
        HttpConfig(min_interval={"api2.openreview.net": 2.0}),  # arXiv's 3 s stays (the defaults)
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        transport=LoopbackTransport(replay.base_url),
    )
    query = {"search_query": "all:x", "start": "0", "max_results": "10"}
    target = "https://export.arxiv.org/api/query?search_query=all%3Ax&start=0&max_results=10"
    replay.inject(Fault("status", match="/api/query", status=301, headers={"Location": target}))
    assert client.get("http://export.arxiv.org/api/query", query).status_code == 200
    first, hop = client.request_log
    assert (first.status, hop.status) == (301, 200) and hop.url == target and hop.group == "arxiv"
    assert hop.time - first.time == pytest.approx(3.0)

    client.get("https://api2.openreview.net/notes")
    moved = "https://api2.openreview.net/notes?offset=0"
    replay.inject(Fault("status", match="/notes?id=", status=308, headers={"Location": moved}))
    client.get("https://openreview.net/notes", {"id": "x"})  # its own group: sent at once
    api2, old, new = client.request_log[2:]
    assert old.time == api2.time and old.status == 308
    assert new.url == moved and new.time - api2.time == pytest.approx(2.0)
    client.close()


def test_redirects_are_followed_a_bounded_number_of_times(
    replay: ReplayServer, make_client: MakeClient, fake_time: FakeTime
) -> None:
    loop = replay.base_url + "/loop"
    replay.inject(Fault("status", match="/loop", status=302, headers={"Location": loop}, times=-1))
    client = make_client()
    with pytest.raises(HttpError, match="TooManyRedirects"):
        client.get(loop)
    assert len(client.request_log) == 21 and fake_time.sleeps == []  # the first and 20 hops, no retry
