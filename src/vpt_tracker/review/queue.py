"""The review queue: every reviewer action on candidates, with no user interface.

The terminal app and the `review` commands are thin layers over `ReviewQueue`, so that the
rules live in one place and are tested without a screen:

- each action changes a candidate and writes its `decisions` row in one transaction, so the
  audit log (which undo reads, and which later becomes training data) never disagrees with
  the candidates;
- `candidates.version` is SQLAlchemy's version counter: an UPDATE only applies when the row
  still has the version this reviewer read. Of two reviewers acting on the same candidate
  exactly one wins; the other gets a `Conflict` showing what the winner did;
- `undo` reverts this reviewer's last decision that is not yet undone (a bulk action as a
  whole), and is itself recorded as a decision.
"""

from __future__ import annotations

import getpass
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, String, Table, and_, bindparam, case, cast, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import ColumnElement

from vpt_tracker.classify.presets import SHIPPED, Presets
from vpt_tracker.errors import UserError
from vpt_tracker.models import CandidateStatus
from vpt_tracker.normalize import doi_url, title_key
from vpt_tracker.store import transaction
from vpt_tracker.store.db import fold_case
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, DecisionRow, EntryRow, PaperRow, utcnow

T = TypeVar("T")

ORDERS = ("relevance", "uncertainty")
#: Statuses a reviewer may still decide on; a deferred candidate comes back later.
OPEN_STATUSES = (CandidateStatus.PENDING.value, CandidateStatus.DEFERRED.value)
#: The fields a decision records before and after, and that undo restores.
_STATE_FIELDS = ("status", "final_labels", "reason", "reviewer")
#: Rows per statement in bulk paths: well under every backend's bound-parameter limit.
_CHUNK = 500


class Conflict(UserError):
    """Another reviewer changed the candidate first; nothing of this action was applied.

    `refused` lists the (decision id, candidate id) pairs of an undo refused because of it.
    """

    def __init__(
        self, message: str, current: QueueItem | None, refused: Sequence[tuple[int, int]] = ()
    ) -> None:
        super().__init__(message)
        self.current = current
        self.refused = list(refused)


@dataclass(frozen=True)
class QueueItem:
    """A candidate joined with its paper: what a reviewer needs to decide on it."""

    candidate_id: int
    paper_id: int
    catalogue: str
    status: str
    version: int
    relevance: float
    proposed_labels: list[str]
    final_labels: list[str] | None
    label_scores: dict[str, float]
    base_to_novel: float | None
    base_to_novel_flag: bool | None  # the model's decision at its own threshold (`Scores`)
    low_confidence: bool
    reason: str | None
    # The keyword rule that fired when the paper was scored (`include: visual prompt`): why
    # a paper below the threshold is in the queue, or that an exclude would have kept it out.
    rule: str | None
    reviewer: str | None
    decided_at: datetime | None
    title: str
    abstract: str
    authors: list[str]
    venue: str | None
    year: int | None
    arxiv_id: str | None
    doi: str | None
    openreview_id: str | None
    cvf_url: str | None
    code_url: str | None
    pdf_url: str | None
    comment: str | None

    @property
    def links(self) -> list[tuple[str, str]]:
        """(name, url) of every place the paper can be read, best first."""
        found: list[tuple[str, str]] = []
        if self.arxiv_id:
            found.append(("arXiv", f"https://arxiv.org/abs/{self.arxiv_id}"))
        if self.openreview_id:
            found.append(("OpenReview", f"https://openreview.net/forum?id={self.openreview_id}"))
        if self.cvf_url:
            found.append(("CVF", self.cvf_url))
        if self.doi:
            found.append(("DOI", doi_url(self.doi)))
        if self.pdf_url:
            found.append(("PDF", self.pdf_url))
        if self.code_url:
            found.append(("Code", self.code_url))
        return found

    def proposed_with_scores(self) -> list[str]:
        """The proposed labels with their probabilities; `(cue)` marks one its preset cue proposed
        (a label with too few examples for a model has no probability)."""
        return [
            f"{label} {self.label_scores[label]:.2f}" if label in self.label_scores else f"{label} (cue)"
            for label in self.proposed_labels
        ]

    def labels_restored(self) -> str:
        """What an undone relabel gave back, as `review undo` and the review app's `u` both say
        it: the status never changed, so "pending again" would read as an undone decision."""
        if self.final_labels is None:
            return "its labels are the proposed ones again"
        return f"its labels are {', '.join(self.final_labels) or 'none'} again"

    @property
    def venue_year(self) -> str:
        return " ".join(part for part in (self.venue, str(self.year) if self.year else None) if part)

    def state(self) -> str:
        """One line saying where the candidate stands, for messages."""
        text = self.status
        if self.reviewer:
            text += f" by {self.reviewer}"
        if self.decided_at:
            text += f" at {self.decided_at:%Y-%m-%d %H:%M} UTC"
        if self.final_labels:
            text += f", labels: {', '.join(self.final_labels)}"
        if self.reason:
            text += f", reason: {self.reason}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.candidate_id,
            "paper_id": self.paper_id,
            "catalogue": self.catalogue,
            "status": self.status,
            "version": self.version,
            "relevance": self.relevance,
            "proposed_labels": self.proposed_labels,
            "final_labels": self.final_labels,
            "base_to_novel": self.base_to_novel,
            "base_to_novel_flag": self.base_to_novel_flag,
            "reason": self.reason,
            "rule": self.rule,
            "reviewer": self.reviewer,
            "title": self.title,
            "venue": self.venue,
            "year": self.year,
            "links": dict(self.links),
        }


