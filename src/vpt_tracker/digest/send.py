"""Deliver the digest over SMTP, once per week.

The `digests` table is the guard: a week whose digest was sent is refused unless forced,
and a week whose delivery failed (server unreachable, recipients refused, a timeout, a TLS
error, a login that cannot be encoded, any exception, even Ctrl-C) is `failed` with its
error, so that the scheduler's next digest job retries it.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage

from sqlalchemy import Engine, select

from vpt_tracker.config import Settings, SmtpConfig, schedule_timezone
from vpt_tracker.digest.build import Week, build_digest, mail_address, to_message
from vpt_tracker.errors import UserError
from vpt_tracker.locks import AlreadyRunning, exclusive, sweep_unheld
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import DigestRow

log = logging.getLogger(__name__)

#: The scheduler stops retrying a week after this many failed attempts.
MAX_ATTEMPTS = 5
#: After missed digest jobs (the service was down), the next job sends at most this many weeks.
MAX_CATCH_UP = 4


class DigestNotSent(UserError):
    """Delivery failed; the digest is marked for retry. Exit code 1: a fault, not bad input."""

    exit_code = 1


@dataclass
class SendResult:
    week: str
    recipients: list[str]  # as configured, those the server took
    subject: str
    attempts: int
    #: Recipients the server refused while it took the others (the week counts as sent):
    #: their envelope address and the server's reply.
    refused: dict[str, str] = field(default_factory=dict)


def envelope(smtp: SmtpConfig) -> tuple[str, list[str]]:
    """The SMTP envelope: sender and recipients as bare addresses, domains in ASCII (IDNA).

    A display name is for the headers: on the envelope, "Ana Müller <ana@example.org>" made
    a server without SMTPUTF8 refuse the whole message. Raises `UserError` for a bad address.
    """
    sender = mail_address(smtp.sender, "smtp.sender").addr_spec
    return sender, [mail_address(recipient, "smtp.recipients").addr_spec for recipient in smtp.recipients]


def deliver(
    message: EmailMessage, smtp: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None
) -> dict[str, str]:
    """Send `message` to `smtp.recipients`; raises `smtplib.SMTPException`, `OSError` and others.

    Returns the recipients the server refused while it took the others, with its replies:
    the digest reached someone, so it counts as sent, and the refused are named.
    """
    sender, recipients = envelope(smtp)
    context = ssl_context or ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.username:
            password = smtp.password.get_secret_value() if smtp.password else ""
            client.login(smtp.username, password)
        refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
    return {address: _reply(code, detail) for address, (code, detail) in refused.items()}


def _reply(code: int, detail: bytes | str) -> str:
    """A server's reply as one line: `550 5.1.1 mailbox unavailable`."""
    if isinstance(detail, bytes):
        detail = detail.decode(errors="replace")
    return f"{code} {' '.join(detail.split())}"


def _describe(exc: BaseException, smtp: SmtpConfig) -> str:
    where = f"{smtp.host}:{smtp.port}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"the SMTP server {where} refused every recipient ({', '.join(sorted(exc.recipients))})"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the SMTP server {where} rejected the login for {smtp.username!r}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the SMTP server {where} refused the message: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPException):
        return f"SMTP error with {where}: {exc}"
    if isinstance(exc, ssl.SSLError):  # the server answered: TLS with it failed
        return f"TLS with the SMTP server {where} failed: {_tls_trouble(exc, smtp)}"
    if isinstance(exc, OSError):  # refused, unreachable, timed out
        return f"cannot reach the SMTP server {where}: {exc.strerror or exc}"
    # Anything else (a login that SMTP AUTH cannot carry as ASCII, a bad host name, ...).
    return f"sending through {where} failed: {type(exc).__name__}: {_without_secret(str(exc), smtp)}"


def _tls_trouble(exc: ssl.SSLError, smtp: SmtpConfig) -> str:
    """What went wrong in TLS, in words: OpenSSL's `[SSL: WRONG_VERSION_NUMBER] wrong version
    number (_ssl.c:1006)` is what implicit TLS meets at a port that speaks plain SMTP first."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its certificate is not trusted ({exc.verify_message})"
    if exc.reason == "WRONG_VERSION_NUMBER" and smtp.security == "ssl":
        return (
            "the server does not speak TLS at once (smtp.security = 'ssl' is for a port such as 465;"
            " for 587 or 25 use 'starttls')"
        )
    return str(exc)


def _without_secret(text: str, smtp: SmtpConfig) -> str:
    """An exception's text may quote what it could not encode: the password, for one."""
    secret = smtp.password.get_secret_value() if smtp.password else ""
    return text.replace(secret, "**********") if secret else text


