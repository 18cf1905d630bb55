"""Catalogue enrichment: give the entries of a curated list their papers and abstracts.

An imported README knows titles, venues and links, not abstracts; the classifier and the
review need both. For each entry without a paper (or whose paper has no abstract), this
looks for the paper in local dumps (the abstract corpus, conference indexes) by arXiv id,
then by normalised title, and then on arXiv (id_list batches, then a title search for the
rest). What it finds is ingested like any fetched record (so it merges with the store's
papers), together with a record of the entry itself (its venue and year, from the curated
list), and the entry is linked to the paper. When ingestion makes the match another paper
than the entry's sighting (a record without the entry's arXiv id), the match is the evidence
that they are one: that paper is merged into the entry's (`identity.merge_papers`). So is a
paper the entry leaves behind, linked to another now (a match found only now, such as a
record with a leading name), when it holds nothing but the entry's own sightings; one that
holds more is reported with the `papers merge` that would join them (`LeftBehind`).

Network look-ups happen before the database transaction, and all writes happen in one
transaction: an interrupted enrichment leaves the store as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from vpt_tracker import normalize
from vpt_tracker.catalogue.names import title_core, titles_agree
from vpt_tracker.catalogue.service import get_catalogue
from vpt_tracker.dumps import read_dump
from vpt_tracker.errors import UserError
from vpt_tracker.identity import (
    entry_sighting_id,
    entry_sighting_of,
    merge_papers,
    paper_candidates,
    paper_entries,
)
from vpt_tracker.ingest import (
    TITLE_THRESHOLD_TITLE_ONLY,
    IdentityIndex,
    IngestStats,
    ingest_resolved,
    title_numbers,
    title_score,
    venue_series,
)
from vpt_tracker.models import RawRecord
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import EntryRow, PaperRow, SightingRow

log = logging.getLogger(__name__)

CATALOGUE_SOURCE = "catalogue"


class ArxivLookup(Protocol):
    """What enrichment needs from arXiv (`sources.arxiv_api.ArxivApiSource` provides it)."""

    def fetch_ids(self, ids: list[str]) -> Iterable[RawRecord]: ...

    def search_title(self, title: str, limit: int = 10) -> list[RawRecord]: ...


@dataclass
class LeftBehind:
    """A paper an entry was linked to and no longer is, left unmerged by `catalogue enrich`:
    it holds more than the entry's own sightings (`holds`: another source's record, another
    entry, a candidate), or `papers merge` refused the pair (`refused`). The maintainer
    decides: `merge_command` joins them if they are one paper."""

    entry_id: int
    line: int | None
    title: str
    paper_id: int  # the entry's paper now
    left_id: int  # the paper it left
    holds: list[str] = field(default_factory=list)
    refused: str | None = None

    def merge_command(self) -> str | None:
        return None if self.refused else f"vpt-tracker papers merge {self.paper_id} {self.left_id}"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "merge": self.merge_command()}


@dataclass
class EnrichStats:
    entries: int = 0  # entries in the catalogue
    complete: int = 0  # already linked to a paper with an abstract: left alone
    matched_local: int = 0  # found in a local dump
    matched_arxiv: int = 0  # found on arXiv
    unmatched: int = 0  # linked to a paper without an abstract
    wrong_links: int = 0  # entries whose arXiv link names a paper of another title
    linked: int = 0  # entries linked (or re-linked) to a paper
    joined: int = 0  # papers a match became, merged into its entry's paper
    rejoined: int = 0  # papers an entry left, made of its own sightings only, merged into its paper
    left_behind: list[LeftBehind] = field(default_factory=list)  # papers it left that hold more
    title_searches: int = 0
    ingest: IngestStats = field(default_factory=IngestStats)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {key: value for key, value in self.__dict__.items() if key != "ingest"}
        data["left_behind"] = [left.as_dict() for left in self.left_behind]
        data["ingest"] = self.ingest.as_dict()
        return data


@dataclass
class _Entry:
    id: int
    title: str
    title_key: str
    arxiv_id: str | None
    venue: str | None
    year: int | None
    paper_url: str | None
    code_url: str | None
    line: int | None = None
    paper_id: int | None = None  # the paper it was linked to before this run
    matches: list[RawRecord] = field(default_factory=list)

    def distrust_link(self, paper_title: str, stats: EnrichStats) -> None:
        """The link names another paper ("Learning to Prompt ..." linking CoCoOp): the entry
        is looked up by its title, and its sighting does not carry the link's id."""
        log.warning(
            "entry at line %s, %r, links arXiv %s, which is %r: looking it up by its title",
            self.line,
            self.title,
            self.arxiv_id,
            paper_title,
        )
        self.drop_link(stats)

    def drop_link(self, stats: EnrichStats) -> None:
        self.arxiv_id = None
        self.paper_url = None
        stats.wrong_links += 1