_FILTER_PAPER = aliased(PaperRow, name="filter_paper")  # its own join, whatever else the query joins


@dataclass(frozen=True)
class Filter:
    """What `/` narrows the queue to: words of the title or abstract, a label, a score range,
    the base-to-novel flag. A word matches a title without regard to accents, an abstract
    without regard to case only (no folded abstract is stored).

    Written as free text, e.g. ``pixel prompt label:learnable score>=0.6 b2n:yes``. `score<X`
    and `score>X` leave the bound out, as `bulk-reject --below X` does: a listing with
    `score<0.2` previews exactly what that bulk reject takes.
    """

    words: tuple[str, ...] = ()
    label: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    base_to_novel: bool | None = None  # b2n:yes / b2n:no: flagged or not (`Scores.base_to_novel_flag`)
    min_strict: bool = False  # score>X rather than score>=X
    max_strict: bool = False  # score<X rather than score<=X

    _TOKEN = re.compile(r"^score(>=|<=|>|<|=)([0-9]*\.?[0-9]+)$")

    @classmethod
    def parse(cls, text: str) -> Filter:
        without_nul(text, "a filter")
        words: list[str] = []
        label = None
        low = high = None
        low_strict = high_strict = False
        novel = None
        for token in text.split():
            lowered = token.lower()
            if lowered.startswith("label:") and len(token) > len("label:"):
                label = token[len("label:") :]
                continue
            if lowered.startswith("b2n:"):
                if lowered not in ("b2n:yes", "b2n:no"):
                    raise UserError(
                        f"cannot read the base-to-novel filter {token!r}; write b2n:yes or b2n:no"
                    )
                novel = lowered == "b2n:yes"
                continue
            match = cls._TOKEN.match(lowered)
            if match:
                op, value = match.group(1), float(match.group(2))
                if op in (">=", ">", "="):
                    low, low_strict = value, op == ">"
                if op in ("<=", "<", "="):
                    high, high_strict = value, op == "<"
                continue
            if re.match(r"score[^a-z]", lowered):  # a bound, misspelt; "scores" is a word
                raise UserError(f"cannot read the score filter {token!r}; write e.g. score>=0.5 or score<0.2")
            words.append(token)
        return cls(tuple(words), label, low, high, novel, low_strict, high_strict)

    def __bool__(self) -> bool:
        return bool(self.describe())

    def describe(self) -> str:
        parts = list(self.words)
        if self.label:
            parts.append(f"label:{self.label}")
        if self.min_score is not None:
            parts.append(f"score{'>' if self.min_strict else '>='}{self.min_score:g}")
        if self.max_score is not None:
            parts.append(f"score{'<' if self.max_strict else '<='}{self.max_score:g}")
        if self.base_to_novel is not None:
            parts.append("b2n:yes" if self.base_to_novel else "b2n:no")
        return " ".join(parts)

    def clauses(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for word in self.words:
            pattern = f"%{_escape_like(fold_case(word))}%"
            arms = [
                func.lower(_FILTER_PAPER.title).like(pattern, escape="\\"),
                func.lower(_FILTER_PAPER.abstract).like(pattern, escape="\\"),
            ]
            if word.isalnum():
                # The title's key, folded at ingest (`normalize.title_key`): "zurich" finds
                # "Zürich" (and "Zürich" finds "Zurich") the same way on SQLite and PostgreSQL,
                # whose lower() keeps accents. Only a word of letters and digits: the key drops
                # punctuation, and "c++" would look for "c".
                key = f"%{_escape_like(title_key(word))}%"
                arms.append(_FILTER_PAPER.title_key.like(key, escape="\\"))
            found.append(or_(*arms))
        if self.label:
            # JSON lists are stored as text on SQLite and rendered as text by PostgreSQL's cast:
            # a quoted key matches one whole label. The labels a reviewer chose (`l`) replace
            # the proposed ones, as the list shows them: "no final labels" is SQL NULL, or JSON
            # null once an action set it back to None.
            quoted = f'%"{_escape_like(self.label)}"%'
            final = cast(CandidateRow.final_labels, String)
            unchosen = or_(CandidateRow.final_labels.is_(None), final == "null")
            found.append(
                or_(
                    and_(unchosen, cast(CandidateRow.proposed_labels, String).like(quoted, escape="\\")),
                    final.like(quoted, escape="\\"),
                )
            )
        relevance = CandidateRow.relevance
        if self.min_score is not None:
            found.append(relevance > self.min_score if self.min_strict else relevance >= self.min_score)
        if self.max_score is not None:
            found.append(relevance < self.max_score if self.max_strict else relevance <= self.max_score)
        if self.base_to_novel is not None:
            flagged = CandidateRow.base_to_novel_flag.is_(True)
            found.append(flagged if self.base_to_novel else ~flagged)  # IS NOT TRUE: NULL too
        return found


def without_nul(text: str, what: str) -> str:
    """`text`, or a UserError when it holds a NUL character (`\\x00`, e.g. pasted from a
    binary file): PostgreSQL stores no NUL in text, and the DataError it raised for one in a
    reason or a filter closed the review app with a traceback (SQLite stored it unseen)."""
    if "\x00" in text:
        raise UserError(f"{what} cannot contain a NUL character (\\x00); remove it and try again")
    return text


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class BulkResult:
    rejected: int
    batch: str
    candidate_ids: list[int] = field(default_factory=list)
    by_catalogue: dict[str, int] = field(default_factory=dict)  # catalogue name -> rejected there


REVIEWER_MAX = 128


class ReviewQueue:
    """Reviewer actions on the candidates of one catalogue (or of all, when `catalogue` is None)."""

    def __init__(
        self,
        engine: Engine,
        reviewer: str,
        catalogue: str | None = None,
        *,
        order: str = "relevance",
        clock: Callable[[], datetime] = utcnow,
        presets: Presets = SHIPPED,
    ) -> None:
        if not reviewer.strip():
            raise UserError("a reviewer name is needed: set review.reviewer in the config or pass --reviewer")
        without_nul(reviewer, "a reviewer name")
        if len(reviewer.strip()) > REVIEWER_MAX:
            # The decision log's column; PostgreSQL would refuse the first decision with a traceback.
            raise UserError(f"a reviewer name has at most {REVIEWER_MAX} characters")
        if order not in ORDERS:
            raise UserError(f"unknown review order {order!r}; use one of: {', '.join(ORDERS)}")
        self.engine = engine
        self.reviewer = reviewer.strip()
        self.catalogue = catalogue
        self.order = order
        self.clock = clock
        #: Where the catalogues' presets are: the settings' `presets` (default: the shipped ones).
        self.presets = presets
        self._catalogue_id: int | None = None
        #: The action the last `undo` reverted ("relabel", "accept", …): a relabel leaves the
        #: status as it was, so "pending again" alone would not say what was undone.
        self.last_undone: str | None = None
        if catalogue is not None:
            with transaction(engine) as session:
                self._catalogue_id = _catalogue_row(session, catalogue).id

    # ----------------------------------------------------------------- reading
    def next(self, filter: Filter | None = None) -> QueueItem | None:
        """The pending candidate to look at first, in the configured order."""
        ids = self.ids(filter=filter, limit=1)
        return self.get(ids[0]) if ids else None

    def ids(
        self,
        *,
        status: str | Sequence[str] = CandidateStatus.PENDING.value,
        filter: Filter | None = None,
        limit: int | None = None,
    ) -> list[int]:
        """Candidate ids in queue order; cheap enough for 100k rows, so a view can page by position."""
        query = self._scoped(select(CandidateRow.id), status, filter).order_by(*self._ordering())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return list(connection.scalars(query))

    def count(
        self, *, status: str | Sequence[str] = CandidateStatus.PENDING.value, filter: Filter | None = None
    ) -> int:
        query = self._scoped(select(func.count(CandidateRow.id)), status, filter)
        with self.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def count_below(self, score: float) -> dict[str, int]:
        """How many pending candidates `bulk_reject_below(score)` would reject, per catalogue
        (by name, only those with some): without a catalogue the batch spans them all, and
        the reviewer is told where."""
        query = (
            self._scoped(
                select(CatalogueRow.name, func.count(CandidateRow.id)), CandidateStatus.PENDING.value, None
            )
            .join(CatalogueRow, CatalogueRow.id == CandidateRow.catalogue_id)
            .where(CandidateRow.relevance < score)
            .group_by(CatalogueRow.name)
            .order_by(CatalogueRow.name)
        )
        with self.engine.connect() as connection:
            return {name: int(count) for name, count in connection.execute(query)}

    def items(self, candidate_ids: Iterable[int]) -> list[QueueItem]:
        """The candidates with these ids, in the order given (missing ones left out)."""
        wanted = list(candidate_ids)
        if not wanted:
            return []
        by_id: dict[int, QueueItem] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                for row in connection.execute(_item_query().where(CandidateRow.id.in_(chunk))):
                    by_id[row.id] = _item(row)
        return [by_id[i] for i in wanted if i in by_id]

    def listing(
        self,
        *,
        status: str | Sequence[str] = CandidateStatus.PENDING.value,
        filter: Filter | None = None,
        limit: int | None = None,
    ) -> list[QueueItem]:
        query = self._scoped(_item_query(), status, filter).order_by(*self._ordering())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [_item(row) for row in connection.execute(query)]

    def get(self, candidate_id: int) -> QueueItem:
        """The candidate, or a UserError when it does not exist (in this catalogue)."""
        with self.engine.connect() as connection:
            row = connection.execute(_item_query().where(CandidateRow.id == candidate_id)).first()
        if row is None or (self._catalogue_id is not None and row.catalogue_id != self._catalogue_id):
            raise UserError(self._missing(candidate_id))
        return _item(row)

    def valid_labels(self, catalogue: str | None = None) -> list[str]:
        """The label keys the candidate's catalogue accepts (empty: no taxonomy is known)."""
        with transaction(self.engine) as session:
            return _taxonomy(
                session, _catalogue_row(session, catalogue or self._require_catalogue()), self.presets
            )

    def check_filter(self, filter: Filter) -> None:
        """Refuse a `label:` filter naming a label no catalogue in scope has (a UserError
        listing the valid ones): a typo found nothing, which read as "no such paper".

        Without a catalogue, any catalogue's label will do; a catalogue with no taxonomy at
        all may hold any label, so then nothing is refused.
        """
        if not filter.label:
            return
        with transaction(self.engine) as session:
            if self.catalogue is not None:
                rows = [_catalogue_row(session, self.catalogue)]
            else:
                rows = list(session.scalars(select(CatalogueRow).order_by(CatalogueRow.name)))
            known: list[str] = []
            for row in rows:
                labels = _taxonomy(session, row, self.presets)
                if not labels:
                    return
                known.extend(label for label in labels if label not in known)
        if not known or filter.label in known:
            return
        where = f"for catalogue {self.catalogue!r}" if self.catalogue else "in any catalogue"
        raise UserError(f"unknown label {filter.label!r} {where}; valid labels: {', '.join(known)}")

    def placement_problem(self, candidate_id: int, labels: Sequence[str]) -> str | None:
        """Why `publish` would leave this paper out with these labels; None when it would list it.

        Only for catalogues with a taxonomy preset: without one no new entry can be placed,
        whatever the labels, so there is nothing for the reviewer to fix.
        """
        from vpt_tracker.catalogue.promote import placement_problem

        with transaction(self.engine) as session:
            row = session.get(CandidateRow, candidate_id)
            if row is None:
                raise UserError(self._missing(candidate_id))
            if not row.catalogue.preset:
                return None
            return placement_problem(row, list(labels), self.presets)

    # ----------------------------------------------------------------- actions
    def accept(
        self, candidate_id: int, labels: Sequence[str] | None = None, expected_version: int | None = None
    ) -> QueueItem:
        """Accept with the final labels; None keeps the labels a relabel gave the open
        candidate, else the proposed ones (as the app's `a` starts from an `l` edit: `review
        accept ID` after `review relabel ID --labels ...` accepted the proposed labels, and the
        relabel was lost)."""

        def change(session: Session, row: CandidateRow) -> None:
            kept = row.final_labels if row.final_labels is not None else row.proposed_labels
            chosen = kept if labels is None else list(labels)
            row.final_labels = _checked_labels(session, row, chosen, self.presets)
            row.status = CandidateStatus.ACCEPTED.value
            row.reason = None

        return self._act(candidate_id, "accept", change, expected_version, OPEN_STATUSES)

    def reject(self, candidate_id: int, reason: str, expected_version: int | None = None) -> QueueItem:
        """Reject an open or accepted candidate, or a published one whose pull request is not
        merged yet.

        An accepted candidate no list shows yet (its entry dropped when upstream's README was
        taken in: `upstream.rebase_catalogue`) is rejectable like an open one; an accepted
        candidate already promoted leaves the list at the next promotion.

        A maintainer who closes our pull request because of one paper is asked to reject it
        (`Publisher`): a published candidate must then still be rejectable, or the declined
        paper comes back in every later pull request. Its new entry leaves the list at the
        next promotion. Once the entry is in the list upstream, the paper is the list's.
        """
        reason = without_nul(reason, "a reject reason").strip()
        if not reason:
            raise UserError("a reject needs a reason (one of review.reject_reasons, or free text)")

        def change(session: Session, row: CandidateRow) -> None:
            if row.status == CandidateStatus.PUBLISHED.value and not _awaiting_merge(session, row.id):
                current = _item_in(session, candidate_id)
                state = current.state() if current else row.status
                raise UserError(
                    f"cannot reject candidate {candidate_id}: it is {state}, "
                    "and the paper is in the list upstream now; nothing changed"
                )
            row.status = CandidateStatus.REJECTED.value
            row.reason = reason
            row.final_labels = None

        allowed = (*OPEN_STATUSES, CandidateStatus.ACCEPTED.value, CandidateStatus.PUBLISHED.value)
        return self._act(candidate_id, "reject", change, expected_version, allowed, reason=reason)

    def defer(
        self, candidate_id: int, reason: str | None = None, expected_version: int | None = None
    ) -> QueueItem:
        """Put aside for later; a deferred candidate can still be accepted or rejected."""
        reason = without_nul(reason or "", "a defer reason").strip() or None

        def change(_session: Session, row: CandidateRow) -> None:
            row.status = CandidateStatus.DEFERRED.value
            row.reason = reason

        return self._act(
            candidate_id, "defer", change, expected_version, (CandidateStatus.PENDING.value,), reason=reason
        )

    def relabel(
        self, candidate_id: int, labels: Sequence[str], expected_version: int | None = None
    ) -> QueueItem:
        """Change the final labels of an open or accepted (not yet published) candidate.

        Not a decision on it: the candidate keeps who decided it and when (its decision row
        says who relabelled). Stamped, an accepted paper became "accepted by <relabeller>"
        at the relabel, and the weekly digest listed it again as accepted that week.
        """

        def change(session: Session, row: CandidateRow) -> None:
            row.final_labels = _checked_labels(session, row, list(labels), self.presets)

        allowed = (*OPEN_STATUSES, CandidateStatus.ACCEPTED.value)
        return self._act(candidate_id, "relabel", change, expected_version, allowed, stamp=False)

    def bulk_reject_below(
        self, score: float, reason: str, *, progress: Callable[[int, int], None] | None = None
    ) -> BulkResult:
        """Reject every pending candidate in scope whose relevance is below `score`, as one undoable batch.

        Set-based (one versioned UPDATE per chunk, decisions inserted in bulk), so that
        clearing tens of thousands of low scores after a backfill takes seconds. `progress`
        is called with (done, total) after each chunk.
        """
        reason = without_nul(reason, "a reject reason").strip()
        if not reason:
            raise UserError("a bulk reject needs a reason")
        batch = uuid.uuid4().hex
        with transaction(self.engine) as session:
            query = self._scoped(select(CandidateRow), CandidateStatus.PENDING.value, None).where(
                CandidateRow.relevance < score
            )
            selected = session.execute(
                _state_query(query.order_by(CandidateRow.id)).add_columns(CandidateRow.catalogue_id)
            ).all()
            rows = [_snapshot_row(row) for row in selected]
            per_catalogue = Counter(row.catalogue_id for row in selected)
            names = {
                key: name
                for key, name in session.execute(
                    select(CatalogueRow.id, CatalogueRow.name).where(CatalogueRow.id.in_(list(per_catalogue)))
                )
            }
            now = self.clock()
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                changes = [
                    (
                        state,
                        {
                            "status": CandidateStatus.REJECTED.value,
                            "final_labels": None,
                            "reason": reason,
                            "reviewer": self.reviewer,
                            "decided_at": now,
                        },
                    )
                    for state in chunk
                ]
                self._apply_versioned(session, changes, "reject", now, reason, batch=batch)
                if progress is not None:
                    progress(start + len(chunk), len(rows))
        by_catalogue = {names[key]: count for key, count in per_catalogue.items()}
        return BulkResult(
            len(rows), batch, [state["id"] for state in rows], dict(sorted(by_catalogue.items()))
        )

    def undo(self) -> list[QueueItem]:
        """Revert this reviewer's last decision not yet undone (a bulk action as a whole).

        A decision another reviewer has changed since cannot be undone: the first undo that
        meets it says so and records the refusal (a "conflict" row pointing at it), and the
        next undo goes on to the decision before it. Stopping there for good left every
        earlier decision, a whole bulk reject too, beyond undo.
        """
        try:
            return self._undo()
        except Conflict as conflict:
            if conflict.refused:
                self._audit_refused_undo(conflict)
            raise

    def _undo(self) -> list[QueueItem]:
        with transaction(self.engine) as session:
            refused = set(
                session.scalars(
                    select(DecisionRow.undoes_id).where(
                        DecisionRow.reviewer == self.reviewer,
                        DecisionRow.action == "conflict",
                        DecisionRow.undoes_id.is_not(None),
                    )
                )
            )
            latest = self._my_decisions().order_by(DecisionRow.at.desc(), DecisionRow.id.desc())
            last = next(
                (d for d in session.scalars(latest.limit(len(refused) + 1)) if d.id not in refused), None
            )
            if last is None:
                scope = f" in catalogue {self.catalogue!r}" if self.catalogue else ""
                raise UserError(f"nothing to undo: {self.reviewer} has no decision left to undo{scope}")
            group = [last]
            action = last.action
            batch = (last.after or {}).get("batch")
            if batch:  # a batch's decisions share their time and action
                same = self._my_decisions().where(
                    DecisionRow.at == last.at, DecisionRow.action == last.action
                )
                group = [d for d in session.scalars(same) if (d.after or {}).get("batch") == batch]
            now = self.clock()
            changes = []
            for start in range(0, len(group), _CHUNK):
                decisions = {d.candidate_id: d for d in group[start : start + _CHUNK]}
                query = _state_query(select(CandidateRow).where(CandidateRow.id.in_(list(decisions))))
                current = {state["id"]: state for state in map(_snapshot_row, session.execute(query))}
                for candidate_id, decision in decisions.items():
                    state = current.get(candidate_id)
                    if state is None:
                        raise UserError(f"cannot undo: candidate {candidate_id} no longer exists")
                    if state["version"] != decision.after.get("version") and not _back_where(
                        session, decision, state["version"]
                    ):
                        item = _item_in(session, candidate_id)
                        raise Conflict(
                            f"cannot undo your {decision.action} of candidate {candidate_id}: it was changed "
                            f"since (now {item.state() if item else state['status']}); nothing was undone. "
                            "It stays as it is now: undo again to go on to your decision before it",
                            item,
                            [(d.id, d.candidate_id) for d in group],
                        )
                    restored = {name: decision.before.get(name) for name in _STATE_FIELDS}
                    if restored["status"] == CandidateStatus.PUBLISHED.value:
                        # Undoing the reject of a published paper: its entry may have left the
                        # list since, and only an accepted candidate is promoted again; the
                        # next publish marks it published once more.
                        restored["status"] = CandidateStatus.ACCEPTED.value
                    previous = decision.before.get("decided_at")
                    restored["decided_at"] = datetime.fromisoformat(previous) if previous else None
                    state["undoes"] = (decision.id, decision.action)
                    changes.append((state, restored))
            for start in range(0, len(changes), _CHUNK):
                self._apply_versioned(session, changes[start : start + _CHUNK], "undo", now, None)
            for start in range(0, len(group), _CHUNK):
                ids = [d.id for d in group[start : start + _CHUNK]]
                session.execute(update(DecisionRow).where(DecisionRow.id.in_(ids)).values(undone=True))
        self.last_undone = action
        return self.items([state["id"] for state, _ in changes])

    def _audit_refused_undo(self, conflict: Conflict) -> None:
        """Record that these decisions could not be undone, so that the next undo passes them.

        One "conflict" row per decision of the refused group (a batch as a whole), pointing at
        it through `undoes_id`; like every conflict row it changes nothing.
        """
        current = conflict.current
        now = self.clock()
        rows = [
            {
                "candidate_id": candidate_id,
                "reviewer": self.reviewer,
                "action": "conflict",
                "at": now,
                "before": {"attempted": "undo"},
                "after": {"status": current.status, "reviewer": current.reviewer}
                if current is not None and current.candidate_id == candidate_id
                else {},
                "reason": None,
                "undoes_id": decision_id,
                "undone": False,
            }
            for decision_id, candidate_id in conflict.refused
        ]
        with transaction(self.engine) as session:
            for start in range(0, len(rows), _CHUNK):
                session.execute(insert(DecisionRow), rows[start : start + _CHUNK])

    def decisions(self, candidate_id: int | None = None) -> list[DecisionRow]:
        """The audit log, oldest first (of one candidate, or of this queue's scope)."""
        query = select(DecisionRow).order_by(DecisionRow.id)
        if candidate_id is not None:
            query = query.where(DecisionRow.candidate_id == candidate_id)
        elif self._catalogue_id is not None:
            query = query.join(CandidateRow, CandidateRow.id == DecisionRow.candidate_id).where(
                CandidateRow.catalogue_id == self._catalogue_id
            )
        with transaction(self.engine) as session:
            return list(session.scalars(query))

    # ----------------------------------------------------------------- internals
    def _act(
        self,
        candidate_id: int,
        action: str,
        change: Callable[[Session, CandidateRow], None],
        expected_version: int | None,
        allowed: Sequence[str],
        reason: str | None = None,
        *,
        stamp: bool = True,
    ) -> QueueItem:
        """Apply `change` to the candidate under its version lock, with its decision row;
        `stamp` makes this reviewer, now, the one who decided it."""
        try:
            with transaction(self.engine) as session:
                row = session.get(CandidateRow, candidate_id)
                if row is None or (self._catalogue_id is not None and row.catalogue_id != self._catalogue_id):
                    raise UserError(self._missing(candidate_id))
                if expected_version is not None and row.version != expected_version:
                    raise self._conflict(session, candidate_id, action)
                if row.status not in allowed:
                    current = _item_in(session, candidate_id)
                    assert current is not None
                    raise UserError(
                        f"cannot {action} candidate {candidate_id}: it is {current.state()}; nothing changed"
                    )
                before = _snapshot(row)
                change(session, row)
                now = self.clock()
                if stamp:
                    self._stamp(row, now)
                session.flush()  # the version check happens here
                session.add(self._decision(row, action, before, now, reason))
        except StaleDataError:
            conflict = self._conflict(None, candidate_id, action)
            self._audit_conflict(candidate_id, action, conflict, reason)
            raise conflict from None
        except Conflict as conflict:
            self._audit_conflict(candidate_id, action, conflict, reason)
            raise
        return self.get(candidate_id)

    def _audit_conflict(self, candidate_id: int, action: str, conflict: Conflict, reason: str | None) -> None:
        """Record the losing side of a race, so the audit log shows both reviewers' outcomes.

        The row changes nothing and undo never picks it up; it says what was tried and the
        state that won, in a transaction of its own (the attempt's own was rolled back).
        A candidate that is gone (`papers merge` dropped it meanwhile) has no log to add to:
        the row would break its foreign key, and the reviewer got an IntegrityError
        traceback instead of the Conflict that says so.
        """
        current = conflict.current
        if current is None:
            with transaction(self.engine) as session:
                if session.get(CandidateRow, candidate_id) is None:
                    return
        with transaction(self.engine) as session:
            session.add(
                DecisionRow(
                    candidate_id=candidate_id,
                    reviewer=self.reviewer,
                    action="conflict",
                    at=self.clock(),
                    before={"attempted": action},
                    after={"status": current.status, "reviewer": current.reviewer} if current else {},
                    reason=reason,
                )
            )

    def _apply_versioned(
        self,
        session: Session,
        changes: Sequence[tuple[dict[str, Any], dict[str, Any]]],
        action: str,
        now: datetime,
        reason: str | None,
        batch: str | None = None,
    ) -> None:
        """Write (current state, new fields) pairs with one versioned UPDATE, plus their decisions.

        Each row is updated only if it still has the version that was read; if any row was
        changed meanwhile the whole transaction fails as a Conflict, so a batch is all or nothing.
        """
        if not changes:
            return
        table: Table = CandidateRow.__table__  # type: ignore[assignment]  # declared as FromClause
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
            .values(
                {name: bindparam(f"b_{name}") for name in (*_STATE_FIELDS, "decided_at")}
                | {"version": bindparam("b_new_version"), "updated_at": bindparam("b_now")}
            )
        )
        params = []
        decisions = []
        for state, fields in changes:
            after = {**_public(state), **fields, "version": state["version"] + 1}
            after["decided_at"] = fields["decided_at"].isoformat() if fields["decided_at"] else None
            params.append(
                {f"b_{name}": fields[name] for name in (*_STATE_FIELDS, "decided_at")}
                | {
                    "b_id": state["id"],
                    "b_version": state["version"],
                    "b_new_version": state["version"] + 1,
                    "b_now": now,
                }
            )
            if batch:
                after["batch"] = batch
            undoes = state.get("undoes")
            decisions.append(
                {
                    "candidate_id": state["id"],
                    "reviewer": self.reviewer,
                    "action": action,
                    "at": now,
                    "before": _public(state),
                    "after": after,
                    "reason": f"undo {undoes[1]}" if undoes else reason,
                    "undoes_id": undoes[0] if undoes else None,
                    "undone": False,
                }
            )
        result = session.connection().execute(statement, params)
        if result.rowcount != len(params):
            raise Conflict(
                f"another reviewer changed some of these {len(params)} candidates meanwhile; "
                f"nothing was {'undone' if action == 'undo' else 'changed'}, try again",
                None,
            )
        session.execute(insert(DecisionRow), decisions)

    def _stamp(self, row: CandidateRow, now: datetime) -> None:
        row.reviewer = self.reviewer
        row.decided_at = now

    def _decision(
        self,
        row: CandidateRow,
        action: str,
        before: dict[str, Any],
        now: datetime,
        reason: str | None,
        batch: str | None = None,
    ) -> DecisionRow:
        after = _snapshot(row)
        if batch:
            after["batch"] = batch
        return DecisionRow(
            candidate_id=row.id,
            reviewer=self.reviewer,
            action=action,
            at=now,
            before=before,
            after=after,
            reason=reason,
        )

    def _conflict(self, session: Session | None, candidate_id: int, action: str) -> Conflict:
        if session is None:
            with transaction(self.engine) as fresh:
                current = _item_in(fresh, candidate_id)
        else:
            current = _item_in(session, candidate_id)
        if current is None:
            return Conflict(
                f"candidate {candidate_id} was removed meanwhile; your {action} was not applied", None
            )
        return Conflict(
            f"candidate {candidate_id} was changed by another reviewer: it is now {current.state()}; "
            f"your {action} was not applied",
            current,
        )

    def _my_decisions(self) -> Any:
        query = select(DecisionRow).where(
            DecisionRow.reviewer == self.reviewer,
            DecisionRow.undone.is_(False),
            DecisionRow.action.not_in(("undo", "conflict")),
        )
        if self._catalogue_id is not None:
            query = query.join(CandidateRow, CandidateRow.id == DecisionRow.candidate_id).where(
                CandidateRow.catalogue_id == self._catalogue_id
            )
        return query

    def _scoped(self, query: Any, status: str | Sequence[str], filter: Filter | None) -> Any:
        statuses = [status] if isinstance(status, str) else list(status)
        known = {s.value for s in CandidateStatus}
        unknown = [s for s in statuses if s not in known]
        if unknown:
            raise UserError(f"unknown status {unknown[0]!r}; use one of: {', '.join(sorted(known))}")
        query = query.where(CandidateRow.status.in_(statuses))
        if self._catalogue_id is not None:
            query = query.where(CandidateRow.catalogue_id == self._catalogue_id)
        clauses = filter.clauses() if filter else []
        if filter and filter.words:
            query = query.join(_FILTER_PAPER, _FILTER_PAPER.id == CandidateRow.paper_id)
        if clauses:
            query = query.where(and_(*clauses))
        return query

    def _ordering(self) -> list[Any]:
        if self.order == "uncertainty":
            # Closest to an even chance first: the decisions that teach the classifier most.
            distance = case(
                (CandidateRow.relevance >= 0.5, CandidateRow.relevance - 0.5),
                else_=0.5 - CandidateRow.relevance,
            )
            return [distance.asc(), CandidateRow.id.asc()]
        return [CandidateRow.relevance.desc(), CandidateRow.id.asc()]

    def _missing(self, candidate_id: int) -> str:
        scope = f" in catalogue {self.catalogue!r}" if self.catalogue else ""
        return f"no candidate {candidate_id}{scope}; `vpt-tracker review list` shows the pending ones"

    def _require_catalogue(self) -> str:
        if self.catalogue is None:
            raise UserError("name a catalogue (--catalogue NAME) to see its labels")
        return self.catalogue


