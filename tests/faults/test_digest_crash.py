"""A `digest send` killed, or held, where its send ends: after it recorded the week as sent,
around the removal of the week's lock file (SQLite) and before it lets the lock go.

The week must be sent once: a kill there neither loses it (it is recorded) nor lets the
next job or a maintainer send it again, and a second sender meanwhile is refused (exit 75)
while the first holds the lock, or finds the week sent once the first let go of it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from faults.helpers import child_env, start_held
from ops.seed import NOW, seed_week
from ops.smtp import Inbox, smtp_server
from vpt_tracker.cli import main as cli
from vpt_tracker.config import Settings, SmtpConfig
from vpt_tracker.digest import send_digest, send_due
from vpt_tracker.digest.build import Week
from vpt_tracker.locks import EX_TEMPFAIL, AlreadyRunning, exclusive
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import DigestRow

CHILD = Path(__file__).with_name("digest_crash_child.py")
WEEK = "2026-W47"  # the week before `seed.NOW`, seeded by `seed_week`


@contextmanager
def mail_setup(tmp_path: Path) -> Iterator[tuple[Inbox, Path, Settings]]:
    """A real SMTP server; a config file that sends through it, and the same as settings."""
    with smtp_server() as (inbox, port):
        config = tmp_path / "vpt-tracker.toml"
        config.write_text(
            f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\n"
            "recipients = ['a@example.org']\ntimeout = 30\n"
        )
        smtp = SmtpConfig(host="127.0.0.1", port=port, security="none", recipients=["a@example.org"])
        yield inbox, config, Settings(database_url="sqlite://", smtp=smtp)


def send_by_hand(db_url: str, config: Path, tmp_path: Path) -> Result:
    """`vpt-tracker digest send --week 2026-W47`, as a maintainer would run it."""
    args = ["--config", str(config), "--database", db_url, "digest", "send", "--week", WEEK]
    return CliRunner().invoke(cli, args, env={"VPT_DATA_DIR": str(tmp_path)})


def the_week(engine: Engine) -> tuple[str, int]:
    with transaction(engine) as session:
        row = session.scalar(select(DigestRow).where(DigestRow.week == WEEK))
        assert row is not None
        return row.status, row.attempts


def lock_files(db_url: str) -> list[str]:
    if not db_url.startswith("sqlite"):
        return []
    return sorted(path.name for path in Path(db_url.removeprefix("sqlite:///")).parent.glob("*.lock"))


def spec(db_url: str, config: Path, point: str) -> dict[str, str]:
    return {"db_url": db_url, "config": str(config), "week": WEEK, "point": point}


def points(db_url: str) -> list[str]:
    return ["recorded", "removed"] if db_url.startswith("sqlite") else ["recorded"]


@pytest.mark.parametrize("point", ["recorded", "removed"])
def test_a_send_killed_as_it_ends_is_sent_once(
    engine: Engine, db_url: str, tmp_path: Path, point: str
) -> None:
    """Killed after the week was recorded sent, before (or after) its lock file went: the
    next job sends nothing, a send by hand is refused as already sent, and the lock is free."""
    if point not in points(db_url):
        pytest.skip("on PostgreSQL the week's lock is an advisory lock: no file is removed")
    seed_week(engine)
    with mail_setup(tmp_path) as (inbox, config, settings):
        child = subprocess.run(
            [sys.executable, str(CHILD), json.dumps(spec(db_url, config, point))],
            env=child_env(),
            capture_output=True,
            timeout=180,
        )
        assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
        assert len(inbox.messages) == 1
        assert the_week(engine) == ("sent", 1)
        # Killed before its removal, the week's lock file stays: a handle, it holds nothing.
        left = point == "recorded" and db_url.startswith("sqlite")
        assert lock_files(db_url) == (["store.db.digest-2026-W47.lock"] if left else [])

        assert send_due(settings, engine, now=NOW) == []  # the job: the week is sent
        again = send_by_hand(db_url, config, tmp_path)
        assert again.exit_code == 2 and "already sent" in again.output, again.output
        assert len(inbox.messages) == 1 and the_week(engine) == ("sent", 1)
    assert lock_files(db_url) == []  # the refused send took the lock, and removed the file


@pytest.mark.parametrize("point", ["recorded", "removed"])
def test_a_second_sender_while_the_first_ends_is_refused_or_finds_the_week_sent(
    engine: Engine, db_url: str, tmp_path: Path, point: str
) -> None:
    """A second `digest send` of the week while the first is at the end of its send: while
    the first holds the lock (its file still there), it exits 75 with one line, and the job
    leaves the week to the first; once the first removed the file, the second takes a new
    one, and finds the week sent (it was recorded before the removal). Never two messages."""
    if point not in points(db_url):
        pytest.skip("on PostgreSQL the week's lock is an advisory lock: no file is removed")
    seed_week(engine)
    hold = tmp_path / "hold"
    hold.mkdir()
    with mail_setup(tmp_path) as (inbox, config, settings):
        first = start_held(CHILD, spec(db_url, config, point), hold)
        try:
            second = send_by_hand(db_url, config, tmp_path)
            job = send_due(settings, engine, now=NOW)
        finally:
            (hold / "go").touch()
            out, err = first.communicate(timeout=120)
        assert first.returncode == 0 and out.decode().splitlines()[-1] == "sent", err.decode()[-2000:]
        if point == "recorded":  # the first holds the lock
            assert second.exit_code == EX_TEMPFAIL, second.output
            (line,) = second.stderr.strip().splitlines()
            assert line.startswith("Error: another vpt-tracker digest-2026-W47 run is in progress")
        else:
            assert second.exit_code == 2 and "already sent" in second.output, second.output
        assert job == []
        assert len(inbox.messages) == 1 and the_week(engine) == ("sent", 1)
    assert lock_files(db_url) == []


def test_a_lock_file_left_by_a_send_killed_as_it_ended_goes_with_the_next_send(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Killed after it recorded its week sent and before it removed the week's lock file, a
    send left that file for good: its week has no next send to take and remove it. The next
    send of any week removes it, while it holds the file's lock; the file of a week another
    process is sending meanwhile (its lock held) stays, and that lock with it."""
    if not db_url.startswith("sqlite"):
        pytest.skip("on PostgreSQL the week's lock is an advisory lock: no file")
    seed_week(engine)
    hold = tmp_path / "hold"
    hold.mkdir()
    with mail_setup(tmp_path) as (inbox, config, settings):
        sending = start_held(CHILD, {**spec(db_url, config, "recorded"), "week": "2026-W46"}, hold)
        try:
            killed = subprocess.run(  # its own send leaves the held week's file alone
                [sys.executable, str(CHILD), json.dumps(spec(db_url, config, "recorded"))],
                env=child_env(),
                capture_output=True,
                timeout=180,
            )
            assert killed.returncode == -signal.SIGKILL, (killed.stdout + killed.stderr).decode()[-2000:]
            assert lock_files(db_url) == ["store.db.digest-2026-W46.lock", "store.db.digest-2026-W47.lock"]
            send_digest(settings, engine, Week(2026, 48), now=NOW + timedelta(days=7))
            assert lock_files(db_url) == ["store.db.digest-2026-W46.lock"]  # held: left to its send
            with pytest.raises(AlreadyRunning), exclusive(engine, "digest-2026-W46", transient=True):
                pass
        finally:
            (hold / "go").touch()
            out, err = sending.communicate(timeout=120)
        assert sending.returncode == 0 and out.decode().splitlines()[-1] == "sent", err.decode()[-2000:]
        assert len(inbox.messages) == 3
    assert lock_files(db_url) == []
