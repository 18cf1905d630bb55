"""The weekly digest: what the maintainers need to know, gathered from the store.

Building is separate from sending so that `digest build --output x.eml` shows exactly what
`digest send` would send, and so that the content can be tested without a mail server.
Titles and abstracts are untrusted input: the HTML template autoescapes them.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import MINYEAR, UTC, date, datetime, timedelta, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any

import idna
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import ColumnElement, Engine, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from vpt_tracker import normalize
from vpt_tracker.classify.presets import SHIPPED, Presets
from vpt_tracker.config import CatalogueConfig, Settings
from vpt_tracker.errors import UserError
from vpt_tracker.ingest import lists_to_tell
from vpt_tracker.models import PIPELINE_KINDS, POSITIVE_STATUSES, CandidateStatus
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DecisionRow,
    PaperRow,
    PublicationRow,
    RefetchWindowRow,
    RunRow,
    ScoringBacklogRow,
    VenueUpgradeRow,
)
from vpt_tracker.wording import plural

#: Candidates shown per label group; the rest are counted ("and 12 more").
TOP_PER_LABEL = 10
#: Accepted, published and upgraded papers shown per catalogue, each; the rest are counted.
#: Scripted accepts, their publishing or a conference's proceedings can make hundreds in a week.
TOP_PER_LIST = 25
UNLABELLED = "(no label proposed)"


class BadWeek(ValueError):
    """A label that names no week; `detail` says why, as it follows the label. `shaped`: the
    label has the form of one (`2025-W53`), but its year has no such week."""

    def __init__(self, label: str, detail: str, *, shaped: bool = False) -> None:
        super().__init__(f"{label!r}{detail}")
        self.detail = detail
        self.shaped = shaped


@dataclass(frozen=True)
class Week:
    """An ISO week in a time zone: Monday 00:00 to the next Monday 00:00 there.

    The zone is `schedule.timezone`, so that a digest line firing on Monday morning sends
    the week that just ended wherever the maintainers are: in UTC weeks, Monday 08:00 in
    Tokyo is still Sunday, and "last week" was the week before last. The end is the next
    Monday's midnight, not the start plus 7 days: a week with a DST change is 167 or 169
    hours long. The label (`2026-W47`) does not name the zone: the `digests` table keys a
    week by its label, as before weeks had a zone.
    """

    year: int
    number: int
    zone: tzinfo = UTC

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def zone_name(self) -> str:
        return str(self.zone)  # a ZoneInfo's key ("Asia/Tokyo"), or "UTC"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def next_monday(self) -> date:
        return self.monday + timedelta(days=7)

    @property
    def start(self) -> datetime:
        """In UTC, as the store's times: two datetimes in one ZoneInfo subtract and compare
        by the wall clock (a DST week would measure 168 hours)."""
        return _midnight(self.monday, self.zone)

    @property
    def end(self) -> datetime:
        return _midnight(self.next_monday, self.zone)

    def following(self) -> Week:
        return Week.of(self.next_monday, self.zone)

    def preceding(self) -> Week:
        return Week.of(self.monday - timedelta(days=7), self.zone)

    @classmethod
    def of(cls, moment: datetime | date, zone: tzinfo = UTC) -> Week:
        """The week in `zone` that holds `moment` (a naive datetime is UTC, as in the store),
        or that holds the day `moment`."""
        if isinstance(moment, datetime):
            moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
        year, number, _ = moment.isocalendar()
        return cls(year, number, zone)

    @classmethod
    def parse(cls, label: str, zone: tzinfo = UTC) -> Week:
        """The week of a label, `2026-W47`; `BadWeek` saying what is wrong with a bad one.

        Only `YYYY-Www` is a label: `2026-W1` is the label of no week (labels sort as weeks),
        and a small w is not the `digests` table's (`parse_week` takes it as typed). A week
        past the year's last (`2025-W53`: 2025 has 52; as a date, its Monday would be
        2026-W01's) or week 00 is refused with the year's last or first week.
        """
        text = label.strip()
        match = re.fullmatch(r"([0-9]{4})-W([0-9]{2})", text)
        year = int(match[1]) if match else 0
        if match is None or year < MINYEAR:
            raise BadWeek(label, " is not an ISO week like 2026-W47")
        number, weeks = int(match[2]), date(year, 12, 28).isocalendar().week  # the 28th: in the last
        if number == 0:
            raise BadWeek(label, f": ISO weeks start at 01; the first of {year} is {year}-W01", shaped=True)
        if number > weeks:
            raise BadWeek(label, f": {year} has {weeks} ISO weeks; its last is {year}-W{weeks}", shaped=True)
        return cls(year, number, zone)


def _midnight(day: date, zone: tzinfo) -> datetime:
    """The first moment of `day` in `zone`, in UTC. Where midnight does not exist (clocks
    that go forward at 00:00), zoneinfo reads it with the offset before the change: the day
    then starts at 01:00, its first moment."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def parse_week(text: str | None, now: datetime, zone: tzinfo = UTC) -> Week:
    """`2026-W47`, `current`, or `last` (the default: the last complete week), in `zone`.

    A week that starts after `now` has nothing to report yet and is refused.
    """
    current = Week.of(now, zone)
    if text is None or text == "last":
        return current.preceding()
    if text == "current":
        return current
    try:  # `2026-w47`, as typed: a label the `digests` table stores is always the week's own
        week = Week.parse(text.replace("-w", "-W", 1), zone)
    except BadWeek as exc:  # one line: the week it names does not exist, or what a week is
        hint = "" if exc.shaped else " (or 'current', 'last')"
        raise UserError(f"--week {text!r}{exc.detail}{hint}") from None
    if week.start > now:
        raise UserError(f"--week {text!r} is in the future (the current week is {current.label})")
    return week


