"""Identity repair: split a paper's sightings into two papers, or merge two papers into one.

Ingestion decides once which paper a record is (`vpt_tracker.ingest`); a wrong decision, or
one an earlier version made by rules since changed (titles that differ only in a number,
a multi-DOI field taken whole as a key), stays in the store. These operations put it right:

- both papers are rebuilt from their sightings by ingestion's own code
  (`ingest.rebuild_papers`), so title, abstract, keys, venue and venue upgrade are what
  ingestion would have made of those sightings alone;
- everything that points at a paper follows it: sightings, catalogue entries, review
  candidates and their decisions, `scoring_backlog`;
- a decision is never lost and a rejection never undone by a repair: a paper rejected for a
  catalogue is not proposed to it again (see `split` and `merge`);
- the saved identity index is discarded (`ingest.discard_index`), so the next ingestion
  rebuilds it from the repaired store instead of putting records back where they were.

Each operation is one transaction under the pipeline lock: a crash leaves all of it or
none of it, and a nightly run never ingests with an index that predates it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, insert, select, update
from sqlalchemy.orm import Session

from vpt_tracker.errors import UserError
from vpt_tracker.ingest import (
    KEY_FIELDS,
    KEY_LABELS,
    chunks,
    discard_index,
    lists_to_tell,
    rebuild_papers,
    record_keys,
    title_numbers,
)
from vpt_tracker.locks import exclusive
from vpt_tracker.models import CandidateStatus, RawRecord
from vpt_tracker.normalize import arxiv_id as normal_arxiv_id
from vpt_tracker.normalize import cvf_url as normal_cvf_url
from vpt_tracker.normalize import doi as normal_doi
from vpt_tracker.normalize import openreview_id as normal_openreview_id
from vpt_tracker.normalize import title_key
from vpt_tracker.pipeline import owe_to_catalogues
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DecisionRow,
    EntryRow,
    PaperRow,
    PublicationRow,
    ScoringBacklogRow,
    SightingRow,
    VenueUpgradeRow,
    utcnow,
)

#: Keys that prove identity: two papers may not share one. A DOI may (one proceedings-volume
#: DOI on two preprints, see ingest), and the first paper keeps it.
_PROOF_KEYS = {name: label for name, label in KEY_LABELS.items() if name != "doi"}
#: Which of two candidates of one catalogue a merged paper keeps: the one furthest along.
#: A rejection outranks an open candidate, so a rejected paper is never proposed again; an
#: accepted or published one outranks a rejection, since the paper is then in the list.
_STATUS_RANK = {
    CandidateStatus.PENDING.value: 0,
    CandidateStatus.DEFERRED.value: 1,
    CandidateStatus.REJECTED.value: 2,
    CandidateStatus.ACCEPTED.value: 3,
    CandidateStatus.PUBLISHED.value: 4,
}


@dataclass
class Repair:
    """What a split or a merge did, for the CLI's text and `--json`."""

    action: str  # "split", "merge" or "rebuild"
    paper_id: int  # the paper that stays (split: the one split; merge: KEEP_ID)
    other_id: int | None  # split: the new paper; merge: the paper merged away (now deleted)
    titles: dict[int, str] = field(default_factory=dict)
    sightings_moved: list[int] = field(default_factory=list)
    entries_moved: list[int] = field(default_factory=list)
    candidates_moved: list[int] = field(default_factory=list)
    candidates_dropped: list[int] = field(default_factory=list)  # merge: the other of a pair
    candidates_copied: list[int] = field(default_factory=list)  # split: rejections the new paper keeps
    decisions_moved: int = 0
    owed_by: list[str] = field(default_factory=list)  # catalogues that owe the new paper a score
    changed: dict[str, list[Any]] = field(default_factory=dict)  # rebuild: column -> [before, after]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["titles"] = {str(paper): title for paper, title in self.titles.items()}
        return data


def _paper(session: Session, paper_id: int) -> PaperRow:
    paper = session.get(PaperRow, paper_id)
    if paper is None:
        raise UserError(f"no paper {paper_id}")
    return paper


