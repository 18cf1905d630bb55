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


def test_every_option_has_help() -> None:
    # `runs --last`, `classify evaluate/replay --seed` and `classify explain --top/--json`
    # showed in `--help` as a bare name and range: what the number counts was not said.
    bare = []
    for path in [(), *command_paths(main)]:
        command: click.Command = main
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                bare.append(f"{' '.join(path)} {param.opts[0]}")
    assert bare == []


def test_readme_opens_with_the_two_setup_commands() -> None:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("vpt-tracker demo")
    assert lines[1].endswith(".venv/bin/pytest")
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert lines[1].split("&& ", 1)[1] in ci


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces to
    hyphens, and a repeated heading numbered (`limits`, `limits-1`, …)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} (.+)", line)
        if match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_links_between_the_documents_resolve() -> None:
    """A section moved from the README to docs/ (or renamed) must not leave a dead link behind."""
    root = Path(__file__).resolve().parents[1]
    documents = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    dead = []
    for document in documents:
        text = document.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s:]*\.md|)(?:#([^)\s]+))?\)", text):
            linked = (document.parent / target).resolve() if target else document
            if not linked.exists() or (
                anchor and anchor not in heading_anchors(linked.read_text(encoding="utf-8"))
            ):
                dead.append(f"{document.relative_to(root)}: {target}#{anchor}")
    assert dead == []


def test_every_crontab_line_names_its_config() -> None:
    """cron runs in $HOME, where there is no ./vpt-tracker.toml, and vpt-tracker does not read
    /etc/vpt-tracker.toml by itself: a line without `VPT_CONFIG` or `--config` ran on the defaults
    (`0 8 * * mon vpt-tracker digest send`: no recipients, the default database)."""
    lines = re.findall(r"`((?:[0-9*/,a-z-]+ ){5} *[^`\n]*vpt-tracker [^`\n]*)`", README)
    lines += re.findall(r"^((?:[0-9*/,a-z-]+ ){5} *\S*vpt-tracker[^\n]*)$", README, re.MULTILINE)
    assert len(lines) >= 2, lines
    assert [line for line in lines if "VPT_CONFIG=" not in line and "--config" not in line] == []