class LocalIndex:
    """Records of local dumps by arXiv id and by folded title (records with abstracts win)."""

    def __init__(self, records: Iterable[RawRecord] = ()) -> None:
        self.by_arxiv: dict[str, RawRecord] = {}
        self.by_title: dict[str, list[RawRecord]] = {}
        self.by_core: dict[str, list[RawRecord]] = {}  # titles with a leading "Name:", without it
        for record in records:
            self.add(record)

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> LocalIndex:
        index = cls()
        for path in paths:
            for record in read_dump(path):
                index.add(record)
        return index

    def add(self, record: RawRecord) -> None:
        arxiv = normalize.arxiv_id(record.arxiv_id)
        if arxiv and (arxiv not in self.by_arxiv or not self.by_arxiv[arxiv].abstract):
            self.by_arxiv[arxiv] = record
        key = normalize.title_key(record.title)
        if key:
            same = self.by_title.setdefault(key, [])
            if not any(r.source == record.source and r.source_id == record.source_id for r in same):
                same.append(record)
                core = title_core(record.title)
                if core and core != key:
                    self.by_core.setdefault(core, []).append(record)

    def find(self, arxiv: str | None, title_key: str) -> list[RawRecord]:
        found: list[RawRecord] = []
        if arxiv and arxiv in self.by_arxiv:
            found.append(self.by_arxiv[arxiv])
        for record in self.by_title.get(title_key, ()):
            record_arxiv = normalize.arxiv_id(record.arxiv_id)
            if arxiv and record_arxiv and record_arxiv != arxiv:
                continue  # same title, another paper
            if record not in found:
                found.append(record)
        return found

    def find_named(self, entry: _Entry) -> list[RawRecord]:
        """Records whose title is the entry's once a leading "Name:" is set aside on one side:
        JindongGu's "MDM: Human Motion Diffusion Model" is ICLR 2023's "Human Motion Diffusion
        Model", BWLONG's "Synthetic Text Images Can Be Good Visual Prompts for …" (arXiv
        2309.01155) ICCV 2023's "LoGoPrompt: Synthetic Text Images …". Neither was found (the
        titles differ), and the entry's paper and the record's stayed two (the entry has no
        authors, and the titles are 93-94 % alike). For an entry no record matches exactly; a
        record of another arXiv id, other numbers in its title, or another venue or year is not
        taken."""
        key, core = entry.title_key, title_core(entry.title)
        series = venue_series(entry.venue)
        found: list[RawRecord] = []
        for record in [*self.by_core.get(key, ()), *(self.by_title.get(core, ()) if core != key else ())]:
            record_key = normalize.title_key(record.title)
            record_arxiv = normalize.arxiv_id(record.arxiv_id)
            if title_numbers(record_key) != title_numbers(key) or (
                entry.arxiv_id and record_arxiv and record_arxiv != entry.arxiv_id
            ):
                continue
            record_series = venue_series(record.venue)
            if (
                series
                and record_series
                and (series != record_series or (entry.year and record.year and entry.year != record.year))
            ):
                continue
            if record not in found:
                found.append(record)
        return found


