"""The use cases that keep the store current: `nightly()` and `backfill()`.

Each run fetches every configured source, stores each page (records and cursor) in one
transaction, scores the new papers against every catalogue, and records itself in `runs`.

Crash safety, because cron jobs get killed:
- the run row is written when the run starts and finished when it ends; a row still
  `running` when the next run takes the lock belongs to a dead run, and is marked failed;
- cursors advance only with the records they cover (`ingest_page`), so the next run
  resumes the window where the dead one stopped;
- papers that a dead or crashed run stored but never scored are scored by the next run
  (their sightings carry that run's id), which also resumes its window.

Source health: a source that errors, or returns far fewer records than it usually does on
the same weekday (in `schedule.timezone`), is unhealthy; the window it missed goes into
`refetch_windows` and is fetched again, with cursors of its own, at the start of the next run.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from vpt_tracker.config import Settings, schedule_timezone
from vpt_tracker.errors import UserError, run_error
from vpt_tracker.ingest import chunks, keep_index_between_runs, save_index
from vpt_tracker.locks import exclusive
from vpt_tracker.models import PIPELINE_KINDS, Page, RunOutcome, Window
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CursorRow,
    PaperRow,
    RefetchWindowRow,
    RunRow,
    ScoringBacklogRow,
    SightingRow,
    utcnow,
)
from vpt_tracker.wording import plural

if TYPE_CHECKING:
    from vpt_tracker.sources.base import Source

log = logging.getLogger(__name__)

# Cursor keys of refetch and backfill windows live in namespaces of their own, so that
# fetching an old window never moves the nightly watermark back.
REFETCH_NS = "refetch:"
BACKFILL_NS = "backfill:"
NAMESPACES = (REFETCH_NS, BACKFILL_NS)
DONE_KEY = "__window_done__"
INTERRUPTED = "run"  # the `errors` key that marks a run found dead by the next one
UNSCORED = "unscored"  # the `errors` key of a dead run whose papers the next run scores
UNSCORED_NOTE = "the next run scores the papers this run stored"

#: How far back a nightly run reaches when earlier runs are missing; longer gaps are a backfill.
MAX_NIGHTLY_GAP = timedelta(days=14)
#: Health: how many earlier same-weekday runs form "usual", and what counts as far fewer.
HEALTH_HISTORY = 4
HEALTH_RATIO = 0.25
HEALTH_MIN_USUAL = 5
#: The shortest window whose record count says anything: a nightly window is a day. A run by
#: hand soon after the scheduled one (or the scheduled one soon after it) covers an hour or two,
#: and its few records are no sign of a broken source; such a run is judged by its errors alone
#: and is no part of the usual. Slack below 24 hours for a late start or a clock change.
HEALTH_MIN_WINDOW = timedelta(hours=20)

Progress = Callable[[str, int], None]  # (source name, records stored so far in this run)


@dataclass
class SourceReport:
    """What one source did in one run."""

    source: str
    records: int = 0
    new_papers: int = 0
    pages: int = 0
    requests: int = 0
    refetched: list[str] = field(default_factory=list)  # windows fetched again, "start/end"
    error: str | None = None
    # Records that came without a part the source could not get for good (a CVF paper page
    # that answers 404): reported in the health, but no error: a refetch would not help.
    problems: list[str] = field(default_factory=list)
    # The source's `steady_volume`: only then does "far fewer records than usual" count.
    steady_volume: bool = True

    def counts(self) -> dict[str, Any]:
        data = asdict(self)
        for kept_elsewhere in ("source", "error", "problems", "steady_volume"):
            data.pop(kept_elsewhere)
        return data


@dataclass
class RunResult:
    run_id: int
    kind: str
    outcome: RunOutcome
    window: Window | None
    counts: dict[str, Any]
    errors: dict[str, str]
    health: dict[str, dict[str, Any]]
    duration_s: float

    @property
    def exit_code(self) -> int:
        """0 when every source and catalogue went through, 1 when some failed."""
        return 0 if self.outcome == RunOutcome.OK else 1

    def unhealthy(self) -> list[str]:
        return sorted(name for name, state in self.health.items() if not state.get("healthy", True))


# --------------------------------------------------------------------------- run records


def aware(moment: datetime) -> datetime:
    """UTC-aware: SQLite hands `DateTime(timezone=True)` columns back without their offset."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def recover_interrupted(engine: Engine, now: datetime) -> list[int]:
    """Mark runs left `running` as failed and return their ids, with those of the runs whose
    papers are still unscored (`UNSCORED`: crashed, or killed, and not yet made up for): the
    next run scores what they stored and resumes their window, whether the process was
    killed or stopped by an exception.

    The mark stays until the transaction that scores those papers (`enqueue_all`) removes
    it: a run that takes over a dead one and dies too before scoring leaves it for the next.
    (It was removed here, and the first dead run's papers were then never scored.)

    Only called with the pipeline lock held: a `running` row then cannot belong to a live
    process, because that process would hold the lock. That holds for `ingest-jsonl`'s
    rows too (it takes the lock): a killed one is marked failed here as well (it stayed
    `running` for ever), and it calls this too; its papers are not owed a score.
    """
    with transaction(engine) as session:
        dead_ingests = session.scalars(
            select(RunRow).where(RunRow.outcome == RunOutcome.RUNNING.value, RunRow.kind == "ingest")
        )
        for row in dead_ingests:
            row.outcome, row.finished_at = RunOutcome.FAILED.value, now
            row.errors = {**(row.errors or {}), INTERRUPTED: "interrupted: the process died before finishing"}
        rows = session.scalars(
            select(RunRow).where(RunRow.outcome == RunOutcome.RUNNING.value, RunRow.kind.in_(PIPELINE_KINDS))
        ).all()
        for row in rows:
            row.outcome = RunOutcome.FAILED.value
            row.finished_at = now
            row.errors = {
                **(row.errors or {}),
                INTERRUPTED: "interrupted: the process died before finishing",
                UNSCORED: UNSCORED_NOTE,
            }
        failed = session.scalars(
            select(RunRow)
            .where(RunRow.outcome == RunOutcome.FAILED.value, RunRow.kind.in_(PIPELINE_KINDS))
            .order_by(RunRow.id.desc())
            .limit(50)
        ).all()
        crashed = [row for row in failed if UNSCORED in (row.errors or {})]
        return sorted({row.id for row in rows} | {row.id for row in crashed})


