"""A real HTTP server on 127.0.0.1 that replays recorded payloads of all four sources.

Tests and `vpt-tracker demo` point the sources' base URLs at it and run the production code
path, HTTP included. It serves files from a directory laid out as `replay_data/` is (see
its README.md):

- `arxiv_api/index.json`: a list of `{"match": {param: value}, "status": N, "file": name}`;
  a request to `/api/query` is answered by the first entry whose `match` params all equal
  the request's (params not named match anything). No match: an empty, well-formed feed,
  which is what arXiv answers for a query without results.
- `arxiv_rss/<category>/<YYYY-MM-DD>.xml` for `/rss/<category>`: the file of `?date=`, else of
  `server.rss_date`, else the newest. An ETag lets conditional requests get 304.
- `openreview/index.json`: `{"<venue id or invitation>": ["offset0.json", ...]}`, one file
  per page of the size the data was cut in (`page_size`); `/notes` routes by
  `content.venueid` or `invitation` and `offset`. An offset past the end gets `{"notes": []}`.
- `cvf/<CONF><YEAR>.html` for the listing `/<CONF><YEAR>` and `cvf/content/...` for the
  paper pages under `/content/...`.

Faults are injected per request with `server.inject(Fault(...))`: an HTTP status with
headers (429 + Retry-After, 503), a delay (client timeout), a connection reset, or a body
cut short of its Content-Length.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMPTY_ATOM = b"""<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom" \
xmlns="http://www.w3.org/2005/Atom">
  <id>https://arxiv.org/api/replay-empty</id>
  <title>arXiv Query: no recorded results</title>
  <updated>2026-01-01T00:00:00Z</updated>
  <opensearch:itemsPerPage>0</opensearch:itemsPerPage>
  <opensearch:totalResults>0</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
