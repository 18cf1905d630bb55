"""The git edge: a real smart-HTTP remote (`git http-backend` behind a WSGI server on
127.0.0.1) that demands the token, so the tests see exactly what git sends."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from vpt_tracker.errors import UserError
from vpt_tracker.publish.git import GitError, GitRepo, PushRejected

from .conftest import README_0624, TOKEN, Remote

BASIC = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class GitHttpServer:
    """Serves the bare repositories under `root` over git's smart HTTP protocol."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.authorizations: list[str | None] = []
        self.server: WSGIServer = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION")
        self.authorizations.append(auth)
        if auth != BASIC:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"bad credentials\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "x-access-token",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=True)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return [payload]

    def __enter__(self) -> GitHttpServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_remote(remote: Remote) -> Iterator[tuple[GitHttpServer, str]]:
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=remote.bare, check=True)
    with GitHttpServer(remote.bare.parent) as server:
        yield server, f"{server.url}/{remote.bare.name}"


def _files(folder: Path) -> Iterator[bytes]:
    for path in folder.rglob("*"):
        if path.is_file():
            yield path.read_bytes()


def test_token_goes_in_a_header_and_never_to_disk(
    http_remote: tuple[GitHttpServer, str], remote: Remote, tmp_path: Path
) -> None:
    server, url = http_remote
    repo = GitRepo(tmp_path / "work", url, token=TOKEN)

    state = repo.sync("main", "vpt-tracker/x")
    assert state.base_sha == remote.sha("main") and state.branch_sha is None
    assert repo.show("refs/remotes/origin/main", "README.md") == README_0624.read_text()
    commit = repo.commit_file("refs/remotes/origin/main", "vpt-tracker/x", "README.md", "changed\n", "msg")
    repo.push("vpt-tracker/x", None)

    assert commit is not None and remote.sha("vpt-tracker/x") == commit
    assert remote.show("vpt-tracker/x") == "changed\n"
    assert server.authorizations and set(server.authorizations) == {BASIC}
    config = (tmp_path / "work" / ".git" / "config").read_text()
    assert f"url = {url}\n" in config
    secrets = (TOKEN.encode(), BASIC.split()[1].encode())
    assert not any(secret in data for data in _files(tmp_path / "work") for secret in secrets)


def test_a_rejected_token_is_a_clear_message_without_the_token(
    http_remote: tuple[GitHttpServer, str], tmp_path: Path
) -> None:
    _, url = http_remote
    repo = GitRepo(tmp_path / "work", url, token="ghp_wrong_token_but_long_enough_0000")
    with pytest.raises(GitError) as caught:
        repo.sync("main", "vpt-tracker/x")
    message = str(caught.value)
    assert "git ls-remote" in message and ("401" in message or "Authentication failed" in message)
    assert "ghp_wrong_token" not in message and "\n" not in message


def test_credentials_in_the_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        GitRepo(tmp_path, "https://someone:ghp_secret123456@github.com/o/r.git", token=TOKEN)
    assert "ghp_secret123456" not in str(caught.value)
    assert "https://***@github.com/o/r.git" in str(caught.value)


def test_a_push_racing_someone_else_is_rejected_not_forced(remote: Remote, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "work", str(remote.bare))
    state = repo.sync("main", "vpt-tracker/x")
    repo.commit_file("refs/remotes/origin/main", "vpt-tracker/x", "README.md", "ours\n", "ours")
    theirs = remote.push_readme("theirs\n", "someone else", branch="vpt-tracker/x")  # after our fetch

    with pytest.raises(PushRejected) as caught:
        repo.push("vpt-tracker/x", state.branch_sha)
    assert "rejected the push" in str(caught.value) and "Nothing was published" in str(caught.value)
    assert "[rejected] (stale info)" in str(caught.value)
    assert remote.sha("vpt-tracker/x") == theirs


