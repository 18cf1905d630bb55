"""Publishing from a fork: the branch is pushed to a co-maintainer's fork (a second bare
repository), the pull request is opened on the list's repository with `head =
owner:branch`, and every later step (the rerun, the merge, upstream edits, a maintainer's
commit, cleanup of a stale branch) works on the fork's branch."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from vpt_tracker.cli import main
from vpt_tracker.store import session_factory
from vpt_tracker.store.tables import CandidateRow, PullRequestRow

from .conftest import (
    CATALOGUE,
    FORK,
    FORK_OWNER,
    OWNER,
    README_0624,
    REPO,
    TOKEN,
    FakeGithub,
    Remote,
    accept_inpainting,
    accept_plot,
    accept_two,
    import_list,
    write_config,
)

BRANCH = f"vpt-tracker/{CATALOGUE}"

Publish = Callable[..., Result]
REASON = ("--reason", "off topic", "--reviewer", "alice")


@pytest.fixture
def publish(
    tmp_path: Path,
    db_url: str,
    github: FakeGithub,
    remote: Remote,
    fork: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> Publish:
    """`vpt-tracker publish awesome-vpt` with the catalogue published from the fork; keyword
    arguments change its config (`fork=None` publishes to the list's own repository)."""
    monkeypatch.setenv("VPT_GITHUB__TOKEN", TOKEN)
    monkeypatch.delenv("VPT_CONFIG", raising=False)
    github.fork = fork

    def run(*args: str, **catalogue: str | None) -> Result:
        keys: dict[str, str | None] = {"fork": FORK, "fork_git_url": str(fork.bare), **catalogue}
        if keys["fork"] is None:
            keys["fork_git_url"] = None
        config = write_config(tmp_path, github, remote, **keys)
        return CliRunner().invoke(
            main, ["--config", str(config), "--database", db_url, "publish", CATALOGUE, *args]
        )

    return run


def statuses(engine: Engine) -> dict[int, str]:
    with session_factory(engine)() as session:
        return {c.id: c.status for c in session.scalars(select(CandidateRow))}


def rows(engine: Engine) -> list[tuple[int | None, str, str]]:
    with session_factory(engine)() as session:
        found = session.scalars(select(PullRequestRow).order_by(PullRequestRow.id))
        return [(r.number, r.branch, r.state) for r in found]


def is_ancestor(bare: Path, older: str, newer: str) -> bool:
    done = subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=bare, check=False)
    return done.returncode == 0


def test_a_fork_gets_the_branch_and_the_list_gets_the_pull_request(
    publish: Publish, engine: Engine, github: FakeGithub, remote: Remote, fork: Remote
) -> None:
    import_list(engine)
    ids = accept_two(engine)

    result = publish()
    assert result.exit_code == 0, result.output
    assert "opened pull request #1" in result.output
    # The branch is on the fork, based on the list's main; the list itself is untouched.
    assert remote.sha(BRANCH) is None and remote.sha("main") == fork.sha("main")
    assert fork.sha(BRANCH) is not None and "2210.01253" in fork.show(BRANCH)
    assert remote.show("main") == README_0624.read_text()
    # The pull request is opened on the list, from the fork's branch.
    [post] = github.calls("POST", rf"^/repos/{OWNER}/{REPO}/pulls$")
    assert post.body["head"] == f"{FORK_OWNER}:{BRANCH}" and post.body["base"] == "main"
    assert github.calls("GET", r"/pulls$")[0].query["head"] == [f"{FORK_OWNER}:{BRANCH}"]
    assert [(p["head_owner"], p["head"], p["state"]) for p in github.pulls] == [(FORK_OWNER, BRANCH, "open")]
    assert github.calls("GET", rf"^/repos/{FORK}$")  # the fork was checked before the push
    assert statuses(engine) == dict.fromkeys(ids, "published")
    assert rows(engine) == [(1, f"{FORK}:{BRANCH}", "open")]

    # Rerun: the open pull request from the fork is found and edited, never a second one.
    head = fork.sha(BRANCH)
    again = publish()
    assert again.exit_code == 0 and "updated pull request #1" in again.output, again.output
    assert len(github.pulls) == 1 and fork.sha(BRANCH) == head

    # A third paper: the fork's branch moves forward (a fast-forward), the same PR is edited.
    third = accept_inpainting(engine, {"generative": 0.9})
    later = publish()
    assert later.exit_code == 0 and "updated pull request #1" in later.output, later.output
    assert is_ancestor(fork.bare, str(head), BRANCH) and "2209.00647" in fork.show(BRANCH)
    assert len(github.pulls) == 1 and statuses(engine)[third] == "published"
    assert remote.sha(BRANCH) is None