def _scored(session: Session, run_ids: Sequence[int]) -> None:
    """Drop the `UNSCORED` mark of these runs, in the transaction that scored their papers."""
    if not run_ids:
        return
    for row in session.scalars(select(RunRow).where(RunRow.id.in_(run_ids))):
        if UNSCORED in (row.errors or {}):
            row.errors = {key: value for key, value in row.errors.items() if key != UNSCORED}


def resumable_window(engine: Engine, interrupted: Sequence[int], now: datetime) -> Window | None:
    """The window of the latest interrupted nightly run, to finish first with its own cursors.

    Sources key their cursors by window, so fetching exactly that window again resumes at
    the first page the dead run did not store, instead of starting over.
    """
    if not interrupted:
        return None
    with transaction(engine) as session:
        row = session.scalars(
            select(RunRow)
            .where(RunRow.id.in_(interrupted), RunRow.kind == "nightly", RunRow.window_start.is_not(None))
            .order_by(RunRow.id.desc())
            .limit(1)
        ).first()
    if row is None or row.window_start is None or row.window_end is None or aware(row.window_end) >= now:
        return None
    return Window(aware(row.window_start), aware(row.window_end))


def start_run(engine: Engine, kind: str, window: Window | None, now: datetime) -> int:
    with transaction(engine) as session:
        row = RunRow(
            kind=kind,
            started_at=now,
            outcome=RunOutcome.RUNNING.value,
            window_start=window.start if window else None,
            window_end=window.end if window else None,
            counts={},
            errors={},
            health={},
        )
        session.add(row)
        session.flush()
        return row.id


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    outcome: RunOutcome,
    counts: dict[str, Any],
    errors: dict[str, str],
    health: dict[str, dict[str, Any]],
    finished_at: datetime,
    duration_s: float,
) -> None:
    with transaction(engine) as session:
        row = session.get(RunRow, run_id)
        if row is None:  # pragma: no cover - the row was written by start_run under the lock
            raise RuntimeError(f"run {run_id} vanished")
        row.outcome = outcome.value
        row.counts = counts
        row.errors = errors
        row.health = health
        row.finished_at = finished_at
        row.duration_s = round(duration_s, 3)


def recent_runs(engine: Engine, last: int = 10) -> list[RunRow]:
    with transaction(engine) as session:
        return list(session.scalars(select(RunRow).order_by(RunRow.id.desc()).limit(last)))


def nightly_window(engine: Engine, now: datetime) -> Window:
    """From the end of the last finished nightly window up to now.

    A run whose sources failed counts as finished: the windows they missed are queued in
    `refetch_windows`. An interrupted run does not (its window is resumed instead, see
    `resumable_window`). A gap longer than `MAX_NIGHTLY_GAP` is cut, with a warning: that
    much history is a job for `run backfill`.
    """
    with transaction(engine) as session:
        rows = session.execute(
            select(RunRow.window_end, RunRow.errors)
            .where(
                RunRow.kind == "nightly",
                RunRow.outcome != RunOutcome.RUNNING.value,
                RunRow.window_end.is_not(None),
            )
            .order_by(RunRow.window_end.desc())
            .limit(50)
        ).all()
    last_end = next((aware(end) for end, errors in rows if INTERRUPTED not in (errors or {})), None)
    start = last_end if last_end is not None and last_end < now else now - timedelta(days=1)
    if now - start > MAX_NIGHTLY_GAP:
        # No later nightly run fetches the days cut here: say which they are, as the command
        # that fetches them (it said "the last 14 days, 0:00:00" and nothing of the gap).
        cut = now - MAX_NIGHTLY_GAP
        log.warning(
            "the last nightly window ended %s, more than %d days ago: this run fetches from %s; "
            "fetch the days before with `vpt-tracker run backfill --since %s --until %s`",
            f"{start:%Y-%m-%d %H:%M} UTC",
            MAX_NIGHTLY_GAP.days,
            f"{cut:%Y-%m-%d %H:%M} UTC",
            start.date().isoformat(),
            cut.date().isoformat(),
        )
        start = cut
    return Window(start, now)


