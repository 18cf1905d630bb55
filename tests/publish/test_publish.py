"""`vpt-tracker publish` end to end: a real list, a bare git remote, the GitHub stand-in."""

from __future__ import annotations

import difflib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.cli import main
from vpt_tracker.config import load_settings
from vpt_tracker.digest.build import Week, build_digest
from vpt_tracker.locks import exclusive
from vpt_tracker.publish.publisher import Publisher, UpstreamChanged
from vpt_tracker.review.queue import ReviewQueue
from vpt_tracker.store import session_factory, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, EntryRow, PullRequestRow

from .conftest import (
    CATALOGUE,
    OWNER,
    README_0606,
    README_0624,
    REPO,
    TOKEN,
    FakeGithub,
    Remote,
    accept,
    accept_inpainting,
    accept_plot,
    accept_two,
    import_list,
    write_config,
)

BRANCH = f"vpt-tracker/{CATALOGUE}"
PLOT = "PLOT: Prompt Learning with Optimal Transport for Vision-Language Models"
ADAPTIVE = "Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning"

# The `cli` fixture: runs `vpt-tracker <args>` against the test config and database.
Cli = Callable[..., Result]


@pytest.fixture
def cli(
    tmp_path: Path, db_url: str, github: FakeGithub, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("VPT_GITHUB__TOKEN", TOKEN)
    monkeypatch.delenv("VPT_CONFIG", raising=False)
    config = write_config(tmp_path, github, remote)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(config), "--database", db_url, *args])

    return run


def statuses(engine: Engine) -> dict[int, str]:
    with session_factory(engine)() as session:
        return {c.id: c.status for c in session.scalars(select(CandidateRow))}


def db_snapshot(engine: Engine) -> tuple:
    with session_factory(engine)() as session:
        entries = [(e.id, e.state, e.venue, e.year, e.raw) for e in session.scalars(select(EntryRow))]
        rows = session.scalars(select(CandidateRow))
        candidates = [(c.id, c.status, c.version, c.published_at) for c in rows]
        catalogue = [(c.source_sha256, c.upstream_commit) for c in session.scalars(select(CatalogueRow))]
        pulls = session.scalar(select(func.count()).select_from(PullRequestRow))
    return entries, candidates, catalogue, pulls


def added_and_removed(remote: Remote, branch: str = BRANCH) -> tuple[list[str], list[str]]:
    diff = subprocess.run(
        ["git", "diff", "--unified=0", "main", branch, "--", "README.md"],
        cwd=remote.bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    return added, removed


def test_publish_opens_one_pull_request_and_reruns_idempotently(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    new_id, upgrade_id = accept_two(engine)

    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "opened pull request #1" in result.output

    # The pushed README: one new row in the token-level table, one line changed in place.
    added, removed = added_and_removed(remote)
    assert removed == [
        "| [Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning](https://arxiv.org/abs/2411.01327)"
        " | arXiv | 2025 | [Github](https://github.com/runtsang/VFPT) |"
    ]
    assert (
        "| [Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning](https://arxiv.org/abs/2411.01327)"
        " | ICML | 2025 | [Github](https://github.com/runtsang/VFPT) |" in added
    )
    plot_rows = [line for line in added if "2210.01253" in line]
    assert len(plot_rows) == 1 and "| ICLR | 2023 |" in plot_rows[0]
    assert "https://github.com/CHENGY12/PLOT" in plot_rows[0]
    pushed = remote.show(BRANCH)
    doc = parse(pushed)
    plot = next(e for e in doc.entries if e.arxiv_id == "2210.01253")
    assert plot.section_path[-1] == "Token-Level"
    assert len(doc.entries) == len(parse(README_0624.read_text()).entries) + 1
    assert remote.show("main") == README_0624.read_text()  # the base branch is never touched

    # The PR: from our branch, into main, body listing both changes with scores and decisions.
    assert len(github.pulls) == 1
    pull = github.pulls[0]
    assert (pull["head"], pull["base"]) == (BRANCH, "main")
    body = pull["body"]
    assert "### Added (1)" in body and "### Venue updates (1)" in body
    assert "PLOT: Prompt Learning with Optimal Transport" in body
    assert "labels: learnable, token" in body
    assert "relevance 0.91" in body and "learnable 0.88" in body
    assert "decision: accept by alice on 2026-11-20 09:30 UTC: optimal-transport prompts" in body
    assert "arXiv 2025 → ICML 2025" in body and "decision: accept by bob" in body
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in github.requests)
    assert github.calls("GET", r"/pulls$")[0].query["head"] == [f"{OWNER}:{BRANCH}"]

    # Only now are the candidates published.
    assert statuses(engine) == {new_id: "published", upgrade_id: "published"}
    with session_factory(engine)() as session:
        row = session.scalars(select(PullRequestRow)).one()
        assert (row.number, row.branch, row.state) == (1, BRANCH, "open")
        assert row.head_sha == remote.sha(BRANCH)

    # Rerun: no second pull request, the branch unchanged, the body edited in place.
    head_before = remote.sha(BRANCH)
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0, again.output
    assert "updated pull request #1" in again.output
    assert len(github.pulls) == 1 and len(github.calls("POST", r"/pulls$")) == 1
    assert len(github.calls("PATCH", r"/pulls/1$")) == 1
    assert remote.sha(BRANCH) == head_before

    # A third accepted paper later: the same branch moves forward, the same PR is edited.
    third = accept_inpainting(engine, {"generative": 0.9})
    later = cli("publish", CATALOGUE)
    assert later.exit_code == 0, later.output
    assert len(github.open_pulls()) == 1
    assert "### Added (2)" in github.pulls[0]["body"]
    assert (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", cast(str, head_before), BRANCH], cwd=remote.bare
        ).returncode
        == 0
    )  # a fast-forward, not a rewrite
    assert statuses(engine)[third] == "published"