def resolve_reviewer(configured: str | None, override: str | None = None) -> str:
    """`--reviewer`, else config `review.reviewer`, else the login name.

    A blank `--reviewer ""` is returned as given, for `ReviewQueue` to refuse as it refuses
    `" "`: it fell back to the login name, and decisions were logged under someone else."""
    if override is not None:
        return override
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise UserError(
            "cannot tell who is reviewing: set review.reviewer in the config or pass --reviewer"
        ) from None


def _catalogue_row(session: Session, name: str) -> CatalogueRow:
    row = session.scalars(select(CatalogueRow).where(CatalogueRow.name == name)).first()
    if row is None:
        known = (
            ", ".join(session.scalars(select(CatalogueRow.name).order_by(CatalogueRow.name))) or "none yet"
        )
        raise UserError(f"unknown catalogue {name!r}; known catalogues: {known}")
    return row


def _taxonomy(session: Session, catalogue: CatalogueRow, presets: Presets) -> list[str]:
    """The preset's labels, or (without a preset) the labels its entries already use."""
    if catalogue.preset:
        return presets.load(catalogue.preset).label_keys
    used: list[str] = []
    for labels in session.scalars(select(EntryRow.labels).where(EntryRow.catalogue_id == catalogue.id)):
        for label in labels or []:
            if label not in used:
                used.append(label)
    return sorted(used)


