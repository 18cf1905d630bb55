"""Run one nightly pipeline and SIGKILL this process at a chosen point (crash-safety tests).

    python tests/faults/crash_child.py '{"urls": {...}, "db_url": "...", "data_dir": "...",
                                          "kill": "http:3"}'

The kill points wrap real production calls from the outside, in this process only; the
production code has no test hook:
- `http:N`      the N-th HTTP request, before it is sent (during fetch);
- `ingest:N`    inside the N-th page's transaction, after its records are written and
                flushed but before the commit (during ingest);
- `commit:N`    right after the N-th database commit of the run (between transactions);
- `score:N`     after the N-th batch of papers is scored (for every catalogue at once),
                before its candidates are written;
- `finish:1`    inside the transaction that records the run's end, before its commit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import SessionTransaction

from faults.helpers import NOW, crash_settings
from vpt_tracker import enqueue, http, ingest, pipeline
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.store import make_engine


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(owner: Any, attribute: str, kind: str, point: str, count: int, *, after: bool) -> None:
    original = getattr(owner, attribute)
    calls = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if not after and calls[0] == count:
            die()
        result = original(*args, **kwargs)
        if after and calls[0] == count:
            if point == "flush":
                args[0].flush()  # ingest: the page's rows are in the database, uncommitted
            die()
        return result

    setattr(owner, attribute, wrapped)


def main() -> None:
    spec = json.loads(sys.argv[1])
    kind, _, number = spec["kill"].partition(":")
    count = int(number)
    if kind == "http":
        wrap(http.HttpClient, "get", kind, "", count, after=False)
    elif kind == "ingest":
        wrap(ingest, "ingest_page", kind, "flush", count, after=True)
    elif kind == "commit":
        wrap(SessionTransaction, "commit", kind, "", count, after=True)
    elif kind == "score":
        wrap(CatalogueModel, "score_many", kind, "", count, after=True)
    elif kind == "finish":
        original = pipeline.finish_run

        def finish(*args: Any, **kwargs: Any) -> None:
            wrap(SessionTransaction, "commit", kind, "", 1, after=False)
            original(*args, **kwargs)

        pipeline.finish_run = finish
    else:
        raise SystemExit(f"unknown kill point {spec['kill']!r}")
    settings = crash_settings(spec["urls"], spec["db_url"], Path(spec["data_dir"]))
    engine = make_engine(spec["db_url"])
    pipeline.nightly(settings, engine, now=datetime.fromisoformat(spec.get("now", NOW.isoformat())))
    _ = enqueue  # imported so that scoring is wrapped before the pipeline imports it
    print("finished without reaching the kill point")


if __name__ == "__main__":
    main()
