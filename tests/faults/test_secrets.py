"""With a GitHub token and an SMTP password set, no command ever shows them.

Every command of `main.commands` (walked recursively, so a new command is covered the day
it is added) runs in a subprocess with `-vv` (debug logging) and minimal valid arguments,
against a store and a replay server on this machine. Neither secret may appear in its
stdout or stderr, nor in any file written under the data dir or the temp dir it used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from faults.helpers import LIST_FIXTURE, write_config
from vpt_tracker.cli import main
from vpt_tracker.replay import ReplayServer

TOKEN = "ghp_SECRETtoken0123456789abcdefABCDEF"
PASSWORD = "smtp-Pa55word-do-not-leak"
CLI = [sys.executable, "-c", "from vpt_tracker.cli import main; main()"]

# Minimal valid arguments per command; every other command runs with none.
ARGS: dict[str, list[str]] = {
    "catalogue import": [str(LIST_FIXTURE), "--preset", "awesome-vpt", "--name", "awesome-vpt"],
    "catalogue render": ["awesome-vpt"],
    "catalogue stats": ["awesome-vpt"],
    "catalogue check": [str(LIST_FIXTURE)],
    "catalogue enrich": ["awesome-vpt"],
    "fetch": ["arxiv_api"],
    "classify train": ["awesome-vpt"],
    "classify evaluate": ["awesome-vpt"],
    "classify replay": ["awesome-vpt"],
    "classify explain": ["1", "--catalogue", "awesome-vpt"],
    "classify enqueue": ["awesome-vpt"],
    "review accept": ["1"],
    "review reject": ["1", "--reason", "off-topic"],
    "review defer": ["1"],
    "review relabel": ["1", "--labels", "learnable"],
    "review bulk-reject": ["--below", "0.01", "--reason", "low"],
    "publish": ["awesome-vpt", "--dry-run"],
    "run backfill": ["--since", "2026-08-18", "--until", "2026-08-19"],
}
# Long-running services: only their help (they would run until stopped).
HELP_ONLY = {"serve", "demo"}


def leaf_commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            names.extend(leaf_commands(command, full))
        else:
            names.append(full)
    return names


def scan(folder: Path) -> list[str]:
    leaks = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if TOKEN.encode() in data or PASSWORD.encode() in data:
                leaks.append(str(path))
    return leaks


@pytest.mark.timeout(900)  # ~45 subprocesses: 3 min alone, over the default 300 s on a loaded machine
@pytest.mark.parametrize("database", ["sqlite"])
def test_no_command_shows_a_secret(tmp_path: Path, database: str) -> None:
    data_dir, temp = tmp_path / "data", tmp_path / "tmp"
    data_dir.mkdir()
    temp.mkdir()
    db_url = f"sqlite:///{data_dir / 'store.db'}"
    commands = leaf_commands(main)
    assert len(commands) >= 25 and "run nightly" in commands
    with ReplayServer() as replay:
        config = write_config(tmp_path / "vpt-tracker.toml", replay.urls(), db_url, data_dir)
        env = {
            **os.environ,
            "VPT_CONFIG": str(config),
            "VPT_GITHUB__TOKEN": TOKEN,
            "VPT_SMTP__PASSWORD": PASSWORD,
            "VPT_SMTP__USERNAME": "bot",
            "VPT_SMTP__HOST": "127.0.0.1",
            "VPT_SMTP__PORT": "9",  # nothing listens: `digest send` fails, and must not leak on failure
            "TMPDIR": str(temp),
            "HOME": str(tmp_path / "home"),
        }
        ran = []
        for name in [
            "init",
            "catalogue import",
            *[c for c in commands if c not in ("init", "catalogue import")],
        ]:
            args = ["--help"] if name in HELP_ONLY else ARGS.get(name, [])
            child = subprocess.run(
                [*CLI, "-vv", *name.split(), *args], env=env, capture_output=True, timeout=120, cwd=tmp_path
            )
            output = child.stdout + child.stderr
            assert TOKEN.encode() not in output and PASSWORD.encode() not in output, name
            assert child.returncode in (0, 1, 2, 75), (name, output.decode()[-1500:])
            ran.append((name, child.returncode))
    assert scan(tmp_path) == [], "a secret was written to a file"
    # The secrets were really loaded: `config show` masks them rather than leaving them out.
    shown = subprocess.run([*CLI, "config", "show"], env=env, capture_output=True, timeout=60, cwd=tmp_path)
    assert b"**********" in shown.stdout, shown.stdout.decode()[-500:]
    assert len(ran) == len(commands)