# --------------------------------------------------------------------------- health


def assess_health(
    engine: Engine,
    reports: Iterable[SourceReport],
    *,
    weekday: int,
    window: Window,
    before_run: int,
) -> dict[str, dict[str, Any]]:
    """Each source's health in this run, against its history for the same weekday.

    "Usual" is the median record count of the last `HEALTH_HISTORY` error-free nightly runs
    on this weekday. An empty Saturday feed is then normal when Saturdays are usually
    empty, and a source with no history yet is healthy unless it errors. A source whose
    volume is not steady (CVF reads a listing only when it changed) is judged by its errors
    alone: after the night that read a new conference, every night would look far too quiet.
    So is every source of a run whose window is shorter than `HEALTH_MIN_WINDOW` (a run by
    hand an hour after the scheduled one): it was "0 records, usually 160 on this weekday",
    a refetch queued and an unhealthy source in the digest.
    """
    history = _weekday_history(engine, weekday, before_run)
    full_window = _full_window(window.start, window.end)
    health: dict[str, dict[str, Any]] = {}
    for report in reports:
        samples = history.get(report.source, [])
        usual = statistics.median(samples) if samples else None
        reason: str | None = None
        if report.error:
            reason = f"error: {report.error}"
        elif (
            report.steady_volume
            and full_window
            and usual is not None
            and usual >= HEALTH_MIN_USUAL
            and report.records < HEALTH_RATIO * usual
        ):
            reason = f"{report.records} records, usually {usual:g} on this weekday"
        health[report.source] = {
            "healthy": reason is None,
            "reason": reason,
            "records": report.records,
            "usual": usual,
            "weekday": weekday,
            "error": report.error,
            "problems": list(report.problems),
            "window": [window.start.isoformat(), window.end.isoformat()],
        }
    return health


def _weekday_history(engine: Engine, weekday: int, before_run: int) -> dict[str, list[int]]:
    history: dict[str, list[int]] = {}
    with transaction(engine) as session:
        rows = session.scalars(
            select(RunRow)
            .where(
                RunRow.kind == "nightly",
                RunRow.id < before_run,
                RunRow.outcome.in_([RunOutcome.OK.value, RunOutcome.PARTIAL.value]),
            )
            .order_by(RunRow.started_at.desc(), RunRow.id.desc())
            .limit(HEALTH_HISTORY * 7 * 3)
        ).all()
    for row in rows:
        if not _full_window(row.window_start, row.window_end):  # a run by hand soon after another
            continue
        sources = (row.counts or {}).get("sources", {})
        for name, state in (row.health or {}).items():
            if state.get("weekday") != weekday or state.get("error") or name not in sources:
                continue
            samples = history.setdefault(name, [])
            if len(samples) < HEALTH_HISTORY:
                samples.append(int(sources[name].get("records", 0)))
    return history


def _full_window(start: datetime | None, end: datetime | None) -> bool:
    """Whether a run's window was long enough (`HEALTH_MIN_WINDOW`) to tell its sources'
    usual volume: the run being judged, and each run of the history it is judged against."""
    if start is None or end is None:
        return False
    return aware(end) - aware(start) >= HEALTH_MIN_WINDOW


def queue_refetch(
    engine: Engine, run_id: int, health: dict[str, dict[str, Any]], window: Window, now: datetime
) -> int:
    """Queue the window of every unhealthy source; returns how many were queued.

    Queued at `now`, the run's start (as `done_at` is the refetching run's): the digest
    counts a window queued in the week of the run that queued it, also for a run that
    ended after the week did.

    The refetch reads cursors of its own (`refetch:<id>:<key>`), so that fetching an old
    window never moves the nightly ones. Each key that stopped part-way into this window (a
    failed page) starts there with the position it stopped at, in the transaction that
    queues the window: the refetch resumes at the failed page instead of reading the window
    from the start. (The position stays the nightly key's only until the next run's own
    window overwrites it.) Finished keys are not carried over: a source queued for returning
    far fewer records than usual is read whole again. Whether a carried position still
    fits (the same query, the same total) is the source's to check when it resumes.
    """
    from vpt_tracker.sources.base import unfinished

    queued = 0
    with transaction(engine) as session:
        for source, state in sorted(health.items()):
            if state["healthy"]:
                continue
            row = RefetchWindowRow(
                source=source,
                window_start=window.start,
                window_end=window.end,
                reason=state["reason"] or "unhealthy",
                run_id=run_id,
                created_at=now,
            )
            session.add(row)
            session.flush()
            stopped = session.execute(
                select(CursorRow.key, CursorRow.value).where(CursorRow.source == source)
            ).all()
            for key, value in stopped:
                if not key.startswith(NAMESPACES) and unfinished(value, window):
                    session.add(CursorRow(source=source, key=f"{REFETCH_NS}{row.id}:{key}", value=value))
            queued += 1
    return queued


