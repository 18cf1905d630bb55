"""A real HTTP server on 127.0.0.1 that serves recorded feeds, and settings pointing at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vpt_tracker.config import (
    ArxivApiConfig,
    ArxivRssConfig,
    CvfConfig,
    HttpConfig,
    OpenReviewConfig,
    Settings,
    SourcesConfig,
)
from vpt_tracker.http import HttpClient

RSS = Path(__file__).resolve().parents[1] / "fixtures" / "ops" / "rss"


@dataclass
class Routes:
    """path -> (status, body); what the server answers, changeable while it runs."""

    table: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    # Cleared: every answer waits until it is set (a request held in flight).
    answer: threading.Event = field(default_factory=lambda: _set(threading.Event()))

    def feed(self, path: str, fixture: str) -> None:
        self.table[path] = (200, (RSS / fixture).read_bytes())

    def fail(self, path: str, status: int = 503) -> None:
        self.table[path] = (status, b"Service Unavailable")


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@contextmanager
def feed_server() -> Iterator[tuple[Routes, str]]:
    routes = Routes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes.requests.append(self.path)
            routes.answer.wait(60)
            status, body = routes.table.get(self.path.split("?")[0], (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Type", "application/rss+xml" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield routes, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rss_settings(db_url: str, base_url: str, categories: list[str], **extra: object) -> Settings:
    """Only the arXiv RSS source, pointed at the local server; no waiting between requests."""
    return Settings(
        database_url=db_url,
        http=HttpConfig(max_retries=0, default_min_interval=0, min_interval={}, host_groups={}, timeout=5),
        sources=SourcesConfig(
            arxiv_api=ArxivApiConfig(enabled=False),
            arxiv_rss=ArxivRssConfig(base_url=f"{base_url}/rss", categories=categories),
            openreview=OpenReviewConfig(enabled=False),
            cvf=CvfConfig(enabled=False),
        ),
        **extra,  # type: ignore[arg-type]
    )


def client(settings: Settings) -> HttpClient:
    return HttpClient(settings.http, sleep=lambda _seconds: None)
