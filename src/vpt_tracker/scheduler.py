"""`vpt-tracker serve`: the nightly run and the weekly digest on cron triggers.

APScheduler 3's `BlockingScheduler` with the settings that make a long-lived service
boring: one instance of a job at a time, missed runs coalesced into one, a grace time for
runs missed while the host slept, and a clean stop on SIGTERM (what `docker stop` sends).
Every job is safe to rerun: the pipeline resumes from cursors and the digest refuses a
week already sent. Each job run logs exactly one JSON line (see `logs.JsonFormatter`).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vpt_tracker.config import Settings, schedule_timezone
from vpt_tracker.errors import UserError
from vpt_tracker.locks import AlreadyRunning, HeldLock, LockLost, exclusive
from vpt_tracker.logs import job_log

log = logging.getLogger("vpt_tracker.scheduler")


#: The longest `schedule.misfire_grace_seconds`: a year.
MAX_MISFIRE_GRACE_SECONDS = 365 * 24 * 3600

#: crontab(5) day-of-week numbers: 0 and 7 are Sunday, 1 is Monday.
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(text: str, *, end: bool = False) -> int:
    """One day of a crontab day-of-week field as crontab's number (7, or Sunday ending a range, is 7)."""
    word = text.strip().lower()
    if word.isdigit() and int(word) <= 7:
        return int(word)
    if word in _CRON_DAYS:
        number = _CRON_DAYS.index(word)
        return 7 if end and number == 0 else number
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as day names, which APScheduler reads as crontab does.

    APScheduler 3 numbers the days from Monday = 0, and `CronTrigger.from_crontab` passes the
    field through: `0 8 * * 1` would run on Tuesdays and `7` (Sunday) would be refused. Names
    mean the same to both, so numbers, ranges, lists and steps are expanded to names here.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        spec, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{item!r}: the step must be a whole number above 0")
        step = int(step_text) if slash else 1
        if spec == "*":
            first, last = 0, 6
        elif "-" in spec:
            start, _, stop = spec.partition("-")
            first, last = _cron_day(start), _cron_day(stop, end=True)
        else:
            first = _cron_day(spec)
            last = 6 if slash else first  # `1/2`: from Monday on, every second day
        if first > last:
            raise ValueError(f"{item!r}: the range runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))


def _repeated(moment: datetime) -> bool:
    """True for the second time a wall-clock time happens, in the hour that repeats when
    clocks go back (02:30 CET after 02:30 CEST)."""
    return moment.fold == 1 and moment.utcoffset() != moment.replace(fold=0).utcoffset()


class CrontabTrigger(CronTrigger):
    """A `CronTrigger` that, like cron, runs a fixed-time job once on the night clocks go back.

    APScheduler fires `30 2 * * *` at 02:30 summer time and again at 02:30 winter time an
    hour later: a second nightly run over a one-hour window, which the health check takes
    for a source returning far fewer records than usual. cron runs a job whose minute and
    hour are fixed only the first time; one with a wildcard (`*/30 2 * * *`) runs by the
    clock, and so here.
    """

    fixed_time = False

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        # Without a previous fire the service started within the repeated hour: nothing ran yet.
        while self.fixed_time and previous_fire_time is not None and fire is not None and _repeated(fire):
            fire = super().get_next_fire_time(fire, fire)
        return fire


def _restricted(field: str) -> bool:
    """A day field that restricts, as cron decides it: one that does not start with `*`.

    Vixie/ISC cron looks at the first character only, so `*/2` counts as unrestricted.
    """
    return not field.startswith("*")


def _crontab(fields: list[str], timezone: tzinfo) -> CrontabTrigger:
    fields = [*fields[:4], crontab_weekdays(fields[4])]
    trigger = CrontabTrigger.from_crontab(" ".join(fields), timezone=timezone)
    trigger.fixed_time = _restricted(fields[0]) and _restricted(fields[1])
    return trigger


def cron_trigger(settings: Settings, key: str) -> BaseTrigger:
    """The trigger for `schedule.<key>`, a five-field crontab line in the schedule's time zone.

    When both the day of the month and the day of the week are restricted (`0 8 1 * mon`),
    cron runs the line on a day that matches either: the 1st of every month and every
    Monday. APScheduler's `CronTrigger` wants both (only Mondays that are the 1st), so such a
    line is two triggers, one per day field, whichever fires first (`OrTrigger`); a day that
    both match fires once, as the two give the same time.
    """
    expression = getattr(settings.schedule, key)
    timezone = schedule_timezone(settings)
    fields = expression.split()
    trigger: BaseTrigger
    try:
        if len(fields) != 5:
            raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
        minute, hour, day, month, weekday = fields
        if _restricted(day) and _restricted(weekday):
            trigger = OrTrigger(
                [
                    _crontab([minute, hour, day, month, "*"], timezone),
                    _crontab([minute, hour, "*", month, weekday], timezone),
                ]
            )
        else:
            trigger = _crontab(fields, timezone)
    except ValueError as exc:
        raise UserError(f"schedule.{key}: {expression!r} is not a crontab expression ({exc})") from None
    # February 30th: APScheduler finds no next run and keeps the job paused, so the service
    # would start and never run it. (A five-field line has no year, so a day no month has
    # is the only way to get here.)
    if trigger.get_next_fire_time(None, datetime.now(timezone)) is None:
        raise UserError(f"schedule.{key}: {expression!r} never runs (no month has that day)")
    return trigger


def run_job(
    name: str, action: Callable[[], dict[str, Any]], clock: Callable[[], float] = time.monotonic
) -> None:
    """Run one job and log one structured line: its outcome, duration and what it reports.

    Errors are logged, not raised: a failed night must not stop the service, and the next
    trigger (or the refetch queue) retries. What the job's code logs meanwhile is folded into
    the line (`logs.job_log`): its warnings and errors under `warnings`, the rest dropped.
    """
    started = clock()
    fields: dict[str, Any] = {"event": "job", "job": name}
    level = logging.INFO
    with job_log() as warnings:
        try:
            fields.update(action())
            fields.setdefault("outcome", "ok")
        except AlreadyRunning as exc:
            fields.update(outcome="skipped", error=str(exc))
        except UserError as exc:
            level = logging.ERROR
            fields.update(outcome="failed", error=str(exc))
        except Exception as exc:  # the service outlives any one job
            level = logging.ERROR
            fields.update(outcome="failed", error=f"{type(exc).__name__}: {exc}")
    if warnings:
        fields["warnings"] = warnings
    fields["duration_s"] = round(clock() - started, 3)
    log.log(level, "%s %s", name, fields["outcome"], extra={"fields": fields})


def nightly_job(settings: Settings, engine: Engine) -> dict[str, Any]:
    from vpt_tracker.pipeline import nightly

    result = nightly(settings, engine)
    return {
        "outcome": result.outcome.value,
        "run_id": result.run_id,
        "records": result.counts.get("records", 0),
        "new_papers": result.counts.get("new_papers", 0),
        "unhealthy": result.unhealthy(),
        "errors": result.errors,
    }


def digest_job(settings: Settings, engine: Engine) -> dict[str, Any]:
    from vpt_tracker.digest import send_due

    sent = send_due(settings, engine)
    return {"sent": [result.week for result in sent]}


class Scheduler(BlockingScheduler):
    """A `BlockingScheduler` that looks at the wall clock, and at its lock, at least every
    `check_every` seconds and before it starts a job.

    APScheduler sleeps until the next job's time on a monotonic clock, which stands still
    while the host is suspended: after a night asleep it woke as many hours late as the host
    had slept, found the nightly run late by more than the grace time and skipped it, even
    when the host was awake again minutes after the trigger.

    `lock` is the service's lock (`serve` sets it). A PostgreSQL restart ends the session that
    holds it: the service takes it again within `check_every`, and stops (`lost`) when another
    process took it first. No job starts while the lock is not held.
    """

    check_every: float = 60.0
    lock: HeldLock | None = None
    lost: LockLost | None = None
    _unreachable: bool = False

    def _process_jobs(self) -> float | None:
        if not self._lock_held():
            return None if self.lost is not None else self.check_every
        wait: float | None = super()._process_jobs()
        return wait if wait is None else min(wait, self.check_every)

    def _lock_held(self) -> bool:
        if self.lock is None:
            return True
        try:
            taken_again = self.lock.check()
        except LockLost as exc:
            self.lost = exc
            log.error("%s", exc, extra={"fields": {"event": "lock_lost"}})
            self.shutdown(wait=False)  # a job in progress still finishes
            return False
        except DBAPIError as exc:
            if not self._unreachable:  # once per outage, not every minute
                reason = " ".join(str(exc.orig or exc).split())
                log.warning(
                    "cannot check the serve lock; no job starts until the database answers",
                    extra={"fields": {"event": "lock_unreachable", "error": reason}},
                )
            self._unreachable = True
            return False
        self._unreachable = False
        if taken_again:
            log.warning(
                "the database session holding the serve lock had ended; the lock is held again",
                extra={"fields": {"event": "lock_taken_again"}},
            )
        return True


def build_scheduler(settings: Settings, engine: Engine) -> Scheduler:
    """The scheduler with both jobs; raises `UserError` naming a bad `schedule.*` key."""
    nightly_trigger = cron_trigger(settings, "nightly")
    digest_trigger = cron_trigger(settings, "digest")
    # APScheduler makes a timedelta of it at every run: a huge value overflowed there, and
    # every job failed inside the scheduler without running. A year is more than any use.
    if not 1 <= settings.schedule.misfire_grace_seconds <= MAX_MISFIRE_GRACE_SECONDS:
        raise UserError(
            f"schedule.misfire_grace_seconds must be between 1 and {MAX_MISFIRE_GRACE_SECONDS} (a year),"
            f" not {settings.schedule.misfire_grace_seconds}"
        )
    scheduler = Scheduler(
        timezone=schedule_timezone(settings),
        job_defaults={
            "max_instances": 1,
            "coalesce": True,
            "misfire_grace_time": settings.schedule.misfire_grace_seconds,
        },
    )
    jobs: list[tuple[str, str, Any, Callable[[], dict[str, Any]]]] = [
        ("nightly", "nightly run", nightly_trigger, lambda: nightly_job(settings, engine)),
        ("digest", "weekly digest", digest_trigger, lambda: digest_job(settings, engine)),
    ]
    for job_id, title, trigger, work in jobs:
        scheduler.add_job(
            run_job,
            trigger,
            args=[job_id, work],
            id=job_id,
            # Explicit, not only defaults: the options then hold before the scheduler starts.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=settings.schedule.misfire_grace_seconds,
            name=title,
        )
    return scheduler


def _isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def serve(settings: Settings, engine: Engine) -> None:
    """Run until SIGTERM or SIGINT; a job in progress finishes before the process exits.

    One service per database: a second one would run every job twice (a nightly run over
    the seconds after the first, which the health check takes for sources gone quiet), so
    it is refused with `AlreadyRunning` (exit 75), as a second pipeline run is. One that took
    the lock while this one's database session was gone stops this one the same way
    (`LockLost`, see `Scheduler`).
    """
    scheduler = build_scheduler(settings, engine)
    with exclusive(engine, "serve", busy="another vpt-tracker serve is running") as lock:
        scheduler.lock = lock
        _serve(settings, scheduler)
    if scheduler.lost is not None:  # after the lock's release: the new holder's lock is not ours
        raise scheduler.lost


def _serve(settings: Settings, scheduler: Scheduler) -> None:
    stop_requested: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.info("stopping on %s", name, extra={"fields": {"event": "stop", "signal": name}})
        stop_requested.append(name)
        if scheduler.running:
            # wait=False: the signal handler must return; the executor's worker threads are
            # not daemons, so a running job still completes before the interpreter exits.
            scheduler.shutdown(wait=False)

    def started(_event: SchedulerEvent) -> None:
        if stop_requested:  # the signal came while the scheduler was starting
            scheduler.shutdown(wait=False)
            return
        next_runs = {job.id: _isoformat(job.next_run_time) for job in scheduler.get_jobs()}
        log.info(
            "scheduler started",
            extra={
                "fields": {
                    "event": "start",
                    "timezone": settings.schedule.timezone,
                    "nightly": settings.schedule.nightly,
                    "digest": settings.schedule.digest,
                    "next_runs": next_runs,
                }
            },
        )

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.add_listener(started, EVENT_SCHEDULER_STARTED)
    scheduler.start()
    log.info("scheduler stopped", extra={"fields": {"event": "stopped"}})
