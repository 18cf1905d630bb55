"""Crash safety: a nightly run SIGKILLed at 20 points; a rerun gives exactly a clean run's store.

The run goes through every source on the replay server (real HTTP), ingests, scores the
new papers against a catalogue with its shipped model, and enqueues. `crash_child.py`
kills it during fetch, inside an ingest transaction, between commits, between scoring and
writing candidates, and inside the run's final transaction. After each kill a rerun in this
process must complete, and papers, sightings and candidates must equal those of a run
that was never killed: nothing lost, nothing duplicated.

`classify train` is killed between the two renames that save a model and its card
(`train_crash_child.py`): loading the half-new pair must be refused, never used.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, select, text

from classify.store import store_catalogue
from faults.helpers import (
    NOW,
    RSS_DATE,
    Snapshot,
    child_env,
    crash_settings,
    import_crash_catalogue,
    snapshot,
    start_held,
)
from vpt_tracker.classify.data import read_jsonl
from vpt_tracker.classify.model import CARD_FILE, MODEL_FILE, CatalogueModel
from vpt_tracker.cli import main as cli
from vpt_tracker.config import Settings
from vpt_tracker.enqueue import load_model, train_catalogue
from vpt_tracker.errors import UserError
from vpt_tracker.locks import EX_TEMPFAIL
from vpt_tracker.models import RunOutcome
from vpt_tracker.pipeline import nightly
from vpt_tracker.replay import ReplayServer
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.migrate import alembic_config, upgrade
from vpt_tracker.store.tables import RunRow

TESTS = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("crash_child.py")
TRAIN_CHILD = Path(__file__).with_name("train_crash_child.py")
HOLD_CHILD = Path(__file__).with_name("train_hold_child.py")

# 20 points: 5 in fetch, 5 inside ingest transactions, 8 between commits, 1 in scoring, 1 at the end.
KILL_POINTS = [
    "http:1", "http:2", "http:3", "http:4", "http:5",
    "ingest:1", "ingest:2", "ingest:3", "ingest:4", "ingest:5",
    "commit:1", "commit:2", "commit:3", "commit:5", "commit:8", "commit:10", "commit:12", "commit:16",
    "score:1",
    "finish:1",
]  # fmt: skip
SURVIVED: list[str] = []


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(rss_date=RSS_DATE) as server:
        yield server


@pytest.fixture(scope="module")
def clean(replay: ReplayServer, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The store after one nightly run that nobody killed."""
    folder = tmp_path_factory.mktemp("clean")
    url = f"sqlite:///{folder / 'clean.db'}"
    engine = make_engine(url)
    upgrade(engine)
    import_crash_catalogue(engine)
    result = nightly(crash_settings(replay.urls(), url, folder), engine, now=NOW)
    assert result.outcome == RunOutcome.OK, result.errors
    state = snapshot(engine)
    engine.dispose()
    counts = state.counts()
    assert counts["papers"] > 200 and counts["sightings"] > 300 and counts["candidates"] > 0, counts
    return state


# PostgreSQL runs a spread subset (one per kind, plus a second fetch point): each kill
# costs a process start and two runs, and the suite must stay fast on a shared machine.
POSTGRES_POINTS = {"http:4", "ingest:3", "commit:8", "score:1", "finish:1"}


def wait_for_dead_sessions(engine: Engine, seconds: float = 15.0) -> None:
    """Wait until PostgreSQL has ended the killed child's sessions, and with them its
    advisory lock. The server learns of a dead client a moment after the kill; on a loaded
    machine the rerun could come first and be refused as "another run is in progress", which
    a nightly an hour later never meets."""
    if engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + seconds
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if not connection.execute(query).scalar():
                return
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("db_url", "kill"),
    [("sqlite", kill) for kill in KILL_POINTS]
    + [("postgresql", kill) for kill in KILL_POINTS if kill in POSTGRES_POINTS],
    indirect=["db_url"],
)
def test_sigkill_then_rerun_matches_a_clean_run(
    engine: Engine, db_url: str, tmp_path: Path, replay: ReplayServer, clean: Snapshot, kill: str
) -> None:
    import_crash_catalogue(engine)
    spec = {"urls": replay.urls(), "db_url": db_url, "data_dir": str(tmp_path), "kill": kill}
    child = subprocess.run(
        [sys.executable, str(CHILD), json.dumps(spec)], env=child_env(), capture_output=True, timeout=180
    )
    assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
    wait_for_dead_sessions(engine)

    later = NOW + timedelta(hours=1)
    result = nightly(crash_settings(replay.urls(), db_url, tmp_path), engine, now=later)
    assert result.outcome == RunOutcome.OK, result.errors
    after = snapshot(engine)
    assert after.counts() == clean.counts()
    assert after.papers == clean.papers
    assert after.sightings == clean.sightings
    assert after.candidates == clean.candidates
    with transaction(engine) as session:
        runs = session.scalars(select(RunRow).order_by(RunRow.id)).all()
        # The dead run, if it got as far as recording itself, is marked failed by the rerun.
        assert [row.outcome for row in runs][-1] == "ok"
        assert all(row.outcome in ("ok", "failed") for row in runs)
    SURVIVED.append(f"{db_url.split(':')[0]}:{kill}")