def _checked_labels(session: Session, row: CandidateRow, labels: list[str], presets: Presets) -> list[str]:
    """The labels, de-duplicated, if the catalogue's taxonomy knows them all; else a UserError."""
    catalogue = session.get(CatalogueRow, row.catalogue_id)
    assert catalogue is not None
    valid = _taxonomy(session, catalogue, presets)
    cleaned = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if not valid:
        return cleaned  # no taxonomy known for this catalogue: nothing to check against
    unknown = [label for label in cleaned if label not in valid]
    if unknown:
        raise UserError(
            f"unknown label{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for catalogue {catalogue.name!r}; valid labels: {', '.join(valid)}"
        )
    return cleaned


def _awaiting_merge(session: Session, candidate_id: int) -> bool:
    """Whether the candidate's new entry is still only ours (state "added": its pull request is
    open or was closed unmerged), not yet in the list upstream."""
    found = session.scalars(
        select(EntryRow.id).where(EntryRow.candidate_id == candidate_id, EntryRow.state == "added").limit(1)
    ).first()
    return found is not None


def _state_query(query: Any) -> Any:
    """The columns a decision snapshots, for the rows `query` selects (no ORM objects: bulk paths)."""
    return query.with_only_columns(
        CandidateRow.id, CandidateRow.status, CandidateRow.final_labels, CandidateRow.reason,
        CandidateRow.reviewer, CandidateRow.decided_at, CandidateRow.version,
    )  # fmt: skip