def pending_refetches(engine: Engine, source: str | None = None) -> list[RefetchWindowRow]:
    with transaction(engine) as session:
        query = select(RefetchWindowRow).where(RefetchWindowRow.done_at.is_(None))
        if source is not None:
            query = query.where(RefetchWindowRow.source == source)
        return list(session.scalars(query.order_by(RefetchWindowRow.id)))


# --------------------------------------------------------------------------- fetching


def _namespaced(cursors: dict[str, str | None], prefix: str) -> dict[str, str | None]:
    if prefix:
        return {key[len(prefix) :]: value for key, value in cursors.items() if key.startswith(prefix)}
    return {key: value for key, value in cursors.items() if not key.startswith(NAMESPACES)}


# arXiv opened in August 1991; no source holds a paper from before it.
EARLIEST_DAY = date(1991, 8, 1)


def check_day(day: date, option: str, now: datetime) -> None:
    """A day no source can have papers of: `fetch` and `backfill` refuse it.

    A day after today (UTC) has nothing to fetch yet: fetched now, its window would come
    back empty and could be taken for finished, and then be skipped once the day has
    actually happened. A day before arXiv opened is a typo (`0225-03-01` for 2025): the
    arXiv query's date went out mangled (year 225 is "225", not "0225"), the first days of
    year 1 were an OverflowError traceback, and a backfill from it was 94,000 weekly windows.
    """
    today = now.astimezone(UTC).date()
    if day > today:
        raise UserError(f"{option} {day.isoformat()} is in the future (today is {today.isoformat()} UTC)")
    if day < EARLIEST_DAY:
        raise UserError(
            f"{option} {day.isoformat()} is before {EARLIEST_DAY.isoformat()}, when arXiv opened: "
            "no source has papers that old"
        )


def page_to_store(page: Page, window: Window, now: datetime) -> Page:
    """The page as it may be stored: a window that ends after `now` is never finished.

    Its cursor keeps the position but not the "done" flag, so the next fetch of the same
    window asks for what came after (today's papers keep coming until midnight).
    """
    if window.end <= now or not page.done:
        return page
    from vpt_tracker.sources.base import reopen

    return replace(page, cursor=reopen(page.cursor, window), done=False)


def _fetch_window(
    engine: Engine,
    source: Source,
    window: Window,
    *,
    prefix: str,
    run_id: int,
    report: SourceReport,
    new_paper_ids: list[int],
    progress: Progress | None,
    now: datetime,
) -> None:
    """Fetch one window of one source, one transaction per page (records with cursor)."""
    from vpt_tracker.ingest import ingest_page, read_cursors

    with transaction(engine) as session:
        cursors = _namespaced(read_cursors(session, source.name), prefix)
    for page in source.fetch(window, cursors):
        page = page_to_store(page, window, now)
        stored: Page = replace(page, cursor_key=prefix + page.cursor_key) if prefix else page
        with transaction(engine) as session:
            stats = ingest_page(session, stored, run_id=run_id)
        report.pages += 1
        report.records += stats.records
        report.new_papers += stats.new_papers
        report.problems.extend(page.problems)
        new_paper_ids.extend(stats.new_paper_ids)
        if progress is not None:
            progress(source.name, report.records)


@contextmanager
def _requests_counted(client: Any, report: SourceReport) -> Iterator[None]:
    """Add to `report` the HTTP requests `client` sends meanwhile, as its request log holds
    them: every attempt (a retry after a 429 or a 503 too), every redirect hop, every 304.

    Each source said how many requests a page took, and all but CVF said one: retries,
    304s and the requests of a page that then failed were not counted, so `runs` showed
    fewer requests than the hosts got. `fetch` counted the log already. A client without a
    log (sources handed in without it) counts none.
    """
    sent = getattr(client, "request_log", None)
    before = len(sent) if sent is not None else 0
    try:
        yield
    finally:
        if sent is not None:
            report.requests += len(sent) - before


def _fetch_guarded(action: Callable[[], None], report: SourceReport, what: str) -> Exception | None:
    """Run one fetch: None, or its failure, recorded on the report so the other sources go on."""
    from vpt_tracker.sources.base import SourceError

    failure: Exception
    try:
        action()
        return None
    except SourceError as exc:
        failure, message = exc, exc.message  # without the source name, which `what` carries
    except UserError:
        raise
    except Exception as exc:  # a bug or an outage in one source must not stop the others
        log.exception("%s failed", what)
        failure, message = exc, f"{type(exc).__name__}: {exc}"
    report.error = f"{what}: {message}" if report.error is None else f"{report.error}; {what}: {message}"
    log.warning("%s failed: %s", what, message)
    return failure