@pytest.mark.parametrize(
    ("db_url", "pages"),
    [("sqlite", 1), ("sqlite", 3), ("postgresql", 1)],
    indirect=["db_url"],
)
def test_ctrl_c_then_rerun_matches_a_clean_run(
    engine: Engine, db_url: str, tmp_path: Path, replay: ReplayServer, clean: Snapshot, pages: int
) -> None:
    """An exception (Ctrl-C here) is not a kill: the run marks itself failed on the way out.
    The rerun must still score the papers it stored, which are no longer new when fetched
    again; they used to be stored and never queued."""
    import_crash_catalogue(engine)
    settings = crash_settings(replay.urls(), db_url, tmp_path)
    stored: list[int] = []

    def interrupt(_source: str, records: int) -> None:
        stored.append(records)
        if len(stored) == pages:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nightly(settings, engine, now=NOW, progress=interrupt)
    assert sum(stored) > 0

    result = nightly(settings, engine, now=NOW + timedelta(hours=1))
    assert result.outcome == RunOutcome.OK, result.errors
    assert len(result.counts["recovered_runs"]) == 1
    after = snapshot(engine)
    assert after.counts() == clean.counts()
    assert after.papers == clean.papers and after.candidates == clean.candidates
    with transaction(engine) as session:
        crashed = session.scalars(select(RunRow).order_by(RunRow.id)).first()
        assert crashed is not None and crashed.outcome == "failed"
        assert crashed.errors == {"run": "interrupted (Ctrl-C)"}  # recovered: scored once