@dataclass
class PaperLine:
    title: str
    url: str | None
    venue: str | None
    year: int | None
    relevance: float | None = None
    labels: list[tuple[str, float | None]] = field(default_factory=list)  # title, probability (None: by cue)
    low_confidence: bool = False
    base_to_novel: bool = False  # the candidate's base-to-novel flag (`Scores.base_to_novel_flag`)
    note: str | None = None  # e.g. "arXiv → CVPR 2025", reviewer


@dataclass
class LabelGroup:
    label: str
    papers: list[PaperLine]
    more: int = 0


@dataclass
class CatalogueDigest:
    name: str
    groups: list[LabelGroup]
    new_count: int
    accepted: list[PaperLine]
    published: list[PaperLine]
    upgrades: list[PaperLine]
    queue_size: int
    oldest_pending_days: float | None
    imported: bool = True  # False: in the config, not imported yet (nothing else to show)
    import_command: str = ""  # not imported: the `catalogue import` line that stores it
    unscored: int = 0  # papers owed a score (`scoring_backlog`) at the cutoff: its scoring failed
    accepted_more: int = 0  # beyond the first `TOP_PER_LIST` shown, as `LabelGroup.more`
    published_more: int = 0
    upgrades_more: int = 0
    #: Candidates queued before the week's end whose state then the store cannot tell (decided
    #: by hand, without a review-log row or a decision time): left out of `queue_size`.
    queue_unknown: int = 0


@dataclass
class SourceHealth:
    source: str
    runs: int  # 0: listed for its windows queued for refetch only; no state to report
    unhealthy_runs: int
    records: int
    last_healthy: bool
    last_reason: str | None
    pending_refetch: int


@dataclass
class Digest:
    week: Week
    generated_at: datetime
    catalogues: list[CatalogueDigest]
    health: list[SourceHealth]
    runs: int
    failed_runs: int

    @property
    def queue_moment(self) -> str:
        """When the queue figures hold: the week's end, or now for a week not over."""
        return "at the week's end" if self.generated_at >= self.week.end else "now (the week is not over)"

    @property
    def subject(self) -> str:
        new = sum(c.new_count for c in self.catalogues)
        unhealthy = sum(1 for h in self.health if not h.last_healthy)
        tail = f", {plural(unhealthy, 'unhealthy source')}" if unhealthy else ""
        if not self.runs:  # the runs stopped (service down, broken cron line): not a quiet week
            tail += ", no runs"
        return f"vpt-tracker digest {self.week.label}: {plural(new, 'new candidate')}{tail}"


def paper_url(paper: PaperRow) -> str | None:
    """The most canonical public link we know for a paper."""
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    if paper.doi:
        return normalize.doi_url(paper.doi)
    if paper.openreview_id:
        return f"https://openreview.net/forum?id={paper.openreview_id}"
    # Source links are untrusted: only a plain http(s) address becomes a link in the email.
    return normalize.web_url(paper.cvf_url) or normalize.web_url(paper.pdf_url)


