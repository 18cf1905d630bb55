"""Run `vpt-tracker digest send --week WEEK` and SIGKILL this process as its send ends
(crash-safety tests).

    python tests/faults/digest_crash_child.py '{"db_url": "...", "config": "...", "week": "2026-W47",
                                                 "point": "recorded"}'

The send holds the week's lock while it records its attempt, then lets the lock go; on
SQLite it removes the lock file first (a `transient` lock). The points, from the outside,
in this process only (the production code has no test hook):
- `recorded`: right after the attempt is committed (`send._record_attempt` returns): on
  SQLite before the lock file is removed, on PostgreSQL before the advisory unlock;
- `removed` (SQLite): right after the lock file is removed, before its `flock` is let go.
With `"hold": FOLDER` it does not die there: it touches `FOLDER/ready`, waits for
`FOLDER/go`, then finishes the send (a second sender starts meanwhile).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from vpt_tracker.cli import main as cli
from vpt_tracker.digest import send


def main() -> None:
    spec = json.loads(sys.argv[1])
    hold = Path(spec["hold"]) if spec.get("hold") else None

    def stop_here() -> None:
        if hold is None:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            return
        (hold / "ready").touch()
        deadline = time.monotonic() + 120
        while not (hold / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    if spec["point"] == "recorded":
        record = send._record_attempt

        def record_then_stop(*args: Any, **kwargs: Any) -> int:
            attempts = record(*args, **kwargs)
            stop_here()
            return attempts

        send._record_attempt = record_then_stop
    else:
        unlink = Path.unlink

        def unlink_then_stop(self: Path, missing_ok: bool = False) -> None:
            unlink(self, missing_ok)
            if self.name.endswith(f".digest-{spec['week']}.lock"):
                stop_here()

        Path.unlink = unlink_then_stop  # type: ignore[method-assign]
    args = ["--config", spec["config"], "--database", spec["db_url"]]
    args += ["digest", "send", "--week", spec["week"]]
    cli.main(args=args, prog_name="vpt-tracker", standalone_mode=False)
    print("sent" if hold is not None else "finished without reaching the kill point")


if __name__ == "__main__":
    main()
