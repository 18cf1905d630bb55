"""Accepted candidates become catalogue entries; venue upgrades update existing lines.

Promotion writes entry rows through the catalogue service (`add_entry`, `upgrade_entry`),
so the next render shows them in the list's own style. It is idempotent: an entry row
remembers its candidate, so running it again (after a failed push, say) adds nothing
twice. It never changes a candidate's status: a candidate becomes `published` only once
its pull request exists, which is the publisher's business.

`pending_changes` lists everything vpt-tracker changed in a catalogue that upstream does
not have yet, with the scores and the reviewer's decision behind each change, for the
pull request body.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import MissingSection, NewEntry
from vpt_tracker.catalogue.names import ListedNames, short_name, titles_agree
from vpt_tracker.catalogue.service import (
    add_entry,
    catalogue_document,
    get_catalogue,
    revert_upgrade,
    upgrade_entry,
)
from vpt_tracker.classify.presets import SHIPPED, Presets
from vpt_tracker.classify.taxonomy import Preset
from vpt_tracker.errors import UserError
from vpt_tracker.models import CandidateStatus
from vpt_tracker.normalize import is_preprint_venue
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, DecisionRow, EntryRow, PaperRow

log = logging.getLogger(__name__)

_TRAILING_YEAR = re.compile(r"[\s,']*((?:19|20)\d{2})\s*$")


def split_venue(venue: str | None, year: int | None) -> tuple[str | None, int | None]:
    """ "CVPR 2025" -> ("CVPR", 2025); a year in the text wins over a missing `year`."""
    if not venue:
        return None, year
    match = _TRAILING_YEAR.search(venue)
    if match and match.start() > 0:
        return venue[: match.start()].strip(), year or int(match.group(1))
    return venue.strip(), year


def paper_url(paper: PaperRow) -> str | None:
    """The best landing page of a paper: arXiv abstract, CVF, OpenReview, DOI, then the PDF."""
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    candidates = [paper.cvf_url]
    if paper.openreview_id:
        candidates.append(f"https://openreview.net/forum?id={paper.openreview_id}")
    if paper.doi:
        candidates.append(normalize.doi_url(paper.doi))
    candidates.append(paper.pdf_url)
    return next((url for url in map(normalize.web_url, candidates) if url), None)


@dataclass(frozen=True)
class ReviewDecision:
    reviewer: str
    action: str
    at: datetime
    reason: str | None


@dataclass
class Change:
    """One added or updated entry, with what the PR body shows about it."""

    action: str  # "added" | "updated"
    entry_id: int
    title: str
    venue: str | None
    year: int | None
    section_path: list[str]
    labels: list[str]
    paper_url: str | None = None
    short_name: str | None = None  # what a table of names shows instead of the title
    previous: tuple[str | None, int | None] | None = None  # venue, year before an upgrade
    candidate_id: int | None = None
    candidate_status: str | None = None
    relevance: float | None = None
    label_scores: dict[str, float] = field(default_factory=dict)
    base_to_novel: float | None = None
    decision: ReviewDecision | None = None


@dataclass
class Skipped:
    candidate_id: int
    title: str
    reason: str


@dataclass
class Promotion:
    added: list[int] = field(default_factory=list)  # entry ids created by this call
    updated: list[int] = field(default_factory=list)
    retracted: list[int] = field(default_factory=list)  # acceptance undone: taken out, or upgrade reverted
    skipped: list[Skipped] = field(default_factory=list)


def _match_entry(entries: list[EntryRow], paper: PaperRow) -> EntryRow | None:
    """The entry that already lists `paper`: by paper id, arXiv id, folded title, then by the
    paper's name where the entry shows only a name ("E2VPT")."""
    key = normalize.title_key(paper.title)[:512]
    for test in (
        lambda e: e.paper_id is not None and e.paper_id == paper.id,
        lambda e: bool(paper.arxiv_id) and e.arxiv_id == paper.arxiv_id,
        lambda e: bool(key) and e.title_key == key,
    ):
        found = next((e for e in entries if test(e)), None)
        if found is not None:
            return found
    unlinked = [e for e in entries if e.paper_id is None]
    return ListedNames.of(unlinked).find(paper.title, paper.abstract, paper.year)