def build_digest(
    engine: Engine, week: Week, *, now: datetime | None = None, settings: Settings | None = None
) -> Digest:
    """The digest of `week` for the catalogues of the config, by name.

    The config's, not the store's: the catalogues the nightly run scores are the ones
    maintained, and one removed from the config is not (its rows stay, for history). One
    configured but not imported yet gets a section that says so. Without `settings` (tests,
    tools without a config), every stored catalogue.
    """
    now = now or datetime.now(UTC)
    # What the digest tells of a state (queue, papers owed a score, source health, refetch
    # queue) is as of the week's end, or now for a week not over: a late or retried digest
    # reports the week it names, not today.
    cutoff = min(week.end, now)
    with transaction(engine) as session:
        stored = {row.name: row for row in session.scalars(select(CatalogueRow))}
        configured = {c.name: c for c in settings.catalogues} if settings is not None else {}
        names = sorted(stored) if settings is None else sorted(configured)
        presets = settings.presets if settings is not None else SHIPPED
        # Owed since before the cutoff and not scored before it (a scored row keeps its
        # `scored_at`, for a year: `enqueue.SCORED_KEPT`). Papers, not rows: a merge of two
        # papers gives the kept one the other's rows.
        counted = session.execute(
            select(ScoringBacklogRow.catalogue, func.count(ScoringBacklogRow.paper_id.distinct()))
            .where(
                ScoringBacklogRow.catalogue.in_(names),
                ScoringBacklogRow.created_at < cutoff,
                or_(ScoringBacklogRow.scored_at.is_(None), ScoringBacklogRow.scored_at >= cutoff),
            )
            .group_by(ScoringBacklogRow.catalogue)
        )
        owed: dict[str, int] = {name: int(n) for name, n in counted}
        parts = [
            _catalogue_digest(session, stored[name], week, cutoff, live=cutoff >= now, presets=presets)
            if name in stored
            else _not_imported(configured[name])
            for name in names
        ]
        for part in parts:
            part.unscored = owed.get(part.name, 0)
        health, runs, failed = _source_health(session, week, cutoff)
    return Digest(week, now, parts, health, runs, failed)


def _in_week(
    column: ColumnElement[datetime | None] | InstrumentedAttribute[datetime | None], week: Week
) -> Any:
    """`column` falls in `week` (from its start, up to its end)."""
    return (column >= week.start) & (column < week.end)


def _not_imported(config: CatalogueConfig) -> CatalogueDigest:
    return CatalogueDigest(
        name=config.name,
        groups=[],
        new_count=0,
        accepted=[],
        published=[],
        upgrades=[],
        queue_size=0,
        oldest_pending_days=None,
        imported=False,
        import_command=config.import_command(),
    )


def _label_titles(preset: str | None, presets: Presets) -> dict[str, str]:
    if not preset:
        return {}
    try:
        return {label.key: label.title for label in presets.load(preset).labels}
    except UserError:
        return {}


def _line(
    paper: PaperRow, candidate: CandidateRow | None = None, titles: dict[str, str] | None = None
) -> PaperLine:
    line = PaperLine(title=paper.title, url=paper_url(paper), venue=paper.venue, year=paper.year)
    if candidate is not None:
        titles = titles or {}
        line.relevance = candidate.relevance
        line.low_confidence = candidate.low_confidence
        line.base_to_novel = bool(candidate.base_to_novel_flag)
        scores = candidate.label_scores or {}
        proposed = candidate.proposed_labels or []
        # No score: the label's preset cue proposed it (it has too few examples for a model).
        line.labels = [(titles.get(key, key), scores.get(key)) for key in proposed]
    return line


def _main_label(proposed: list[str], scores: dict[str, float]) -> str | None:
    """The proposed label a candidate is filed under: its most probable one.

    Proposed labels come in the preset's order, so the first is often a weak one (a CLIP
    prompt-learning paper proposed "Token-Level 0.24, Multi-Modality 0.96" belongs under
    Multi-Modality). A label its cue proposed has no probability and comes after the others.
    """
    if not proposed:
        return None
    return max(proposed, key=lambda key: (scores.get(key, -1.0), -proposed.index(key)))


