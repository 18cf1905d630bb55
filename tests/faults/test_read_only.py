"""Lock files that cannot be written: another user's, or in a folder closed to writing.

The SQLite lock is `flock` on a file beside the database (`vpt_tracker.locks`). The
children run with file permissions enforced even as root (`unprivileged.run_cli`).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from unprivileged import run_cli
from vpt_tracker.cli import main

CORPUS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "corpus").glob("*.jsonl"))


def new_store(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'store.db'}"
    assert CliRunner().invoke(main, ["--database", url, "init"]).exit_code == 0
    return folder, url


def test_a_lock_file_made_by_another_user_still_locks(tmp_path: Path) -> None:
    """The service made `store.db.pipeline.lock` (mode 644, its own); a maintainer of its
    group runs a command beside it. The lock file was opened for writing only, and every
    command that takes the lock ended in `PermissionError` (a traceback). `flock` needs no
    write access: the file is now opened read-only when it cannot be opened for writing."""
    folder, url = new_store(tmp_path)
    lock = folder / "store.db.pipeline.lock"
    lock.write_text("4242\n")
    lock.chmod(0o444)  # nobody may write it, its owner included (root without DAC override)
    env = {"VPT_CONFIG": "", "VPT_DATA_DIR": str(tmp_path / "data")}
    result = run_cli("--database", url, "ingest-jsonl", str(CORPUS[0]), env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "new papers" in result.stdout


def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    """Something that is no file where the lock file goes (here a folder: the kernel says
    EISDIR) was an `IsADirectoryError` traceback from every command that takes the lock."""
    folder, url = new_store(tmp_path)
    lock = folder / "store.db.pipeline.lock"
    lock.mkdir()
    env = {"VPT_CONFIG": "", "VPT_DATA_DIR": str(tmp_path / "data")}
    result = run_cli("--database", url, "ingest-jsonl", str(CORPUS[0]), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"Error: cannot take the pipeline lock {lock}: Is a directory\n"