def _lock_candidates(session: Session, paper_ids: Sequence[int]) -> None:
    """Lock the papers' candidates until the repair commits (PostgreSQL; SQLite's write lock
    does it for the whole store).

    A repair weighs the candidates as it reads them (which one a merge keeps, which
    rejections a split copies). A reviewer's decision committed in between was lost: a
    merge deleted the candidate just rejected and kept the deferred one, and the paper came
    back to the queue. Locked, a reviewer's decision waits for the repair and then finds
    the candidate merged away (refused, with a message), or is committed first and read.
    """
    session.execute(select(CandidateRow.id).where(CandidateRow.paper_id.in_(paper_ids)).with_for_update())


def _sightings(session: Session, paper_ids: Iterable[int]) -> list[SightingRow]:
    """The papers' sightings in ingestion order (fetch time, then id: a batch's order)."""
    query = select(SightingRow).where(SightingRow.paper_id.in_(list(paper_ids)))
    return list(session.scalars(query.order_by(SightingRow.fetched_at, SightingRow.id)))


def _owed_by(paper_id: int) -> ColumnElement[bool]:
    """The `scoring_backlog` rows of the paper still owed (the scored ones stay for the digest)."""
    return and_(ScoringBacklogRow.paper_id == paper_id, ScoringBacklogRow.scored_at.is_(None))


def _record(sighting: SightingRow) -> RawRecord:
    """The record a sighting stored; its row says the source where a payload does not."""
    return RawRecord.from_json(
        {"source": sighting.source, "source_id": sighting.source_id, "title": "", **(sighting.payload or {})}
    )


def _records(sightings: Sequence[SightingRow]) -> list[tuple[RawRecord, datetime]]:
    return [(_record(s), s.fetched_at) for s in sightings]


