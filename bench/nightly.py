"""Benchmark: an incremental nightly run of 2k new records over a large store.

The store is filled with `--store` records (the corpus and perturbed copies, as in
`bench/backfill.py`) and three catalogues. Then one nightly run fetches `--new` new records
(real corpus titles and abstracts under fresh arXiv ids) from the arXiv API, replayed by a
local server in *another process*, so that this process's CPU time excludes the server and
every network wait. It prints:
- CPU seconds of the run (`time.process_time`: fetch parsing, ingest, scoring, enqueue);
- HTTP requests per source against the minimum (arXiv API: ceil(new / 2000) + 1 at most,
  one request per page of 2,000 plus one to find the end).

    .venv/bin/python bench/nightly.py                          # 2k new over 300k
    .venv/bin/python bench/nightly.py --store 30000 --new 2000 # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backfill import LISTS, ROOT

from ingest import DEFAULT_CORPUS, Expectation, generate  # type: ignore[attr-defined]  # bench/ingest.py
from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.config import (
    ArxivApiConfig,
    ArxivRssConfig,
    CatalogueConfig,
    CvfConfig,
    HttpConfig,
    OpenReviewConfig,
    Settings,
    SourcesConfig,
)
from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.http import HttpClient
from vpt_tracker.ingest import ingest_records
from vpt_tracker.pipeline import nightly
from vpt_tracker.store import make_engine
from vpt_tracker.store.migrate import upgrade

NOW = datetime(2026, 8, 21, 6, 30, tzinfo=UTC)
SERVER = (
    "import sys, time\nfrom pathlib import Path\nfrom vpt_tracker.replay import ReplayServer\n"
    "server = ReplayServer(Path(sys.argv[1])).start()\nprint(server.base_url, flush=True)\n"
    "sys.stdin.read()\n"
)


def atom_feed(records: list, start_number: int) -> bytes:
    """An Atom page in the arXiv API format: real titles and abstracts under fresh ids 2608.NNNNN.

    Each title gets a suffix, so that the records are new papers and not venue sightings of
    the same corpus papers already in the store.
    """
    entries = []
    for offset, record in enumerate(records):
        identifier = f"2608.{start_number + offset:05d}"
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in record.authors[:6])
        entries.append(
            f"<entry><id>http://arxiv.org/abs/{identifier}v1</id>"
            f"<title>{escape(record.title)} (Night {offset})</title>"
            f"<updated>2026-08-20T17:00:00Z</updated><published>2026-08-20T17:00:00Z</published>"
            f"<summary>{escape(record.abstract)}</summary>"
            f'<category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>'
            f'<arxiv:primary_category term="cs.CV"/>{authors}</entry>'
        )
    head = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">'
        "<id>https://arxiv.org/api/bench</id><title>bench</title><updated>2026-08-21T00:00:00Z</updated>"
        f"<opensearch:itemsPerPage>{len(records)}</opensearch:itemsPerPage>"
        f"<opensearch:totalResults>{len(records)}</opensearch:totalResults>"
        "<opensearch:startIndex>0</opensearch:startIndex>"
    )
    return (head + "".join(entries) + "</feed>\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=int, default=300_000, help="records already in the store")
    parser.add_argument("--new", type=int, default=2000, help="new records the run fetches (<= 2000)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    corpus = [r for path in sorted(args.corpus.rglob("*.jsonl")) for r in read_corpus_jsonl(path)]
    if not corpus:
        raise SystemExit(f"no corpus under {args.corpus}")
    with tempfile.TemporaryDirectory(prefix="vpt-nightly-bench-") as folder:
        work = Path(folder)
        url = f"sqlite:///{work / 'nightly.db'}"
        engine = make_engine(url)
        upgrade(engine)
        for name, fixture in LISTS.items():
            import_catalogue(
                engine, name, (ROOT / "tests/fixtures/lists" / fixture).read_text("utf-8"), preset=name
            )
        started = time.perf_counter()
        ingest_records(engine, generate(corpus, args.store, 1, Expectation()), batch_size=1000)
        fill_s = time.perf_counter() - started
        new = [r for r in corpus if r.abstract][-args.new :]
        root = work / "replay"
        (root / "arxiv_api").mkdir(parents=True)
        (root / "arxiv_api/page.xml").write_bytes(atom_feed(new, 1))
        (root / "arxiv_api/index.json").write_text(
            json.dumps([{"match": {"start": "0"}, "file": "page.xml"}])
        )
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            base = server.stdout.readline().strip()
            settings = Settings(
                database_url=url,
                data_dir=work,
                http=HttpConfig(default_min_interval=0, min_interval={}, host_groups={}, max_retries=0),
                sources=SourcesConfig(
                    arxiv_api=ArxivApiConfig(base_url=f"{base}/api/query"),
                    arxiv_rss=ArxivRssConfig(enabled=False),
                    openreview=OpenReviewConfig(enabled=False),
                    cvf=CvfConfig(enabled=False),
                ),
                catalogues=[CatalogueConfig(name=name, preset=name) for name in LISTS],
            )
            client = HttpClient(settings.http)
            cpu = time.process_time()
            wall = time.perf_counter()
            result = nightly(settings, engine, now=NOW - timedelta(minutes=1), client=client)
            cpu_s = time.process_time() - cpu
            wall_s = time.perf_counter() - wall
        finally:
            server.terminate()
            server.wait()
    requests = len(client.request_log)
    figures = {
        "store_records": args.store,
        "fill_s": round(fill_s, 1),
        "new_records": result.counts["records"],
        "new_papers": result.counts["new_papers"],
        "outcome": result.outcome.value,
        "cpu_s": round(cpu_s, 2),
        "wall_s": round(wall_s, 2),
        "requests": {"arxiv_api": requests},
        "minimum_requests": {"arxiv_api": math.ceil(args.new / 2000) + 1},
    }
    print(
        f"nightly: {figures['new_records']} new over {args.store} stored: {cpu_s:.2f} s CPU "
        f"({wall_s:.2f} s wall), arXiv API requests {requests} "
        f"(minimum {figures['minimum_requests']['arxiv_api']}), "
        f"outcome {figures['outcome']}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
