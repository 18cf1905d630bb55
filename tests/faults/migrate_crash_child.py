"""Upgrade a database's schema and SIGKILL this process part-way (crash-safety tests).

    python tests/faults/migrate_crash_child.py DATABASE_URL N [HOLD_FOLDER]
    python tests/faults/migrate_crash_child.py DATABASE_URL "STATEMENT:N"

The N-th table that the migrations create is created, then the process kills itself, as
a `vpt-tracker init` (or any command's first use of a new database) killed there would
be. With HOLD_FOLDER it does not die: it touches `HOLD_FOLDER/ready` and waits for
`HOLD_FOLDER/go`, then finishes the upgrade (a second command starts meanwhile). N = 0
wraps nothing: it touches `HOLD_FOLDER/started` and upgrades, as a second command
would. "STATEMENT:N" (`UPDATE sightings:1`) kills the process right after the N-th SQL
statement sent to the database that starts with STATEMENT: inside a data migration (0008's
and 0009's updates and deletes), or after the revision is stamped, before the commit.
The wrap is from the outside, in this process only; the migrations have no test hook.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from alembic.operations import Operations
from sqlalchemy import Engine, event

from vpt_tracker.store import make_engine
from vpt_tracker.store.migrate import upgrade


def kill_after_statement(spec: str) -> None:
    """SIGKILL this process once the `N`-th statement starting with `STATEMENT` has run."""
    prefix, _, number = spec.rpartition(":")
    seen = [0]

    def after(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        if " ".join(statement.split()).upper().startswith(prefix.upper()):
            seen[0] += 1
            if seen[0] == int(number):
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "after_cursor_execute", after)


def main() -> None:
    if ":" in sys.argv[2]:
        kill_after_statement(sys.argv[2])
        upgrade(make_engine(sys.argv[1]))
        print("finished without reaching the kill point")
        return
    url, count = sys.argv[1], int(sys.argv[2])
    hold = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    original = Operations.create_table
    calls = [0]

    def create_table(self: Operations, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == count and hold is not None:
            (hold / "ready").touch()
            deadline = time.monotonic() + 120
            while not (hold / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        elif calls[0] == count:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    if count:
        Operations.create_table = create_table  # type: ignore[method-assign]
    elif hold is not None:
        (hold / "started").touch()
    upgrade(make_engine(url))
    print("upgraded" if hold is not None else "finished without reaching the kill point")


if __name__ == "__main__":
    main()
