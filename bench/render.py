"""Benchmark: render and round-trip a README of 2,000 entries, and time a publish dry-run.

The README is the real `awesome-vpt` list (yunbeizhang @2025-06-24) grown to `--entries`
rows by inserting real titles from the abstract corpus through `Document.insert_entry`, in
the list's own sections and style (the same path promotion takes). It then measures:

- render: `Document.render()` of the grown list;
- round trip: `parse(rendered)` gives back the same entries, and rendering that parse
  gives the same bytes;
- publish dry-run: the grown list imported as a catalogue into a fresh SQLite store, with
  `--accepted` accepted candidates waiting, then `publish.dry_run()` (promotion in a
  rolled-back transaction, render, render check, PR text).

    .venv/bin/python bench/render.py                  # 2,000 entries
    .venv/bin/python bench/render.py --entries 500    # a quick run
    .venv/bin/python bench/render.py --json out.json  # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import Document, parse
from vpt_tracker.catalogue.service import get_catalogue, import_catalogue
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.dumps import read_corpus_jsonl
from vpt_tracker.models import RawRecord
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.migrate import upgrade
from vpt_tracker.store.tables import CandidateRow, PaperRow

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "tests/fixtures/lists/yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
DEFAULT_CORPUS = ROOT.parent / "shared/data/fixtures/corpus"
PRESET = "awesome-vpt"
# Label sets that have a placement in the preset: each new entry takes one of them.
LABEL_SETS = (
    ["learnable", "pixel"],
    ["learnable", "token"],
    ["generative", "pixel"],
    ["generative", "token"],
    ["non-learnable"],
)
VENUES = ("CVPR", "ICCV", "ECCV", "NeurIPS", "ICLR", "arXiv")


def corpus_records(corpus: Path) -> Iterator[RawRecord]:
    """Real records of the abstract corpus, file after file; synthetic titles when absent."""
    files = sorted(corpus.rglob("*.jsonl")) if corpus.is_dir() else []
    if not files:
        print(f"note: no corpus under {corpus}; using numbered titles", file=sys.stderr)
        for number in itertools.count():
            yield RawRecord(source="bench", source_id=str(number), title=f"Prompting Study Number {number}")
    for path in files:
        yield from read_corpus_jsonl(path)


PLAIN_TITLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 :,.'()?/+-]{8,200}$")


def grow(document: Document, target: int, records: Iterator[RawRecord], seed: int) -> tuple[str, int]:
    """The list grown to `target` entries; returns (text, entries inserted).

    The first title of each section goes through `Document.insert_entry`, which writes it
    in the list's own style; the other titles reuse that row with only the title swapped.
    Inserting all 2,000 one by one would measure `insert_entry` (timed separately in
    `insert_cost`), not the render and round trip this benchmark is about. Titles are
    restricted to plain characters so that swapping them needs no escaping.
    """
    preset = load_preset(PRESET)
    rng = random.Random(seed)
    seen: set[str] = {entry.title.casefold() for entry in document.entries}
    templates: dict[int, tuple[str, str]] = {}  # label set -> (its first row, that row's title)
    extra_rows: dict[int, list[str]] = {}
    missing = target - len(document.entries)
    for record in records:
        if missing <= 0:
            break
        title = " ".join(record.title.split())
        if not PLAIN_TITLE.match(title) or title.casefold() in seen:
            continue
        seen.add(title.casefold())
        choice = rng.randrange(len(LABEL_SETS))
        labels = LABEL_SETS[choice]
        section = preset.section_for(labels)
        if section is None:
            continue
        url = f"https://arxiv.org/abs/{record.arxiv_id}" if record.arxiv_id else None
        entry = preset.entry_for(title, rng.choice(VENUES), rng.randint(2021, 2026), url, None, labels)
        if choice not in templates:
            inserted = document.insert_entry(entry, section)
            templates[choice] = (inserted.raw, inserted.title)
            missing -= 1
            continue
        raw, template_title = templates[choice]
        if raw.count(template_title) != 1:
            continue
        extra_rows.setdefault(choice, []).append(raw.replace(template_title, title))
        missing -= 1
    lines = document.render().splitlines(keepends=True)
    added = len(templates)
    # Splice each section's rows right after its template row, bottom-most first.
    anchors = []
    for choice, (raw, _) in templates.items():
        at = next(i for i, line in enumerate(lines) if line == raw.splitlines(keepends=True)[0])
        anchors.append((at, choice))
    for at, choice in sorted(anchors, reverse=True):
        rows = extra_rows.get(choice, [])
        lines[at + 1 : at + 1] = rows
        added += len(rows)
    return "".join(lines), added


def insert_cost(text: str, records: Iterator[RawRecord], count: int) -> float:
    """Mean seconds of one `Document.insert_entry` into the grown list (it re-parses the list)."""
    preset = load_preset(PRESET)
    document = parse(text)
    section = preset.section_for(LABEL_SETS[0])
    assert section is not None
    started = time.perf_counter()
    done = 0
    for record in records:
        if done >= count:
            break
        title = " ".join(record.title.split())
        if not PLAIN_TITLE.match(title):
            continue
        document.insert_entry(preset.entry_for(title, "CVPR", 2026, None, None, LABEL_SETS[0]), section)
        done += 1
    return (time.perf_counter() - started) / max(done, 1)


def timed(action: Any, repeat: int) -> tuple[float, Any]:
    """Best wall time of `repeat` calls (the least disturbed by the other jobs on the machine)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def publish_dry_run(text: str, accepted: int, records: Iterator[RawRecord], workdir: Path) -> dict[str, Any]:
    """Import `text` as a catalogue, queue `accepted` accepted candidates, time `dry_run`."""
    from vpt_tracker.publish.publisher import dry_run

    engine = make_engine(f"sqlite:///{workdir / 'render-bench.db'}")
    upgrade(engine)
    import_catalogue(engine, PRESET, text, preset=PRESET)
    rng = random.Random(7)
    with transaction(engine) as session:
        catalogue = get_catalogue(session, PRESET)
        for number, record in enumerate(itertools.islice(records, accepted)):
            title = f"{record.title} (bench {number})"
            paper = PaperRow(
                title=title,
                title_key=normalize.title_key(title)[:512],
                abstract=record.abstract,
                authors=list(record.authors),
                year=2026,
                venue="arXiv",
                arxiv_id=f"2699.{number:05d}",
            )
            session.add(paper)
            session.flush()
            session.add(
                CandidateRow(
                    paper_id=paper.id,
                    catalogue_id=catalogue.id,
                    status="accepted",
                    relevance=0.9,
                    proposed_labels=list(rng.choice(LABEL_SETS)),
                    final_labels=list(rng.choice(LABEL_SETS)),
                    reviewer="bench",
                )
            )
    started = time.perf_counter()
    plan = dry_run(engine, PRESET)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "dry_run_s": round(seconds, 4),
        "accepted": accepted,
        "changes": len(plan.changes),
        "skipped": len(plan.skipped),
        "warnings": len(plan.warnings),
    }