def _snapshot_row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "final_labels": list(row.final_labels) if row.final_labels is not None else None,
        "reason": row.reason,
        "reviewer": row.reviewer,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "version": row.version,
    }


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """A state as a decision stores it (without the bookkeeping keys)."""
    return {k: v for k, v in state.items() if k not in ("id", "undoes")}


def _snapshot(row: CandidateRow) -> dict[str, Any]:
    state: dict[str, Any] = {name: getattr(row, name) for name in _STATE_FIELDS}
    state["final_labels"] = list(row.final_labels) if row.final_labels is not None else None
    state["decided_at"] = row.decided_at.isoformat() if row.decided_at else None
    state["version"] = row.version
    return state


def _item_query() -> Any:
    return (
        select(
            CandidateRow.id,
            CandidateRow.paper_id,
            CandidateRow.catalogue_id,
            CatalogueRow.name.label("catalogue"),
            CandidateRow.status,
            CandidateRow.version,
            CandidateRow.relevance,
            CandidateRow.proposed_labels,
            CandidateRow.final_labels,
            CandidateRow.label_scores,
            CandidateRow.base_to_novel,
            CandidateRow.base_to_novel_flag,
            CandidateRow.low_confidence,
            CandidateRow.reason,
            CandidateRow.rule,
            CandidateRow.reviewer,
            CandidateRow.decided_at,
            PaperRow.title,
            PaperRow.abstract,
            PaperRow.authors,
            PaperRow.venue,
            PaperRow.year,
            PaperRow.arxiv_id,
            PaperRow.doi,
            PaperRow.openreview_id,
            PaperRow.cvf_url,
            PaperRow.code_url,
            PaperRow.pdf_url,
            PaperRow.comment,
        )
        .join(PaperRow, PaperRow.id == CandidateRow.paper_id)
        .join(CatalogueRow, CatalogueRow.id == CandidateRow.catalogue_id)
    )