def _columns(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A rebuilt paper's values to write over a stored one (which keeps its `created_at`)."""
    return {**{k: v for k, v in values.items() if k != "created_at"}, "modified_at": now}


def _record_replayed_upgrade(session: Session, paper_id: int, values: dict[str, Any]) -> None:
    """A rebuilt paper upgraded by its replayed sightings at a time no `venue_upgrades` row
    of it has (the venue sighting came to it from the other paper, or a split took away the
    one that upgraded it first) gets a row at that time, for the digest of that week, in the
    lists that hold it now (its entries are already where the repair puts them)."""
    at = values.get("venue_upgraded_at")
    if at is None:
        return
    known = session.scalars(select(VenueUpgradeRow.at).where(VenueUpgradeRow.paper_id == paper_id)).all()
    if at in known:
        return
    session.add(
        VenueUpgradeRow(
            paper_id=paper_id,
            at=at,
            previous_venue=values.get("previous_venue"),
            venue=values.get("venue"),
            year=values.get("year"),
            listed_in=lists_to_tell(session, [paper_id]).get(paper_id, []),
        )
    )


def split(
    engine: Engine, paper_id: int, sighting_ids: Sequence[int], *, catalogues: Sequence[str] = ()
) -> Repair:
    """Move `sighting_ids` of paper `paper_id` out into a new paper.

    The paper keeps its id, its other sightings, its candidates and decisions. A catalogue
    entry goes with the new paper when its own `catalogue` sighting moves, or when its
    arXiv id is the new paper's and not the old one's; an entry's candidate goes with it.
    The new paper is owed a score by `catalogues` (the configured ones) and by every
    catalogue the old one still owed, as a paper stored by `fetch` is; a catalogue that
    rejected the old paper keeps the new one rejected too (a copy of the candidate), since
    its reviewer saw these sightings as part of what they rejected.
    """
    with exclusive(engine, "pipeline"), transaction(engine) as session:
        paper = _paper(session, paper_id)
        _lock_candidates(session, [paper_id])
        sightings = _sightings(session, [paper_id])
        wanted = list(dict.fromkeys(sighting_ids))
        ours = {s.id for s in sightings}
        for sighting_id in wanted:
            if sighting_id not in ours:
                owner = session.scalar(select(SightingRow.paper_id).where(SightingRow.id == sighting_id))
                if owner is None:
                    raise UserError(f"no sighting {sighting_id}")
                raise UserError(f"sighting {sighting_id} is of paper {owner}, not of paper {paper_id}")
        moving = [s for s in sightings if s.id in set(wanted)]
        staying = [s for s in sightings if s.id not in set(wanted)]
        if not staying:
            raise UserError(
                f"paper {paper_id} has no other sightings: moving all {len(moving)} would only renumber it"
            )
        _refuse_shared_proof(paper_id, staying, moving)
        now = utcnow()
        kept, new = rebuild_papers(session, [_records(staying), _records(moving)], rebuilt=[paper_id])
        session.execute(update(PaperRow).where(PaperRow.id == paper_id).values(**_columns(kept, now)))
        new_id = session.execute(
            insert(PaperRow).values(**{**new, "modified_at": now}).returning(PaperRow.id)
        ).scalar_one()
        repair = Repair("split", paper_id, new_id, titles={paper_id: kept["title"], new_id: new["title"]})
        repair.sightings_moved = [s.id for s in moving]
        session.execute(
            update(SightingRow).where(SightingRow.id.in_(repair.sightings_moved)).values(paper_id=new_id)
        )
        _split_entries(session, paper, new_id, new.get("arxiv_id"), kept.get("arxiv_id"), moving, repair)
        _copy_rejections(session, paper_id, new_id, now, repair)
        owed = session.scalars(select(ScoringBacklogRow.catalogue).where(_owed_by(paper_id)))
        repair.owed_by = sorted({*catalogues, *owed})
        owe_to_catalogues(session, repair.owed_by, [new_id])
        _record_replayed_upgrade(session, paper_id, kept)
        _record_replayed_upgrade(session, new_id, new)
        discard_index(session)
    return repair


def _refuse_shared_proof(
    paper_id: int, staying: Sequence[SightingRow], moving: Sequence[SightingRow]
) -> None:
    """Sightings that share an arXiv id, OpenReview id or CVF URL are one paper by proof:
    ingestion would send the next record with that key to one of the two, so they cannot
    be split."""
    stay_keys = [(s, record_keys(_record(s))) for s in staying]
    for moved in moving:
        keys = record_keys(_record(moved))
        for name, label in _PROOF_KEYS.items():
            value = getattr(keys, name)
            for other, other_keys in stay_keys:
                if value is not None and getattr(other_keys, name) == value:
                    raise UserError(
                        f"sightings {moved.id} and {other.id} of paper {paper_id} share the {label} {value}: "
                        "a shared key makes them one paper, so they cannot be split"
                    )


def _split_entries(
    session: Session,
    paper: PaperRow,
    new_id: int,
    new_arxiv: str | None,
    kept_arxiv: str | None,
    moving: Sequence[SightingRow],
    repair: Repair,
) -> None:
    """Entries (and their candidates) that are the new paper's: see `split`.

    An entry's own sighting (`enrich`'s) is known by its title folded today
    (`entry_sighting_of`).
    """
    moved_catalogue_ids = {key for key in map(entry_sighting_of, moving) if key is not None}
    rows = session.execute(
        select(EntryRow, CatalogueRow.name)
        .join(CatalogueRow, CatalogueRow.id == EntryRow.catalogue_id)
        .where(EntryRow.paper_id == paper.id)
    ).all()
    for entry, catalogue in rows:
        own_sighting = entry_sighting_id(catalogue, entry.title_key) in moved_catalogue_ids
        entry_arxiv = normal_arxiv_id(entry.arxiv_id)
        by_arxiv = entry_arxiv is not None and entry_arxiv == new_arxiv and entry_arxiv != kept_arxiv
        if not (own_sighting or by_arxiv):
            continue
        entry.paper_id = new_id
        repair.entries_moved.append(entry.id)
        if entry.candidate_id is not None:
            candidate = session.get(CandidateRow, entry.candidate_id)
            if candidate is not None and candidate.paper_id == paper.id:
                session.execute(
                    update(CandidateRow).where(CandidateRow.id == candidate.id).values(paper_id=new_id)
                )
                repair.candidates_moved.append(candidate.id)


def entry_sighting_id(catalogue: str, folded_title: str) -> str:
    """The source id of a catalogue entry's own sighting (`catalogue enrich` stores one per
    entry, source "catalogue"): the list's name and the entry's folded title."""
    return f"{catalogue}:{folded_title[:400]}"


def entry_sighting_of(sighting: SightingRow) -> str | None:
    """The entry a sighting is the own sighting of, as `entry_sighting_id` names it today
    (None for a source's record).

    Its title is folded today, not taken from the key in its source id: that key is the
    folding of the day it was stored, and migrations re-key entries (0008: "E^2VPT" was
    "e 2vpt", is "e2vpt").
    """
    if sighting.source != "catalogue":
        return None
    return entry_sighting_id(sighting.source_id.partition(":")[0], title_key(_record(sighting).title))


def _copy_rejections(session: Session, paper_id: int, new_id: int, now: datetime, repair: Repair) -> None:
    rejected = session.scalars(
        select(CandidateRow).where(
            CandidateRow.paper_id == paper_id, CandidateRow.status == CandidateStatus.REJECTED.value
        )
    ).all()
    for candidate in rejected:
        reason = f"rejected as paper {paper_id} before it was split" + (
            f": {candidate.reason}" if candidate.reason else ""
        )
        copied = session.execute(
            insert(CandidateRow)
            .values(
                paper_id=new_id,
                catalogue_id=candidate.catalogue_id,
                status=CandidateStatus.REJECTED.value,
                relevance=candidate.relevance,
                label_scores=candidate.label_scores,
                proposed_labels=candidate.proposed_labels,
                final_labels=candidate.final_labels,
                base_to_novel=candidate.base_to_novel,
                base_to_novel_flag=candidate.base_to_novel_flag,
                low_confidence=candidate.low_confidence,
                rule=candidate.rule,
                reason=reason,
                reviewer=candidate.reviewer,
                model_version=candidate.model_version,
                # Queued when the paper was, not now: the copy is no new candidate of the
                # split's week (the digest listed old rejections among the week's new ones).
                created_at=candidate.created_at,
                updated_at=now,
                decided_at=candidate.decided_at,
            )
            .returning(CandidateRow.id)
        ).scalar_one()
        repair.candidates_copied.append(copied)


def merge(engine: Engine, keep_id: int, other_id: int) -> Repair:
    """Merge paper `other_id` into `keep_id`, which keeps its id; `other_id` is deleted.

    The merged paper is rebuilt from the sightings of both. Of two candidates for one
    catalogue it keeps the one furthest along (`_STATUS_RANK`: published, accepted,
    rejected, deferred, pending; on a tie, `keep_id`'s), and the other's decisions move to
    it, so the audit log stays whole; the kept candidate's version is then raised past
    theirs, so `review undo` refuses to replay a moved decision onto it (its own decisions
    can still be undone). Merging is refused when a sighting's key contradicts the merged
    paper's (two arXiv ids): a paper holds one key of each kind, and the next record with
    the other key would be a paper of its own again.
    """
    with exclusive(engine, "pipeline"), transaction(engine) as session:
        return merge_papers(session, keep_id, other_id)


def merge_papers(session: Session, keep_id: int, other_id: int) -> Repair:
    """`merge` in the caller's transaction, which holds the pipeline lock.

    Catalogue enrichment calls it when the record it matched to an entry became a paper of
    its own: the match is the evidence that the two papers are one.
    """
    if keep_id == other_id:
        raise UserError(f"cannot merge paper {keep_id} with itself")
    keep, other = _paper(session, keep_id), _paper(session, other_id)
    _lock_candidates(session, [keep_id, other_id])
    sightings = _sightings(session, [keep_id, other_id])
    if not sightings:
        raise UserError(f"papers {keep_id} and {other_id} have no sightings to rebuild the paper from")
    (merged,) = rebuild_papers(session, [_records(sightings)], rebuilt=[keep_id, other_id])
    _refuse_contradictions(sightings, merged)
    now = utcnow()
    repair = Repair("merge", keep_id, other_id, titles={keep_id: merged["title"], other_id: other.title})
    repair.sightings_moved = [s.id for s in sightings if s.paper_id == other_id]
    session.execute(update(SightingRow).where(SightingRow.paper_id == other_id).values(paper_id=keep_id))
    moved_entries = session.scalars(select(EntryRow.id).where(EntryRow.paper_id == other_id)).all()
    repair.entries_moved = list(moved_entries)
    session.execute(update(EntryRow).where(EntryRow.paper_id == other_id).values(paper_id=keep_id))
    # The other paper's venue upgrades happened: the digest of their week still lists them.
    session.execute(
        update(VenueUpgradeRow).where(VenueUpgradeRow.paper_id == other_id).values(paper_id=keep_id)
    )
    _merge_candidates(session, keep_id, other_id, repair)
    # What both still owe is owed once; the rest (scored rows too, for the digest) moves.
    keep_owes = set(session.scalars(select(ScoringBacklogRow.catalogue).where(_owed_by(keep_id))))
    session.execute(
        delete(ScoringBacklogRow).where(_owed_by(other_id), ScoringBacklogRow.catalogue.in_(keep_owes))
    )
    session.execute(
        update(ScoringBacklogRow).where(ScoringBacklogRow.paper_id == other_id).values(paper_id=keep_id)
    )
    created_at = min(keep.created_at, other.created_at)
    full_text = keep.full_text or other.full_text
    session.execute(delete(PaperRow).where(PaperRow.id == other_id))  # frees its unique keys
    values = {**_columns(merged, now), "created_at": created_at, "full_text": full_text}
    session.execute(update(PaperRow).where(PaperRow.id == keep_id).values(**values))
    _record_replayed_upgrade(session, keep_id, merged)
    discard_index(session)
    return repair


def rebuild(engine: Engine, paper_id: int) -> Repair:
    """Rebuild paper `paper_id` from its own sightings, moving nothing.

    For a paper an earlier version stored with a key ingestion no longer makes (a multi-DOI
    field kept whole): its stale key kept the paper's next records away (a key that differs
    rules a fuzzy match out) and matched none of them exactly. References stay as they are.
    """
    with exclusive(engine, "pipeline"), transaction(engine) as session:
        paper = _paper(session, paper_id)
        sightings = _sightings(session, [paper_id])
        if not sightings:
            raise UserError(f"paper {paper_id} has no sightings to rebuild it from")
        (values,) = rebuild_papers(session, [_records(sightings)], rebuilt=[paper_id])
        repair = Repair("rebuild", paper_id, None, titles={paper_id: values["title"]})
        for column, value in values.items():
            before = getattr(paper, column)
            if column not in ("created_at", "modified_at", "venue_upgraded_at") and before != value:
                repair.changed[column] = [before, value]
        session.execute(update(PaperRow).where(PaperRow.id == paper_id).values(**_columns(values, utcnow())))
        _record_replayed_upgrade(session, paper_id, values)
        discard_index(session)
    return repair


def _refuse_contradictions(sightings: Sequence[SightingRow], merged: dict[str, Any]) -> None:
    for sighting in sightings:
        keys = record_keys(_record(sighting))
        for name, label in KEY_LABELS.items():
            value, held = getattr(keys, name), merged.get(name)
            if value is not None and held is not None and value != held:
                raise UserError(
                    f"cannot merge: sighting {sighting.id} (paper {sighting.paper_id}) has the {label} "
                    f"{value} and the merged paper would have {held}; a paper holds one {label}, and the "
                    "next record with the other would be a paper of its own again"
                )


def _merge_candidates(session: Session, keep_id: int, other_id: int, repair: Repair) -> None:
    mine = {
        c.catalogue_id: c
        for c in session.scalars(select(CandidateRow).where(CandidateRow.paper_id == keep_id))
    }
    theirs = session.scalars(select(CandidateRow).where(CandidateRow.paper_id == other_id)).all()
    for candidate in theirs:
        kept = mine.get(candidate.catalogue_id)
        if kept is None:
            session.execute(
                update(CandidateRow).where(CandidateRow.id == candidate.id).values(paper_id=keep_id)
            )
            repair.candidates_moved.append(candidate.id)
            continue
        if _STATUS_RANK.get(candidate.status, -1) > _STATUS_RANK.get(kept.status, -1):
            kept, candidate = candidate, kept  # `candidate` is now the one to drop
        dropped = candidate
        moved = session.scalars(select(DecisionRow.after).where(DecisionRow.candidate_id == dropped.id)).all()
        session.execute(
            update(DecisionRow).where(DecisionRow.candidate_id == dropped.id).values(candidate_id=kept.id)
        )
        repair.decisions_moved += len(moved)
        published = update(PublicationRow).where(PublicationRow.candidate_id == dropped.id)
        session.execute(published.values(candidate_id=kept.id))  # it happened (the digest of its week)
        session.execute(
            update(EntryRow).where(EntryRow.candidate_id == dropped.id).values(candidate_id=kept.id)
        )
        session.execute(delete(CandidateRow).where(CandidateRow.id == dropped.id))
        # Queued when the first of the two was, as the merged paper is created when the first
        # was: the paper queued weeks ago is no new candidate of the merge's week (digest).
        values: dict[str, Any] = {"paper_id": keep_id, "created_at": min(kept.created_at, dropped.created_at)}
        if moved:  # past every moved decision's version: `review undo` cannot replay one onto it
            values["version"] = max([kept.version, *(int((a or {}).get("version") or 0) for a in moved)]) + 1
            values["updated_at"] = utcnow()
        session.execute(update(CandidateRow).where(CandidateRow.id == kept.id).values(**values))
        repair.candidates_dropped.append(dropped.id)
        if kept.paper_id == other_id:
            repair.candidates_moved.append(kept.id)


@dataclass
class Suspect:
    """A paper whose sightings ingestion would no longer merge: titles whose numbers differ.

    `groups` holds its sightings by the numbers of their titles, in order of first sighting;
    the first group is the paper's own, the others are what `papers split` would move out.
    """

    paper_id: int
    title: str
    groups: list[dict[str, Any]]

    def split_command(self) -> str:
        moved = " ".join(f"--sighting {sid}" for group in self.groups[1:] for sid in group["sighting_ids"])
        return f"vpt-tracker papers split {self.paper_id} {moved}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "split": self.split_command()}


def check(engine: Engine) -> list[Suspect]:
    """Papers merged by an earlier version from sightings whose titles differ in a number.

    Ingestion's fuzzy match now keeps such titles apart (`ingest.title_numbers`: "Foo v2"
    and "Foo v3", "… 2025" and "… 2026"); stores made before hold them as one paper. A paper
    whose sightings share an arXiv id, OpenReview id or CVF URL across the groups is one by
    proof (a renamed preprint) and is not listed. Reads the sightings of the papers that
    have more than one, in one pass.
    """
    suspects: list[Suspect] = []
    with transaction(engine) as session:
        several = (
            select(SightingRow.paper_id).group_by(SightingRow.paper_id).having(func.count() > 1).subquery()
        )
        rows = session.execute(
            select(SightingRow)
            .where(SightingRow.paper_id.in_(select(several.c.paper_id)))
            .order_by(SightingRow.paper_id, SightingRow.fetched_at, SightingRow.id)
            .execution_options(yield_per=2000)
        )
        current: int | None = None
        group: list[tuple[int, RawRecord]] = []
        for sighting in rows.scalars():
            if sighting.paper_id != current:
                if current is not None:
                    suspects.extend(_suspect(current, group))
                current, group = sighting.paper_id, []
            group.append((sighting.id, _record(sighting)))
        if current is not None:
            suspects.extend(_suspect(current, group))
        titles: dict[int, str] = {}
        for chunk in chunks([s.paper_id for s in suspects], 900):
            titles.update(
                (paper_id, title)
                for paper_id, title in session.execute(
                    select(PaperRow.id, PaperRow.title).where(PaperRow.id.in_(chunk))
                )
            )
    for suspect in suspects:
        suspect.title = titles.get(suspect.paper_id, "")
    return suspects


@dataclass
class StaleKey:
    """A key stored by an earlier version in a form ingestion no longer makes."""

    paper_id: int
    title: str
    key: str  # column: arxiv_id, doi, openreview_id, cvf_url
    stored: str
    current: str | None  # what ingestion makes of it now (None: not a key at all)
    held_by: int | None  # the paper that holds `current`, a duplicate made since

    def fix_command(self) -> str:
        if self.held_by is not None:
            return f"vpt-tracker papers merge {self.paper_id} {self.held_by}"
        return f"vpt-tracker papers rebuild {self.paper_id}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fix": self.fix_command()}