def _catalogue_digest(
    session: Session, catalogue: CatalogueRow, week: Week, cutoff: datetime, *, live: bool, presets: Presets
) -> CatalogueDigest:
    """`cutoff` is `build_digest`'s; `live` says it is now (the week is not over)."""
    titles = _label_titles(catalogue.preset, presets)
    in_week = _in_week(CandidateRow.created_at, week)
    new = session.execute(
        select(CandidateRow, PaperRow)
        .join(PaperRow, CandidateRow.paper_id == PaperRow.id)
        .where(CandidateRow.catalogue_id == catalogue.id, in_week)
        .order_by(CandidateRow.relevance.desc(), CandidateRow.id)
    ).all()
    grouped: dict[str, list[PaperLine]] = {}
    for candidate, paper in new:
        label = _main_label(candidate.proposed_labels or [], candidate.label_scores or {})
        key = titles.get(label, label) if label is not None else UNLABELLED
        grouped.setdefault(key, []).append(_line(paper, candidate, titles))
    # Groups ordered by their best candidate, so the most promising label comes first.
    groups = [
        LabelGroup(label, lines[:TOP_PER_LABEL], max(0, len(lines) - TOP_PER_LABEL))
        for label, lines in sorted(grouped.items(), key=lambda item: -(item[1][0].relevance or 0.0))
    ]

    # The candidates' states at the cutoff: now, or rebuilt from the review log for a week
    # that is over, so that a paper accepted in the week and rejected or undone since is one
    # of the week's accepted papers still, and one accepted after it is not.
    past = None if live else _states_at(session, catalogue.id, cutoff)

    def then(candidate: CandidateRow) -> tuple[str | None, dict[str, Any] | None]:
        """Its status at the cutoff (None: not known), and the review log's snapshot of it
        then (None: now, or never logged: the row's own)."""
        if past is None:
            return candidate.status, None
        state = past.get(candidate.id)  # absent: queued after the cutoff
        return (state.status, state.logged) if state is not None else (None, None)

    def held(candidate: CandidateRow) -> bool:
        """Accepted or published at the cutoff: its paper was the catalogue's then."""
        return then(candidate)[0] in POSITIVE_STATUSES

    # A candidate's accept is its last accept before the cutoff, not undone by then, in the
    # review log: `decided_at` and `reviewer` are those of its last action, and a relabel
    # (before relabels kept them) made a paper accepted weeks ago one of the relabel's week.
    # An accept undone after the cutoff was still taken at it. A candidate without a logged
    # accept (stored before the log, or by hand) falls back to them. Each candidate's accepts
    # are ranked newest first (the later-logged of two at one time), and the join takes the
    # first: its time and its reviewer come from one row, in one query.
    undo = aliased(DecisionRow)
    undone_later = (
        select(undo.id)
        .where(undo.undoes_id == DecisionRow.id, undo.action == "undo", undo.at >= cutoff)
        .exists()
    )
    last_accept = (
        select(
            DecisionRow.candidate_id,
            DecisionRow.at,
            DecisionRow.reviewer,
            func.row_number()
            .over(
                partition_by=DecisionRow.candidate_id,
                order_by=(DecisionRow.at.desc(), DecisionRow.id.desc()),
            )
            .label("latest"),
        )
        .join(CandidateRow, CandidateRow.id == DecisionRow.candidate_id)
        .where(
            CandidateRow.catalogue_id == catalogue.id,
            DecisionRow.action == "accept",
            DecisionRow.at < cutoff,
            DecisionRow.undone.is_(False) | undone_later,
        )
        .subquery()
    )
    accepted_at = func.coalesce(last_accept.c.at, CandidateRow.decided_at)
    accepter = func.coalesce(last_accept.c.reviewer, CandidateRow.reviewer)

    def decided(*where: ColumnElement[bool]) -> list[PaperLine]:
        """The candidates held at the cutoff that `where` takes, by their accepter."""
        rows = session.execute(
            select(CandidateRow, PaperRow, accepter)
            .join(PaperRow, CandidateRow.paper_id == PaperRow.id)
            .outerjoin(
                last_accept, (last_accept.c.candidate_id == CandidateRow.id) & (last_accept.c.latest == 1)
            )
            .where(CandidateRow.catalogue_id == catalogue.id, *where)
            .order_by(PaperRow.title, PaperRow.id)
        ).all()
        lines = []
        for candidate, paper, by in rows:
            if not held(candidate):
                continue
            logged = then(candidate)[1]
            line = _line(paper, candidate, titles)
            final = logged.get("final_labels") if logged is not None else candidate.final_labels
            line.labels = [(titles.get(key, key), 1.0) for key in final or candidate.proposed_labels or []]
            line.note = f"by {by}" if by else None
            lines.append(line)
        return lines

    # Accepted that week, published since or not: a paper accepted on Monday and published on
    # Thursday, or in a later week (a digest sent late, a retry), was one of the week's
    # accepted papers all the same. Without a logged accept, only one accepted or published
    # now can have been (its `decided_at` is its last decision's, a reject's say).
    accepted = decided(
        _in_week(accepted_at, week),
        last_accept.c.at.is_not(None) | CandidateRow.status.in_(POSITIVE_STATUSES),
    )
    # Published in the week: a `publications` row of the week (its entry may have left the
    # list since, which clears `published_at`, or it may have been published again). A
    # candidate without any (marked published by hand) goes by its `published_at`.
    publications = select(PublicationRow.candidate_id).where(
        PublicationRow.catalogue_id == catalogue.id, _in_week(PublicationRow.at, week)
    )
    recorded = select(PublicationRow.id).where(PublicationRow.candidate_id == CandidateRow.id).exists()
    published = decided(
        CandidateRow.id.in_(publications) | (~recorded & _in_week(CandidateRow.published_at, week))
    )

    upgrades = _upgrades(session, catalogue.id, week, held)

    # As of the cutoff: a late or retried digest reports the queue the week left, not today's.
    queue_size, oldest, unknown = _queue_at(session, catalogue.id, cutoff, past)
    oldest_days = None
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        oldest_days = round((cutoff - oldest).total_seconds() / 86400, 1)
    return CatalogueDigest(
        name=catalogue.name,
        groups=groups,
        new_count=len(new),
        accepted=accepted[:TOP_PER_LIST],
        published=published[:TOP_PER_LIST],
        upgrades=upgrades[:TOP_PER_LIST],
        queue_size=queue_size,
        oldest_pending_days=oldest_days,
        queue_unknown=unknown,
        accepted_more=max(0, len(accepted) - TOP_PER_LIST),
        published_more=max(0, len(published) - TOP_PER_LIST),
        upgrades_more=max(0, len(upgrades) - TOP_PER_LIST),
    )


