"""A list repository's working copy, driven through the `git` command line.

Why the CLI and not a library: it is what maintainers run, it speaks every transport
(https, ssh, a local path) and its errors are the ones they know. Why care about the
token: it must never be written to disk, so it is never put in a URL. It travels per
command in the environment (`GIT_CONFIG_COUNT` = an `http.extraHeader`), which neither
`.git/config` nor `ps` shows, and every message built from git's output is scrubbed.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpt_tracker.errors import UserError

log = logging.getLogger(__name__)

_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
COMMITTER_NAME = "vpt-tracker"
COMMITTER_EMAIL = "vpt-tracker@users.noreply.github.com"


class GitError(UserError):
    """A git command failed; the message is scrubbed of secrets and says what to do."""

    exit_code = 1


class PushRejected(GitError):
    """The remote refused the push (non-fast-forward, stale lease, protected branch)."""


def _auth_header(token: str) -> str:
    """GitHub accepts any user name with the token as password over HTTPS basic auth."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    return f"Authorization: Basic {basic}"


@dataclass
class Scrubber:
    """Removes secrets, and anything derived from them, from text that leaves the process."""

    secrets: tuple[str, ...] = ()

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return _URL_USERINFO.sub(r"\g<scheme>***@", text)


def scrubber_for(token: str | None) -> Scrubber:
    if not token:
        return Scrubber()
    header = _auth_header(token)
    return Scrubber((header, header.split(" ", 2)[2], token))


@dataclass
class RemoteState:
    """What the remotes hold after a fetch: the base branch and our branch (if any), and the
    local refs that hold them (our branch's is the fork's when it is pushed to a fork)."""

    base_sha: str
    branch_sha: str | None
    base_ref: str
    branch_ref: str


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str  # "Name <email>"
    subject: str


FORK = "fork"  # the remote our branch is pushed to when the catalogue publishes from a fork


