"""Autogenerate a migration: `python -m vpt_tracker.store.revision "message"`.

It upgrades a scratch SQLite database to head and diffs the models against it, so that
a developer never needs a running server or an alembic.ini to write a migration.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from vpt_tracker.store.db import make_engine
from vpt_tracker.store.migrate import alembic_config, upgrade


def main(argv: list[str]) -> int:
    if not argv:
        print('usage: python -m vpt_tracker.store.revision "message"', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        upgrade(engine)
        command.revision(alembic_config(engine), message=argv[0], autogenerate=True)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