def test_dry_run_prints_diff_and_pull_text_and_changes_nothing(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    accept_two(engine)
    before_db, before_refs = db_snapshot(engine), remote.refs()

    result = cli("publish", CATALOGUE, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "--- a/README.md" in result.output and "+++ b/README.md" in result.output
    assert "-| [Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning]" in result.output
    assert "+| [PLOT: Prompt Learning with Optimal Transport" in result.output
    assert "--- pull request ---" in result.output and "### Venue updates (1)" in result.output

    assert db_snapshot(engine) == before_db
    assert remote.refs() == before_refs
    assert github.requests == []


def test_dry_run_diff_shows_only_the_lines_that_change(cli: Cli, engine: Engine, github: FakeGithub) -> None:
    # The list's last row, a survey with blank venue cells, accepted at a venue. difflib's
    # autojunk took the README's many blank lines for junk: the diff showed the unchanged
    # blank line after the row as removed and added again.
    import_list(engine)
    accept(
        engine,
        title="Visual Prompting in Multimodal Large Language Models: A Survey",
        arxiv_id="2409.15310",
        venue="ACL",  # test data chosen by hand
        year=2025,
        labels=["survey"],
        relevance=0.9,
        label_scores={},
    )
    result = cli("publish", CATALOGUE, "--dry-run")
    assert result.exit_code == 0, result.output
    diff = result.output.split("--- pull request ---")[0].splitlines()
    survey = "Visual Prompting in Multimodal Large Language Models: A Survey"
    row = f"| [{survey}](https://arxiv.org/abs/2409.15310) |"
    assert [line for line in diff if line.startswith(("+", "-")) and line[:3] not in ("---", "+++")] == [
        f"-{row} | | |",
        f"+{row} ACL | 2025 | |",
    ]
    assert "@@ -229,5 +229,5 @@" in diff


def test_a_crlf_readme_keeps_crlf_and_only_the_changed_lines_change(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """A list kept with Windows line endings: the pushed README has CRLF on every line,
    new ones included, and the diff is only our lines."""
    crlf = README_0624.read_text(encoding="utf-8").replace("\n", "\r\n")
    remote.push_readme(crlf, "Windows line endings")
    import_list(engine, text=crlf)
    new_id, upgrade_id = accept_two(engine)

    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "opened pull request #1" in result.output
    pushed = remote.show(BRANCH)
    assert "\n" not in pushed.replace("\r\n", "") and "\r" not in pushed.replace("\r\n", "")
    diff = list(difflib.ndiff(crlf.splitlines(keepends=True), pushed.splitlines(keepends=True)))
    removed = [line[2:] for line in diff if line.startswith("- ")]
    added = [line[2:] for line in diff if line.startswith("+ ")]
    assert removed == [
        "| [Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning](https://arxiv.org/abs/2411.01327)"
        " | arXiv | 2025 | [Github](https://github.com/runtsang/VFPT) |\r\n"
    ]
    assert len(added) == 2 and all(line.endswith(" |\r\n") for line in added)
    assert any("2210.01253" in line for line in added)
    plot = next(e for e in parse(pushed).entries if e.arxiv_id == "2210.01253")
    assert plot.title == PLOT and "\r" not in plot.raw.removesuffix("\r\n")
    assert statuses(engine) == {new_id: "published", upgrade_id: "published"}

    # A rerun sees the README it was imported from (no "changed upstream"): nothing moves.
    head = remote.sha(BRANCH)
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0, again.output
    assert "updated pull request #1" in again.output and remote.sha(BRANCH) == head


def test_upstream_change_is_taken_in_never_overwritten(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """Imported from the 2025-06-06 README; the maintainer has since pushed 2025-06-24."""
    import_list(engine, README_0606)
    new_id, upgrade_id = accept_two(engine)

    first = cli("publish", CATALOGUE)
    assert first.exit_code == 1
    assert "changed upstream since import" in first.output and "re-imported it" in first.output
    assert statuses(engine) == {new_id: "accepted", upgrade_id: "accepted"}
    assert remote.sha(BRANCH) is None and github.pulls == []
    with session_factory(engine)() as session:
        catalogue = session.scalars(select(CatalogueRow)).one()
        assert catalogue.source_text == README_0624.read_text()
        assert catalogue.upstream_commit == remote.sha("main")

    second = cli("publish", CATALOGUE)
    assert second.exit_code == 0, second.output
    added, removed = added_and_removed(remote)
    assert len(removed) == 1 and "| arXiv | 2025 |" in removed[0]  # only our upgrade replaces a line
    assert any("2210.01253" in line for line in added)
    pushed = remote.show(BRANCH)
    # the maintainer's own additions survive
    assert "| [Dynamic Visual Prompt Tuning for Parameter Efficient Transfer Learning]" in pushed
    assert "  - [VPT in Medical Images](#vpt-in-medical-images)" in pushed
    assert statuses(engine) == {new_id: "published", upgrade_id: "published"}


def test_upstream_edit_after_a_pull_request_keeps_both_and_rebuilds_the_stale_branch(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    old_head = remote.sha(BRANCH)
    edited = README_0624.read_text().replace("| 2019 | First work |", "| 2019 | First work, seminal |")
    remote.push_readme(edited, "maintainer: annotate the first work")

    stopped = cli("publish", CATALOGUE)
    assert stopped.exit_code == 1
    assert "kept 1 added and 1 updated entries" in stopped.output
    assert remote.sha(BRANCH) == old_head

    rerun = cli("publish", CATALOGUE)
    assert rerun.exit_code == 0, rerun.output
    pushed = remote.show(BRANCH)
    assert "First work, seminal |" in pushed  # upstream's edit is kept
    assert "2210.01253" in pushed and "| ICML | 2025 |" in pushed  # and so are ours
    added, removed = added_and_removed(remote)
    assert len(removed) == 1 and len(added) == 2
    assert len(github.pulls) == 1 and "updated pull request #1" in rerun.output


def test_a_maintainer_commit_on_our_branch_is_never_overwritten(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """A maintainer pushed a fix to vpt-tracker's PR branch: publish stops (exit 1, one
    line saying what and what to do) instead of committing over it or, once the base has
    moved, rebuilding the branch and force-pushing it away."""
    import_list(engine)
    accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    fixed = remote.show(BRANCH).replace("| ICML | 2025 |", "| ICML | 2025 (oral) |")
    theirs = remote.push_readme(fixed, "Mark the oral", branch=BRANCH)
    third = accept_inpainting(engine, {"generative": 0.9})
    body_before = github.pulls[0]["body"]

    stopped = cli("publish", CATALOGUE)
    assert stopped.exit_code == 1, stopped.output
    [line] = stopped.output.strip().splitlines()
    assert f"the branch {BRANCH!r} has a commit vpt-tracker did not make" in line
    assert f"{cast(str, theirs)[:10]} by Maintainer <maintainer@example.org>: 'Mark the oral'" in line
    assert "nothing was pushed" in line
    assert f"merge pull request #1 or delete the branch {BRANCH!r} on {OWNER}/{REPO}" in line
    assert remote.sha(BRANCH) == theirs and github.pulls[0]["body"] == body_before
    assert statuses(engine)[third] == "accepted"

    # The base moves on too: the stale branch is not rebuilt over the maintainer's commit.
    remote.push_readme(README_0624.read_text().replace("| 2019 | First work |", "| 2019 | First |"), "edit")
    assert cli("publish", CATALOGUE).exit_code == 1  # upstream changed: taken in, stopped for a look
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 1 and "did not make" in again.output, again.output
    assert remote.sha(BRANCH) == theirs and "(oral)" in remote.show(BRANCH)

    # Doing what the message says: the branch deleted, publish rebuilds it from the base.
    subprocess.run(["git", "branch", "-D", BRANCH], cwd=remote.bare, check=True, capture_output=True)
    done = cli("publish", CATALOGUE)
    assert done.exit_code == 0, done.output
    assert "2209.00647" in remote.show(BRANCH) and statuses(engine)[third] == "published"


def test_a_pull_request_closed_unmerged_is_not_reopened_for_the_same_changes(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    github.pulls[0]["state"] = "closed"  # the maintainer declines it

    refused = cli("publish", CATALOGUE)
    assert refused.exit_code == 1
    assert "pull request #1 with exactly these changes was closed without merging" in refused.output
    assert len(github.pulls) == 1

    accept_inpainting(engine, {})
    fresh = cli("publish", CATALOGUE)
    assert fresh.exit_code == 0, fresh.output
    assert "opened pull request #2" in fresh.output
    with session_factory(engine)() as session:
        states = {r.number: r.state for r in session.scalars(select(PullRequestRow))}
    assert states == {1: "closed", 2: "open"}


def test_a_paper_of_a_declined_pull_request_can_be_rejected_and_leaves_the_next_one(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """The maintainer closes our pull request because of one paper. The refusal says to
    reject it; a published candidate was final, so `review reject` refused, and every later
    pull request (a new paper accepted) brought the declined paper back."""
    import_list(engine)
    plot, adaptive = accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    github.pulls[0]["state"] = "closed"  # the maintainer declines it: PLOT is off-topic for the list

    refused = cli("publish", CATALOGUE)
    assert refused.exit_code == 1
    assert f"`vpt-tracker review reject ID --reason ...` (candidates {plot}, {adaptive})" in refused.output

    rejected = cli(
        "review", "reject", str(plot), "--reason", "declined in pull request #1", "--reviewer", "alice"
    )
    assert rejected.exit_code == 0, rejected.output
    assert statuses(engine) == {plot: "rejected", adaptive: "published"}

    fresh = cli("publish", CATALOGUE)
    assert fresh.exit_code == 0, fresh.output
    assert "opened pull request #2" in fresh.output
    assert "2210.01253" not in remote.show(BRANCH) and "| ICML | 2025 |" in remote.show(BRANCH)
    assert "PLOT" not in github.pulls[1]["body"]

    # Changed her mind: undo makes it accepted again (not `published` without an entry), and
    # the next publish puts it back in the open pull request.
    undone = cli("review", "undo", "--reviewer", "alice")
    assert undone.exit_code == 0, undone.output
    assert statuses(engine)[plot] == "accepted"
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0, again.output
    assert "updated pull request #2" in again.output
    assert "2210.01253" in remote.show(BRANCH) and statuses(engine)[plot] == "published"


def test_rejecting_the_only_paper_of_an_open_pull_request_closes_it(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """With nothing left to propose, publish said "nothing to publish" and left the pull
    request open, still adding the rejected paper if the maintainer merged it."""
    import_list(engine)
    plot = accept_plot(engine, {"learnable": 0.88})
    opened = cli("publish", CATALOGUE)
    assert opened.exit_code == 0, opened.output
    # One paper is one change and one candidate (it said "1 change(s), 1 candidate(s)").
    assert "opened pull request #1 (1 change, 1 candidate marked published): " in opened.output
    assert github.pulls[0]["title"] == f"{CATALOGUE}: add 1 paper (vpt-tracker)"
    assert (
        cli("review", "reject", str(plot), "--reason", "not a VPT paper", "--reviewer", "alice").exit_code
        == 0
    )

    closed = cli("publish", CATALOGUE)
    assert closed.exit_code == 0, closed.output
    assert "closed pull request #1: nothing is left to propose" in closed.output
    assert github.pulls[0]["state"] == "closed" and github.open_pulls() == []
    with session_factory(engine)() as session:
        assert session.scalars(select(PullRequestRow.state)).all() == ["closed"]

    # Undone: the paper is proposed again; the pull request vpt-tracker closed itself is
    # not "closed without merging" by the maintainer.
    assert cli("review", "undo", "--reviewer", "alice").exit_code == 0
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0, again.output
    assert "opened pull request #2" in again.output


def test_a_paper_already_in_the_list_upstream_cannot_be_rejected(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    plot, _ = accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    remote.push_readme(remote.show(BRANCH), "Merge pull request #1")  # merged
    github.pulls[0]["state"] = "closed"
    assert cli("publish", CATALOGUE).exit_code == 0

    refused = cli("review", "reject", str(plot), "--reason", "changed my mind", "--reviewer", "alice")
    assert refused.exit_code == 2
    assert f"cannot reject candidate {plot}: it is published" in refused.output
    assert "the paper is in the list upstream now" in refused.output
    assert statuses(engine)[plot] == "published"


def test_a_published_paper_upstream_left_no_section_for_is_proposed_again(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """PLOT is in our open pull request when the maintainer renames its section. The rebase
    dropped its entry but left the candidate `published`: it was never proposed again, and
    rejecting it said "the paper is in the list upstream", which it never was."""
    import_list(engine)
    plot, _ = accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    assert statuses(engine)[plot] == "published"
    renamed = remote.show("main").replace("#### Token-Level", "#### Token Prompts", 1)
    remote.push_readme(renamed, "Rename a section")

    stopped = cli("publish", CATALOGUE)
    assert stopped.exit_code == 1, stopped.output
    assert "no section of the new README takes it" in stopped.output
    assert statuses(engine)[plot] == "accepted"  # not in any list: promotion tries it again

    skipped = cli("publish", CATALOGUE)
    assert skipped.exit_code == 0, skipped.output
    assert f"candidate {plot} ({PLOT}) not promoted" in skipped.output
    relabel = cli("review", "relabel", str(plot), "--labels", "learnable,pixel", "--reviewer", "alice")
    assert relabel.exit_code == 0, relabel.output
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0, again.output
    assert "2210.01253" in remote.show(BRANCH) and statuses(engine)[plot] == "published"
    assert PLOT in github.open_pulls()[0]["body"]

    # Or the reviewer drops it instead: an accepted paper no list shows can be rejected.
    remote.push_readme(remote.show("main").replace("#### Pixel-Level", "#### Pixel Prompts", 1))
    assert cli("publish", CATALOGUE).exit_code == 1
    assert statuses(engine)[plot] == "accepted"
    rejected = cli("review", "reject", str(plot), "--reason", "not a VPT paper", "--reviewer", "alice")
    assert rejected.exit_code == 0, rejected.output
    assert statuses(engine)[plot] == "rejected"


def test_a_paper_published_in_a_week_stays_the_weeks_once_its_entry_left_the_list(
    cli: Cli, engine: Engine, tmp_path: Path, remote: Remote
) -> None:
    """The digest read a week's published papers from `published_at`, which a rebase clears
    when the entry leaves the list: PLOT, published in 2026-W47 and dropped with its section
    in W48, was missing from the digest of W47 built after it. Each publish is recorded now;
    published again in W49, it is one of W49's too."""
    settings = load_settings(tmp_path / "vpt-tracker.toml")
    import_list(engine)
    plot, _ = accept_two(engine)  # accepted on 2026-11-20, in W47
    with transaction(engine) as session:
        for candidate in session.scalars(select(CandidateRow)):
            candidate.created_at = datetime(2026, 11, 16, 7, tzinfo=UTC)  # queued before that

    def publish(at: datetime) -> None:
        Publisher(engine, settings, CATALOGUE, clock=lambda: at).run()

    publish(datetime(2026, 11, 21, 12, tzinfo=UTC))
    assert statuses(engine)[plot] == "published"
    remote.push_readme(remote.show("main").replace("#### Token-Level", "#### Token Prompts", 1))
    with pytest.raises(UpstreamChanged):
        publish(datetime(2026, 11, 25, 12, tzinfo=UTC))  # W48: PLOT's entry left the list
    assert statuses(engine)[plot] == "accepted"

    def published(week: int, built: datetime) -> list[str]:
        [catalogue] = build_digest(engine, Week(2026, week), now=built).catalogues
        return [line.title for line in catalogue.published]

    built = datetime(2026, 12, 7, 8, tzinfo=UTC)
    assert published(47, built) == [ADAPTIVE, PLOT]
    assert published(48, built) == []
    # Relabelled to a section the list has, and published again in W49.
    ReviewQueue(engine, "alice", clock=lambda: datetime(2026, 12, 1, 9, tzinfo=UTC)).relabel(
        plot, ["learnable", "pixel"]
    )
    publish(datetime(2026, 12, 2, 12, tzinfo=UTC))
    assert statuses(engine)[plot] == "published"
    assert published(47, built) == [ADAPTIVE, PLOT]
    assert published(49, built) == [PLOT]


def accept_backlog(engine: Engine, count: int) -> None:
    """`count` accepted papers as after a backfill (synthetic, with realistic lengths)."""
    for n in range(count):
        accept(
            engine,
            title=f"Learnable Visual Prompts for Frozen Transformers under Distribution Shift, Part {n}",
            arxiv_id=f"2503.{10000 + n}",
            venue="CVPR",
            year=2025,
            labels=["learnable", "token"],
            relevance=0.9,
            label_scores={"learnable": 0.9, "token": 0.8, "pixel": 0.1},
            reason="prompt tokens in the input space of a frozen backbone",
        )


def test_a_large_backlog_fits_in_one_pull_request(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """After a backfill a maintainer accepts a few hundred papers and publishes once. GitHub
    refuses a pull request text over 65536 characters, so publish failed with a 422 on every
    run, with the branch pushed and no pull request (synthetic papers, realistic lengths)."""
    import_list(engine)
    count = 180
    accept_backlog(engine, count)
    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert f"opened pull request #1 ({count} changes, {count} candidates marked published)" in result.output
    assert github.pulls[0]["title"] == f"{CATALOGUE}: add {count} papers (vpt-tracker)"
    body = github.pulls[0]["body"]
    assert len(body) <= 65536
    assert f"### Added ({count})" in body and "Part 0]" in body
    shown = body.count("  - decision: accept by alice")
    assert 0 < shown < count
    assert f"and {count - shown} more, not detailed here" in body
    assert remote.show(BRANCH).count("under Distribution Shift, Part") == count  # the README has them all


def test_a_shortened_body_details_every_section(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """A backlog of additions and one venue upgrade: filled in order, the additions took the
    whole body and the venue-update section was a heading over "… and 1 more" alone."""
    import_list(engine)
    accept_two(engine)  # PLOT and the ICML upgrade of Adaptive Prompt
    accept_backlog(engine, 180)
    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    body = github.pulls[0]["body"]
    assert len(body) <= 65536
    added, updates = body.split("### Venue updates (1)")
    assert f"- **[{ADAPTIVE}](https://arxiv.org/abs/2411.01327)** (arXiv 2025 → ICML 2025)" in updates
    assert "more, not detailed here" in added and "more, not detailed here" not in updates
    assert 0 < added.count("  - decision: accept by alice") < 181


def test_an_entry_larger_than_the_body_is_shown_cut_not_dropped(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """A reviewer's reason has no length limit (notes pasted into the accept). One reason of
    70000 characters made its entry larger than the whole body GitHub takes: the body was
    headings over "… and 1 more, not detailed here", naming no paper at all."""
    import_list(engine)
    notes = " ".join(f"note{n}" for n in range(10000))  # 69 kB of the reviewer's notes
    accept(
        engine,
        title=PLOT,
        arxiv_id="2210.01253",
        venue="ICLR",
        year=2023,
        labels=["learnable", "token"],
        relevance=0.91,
        label_scores={"learnable": 0.88},
        reason=notes,
    )
    accept_inpainting(engine, {"generative": 0.9})
    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    body = github.pulls[0]["body"]
    assert len(body) <= 65536 and "more, not detailed here" not in body
    assert f"- **[{PLOT}](https://arxiv.org/abs/2210.01253)** (ICLR 2023)" in body
    assert "- **[Visual Prompting via Image Inpainting](https://arxiv.org/abs/2209.00647)**" in body
    reason = next(line for line in body.splitlines() if "note0" in line)
    assert reason.startswith("  - decision: accept by alice on 2026-11-20 09:30 UTC: note0 note1 ")
    assert reason.endswith("…") and len(reason) < 1200 and "note9999" not in body


def test_an_open_pull_request_follows_a_preprint_to_its_venue(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """PLOT published as a preprint; while its pull request is open the sources see it at
    ICLR 2023. The pull request kept proposing "arXiv 2022" until it was merged."""
    import_list(engine)
    candidate = accept(
        engine,
        title=PLOT,
        arxiv_id="2210.01253",
        venue="arXiv",
        year=2022,
        labels=["learnable", "token"],
        relevance=0.91,
        label_scores={"learnable": 0.88},
    )
    assert cli("publish", CATALOGUE).exit_code == 0
    first = remote.sha(BRANCH)
    assert "(arXiv 2022)" in github.pulls[0]["body"]
    with session_factory(engine)() as session, session.begin():  # as ingest records a venue sighting
        paper = session.get_one(CandidateRow, candidate).paper
        paper.previous_venue, paper.venue, paper.year = "arXiv", "ICLR", 2023
        paper.venue_upgraded_at = paper.created_at

    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "updated pull request #1" in result.output and len(github.pulls) == 1
    added, removed = added_and_removed(remote)
    assert removed == [] and [line for line in added if "2210.01253" in line] == [
        f"| [{PLOT}](https://arxiv.org/abs/2210.01253) | ICLR | 2023 | - |"
    ]
    assert (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", cast(str, first), BRANCH], cwd=remote.bare
        ).returncode
        == 0
    )
    body = github.pulls[0]["body"]
    assert "(ICLR 2023)" in body and "arXiv 2022" not in body
    assert statuses(engine) == {candidate: "published"}


def test_titles_and_reasons_mention_nobody_on_github(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    """GitHub notifies every user or team named `@name` in a pull request body or a commit
    message, and a backslash does not stop it (github/cmark-gfm#389). A title from the
    sources or a reviewer's reason naming someone pinged them from the bot's pull request."""
    import_list(engine)
    title = "Visual Prompts @ Scale, by @octocat and @github/security-lab"
    accept(
        engine,
        title=title,
        arxiv_id="2502.00007",
        venue="CVPR",
        year=2025,
        labels=["learnable", "token"],
        relevance=0.9,
        label_scores={},
        reason="as @yunbeizhang asked (ana@example.org)",
    )
    assert cli("publish", CATALOGUE).exit_code == 0
    body = github.pulls[0]["body"]
    message = subprocess.run(
        ["git", "log", "-1", "--format=%B", BRANCH],
        cwd=remote.bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mention = re.compile(r"(?<![\w`/])@[A-Za-z0-9]")
    assert mention.findall(body) == [] and mention.findall(message) == []
    assert "@\u200boctocat" in body and "as @\u200byunbeizhang asked" in body and "@\u200boctocat" in message
    assert "ana@example.org" in body  # an address mentions nobody: left as it is
    assert title in remote.show(BRANCH)  # the list itself shows the title as it is


def test_merged_pull_request_is_absorbed_and_nothing_is_left_to_publish(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    remote.push_readme(remote.show(BRANCH), "Merge pull request #1")  # the maintainer merges it
    github.pulls[0]["state"] = "closed"  # as GitHub marks a merged pull request

    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "nothing to publish" in result.output
    with session_factory(engine)() as session:
        entries = session.scalars(select(EntryRow)).all()
        assert {e.state for e in entries} == {"imported"}
        plot = next(e for e in entries if e.arxiv_id == "2210.01253")
        assert plot.candidate_id is not None and plot.raw is not None


def test_a_merged_paper_with_no_latin_title_and_no_link_is_not_proposed_again(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    # Its title folds to no key: the merged line was not found, the entry stayed "added",
    # and the next publish opened a second pull request listing the paper twice.
    title = "视觉提示学习综述"
    import_list(engine)
    candidate = accept(
        engine,
        title=title,
        arxiv_id=None,
        venue="CVPR",
        year=2025,
        labels=["learnable", "token"],
        relevance=0.7,
        label_scores={},
    )
    assert cli("publish", CATALOGUE).exit_code == 0
    remote.push_readme(remote.show(BRANCH), "Merge pull request #1")  # the maintainer merges it
    github.pulls[0]["state"] = "closed"

    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "1 already upstream" in result.output and "nothing to publish" in result.output
    assert len(github.pulls) == 1 and remote.show("main").count(title) == 1
    with session_factory(engine)() as session:
        [entry] = [e for e in session.scalars(select(EntryRow)) if e.title == title]
        assert (entry.state, entry.candidate_id) == ("imported", candidate)


def test_papers_a_maintainer_listed_by_hand_after_a_failed_publish_become_published(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    # The push was refused after promotion; the maintainer then listed both papers by hand.
    # Taken in as "already upstream", the candidates stayed `accepted` for good (and could be
    # rejected while the list showed them).
    import_list(engine)
    plot, upgrade = accept_two(engine)
    remote.reject_pushes("error: GH006: Protected branch update failed.")
    assert cli("publish", CATALOGUE).exit_code == 1
    (remote.bare / "hooks" / "pre-receive").unlink()
    by_hand = README_0624.read_text().replace(
        "| arXiv | 2025 | [Github](https://github.com/runtsang/VFPT) |",
        "| ICML | 2025 | [Github](https://github.com/runtsang/VFPT) |\n"
        f"| [{PLOT}](https://arxiv.org/abs/2210.01253) | ICLR | 2023 | - |",
    )
    remote.push_readme(by_hand, "Add PLOT, Adaptive Prompt at ICML")

    taken_in = cli("publish", CATALOGUE)
    assert taken_in.exit_code == 1 and "2 already upstream" in taken_in.output, taken_in.output
    assert statuses(engine) == {plot: "published", upgrade: "published"}
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0 and "nothing to publish" in again.output, again.output
    assert github.pulls == [] and remote.sha(BRANCH) is None
    refused = cli("review", "reject", str(plot), "--reason", "off topic", "--reviewer", "bob")
    assert refused.exit_code == 2 and "the paper is in the list upstream now" in refused.output


def test_an_accepted_paper_the_maintainer_listed_by_hand_before_any_publish_becomes_published(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    # Accepted, never promoted; the maintainer adds the paper by hand before the next publish.
    # The candidate stayed `accepted` for good: every publish warned "not promoted: already
    # listed", and it could be rejected while the list showed it.
    import_list(engine)
    plot = accept_plot(engine, {"learnable": 0.88, "token": 0.74})
    by_hand = README_0624.read_text().replace(
        "| arXiv | 2025 | [Github](https://github.com/runtsang/VFPT) |",
        "| arXiv | 2025 | [Github](https://github.com/runtsang/VFPT) |\n"
        f"| [{PLOT}](https://arxiv.org/abs/2210.01253) | ICLR | 2023 | - |",
    )
    remote.push_readme(by_hand, "Add PLOT")

    taken_in = cli("publish", CATALOGUE)
    assert taken_in.exit_code == 1 and "changed upstream" in taken_in.output, taken_in.output
    assert statuses(engine) == {plot: "published"}
    again = cli("publish", CATALOGUE)
    assert again.exit_code == 0 and "nothing to publish" in again.output, again.output
    assert "not promoted" not in again.output
    assert github.pulls == [] and remote.show("main").count(PLOT) == 1
    refused = cli("review", "reject", str(plot), "--reason", "off topic", "--reviewer", "bob")
    assert refused.exit_code == 2 and "the paper is in the list upstream now" in refused.output


def test_a_pull_request_merged_after_a_publish_stopped_before_recording_it_is_known_as_ours(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or a database gone) after the pull request was opened and before it was
    recorded; the maintainer merges it before the next run. That run took our own merged
    README for a maintainer's edit: it stopped with "changed upstream" (exit 1), and the
    candidates stayed `accepted` for good although the list had their papers."""
    import_list(engine)
    ids = accept_two(engine)

    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Publisher, "_mark_published", interrupted)
        stopped = cli("publish", CATALOGUE)
    assert stopped.exit_code == 130 and len(github.pulls) == 1
    assert set(statuses(engine).values()) == {"accepted"}
    remote.push_readme(remote.show(BRANCH), "Merge pull request #1")  # the maintainer merges it
    github.pulls[0]["state"] = "closed"

    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "took in upstream's merged README" in result.output and "nothing to publish" in result.output
    assert statuses(engine) == dict.fromkeys(ids, "published")


def test_a_renamed_branch_does_not_open_a_second_pull_request_beside_the_open_one(
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    github: FakeGithub,
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The maintainer sets another `branch` for the catalogue while our pull request from the
    old one is open. Publish opened a second pull request proposing the same papers beside
    it, and recorded the first as closed although it was open on GitHub."""
    import_list(engine)
    accept_two(engine)
    monkeypatch.setenv("VPT_GITHUB__TOKEN", TOKEN)

    def publish(**catalogue: str) -> Result:
        config = write_config(tmp_path, github, remote, **catalogue)
        return CliRunner().invoke(main, ["--config", str(config), "--database", db_url, "publish", CATALOGUE])

    assert publish().exit_code == 0
    accept_inpainting(engine, {"generative": 0.9})
    refused = publish(branch="bot/awesome-vpt")
    assert refused.exit_code == 1, refused.output
    assert f"pull request #1 from {BRANCH!r} is still open" in refused.output
    assert len(github.pulls) == 1 and remote.sha("bot/awesome-vpt") is None
    with session_factory(engine)() as session:
        assert session.scalars(select(PullRequestRow.state)).all() == ["open"]

    github.pulls[0]["state"] = "closed"  # the maintainer closes it, as the message says
    moved = publish(branch="bot/awesome-vpt")
    assert moved.exit_code == 0, moved.output
    assert [(p["head"], p["state"]) for p in github.pulls] == [
        (BRANCH, "closed"),
        ("bot/awesome-vpt", "open"),
    ]


@pytest.mark.parametrize(
    ("breakage", "message", "code"),
    [
        ("token", "GitHub rejected the token", 2),
        ("repository", f"repository {OWNER}/Awesome-Visual-Prompt-Tuning not found", 2),
        ("network", "cannot reach the GitHub API", 1),
        ("non-fast-forward", "non-fast-forward", 1),
        ("protected", "[remote rejected] (pre-receive hook declined); remote: error: GH006: Protected", 1),
    ],
)
def test_failures_publish_nothing_and_a_rerun_after_the_fix_succeeds(
    breakage: str,
    message: str,
    code: int,
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    github: FakeGithub,
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_list(engine)
    ids = accept_two(engine)
    monkeypatch.setenv("VPT_GITHUB__TOKEN", TOKEN)
    config = write_config(tmp_path, github, remote)

    def publish() -> Result:
        return CliRunner().invoke(main, ["--config", str(config), "--database", db_url, "publish", CATALOGUE])

    if breakage == "token":
        monkeypatch.setenv("VPT_GITHUB__TOKEN", "ghp_revoked_token_000000000000")
    elif breakage == "repository":
        github.missing_repo = True
    elif breakage == "network":
        monkeypatch.setenv("VPT_GITHUB__API_URL", "http://127.0.0.1:9")  # discard port: refused
    elif breakage == "protected":
        remote.reject_pushes(
            f"error: GH006: Protected branch update failed for refs/heads/{BRANCH}.",
            f"error: the push with {TOKEN} was refused",  # a remote echoing the credentials
        )
    else:
        # A stale branch of ours (based on an older main) on a remote that refuses forced updates.
        old_run = README_0624.read_text() + "\n<!-- old -->\n"
        remote.push_readme(old_run, "old vpt-tracker run", branch=BRANCH, as_tracker=True)
        remote.push_readme(README_0624.read_text().replace("\n", "\n", 1) + "\n", "maintainer edit")
        subprocess.run(["git", "config", "receive.denyNonFastForwards", "true"], cwd=remote.bare, check=True)
        import_list_again(engine, remote)
    branch_before = remote.sha(BRANCH)

    failed = publish()
    assert failed.exit_code == code, failed.output
    assert message in failed.output
    assert TOKEN not in failed.output and "Traceback" not in failed.output
    assert len(failed.output.strip().splitlines()) == 1
    assert set(statuses(engine).values()) == {"accepted"}
    assert github.pulls == [] and remote.sha(BRANCH) == branch_before

    # fix it and rerun
    monkeypatch.setenv("VPT_GITHUB__TOKEN", TOKEN)
    monkeypatch.delenv("VPT_GITHUB__API_URL", raising=False)
    github.missing_repo = False
    if breakage == "non-fast-forward":
        subprocess.run(["git", "branch", "-D", BRANCH], cwd=remote.bare, check=True, capture_output=True)
    if breakage == "protected":
        (remote.bare / "hooks" / "pre-receive").unlink()
    fixed = publish()
    assert fixed.exit_code == 0, fixed.output
    assert len(github.pulls) == 1
    assert statuses(engine) == dict.fromkeys(ids, "published")


@pytest.mark.parametrize("status", [500, 502])
def test_a_pull_request_github_failed_to_open_is_opened_by_the_rerun(
    status: int, cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    ids = accept_two(engine)
    github.server_error = status
    failed = cli("publish", CATALOGUE)
    assert failed.exit_code == 1, failed.output
    assert f"GitHub answered {status} while opening a pull request" in failed.output
    assert "nothing was marked published: run publish again later" in failed.output
    assert len(failed.output.strip().splitlines()) == 1
    assert set(statuses(engine).values()) == {"accepted"} and github.pulls == []
    pushed = remote.sha(BRANCH)
    assert pushed is not None  # the branch went out before GitHub failed

    github.server_error = 0
    fixed = cli("publish", CATALOGUE)
    assert fixed.exit_code == 0 and "opened pull request #1" in fixed.output, fixed.output
    assert remote.sha(BRANCH) == pushed and len(github.pulls) == 1
    assert statuses(engine) == dict.fromkeys(ids, "published")
    assert sum("2210.01253" in line for line in remote.show(BRANCH).splitlines()) == 1


def import_list_again(engine: Engine, remote: Remote) -> None:
    """Make the catalogue's base the remote's current README (as a re-import would)."""
    with session_factory(engine)() as session, session.begin():
        catalogue = session.scalars(select(CatalogueRow)).one()
        catalogue.source_text = remote.show("main")


def test_a_token_with_a_line_break_around_it_works_and_a_bad_one_is_named_not_shown(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A line break inside or a non-ASCII character failed as "cannot reach the GitHub API ...:
    # Illegal header value b'Bearer ghp_...'" (the whole token printed), or as a traceback; one
    # around it (a secrets file's, a Kubernetes secret's) failed the same way.
    import_list(engine)
    accept_two(engine)
    for bad in (f"{TOKEN[:8]}\n{TOKEN[8:]}", f"{TOKEN}\u2026"):
        monkeypatch.setenv("VPT_GITHUB__TOKEN", bad)
        refused = cli("publish", CATALOGUE)
        assert refused.exit_code == 2, refused.output
        assert refused.output.startswith("Error: github.token (VPT_GITHUB__TOKEN or the secrets file) holds")
        assert TOKEN[8:] not in refused.output and len(refused.output.strip().splitlines()) == 1
    assert github.requests == [] and remote.sha(BRANCH) is None

    monkeypatch.setenv("VPT_GITHUB__TOKEN", f" {TOKEN}\n")
    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "opened pull request #1" in result.output
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in github.requests)


def test_work_copy_lives_under_the_data_dir_without_the_token(
    cli: Cli, tmp_path: Path, engine: Engine, remote: Remote
) -> None:
    import_list(engine)
    accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    workdir = tmp_path / "data" / "repos" / CATALOGUE
    config = (workdir / ".git" / "config").read_text()
    assert "url = " + str(remote.bare) in config
    for path in (workdir / ".git").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_git_process_killed_in_the_working_copy_does_not_block_the_next_publish(
    cli: Cli, tmp_path: Path, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    # A git killed outright (SIGKILL, the OOM killer, a container stopped hard) leaves its
    # index.lock behind; every later publish failed at `git checkout` with "Unable to create
    # '.../index.lock': File exists" until someone deleted it by hand.
    import_list(engine)
    accept_two(engine)
    assert cli("publish", CATALOGUE).exit_code == 0
    workdir = tmp_path / "data" / "repos" / CATALOGUE
    (workdir / "README.md").write_text("half written")
    # `git commit -a` holds index.lock while its editor runs: killed there, it leaves the lock
    env = {**os.environ, "GIT_EDITOR": "sleep 60 #", "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x"}
    env.update(GIT_COMMITTER_NAME="x", GIT_COMMITTER_EMAIL="x@x")
    git = subprocess.Popen(["git", "commit", "-a"], cwd=workdir, env=env, start_new_session=True)
    lock = workdir / ".git" / "index.lock"
    for _ in range(500):
        if lock.exists():
            break
        time.sleep(0.01)
    os.killpg(git.pid, signal.SIGKILL)
    git.wait()
    assert lock.exists()

    third = accept_inpainting(engine, {"generative": 0.9})
    result = cli("publish", CATALOGUE)
    assert result.exit_code == 0, result.output
    assert "updated pull request #1" in result.output and not lock.exists()
    assert "Visual Prompting via Image Inpainting" in remote.show(BRANCH)
    assert statuses(engine)[third] == "published"


def test_missing_config_and_unknown_catalogue_are_one_line_errors(
    tmp_path: Path, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_list(engine)
    monkeypatch.setenv("VPT_GITHUB__TOKEN", TOKEN)
    config = tmp_path / "empty.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    runner = CliRunner()
    unknown = runner.invoke(main, ["--config", str(config), "--database", db_url, "publish", "nope"])
    assert unknown.exit_code == 2 and "unknown catalogue 'nope'" in unknown.output
    unconfigured = runner.invoke(main, ["--config", str(config), "--database", db_url, "publish", CATALOGUE])
    assert unconfigured.exit_code == 2
    assert "has no [[catalogues]] entry" in unconfigured.output
    monkeypatch.delenv("VPT_GITHUB__TOKEN")
    config.write_text(
        f'data_dir = "{tmp_path}"\n[[catalogues]]\nname = "{CATALOGUE}"\ngithub_repo = "{OWNER}/x"\n'
    )
    no_token = runner.invoke(main, ["--config", str(config), "--database", db_url, "publish", CATALOGUE])
    assert no_token.exit_code == 2 and "no GitHub token" in no_token.output


def test_a_second_publish_at_the_same_time_is_refused(cli: Cli, engine: Engine, github: FakeGithub) -> None:
    import_list(engine)
    accept_two(engine)
    with exclusive(engine, f"publish-{CATALOGUE}"):
        busy = cli("publish", CATALOGUE)
    assert busy.exit_code == 75 and "in progress" in busy.output
    assert github.requests == [] and set(statuses(engine).values()) == {"accepted"}


def test_publish_help_names_the_exit_codes(cli: Cli) -> None:
    result = cli("publish", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for code in ("Exit 0 published", "1 GitHub or git refused", "2 bad config", "75 another publish"):
        assert code in text, text


def test_a_readme_path_missing_from_the_repository_is_named(
    cli: Cli, engine: Engine, github: FakeGithub, remote: Remote
) -> None:
    import_list(engine)
    with session_factory(engine)() as session, session.begin():
        session.scalars(select(CatalogueRow)).one().readme_path = "docs/LIST.md"
    result = cli("publish", CATALOGUE)
    assert result.exit_code == 2
    assert "has no docs/LIST.md on 'main'; re-import the catalogue with --readme-path" in result.output
    assert remote.sha(BRANCH) is None


def test_dry_run_names_candidates_it_cannot_place(cli: Cli, engine: Engine, github: FakeGithub) -> None:
    import_list(engine)
    candidate = accept(
        engine,
        title="An Unplaceable Paper",
        arxiv_id="2503.00003",
        venue=None,
        year=2025,
        labels=[],
        relevance=0.5,
        label_scores={},
    )
    result = cli("publish", CATALOGUE, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"Warning: candidate {candidate} (An Unplaceable Paper) not promoted: no section" in result.output
    assert "nothing to publish for 'awesome-vpt'" in result.output
