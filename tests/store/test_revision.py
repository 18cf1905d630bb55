"""`python -m vpt_tracker.store.revision "message"`, the README's way to write a migration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from vpt_tracker.store import migrate, revision


@pytest.fixture
def migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of db/ for the command to write into: the checkout's stays as it is."""
    copy = tmp_path / "db"
    shutil.copytree(migrate.migrations_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "migrations_dir", lambda: copy)
    return copy


def _head(folder: Path) -> str:
    config = Config()
    config.set_main_option("script_location", str(folder))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_a_revision_is_numbered_after_the_head(migrations: Path) -> None:
    """Alembic's own id was random hex (`4a3e14cd9ec7_….py`), out of the `00NN_….py` order."""
    head = _head(migrations)
    expected = f"{int(head) + 1:04d}"
    assert revision.main(["index papers by doi"]) == 0
    written = migrations / "versions" / f"{expected}_index_papers_by_doi.py"
    assert written.is_file(), sorted(p.name for p in (migrations / "versions").iterdir())
    text = written.read_text()
    assert f"revision = {expected!r}" in text and f"down_revision = {head!r}" in text
    assert _head(migrations) == expected


def test_help_writes_no_migration(migrations: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` was taken for the message and wrote `<hex>_help.py` into db/versions."""
    before = sorted((migrations / "versions").iterdir())
    with pytest.raises(SystemExit) as exit_:
        revision.main(["--help"])
    assert exit_.value.code == 0
    assert "message" in capsys.readouterr().out
    assert sorted((migrations / "versions").iterdir()) == before
