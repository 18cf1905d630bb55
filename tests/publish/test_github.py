"""The GitHub REST client against the stand-in server on 127.0.0.1."""

from __future__ import annotations

import pytest

from vpt_tracker.errors import UserError
from vpt_tracker.publish.github import GithubClient, GithubError, split_repo

from .conftest import FORK, FORK_OWNER, OWNER, README_0624, REPO, TOKEN, FakeGithub, Remote

BRANCH = "vpt-tracker/awesome-vpt"


def client(github: FakeGithub, token: str = TOKEN) -> GithubClient:
    return GithubClient(github.base_url, f"{OWNER}/{REPO}", token)


def test_requests_carry_the_token_and_api_version(github: FakeGithub, remote: Remote) -> None:
    with client(github) as gh:
        assert gh.get_branch_sha("main") == remote.sha("main")
    request = github.requests[0]
    assert request.path == f"/repos/{OWNER}/{REPO}/git/ref/heads/main"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.headers["user-agent"].startswith("vpt-tracker/")


def test_create_then_find_then_update_one_pull(github: FakeGithub, remote: Remote) -> None:
    remote.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH)
    with client(github) as gh:
        assert gh.find_open_pull(BRANCH, "main") is None
        created = gh.create_pull(branch=BRANCH, base="main", title="t1", body="b1")
        found = gh.find_open_pull(BRANCH, "main")
        edited = gh.update_pull(created.number, title="t2", body="b2")
    assert found is not None and found.number == created.number == 1
    assert created.url == f"https://github.com/{OWNER}/{REPO}/pull/1"
    assert created.head_sha == remote.sha(BRANCH)
    assert (edited.title, edited.body) == ("t2", "b2")
    assert github.pulls[0]["body"] == "b2" and len(github.pulls) == 1


def test_a_pull_opened_concurrently_is_edited_not_duplicated(github: FakeGithub, remote: Remote) -> None:
    remote.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH)
    with client(github) as gh:
        gh.create_pull(branch=BRANCH, base="main", title="other run", body="x")
        second = gh.create_pull(branch=BRANCH, base="main", title="this run", body="y")
    assert second.number == 1 and len(github.pulls) == 1
    assert github.pulls[0]["title"] == "this run"


def test_errors_are_one_line_and_name_the_cause(github: FakeGithub) -> None:
    with client(github, "ghp_revoked_000000000000") as gh, pytest.raises(GithubError) as bad_token:
        gh.get_branch_sha("main")
    assert "GitHub rejected the token" in str(bad_token.value) and bad_token.value.exit_code == 2
    assert "ghp_revoked" not in str(bad_token.value)

    with client(github) as gh, pytest.raises(GithubError, match="has no branch 'trunk'"):
        gh.get_branch_sha("trunk")

    github.missing_repo = True
    with client(github) as gh, pytest.raises(GithubError, match=f"repository {OWNER}/{REPO} not found"):
        gh.get_branch_sha("main")

    with (
        GithubClient("http://127.0.0.1:9", f"{OWNER}/{REPO}", TOKEN) as gh,
        pytest.raises(GithubError, match=r"cannot reach the GitHub API at http://127\.0\.0\.1:9"),
    ):
        gh.find_open_pull(BRANCH, "main")


def test_a_pull_for_a_branch_never_pushed_is_refused(github: FakeGithub) -> None:
    with client(github) as gh, pytest.raises(GithubError, match="GitHub answered 422"):
        gh.create_pull(branch="never-pushed", base="main", title="t", body="b")


@pytest.mark.parametrize("bad", ["noslash", "a/b/c", "/name", "owner/", "own er/x"])
def test_repository_names_are_checked(bad: str) -> None:
    with pytest.raises(UserError, match="owner/name"):
        split_repo(bad)


def test_forbidden_writes_and_rate_limits_say_so(github: FakeGithub, remote: Remote) -> None:
    remote.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH)
    github.read_only = True
    with client(github) as gh, pytest.raises(GithubError) as forbidden:
        gh.create_pull(branch=BRANCH, base="main", title="t", body="b")
    assert f"the token may not write to {OWNER}/{REPO}" in str(forbidden.value)
    assert "Resource not accessible by personal access token" in str(forbidden.value)
    assert forbidden.value.exit_code == 2 and github.pulls == []

    github.rate_limited = True
    with client(github) as gh, pytest.raises(GithubError, match="rate limit exhausted") as limited:
        gh.get_branch_sha("main")
    assert limited.value.exit_code == 1


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_says_when_to_retry_not_that_the_token_lacks_permissions(
    github: FakeGithub, remote: Remote, status: int
) -> None:
    """GitHub's secondary limit (too many writes in a short time) is a 403 or a 429 with
    `retry-after`; it was reported as a token without write permission (exit 2), or as a bare
    "answered 429", sending the maintainer to regenerate a token that was fine."""
    remote.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH)
    github.secondary_limited, github.secondary_status = True, status
    with client(github) as gh, pytest.raises(GithubError) as limited:
        gh.create_pull(branch=BRANCH, base="main", title="t", body="b")
    message = str(limited.value)
    assert "secondary rate limit" in message and "retry after 60 s" in message
    assert "may not write" not in message and limited.value.exit_code == 1