</feed>
"""


def default_root() -> Path:
    """The replay data set shipped with the package (`vpt_tracker/replay_data`)."""
    return Path(str(resources.files("vpt_tracker") / "replay_data"))


@dataclass
class Fault:
    """A misbehaviour for requests whose path (plus query) contains `match`.

    kind: "status" (answer `status` with `headers` and `body`), "delay" (wait `delay`
    seconds, then answer normally), "reset" (close the connection with a TCP RST) or
    "truncate" (announce the full Content-Length, send half the body, close).
    `times` is how many requests it hits (-1: all).
    """

    kind: str
    match: str = ""
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    times: int = 1


@dataclass(frozen=True)
class ServedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None
    at: float


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print a traceback when a client hangs up.

    Faults make clients time out or reset on purpose (and a fetcher may give up mid-body), so
    a reset or a broken pipe is expected here, not a server error; anything else still prints.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ReplayServer:
    """`with ReplayServer(root) as server:` serves on `server.base_url` until the block ends."""

    def __init__(self, root: Path | None = None, *, rss_date: str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.rss_date = rss_date
        self.requests: list[ServedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the replay server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def urls(self) -> dict[str, str]:
        """Base URLs for every source's config, all on this server."""
        return {
            "arxiv_api": f"{self.base_url}/api/query",
            "arxiv_rss": f"{self.base_url}/rss",
            "openreview": self.base_url,
            "cvf": self.base_url,
        }

    def start(self) -> ReplayServer:
        handler = type("Handler", (_Handler,), {"replay": self})
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="replay-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times != 0 and fault.match in target:
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _record(self, request: ServedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # ------------------------------------------------------------------ routing

    def route(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for a request."""
        if path.endswith("/api/query"):
            return self._arxiv_api(query)
        if path.startswith("/rss/"):
            return self._arxiv_rss(path.removeprefix("/rss/"), query)
        if path.rstrip("/").endswith("/notes"):
            return self._openreview(query)
        if path.startswith("/content/"):
            return self._file(self.root / "cvf" / path.lstrip("/"), "text/html; charset=utf-8")
        name = path.strip("/")
        if name and "/" not in name:
            return self._file(self.root / "cvf" / f"{name}.html", "text/html; charset=utf-8")
        return 404, "text/plain", b"not found"

    def _file(self, path: Path, content_type: str) -> tuple[int, str, bytes]:
        try:
            resolved = path.resolve()
            resolved.relative_to(self.root.resolve())
            return 200, content_type, resolved.read_bytes()
        except (OSError, ValueError):
            return 404, "text/plain", b"not found"

    def _arxiv_api(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        index = self._json(self.root / "arxiv_api" / "index.json", [])
        for entry in index:
            wanted: dict[str, str] = entry.get("match", {})
            if all(query.get(key, "") == str(value) for key, value in wanted.items()):
                status, _, body = self._file(self.root / "arxiv_api" / entry["file"], "")
                return entry.get("status", status), "application/atom+xml; charset=utf-8", body
        return 200, "application/atom+xml; charset=utf-8", EMPTY_ATOM

    def _arxiv_rss(self, category: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        folder = self.root / "arxiv_rss" / category
        days = sorted(p.stem for p in folder.glob("*.xml")) if folder.is_dir() else []
        if not days:
            return 404, "text/plain", b"unknown category"
        day = query.get("date") or self.rss_date or days[-1]
        if day not in days:
            return 404, "text/plain", f"no {category} feed recorded for {day}".encode()
        return self._file(folder / f"{day}.xml", "application/rss+xml; charset=utf-8")

    def _openreview(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        index: dict[str, list[str]] = self._json(self.root / "openreview" / "index.json", {})
        venue = query.get("content.venueid") or query.get("invitation") or ""
        if venue not in index:
            return 200, "application/json", json.dumps({"notes": [], "count": 0}).encode()
        files = index[venue]
        offset = int(query.get("offset", "0") or 0)
        limit = int(query.get("limit", "1000") or 1000)
        raw = [(self.root / "openreview" / name).read_bytes() for name in files]
        pages = [_notes_page(body) for body in raw]
        if len(raw) == 1 and (pages[0] is None or (offset == 0 and limit >= len(pages[0]))):
            # One recorded answer that the request covers (or that is not a notes page at all,
            # as in the bad-payload tests): serve its bytes as recorded.
            return 200, "application/json", raw[0]
        notes = [note for page in pages if page is not None for note in page]
        # Recorded pages may be cut at another size than the client asks: serve the slice.
        body: dict[str, Any] = {"notes": notes[offset : offset + limit], "count": len(notes)}
        return 200, "application/json", json.dumps(body, ensure_ascii=False).encode()

    @staticmethod
    def _json(path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default


_BUILD_DATE = re.compile(rb"<lastBuildDate>([^<]+)</lastBuildDate>")


def _last_modified(body: bytes) -> datetime | None:
    """A feed's `<lastBuildDate>`: when the recorded server last changed it."""
    found = _BUILD_DATE.search(body[:4096])
    if not found:
        return None
    try:
        return parsedate_to_datetime(found.group(1).decode().strip()).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _not_modified(headers: dict[str, str], etag: str, modified: datetime | None) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since against Last-Modified."""
    if "if-none-match" in headers:
        return headers["if-none-match"] == etag
    since = headers.get("if-modified-since")
    if since is None or modified is None:
        return False
    try:
        return modified <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


def _notes_page(body: bytes) -> list[Any] | None:
    """The notes of a recorded `/notes` answer; None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    notes = data.get("notes") if isinstance(data, dict) else None
    return notes if isinstance(notes, list) else None


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        fault = self.replay._take_fault(self.path)
        status: int | None
        if fault is not None and fault.kind == "reset":
            self.replay._record(ServedRequest(parts.path, query, headers, None, time.monotonic()))
            self._reset()
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "status":
            status, content_type, body = fault.status, "text/plain", fault.body
        else:
            status, content_type, body = self.replay.route(parts.path, query)
        extra = dict(fault.headers) if fault is not None and fault.kind == "status" else {}
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        modified = _last_modified(body) if status == 200 else None
        if status == 200 and _not_modified(headers, etag, modified):
            status, body = 304, b""
        self.replay._record(ServedRequest(parts.path, query, headers, status, time.monotonic()))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status in (200, 304):
            self.send_header("ETag", etag)
            if modified is not None:
                self.send_header("Last-Modified", format_datetime(modified, usegmt=True))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if fault is not None and fault.kind == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed proxy would."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
