"""Benchmark: key press → refreshed screen in the review app, with 100k pending candidates.

Fills a fresh SQLite database with N candidates (default 100 000), opens the app headless,
presses 200 keys (moves, page moves, defers and undos, so that reads and writes are both
timed) and prints the median and p95 latency from a key press to the next screen update
the app hands to its driver. Target: median ≤ 50 ms.

    .venv/bin/python bench/review.py [--candidates 100000] [--presses 200] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from vpt_tracker.normalize import title_key
from vpt_tracker.review.app import ReviewApp
from vpt_tracker.review.queue import ReviewQueue
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.migrate import upgrade
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, PaperRow

WORDS = ["visual", "prompt", "tuning", "adapter", "token", "pixel", "robust", "domain", "clip", "segment"]


def fill(engine: Engine, count: int) -> None:
    """One catalogue with `count` pending candidates, inserted in bulk."""
    with transaction(engine) as session:
        catalogue = CatalogueRow(name="bench", source_text="# bench\n", source_sha256="0" * 64)
        session.add(catalogue)
        session.flush()
        catalogue_id = catalogue.id
    chunk = 5000
    with engine.begin() as connection:
        for start in range(0, count, chunk):
            papers = []
            for i in range(start, min(count, start + chunk)):
                words = (WORDS[i % 10].title(), WORDS[(i // 10) % 10], WORDS[(i // 100) % 10])
                title = f"{' '.join(words)} prompts {i}"
                papers.append(
                    {
                        "title": title,
                        "title_key": title_key(title),
                        "abstract": " ".join(WORDS[(i + k) % 10] for k in range(120)),
                        "authors": [f"Author {i}", "Second Author", "Third Author"],
                        "year": 2020 + i % 6,
                        "venue": "arXiv",
                        "arxiv_id": f"{2400 + i // 100000}.{i % 100000:05d}",
                    }
                )
            ids = connection.scalars(
                insert(PaperRow).returning(PaperRow.id, sort_by_parameter_order=True), papers
            ).all()
            connection.execute(
                insert(CandidateRow),
                [
                    {
                        "paper_id": paper_id,
                        "catalogue_id": catalogue_id,
                        "status": "pending",
                        "relevance": ((paper_id * 7919) % 10007) / 10007,
                        "proposed_labels": ["learnable", "token"] if paper_id % 2 else ["pixel"],
                        "label_scores": {"learnable": 0.8, "token": 0.6},
                        "base_to_novel": (paper_id % 10) / 10,
                        "version": 1,
                    }
                    for paper_id in ids
                ],
            )


class TimedApp(ReviewApp):
    """The review app, noting when each screen update reaches the (headless) driver."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_display = 0.0
        self.last_decided = 0.0  # when the last decision's outcome was shown

    def _display(self, screen: Any, renderable: Any) -> None:
        if renderable is not None:
            self.last_display = time.perf_counter()
        super()._display(screen, renderable)

    def _decided(self, *args: Any) -> None:
        super()._decided(*args)
        self.last_decided = time.perf_counter()


def key_plan(presses: int) -> list[str]:
    """Mostly moves, as in real triage, with page moves and defer/undo pairs mixed in."""
    pattern = ["j"] * 6 + ["k"] * 2 + ["pagedown", "j", "pageup", "j", "d", "u"]
    return [pattern[i % len(pattern)] for i in range(presses)]


async def drive(engine: Engine, presses: int) -> tuple[list[float], float]:
    app = TimedApp(ReviewQueue(engine, "bench", "bench"), opener=lambda _url: None)
    opened = time.perf_counter()
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        ready = time.perf_counter() - opened
        assert len(app.candidates.ids) > 0
        for key in key_plan(presses):
            pressed = time.perf_counter()
            await pilot.press(key)
            shown = pressed
            if key in ("d", "u"):  # a decision, written in a worker: until its outcome is drawn
                while app.last_decided < pressed:
                    await asyncio.sleep(0.0005)
                    if time.perf_counter() - pressed > 5:
                        raise RuntimeError(f"no decision within 5 s after {key!r}")
                shown = app.last_decided
            while app.last_display < shown:  # wait for the refresh this key caused
                await asyncio.sleep(0.0005)
                if time.perf_counter() - pressed > 5:
                    raise RuntimeError(f"no screen update within 5 s after {key!r}")
            latencies.append((app.last_display - pressed) * 1000)
    return latencies, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.database or f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        started = time.perf_counter()
        fill(engine, args.candidates)
        print(f"filled {args.candidates} candidates in {time.perf_counter() - started:.1f} s")
        latencies, ready = asyncio.run(drive(engine, args.presses))
        engine.dispose()
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"app ready (ids loaded, first screen) in {ready * 1000:.0f} ms")
    print(
        f"{len(latencies)} key presses: median {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
        f"max {ordered[-1]:.1f} ms (target: median <= 50 ms)"
    )


if __name__ == "__main__":
    main()