def test_a_missing_repository_or_branch_is_named(remote: Remote, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="does not appear to be a git repository"):
        GitRepo(tmp_path / "a", str(tmp_path / "nowhere.git")).sync("main", "b")
    with pytest.raises(UserError, match="has no branch 'trunk'; check base_branch"):
        GitRepo(tmp_path / "b", str(remote.bare)).sync("trunk", "b")


def test_foreign_commits_are_the_ones_vpt_tracker_did_not_make(remote: Remote, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "work", str(remote.bare))
    repo.sync("main", "vpt-tracker/x")
    ours = repo.commit_file("refs/remotes/origin/main", "vpt-tracker/x", "README.md", "ours\n", "ours")
    repo.push("vpt-tracker/x", None)
    remote.push_readme("ours, again\n", "a later run", branch="vpt-tracker/x", as_tracker=True)
    theirs = remote.push_readme("theirs\n", "a maintainer's fix", branch="vpt-tracker/x")
    repo.sync("main", "vpt-tracker/x")

    foreign = repo.foreign_commits("refs/remotes/origin/main", "refs/remotes/origin/vpt-tracker/x")
    assert [(c.sha, c.author, c.subject) for c in foreign] == [
        (theirs, "Maintainer <maintainer@example.org>", "a maintainer's fix")
    ]
    assert ours is not None and not repo.foreign_commits("refs/remotes/origin/main", ours)
    # once merged into the base branch (a fast-forward), the commits are no longer only on ours
    subprocess.run(["git", "update-ref", "refs/heads/main", cast(str, theirs)], cwd=remote.bare, check=True)
    repo.sync("main", "vpt-tracker/x")
    assert repo.foreign_commits("refs/remotes/origin/main", "refs/remotes/origin/vpt-tracker/x") == []


def test_a_push_refused_by_a_hook_names_gits_reason_and_the_remotes_words(
    remote: Remote, tmp_path: Path
) -> None:
    remote.reject_pushes(
        "error: GH006: Protected branch update failed for refs/heads/vpt-tracker/x.",
        "error: Changes must be made through a pull request.",
        f"debug: the request carried {TOKEN}",  # a remote that echoes what it was sent
    )
    repo = GitRepo(tmp_path / "work", str(remote.bare), token=TOKEN)
    repo.sync("main", "vpt-tracker/x")
    repo.commit_file("refs/remotes/origin/main", "vpt-tracker/x", "README.md", "ours\n", "ours")

    with pytest.raises(PushRejected) as caught:
        repo.push("vpt-tracker/x", None)
    message = str(caught.value)
    assert message.startswith("the remote rejected the push to 'vpt-tracker/x': ")
    assert "[remote rejected] (pre-receive hook declined)" in message
    assert "GH006: Protected branch update failed for refs/heads/vpt-tracker/x." in message
    assert "Changes must be made through a pull request." in message
    assert "branch protection" in message and "Nothing was published" in message
    assert TOKEN not in message and "the request carried ***" in message
    assert "\n" not in message and caught.value.exit_code == 1
    assert remote.sha("vpt-tracker/x") is None


def test_a_refused_non_fast_forward_names_gits_words(remote: Remote, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "work", str(remote.bare))
    remote.push_readme("an old run\n", "old", branch="vpt-tracker/x", as_tracker=True)
    state = repo.sync("main", "vpt-tracker/x")
    repo.commit_file("refs/remotes/origin/main", "vpt-tracker/x", "README.md", "rebuilt\n", "rebuilt")
    subprocess.run(["git", "config", "receive.denyNonFastForwards", "true"], cwd=remote.bare, check=True)

    with pytest.raises(PushRejected) as caught:
        repo.push("vpt-tracker/x", state.branch_sha)
    message = str(caught.value)
    assert "[remote rejected] (non-fast-forward)" in message
    assert "denying non-fast-forward refs/heads/vpt-tracker/x" in message
    assert "Nothing was published" in message and "\n" not in message