def catalogue_store(tmp_path: Path) -> tuple[str, Engine]:
    """A SQLite store holding catalogue `vpt` and the classify fixture papers, for the train
    children: its URL and an engine on it."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    fixtures = TESTS / "fixtures" / "classify"
    relevant, unlabeled = (list(read_jsonl(fixtures / f"{name}.jsonl")) for name in ("relevant", "unlabeled"))
    store_catalogue(engine, relevant, unlabeled)
    return url, engine


def test_sigkill_between_saving_a_model_and_its_card_is_refused_on_load(tmp_path: Path) -> None:
    """`classify train` saves the model and its card by two renames. Killed between them, it
    left a new model beside the old card (another model's thresholds, data hash and metrics),
    or the reverse, and scoring used the pair without a word. Loading now refuses the pair
    with one line that says to retrain, and the catalogue does not fall back to its preset's
    shipped default either."""
    url, engine = catalogue_store(tmp_path)
    settings = Settings(data_dir=tmp_path)
    _model, directory = train_catalogue(engine, "vpt", settings=settings)  # the old, consistent pair
    engine.dispose()
    before = {name: (directory / name).read_bytes() for name in (MODEL_FILE, CARD_FILE)}

    spec = {"db_url": url, "data_dir": str(tmp_path), "name": "vpt", "seed": 1}
    child = subprocess.run(
        [sys.executable, str(TRAIN_CHILD), json.dumps(spec)],
        env=child_env(),
        capture_output=True,
        timeout=180,
    )
    assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
    # Killed between the renames: one of the two files is the new run's, the other the old one.
    changed = [name for name, data in before.items() if (directory / name).read_bytes() != data]
    assert len(changed) == 1, changed

    refused = r"is not the model its card describes .*; retrain with `vpt-tracker classify train vpt`"
    with pytest.raises(UserError, match=refused) as caught:
        CatalogueModel.load(directory)
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match=refused):
        load_model(settings, "vpt", "awesome-vpt")
    # The file it had not renamed in yet is left; the next save removes it (it was left for
    # the maintainer to delete by hand), and saves a pair that loads.
    (left,) = directory.glob("*.tmp")
    assert left.name.startswith(f"{({MODEL_FILE, CARD_FILE} - set(changed)).pop()}.")
    _model.save(directory)
    assert not left.exists() and not list(directory.glob("*.tmp"))
    CatalogueModel.load(directory)


def test_a_second_train_of_the_same_catalogue_exits_75_while_the_first_runs(tmp_path: Path) -> None:
    """Two `classify train` runs of one catalogue wrote the same `*.tmp` names in its folder:
    one could rename the other's half-written file, or leave its model beside the other's
    card. The second now exits 75 with one line at once (as a second `run nightly` or
    `classify enqueue` does), and the first saves a consistent pair."""
    url, engine = catalogue_store(tmp_path)
    engine.dispose()
    hold = tmp_path / "hold"
    hold.mkdir()
    first = start_held(HOLD_CHILD, {"db_url": url, "data_dir": str(tmp_path), "name": "vpt"}, hold)
    try:
        second = CliRunner().invoke(
            cli,
            ["--database", url, "classify", "train", "vpt"],
            env={"VPT_DATA_DIR": str(tmp_path), "VPT_CONFIG": ""},
        )
    finally:
        (hold / "go").touch()
        out, err = first.communicate(timeout=180)
    assert first.returncode == 0, (out + err).decode()[-2000:]
    assert second.exit_code == EX_TEMPFAIL, second.output
    message = second.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith(
        "Error: another vpt-tracker train-vpt run is in progress"
    )
    directory = tmp_path / "classifiers" / "vpt"
    CatalogueModel.load(directory)
    assert not list(directory.glob("*.tmp*"))


MIGRATE_CHILD = Path(__file__).with_name("migrate_crash_child.py")


def schema(engine: Engine) -> dict[str, list[str]]:
    """Every table of the store with its columns, and the schema revision."""
    inspector = inspect(engine)
    tables = {
        name: sorted(c["name"] for c in inspector.get_columns(name)) for name in inspector.get_table_names()
    }
    with engine.connect() as connection:
        tables["revision"] = [
            str(row[0]) for row in connection.execute(text("SELECT version_num FROM alembic_version"))
        ]
    return tables


@pytest.mark.parametrize("tables", [1, 6, 12])  # 12: the table of migration 0005
def test_sigkill_while_the_schema_is_made_then_any_command_makes_it(
    db_url: str, tmp_path: Path, tables: int
) -> None:
    """On SQLite, Python's driver ran the migrations' CREATE TABLEs outside any transaction:
    killed part-way (the first `init`, or the first command on a new database), the store
    kept the tables made so far and no revision, and every command after that said
    `Error: the database refused the command: table catalogues already exists`, for good.
    The whole upgrade is now one transaction there too, as it was on PostgreSQL."""
    child = subprocess.run(
        [sys.executable, str(MIGRATE_CHILD), db_url, str(tables)],
        env=child_env(),
        capture_output=True,
        timeout=180,
    )
    assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
    engine = make_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []  # nothing of the killed upgrade is left
        result = CliRunner().invoke(
            cli, ["--database", db_url, "init"], env={"VPT_DATA_DIR": str(tmp_path), "VPT_CONFIG": ""}
        )
        assert result.exit_code == 0, result.output
        clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
        clean = make_engine(clean_url)
        upgrade(clean)
        assert schema(engine) == schema(clean)
        clean.dispose()
    finally:
        engine.dispose()


def test_two_commands_on_a_new_database_make_its_schema_one_after_the_other(
    db_url: str, tmp_path: Path
) -> None:
    """The first command on a new database makes its schema. Two at once (a service and a
    cron job after a deployment) both made the same tables: on SQLite the second found the
    first's tables already there (`Error: ... table catalogues already exists`, exit 2); on
    PostgreSQL it waited for the first's commit and failed the same way. The second now waits
    for the first, then finds the schema made."""
    hold = tmp_path / "hold"
    hold.mkdir()
    first = subprocess.Popen(
        [sys.executable, str(MIGRATE_CHILD), db_url, "1", str(hold)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (hold / "ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.Popen(
            [sys.executable, str(MIGRATE_CHILD), db_url, "0", str(hold)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        while not (hold / "started").exists():
            assert second.poll() is None and time.monotonic() < deadline, second.communicate()
            time.sleep(0.05)
        time.sleep(1.5)  # the second is at the schema now (it takes milliseconds to get there)
        (hold / "go").touch()
        out, err = second.communicate(timeout=120)
    finally:
        (hold / "go").touch()
        first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0 and first_out.decode().strip() == "upgraded", first_err.decode()[-2000:]
    assert second.returncode == 0 and out.decode().strip() == "upgraded", err.decode()[-2000:]
    engine = make_engine(db_url)
    assert len(schema(engine)["revision"]) == 1
    engine.dispose()


INGEST_CHILD = Path(__file__).with_name("ingest_crash_child.py")


@pytest.mark.parametrize("commits", [5, 8])  # after the first batch, after the fourth
def test_sigkill_of_ingest_jsonl_then_rerun_matches_a_clean_ingest(
    engine: Engine, db_url: str, tmp_path: Path, commits: int
) -> None:
    """`ingest-jsonl` commits batch by batch: killed after some, the rerun stores the rest and
    the store equals one ingest that was never killed. The killed run's row said `running`
    for ever (in `runs` and beside every later run); the next command that takes the
    pipeline lock now marks it failed, as a nightly run's."""
    files = [str(path) for path in sorted((TESTS / "fixtures" / "corpus").glob("*.jsonl"))[:2]]
    spec = {
        "db_url": db_url,
        "data_dir": str(tmp_path / "killed"),
        "files": files,
        "batch_size": 50,
        "kill": commits,
    }
    child = subprocess.run(
        [sys.executable, str(INGEST_CHILD), json.dumps(spec)],
        env=child_env(),
        capture_output=True,
        timeout=180,
    )
    assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
    env = {"VPT_DATA_DIR": str(tmp_path / "killed"), "VPT_CONFIG": ""}
    rerun = CliRunner().invoke(cli, ["--database", db_url, "ingest-jsonl", *files], env=env)
    assert rerun.exit_code == 0, rerun.output

    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    env = {"VPT_DATA_DIR": str(tmp_path / "clean"), "VPT_CONFIG": ""}
    assert CliRunner().invoke(cli, ["--database", clean_url, "ingest-jsonl", *files], env=env).exit_code == 0
    clean = make_engine(clean_url)
    expected = snapshot(clean)
    clean.dispose()
    after = snapshot(engine)
    assert after.papers == expected.papers and after.counts() == expected.counts()
    assert [s[:3] for s in after.sightings] == [s[:3] for s in expected.sightings]
    with transaction(engine) as session:
        runs = session.scalars(select(RunRow).order_by(RunRow.id)).all()
        assert [(row.kind, row.outcome) for row in runs] == [("ingest", "failed"), ("ingest", "ok")]
        assert runs[0].errors["run"] == "interrupted: the process died before finishing"
        assert runs[0].finished_at is not None


def test_a_model_read_while_train_saves_it_is_the_new_one(tmp_path: Path) -> None:
    """Scoring (a nightly run, `classify enqueue`) reads a catalogue's model and card; a
    `classify train` of it saves them by two renames. Read between the two, the pair was
    refused as if a train had been killed ("retrain"), and the run lost that catalogue's
    scoring. A reader that finds a mismatched pair while the train holds the folder's lock
    now waits for the save to end and reads the new pair."""
    url, engine = catalogue_store(tmp_path)
    settings = Settings(data_dir=tmp_path)
    _model, directory = train_catalogue(engine, "vpt", settings=settings)  # the old, consistent pair
    engine.dispose()
    hold = tmp_path / "hold"
    hold.mkdir()
    spec = {"db_url": url, "data_dir": str(tmp_path), "name": "vpt", "seed": 1}
    child = start_held(TRAIN_CHILD, spec, hold)
    loaded: dict[str, object] = {}
    try:

        def read() -> None:
            try:
                loaded["model"] = CatalogueModel.load(directory)
            except UserError as exc:
                loaded["model"] = exc

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=1.0)  # refused at once before; now it waits for the save
        (hold / "go").touch()
        reader.join(timeout=60)
    finally:
        (hold / "go").touch()
        out, err = child.communicate(timeout=180)
    assert child.returncode == 0 and out.decode().splitlines()[-1] == "saved", err.decode()[-2000:]
    model = loaded.get("model")
    assert isinstance(model, CatalogueModel), model
    assert model.card == json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))