def test_a_pull_request_opened_by_a_run_that_never_heard_back_is_found_by_the_rerun(
    publish: Publish, engine: Engine, github: FakeGithub, fork: Remote
) -> None:
    """GitHub opened the pull request from the fork but its answer was lost (a 502): the
    rerun finds it by `head = forkowner:branch` and edits it, where asking for the list's
    owner found nothing and opened a second one (or failed on "already exists")."""
    import_list(engine)
    ids = accept_two(engine)
    github.lost_answer = True
    lost = publish()
    assert lost.exit_code == 1 and "GitHub answered 502" in lost.output, lost.output
    assert len(github.pulls) == 1 and set(statuses(engine).values()) == {"accepted"}

    github.lost_answer = False
    rerun = publish()
    assert rerun.exit_code == 0, rerun.output
    assert "updated pull request #1" in rerun.output
    assert len(github.pulls) == 1 and len(github.calls("POST", r"/pulls$")) == 1
    assert statuses(engine) == dict.fromkeys(ids, "published")


def test_upstream_edits_a_merge_and_a_stale_fork_branch(
    publish: Publish, engine: Engine, github: FakeGithub, remote: Remote, fork: Remote
) -> None:
    import_list(engine)
    accept_two(engine)
    assert publish().exit_code == 0
    first = fork.sha(BRANCH)

    # A maintainer edits the list: taken in, stopped for a look; the rerun rebuilds the fork's
    # branch on the list's new main (the fork's own main is never used), force-with-lease.
    edited = README_0624.read_text().replace("| 2019 | First work |", "| 2019 | First work, seminal |")
    new_main = remote.push_readme(edited, "maintainer: annotate the first work")
    stopped = publish()
    assert stopped.exit_code == 1 and "changed upstream" in stopped.output, stopped.output
    assert fork.sha(BRANCH) == first
    rebuilt = publish()
    assert rebuilt.exit_code == 0 and "updated pull request #1" in rebuilt.output, rebuilt.output
    assert is_ancestor(fork.bare, new_main, BRANCH) and not is_ancestor(fork.bare, str(first), BRANCH)
    assert "First work, seminal |" in fork.show(BRANCH) and "2210.01253" in fork.show(BRANCH)

    # The maintainer merges our pull request: it is known as ours, nothing is left to publish.
    remote.push_readme(fork.show(BRANCH), "Merge pull request #1")
    github.pulls[0]["state"] = "closed"
    merged = publish()
    assert merged.exit_code == 0, merged.output
    assert "nothing to publish" in merged.output and "changed upstream" not in merged.output
    assert set(statuses(engine).values()) == {"published"}

    # A paper later: the fork's branch (of the merged pull request) is stale; it is rebuilt on
    # the list's main and a new pull request is opened from the fork.
    third = accept_inpainting(engine, {"generative": 0.9})
    later = publish()
    assert later.exit_code == 0 and "opened pull request #2" in later.output, later.output
    assert is_ancestor(fork.bare, str(remote.sha("main")), BRANCH)
    assert [(p["head_owner"], p["state"]) for p in github.pulls] == [
        (FORK_OWNER, "closed"),
        (FORK_OWNER, "open"),
    ]
    assert statuses(engine)[third] == "published" and remote.sha(BRANCH) is None


def test_a_maintainers_commit_on_the_forks_branch_is_never_overwritten(
    publish: Publish, engine: Engine, github: FakeGithub, fork: Remote
) -> None:
    """The list's maintainer pushed a fix to the fork's branch (the pull request allows
    edits by maintainers): publish stops, naming the fork where the branch is."""
    import_list(engine)
    accept_two(engine)
    assert publish().exit_code == 0
    fixed = fork.show(BRANCH).replace("| ICML | 2025 |", "| ICML | 2025 (oral) |")
    theirs = fork.push_readme(fixed, "Mark the oral", branch=BRANCH)
    third = accept_inpainting(engine, {"generative": 0.9})

    stopped = publish()
    assert stopped.exit_code == 1, stopped.output
    [line] = stopped.output.strip().splitlines()
    assert f"the branch {BRANCH!r} has a commit vpt-tracker did not make" in line
    assert f"delete the branch {BRANCH!r} on {FORK}" in line
    assert fork.sha(BRANCH) == theirs and statuses(engine)[third] == "accepted"

    subprocess.run(["git", "branch", "-D", BRANCH], cwd=fork.bare, check=True, capture_output=True)
    done = publish()
    assert done.exit_code == 0, done.output
    assert "2209.00647" in fork.show(BRANCH) and statuses(engine)[third] == "published"