def _host_gave_up(failure: Exception) -> bool:
    """Whether the source's host failed after the whole retry budget (an outage), rather than
    answering something this window alone cannot use (a 404, a malformed page)."""
    from vpt_tracker.http import HttpError

    return isinstance(failure.__cause__, HttpError)


def _mark_window_done(engine: Engine, source: str, prefix: str, now: datetime) -> None:
    with transaction(engine) as session:
        key = prefix + DONE_KEY
        row = session.scalar(select(CursorRow).where(CursorRow.source == source, CursorRow.key == key))
        if row is None:
            session.add(CursorRow(source=source, key=key, value=now.isoformat()))


def _window_done(engine: Engine, source: str, prefix: str) -> bool:
    with transaction(engine) as session:
        key = prefix + DONE_KEY
        return (
            session.scalar(select(CursorRow.id).where(CursorRow.source == source, CursorRow.key == key))
            is not None
        )


def _refetch_pending(
    engine: Engine,
    source: Source,
    *,
    run_id: int,
    report: SourceReport,
    new_paper_ids: list[int],
    progress: Progress | None,
    now: datetime,
) -> None:
    """Fetch the source's queued windows, oldest first, until its host gives up on one.

    The others wait for the next run: a host that is down fails every window alike, and
    each such failure costs the whole retry budget, so trying them all made a run after a
    long outage take that budget once per night missed. A window that fails for a reason of
    its own (an answer that cannot be read) does not hold up the ones after it.
    """
    pending = pending_refetches(engine, source.name)
    for done, row in enumerate(pending):
        window = Window(aware(row.window_start), aware(row.window_end))
        label = f"{window.start.isoformat()}/{window.end.isoformat()}"
        failure = _fetch_guarded(
            partial(
                _fetch_window,
                engine,
                source,
                window,
                prefix=f"{REFETCH_NS}{row.id}:",
                run_id=run_id,
                report=report,
                new_paper_ids=new_paper_ids,
                progress=progress,
                now=now,
            ),
            report,
            f"{source.name} refetch {label}",
        )
        if failure is not None:
            if _host_gave_up(failure):
                if waiting := len(pending) - done - 1:
                    log.warning("%s: %s left for the next run", source.name, plural(waiting, "more window"))
                return
            continue
        with transaction(engine) as session:
            session.execute(update(RefetchWindowRow).where(RefetchWindowRow.id == row.id).values(done_at=now))
        report.refetched.append(label)


def _unscored_papers(engine: Engine, run_ids: Sequence[int]) -> list[int]:
    """Papers stored by runs that died before scoring them."""
    if not run_ids:
        return []
    with transaction(engine) as session:
        return sorted(
            set(session.scalars(select(SightingRow.paper_id).where(SightingRow.run_id.in_(run_ids))))
        )


def scoring_backlog(engine: Engine, names: Sequence[str]) -> dict[str, set[int]]:
    """The papers each of these catalogues owes a score (`scoring_backlog`), by catalogue."""
    owed: dict[str, set[int]] = {name: set() for name in names}
    if not names:
        return owed
    with transaction(engine) as session:
        rows = session.execute(
            select(ScoringBacklogRow.catalogue, ScoringBacklogRow.paper_id).where(
                ScoringBacklogRow.catalogue.in_(names), ScoringBacklogRow.scored_at.is_(None)
            )
        )
        for name, paper_id in rows:
            owed[name].add(paper_id)
    return owed


def owe_to_catalogues(session: Session, names: Sequence[str], paper_ids: Sequence[int]) -> None:
    """Papers stored outside a run (`fetch`) are owed a score by every configured catalogue.

    The next run scores them, as it scores what a failed catalogue owes: it finds them stored
    and not new, so without this they never reached the queue.
    """
    if paper_ids:
        _owe(session, None, {name: list(paper_ids) for name in names})


def _owe(session: Session, run_id: int | None, owed: dict[str, list[int]]) -> None:
    """Record the papers that failed catalogues could not score, each pair owed once (a pair
    scored before is owed again: a new row, the scored one stays for the digest)."""
    for name, paper_ids in owed.items():
        known: set[int] = set()
        for chunk in chunks(sorted(set(paper_ids)), 1000):  # only these papers' rows, not the whole backlog
            known.update(
                session.scalars(
                    select(ScoringBacklogRow.paper_id).where(
                        ScoringBacklogRow.catalogue == name,
                        ScoringBacklogRow.paper_id.in_(chunk),
                        ScoringBacklogRow.scored_at.is_(None),
                    )
                )
            )
        rows = [
            {"catalogue": name, "paper_id": paper_id, "run_id": run_id, "created_at": utcnow()}
            for paper_id in paper_ids
            if paper_id not in known
        ]
        if rows:
            session.execute(insert(ScoringBacklogRow), rows)


