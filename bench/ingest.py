"""Benchmark: ingest the abstract corpus repeated to ~300k records, and check the result.

The corpus (46 real daily files, 14,667 records) is ingested as is, then again and again
with perturbations, each copy of a record becoming one of:
- a *venue sighting* of the same paper (~15%): no arXiv id, the title re-cased, re-punctuated
  and with one typo, the first two authors swapped, a venue and year. Only the fuzzy
  title + author match can merge it, and it must: it upgrades the preprint once;
- an exact *duplicate* (~5%): it must be skipped as a duplicate sighting;
- a *different paper* (~80%): several title words replaced by words of other titles, and
  either a new arXiv id (72%) or no id at all (8%, so only the fuzzy match can keep it
  apart). Each must become a paper of its own.

It prints records/s, peak RSS and fuzzy comparisons (and block candidates) per record at
checkpoints as the store grows, then checks the paper count against the expected one:
any false merge or missed merge shows as a difference.

    .venv/bin/python bench/ingest.py                  # 300k records, SQLite in a temp dir
    .venv/bin/python bench/ingest.py --records 30000  # a quick run
    .venv/bin/python bench/ingest.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import func, select

from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.ingest import IdentityIndex, IngestStats, ingest_records
from vpt_tracker.models import RawRecord
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.migrate import upgrade
from vpt_tracker.store.tables import PaperRow

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared/data/fixtures/corpus"
VENUES = ("CVPR", "ICCV", "ECCV", "NeurIPS", "ICLR", "ICML", "WACV", "AAAI")


@dataclass
class Expectation:
    """What a correct ingestion must end with."""

    distinct_papers: int = 0
    upgraded_papers: set[str] = field(default_factory=set)  # base arXiv ids given a venue sighting
    merges: int = 0  # records that must join an existing paper
    duplicates: int = 0


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 6:
        return word
    at = rng.randrange(1, len(word) - 1)
    return word[:at] + word[at + 1 :]  # drop one letter


def venue_sighting(base: RawRecord, copy: int, rng: random.Random) -> RawRecord:
    """The same paper as a conference lists it: no arXiv id, a slightly different title."""
    words = base.title.split()
    long_words = [i for i, w in enumerate(words) if len(w) >= 7 and w.isalpha()]  # not in acronyms
    if long_words:
        i = rng.choice(long_words)
        words[i] = _typo(words[i], rng)
    title = " ".join(words).rstrip(".") + "."
    title = title.title() if rng.random() < 0.5 else title.replace(":", " -")
    authors = list(base.authors)
    if len(authors) >= 2:
        authors[0], authors[1] = authors[1], authors[0]
    return RawRecord(
        source="bench-venue",
        source_id=f"{base.source_id}#venue{copy}",  # one per base paper and copy
        title=title,
        abstract=base.abstract,
        authors=tuple(authors),
        # One venue per paper: every sighting of it names the conference that accepted it.
        # (Near titles at two venues are two papers, see `ingest.published_apart`.)
        venue=VENUES[zlib.crc32(base.source_id.encode()) % len(VENUES)],
        year=2026,
    )


def different_paper(
    base: RawRecord,
    copy: int,
    number: int,
    vocabulary: list[str],
    rng: random.Random,
    *,
    authors: tuple[str, ...],
    with_id: bool,
) -> RawRecord:
    """Another paper built on a real one: every word of four letters or more replaced by a
    word of other titles, other authors, a new id (or none)."""
    words = [rng.choice(vocabulary) if len(word) >= 4 else word for word in base.title.split()]
    words += [rng.choice(vocabulary) for _ in range(max(0, 3 - len(words)))]
    arxiv = f"{9000 + copy:04d}.{number:05d}" if with_id else None
    return RawRecord(
        source="bench-new",
        source_id=arxiv or f"bench-{copy}-{number}",
        title=" ".join(words),
        abstract=base.abstract,
        authors=authors,
        arxiv_id=arxiv,
        categories=base.categories,
    )


def generate(corpus: list[RawRecord], total: int, seed: int, expect: Expectation) -> Iterator[RawRecord]:
    """The corpus, then perturbed copies of it, until `total` records."""
    rng = random.Random(seed)
    vocabulary = sorted({w for r in corpus for w in r.title.split() if len(w) >= 5 and w.isalpha()})
    seen_ids: set[str | None] = set()
    seen_hashes: set[str] = set()
    produced = 0
    for record in corpus:  # the real corpus repeats some papers, identical or revised
        if produced == total:
            return
        if record.payload_hash in seen_hashes:
            expect.duplicates += 1
        elif record.arxiv_id in seen_ids:
            expect.merges += 1
        else:
            expect.distinct_papers += 1
        seen_hashes.add(record.payload_hash)
        seen_ids.add(record.arxiv_id)
        produced += 1
        yield record
    bases = list({r.arxiv_id: r for r in corpus if r.arxiv_id}.values())  # one record per paper
    names = [name.split() for r in corpus for name in r.authors if len(name.split()) >= 2]
    first_names = sorted({parts[0] for parts in names})
    surnames = sorted({parts[-1] for parts in names})
    copy = 0
    while produced < total:
        copy += 1
        for number, base in enumerate(bases):
            if produced == total:
                return
            roll = rng.random()
            if roll < 0.15:
                expect.merges += 1
                expect.upgraded_papers.add(base.arxiv_id or "")
                record = venue_sighting(base, copy, rng)
            elif roll < 0.20:
                expect.duplicates += 1
                record = replace(base)
            else:
                expect.distinct_papers += 1
                # Another paper's authors, with a first author of its own, as in a real store
                # where few author pairs write many papers.
                others = rng.choice(bases).authors or ("Anonymous",)
                first = f"{rng.choice(first_names)} {rng.choice(surnames)}"
                authors = (first, *others[1:])
                with_id = roll < 0.92
                record = different_paper(
                    base, copy, number, vocabulary, rng, authors=authors, with_id=with_id
                )
            produced += 1
            yield record


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000, help="records to ingest (default 300000)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of corpus *.jsonl files")
    parser.add_argument("--database", help="database URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    files = sorted(args.corpus.rglob("*.jsonl"))
    if not files:
        print(f"no *.jsonl under {args.corpus}", file=sys.stderr)
        return 2
    corpus = [record for path in files for record in read_corpus_jsonl(path)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.database or f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        with transaction(engine) as session:
            if session.scalar(select(func.count()).select_from(PaperRow)):
                print("the database is not empty; use an empty one", file=sys.stderr)
                return 2
        print(f"corpus: {len(corpus)} records from {len(files)} files; target {args.records} records")
        print(f"{'records':>8} {'papers':>8} {'rec/s':>7} {'cmp/rec':>8} {'cand/rec':>9} {'peak RSS MB':>12}")

        expect = Expectation()
        index = IdentityIndex()
        marks = (30_000, 60_000, 100_000, 200_000, 300_000)
        checkpoints = sorted({c for c in marks if c < args.records} | {args.records})
        total = IngestStats()
        window = {"records": 0, "comparisons": 0, "candidates": 0}
        started = time.perf_counter()

        def progress(stats: IngestStats) -> None:
            nonlocal total
            total += stats
            window["records"] += stats.records
            window["comparisons"] += stats.fuzzy_comparisons
            if checkpoints and total.records >= checkpoints[0]:
                checkpoints.pop(0)
                elapsed = time.perf_counter() - started
                candidates = index.candidates_seen - window["candidates"]
                print(
                    f"{total.records:>8} {len(index):>8} {total.records / elapsed:>7.0f}"
                    f" {window['comparisons'] / window['records']:>8.2f}"
                    f" {candidates / window['records']:>9.2f} {peak_rss_mb():>12.0f}",
                    flush=True,
                )
                window.update(records=0, comparisons=0, candidates=index.candidates_seen)

        ingest_records(
            engine,
            generate(corpus, args.records, args.seed, expect),
            batch_size=args.batch_size,
            index=index,
            progress=progress,
        )
        elapsed = time.perf_counter() - started
        ingest_peak = peak_rss_mb()
        index = IdentityIndex()  # let the ingestion's index go before loading one from the store
        gc.collect()
        with transaction(engine) as session:
            loading = time.perf_counter()
            IdentityIndex.load(session)  # what each ingest_page call without an index pays
            load_seconds = time.perf_counter() - loading
            papers = session.scalar(select(func.count()).select_from(PaperRow)) or 0
            upgraded_query = select(func.count()).where(PaperRow.venue_upgraded_at.is_not(None))
            upgraded = session.scalar(upgraded_query) or 0
        engine.dispose()

    print(
        f"\n{total.records} records in {elapsed:.1f} s: {total.records / elapsed:.0f} records/s,"
        f" peak RSS {ingest_peak:.0f} MB"
    )
    print(
        f"loading the identity index of {papers} papers from the store: {load_seconds:.1f} s"
        f" (peak RSS since start: {peak_rss_mb():.0f} MB)"
    )
    per_record = total.fuzzy_comparisons / total.records
    print(f"fuzzy comparisons: {total.fuzzy_comparisons} ({per_record:.2f} per record)")
    print(
        f"papers: {papers} (expected {expect.distinct_papers}); merged {total.merged}"
        f" (expected {expect.merges}); duplicates {total.duplicate_sightings}"
        f" (expected {expect.duplicates}); upgraded {upgraded} (expected {len(expect.upgraded_papers)})"
    )
    ok = (
        papers == expect.distinct_papers
        and total.merged == expect.merges
        and total.duplicate_sightings == expect.duplicates
        and upgraded == len(expect.upgraded_papers)
    )
    print("identity resolution: OK" if ok else "identity resolution: WRONG (false merges or misses)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
