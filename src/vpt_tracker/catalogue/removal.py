"""Taking a catalogue out of the store: `vpt-tracker catalogue remove`.

A catalogue imported under a mistyped name, or a list no longer tracked, stayed among the
"known catalogues" for good. Removing one deletes what is the catalogue's alone, in one
transaction: its entries, candidates, review decisions, pull requests and publications.
Papers and sightings stay: they are shared with every other catalogue, and nothing
fetched is thrown away (the `catalogue` sightings `catalogue enrich` made of its entries
too: they are records of identity, and a paper made of them alone is still a paper).

What a maintainer would not want to lose without a word (what people did through
vpt-tracker: review decisions, candidates accepted, rejected, deferred or published,
pull requests, publications, entries vpt-tracker added or upgraded) is `history`: a
catalogue that has any is removed only with `force`. A freshly imported catalogue, even
one the nightly run already scored candidates for, has none.

Catalogue ids: `venue_upgrades.listed_in` remembers the catalogues whose list held a paper
when its venue was upgraded, by id. The removed id is taken out of those lists in the same
transaction, so that no digest of a past week tells of an upgrade in the removed one's list.
A removed id is never given to another catalogue (`catalogues` is AUTOINCREMENT on SQLite
since migration 0013), but one removed before that upgrade, while it was the highest, may be
given once more, and the pruning keeps that catalogue from inheriting the list too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from vpt_tracker.catalogue.service import get_catalogue
from vpt_tracker.errors import UserError
from vpt_tracker.identity import entry_sighting_id
from vpt_tracker.models import CandidateStatus
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DecisionRow,
    EntryRow,
    PublicationRow,
    PullRequestRow,
    SightingRow,
    VenueUpgradeRow,
)
from vpt_tracker.wording import plural

#: Pull request states that are over; any other (open, pushed) is still in progress.
_CLOSED_PULL_STATES = ("closed", "merged")


@dataclass(frozen=True)
class PullRequestInfo:
    number: int | None
    state: str
    url: str | None

    def describe(self) -> str:
        name = f"#{self.number}" if self.number is not None else "(not opened yet)"
        return f"{name} {self.state}" + (f" {self.url}" if self.url else "")


@dataclass(frozen=True)
class RemovalPlan:
    """What removing a catalogue takes away, counted in one session (the question asked and
    the check made in the removing transaction compare two of these)."""

    name: str
    catalogue_id: int
    entries: int
    changed_entries: int  # added or upgraded by vpt-tracker, not in the imported README
    candidates: dict[str, int]  # per status
    decisions: int
    pull_requests: tuple[PullRequestInfo, ...]
    publications: int
    venue_upgrades: int  # venue_upgrades rows that list it in `listed_in`
    sightings_kept: int = field(default=0, compare=False)  # own `catalogue` sightings: they stay

    @property
    def open_pull_requests(self) -> list[PullRequestInfo]:
        return [pull for pull in self.pull_requests if pull.state not in _CLOSED_PULL_STATES]

    def history(self) -> list[str]:
        """What people did through vpt-tracker in this catalogue: a removal without `force`
        refuses while there is any."""
        reasons = []
        open_pulls = self.open_pull_requests
        if open_pulls:
            which = ", ".join(pull.describe() for pull in open_pulls)
            reasons.append(f"{plural(len(open_pulls), 'open pull request')} ({which})")
        closed = len(self.pull_requests) - len(open_pulls)
        if closed:
            reasons.append(plural(closed, "closed or merged pull request"))
        reviewed = {s: n for s, n in self.candidates.items() if s != CandidateStatus.PENDING.value and n}
        if reviewed:
            reasons.append("candidates " + ", ".join(f"{s} {n}" for s, n in sorted(reviewed.items())))
        if self.decisions:
            reasons.append(plural(self.decisions, "review decision"))
        if self.publications:
            reasons.append(plural(self.publications, "publication"))
        if self.changed_entries:
            reasons.append(
                plural(self.changed_entries, "entry", "entries") + " added or upgraded by vpt-tracker"
            )
        return reasons

    def lines(self) -> list[str]:
        """What goes, one item a line, for the question before the removal."""
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(self.candidates.items())) or "none"
        total = sum(self.candidates.values())
        lines = [
            f"entries: {self.entries}"
            + (f" ({self.changed_entries} added or upgraded by vpt-tracker)" if self.changed_entries else ""),
            f"candidates: {total}" + (f" ({statuses})" if total else ""),
            f"review decisions: {self.decisions}",
            f"pull requests: {len(self.pull_requests)}"
            + (f" ({'; '.join(p.describe() for p in self.pull_requests)})" if self.pull_requests else ""),
            f"publications: {self.publications}",
        ]
        if self.sightings_kept:
            lines.append(f"kept: its entries' own sightings ({self.sightings_kept}) and the papers")
        if self.venue_upgrades:
            lines.append(f"venue upgrades that name its list: {self.venue_upgrades} (the upgrades stay)")
        return lines


def plan_removal(session: Session, name: str) -> RemovalPlan:
    """Count what removing catalogue `name` would take away (UserError if unknown)."""
    catalogue = get_catalogue(session, name)
    cid = catalogue.id
    candidate_ids = select(CandidateRow.id).where(CandidateRow.catalogue_id == cid)
    states = Counter(session.scalars(select(EntryRow.state).where(EntryRow.catalogue_id == cid)))
    statuses = dict(
        session.execute(
            select(CandidateRow.status, func.count())
            .where(CandidateRow.catalogue_id == cid)
            .group_by(CandidateRow.status)
        ).all()
    )
    pulls = tuple(
        PullRequestInfo(number, state, url)
        for number, state, url in session.execute(
            select(PullRequestRow.number, PullRequestRow.state, PullRequestRow.url)
            .where(PullRequestRow.catalogue_id == cid)
            .order_by(PullRequestRow.id)
        )
    )
    return RemovalPlan(
        name=catalogue.name,
        catalogue_id=cid,
        entries=sum(states.values()),
        changed_entries=sum(n for state, n in states.items() if state != "imported"),
        candidates={str(status): int(n) for status, n in statuses.items()},
        decisions=session.scalar(select(func.count()).where(DecisionRow.candidate_id.in_(candidate_ids)))
        or 0,
        pull_requests=pulls,
        publications=session.scalar(select(func.count()).where(PublicationRow.catalogue_id == cid)) or 0,
        venue_upgrades=len(_listing_upgrades(session, cid)),
        sightings_kept=session.scalar(
            select(func.count()).where(
                SightingRow.source == "catalogue",  # as `catalogue enrich` stores them
                SightingRow.source_id.startswith(entry_sighting_id(catalogue.name, ""), autoescape=True),
            )
        )
        or 0,
    )


def _listing_upgrades(session: Session, catalogue_id: int) -> list[tuple[int, list[int]]]:
    """The venue upgrades whose `listed_in` holds the catalogue (a JSON list: read in Python)."""
    return [
        (upgrade_id, list(listed))
        for upgrade_id, listed in session.execute(select(VenueUpgradeRow.id, VenueUpgradeRow.listed_in))
        if listed and catalogue_id in listed
    ]


def remove_catalogue(
    engine: Engine, name: str, *, force: bool = False, expected: RemovalPlan | None = None
) -> RemovalPlan:
    """Delete catalogue `name` and what is its alone, in one transaction.

    Refused (UserError, nothing changed) when it has `history` and not `force`, and when
    `expected` (what the maintainer was shown) is no longer what would go: a review or a
    publish in between must not be lost behind a "yes" given to fewer."""
    with transaction(engine) as session:
        row = session.scalar(select(CatalogueRow).where(CatalogueRow.name == name).with_for_update())
        if row is None:
            get_catalogue(session, name)  # the one-line error naming the known ones
        plan = plan_removal(session, name)
        if expected is not None and plan != expected:
            raise UserError(
                f"catalogue {name!r} changed while you were asked; nothing was removed: run it again"
            )
        history = plan.history()
        if history and not force:
            raise UserError(refusal(name, history))
        cid = plan.catalogue_id
        for upgrade_id, listed in _listing_upgrades(session, cid):
            session.execute(
                update(VenueUpgradeRow)
                .where(VenueUpgradeRow.id == upgrade_id)
                .values(listed_in=[other for other in listed if other != cid])
            )
        # The schema's ON DELETE actions take the rest (foreign keys are on for every SQLite
        # connection, `store.db`): its entries, candidates (their decisions and publications),
        # publications and pull requests go; another list's entry a candidate of its became
        # keeps its paper and loses the link (SET NULL).
        session.execute(delete(CatalogueRow).where(CatalogueRow.id == cid))
        return plan


def refusal(name: str, history: list[str]) -> str:
    """The one line that refuses to remove a catalogue with history."""
    return (
        f"catalogue {name!r} has history that removing it would lose: {'; '.join(history)}; "
        "pass --force to remove it all the same"
    )