def enqueue_all(
    settings: Settings,
    engine: Engine,
    paper_ids: list[int],
    errors: dict[str, str],
    *,
    run_id: int,
    recovered: Sequence[int] = (),
) -> dict[str, Any]:
    """Score the papers against every configured catalogue; a failing catalogue is recorded.

    A catalogue that fails owes a score to every paper it was given (`scoring_backlog`):
    a later run that can score it scores those with its own papers, and stamps them scored in
    the transaction that writes the candidates. The catalogue's known papers (entries and
    every candidate, rejected ones included) are skipped as `classify enqueue` skips them,
    so nothing is proposed twice and a rejection stays final. The `recovered` runs (whose
    papers are among `paper_ids`) lose their `UNSCORED` mark in that same transaction, or
    in the one that records the papers as owed: a crash before either leaves it.
    """
    counts: dict[str, Any] = {}
    names = [catalogue.name for catalogue in settings.catalogues]
    owed = scoring_backlog(engine, names)
    if not names or (not paper_ids and not any(owed.values())):
        with transaction(engine) as session:  # nothing to score them for
            _scored(session, recovered)
        return counts
    from vpt_tracker.enqueue import clear_backlog, score_and_enqueue_many

    wanted = {name: sorted(set(paper_ids) | owed[name]) for name in names}
    unscored: dict[str, list[int]] = {}

    def failed(name: str, exc: Exception) -> None:  # one catalogue's missing model must not hide the others
        log.warning("scoring for catalogue %s failed: %s", name, exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        errors[f"catalogue:{name}"] = message
        unscored[name] = wanted[name]

    def settle(session: Session, scored: list[str]) -> None:  # with the candidates, or not at all
        clear_backlog(session, scored)
        _owe(session, run_id, unscored)
        _scored(session, recovered)

    try:
        results = score_and_enqueue_many(
            engine, names, wanted, settings=settings, on_error=failed, in_transaction=settle
        )
    except Exception as exc:  # scoring itself failed: every catalogue is unscored this run
        for name in names:
            failed(name, exc)
        with transaction(engine) as session:
            settle(session, [])  # nothing was scored: only the owing and the recovered runs
        results = {}
    for name, stats in results.items():
        counts[name] = {**asdict(stats), "caught_up": len(owed[name])}
    return counts


def abstract_stored(engine: Engine) -> Callable[[str], bool]:
    """A lookup for the CVF source: is the paper with this key, a (versionless) arXiv id or a
    canonical CVF page URL, stored with an abstract? (The two kinds of key never look alike.)

    Each call reads the store afresh, so papers that earlier pages and sources of the same
    run committed (`_fetch_window` commits every page) count too.
    """

    def known(key: str) -> bool:
        column = PaperRow.cvf_url if key.startswith("https://") else PaperRow.arxiv_id
        query = select(PaperRow.id).where(column == key, PaperRow.abstract != "").limit(1)
        with transaction(engine) as session:
            return session.scalar(query) is not None

    return known


def cvf_page_stored(engine: Engine) -> Callable[[str], bool]:
    """A lookup for the CVF source: is a CVF sighting of this canonical page URL stored, of a
    paper with an abstract? The listing record of such a paper adds nothing but a second
    sighting without the abstract (its payload hash differs from the stored page record's).

    By sighting, not by the paper's `cvf_url`: a paper that has its CVF URL from elsewhere
    (a catalogue entry) still gets its CVF sighting, and with it CVF's venue.
    """

    def stored(url: str) -> bool:
        query = (
            select(SightingRow.id)
            .join(PaperRow, PaperRow.id == SightingRow.paper_id)
            .where(SightingRow.source == "cvf", SightingRow.source_id == url, PaperRow.abstract != "")
            .limit(1)
        )
        with transaction(engine) as session:
            return session.scalar(query) is not None

    return stored


def _build_sources(settings: Settings, engine: Engine, client: Any) -> tuple[list[Source], Any]:
    from vpt_tracker.http import HttpClient
    from vpt_tracker.sources import build_sources

    own_client = client is None
    http = HttpClient(settings.http) if own_client else client
    sources = build_sources(
        settings, http, known_abstract=abstract_stored(engine), page_stored=cvf_page_stored(engine)
    )
    return sources, (http if own_client else None)


def _outcome(reports: Sequence[SourceReport], errors: dict[str, str]) -> RunOutcome:
    if not errors:
        return RunOutcome.OK
    if reports and all(report.error for report in reports):
        return RunOutcome.FAILED
    return RunOutcome.PARTIAL


class _RunGuard:
    """Marks the run failed when the use case dies of an exception (not a kill) or a Ctrl-C
    half-way.

    The error goes under the `INTERRUPTED` key, so the next run does not count this window
    as finished and fetches it again (sightings already stored are recognised). `UNSCORED`
    tells it to score the papers this run stored: fetched again, they are no longer new.
    """

    def __init__(self, engine: Engine, now: datetime) -> None:
        self.engine = engine
        self.now = now
        self.run_id: int | None = None

    def __enter__(self) -> _RunGuard:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if exc is None or self.run_id is None:
            return
        with transaction(self.engine) as session:
            row = session.get(RunRow, self.run_id)
            if row is not None and row.outcome == RunOutcome.RUNNING.value:
                row.outcome = RunOutcome.FAILED.value
                row.finished_at = self.now
                row.errors = {
                    **(row.errors or {}),
                    INTERRUPTED: run_error(exc, prefix="crashed: "),
                    UNSCORED: UNSCORED_NOTE,
                }


# --------------------------------------------------------------------------- use cases


def nightly(
    settings: Settings,
    engine: Engine,
    *,
    now: datetime | None = None,
    client: Any = None,
    sources: Sequence[Source] | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    window: Window | None = None,
) -> RunResult:
    """Fetch the new window from every source, ingest, score, enqueue, and record the run.

    `window` replaces the window after the last run, e.g. to replay a given night (the
    demo does, on recorded feeds); the next run then continues from its end.
    Raises `AlreadyRunning` (exit code 75) when another run holds the lock.
    """
    now = now or datetime.now(UTC)
    # The weekday that health compares runs by is the schedule's, where the nightly line is
    # read: by UTC's, a line near midnight UTC moved a day at each DST change, and each of
    # those runs was judged against another weekday's history (an empty weekend feed against
    # the weekdays': a false alarm and a refetch). Resolved first: a bad zone fetches nothing.
    weekday = now.astimezone(schedule_timezone(settings)).weekday()
    started = clock()
    with exclusive(engine, "pipeline"), _RunGuard(engine, now) as guard:
        interrupted = recover_interrupted(engine, now)
        explicit = window is not None
        window = window or nightly_window(engine, now)
        resume = None if explicit else resumable_window(engine, interrupted, now)
        parts = [window]
        if resume is not None and resume.start <= window.start < resume.end:
            parts = [resume, Window(resume.end, now)]
            window = Window(resume.start, now)
        run_id = guard.run_id = start_run(engine, "nightly", window, now)
        keep_index_between_runs(settings.cache_dir)
        log.info("nightly run %d: window %s .. %s", run_id, window.start, window.end)
        owned_client = None
        if sources is None:
            sources, owned_client = _build_sources(settings, engine, client)
        http = owned_client if owned_client is not None else client
        try:
            new_ids = _unscored_papers(engine, interrupted)
            reports: list[SourceReport] = []
            for source in sources:
                report = SourceReport(source.name, steady_volume=source.steady_volume)
                reports.append(report)
                with _requests_counted(http, report):
                    _refetch_pending(
                        engine,
                        source,
                        run_id=run_id,
                        report=report,
                        new_paper_ids=new_ids,
                        progress=progress,
                        now=now,
                    )
                    for part in parts:
                        failure = _fetch_guarded(
                            partial(
                                _fetch_window,
                                engine,
                                source,
                                part,
                                prefix="",
                                run_id=run_id,
                                report=report,
                                new_paper_ids=new_ids,
                                progress=progress,
                                now=now,
                            ),
                            report,
                            source.name,
                        )
                        if failure is not None:
                            break
        finally:
            if owned_client is not None and hasattr(owned_client, "close"):
                owned_client.close()
        _save_identity_index(engine)
        errors = {report.source: report.error for report in reports if report.error}
        health = assess_health(engine, reports, weekday=weekday, window=window, before_run=run_id)
        queue_refetch(engine, run_id, health, window, now)
        enqueued = enqueue_all(settings, engine, new_ids, errors, run_id=run_id, recovered=interrupted)
        extra = {"recovered_runs": interrupted}
        return _close_run(
            engine,
            run_id,
            "nightly",
            window,
            reports,
            enqueued,
            errors,
            health,
            extra,
            duration=clock() - started,
            now=now,
        )


def _save_identity_index(engine: Engine) -> None:
    """Keep the identity index for the next run; a failure only costs that run a reload."""
    try:
        save_index(engine)
    except Exception as exc:  # a full disk must not fail a run whose papers are stored
        log.warning("could not save the identity index snapshot: %s", exc)


def _close_run(
    engine: Engine,
    run_id: int,
    kind: str,
    window: Window,
    reports: list[SourceReport],
    enqueued: dict[str, Any],
    errors: dict[str, str],
    health: dict[str, Any],
    extra: dict[str, Any],
    *,
    duration: float,
    now: datetime,
) -> RunResult:
    """Sum up a run's reports into its `runs` row and its result (nightly and backfill alike)."""
    counts = {
        "sources": {report.source: report.counts() for report in reports},
        "catalogues": enqueued,
        "records": sum(report.records for report in reports),
        "new_papers": sum(report.new_papers for report in reports),
        **extra,
    }
    outcome = _outcome(reports, errors)
    finish_run(
        engine,
        run_id,
        outcome=outcome,
        counts=counts,
        errors=errors,
        health=health,
        finished_at=now + timedelta(seconds=duration),
        duration_s=duration,
    )
    return RunResult(run_id, kind, outcome, window, counts, errors, health, duration)


def backfill_windows(since: date, until: date, step_days: int = 7) -> list[Window]:
    """[since, until] in whole-day windows of at most `step_days`, oldest first."""
    if until < since:
        raise UserError(f"--until {until} is before --since {since}")
    windows = []
    day = since
    while day <= until:
        last = min(day + timedelta(days=step_days - 1), until)
        windows.append(Window.for_days(day, last))
        day = last + timedelta(days=1)
    return windows


def backfill(
    settings: Settings,
    engine: Engine,
    since: date,
    until: date | None = None,
    *,
    now: datetime | None = None,
    client: Any = None,
    sources: Sequence[Source] | None = None,
    step_days: int = 7,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Fetch history in resumable windows of `step_days`.

    Each (source, window) has cursors of its own and a done marker, so running the same
    backfill again after a crash or a failure skips what was finished and resumes the rest.
    A window that ends after `now` (today's) is never marked done; a future day is refused.
    """
    now = now or datetime.now(UTC)
    check_day(since, "--since", now)
    if until is not None:
        check_day(until, "--until", now)
    until = until or now.astimezone(UTC).date()
    windows = backfill_windows(since, until, step_days)
    started = clock()
    with exclusive(engine, "pipeline"), _RunGuard(engine, now) as guard:
        interrupted = recover_interrupted(engine, now)
        overall = Window(windows[0].start, windows[-1].end)
        run_id = guard.run_id = start_run(engine, "backfill", overall, now)
        keep_index_between_runs(settings.cache_dir)
        owned_client = None
        if sources is None:
            sources, owned_client = _build_sources(settings, engine, client)
        http = owned_client if owned_client is not None else client
        reports = {source.name: SourceReport(source.name) for source in sources}
        new_ids = _unscored_papers(engine, interrupted)
        recovered: list[int] = list(interrupted)
        errors: dict[str, str] = {}
        skipped = 0
        enqueued: dict[str, Any] = {}
        # Sources whose host gave up on a window (after the whole retry budget): their later
        # windows are left for the rerun, counted here. A host that is down fails each alike,
        # and asking for every one took that budget once per window (a year: 52 times).
        gave_up: dict[str, int] = {}
        try:
            for window in windows:
                window_ids: list[int] = []
                for source in sources:
                    prefix = f"{BACKFILL_NS}{window.start.date()}:{window.end.date()}:"
                    if _window_done(engine, source.name, prefix):
                        skipped += 1
                        continue
                    if source.name in gave_up:
                        gave_up[source.name] += 1
                        continue
                    report = reports[source.name]
                    with _requests_counted(http, report):
                        failure = _fetch_guarded(
                            partial(
                                _fetch_window,
                                engine,
                                source,
                                window,
                                prefix=prefix,
                                run_id=run_id,
                                report=report,
                                new_paper_ids=window_ids,
                                progress=progress,
                                now=now,
                            ),
                            report,
                            # The days as the maintainer gave them: `end` is the day after.
                            f"{source.name} {window.days()[0]}..{window.days()[-1]}",
                        )
                    # Today's window is fetched again by the next run.
                    if failure is None and window.end <= now:
                        _mark_window_done(engine, source.name, prefix, now)
                    elif failure is not None and _host_gave_up(failure):
                        gave_up[source.name] = 0
                # Score per window, so a long backfill killed half-way has scored what it stored.
                for name, stats in enqueue_all(
                    settings, engine, new_ids + window_ids, errors, run_id=run_id, recovered=recovered
                ).items():
                    enqueued.setdefault(name, []).append(stats)
                new_ids, recovered = [], []
        finally:
            if owned_client is not None and hasattr(owned_client, "close"):
                owned_client.close()
        _save_identity_index(engine)
        for name, left in gave_up.items():
            if left:
                note = f"{name}: {plural(left, 'later window')} not asked for; rerun the same backfill"
                log.warning("%s", note)
                reports[name].error = f"{reports[name].error}; {note}"
        for report in reports.values():
            if report.error:
                errors[report.source] = report.error
        health = {
            report.source: {
                "healthy": report.error is None,
                "reason": f"error: {report.error}" if report.error else None,
                "records": report.records,
                "usual": None,
                "weekday": None,
                "error": report.error,
                "problems": list(report.problems),
            }
            for report in reports.values()
        }
        extra = {"windows": len(windows), "windows_skipped": skipped, "recovered_runs": interrupted}
        return _close_run(
            engine,
            run_id,
            "backfill",
            overall,
            list(reports.values()),
            enqueued,
            errors,
            health,
            extra,
            duration=clock() - started,
            now=now,
        )