class GitRepo:
    """One working copy under the data directory, with `origin` pointing at the list's
    repository and, for a catalogue published from a fork, `fork` at the fork.

    The base branch is always read from `origin`; our branch lives on `fork` when there is
    one (it is fetched from there and pushed there), else on `origin`. `sync()` makes the
    working copy match the remotes (init + fetch, so "clone" and "update" are one path, and
    a working copy left dirty by a crash never blocks a rerun).
    """

    def __init__(
        self,
        workdir: Path,
        url: str,
        *,
        token: str | None = None,
        fork_url: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.workdir = workdir
        self.url = url
        self.fork_url = fork_url
        self.timeout = timeout
        self._token = token
        self._scrub = scrubber_for(token)
        for key, value in (("git_url", url), ("fork_git_url", fork_url or "")):
            if _URL_USERINFO.search(value):
                raise UserError(
                    f"{key} {self._scrub(value)} carries credentials; put the token in VPT_GITHUB__TOKEN "
                    "or the secrets file instead"
                )

    @property
    def branch_remote(self) -> str:
        """The remote our branch is fetched from and pushed to."""
        return FORK if self.fork_url else "origin"

    # -- plumbing ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG")}
        env.update(
            GIT_TERMINAL_PROMPT="0",  # never hang on a password prompt in a cron job
            GIT_ASKPASS="true",
            SSH_ASKPASS="true",
            GIT_AUTHOR_NAME=COMMITTER_NAME,
            GIT_AUTHOR_EMAIL=COMMITTER_EMAIL,
            GIT_COMMITTER_NAME=COMMITTER_NAME,
            GIT_COMMITTER_EMAIL=COMMITTER_EMAIL,
            LC_ALL="C",  # stable messages to match on
        )
        urls = (self.url, self.fork_url or "")
        if self._token and any(u.lower().startswith(("http://", "https://")) for u in urls):
            env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader")
            env["GIT_CONFIG_VALUE_0"] = _auth_header(self._token)
        return env

    def run(
        self, *args: str, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `git ARGS` in the working copy; a failure raises GitError with scrubbed output."""
        done: subprocess.CompletedProcess[str] = self._git(args, text=True, input_text=input_text)
        if check and done.returncode != 0:
            raise GitError(self.describe_failure(args, done.stderr))
        return done

    def _git(self, args: Sequence[str], *, text: bool, input_text: str | None = None) -> Any:
        """`git ARGS` as a finished process, its output as text or (`text=False`) as bytes."""
        log.debug("git %s", self._scrub(" ".join(args)))
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.workdir,
                env=self._env(),
                input=input_text,
                capture_output=True,
                text=text,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise UserError("the `git` command is not installed or not on PATH") from None
        except subprocess.TimeoutExpired:
            raise GitError(f"`git {self._scrub(args[0])}` took longer than {self.timeout:.0f} s") from None

    def describe_failure(self, args: Sequence[str], stderr: str) -> str:
        lines = [line.strip() for line in self._scrub(stderr).splitlines() if line.strip()]
        useful = [line for line in lines if line.startswith(("fatal:", "error:", "remote:", " !"))] or lines
        detail = "; ".join(useful[-3:]) or "no output"
        return f"`git {' '.join(self._scrub(a) for a in args[:2])}` failed: {detail}"

    # -- use cases -------------------------------------------------------------------------

    def sync(self, base_branch: str, branch: str) -> RemoteState:
        """Create the working copy if needed, point the remotes at their URLs, and fetch the
        base branch (from `origin`) and our branch (from the fork, if there is one)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.workdir / ".git").is_dir():
            self.run("init", "--quiet")
        self._clear_stale_locks()
        remotes = self.run("remote").stdout.split()
        self._set_remote(remotes, "origin", self.url)
        if self.fork_url:
            self._set_remote(remotes, FORK, self.fork_url)
        elif FORK in remotes:  # the config's fork was removed: our branch is on origin again
            self.run("remote", "remove", FORK)
        heads = self.ls_remote()
        if base_branch not in heads:
            where = self._scrub(self.url)
            raise UserError(f"the repository {where} has no branch {base_branch!r}; check base_branch")
        own = self.branch_remote
        branch_heads = heads if own == "origin" else self._fork_heads()
        base_ref = f"refs/remotes/origin/{base_branch}"
        branch_ref = f"refs/remotes/{own}/{branch}"
        fetches = {"origin": [f"+refs/heads/{base_branch}:{base_ref}"]}
        if branch in branch_heads:
            fetches.setdefault(own, []).append(f"+refs/heads/{branch}:{branch_ref}")
        for remote, refspecs in fetches.items():
            self.run("fetch", "--quiet", "--no-tags", remote, *refspecs)
        return RemoteState(
            base_sha=heads[base_branch],
            branch_sha=branch_heads.get(branch),
            base_ref=base_ref,
            branch_ref=branch_ref,
        )

    def _set_remote(self, remotes: list[str], name: str, url: str) -> None:
        if name in remotes:
            self.run("remote", "set-url", name, url)
        else:
            self.run("remote", "add", name, url)

    def _fork_heads(self) -> dict[str, str]:
        """The fork's branches; a fork git cannot read is named as such (before anything is
        committed or pushed)."""
        try:
            return self.ls_remote(FORK)
        except GitError as exc:
            raise GitError(
                f"cannot read the fork at {self._scrub(self.fork_url or '')} ({exc}); check fork and "
                "fork_git_url, and that the token can see the fork"
            ) from None

    def _clear_stale_locks(self) -> None:
        """Remove the lock files a git process killed outright left in the working copy.

        git deletes its `index.lock`, `HEAD.lock` or `refs/.../x.lock` when it ends, even on
        Ctrl-C, but not when it is killed (SIGKILL, the OOM killer, a container stopped hard,
        a power cut): then every later publish failed at `git checkout` with "Unable to
        create '.../index.lock': File exists" until someone deleted the file by hand. The
        working copy is vpt-tracker's own and the caller holds the catalogue's publish lock
        (`Publisher.run`), so no git process of ours is working in it: a lock here is stale.
        """
        git_dir = self.workdir / ".git"
        for lock in [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]:
            log.warning("removing %s, left by a git process that was killed", lock)
            lock.unlink(missing_ok=True)

    def ls_remote(self, remote: str = "origin") -> dict[str, str]:
        """Branch name -> commit on `remote`, read without changing anything locally."""
        out = self.run("ls-remote", "--heads", remote).stdout
        heads: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                heads[ref.removeprefix("refs/heads/")] = sha
        return heads

    def show(self, commit: str, path: str) -> str | None:
        """The text of `path` at `commit`, or None if it does not exist there. Read as bytes
        and decoded as is: text mode would turn CRLF line endings into LF."""
        done: subprocess.CompletedProcess[bytes] = self._git(["show", f"{commit}:{path}"], text=False)
        if done.returncode != 0:
            return None
        try:
            return done.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} at {commit} is not UTF-8 text, so not a markdown README") from None

    def foreign_commits(self, base: str, branch: str) -> list[Commit]:
        """The commits on `branch` but not on `base` that vpt-tracker did not make (someone
        else authored or committed them: a maintainer's fix pushed to our PR branch, a merge
        or rebase done on GitHub), newest first."""
        out = self.run(
            "log", "--format=%H%x1f%an <%ae>%x1f%ae%x1f%ce%x1f%s", f"{base}..{branch}", "--"
        ).stdout
        found = []
        for line in out.splitlines():
            sha, author, author_email, committer_email, subject = (line.split("\x1f") + [""] * 5)[:5]
            if author_email != COMMITTER_EMAIL or committer_email != COMMITTER_EMAIL:
                found.append(Commit(sha, author, subject))
        return found

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.run("merge-base", "--is-ancestor", older, newer, check=False).returncode == 0

    def commit_file(self, start: str, branch: str, path: str, text: str, message: str) -> str | None:
        """Check out `branch` at `start`, write `path`, commit; the new commit, or None if
        the file already had that content."""
        self.run("checkout", "--quiet", "--force", "-B", branch, start)
        self.run("clean", "--quiet", "-fdx")
        target = self.workdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
        self.run("add", "--", path)
        if self.run("diff", "--cached", "--quiet", check=False).returncode == 0:
            return None
        self.run("commit", "--quiet", "--no-verify", "-m", message)
        return self.run("rev-parse", "HEAD").stdout.strip()

    def push(self, branch: str, expected_remote_sha: str | None) -> None:
        """Push HEAD to `branch` (of the fork, if there is one), overwriting it only if it
        still is `expected_remote_sha` (None: it must not exist), so that someone else's push
        is never lost."""
        remote = self.branch_remote
        lease = f"--force-with-lease=refs/heads/{branch}:{expected_remote_sha or ''}"
        done = self.run("push", "--porcelain", lease, remote, f"HEAD:refs/heads/{branch}", check=False)
        if done.returncode == 0:
            return
        rejected = self.push_rejection(branch, done.stdout, done.stderr)
        if rejected is not None:
            raise PushRejected(rejected)
        failure = self.describe_failure(("push", remote), done.stderr)
        if self.fork_url:
            failure += (
                f"; the branch goes to the fork at {self._scrub(self.fork_url)}: check that the token "
                "may push to it (the 'contents' permission on the fork)"
            )
        raise GitError(failure)

    def push_rejection(self, branch: str, stdout: str, stderr: str) -> str | None:
        """The one-line message for a push the remote refused, or None if it was not refused
        (a network or authentication failure). It says what git reported for the ref
        (`[remote rejected] (pre-receive hook declined)`) and what the remote printed
        (`remote: error: GH006: Protected branch update failed ...`), scrubbed."""
        statuses = [
            parts[2].strip()
            for line in stdout.splitlines()
            if line.startswith("!") and len(parts := line.split("\t")) >= 3
        ]
        if not statuses:
            return None
        status = statuses[0]
        said = []
        for line in stderr.splitlines():
            if line.startswith("remote:"):
                text = " ".join(_CONTROL.sub(" ", line.removeprefix("remote:")).split())
                if text:
                    said.append(text)
        remote_text = " / ".join(said[:_REMOTE_LINES])
        if len(remote_text) > _REMOTE_CHARS:
            remote_text = remote_text[: _REMOTE_CHARS - 3] + "..."
        why, advice = _rejection_reason(status.lower(), branch)
        git_said = f"git: {status}" + (f"; remote: {remote_text}" if remote_text else "")
        return self._scrub(
            f"the remote rejected the push to {branch!r}: {why} ({git_said}). Nothing was published; {advice}"
        )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REMOTE_LINES = 6  # GitHub's rule violations take a few lines; its hints after them add nothing
_REMOTE_CHARS = 400


def _rejection_reason(status: str, branch: str) -> tuple[str, str]:
    """What a porcelain push status ("[rejected] (stale info)") means, and what to do."""
    if "stale info" in status:
        return (
            "someone else pushed to it since the fetch",
            "run publish again: it fetches the branch anew and never overwrites a commit it did not make",
        )
    if "remote rejected" in status and "non-fast-forward" in status:
        return (
            "the remote refuses to rewrite the branch (non-fast-forward)",
            f"delete the remote branch {branch!r} (or allow force pushes to it) and run publish again",
        )
    if "non-fast-forward" in status or "fetch first" in status:
        return "the branch moved on the remote (non-fast-forward)", "run publish again"
    if "hook declined" in status or "protected" in status:
        return (
            "a hook or the branch protection of the repository refused it",
            f"let vpt-tracker push to {branch!r} (branch protection rules) or set another `branch` for "
            "the catalogue in the config, and run publish again",
        )
    return "see git's words", "fix what the remote reports and run publish again"