def test_moving_to_a_fork_while_the_lists_own_pull_request_is_open_is_refused(
    publish: Publish, engine: Engine, github: FakeGithub, remote: Remote, fork: Remote
) -> None:
    """The same branch name on the fork is another head: while our pull request from the
    list's own branch is open, a second one from the fork would propose the same papers."""
    import_list(engine)
    accept_two(engine)
    assert publish(fork=None).exit_code == 0
    assert remote.sha(BRANCH) is not None and rows(engine) == [(1, BRANCH, "open")]
    accept_inpainting(engine, {"generative": 0.9})

    refused = publish()
    assert refused.exit_code == 1, refused.output
    [line] = refused.output.strip().splitlines()
    assert f"pull request #1 from {BRANCH!r} is still open" in line
    assert (
        f"(the catalogue publishes from {BRANCH!r} of {FORK} now)" in line
        and "remove fork from the catalogue's config again" in line
    )
    assert fork.sha(BRANCH) is None and len(github.pulls) == 1

    github.pulls[0]["state"] = "closed"  # the maintainer closes it, as the message says
    moved = publish()
    assert moved.exit_code == 0, moved.output
    assert [(p["head_owner"], p["state"]) for p in github.pulls] == [(OWNER, "closed"), (FORK_OWNER, "open")]
    assert rows(engine)[-1] == (2, f"{FORK}:{BRANCH}", "open")


@pytest.mark.parametrize(
    ("breakage", "message", "code"),
    [
        ("missing", f"the fork {FORK} is not found at", 2),
        ("read-only", f"the token may not push to the fork {FORK}", 2),
        ("elsewhere", f"{FORK} is a fork of someone/else, not of {OWNER}/{REPO}", 2),
        ("git", "cannot read the fork at", 1),
        ("rejected", "the remote rejected the push to 'vpt-tracker/awesome-vpt'", 1),
    ],
)
def test_a_fork_that_cannot_be_used_publishes_nothing_and_the_rerun_after_the_fix_does(
    breakage: str,
    message: str,
    code: int,
    publish: Publish,
    engine: Engine,
    github: FakeGithub,
    remote: Remote,
    fork: Remote,
    tmp_path: Path,
) -> None:
    import_list(engine)
    ids = accept_two(engine)
    config: dict[str, str | None] = {}
    hook = fork.bare / "hooks" / "pre-receive"
    if breakage == "missing":
        github.fork = None
    elif breakage == "read-only":
        github.fork_read_only = True
    elif breakage == "elsewhere":
        github.fork_parent = "someone/else"
    elif breakage == "git":
        config["fork_git_url"] = str(tmp_path / "no-such-fork.git")
    else:  # the fork's own branch protection
        fork.reject_pushes(f"error: GH006: Protected branch update failed for refs/heads/{BRANCH}.")

    failed = publish(**config)
    assert failed.exit_code == code, failed.output
    [line] = failed.output.strip().splitlines()
    assert message in line
    assert TOKEN not in line and "Traceback" not in line
    assert set(statuses(engine).values()) == {"accepted"}
    assert github.pulls == [] and fork.sha(BRANCH) is None and remote.sha(BRANCH) is None

    github.fork, github.fork_read_only, github.fork_parent = fork, False, f"{OWNER}/{REPO}"
    hook.unlink(missing_ok=True)
    fixed = publish()
    assert fixed.exit_code == 0, fixed.output
    assert len(github.pulls) == 1 and github.pulls[0]["head_owner"] == FORK_OWNER
    assert statuses(engine) == dict.fromkeys(ids, "published")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fork": "https://github.com/co-maintainer/list"}, "fork must look like 'owner/name'"),
        ({"fork": f"{OWNER.upper()}/{REPO}"}, "is the list's repository itself"),
        ({"fork": None, "fork_git_url": "/srv/fork.git"}, "fork_git_url is set but fork is not"),
    ],
)
def test_a_bad_fork_in_the_config_is_one_line_naming_the_key(
    config: dict[str, str | None],
    message: str,
    tmp_path: Path,
    db_url: str,
    github: FakeGithub,
    remote: Remote,
) -> None:
    path = write_config(tmp_path, github, remote, **config)
    result = CliRunner().invoke(main, ["--config", str(path), "--database", db_url, "publish", CATALOGUE])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert message in line and "fork" in line


