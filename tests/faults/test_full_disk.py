"""A full disk under the data folder's `cache/`: what only saves work must not fail a command.

The identity index snapshot and its journal (`ingest._IndexCache`) are a cache: a run whose
records are committed has done its work. The faults are real: the journal is a link to
`/dev/full` (every write fails with ENOSPC, from the kernel), or a file stands where the
`cache` folder should be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from vpt_tracker.store import transaction
from vpt_tracker.store.tables import PaperRow, RunRow

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "corpus").glob("*.jsonl"))
CLI = [sys.executable, "-c", "from vpt_tracker.cli import main; main()"]


def ingest_jsonl(db_url: str, data_dir: Path, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VPT_DATA_DIR": str(data_dir), "VPT_CONFIG": ""}
    command = [*CLI, "--database", db_url, "ingest-jsonl", str(path), "--json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def runs(engine: Engine) -> list[tuple[str, str | None, dict[str, str]]]:
    with transaction(engine) as session:
        rows = session.scalars(select(RunRow).order_by(RunRow.id)).all()
        return [(row.kind, row.outcome, row.errors) for row in rows]


def papers(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count(PaperRow.id))) or 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_ingest_jsonl_succeeds_when_the_index_journal_hits_a_full_disk(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """The records were committed, but `ingest-jsonl` ended in a traceback, exit 1, and
    its run was recorded `failed` (`OSError: [Errno 28] No space left on device`), as
    if nothing had been stored. `run nightly` already carried on past it."""
    first = ingest_jsonl(db_url, tmp_path, CORPUS[0])
    assert first.returncode == 0, first.stderr
    (snapshot,) = (tmp_path / "cache").glob("identity-index-*.pickle")
    snapshot.with_suffix(".journal").symlink_to("/dev/full")  # the next save appends to it

    second = ingest_jsonl(db_url, tmp_path, CORPUS[1])
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert json.loads(second.stdout)["new_papers"] > 0
    assert "could not save the identity index" in second.stderr
    assert [(kind, outcome, errors) for kind, outcome, errors in runs(engine)] == [
        ("ingest", "ok", {}),
        ("ingest", "ok", {}),
    ]

    # The disk has room again: the next command starts from the store, and finds every
    # paper of the second file already stored (nothing lost, nothing duplicated).
    snapshot.with_suffix(".journal").unlink()
    stored = papers(engine)
    third = ingest_jsonl(db_url, tmp_path, CORPUS[1])
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["new_papers"] == 0 and papers(engine) == stored


def test_ingest_jsonl_succeeds_when_the_cache_folder_cannot_be_made(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "cache").write_text("not a folder\n", encoding="utf-8")
    result = ingest_jsonl(db_url, tmp_path, CORPUS[0])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "could not save the identity index" in result.stderr
    assert [outcome for _kind, outcome, _errors in runs(engine)] == ["ok"]
    assert papers(engine) > 0


APPEND_CHILD = """
import resource, signal, sys
from pathlib import Path
from vpt_tracker.ingest import _append_whole
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    _append_whole(Path(sys.argv[1]), b"y" * 100_000)
except OSError as exc:
    print(exc.errno)
"""


def test_a_journal_record_cut_short_is_cut_off(tmp_path: Path) -> None:
    """A record the disk took only part of was left at the journal's end: every record
    appended after it was unreadable, so each later run rebuilt the index from the store.
    The kernel's file size limit (RLIMIT_FSIZE) makes the write stop part-way, for real."""
    journal = tmp_path / "identity-index-0.journal"
    journal.write_bytes(b"x" * 1000)
    child = subprocess.run(
        [sys.executable, "-c", APPEND_CHILD, str(journal), "5000"], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "27"  # EFBIG: the write was refused after 4,000 bytes
    assert journal.read_bytes() == b"x" * 1000


SAVE_CHILD = """
import logging, resource, signal, sys
from pathlib import Path
from vpt_tracker.dumps import read_dump
from vpt_tracker.ingest import ingest_records, keep_index_between_runs, save_index
from vpt_tracker.store import make_engine
logging.basicConfig(level=logging.WARNING)
engine = make_engine(sys.argv[1])
keep_index_between_runs(Path(sys.argv[2]))
ingest_records(engine, read_dump(Path(sys.argv[3])))  # committed
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))  # the snapshot is larger
print(save_index(engine))
"""


def test_a_snapshot_that_cannot_be_written_leaves_no_temporary_file(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A rewrite of the snapshot that fails part-way (the kernel's file size limit stops it,
    as a full disk would) removes its temporary file: it stayed, filling the disk further."""
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", SAVE_CHILD, db_url, str(cache), str(CORPUS[0])]
    child = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "False"  # not saved, and said so in a warning
    assert "could not save the identity index snapshot" in child.stderr
    assert sorted(path.name for path in cache.iterdir()) == []
    assert papers(engine) > 0