def run(entries: int, accepted: int, corpus: Path, repeat: int, seed: int) -> dict[str, Any]:
    base = LIST.read_text(encoding="utf-8")
    document = parse(base)
    records = corpus_records(corpus)
    started = time.perf_counter()
    text, added = grow(document, entries, records, seed)
    grow_s = time.perf_counter() - started

    parse_s, grown = timed(lambda: parse(text), repeat)
    render_s, rendered = timed(grown.render, repeat)
    reparsed = parse(rendered)
    rerender_s, rerendered = timed(reparsed.render, repeat)
    same_bytes = rendered == text and rerendered == rendered
    same_entries = [(e.title, e.section_path) for e in reparsed.entries] == [
        (e.title, e.section_path) for e in grown.entries
    ]
    figures: dict[str, Any] = {
        "entries": len(reparsed.entries),
        "inserted": added,
        "bytes": len(rendered.encode()),
        "insert_s": round(grow_s, 4),
        "render_s": round(render_s, 4),
        "parse_s": round(parse_s, 4),
        "rerender_s": round(rerender_s, 4),
        "round_trip_identical": same_bytes and same_entries,
        "insert_entry_s": round(insert_cost(rendered, records, 3), 4),
    }
    with tempfile.TemporaryDirectory(prefix="vpt-render-bench-") as workdir:
        try:
            figures["publish"] = publish_dry_run(rendered, accepted, records, Path(workdir))
        except Exception as exc:  # report, do not hide, a publish path that cannot run here
            figures["publish"] = {"error": f"{type(exc).__name__}: {exc}"}
    return figures


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--entries", type=int, default=2000, help="entries in the README (default 2000)")
    parser.add_argument("--accepted", type=int, default=10, help="accepted candidates for the dry-run")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="abstract corpus directory")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats; the best is kept")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(args.entries, args.accepted, args.corpus, args.repeat, args.seed)
    print(f"README: {figures['entries']} entries ({figures['inserted']} inserted), ", end="")
    print(f"{figures['bytes']:,} bytes")
    print(f"  insert {figures['insert_s']:.3f}s  render {figures['render_s']:.4f}s  ", end="")
    print(f"parse {figures['parse_s']:.4f}s  re-render {figures['rerender_s']:.4f}s")
    print(f"  one insert_entry into the grown list: {figures['insert_entry_s']:.3f}s")
    print(f"  round trip identical: {figures['round_trip_identical']}")
    publish = figures["publish"]
    if "error" in publish:
        print(f"  publish dry-run: could not run: {publish['error']}")
    else:
        print(
            f"  publish dry-run: {publish['dry_run_s']:.3f}s for {publish['accepted']} accepted "
            f"({publish['changes']} changes, {publish['skipped']} skipped, {publish['warnings']} warnings)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["round_trip_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