def test_a_fork_that_is_the_stored_repository_is_refused(
    publish: Publish, engine: Engine, github: FakeGithub, remote: Remote, fork: Remote
) -> None:
    """With no github_repo in the config the list's repository is the one stored at import:
    a fork naming it is refused before anything is pushed."""
    import_list(engine)
    accept_two(engine)
    result = publish(github_repo=None, fork=f"{OWNER}/{REPO}")
    assert result.exit_code == 2, result.output
    assert "is the list's repository itself" in result.output
    assert github.requests == [] and remote.sha(BRANCH) is None and fork.sha(BRANCH) is None


def test_a_declined_pull_request_from_the_fork_is_not_reopened_and_an_emptied_one_is_closed(
    publish: Publish, engine: Engine, github: FakeGithub, remote: Remote, tmp_path: Path, db_url: str
) -> None:
    """The closed pull requests and the open one are looked up by the fork's head: asked with
    the list's owner, the declined pull request was not seen (and opened again with the same
    changes), and the emptied one was left open."""
    import_list(engine)
    plot = accept_plot(engine, {"learnable": 0.88})
    assert publish().exit_code == 0
    github.pulls[0]["state"] = "closed"  # the maintainer declines it
    refused = publish()
    assert refused.exit_code == 1, refused.output
    assert "pull request #1 with exactly these changes was closed without merging" in refused.output
    assert len(github.pulls) == 1

    third = accept_inpainting(engine, {"generative": 0.9})
    opened = publish()
    assert opened.exit_code == 0 and "opened pull request #2" in opened.output, opened.output

    (tmp_path / "review").mkdir()
    config = write_config(tmp_path / "review", github, remote)
    for candidate in (plot, third):
        rejected = CliRunner().invoke(
            main,
            ["--config", str(config), "--database", db_url, "review", "reject", str(candidate), *REASON],
        )
        assert rejected.exit_code == 0, rejected.output
    closed = publish()
    assert closed.exit_code == 0, closed.output
    assert "closed pull request #2: nothing is left to propose" in closed.output
    assert github.open_pulls() == []


def test_a_fork_and_branch_too_long_to_record_are_refused_before_anything_is_pushed(
    publish: Publish, engine: Engine, github: FakeGithub, fork: Remote
) -> None:
    """`pull_requests.branch` keeps `owner/name:branch` in 255 characters: a longer one
    would fail on PostgreSQL as the push is recorded (SQLite does not check lengths)."""
    import_list(engine)
    accept_two(engine)
    branch = "b" * 250
    result = publish(branch=branch)
    assert result.exit_code == 2, result.output
    assert "fork and branch of catalogue 'awesome-vpt' together take" in result.output
    assert github.requests == [] and fork.sha(branch) is None


def test_a_token_that_may_not_open_the_pull_request_on_the_list_says_which_token_to_use(
    publish: Publish, engine: Engine, github: FakeGithub, fork: Remote
) -> None:
    """A fine-grained token limited to the fork pushes the branch and then gets 403 opening the
    pull request on the list: the message says why (not "may not write to" the list, which
    it never meant to), and the rerun with a token that may opens it on the pushed branch."""
    import_list(engine)
    ids = accept_two(engine)
    github.read_only = True  # writes to the list's API get 403 "Resource not accessible ..."
    failed = publish()
    assert failed.exit_code == 2, failed.output
    [line] = failed.output.strip().splitlines()
    assert f"the token may not open a pull request on {OWNER}/{REPO}" in line
    assert f"from {FORK_OWNER}:{BRANCH}: 403 Resource not accessible by personal access token" in line
    assert "classic token" in line and "The branch is pushed" in line
    pushed = fork.sha(BRANCH)
    assert pushed is not None and github.pulls == [] and set(statuses(engine).values()) == {"accepted"}

    github.read_only = False
    fixed = publish()
    assert fixed.exit_code == 0 and "opened pull request #1" in fixed.output, fixed.output
    assert fork.sha(BRANCH) == pushed and statuses(engine) == dict.fromkeys(ids, "published")