def _upgrades(
    session: Session, catalogue_id: int, week: Week, held: Callable[[CandidateRow], bool]
) -> list[PaperLine]:
    """The venue upgrades of the week among the catalogue's papers: each `venue_upgrades`
    row of the week whose paper its list held then (`listed_in`: the list did not show the
    venue already), or whose candidate was `held` at the cutoff (accepted or published then).
    A paper upgraded twice is listed in each upgrade's week, as that upgrade.

    A paper whose upgrade has no row (its columns set by hand) goes by `venue_upgraded_at`
    and the list as it is now."""
    any_upgrade = aliased(VenueUpgradeRow)
    recorded = select(any_upgrade.id).where(any_upgrade.paper_id == PaperRow.id).exists()
    upgrade_in_week = _in_week(VenueUpgradeRow.at, week)
    upgraded_in_week = _in_week(PaperRow.venue_upgraded_at, week)
    rows = session.execute(
        select(PaperRow, VenueUpgradeRow, CandidateRow)
        .outerjoin(VenueUpgradeRow, (VenueUpgradeRow.paper_id == PaperRow.id) & upgrade_in_week)
        .outerjoin(
            CandidateRow, (CandidateRow.paper_id == PaperRow.id) & (CandidateRow.catalogue_id == catalogue_id)
        )
        .where(VenueUpgradeRow.id.is_not(None) | (~recorded & upgraded_in_week))
        .order_by(PaperRow.title, PaperRow.id, VenueUpgradeRow.at, VenueUpgradeRow.id)
    ).all()
    unrecorded = lists_to_tell(session, [paper.id for paper, upgrade, _ in rows if upgrade is None])
    lines = []
    for paper, upgrade, candidate in rows:
        if upgrade is None:
            listed_in = unrecorded.get(paper.id, [])
            previous, venue, year = paper.previous_venue, paper.venue, paper.year
        else:
            listed_in = upgrade.listed_in or []
            previous, venue, year = upgrade.previous_venue, upgrade.venue, upgrade.year
        if not (catalogue_id in listed_in or (candidate is not None and held(candidate))):
            continue
        line = _line(paper)
        line.venue, line.year = venue, year
        line.note = f"{previous or 'preprint'} → {venue or '?'} {year or ''}".strip()
        lines.append(line)
    return lines


