"""The replay server's routing and fault injection, spoken to over real HTTP."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from vpt_tracker.replay import Fault, QuietHTTPServer, ReplayServer


def test_routes_every_source(replay: ReplayServer) -> None:
    urls = replay.urls()
    with httpx.Client() as http:
        api = http.get(urls["arxiv_api"], params={"search_query": "all:prompt", "start": "0"})
        assert api.status_code == 200 and api.text.count("<entry>") == 32
        later = http.get(urls["arxiv_api"], params={"search_query": "all:prompt", "start": "32"})
        assert "<opensearch:totalResults>0</opensearch:totalResults>" in later.text
        day = http.get(f"{urls['arxiv_rss']}/cs.CV", params={"date": "2026-08-19"})
        assert "Wed, 19 Aug 2026" in day.text
        assert http.get(f"{urls['arxiv_rss']}/cs.CV", params={"date": "2026-08-18"}).status_code == 404
        assert "Thu, 20 Aug 2026" in http.get(f"{urls['arxiv_rss']}/cs.CV").text  # newest by default
        notes = http.get(
            f"{urls['openreview']}/notes",
            params={"content.venueid": "ICLR.cc/2024/Conference", "offset": "75", "limit": "10"},
        ).json()
        assert len(notes["notes"]) == 5 and notes["count"] == 80
        assert http.get(f"{urls['openreview']}/notes", params={"content.venueid": "X"}).json()["notes"] == []
        assert 'class="ptitle"' in http.get(f"{urls['cvf']}/ICCV2023", params={"day": "all"}).text
        assert http.get(f"{urls['cvf']}/../../etc/passwd").status_code == 404


def test_faults_hit_only_matching_requests_the_given_number_of_times(replay: ReplayServer) -> None:
    replay.inject(Fault("status", match="/rss/", status=429, headers={"Retry-After": "3"}, times=2))
    with httpx.Client() as http:
        assert http.get(replay.base_url + "/CVPR2022").status_code == 200
        first = http.get(replay.base_url + "/rss/cs.CV")
        assert first.status_code == 429 and first.headers["Retry-After"] == "3"
        assert http.get(replay.base_url + "/rss/cs.CV").status_code == 429
        assert http.get(replay.base_url + "/rss/cs.CV").status_code == 200
    assert [r.status for r in replay.requests] == [200, 429, 429, 200]


def test_index_entries_match_on_the_params_they_name(tmp_path: Path) -> None:
    folder = tmp_path / "arxiv_api"
    folder.mkdir()
    (folder / "a.xml").write_text("<a/>")
    (folder / "b.xml").write_text("<b/>")
    index = [{"match": {"id_list": "1"}, "status": 400, "file": "a.xml"}, {"match": {}, "file": "b.xml"}]
    (folder / "index.json").write_text(json.dumps(index))
    with ReplayServer(tmp_path) as server, httpx.Client() as http:
        hit = http.get(server.urls()["arxiv_api"], params={"id_list": "1"})
        assert (hit.status_code, hit.text) == (400, "<a/>")
        assert http.get(server.urls()["arxiv_api"], params={"id_list": "2"}).text == "<b/>"


def test_a_client_hanging_up_is_not_reported_as_a_server_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Timeouts and resets are what the faults are for: the server prints no traceback for a
    client that hangs up (a reset, a broken pipe), and still prints one for anything else."""
    server = QuietHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        for error in (ConnectionResetError(104, "reset by peer"), BrokenPipeError(32, "broken pipe")):
            try:
                raise error
            except OSError:
                server.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a bug in a handler")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
        assert "ValueError: a bug in a handler" in capsys.readouterr().err
    finally:
        server.server_close()