_NORMALISE = {
    "arxiv_id": normal_arxiv_id,
    "doi": normal_doi,
    "openreview_id": normal_openreview_id,
    "cvf_url": normal_cvf_url,
}


def stale_keys(engine: Engine) -> list[StaleKey]:
    """Papers whose stored key is not what ingestion makes of it today (`normalize`).

    An earlier version kept arXiv's multi-DOI field whole ("10.1109/X 10.1109/X"): no
    record's DOI matched it, and since a differing key rules a fuzzy match out, the paper's
    journal record became a second paper. Each is listed with the paper that holds the key
    now, if one does (`papers merge`), else for `papers rebuild`.
    """
    found: list[StaleKey] = []
    with transaction(engine) as session:
        for name, normalise in _NORMALISE.items():
            column = getattr(PaperRow, name)
            rows = session.execute(
                select(PaperRow.id, PaperRow.title, column)
                .where(column.is_not(None))
                .execution_options(yield_per=5000)
            )
            stale = [(pid, title, value) for pid, title, value in rows if normalise(value) != value]
            for paper_id, title, value in stale:
                current = normalise(value)
                held = (
                    None if current is None else session.scalar(select(PaperRow.id).where(column == current))
                )
                found.append(StaleKey(paper_id, title, name, value, current, held))
    return found