@dataclass(frozen=True)
class _Then:
    """A candidate as it stood at a moment (`_states_at`)."""

    status: str | None  # None: decided at a time the store does not record
    queued_at: datetime
    logged: dict[str, Any] | None  # the review log's snapshot of it then; None: never logged


def _states_at(session: Session, catalogue_id: int, moment: datetime) -> dict[int, _Then]:
    """Each candidate of a catalogue queued before `moment`, as it stood at `moment`.

    Rebuilt from the review log: its state is the `after` snapshot of its last decision
    before `moment` (an undo's `after` is the state it restored, so a decision undone before
    `moment` is not taken, one undone later still is), or the `before` snapshot of its first
    decision after it. A candidate the log never saw decided by its status and `decided_at`
    (a published one, stored as such, by `published_at`): pending before that time; with
    neither time its state then is unknown.
    """
    queued = (CandidateRow.catalogue_id == catalogue_id) & (CandidateRow.created_at < moment)
    logged = (
        select(
            DecisionRow.candidate_id,
            (DecisionRow.at < moment).label("earlier"),
            DecisionRow.before,
            DecisionRow.after,
            func.row_number()
            .over(
                partition_by=(DecisionRow.candidate_id, DecisionRow.at < moment),
                order_by=(DecisionRow.at.desc(), DecisionRow.id.desc()),
            )
            .label("latest"),
            func.row_number()
            .over(
                partition_by=(DecisionRow.candidate_id, DecisionRow.at < moment),
                order_by=(DecisionRow.at, DecisionRow.id),
            )
            .label("earliest"),
        )
        .join(CandidateRow, CandidateRow.id == DecisionRow.candidate_id)
        .where(queued, DecisionRow.action != "conflict")  # a refused undo changes nothing
        .subquery()
    )
    before_moment: dict[int, dict[str, Any]] = {}
    after_moment: dict[int, dict[str, Any]] = {}
    # Per candidate, its last decision before `moment` and its first one after it.
    edges = select(logged.c.candidate_id, logged.c.earlier, logged.c.before, logged.c.after).where(
        (logged.c.earlier & (logged.c.latest == 1)) | (~logged.c.earlier & (logged.c.earliest == 1))
    )
    for candidate_id, earlier, before, after in session.execute(edges):
        if earlier:
            before_moment[candidate_id] = after or {}
        else:
            after_moment[candidate_id] = before or {}
    states: dict[int, _Then] = {}
    rows = session.execute(
        select(
            CandidateRow.id,
            CandidateRow.status,
            CandidateRow.created_at,
            CandidateRow.decided_at,
            CandidateRow.published_at,
        ).where(queued)
    )
    for candidate_id, status, created_at, decided_at, published_at in rows:
        snapshot = before_moment.get(candidate_id) or after_moment.get(candidate_id)
        state = snapshot.get("status") if snapshot else None
        if state is None:  # never decided in the log: its own row says what it can
            decided = decided_at or published_at
            if status == CandidateStatus.PENDING.value or (decided is not None and decided >= moment):
                state = CandidateStatus.PENDING.value
            elif decided is not None:
                state = status
        states[candidate_id] = _Then(state, created_at, snapshot or None)
    return states


def _queue_at(
    session: Session, catalogue_id: int, moment: datetime, past: dict[int, _Then] | None
) -> tuple[int, datetime | None, int]:
    """The pending candidates of a catalogue at `moment`: their number, the oldest one's
    queued time, and how many candidates of then are of unknown state (not counted).

    `past`: the candidates at `moment` (`_states_at`); None: `moment` is now, and the
    candidates' status says.
    """
    if past is None:
        pending = (
            (CandidateRow.catalogue_id == catalogue_id)
            & (CandidateRow.created_at < moment)
            & (CandidateRow.status == CandidateStatus.PENDING.value)
        )
        count, oldest = session.execute(
            select(func.count(), func.min(CandidateRow.created_at)).where(pending)
        ).one()
        return int(count), oldest, 0
    waiting = [state.queued_at for state in past.values() if state.status == CandidateStatus.PENDING.value]
    unknown = sum(1 for state in past.values() if state.status is None)
    return len(waiting), min(waiting, default=None), unknown