def _item_in(session: Session, candidate_id: int) -> QueueItem | None:
    session.expire_all()
    row = session.execute(_item_query().where(CandidateRow.id == candidate_id)).first()
    return _item(row) if row is not None else None


def _item(row: Any) -> QueueItem:
    return QueueItem(
        candidate_id=row.id,
        paper_id=row.paper_id,
        catalogue=row.catalogue,
        status=row.status,
        version=row.version,
        relevance=row.relevance,
        proposed_labels=list(row.proposed_labels or []),
        final_labels=list(row.final_labels) if row.final_labels is not None else None,
        label_scores=dict(row.label_scores or {}),
        base_to_novel=row.base_to_novel,
        base_to_novel_flag=row.base_to_novel_flag,
        low_confidence=bool(row.low_confidence),
        reason=row.reason,
        rule=row.rule,
        reviewer=row.reviewer,
        decided_at=row.decided_at,
        title=row.title,
        abstract=row.abstract or "",
        authors=list(row.authors or []),
        venue=row.venue,
        year=row.year,
        arxiv_id=row.arxiv_id,
        doi=row.doi,
        openreview_id=row.openreview_id,
        cvf_url=row.cvf_url,
        code_url=row.code_url,
        pdf_url=row.pdf_url,
        comment=row.comment,
    )