def _entry_record(catalogue: str, entry: _Entry, matches: list[RawRecord]) -> RawRecord:
    """The entry as a sighting: the curated title, venue and year, and the keys of its matches.

    It carries the matches' keys because the match is what identified the paper; without
    them a terse curated title could resolve elsewhere.
    """
    arxiv = doi = openreview = cvf = None
    for match in matches:  # the matches' keys first: they are what identified the paper
        arxiv = arxiv or normalize.arxiv_id(match.arxiv_id)
        doi = doi or normalize.doi(match.doi)
        openreview = openreview or normalize.openreview_id(match.openreview_id)
        cvf = cvf or normalize.cvf_url(match.cvf_url)
    url = entry.paper_url or ""
    arxiv = arxiv or entry.arxiv_id
    doi = doi or (normalize.doi(url) if "doi.org/" in url else None)
    openreview = openreview or (normalize.openreview_id(url) if "openreview.net/" in url else None)
    cvf = cvf or normalize.cvf_url(url)
    venue = entry.venue if entry.venue and entry.venue.strip() else None
    return RawRecord(
        source=CATALOGUE_SOURCE,
        source_id=entry_sighting_id(catalogue, entry.title_key),
        title=entry.title,
        arxiv_id=arxiv,
        doi=doi,
        openreview_id=openreview,
        cvf_url=cvf,
        venue=venue,
        year=entry.year,
        abs_url=entry.paper_url,
        code_url=entry.code_url,
    )


def _best_title_match(title_key: str, candidates: list[RawRecord]) -> RawRecord | None:
    best, best_score = None, 0.0
    for record in candidates:
        candidate = normalize.title_key(record.title)
        score = title_score(title_key, candidate, TITLE_THRESHOLD_TITLE_ONLY)
        if score > best_score:
            best, best_score = record, score
    return best


def enrich_catalogue(
    engine: Engine,
    name: str,
    *,
    local: LocalIndex | None = None,
    arxiv: ArxivLookup | None = None,
    max_title_searches: int = 50,
    progress: Callable[[str], None] | None = None,
) -> EnrichStats:
    """Link the catalogue's entries to papers, with abstracts from `local` dumps and `arxiv`."""
    stats = EnrichStats()
    with transaction(engine) as session:
        catalogue = get_catalogue(session, name)
        rows = session.execute(
            select(EntryRow, PaperRow.abstract)
            .outerjoin(PaperRow, PaperRow.id == EntryRow.paper_id)
            .where(EntryRow.catalogue_id == catalogue.id)
            .order_by(EntryRow.position)
        ).all()
    stats.entries = len(rows)
    todo = []
    for row, abstract in rows:
        if row.paper_id is not None and abstract:
            stats.complete += 1
            continue
        if not normalize.title_key(row.title):
            continue  # an empty placeholder row of the README
        todo.append(
            _Entry(
                id=row.id,
                title=row.title,
                title_key=normalize.title_key(row.title),
                arxiv_id=normalize.arxiv_id(row.arxiv_id) or _arxiv_from_url(row.paper_url),
                venue=row.venue,
                year=row.year,
                paper_url=row.paper_url,
                code_url=row.code_url,
                line=row.line,
                paper_id=row.paper_id,
            )
        )

    for entry in todo:
        if local is not None:
            linked = local.by_arxiv.get(entry.arxiv_id) if entry.arxiv_id else None
            if linked is not None and not titles_agree(entry.title, linked.title, linked.abstract):
                entry.distrust_link(linked.title, stats)
            entry.matches = local.find(entry.arxiv_id, entry.title_key) or local.find_named(entry)
            if any(match.abstract for match in entry.matches):
                stats.matched_local += 1
    if arxiv is not None:
        _match_on_arxiv(
            arxiv,
            [e for e in todo if not any(m.abstract for m in e.matches)],
            stats,
            max_title_searches,
            progress,
        )

    with transaction(engine) as session:
        _check_links_against_store(session, todo, stats)
        index = IdentityIndex.load(session)
        for entry in todo:
            records = [*entry.matches, _entry_record(name, entry, entry.matches)]
            ingested, paper_ids = ingest_resolved(session, records, index=index)
            stats.ingest += ingested
            joined = _join_matches(session, entry, paper_ids[:-1], paper_ids[-1], stats)
            entry_row = session.get(EntryRow, entry.id)
            if entry_row is not None and entry_row.paper_id != paper_ids[-1]:
                entry_row.paper_id = paper_ids[-1]
                stats.linked += 1
            rejoined = entry_row is not None and _rejoin_left(session, name, entry, paper_ids[-1], stats)
            if joined or rejoined:  # a merge moved keys the index cannot follow: read it once again
                index = IdentityIndex.load(session)
            if not session.scalar(select(PaperRow.abstract).where(PaperRow.id == paper_ids[-1])):
                stats.unmatched += 1  # what the entry's paper has, not what was matched (a refused merge)
    log.info("enriched catalogue %s: %s", name, stats.as_dict())
    return stats