def _suspect(paper_id: int, sightings: list[tuple[int, RawRecord]]) -> list[Suspect]:
    by_numbers: dict[tuple[str, ...], dict[str, Any]] = {}
    keys: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for sighting_id, record in sightings:
        folded = title_key(record.title or "")
        if not folded:
            continue
        numbers = tuple(title_numbers(folded))
        group = by_numbers.setdefault(
            numbers, {"numbers": list(numbers), "title": record.title, "sighting_ids": []}
        )
        group["sighting_ids"].append(sighting_id)
        record_key = record_keys(record)
        keys.setdefault(numbers, set()).update(
            (name, getattr(record_key, name)) for name in _PROOF_KEYS if getattr(record_key, name) is not None
        )
    if len(by_numbers) < 2:
        return []
    proofs = list(keys.values())
    if any(a & b for i, a in enumerate(proofs) for b in proofs[i + 1 :]):
        return []
    return [Suspect(paper_id, "", list(by_numbers.values()))]


def paper_entries(session: Session, paper_id: int) -> list[tuple[int, str, str]]:
    """The catalogue entries linked to a paper: (entry id, catalogue name, title), by id."""
    rows = session.execute(
        select(EntryRow.id, CatalogueRow.name, EntryRow.title)
        .join(CatalogueRow, CatalogueRow.id == EntryRow.catalogue_id)
        .where(EntryRow.paper_id == paper_id)
        .order_by(EntryRow.id)
    )
    return [(entry_id, name, title) for entry_id, name, title in rows]