def _back_where(session: Session, decision: DecisionRow, version: int) -> bool:
    """True when the candidate is back in the state `decision` left it in, by undos alone.

    An undo restores a state under a new version (optimistic locking needs one), so after
    "defer, accept, undo" the version no longer matches the defer's: yet undoing the defer
    too is what the reviewer asks for, not a clash with another reviewer. Walking back from
    the current version: the decision that made it must be an undo of a decision taken after
    `decision`, which restores the version that decision found; repeat until `decision`'s own
    version is reached ("defer, accept, undo, accept, undo" takes two steps). "conflict" rows
    change nothing and are skipped: a losing reviewer's audited attempt is not a change.
    """
    target = (decision.after or {}).get("version")
    later = session.scalars(
        select(DecisionRow).where(
            DecisionRow.candidate_id == decision.candidate_id,
            DecisionRow.id > decision.id,
            DecisionRow.action != "conflict",
        )
    ).all()
    made = {(row.after or {}).get("version"): row for row in later}  # each version is made once
    by_id = {row.id: row for row in later}
    while version != target:
        maker = made.get(version)
        if maker is None or maker.action != "undo" or maker.undoes_id is None:
            return False  # made by someone's decision, or without one (e.g. publish)
        undone = by_id.get(maker.undoes_id)  # None: it was taken before `decision`
        previous = (undone.before or {}).get("version") if undone is not None else None
        if not isinstance(previous, int) or previous >= version:
            return False
        version = previous
    return True