def _source_health(session: Session, week: Week, cutoff: datetime) -> tuple[list[SourceHealth], int, int]:
    """Each source's state in the week's runs (its last one's health), and the windows queued
    for refetch at `cutoff`: queued before it and not refetched by then. A window queued by
    a run is stamped with the run's start, so a run of the week queues in the week."""
    runs = session.scalars(
        select(RunRow)
        .where(
            RunRow.kind.in_(PIPELINE_KINDS),  # an `ingest` fetches no source: no sign the runs go on
            _in_week(RunRow.started_at, week),
        )
        .order_by(RunRow.started_at, RunRow.id)
    ).all()
    states: dict[str, SourceHealth] = {}
    for run in runs:
        sources = (run.counts or {}).get("sources", {})
        for name, state in (run.health or {}).items():
            entry = states.setdefault(name, SourceHealth(name, 0, 0, 0, True, None, 0))
            entry.runs += 1
            entry.records += int(sources.get(name, {}).get("records", 0))
            healthy = bool(state.get("healthy", True))
            entry.unhealthy_runs += 0 if healthy else 1
            entry.last_healthy = healthy
            entry.last_reason = state.get("reason")
    pending = session.execute(
        select(RefetchWindowRow.source, func.count())
        .where(
            RefetchWindowRow.created_at < cutoff,
            RefetchWindowRow.done_at.is_(None) | (RefetchWindowRow.done_at >= cutoff),
        )
        .group_by(RefetchWindowRow.source)
    ).all()
    for name, count in pending:
        states.setdefault(name, SourceHealth(name, 0, 0, 0, True, None, 0)).pending_refetch = count
    failed = sum(1 for run in runs if run.outcome in ("failed", "partial"))
    return sorted(states.values(), key=lambda h: h.source), len(runs), failed


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("vpt_tracker.digest", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals["plural"] = plural  # the templates count as the CLI does
    return environment


def render(digest: Digest) -> tuple[str, str]:
    """The digest as (plain text, HTML)."""
    environment = _environment()
    context = {"digest": digest}
    text = environment.get_template("digest.txt.j2").render(context)
    html = environment.get_template("digest.html.j2").render(context)
    return text, html


def mail_address(text: str, key: str) -> Address:
    """One configured address (`ana@example.org`, `Ana Müller <ana@bücher.example>`), its domain in ASCII.

    A domain like `bücher.example` goes as its IDNA A-label (`xn--bcher-kva.example`), which
    every mail server takes; as written it needs a server that offers SMTPUTF8, and in a
    header it would become an encoded word, which is no address. A display name stays as
    written (the header encodes it). Only a non-ASCII mailbox name (`jörg@...`) needs SMTPUTF8.
    """
    found = getaddresses([text])
    if len(found) == 1:
        name, spec = found[0]
        local, at, domain = spec.rpartition("@")
        if at and local and domain:
            if not domain.startswith("["):  # an address literal, [192.0.2.1], is ASCII already
                try:
                    domain = idna.encode(domain, uts46=True).decode("ascii")
                except idna.IDNAError as exc:
                    raise UserError(f"{key}: {text!r} is not an email address ({exc})") from None
            return Address(display_name=name, username=local, domain=domain)
    raise UserError(f"{key}: {text!r} is not an email address like 'Ana <ana@example.org>'")


def to_message(digest: Digest, settings: Settings) -> EmailMessage:
    """A multipart/alternative message: text first, HTML as the preferred alternative."""
    text, html = render(digest)
    # 7-bit transfer encodings (quoted-printable or base64 where the text is not ASCII): a
    # part of short lines went as 8-bit bytes, which a server that does not offer 8BITMIME
    # may refuse, and `smtplib` sends them to any server.
    message = EmailMessage(policy=email.policy.default.clone(cte_type="7bit"))
    message["Subject"] = digest.subject
    message["From"] = mail_address(settings.smtp.sender, "smtp.sender")
    recipients = [mail_address(recipient, "smtp.recipients") for recipient in settings.smtp.recipients]
    message["To"] = recipients or "undisclosed-recipients:;"
    message["Date"] = formatdate(digest.generated_at.timestamp(), localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"digest-{digest.week.label}", domain="vpt-tracker")
    message["X-VPT-Tracker-Week"] = digest.week.label
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
