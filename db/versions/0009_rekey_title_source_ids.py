"""re-key the source ids of sightings that are named by a folded title

Two kinds of sighting have no id of their own and are named by the folded title:
`catalogue enrich`'s own sighting of an entry ("catalogue", "<catalogue>:<title key>") and an
`ingest-jsonl` record without an arXiv id ("jsonl", "<title key>|<first author key>"). The
id is in the sighting's payload too, so it is part of the payload hash. 0004 and 0008 folded
the papers' and entries' title keys again but left these ids as they were: a rerun of the
same source after the upgrade named the record the new way, did not find it stored, and
added a second sighting of it to the paper.

Each such sighting is named again with the folding of this revision (its source id, the id
in its payload and its payload hash), so that a rerun finds it. Where that makes it the same
sighting as another one of the same paper (the second sighting such a rerun added, or one
stored under an older folding still), the earliest is kept and the others are deleted: they
are the same record, and nothing refers to a sighting by its id. The same sighting on two
papers (a split put them apart) is not merged: the one already named the new way, or else
the earliest, takes the name and the others keep theirs, so that no paper loses a sighting.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

from vpt_tracker.normalize import first_author_key, title_key

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID_LENGTH = 512  # sightings.source_id is String(512); ingestion cuts longer ids there
TITLE_LENGTH = 400  # both kinds of id take the first 400 characters of the title key
CATALOGUE = "catalogue"  # enrich.CATALOGUE_SOURCE
JSONL = "jsonl"  # dumps.JSONL_SOURCE


class _Sighting(NamedTuple):  # not a dataclass: alembic loads this file as no module
    id: int
    paper_id: int
    source: str
    source_id: str
    payload_hash: str
    payload: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.source, self.source_id, self.payload_hash


def _name(source: str, source_id: str, payload: dict[str, Any]) -> str:
    """The id that `catalogue enrich` or `ingest-jsonl` gives this record today."""
    folded = title_key(payload.get("title") or "")[:TITLE_LENGTH]
    if source == CATALOGUE:
        catalogue = source_id.rpartition(":")[0]  # a title key holds no colon
        return f"{catalogue}:{folded}"[:ID_LENGTH]
    return f"{folded}|{first_author_key(payload.get('authors') or [])}"[:ID_LENGTH]


def _payload_hash(payload: dict[str, Any]) -> str:
    """`RawRecord.payload_hash` of the record the payload was made from."""
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _renamed(sighting: _Sighting) -> _Sighting:
    source_id = _name(sighting.source, sighting.source_id, sighting.payload)
    if source_id == sighting.source_id:
        return sighting
    payload = {**sighting.payload, "source_id": source_id}
    return sighting._replace(source_id=source_id, payload_hash=_payload_hash(payload), payload=payload)


def _plan(sightings: Iterable[_Sighting]) -> tuple[list[int], list[_Sighting]]:
    """The sightings to delete (ids) and those to rename (with their new name)."""
    groups: dict[tuple[str, str, str], list[tuple[_Sighting, _Sighting]]] = {}
    for old in sightings:
        new = _renamed(old)
        groups.setdefault(new.key, []).append((old, new))
    deleted: list[int] = []
    renamed: list[_Sighting] = []
    for key, members in groups.items():
        members.sort(key=lambda pair: pair[0].id)  # ids are given in order and never again (0006)
        kept: dict[int, tuple[_Sighting, _Sighting]] = {}  # paper id -> its earliest
        for old, new in members:
            if old.paper_id in kept:
                deleted.append(old.id)
            else:
                kept[old.paper_id] = (old, new)
        holders = [pair for pair in kept.values() if pair[0].key == key]
        old, new = (holders or list(kept.values()))[0]  # one paper's sighting takes the name
        if old.key != key:
            renamed.append(new)
    return deleted, renamed


def upgrade() -> None:
    connection = op.get_bind()
    sightings = sa.table(
        "sightings",
        sa.column("id", sa.Integer),
        sa.column("paper_id", sa.Integer),
        sa.column("source", sa.String),
        sa.column("source_id", sa.String),
        sa.column("payload_hash", sa.String),
        sa.column("payload", sa.JSON),
    )
    named_by_title = sa.or_(
        sightings.c.source == CATALOGUE,
        # An arXiv id never holds "|"; the title-named ids always do.
        sa.and_(sightings.c.source == JSONL, sightings.c.source_id.contains("|", autoescape=True)),
    )
    rows = connection.execute(
        sa.select(
            sightings.c.id, sightings.c.paper_id, sightings.c.source, sightings.c.source_id,
            sightings.c.payload_hash, sightings.c.payload,
        ).where(named_by_title)
    )
    deleted, renamed = _plan(_Sighting(*row[:5], row[5] or {}) for row in rows)
    # Deleted first: a kept sighting may take the name of one that goes.
    for start in range(0, len(deleted), 500):
        connection.execute(sightings.delete().where(sightings.c.id.in_(deleted[start : start + 500])))
    if renamed:
        statement = sightings.update().where(sightings.c.id == sa.bindparam("row_id"))
        connection.execute(
            statement.values(
                source_id=sa.bindparam("new_id"),
                payload_hash=sa.bindparam("new_hash"),
                payload=sa.bindparam("new_payload", type_=sa.JSON),
            ),
            [
                {"row_id": s.id, "new_id": s.source_id, "new_hash": s.payload_hash, "new_payload": s.payload}
                for s in renamed
            ],
        )


def downgrade() -> None:
    """Nothing to undo: the old ids came from the old folding, which this code no longer has."""
