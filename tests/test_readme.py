"""The README documents every command, and opens with the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

import click

from vpt_tracker.cli import main

# "vpt-tracker", optional global options, then the command path.
INVOCATION = r"vpt-tracker (?:\[[^\]]*\] )?(?:--\S+ \S+ )*"
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        paths.append(path)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
    return paths


def test_every_command_is_documented() -> None:
    missing = [
        " ".join(path)
        for path in command_paths(main)
        if not re.search(INVOCATION + re.escape(" ".join(path)) + r"\b", README)
    ]
    assert missing == []


def test_every_command_has_help() -> None:
    for path in command_paths(main):
        command: click.Command = main
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        assert command.help or command.short_help, f"{' '.join(path)} has no help text"


def test_readme_opens_with_the_two_setup_commands() -> None:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("vpt-tracker demo")
    assert lines[1].endswith(".venv/bin/pytest")
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert lines[1].split("&& ", 1)[1] in ci