def _join_matches(
    session: Session, entry: _Entry, match_papers: Sequence[int], paper_id: int, stats: EnrichStats
) -> bool:
    """Merge the papers the entry's matches became into the entry's own paper; True if any was.

    The match is the evidence that the record is the entry's paper, but ingestion decides a
    record by its own keys and title: ECCV's "Visual Prompt Tuning" (no arXiv id) is a paper
    of its own when the entry's arXiv id already names a stored paper titled "VPT", and the
    entry stayed without the abstract it was matched to, on every rerun. The merge is
    `papers merge`'s (sightings, entries, candidates, scoring backlog and identity generation
    follow); one whose keys contradict (two arXiv ids) is refused as there, with a warning.
    """
    joined = False
    for other in dict.fromkeys(match_papers):
        if other == paper_id:
            continue
        try:
            merge_papers(session, paper_id, other)
        except UserError as exc:
            log.warning(
                "entry at line %s, %r: its match stays paper %s: %s", entry.line, entry.title, other, exc
            )
            continue
        stats.joined += 1
        joined = True
        _merged_away(other, stats)
    return joined


def _merged_away(paper_id: int, stats: EnrichStats) -> None:
    if paper_id in stats.ingest.new_paper_ids:  # made by this run and merged away: no new paper
        stats.ingest.new_paper_ids.remove(paper_id)
        stats.ingest.new_papers -= 1


def _rejoin_left(session: Session, catalogue: str, entry: _Entry, paper_id: int, stats: EnrichStats) -> bool:
    """Merge into the entry's paper the papers it left behind; True if any was merged.

    An entry linked to a paper made from its own sighting (nothing matched then) and matched
    on a later run (a record with a leading name: "MDM: Human Motion Diffusion Model" is
    ICLR's "Human Motion Diffusion Model") gets a sighting with the match's keys, which
    ingestion puts with the match's paper: the entry moved there and left its first paper
    behind, made of its old sighting alone and linked to nothing, until `papers merge NEW
    OLD`. The papers left are the one it was linked to before this run and any other that
    holds its own sighting (a store left so by an earlier version). One that holds nothing
    but own sightings of entries now linked to the entry's paper is merged into it, as
    `papers merge` does, in this transaction (so the relink and the merge are one); one that
    holds more (another source's record, another entry, a candidate) may be another paper
    the entry was wrongly linked to, and is only reported, with the `papers merge` line.
    """
    own = entry_sighting_id(catalogue, entry.title_key)[:512]
    left = set(
        session.scalars(
            select(SightingRow.paper_id).where(
                SightingRow.source == CATALOGUE_SOURCE,
                SightingRow.source_id == own,
                SightingRow.paper_id != paper_id,
            )
        )
    )
    if entry.paper_id is not None and entry.paper_id != paper_id:
        left.add(entry.paper_id)
    merged = False
    for other in sorted(left):
        if session.scalar(select(PaperRow.id).where(PaperRow.id == other)) is None:
            continue  # merged away already (the paper of a match, see `_join_matches`)
        report = LeftBehind(entry.id, entry.line, entry.title, paper_id, other)
        report.holds = _held_besides_entries(session, other, paper_id)
        if not report.holds:
            try:
                merge_papers(session, paper_id, other)
            except UserError as exc:
                report.refused = str(exc)
            else:
                stats.rejoined += 1
                merged = True
                _merged_away(other, stats)
                continue
        stats.left_behind.append(report)
        if report.refused:
            log.warning(
                "entry at line %s, %r, is paper %s; paper %s, which it was linked to, stays: %s",
                entry.line,
                entry.title,
                paper_id,
                other,
                report.refused,
            )
        else:
            log.warning(
                "entry at line %s, %r, is paper %s; paper %s, which it was linked to, holds more than its "
                "own sightings (%s) and is not merged: if the two are one paper, `%s`",
                entry.line,
                entry.title,
                paper_id,
                other,
                "; ".join(report.holds),
                report.merge_command(),
            )
    return merged