# Titles whose keys and title-named sighting ids 0008 and 0009 fold again, as stored before.
E2VPT = "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"
SMART = r"SmartPrompt v$_3$: Visual Prompt Tuning for Frozen Backbones"
FOLDED_BEFORE_0008 = {
    E2VPT: "e 2vpt an effective and efficient approach for visual prompt tuning",
    SMART: "smartprompt v 3 visual prompt tuning for frozen backbones",
}


def store_before_the_rekeys(engine: Engine, revision: str) -> None:
    """A store at `revision` (0007 or 0008) with what 0008 and 0009 change: papers' and an
    entry's title keys folded the old way (left so at 0008 only where 0008 would not change
    them, as none is), a dump's and a list's title-named sightings under their old ids, and
    the second sightings that reruns stored under the new ids."""
    from dataclasses import replace

    from vpt_tracker.dumps import corpus_record
    from vpt_tracker.enrich import _Entry, _entry_record
    from vpt_tracker.ingest import ingest_records
    from vpt_tracker.normalize import title_key
    from vpt_tracker.store.tables import CatalogueRow, EntryRow, PaperRow

    upgrade(engine, revision)
    dump = corpus_record({"title": E2VPT, "authors": ["Cheng Han"], "summary": "E."}, "d:1")
    listed = _entry_record("vpt", _Entry(1, SMART, title_key(SMART), None, "ICLR 2025", 2025, None, None), [])
    plain = corpus_record({"title": "Plain Prompts", "authors": ["Ann Bee"], "summary": "P."}, "d:2")
    old = [
        replace(dump, source_id=f"{FOLDED_BEFORE_0008[E2VPT]}|han"),
        replace(listed, source_id=f"vpt:{FOLDED_BEFORE_0008[SMART]}"),
        plain,
    ]
    ingest_records(engine, old)
    ingest_records(engine, [dump, listed])  # the second sightings that 0009 removes
    with transaction(engine) as session:
        catalogue = CatalogueRow(name="vpt", source_text="", source_sha256="0")
        session.add(catalogue)
        session.flush()
        for position, (title, key) in enumerate(FOLDED_BEFORE_0008.items()):
            session.add(EntryRow(catalogue_id=catalogue.id, position=position, title=title, title_key=key))
            if revision == "0007":
                paper = session.scalar(select(PaperRow).where(PaperRow.title == title))
                assert paper is not None
                paper.title_key = key