def _sent_for_good(row: DigestRow | None, week: Week) -> bool:
    """Sent after the week ended. One sent earlier (`--week current`, a maintainer trying the
    mail setup on a Thursday) showed only part of the week: the job still sends the whole."""
    if row is None or row.status != "sent":
        return False
    return row.sent_at is None or row.sent_at >= week.end


def _record_attempt(
    engine: Engine,
    week: Week,
    smtp: SmtpConfig,
    now: datetime,
    error: str | None,
    recipients: list[str] | None = None,
) -> int:
    """Count one delivery attempt on the week's row: sent (to `recipients`, by default every
    configured one), or failed with `error`; its attempts."""
    with transaction(engine) as session:
        row = session.scalar(select(DigestRow).where(DigestRow.week == week.label))
        assert row is not None
        row.attempts = (row.attempts or 0) + 1
        row.recipients = list(smtp.recipients if recipients is None else recipients)
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", now, None
        else:
            row.status, row.last_error = "failed", error
        return row.attempts


def send_digest(
    settings: Settings,
    engine: Engine,
    week: Week,
    *,
    force: bool = False,
    now: datetime | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> SendResult:
    """Build and send the digest of `week`; refuses a week already sent unless `force`.

    Raises `AlreadyRunning` (exit 75) while another process sends the same week.
    """
    result = _send(settings, engine, week, force=force, now=now, ssl_context=ssl_context, if_unsent=False)
    assert result is not None  # a week sent already is refused, not skipped
    return result


def _week_lock(week: Week) -> str:
    """The lock a send of `week` holds: one per week, so that the job, finding a week being
    sent by hand, can leave it to that send and go on with its other weeks. It is taken
    `transient`: on SQLite its file goes when the send ends (one stayed per week sent)."""
    return f"digest-{week.label}"


#: A week's lock name (`_week_lock`), to tell its file among the other lock files.
WEEK_LOCK = re.compile(r"digest-\d{4}-W\d{2}")


def _sweep_other_weeks(engine: Engine, week: Week) -> None:
    """Remove the lock files of other weeks' sends that nobody holds (SQLite). A send killed
    in the instant after it recorded its week sent, before it removed its file, left the
    file for good: that week has no next send to take and remove it. A week being sent
    holds its lock, and its file is left to it."""
    own = _week_lock(week)
    removed = sweep_unheld(engine, lambda name: name != own and WEEK_LOCK.fullmatch(name) is not None)
    if removed:
        log.info("removed the lock files that no send holds of %s", ", ".join(removed))


def _send(
    settings: Settings,
    engine: Engine,
    week: Week,
    *,
    force: bool,
    now: datetime | None,
    ssl_context: ssl.SSLContext | None,
    if_unsent: bool,
) -> SendResult | None:
    """`send_digest`; with `if_unsent` (the job), a week sent for good meanwhile is None, not
    an error: whether it was is read under the week's lock, where no other send can change it."""
    now = now or datetime.now(UTC)
    smtp = settings.smtp
    if not smtp.recipients:
        raise UserError("smtp.recipients is empty: set the digest recipients in the config")
    envelope(smtp)  # a bad address is a config error (exit 2), not a failed week
    with exclusive(engine, _week_lock(week), transient=True):
        _sweep_other_weeks(engine, week)
        with transaction(engine) as session:
            row = session.scalar(select(DigestRow).where(DigestRow.week == week.label))
            if row is not None and _sent_for_good(row, week) and if_unsent:
                return None
            if row is not None and _sent_for_good(row, week) and not force:
                sent = row.sent_at.strftime("%Y-%m-%d %H:%M UTC") if row.sent_at else "earlier"
                raise UserError(
                    f"the digest for {week.label} was already sent ({sent}); use --force to resend"
                )
            if row is None:
                row = DigestRow(week=week.label, status="built", attempts=0, recipients=[])
                session.add(row)
            row.built_at = now
        message = to_message(build_digest(engine, week, now=now, settings=settings), settings)
        error: str | None = None
        refused: dict[str, str] = {}
        try:
            refused = deliver(message, smtp, ssl_context=ssl_context)
        except Exception as exc:  # whatever stopped delivery, the week is failed and retried
            error = _describe(exc, smtp)
        except BaseException as exc:  # Ctrl-C or a signal mid-send: failed too, then stop
            where = f"{smtp.host}:{smtp.port}"
            _record_attempt(
                engine, week, smtp, now, f"interrupted ({type(exc).__name__}) while sending through {where}"
            )
            raise
        # The configured recipients the server took (the envelope lists them in their order).
        took = [
            configured
            for configured, address in zip(smtp.recipients, envelope(smtp)[1], strict=True)
            if address not in refused
        ]
        attempts = _record_attempt(engine, week, smtp, now, error, took)
    if error is not None:
        raise DigestNotSent(
            f"digest {week.label} not sent: {error}; it is marked for retry "
            f"(attempt {attempts}; `vpt-tracker digest send --week {week.label}` retries now)"
        )
    if refused:
        log.warning(
            "digest %s: the SMTP server refused some recipients: %s",
            week.label,
            "; ".join(f"{address} ({reply})" for address, reply in sorted(refused.items())),
        )
    log.info("digest %s sent to %d recipients", week.label, len(took))
    return SendResult(week.label, took, str(message["Subject"]), attempts, refused)


def _stored_week(label: str, zone: tzinfo) -> Week:
    """The week of a `digests` row; a label that is none (edited by hand) names the table."""
    try:
        return Week.parse(label, zone)
    except ValueError as exc:
        raise UserError(f"digests table: {exc}") from None


def send_due(
    settings: Settings,
    engine: Engine,
    *,
    now: datetime | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[SendResult]:
    """The scheduler's job: last week's digest if unsent, the weeks since the last digest
    whose job never ran (at most `MAX_CATCH_UP`), then earlier failed ones (retries) and
    killed ones: a send killed by a signal it cannot catch (SIGKILL) never records its
    attempt, and its week stays `built` (a live send holds the week's lock, and records its
    attempt before it lets go). Whether the server had taken the message is not known, so
    such a week is sent again: at least once, never not at all. A week another process is
    sending (its lock is held) is logged and left to it.

    A failure is logged and left `failed` for the next call; the first one is re-raised
    after the others were tried, so that the job's log line says it failed.
    """
    now = now or datetime.now(UTC)
    zone = schedule_timezone(settings)
    last = Week.of(now, zone).preceding()
    with transaction(engine) as session:
        known = session.scalars(select(DigestRow.week)).all()
        retry = session.scalars(
            select(DigestRow.week).where(
                DigestRow.status.in_(("built", "failed")), DigestRow.attempts < MAX_ATTEMPTS
            )
        ).all()
    # The weeks after the newest digest up to last week: those before last week have no row
    # because their job was missed (the service was down or asleep at the trigger), and
    # nothing else would ever send them.
    due: list[Week] = []
    if known:
        week = _stored_week(max(known), zone)  # labels sort as weeks: "2026-W53" < "2027-W01"
        while (week := week.following()).start <= last.start:
            due.append(week)
    if len(due) > MAX_CATCH_UP:
        skipped, due = due[:-MAX_CATCH_UP], due[-MAX_CATCH_UP:]
        log.warning(
            "digests of %s not sent: their jobs were missed, and only the last %d weeks are caught up",
            ", ".join(week.label for week in skipped),
            MAX_CATCH_UP,
        )
    if last not in due:
        due.append(last)
    for label in sorted(retry):
        week = _stored_week(label, zone)
        if week not in due:
            due.append(week)
    results: list[SendResult] = []
    first_error: DigestNotSent | None = None
    for week in due:
        with transaction(engine) as session:
            row = session.scalar(select(DigestRow).where(DigestRow.week == week.label))
            done = _sent_for_good(row, week)
        if done:
            continue
        # Read without the week's lock: a `digest send` of it may be under way (its week
        # `built`, so listed), or may have sent it since; `_send` reads it again under the lock.
        try:
            result = _send(
                settings, engine, week, force=False, now=now, ssl_context=ssl_context, if_unsent=True
            )
        except AlreadyRunning:
            log.warning("digest %s skipped: another process is sending it", week.label)
            continue
        except DigestNotSent as exc:
            log.warning("%s", exc)
            first_error = first_error or exc
            continue
        if result is not None:
            results.append(result)
    if first_error is not None:
        raise first_error
    return results