def _shows_already(paper: PaperRow, entry: EntryRow) -> bool:
    """Whether `entry` already shows `paper` as promotion would leave it: nothing to upgrade
    (the paper is a preprint, or the entry gives a venue), or the entry is one of ours."""
    venue, _ = split_venue(paper.venue, paper.year)
    return is_preprint_venue(venue) or not is_preprint_venue(entry.venue) or entry.state == "added"


def listed_as_is(entries: list[EntryRow], paper: PaperRow) -> EntryRow | None:
    """The imported entry (the list upstream) that shows `paper` with nothing left for
    promotion to do, which it refuses as "already listed"; None when there is none."""
    entry = _match_entry([e for e in entries if e.state == "imported"], paper)
    return entry if entry is not None and _shows_already(paper, entry) else None


def _preset(catalogue: CatalogueRow, presets: Presets) -> Preset | None:
    return presets.load(catalogue.preset) if catalogue.preset else None


def promote(session: Session, catalogue_name: str, presets: Presets = SHIPPED) -> Promotion:
    """Turn the catalogue's accepted candidates into entries (in the caller's transaction)."""
    catalogue = get_catalogue(session, catalogue_name)
    preset = _preset(catalogue, presets)
    result = Promotion()

    _retract_stale(session, catalogue, result)
    _follow_venues(session, catalogue, preset, result)
    candidates = session.scalars(
        select(CandidateRow)
        .where(
            CandidateRow.catalogue_id == catalogue.id,
            CandidateRow.status == CandidateStatus.ACCEPTED.value,
        )
        .order_by(CandidateRow.decided_at, CandidateRow.id)
    ).all()
    for candidate in candidates:
        entries = list(catalogue.entries)
        if any(e.candidate_id == candidate.id for e in entries):
            continue  # promoted by an earlier run
        paper = candidate.paper
        existing = _match_entry(entries, paper)
        try:
            if existing is not None:
                _promote_upgrade(session, candidate, paper, existing, result)
            else:
                _promote_new(session, catalogue, preset, candidate, paper, result)
        except UserError as exc:
            result.skipped.append(Skipped(candidate.id, paper.title, str(exc)))
    _upgrade_listed_papers(session, catalogue, result)
    for skipped in result.skipped:
        log.info("candidate %s (%s) not promoted: %s", skipped.candidate_id, skipped.title, skipped.reason)
    return result


def _final_labels(candidate: CandidateRow) -> list[str]:
    return list(candidate.final_labels if candidate.final_labels is not None else candidate.proposed_labels)


def _retract_stale(session: Session, catalogue: CatalogueRow, result: Promotion) -> None:
    """An added entry whose candidate is no longer accepted (undo, reject) leaves the list,
    and a venue upgrade such a candidate made is reverted (before, only added entries were
    taken out, and the next publish still proposed an upgrade nobody had accepted).

    So does one whose accepted candidate was relabelled since it was promoted (a publish
    that failed after promotion keeps its entries, and `review relabel` is allowed until the
    paper is published): the loop in `promote` then places it again from the new labels,
    instead of leaving it in the section the old ones chose.
    """
    for entry in list(catalogue.entries):
        if entry.state not in ("added", "updated") or entry.candidate_id is None:
            continue
        candidate = session.get(CandidateRow, entry.candidate_id)
        gone = candidate is None or candidate.status not in (
            CandidateStatus.ACCEPTED,
            CandidateStatus.PUBLISHED,
        )
        if entry.state == "updated":
            if gone:
                result.retracted.append(entry.id)
                revert_upgrade(session, entry.id)
                entry.candidate_id = None  # accepted again, the paper is upgraded again
            continue
        relabelled = (
            candidate is not None
            and candidate.status == CandidateStatus.ACCEPTED
            and _final_labels(candidate) != list(entry.labels or [])
        )
        if gone or relabelled:
            result.retracted.append(entry.id)
            catalogue.entries.remove(entry)
            session.delete(entry)
    session.flush()