def test_the_primary_rate_limit_says_when_it_resets(github: FakeGithub) -> None:
    github.rate_limited = True
    with client(github) as gh, pytest.raises(GithubError) as limited:
        gh.get_branch_sha("main")
    assert "rate limit exhausted" in str(limited.value)
    assert "resets at 2026-11-18 11:06 UTC" in str(limited.value)


def test_a_validation_failure_names_what_github_refused(github: FakeGithub, remote: Remote) -> None:
    """A 422's `message` is only "Validation Failed"; the reason is in its `errors`."""
    remote.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH)
    github.pulls.append(  # an open pull request from the branch into another base (base_branch changed)
        {"number": 7, "state": "open", "title": "old", "body": "", "head": BRANCH, "base": "master"}
    )
    with client(github) as gh, pytest.raises(GithubError) as refused:
        gh.create_pull(branch=BRANCH, base="main", title="t", body="b")
    assert f"Validation Failed: A pull request already exists for {OWNER}:{BRANCH}." in str(refused.value)


def test_a_pull_request_from_a_fork_names_the_forks_owner(
    github: FakeGithub, remote: Remote, fork: Remote
) -> None:
    """GitHub looks for `head = "branch"` in the list's repository and for `owner:branch` in
    that owner's: the fork's branch is found only by its owner, and listing by the list's
    owner does not return the fork's pull request."""
    github.fork = fork
    fork.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH, as_tracker=True)
    with client(github) as gh:
        with pytest.raises(GithubError, match="422"):  # not on the list's repository
            gh.create_pull(branch=BRANCH, base="main", title="t", body="b")
        created = gh.create_pull(branch=BRANCH, base="main", title="t", body="b", head_repo=FORK)
        assert gh.find_open_pull(BRANCH, "main") is None
        found = gh.find_open_pull(BRANCH, "main", head_repo=FORK.upper())  # GitHub's names ignore case
        again = gh.create_pull(branch=BRANCH, base="main", title="t2", body="b2", head_repo=FORK)
    assert found is not None and found.number == created.number == again.number == 1
    assert created.head_sha == fork.sha(BRANCH) and len(github.pulls) == 1
    assert github.calls("POST", r"/pulls$")[-1].body["head"] == f"{FORK_OWNER}:{BRANCH}"
    assert github.pulls[0]["title"] == "t2"


def test_a_fork_that_may_not_grant_maintainer_edits_still_gets_its_pull_request(
    github: FakeGithub, remote: Remote, fork: Remote
) -> None:
    github.fork, github.fork_collab_denied = fork, True
    fork.push_readme(README_0624.read_text() + "\n", "ours", branch=BRANCH, as_tracker=True)
    with client(github) as gh:
        created = gh.create_pull(branch=BRANCH, base="main", title="t", body="b", head_repo=FORK)
    assert created.number == 1 and github.pulls[0]["head_owner"] == FORK_OWNER
    assert [c.body["maintainer_can_modify"] for c in github.calls("POST", r"/pulls$")] == [True, False]


def test_check_fork_names_each_way_a_fork_is_unusable(github: FakeGithub, fork: Remote) -> None:
    with client(github) as gh:
        with pytest.raises(GithubError, match=f"the fork {FORK} is not found") as missing:
            gh.check_fork(FORK)  # not made yet
        github.fork = fork
        gh.check_fork(FORK)
        github.fork_read_only = True
        with pytest.raises(GithubError, match=f"the token may not push to the fork {FORK}") as read_only:
            gh.check_fork(FORK)
        github.fork_read_only, github.fork_parent = False, "someone/else"
        with pytest.raises(GithubError, match=f"{FORK} is a fork of someone/else, not of {OWNER}/{REPO}"):
            gh.check_fork(FORK)
        with pytest.raises(GithubError, match=r"is the list's repository .* itself"):
            gh.check_fork(f"{OWNER}/{REPO}")
    assert missing.value.exit_code == read_only.value.exit_code == 2