def _held_besides_entries(session: Session, other: int, paper_id: int) -> list[str]:
    """What paper `other` holds besides the own sightings of entries linked to `paper_id`:
    entries linked to it, its candidates (with their decisions and publications), and the
    other sightings. Nothing: the paper is what those entries' sightings made, and is theirs."""
    ours = {
        entry_sighting_id(name, normalize.title_key(title))
        for _, name, title in paper_entries(session, paper_id)
    }
    held = [f"entry {entry_id} of {name!r}" for entry_id, name, _ in paper_entries(session, other)]
    held += [
        f"candidate {candidate_id} of {name!r} ({status})"
        for candidate_id, name, status in paper_candidates(session, other)
    ]
    sightings = session.scalars(
        select(SightingRow).where(SightingRow.paper_id == other).order_by(SightingRow.id)
    )
    held += [f"sighting {s.id} of {s.source}" for s in sightings if entry_sighting_of(s) not in ours]
    return held


def _arxiv_from_url(url: str | None) -> str | None:
    return normalize.arxiv_id(url) if url and "arxiv.org/" in url else None


def _check_links_against_store(session: Session, entries: list[_Entry], stats: EnrichStats) -> None:
    """Entries whose link no dump or arXiv answer confirmed: a stored paper with that id and
    another title means the link is wrong (its sighting would join, and re-venue, that paper).
    Only papers with an abstract count: their title is a source's, not another list's. An id
    nothing knows is not trusted either when entries of other titles share it."""
    unconfirmed: dict[str, list[_Entry]] = {}
    for entry in entries:
        ids = {normalize.arxiv_id(match.arxiv_id) for match in entry.matches}
        if entry.arxiv_id and entry.arxiv_id not in ids:
            unconfirmed.setdefault(entry.arxiv_id, []).append(entry)
    if not unconfirmed:
        return
    stored = session.execute(
        select(PaperRow.arxiv_id, PaperRow.title, PaperRow.abstract).where(
            PaperRow.arxiv_id.in_(sorted(unconfirmed)), PaperRow.abstract != ""
        )
    ).all()
    for arxiv_id, title, abstract in stored:
        for entry in unconfirmed.pop(arxiv_id or "", []):
            if entry.arxiv_id and not titles_agree(entry.title, title, abstract):
                entry.distrust_link(title, stats)
    # Nothing tells what the id is: entries of other titles sharing it (`catalogue check`'s
    # `same-link`, zhengli97's CoOp with CoCoOp's link) would all join one paper under it,
    # so none of them is trusted; each is looked up, and made a paper, by its own title.
    for arxiv_id, group in unconfirmed.items():
        first = group[0]
        if all(titles_agree(entry.title, first.title) for entry in group[1:]):
            continue
        log.warning(
            "entries at lines %s link the same arXiv %s under other titles (%s): one of the links is "
            "wrong; looking them up by their titles",
            ", ".join(str(entry.line) for entry in group),
            arxiv_id,
            "; ".join(repr(entry.title) for entry in group),
        )
        for entry in group:
            entry.drop_link(stats)


def _match_on_arxiv(
    arxiv: ArxivLookup,
    entries: list[_Entry],
    stats: EnrichStats,
    max_title_searches: int,
    progress: Callable[[str], None] | None,
) -> None:
    with_ids: dict[str, list[_Entry]] = {}  # two entries may link one id (a duplicate, a wrong link)
    for entry in entries:
        if entry.arxiv_id:
            with_ids.setdefault(entry.arxiv_id, []).append(entry)
    if with_ids:
        if progress:
            progress(f"fetching {len(with_ids)} arXiv ids")
        for record in arxiv.fetch_ids(sorted(with_ids)):
            if not record.abstract:
                continue
            for entry in with_ids.get(normalize.arxiv_id(record.arxiv_id) or "", []):
                if titles_agree(entry.title, record.title, record.abstract):
                    entry.matches.append(record)
                    stats.matched_arxiv += 1
                else:
                    entry.distrust_link(record.title, stats)  # searched by its title below
    for entry in entries:
        if entry.arxiv_id or any(m.abstract for m in entry.matches):
            continue
        if stats.title_searches >= max_title_searches:
            log.info("title search limit (%d) reached; the rest stay without abstract", max_title_searches)
            break
        if progress:
            progress(f"searching arXiv for {entry.title!r}")
        stats.title_searches += 1
        match = _best_title_match(entry.title_key, arxiv.search_title(entry.title))
        if match is not None:
            entry.matches.append(match)
            stats.matched_arxiv += 1
