"""Mutated real payloads fed to the sources: a clear `SourceError` or good records, never a
crash of another kind, never a hang; and in a nightly run, nothing of a bad page is stored.

The seeds are the recorded payloads shipped in `vpt_tracker/replay_data` (real RSS; the
API, OpenReview and CVF files are built from real records, see its README). Hypothesis
mutates them (truncation, byte flips, other encodings, a huge field, missing elements) and
each mutant goes through the production path: HTTP from a local server, the polite client,
the source's parser. The hand-built attacks (entity expansion, deep nesting, a changed CVF
layout) run as plain cases. `deadline` bounds the time of every example.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from faults.helpers import NOW, RSS_DATE, local_http, payload_server, replay_settings, snapshot
from vpt_tracker.config import ArxivApiConfig, ArxivRssConfig, CvfConfig, OpenReviewConfig
from vpt_tracker.http import HttpClient
from vpt_tracker.models import Page, RunOutcome, Window
from vpt_tracker.pipeline import nightly
from vpt_tracker.replay import ReplayServer, default_root
from vpt_tracker.sources.arxiv_api import ArxivApiSource
from vpt_tracker.sources.arxiv_rss import ArxivRssSource
from vpt_tracker.sources.base import SourceError
from vpt_tracker.sources.cvf import CvfSource, parse_abstract
from vpt_tracker.sources.openreview import OpenReviewSource
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CursorRow, SightingRow

from .helpers import CONFERENCES, VENUES, PayloadServer

ROOT = default_root()
WINDOW = Window(NOW - timedelta(days=1), NOW)
SEEDS = {
    "arxiv_api": (ROOT / "arxiv_api/demo.xml").read_bytes(),
    "arxiv_rss": (ROOT / f"arxiv_rss/cs.CV/{RSS_DATE}.xml").read_bytes(),
    "openreview": (ROOT / "openreview/ICLR2024-accepted.json").read_bytes(),
    "cvf": (ROOT / "cvf/CVPR2022.html").read_bytes(),
}
# The element (or JSON key) whose value is each payload's title.
TITLE_TAG = {"arxiv_api": "title", "arxiv_rss": "title", "openreview": '"title"', "cvf": "dt"}
TIME_BOUND = 30.0
TRIED: dict[str, int] = {}  # payloads tried per source, for the reliability figures

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lolololololololololol">\n'
    + b"".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b"]>\n"
)


def build(name: str, base_url: str, client: HttpClient) -> Any:
    if name == "arxiv_api":
        return ArxivApiSource(ArxivApiConfig(base_url=f"{base_url}/api/query"), client)
    if name == "arxiv_rss":
        return ArxivRssSource(ArxivRssConfig(base_url=f"{base_url}/rss", categories=["cs.CV"]), client)
    if name == "openreview":
        return OpenReviewSource(OpenReviewConfig(base_url=base_url, venues=VENUES), client)
    return CvfSource(CvfConfig(base_url=base_url, conferences=CONFERENCES[:1], fetch_abstracts=False), client)


@pytest.fixture(scope="module")
def server() -> Iterator[PayloadServer]:
    with payload_server() as state:
        yield state


def fetch_all(server: PayloadServer, name: str, body: bytes) -> list[Page]:
    """Every page the source makes of `body`; raises what the source raises."""
    server.body = body
    TRIED[name] = TRIED.get(name, 0) + 1
    with HttpClient(local_http(max_body_bytes=8 * 1024 * 1024)) as client:
        source = build(name, server.base_url, client)
        pages = []
        for page in source.fetch(WINDOW, {}):
            pages.append(page)
            if len(pages) > 50:  # a looping source would never end: fail instead of hanging
                raise AssertionError(f"{name} yields page after page for one payload")
        return pages


def check(server: PayloadServer, name: str, body: bytes) -> str:
    """'error' for a SourceError with a message, 'ok' for well-formed records; anything else fails.

    Either way it must end within `TIME_BOUND` seconds (generous: the machine is shared).
    """
    started = time.perf_counter()
    try:
        pages = fetch_all(server, name, body)
    except SourceError as exc:
        assert time.perf_counter() - started < TIME_BOUND
        assert exc.source == name and exc.message.strip()
        assert "\n" not in str(exc).strip() or len(str(exc)) < 2000
        return "error"
    for page in pages:
        assert page.source == name
        for record in page.records:
            assert isinstance(record.title, str) and record.title.strip()
            assert isinstance(record.source_id, str) and record.source_id.strip()
            assert all(isinstance(author, str) for author in record.authors)
    assert time.perf_counter() - started < TIME_BOUND
    return "ok"


NAMES = sorted(SEEDS)
BOUNDED = settings(
    max_examples=8,
    deadline=None,  # the machine is shared: `check` bounds each example's time instead
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def test_the_seeds_themselves_parse(server: PayloadServer) -> None:
    for name in NAMES:
        assert check(server, name, SEEDS[name]) == "ok", name
        assert sum(len(p.records) for p in fetch_all(server, name, SEEDS[name])) >= 20


@pytest.mark.parametrize("name", NAMES)
@BOUNDED
@given(data=st.data())
def test_truncated_payloads(server: PayloadServer, name: str, data: st.DataObject) -> None:
    seed = SEEDS[name]
    cut = data.draw(st.integers(min_value=0, max_value=len(seed) - 1), label="cut")
    outcome = check(server, name, seed[:cut])
    if (
        name != "cvf" and seed[cut:].strip()
    ):  # XML and JSON cut short are malformed; lenient HTML may keep a prefix
        assert outcome == "error"
    else:
        titles = set(re.findall(rb'<dt class="ptitle"><br><a href="[^"]*">([^<]*)</a>', seed))
        if outcome == "ok":
            kept = {r.title.encode() for p in fetch_all(server, name, seed[:cut]) for r in p.records}
            assert kept and len(kept) <= len(titles)


@pytest.mark.parametrize("name", NAMES)
@BOUNDED
@given(data=st.data())
def test_corrupted_bytes(server: PayloadServer, name: str, data: st.DataObject) -> None:
    seed = bytearray(SEEDS[name])
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), min_size=1, max_size=40),
        label="flips",
    )
    for position, value in flips:
        seed[position] = value
    check(server, name, bytes(seed))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "cp1252", "shift_jis", "latin-1-declared"])
def test_wrong_encoding(server: PayloadServer, name: str, encoding: str) -> None:
    text = SEEDS[name].decode("utf-8")
    if encoding == "latin-1-declared":  # UTF-8 bytes that claim to be Latin-1
        body = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("utf-8")
    else:
        body = text.encode(encoding, errors="replace")
    check(server, name, body)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("char", ["A", "é", "\u202e", "<"])
def test_huge_field(server: PayloadServer, name: str, char: str) -> None:
    """A title of a megabyte: read or refused, in bounded time; above the body bound, refused."""
    body = _with_huge_title(
        name, (char if char != "<" else "&lt;").encode() * (1_000_000 // len(char.encode()))
    )
    check(server, name, body)


@pytest.mark.parametrize("name", NAMES)
def test_body_over_the_size_bound_is_refused(server: PayloadServer, name: str) -> None:
    body = _with_huge_title(name, b"A" * (9 * 1024 * 1024))
    with pytest.raises(SourceError, match="exceeds the"):
        fetch_all(server, name, body)


def _with_huge_title(name: str, filler: bytes) -> bytes:
    seed = SEEDS[name]
    if name == "openreview":
        body = re.sub(rb'("title": \{\s*"value": ")', lambda m: m.group(1) + filler, seed, count=1)
    elif name == "cvf":
        body = re.sub(
            rb'(<dt class="ptitle"><br><a href="[^"]*">)', lambda m: m.group(1) + filler, seed, count=1
        )
    else:
        body = seed.replace(b"<title>", b"<title>" + filler, 2)
    assert body != seed
    return body


@pytest.mark.parametrize("name", NAMES)
@BOUNDED
@given(data=st.data())
def test_missing_elements(server: PayloadServer, name: str, data: st.DataObject) -> None:
    """Drop every title (or a random set of elements): a clear error, or the readable rest."""
    seed = SEEDS[name]
    if name == "openreview":
        key = data.draw(st.sampled_from([b'"title"', b'"notes"', b'"id"', b'"content"']), label="key")
        body = seed.replace(key, b'"x' + key[1:])
    elif name == "cvf":
        body = seed.replace(
            b'class="ptitle"', data.draw(st.sampled_from([b'class="title"', b""]), label="cls")
        )
    else:
        tag = data.draw(st.sampled_from([b"title", b"entry", b"item", b"id", b"link", b"feed", b"channel"]))
        body = re.sub(rb"<(/?)" + tag + rb"\b", rb"<\1x" + tag, seed)
    outcome = check(server, name, body)
    if b"title" in body[:0] or (name == "cvf" and b"ptitle" not in body):
        assert outcome == "error"


@pytest.mark.parametrize("name", ["arxiv_api", "arxiv_rss"])
def test_xml_entity_expansion_is_refused_fast(server: PayloadServer, name: str) -> None:
    seed = SEEDS[name]
    start = seed.index(b"?>") + 2 if seed.startswith(b"<?xml") else 0
    body = BILLION_LAUGHS + seed[start:].replace(b"<title>", b"<title>&lol9;", 1)
    assert check(server, name, body) == "error"
    # An external entity is never fetched (no_network) nor read from disk.
    secret = Path(__file__).resolve()
    xxe = f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'.encode() + seed[
        start:
    ].replace(b"<title>", b"<title>&xxe;", 1)
    try:
        pages = fetch_all(server, name, xxe)
    except SourceError:
        return
    text = " ".join(r.title + r.abstract for p in pages for r in p.records)
    assert "test_xml_entity_expansion" not in text


def test_deeply_nested_json_is_a_source_error(server: PayloadServer) -> None:
    depth = 200_000
    with pytest.raises(SourceError, match="nested too deeply"):
        fetch_all(server, "openreview", b'{"notes": ' + b"[" * depth + b"]" * depth + b"}")
    # Deep nesting inside a note's fields: read or refused, never another exception.
    nested = b'{"value": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    body = re.sub(
        rb'"title": \{', lambda m: b'"deep": ' + nested + b', "title": {', SEEDS["openreview"], count=1
    )
    assert body != SEEDS["openreview"]
    check(server, "openreview", body)


def test_changed_cvf_layout_is_a_clear_error(server: PayloadServer) -> None:
    seed = SEEDS["cvf"]
    redesigned = (
        seed.replace(b"<dt", b"<div")
        .replace(b"</dt>", b"</div>")
        .replace(b"<dd", b"<p")
        .replace(b"</dd>", b"</p>")
    )
    with pytest.raises(SourceError, match="layout changed"):
        fetch_all(server, "cvf", redesigned)
    page = (next((ROOT / "cvf/content").rglob("*.html"))).read_bytes()
    assert parse_abstract(page, "a paper page")
    with pytest.raises(SourceError, match="no abstract"):
        parse_abstract(page.replace(b'id="abstract"', b'id="summary"'), "a paper page")


# --------------------------------------------------------------------------- no partial write

# (source, replay file to replace, mutation)
PIPELINE_CASES: list[tuple[str, str, Callable[[bytes], bytes]]] = [
    ("arxiv_api", "arxiv_api/demo.xml", lambda b: b[: len(b) // 2]),
    (
        "arxiv_api",
        "arxiv_api/demo.xml",
        lambda b: BILLION_LAUGHS + b[b.index(b"?>") + 2 :].replace(b"<title>", b"<title>&lol9;", 1),
    ),
    (
        "arxiv_rss",
        f"arxiv_rss/cs.CV/{RSS_DATE}.xml",
        lambda b: re.sub(rb"<(/?)(title|link|guid)\b", rb"<\1x\2", b),
    ),
    ("arxiv_rss", f"arxiv_rss/cs.CV/{RSS_DATE}.xml", lambda b: b.decode().encode("utf-16")[2:]),  # no BOM
    ("openreview", "openreview/ICLR2024-accepted.json", lambda b: b"[" * 100_000 + b"]" * 100_000),
    ("openreview", "openreview/ICLR2024-accepted.json", lambda b: b[:-7]),
    ("cvf", "cvf/CVPR2022.html", lambda b: b.replace(b'class="ptitle"', b'class="paper-title"')),
]


def _copy_root(target: Path) -> Path:
    import shutil

    shutil.copytree(ROOT, target)
    return target


def _count(engine: Engine, source: str) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).where(SightingRow.source == source)) or 0)


@pytest.mark.parametrize(
    ("source", "path", "mutate"), PIPELINE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(PIPELINE_CASES)]
)
def test_bad_payload_in_a_nightly_run_writes_nothing_of_it(
    engine: Engine, db_url: str, tmp_path: Path, source: str, path: str, mutate: Callable[[bytes], bytes]
) -> None:
    root = _copy_root(tmp_path / "replay")
    (root / path).write_bytes(mutate((root / path).read_bytes()))
    TRIED[source] = TRIED.get(source, 0) + 1
    with ReplayServer(root, rss_date=RSS_DATE) as replay:
        settings = replay_settings(replay.urls(), db_url, tmp_path)
        result = nightly(settings, engine, now=NOW)
    assert result.outcome == RunOutcome.PARTIAL
    assert list(result.errors) == [source] and result.errors[source].startswith(f"{source}: ")
    assert len(result.errors[source].splitlines()) == 1
    assert result.health[source]["healthy"] is False
    # Nothing of the bad payload, and its cursor did not move; the other sources went on.
    first_key = path.split("/")[-1].removesuffix(".html")
    if source == "cvf":
        with transaction(engine) as session:
            keys = set(session.scalars(select(CursorRow.key).where(CursorRow.source == "cvf")))
        assert first_key not in keys
        assert not any(
            s[1].startswith("https://openaccess.thecvf.com/content/CVPR2022")
            for s in snapshot(engine).sightings
        )
    else:
        assert _count(engine, source) == 0
        with transaction(engine) as session:
            assert session.scalar(select(func.count()).where(CursorRow.source == source)) == 0
    others = {"arxiv_api", "arxiv_rss", "openreview", "cvf"} - {source}
    assert all(_count(engine, other) > 0 for other in others)