def _follow_venues(
    session: Session, catalogue: CatalogueRow, preset: Preset | None, result: Promotion
) -> None:
    """An added entry shows its paper's venue as it is now, in the section that venue's year
    gives: a paper promoted as a preprint ("arXiv 2025") and moved to a venue by the sources
    while its pull request was open kept the preprint venue, so the pull request proposed a
    venue known to be stale (and, in a list of year sections, the wrong section) until a
    second pull request after the merge upgraded it.

    The entry is written again, as promotion writes it, and the old one goes only once the
    new one is placed; a published candidate stays published (its pull request is updated).
    """
    for entry in list(catalogue.entries):
        if entry.state != "added" or entry.candidate_id is None:
            continue
        candidate = session.get(CandidateRow, entry.candidate_id)
        if candidate is None:
            continue
        venue, year = _entry_venue(candidate.paper)
        if (venue, year) == (entry.venue, entry.year) or is_preprint_venue(venue):
            continue
        try:
            _promote_new(session, catalogue, preset, candidate, candidate.paper, result)
        except UserError as exc:
            log.warning("entry %s keeps the venue %s: %s", entry.id, entry.venue, exc)
            continue
        result.retracted.append(entry.id)
        catalogue.entries.remove(entry)
        session.delete(entry)
        session.flush()


def _promote_upgrade(
    session: Session, candidate: CandidateRow, paper: PaperRow, entry: EntryRow, result: Promotion
) -> None:
    venue, year = split_venue(paper.venue, paper.year)
    if _shows_already(paper, entry):
        where = f"line {entry.line}" if entry.line else "an entry added earlier"
        raise UserError(f"already listed ({where}, {entry.venue or 'no venue'} {entry.year or ''})".strip())
    assert venue is not None
    # The paper may be listed twice (synbol's duplicated entries): every preprint line of it
    # is upgraded, or the list would give one paper two venues.
    twins = [
        e
        for e in entry.catalogue.entries
        if e is not entry
        and e.state == "imported"
        and is_preprint_venue(e.venue)
        and (
            e.title_key == entry.title_key
            or (
                entry.arxiv_id is not None
                and e.arxiv_id == entry.arxiv_id
                and titles_agree(e.title, paper.title, paper.abstract)
            )
        )
    ]
    for row in [entry, *twins]:
        upgrade_entry(session, row.id, venue=venue, year=year)
        row.candidate_id = candidate.id
        row.paper_id = row.paper_id or paper.id
        result.updated.append(row.id)


def _promote_new(
    session: Session,
    catalogue: CatalogueRow,
    preset: Preset | None,
    candidate: CandidateRow,
    paper: PaperRow,
    result: Promotion,
) -> None:
    labels = _final_labels(candidate)
    new, section = _new_entry(catalogue, preset, paper, labels)
    row = add_entry(
        session,
        catalogue.name,
        new,
        section_path=section,
        labels=labels,
        paper_id=paper.id,
        candidate_id=candidate.id,
    )
    result.added.append(row.id)


def _new_entry(
    catalogue: CatalogueRow, preset: Preset | None, paper: PaperRow, labels: list[str]
) -> tuple[NewEntry, list[str]]:
    """The entry a paper gets with these labels, written in the list's style, and its section."""
    venue, year = _entry_venue(paper)
    preset, section = _placement(catalogue, preset, labels, year)
    new = preset.entry_for(
        paper.title,
        venue,
        year,
        paper_url(paper),
        normalize.web_url(paper.code_url),
        labels,
        short_name(paper.title, paper.abstract),
    )
    return new, section


def _entry_venue(paper: PaperRow) -> tuple[str | None, int | None]:
    """The venue and year a new entry of `paper` shows ("arXiv" for a preprint with an id)."""
    venue, year = split_venue(paper.venue, paper.year)
    return venue or ("arXiv" if paper.arxiv_id else None), year


def _placement(
    catalogue: CatalogueRow, preset: Preset | None, labels: list[str], year: int | None
) -> tuple[Preset, list[str]]:
    """The section a new entry with these labels goes to; a UserError says why there is none."""
    if preset is None:
        raise UserError(f"catalogue {catalogue.name!r} has no taxonomy preset, so no section for new entries")
    section = preset.section_for(labels, year=year)
    if section is None:
        raise UserError(f"no section of preset {preset.name!r} takes the labels {labels}")
    return preset, section


