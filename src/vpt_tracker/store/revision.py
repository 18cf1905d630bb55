"""Autogenerate a migration: `python -m vpt_tracker.store.revision "message"`.

It upgrades a scratch SQLite database to head and diffs the models against it, so that
a developer never needs a running server or an alembic.ini to write a migration.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from vpt_tracker.store.db import make_engine
from vpt_tracker.store.migrate import alembic_config, upgrade


def next_revision_id(script: ScriptDirectory) -> str:
    """The id after the head, in the migrations' numbering (`0010` → `0011`): Alembic's own
    ids are random hex (`4a3e14cd9ec7_…py`), out of order among `db/versions/00NN_…py`."""
    heads = script.get_heads()
    if len(heads) != 1 or not heads[0].isdigit():
        raise SystemExit(f"error: expected one numbered head revision, found {', '.join(heads) or 'none'}")
    return f"{int(heads[0]) + 1:04d}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpt_tracker.store.revision",
        description="Write db/versions/<next id>_<message>.py from the difference between "
        "store/tables.py and the migrations.",
    )
    # argparse, so that `--help` is help: it was taken for the message and wrote a migration.
    parser.add_argument("message", help='what changed, e.g. "index papers by doi"')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        upgrade(engine)
        config = alembic_config(engine)
        rev_id = next_revision_id(ScriptDirectory.from_config(config))
        command.revision(config, message=args.message, autogenerate=True, rev_id=rev_id)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