def rekeyed_state(engine: Engine) -> dict[str, object]:
    """What 0008 and 0009 change, without ids: the revision, the identity generation, the
    papers' and entries' keys, and each sighting (its paper's title, id, hash, payload)."""
    from vpt_tracker.store.tables import EntryRow, IdentityGenerationRow, PaperRow, SightingRow

    with transaction(engine) as session:
        titles = {paper.id: paper.title for paper in session.scalars(select(PaperRow))}
        return {
            "revision": schema(engine)["revision"],
            "generation": session.scalar(select(IdentityGenerationRow.generation)),
            "papers": sorted((p.title, p.title_key) for p in session.scalars(select(PaperRow))),
            "entries": sorted((e.title, e.title_key) for e in session.scalars(select(EntryRow))),
            "sightings": sorted(
                (
                    titles[s.paper_id],
                    s.source,
                    s.source_id,
                    s.payload_hash,
                    json.dumps(s.payload, sort_keys=True),
                )
                for s in session.scalars(select(SightingRow))
            ),
        }


# Kill points inside the data migrations, from a store at 0008 (in 0009) and at 0007 (in
# 0008, and in 0009 after 0008 ran in the same upgrade); each migration ends by stamping its
# revision, and the whole upgrade (to the head, past 0009) commits once.
REKEY_KILLS = [
    ("0008", "DELETE FROM sightings:1"),  # 0009: the second sightings deleted, none renamed yet
    ("0008", "UPDATE sightings:1"),  # 0009: every rename done
    ("0008", "UPDATE alembic_version:1"),  # stamped 0009, not committed
    ("0007", "UPDATE papers:1"),  # 0008: papers re-keyed, entries and identity generation not yet
    ("0007", "DELETE FROM sightings:1"),  # 0008 done and stamped, inside 0009
]