def paper_candidates(session: Session, paper_id: int) -> list[tuple[int, str, str]]:
    """A paper's candidates: (candidate id, catalogue name, status), by id."""
    rows = session.execute(
        select(CandidateRow.id, CatalogueRow.name, CandidateRow.status)
        .join(CatalogueRow, CatalogueRow.id == CandidateRow.catalogue_id)
        .where(CandidateRow.paper_id == paper_id)
        .order_by(CandidateRow.id)
    )
    return [(candidate_id, name, status) for candidate_id, name, status in rows]


def describe(engine: Engine, paper_id: int) -> dict[str, Any]:
    """A paper with what points at it: its sightings (the ids `split` takes), the catalogue
    entries linked to it, its candidates and what the scoring backlog owes it."""
    with transaction(engine) as session:
        paper = _paper(session, paper_id)
        sightings = []
        for sighting in _sightings(session, [paper_id]):
            record = _record(sighting)
            keys = record_keys(record)
            sightings.append(
                {
                    "id": sighting.id,
                    "source": sighting.source,
                    "source_id": sighting.source_id,
                    "fetched_at": sighting.fetched_at,
                    "title": record.title,
                    "venue": record.venue,
                    "year": record.year,
                    **{name: getattr(keys, name) for name in KEY_FIELDS},
                }
            )
        entries = paper_entries(session, paper_id)
        candidates = paper_candidates(session, paper_id)
        owed = session.scalars(
            select(ScoringBacklogRow.catalogue)
            .where(_owed_by(paper_id))
            .order_by(ScoringBacklogRow.catalogue)
        ).all()
        return {
            "id": paper.id,
            "title": paper.title,
            "venue": paper.venue,
            "year": paper.year,
            "previous_venue": paper.previous_venue,
            "venue_upgraded_at": paper.venue_upgraded_at,
            **{name: getattr(paper, name) for name in KEY_FIELDS},
            "sightings": sightings,
            "entries": [{"id": i, "catalogue": c, "title": t} for i, c, t in entries],
            "candidates": [{"id": i, "catalogue": c, "status": s} for i, c, s in candidates],
            "owed_by": list(owed),
        }
