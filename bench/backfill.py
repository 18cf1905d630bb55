"""Benchmark: the full backfill path on the real corpus grown with perturbed copies.

Stages, each timed on its own: ingest (normalise, resolve identity, merge: `ingest_records`),
then score and enqueue the new papers against three catalogues (the three presets, with
their shipped models, in one pass: `score_and_enqueue_many`). It runs once per size (default 30k, 100k,
300k records, each into a fresh SQLite store) and prints records/s per stage, peak RSS
and the cost per record as the store grows: a linear path keeps s/record flat.

The records come from `bench/ingest.py`'s generator (the corpus, then perturbed ids and
titles: venue sightings, exact duplicates, different papers).

    .venv/bin/python bench/backfill.py                      # 30k, 100k, 300k
    .venv/bin/python bench/backfill.py --sizes 3000,10000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# mypy checks bench/ next to tests/ (pyproject [tool.mypy]) and resolves `ingest` to the tests'
# package of that name; at run time it is bench/ingest.py, put on sys.path above.
from ingest import DEFAULT_CORPUS, Expectation, generate  # type: ignore[attr-defined, unused-ignore]
from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.config import CatalogueConfig, Settings
from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.enqueue import score_and_enqueue_many
from vpt_tracker.ingest import ingest_records
from vpt_tracker.store import make_engine
from vpt_tracker.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
LISTS = {
    "awesome-vpt": "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md",
    "prompt-adaptation": "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md",
    "generalizable-vlm": "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md",
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(corpus: list[Any], size: int, seed: int, workdir: Path) -> dict[str, Any]:
    url = f"sqlite:///{workdir / f'backfill-{size}.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(
        database_url=url,
        data_dir=workdir,
        catalogues=[CatalogueConfig(name=name, preset=name) for name in LISTS],
    )
    for name, fixture in LISTS.items():
        text = (ROOT / "tests/fixtures/lists" / fixture).read_text(encoding="utf-8")
        import_catalogue(engine, name, text, preset=name)
    started = time.perf_counter()
    stats = ingest_records(engine, generate(corpus, size, seed, Expectation()), batch_size=1000)
    ingest_s = time.perf_counter() - started
    new_ids = list(stats.new_paper_ids)
    figures: dict[str, Any] = {
        "records": stats.records,
        "new_papers": stats.new_papers,
        "ingest_s": round(ingest_s, 2),
        "ingest_records_per_s": round(stats.records / ingest_s, 1),
        "catalogues": {},
    }
    started = time.perf_counter()
    cpu = time.process_time()
    enqueued = score_and_enqueue_many(engine, list(LISTS), new_ids, settings=settings)
    score_s = time.perf_counter() - started
    figures["score_enqueue_cpu_s"] = round(time.process_time() - cpu, 2)
    figures["score_papers_per_s"] = round(len(new_ids) * len(LISTS) / score_s, 1) if score_s else None
    for name, counts in enqueued.items():
        figures["catalogues"][name] = {"scored": counts.scored, "enqueued": counts.queued}
    figures["score_enqueue_s"] = round(score_s, 2)
    figures["total_s"] = round(ingest_s + score_s, 2)
    figures["us_per_record"] = round(1e6 * (ingest_s + score_s) / max(stats.records, 1), 1)
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    engine.dispose()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="30000,100000,300000", help="comma-separated record counts")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    files = sorted(args.corpus.rglob("*.jsonl"))
    if not files:
        raise SystemExit(f"no corpus under {args.corpus} (it is in ../shared/data/fixtures/corpus)")
    corpus = [record for path in files for record in read_corpus_jsonl(path)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="vpt-backfill-bench-") as workdir:
        for size in (int(part) for part in args.sizes.split(",")):
            figures = one_size(corpus, size, args.seed, Path(workdir))
            results[str(size)] = figures
            print(
                f"{size:>7} records: ingest {figures['ingest_records_per_s']:>8.0f} rec/s, "
                f"score+enqueue x3 {figures['score_enqueue_s']:.1f}s, total {figures['total_s']:.1f}s "
                f"({figures['us_per_record']} us/record), peak RSS {figures['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