@pytest.mark.parametrize(("start", "kill"), REKEY_KILLS)
def test_sigkill_inside_a_rekeying_migration_leaves_the_store_as_it_was(
    db_url: str, tmp_path: Path, start: str, kill: str
) -> None:
    """Migrations 0008 and 0009 rewrite rows (title keys, sightings' ids, payloads and hashes,
    duplicates deleted), not only the schema. Killed anywhere in them, the store must be at
    its old revision with its rows untouched, never half re-keyed (a second run of 0009 over
    half-renamed sightings would keep both of a pair, or re-key a key already re-keyed); and
    the next `init` must complete the upgrade to the store that a never-killed one makes.
    (The whole upgrade is one transaction, so a kill leaves the revision it started from.)"""
    engine = make_engine(db_url)
    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    try:
        store_before_the_rekeys(engine, start)
        before = rekeyed_state(engine)
        assert before["revision"] == [start]
        store_before_the_rekeys(clean, start)
        upgrade(clean)
        expected = rekeyed_state(clean)
        head = ScriptDirectory.from_config(alembic_config(clean)).get_current_head()
        assert expected != before and expected["revision"] == [head]
        engine.dispose()  # the child is alone on the database, as a killed `init` would be

        child = subprocess.run(
            [sys.executable, str(MIGRATE_CHILD), db_url, kill],
            env=child_env(),
            capture_output=True,
            timeout=180,
        )
        assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
        assert rekeyed_state(engine) == before

        result = CliRunner().invoke(
            cli, ["--database", db_url, "init"], env={"VPT_DATA_DIR": str(tmp_path), "VPT_CONFIG": ""}
        )
        assert result.exit_code == 0, result.output
        assert rekeyed_state(engine) == expected
    finally:
        engine.dispose()
        clean.dispose()


# Kill points inside 0013's rebuild of `catalogues` on SQLite (copy, drop, rename), from a
# store at 0012 with catalogues and rows that point at them.
REBUILD_KILLS = [
    "INSERT INTO _alembic_tmp_catalogues:1",  # the rows copied into the new table
    "DROP TABLE catalogues:1",  # the old table gone, the new one not yet renamed
    "ALTER TABLE _alembic_tmp_catalogues:1",  # renamed, not stamped
    "UPDATE alembic_version:1",  # stamped 0013, not committed
]


def catalogues_state(engine: Engine) -> dict[str, object]:
    """What 0013 changes and must keep: the revision, `catalogues`' definition and rows, and
    the rows that point at them."""
    with engine.connect() as connection:
        return {
            "revision": schema(engine)["revision"],
            "definition": connection.execute(
                text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'catalogues'")
            ).all(),
            "catalogues": connection.execute(
                text("SELECT id, name, source_sha256 FROM catalogues ORDER BY id")
            ).all(),
            "entries": connection.execute(
                text("SELECT id, catalogue_id, title FROM entries ORDER BY id")
            ).all(),
            "tables": sorted(inspect(engine).get_table_names()),
        }


@pytest.mark.parametrize("kill", REBUILD_KILLS)
def test_sigkill_inside_the_rebuild_of_catalogues_leaves_the_store_as_it_was(
    tmp_path: Path, kill: str
) -> None:
    """0013 rebuilds `catalogues` on SQLite (AUTOINCREMENT can only be declared when a table
    is made): killed anywhere in the copy, drop and rename, the store is at 0012 with the old
    table and every row, never without a `catalogues` table or with the temporary one left; the
    next `init` finishes the upgrade. (PostgreSQL: nothing is rebuilt.)"""
    from vpt_tracker.store.tables import CatalogueRow, EntryRow

    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    try:
        for store in (engine, clean):
            upgrade(store, "0012")
            with transaction(store) as session:
                catalogues = [CatalogueRow(name=n, source_text="", source_sha256=n) for n in ("a", "b")]
                session.add_all(catalogues)
                session.flush()
                session.add(EntryRow(catalogue_id=catalogues[1].id, position=0, title="t", title_key="t"))
        before = catalogues_state(engine)
        upgrade(clean)
        expected = catalogues_state(clean)
        assert expected != before and expected["revision"] != before["revision"]
        engine.dispose()

        child = subprocess.run(
            [sys.executable, str(MIGRATE_CHILD), url, kill],
            env=child_env(),
            capture_output=True,
            timeout=180,
        )
        assert child.returncode == -signal.SIGKILL, (child.stdout + child.stderr).decode()[-2000:]
        assert catalogues_state(engine) == before

        result = CliRunner().invoke(
            cli, ["--database", url, "init"], env={"VPT_DATA_DIR": str(tmp_path), "VPT_CONFIG": ""}
        )
        assert result.exit_code == 0, result.output
        assert catalogues_state(engine) == expected
    finally:
        engine.dispose()
        clean.dispose()