def test_a_fork_holds_our_branch_and_origin_the_base(remote: Remote, fork: Remote, tmp_path: Path) -> None:
    """Our branch is read from the fork and pushed there; the list's branch of the same name
    (someone else's) is neither read nor touched, and the base always comes from origin."""
    remote.push_readme("the list's own branch\n", "theirs", branch="vpt-tracker/x")
    ours_before = fork.push_readme("an older run\n", "old", branch="vpt-tracker/x", as_tracker=True)
    new_main = remote.push_readme("upstream moved on\n", "edit")  # the fork's main is behind now
    repo = GitRepo(tmp_path / "work", str(remote.bare), fork_url=str(fork.bare))

    state = repo.sync("main", "vpt-tracker/x")
    assert (state.base_sha, state.branch_sha) == (new_main, ours_before)
    assert (state.base_ref, state.branch_ref) == (
        "refs/remotes/origin/main",
        "refs/remotes/fork/vpt-tracker/x",
    )
    assert repo.foreign_commits(state.base_ref, state.branch_ref) == []  # the old run was ours
    commit = repo.commit_file(state.base_ref, "vpt-tracker/x", "README.md", "ours\n", "ours")
    repo.push("vpt-tracker/x", state.branch_sha)
    assert fork.sha("vpt-tracker/x") == commit and fork.show("vpt-tracker/x") == "ours\n"
    assert remote.show("vpt-tracker/x") == "the list's own branch\n"

    # The fork removed from the config: our branch is origin's again, the `fork` remote gone.
    plain = GitRepo(tmp_path / "work", str(remote.bare))
    again = plain.sync("main", "vpt-tracker/x")
    assert again.branch_ref == "refs/remotes/origin/vpt-tracker/x" and again.branch_sha == remote.sha(
        "vpt-tracker/x"
    )
    assert plain.run("remote").stdout.split() == ["origin"]


def test_a_fork_git_cannot_reach_is_named(remote: Remote, fork: Remote, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-fork.git"
    with pytest.raises(GitError, match=f"cannot read the fork at {missing}") as caught:
        GitRepo(tmp_path / "a", str(remote.bare), fork_url=str(missing)).sync("main", "b")
    assert "check fork and fork_git_url" in str(caught.value)

    repo = GitRepo(tmp_path / "b", str(remote.bare), fork_url=str(fork.bare))
    repo.sync("main", "b")
    repo.commit_file("refs/remotes/origin/main", "b", "README.md", "ours\n", "ours")
    fork.bare.rename(tmp_path / "gone.git")  # the fork deleted between the fetch and the push
    with pytest.raises(GitError) as failed:
        repo.push("b", None)
    message = str(failed.value)
    assert message.startswith("`git push fork` failed: ") and "\n" not in message
    assert f"the branch goes to the fork at {fork.bare}" in message and "'contents' permission" in message
    assert remote.sha("b") is None


def test_the_token_goes_to_a_fork_served_over_https_beside_a_local_origin(
    remote: Remote, fork: Remote, tmp_path: Path
) -> None:
    subprocess.run(["git", "config", "http.receivepack", "true"], cwd=fork.bare, check=True)
    with GitHttpServer(fork.bare.parent) as server:
        url = f"{server.url}/{fork.bare.name}"
        repo = GitRepo(tmp_path / "work", str(remote.bare), token=TOKEN, fork_url=url)
        repo.sync("main", "vpt-tracker/x")
        commit = repo.commit_file("refs/remotes/origin/main", "vpt-tracker/x", "README.md", "ours\n", "ours")
        repo.push("vpt-tracker/x", None)
        assert fork.sha("vpt-tracker/x") == commit and set(server.authorizations) == {BASIC}

        wrong = GitRepo(
            tmp_path / "other", str(remote.bare), token="ghp_wrong_token_but_long_enough_0000", fork_url=url
        )
        with pytest.raises(GitError) as caught:
            wrong.sync("main", "vpt-tracker/x")
    message = str(caught.value)
    assert message.startswith(f"cannot read the fork at {url}") and "ghp_wrong_token" not in message
    assert "\n" not in message