def placement_problem(candidate: CandidateRow, labels: list[str], presets: Presets = SHIPPED) -> str | None:
    """Why `promote` would not list this candidate with these labels, or would list it in a way
    the list never shows (two badges of a group it shows one of); None when all is well.

    Asked when a reviewer accepts, so that labels the list has no section for are fixed while
    the paper is on screen, not found later as "not added" in a publish report. A paper the
    catalogue already lists needs no section (its entry is upgraded in place).

    The entry is placed for real, in a throwaway copy of the list: the preset may name a
    section the README no longer has (yunbeizhang's list was rewritten on 2025-10-20, and 13
    of the `awesome-vpt` preset's 14 sections went), which only the README itself can tell.
    """
    catalogue = candidate.catalogue
    if _match_entry(list(catalogue.entries), candidate.paper) is not None:
        return None
    preset = _preset(catalogue, presets)
    clash = preset.clash(labels) if preset else None
    if clash:
        return clash
    try:
        new, section = _new_entry(catalogue, preset, candidate.paper, labels)
        catalogue_document(catalogue).insert_entry(new, section)
    except MissingSection as missing:
        assert preset is not None
        return (
            f"it would not be published: the list has no section {' > '.join(missing.section_path)!r}, "
            f"where preset {preset.name!r} puts the labels {labels} (renamed or removed upstream?)"
        )
    except UserError as exc:
        return f"it would not be published: {exc}"
    return None


def _upgrade_listed_papers(session: Session, catalogue: CatalogueRow, result: Promotion) -> None:
    """Imported preprint entries whose paper has since appeared at a venue get that venue,
    even when no candidate asked for it (the paper was listed before vpt-tracker ran)."""
    preprints = [e for e in catalogue.entries if e.state == "imported" and is_preprint_venue(e.venue)]
    arxiv_ids = [e.arxiv_id for e in preprints if e.arxiv_id]
    paper_ids = [e.paper_id for e in preprints if e.paper_id]
    if not arxiv_ids and not paper_ids:
        return
    papers = session.scalars(
        select(PaperRow).where(or_(PaperRow.arxiv_id.in_(arxiv_ids), PaperRow.id.in_(paper_ids)))
    ).all()
    by_id = {p.id: p for p in papers}
    by_arxiv = {p.arxiv_id: p for p in papers if p.arxiv_id}
    for entry in preprints:
        paper = by_id.get(entry.paper_id) if entry.paper_id else None
        paper = paper or (by_arxiv.get(entry.arxiv_id) if entry.arxiv_id else None)
        if paper is None or paper.venue_upgraded_at is None:
            continue
        venue, year = split_venue(paper.venue, paper.year)
        if venue is None or is_preprint_venue(venue):
            continue
        try:
            upgrade_entry(session, entry.id, venue=venue, year=year)
        except UserError as exc:
            log.warning("entry at line %s keeps its venue: %s", entry.line, exc)
            continue
        entry.paper_id = entry.paper_id or paper.id
        result.updated.append(entry.id)


def _decision(session: Session, candidate_id: int) -> ReviewDecision | None:
    """The accept behind an entry, for the PR body.

    Only an `accept` that was not undone: the log also holds a losing reviewer's `conflict`
    row, relabels and undos, which are not the decision that put the paper in the list.
    """
    row = session.scalars(
        select(DecisionRow)
        .where(
            DecisionRow.candidate_id == candidate_id,
            DecisionRow.undone.is_(False),
            DecisionRow.action == "accept",
        )
        .order_by(DecisionRow.at.desc(), DecisionRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return ReviewDecision(row.reviewer, row.action, row.at, row.reason)


def pending_changes(session: Session, catalogue_name: str) -> list[Change]:
    """Every added or updated entry of the catalogue that upstream does not have yet."""
    catalogue = get_catalogue(session, catalogue_name)
    changes: list[Change] = []
    for entry in sorted(catalogue.entries, key=lambda e: (e.state != "added", e.id)):
        if entry.state not in ("added", "updated"):
            continue
        previous = (entry.extra or {}).get("previous")
        change = Change(
            action=entry.state,
            entry_id=entry.id,
            title=entry.title,
            venue=entry.venue,
            year=entry.year,
            section_path=list(entry.section_path or []),
            labels=list(entry.labels or []),
            paper_url=entry.paper_url,
            short_name=entry.short_name,
            previous=(
                (previous[0], previous[1]) if isinstance(previous, list) and len(previous) == 2 else None
            ),
            candidate_id=entry.candidate_id,
        )
        candidate = session.get(CandidateRow, entry.candidate_id) if entry.candidate_id else None
        if candidate is not None:
            change.candidate_status = candidate.status
            change.relevance = candidate.relevance
            change.label_scores = dict(candidate.label_scores or {})
            change.base_to_novel = candidate.base_to_novel
            change.decision = _decision(session, candidate.id)
        changes.append(change)
    return changes
