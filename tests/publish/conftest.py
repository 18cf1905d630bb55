"""Publishing fixtures: a bare git repository as the list's remote (and another as a
maintainer's fork of it), a GitHub REST stand-in on 127.0.0.1, an imported catalogue and
accepted candidates.

The GitHub server implements the four endpoints vpt-tracker calls (get a ref, list,
create and edit pulls) plus `GET /repos/{owner}/{repo}` (of the list and of the fork), with
bodies shaped like the GitHub REST documentation's examples (synthetic: built by hand from
those shapes, not recorded from github.com). Branch SHAs come from the bare repositories
themselves, so a pull request can only be opened for a branch that was really pushed, and
only where GitHub looks for it: `head = "branch"` in the list's repository, `head =
"owner:branch"` in the repository of that owner (the fork), and listing pulls with `head =
owner:branch` finds only those from that owner's repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select

from vpt_tracker import normalize
from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.publish.git import COMMITTER_EMAIL, COMMITTER_NAME
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, DecisionRow, PaperRow

LISTS = Path(__file__).resolve().parents[1] / "fixtures" / "lists"
README_0606 = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-06.md"
README_0624 = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
PROMPT_ADAPTATION = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md"
OWNER, REPO = "yunbeizhang", "Awesome-Visual-Prompt-Tuning"
FORK_OWNER = "co-maintainer"
FORK = f"{FORK_OWNER}/{REPO}"  # GitHub names a fork as its parent by default
TOKEN = "ghp_TestToken0123456789abcdefABCDEF0123"
CATALOGUE = "awesome-vpt"


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    environ = {**os.environ, **env} if env else None
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=environ)
    return done.stdout.strip()


# A commit made as vpt-tracker makes its own (a branch left by an earlier run).
AS_TRACKER = {
    "GIT_AUTHOR_NAME": COMMITTER_NAME,
    "GIT_AUTHOR_EMAIL": COMMITTER_EMAIL,
    "GIT_COMMITTER_NAME": COMMITTER_NAME,
    "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
}


# --------------------------------------------------------------------------------------
# The remote: a bare repository seeded with a real README


@dataclass
class Remote:
    bare: Path
    seed: Path  # a clone used to play "the maintainer" pushing to the remote

    def push_readme(
        self, text: str, message: str = "Update README.md", branch: str = "main", *, as_tracker: bool = False
    ) -> str:
        """Commit `text` as README.md on `branch` and push it: as the maintainer, or as
        vpt-tracker itself (`as_tracker`)."""
        git(self.seed, "fetch", "-q", "origin")
        start = f"origin/{branch}" if self.sha(branch) else "origin/main"
        git(self.seed, "checkout", "-q", "-B", branch, start)
        (self.seed / "README.md").write_bytes(text.encode("utf-8"))
        git(self.seed, "commit", "-q", "-am", message, env=AS_TRACKER if as_tracker else None)
        git(self.seed, "push", "-q", "origin", f"HEAD:{branch}")
        return self.sha(branch) or ""

    def reject_pushes(self, *lines: str) -> None:
        """A pre-receive hook that refuses every push, saying `lines` (as GitHub's branch
        protection does: `remote: error: GH006: Protected branch update failed ...`)."""
        hook = self.bare / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\n" + "".join(f"echo '{line}' >&2\n" for line in lines) + "exit 1\n")
        hook.chmod(0o755)

    def sha(self, branch: str) -> str | None:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
            cwd=self.bare,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() or None

    def show(self, branch: str, path: str = "README.md") -> str:
        command = ["git", "show", f"{branch}:{path}"]
        done = subprocess.run(command, cwd=self.bare, capture_output=True, check=True)
        return done.stdout.decode("utf-8")

    def refs(self) -> dict[str, str]:
        out = git(self.bare, "for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split(" ") for line in out.splitlines())


def _seed(seed: Path, bare: Path) -> None:
    seed.mkdir()
    git(seed, "init", "-q", "--initial-branch=main")
    git(seed, "config", "user.name", "Maintainer")
    git(seed, "config", "user.email", "maintainer@example.org")
    git(seed, "remote", "add", "origin", str(bare))


@pytest.fixture
def fork(tmp_path: Path, remote: Remote) -> Remote:
    """A co-maintainer's fork of the list: a bare copy of it, as GitHub's Fork button makes."""
    bare = tmp_path / "fork" / f"{REPO}.git"
    bare.parent.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(remote.bare), str(bare))
    seed = tmp_path / "co-maintainer"
    _seed(seed, bare)
    git(seed, "fetch", "-q", "origin")
    return Remote(bare, seed)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    bare = tmp_path / "remote" / f"{REPO}.git"
    bare.mkdir(parents=True)
    git(bare, "init", "-q", "--bare", "--initial-branch=main")
    seed = tmp_path / "maintainer"
    _seed(seed, bare)
    (seed / "README.md").write_bytes(README_0624.read_bytes())
    (seed / "LICENSE").write_text("MIT\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "Initial list")
    git(seed, "push", "-q", "origin", "main")
    return Remote(bare, seed)


# --------------------------------------------------------------------------------------
# The GitHub REST stand-in


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGithub:
    remote: Remote
    token: str = TOKEN
    requests: list[Recorded] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    missing_repo: bool = False
    read_only: bool = False  # a token without write access: writes get 403
    rate_limited: bool = False  # every call gets 403 with x-ratelimit-remaining: 0
    # GitHub's secondary rate limit (too many writes too fast): 403 with `retry-after`, while
    # x-ratelimit-remaining still shows calls left; `secondary_status` 429 is its other form.
    secondary_limited: bool = False
    secondary_status: int = 403
    server_error: int = 0  # a status of 500 and more that every pull request write gets
    # GitHub opened the pull request, but the answer never came back (a 502 from its proxy)
    lost_answer: bool = False
    fork: Remote | None = None  # the fork FORK, once the maintainer made it
    fork_read_only: bool = False  # the token may read the fork, not push to it
    fork_parent: str = f"{OWNER}/{REPO}"  # what the fork is a fork of
    # the token may not grant the list's maintainers edits on the fork's branch
    fork_collab_denied: bool = False
    base_url: str = ""

    def calls(self, method: str, pattern: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls if p["state"] == "open"]

    # bodies shaped like the REST documentation's examples
    def _repo_body(self) -> dict[str, Any]:
        api = f"{self.base_url}/repos/{OWNER}/{REPO}"
        return {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": REPO,
            "full_name": f"{OWNER}/{REPO}",
            "owner": {"login": OWNER, "id": 1, "type": "User"},
            "private": False,
            "html_url": f"https://github.com/{OWNER}/{REPO}",
            "url": api,
            "default_branch": "main",
        }

    def _fork_body(self) -> dict[str, Any]:
        """A fork as `GET /repos/{owner}/{repo}` shows it: `fork`, `parent` and `source`,
        and what the token may do there (`permissions`)."""
        parent = {"full_name": self.fork_parent, "owner": {"login": self.fork_parent.split("/")[0]}}
        return {
            "id": 1296270,
            "name": REPO,
            "full_name": FORK,
            "owner": {"login": FORK_OWNER, "id": 3, "type": "User"},
            "private": False,
            "html_url": f"https://github.com/{FORK}",
            "url": f"{self.base_url}/repos/{FORK}",
            "fork": True,
            "default_branch": "main",
            "permissions": {
                "admin": not self.fork_read_only,
                "maintain": not self.fork_read_only,
                "push": not self.fork_read_only,
                "triage": True,
                "pull": True,
            },
            "parent": parent,
            "source": parent,
        }

    def _owned(self, owner: str) -> tuple[str, Remote] | None:
        """The repository of the list's network that `owner` holds (GitHub compares owners
        without case): ("owner/name", its bare repository)."""
        if owner.lower() == OWNER.lower():
            return f"{OWNER}/{REPO}", self.remote
        if self.fork is not None and owner.lower() == FORK_OWNER.lower():
            return FORK, self.fork
        return None

    def _pull_body(self, pull: dict[str, Any]) -> dict[str, Any]:
        api = f"{self.base_url}/repos/{OWNER}/{REPO}"
        head_owner = pull.get("head_owner", OWNER)
        owned = self._owned(head_owner)
        head_repo = owned[0] if owned else f"{head_owner}/{REPO}"
        head_sha = (owned[1].sha(pull["head"]) if owned else None) or ""
        base_sha = self.remote.sha(pull["base"])
        return {
            "url": f"{api}/pulls/{pull['number']}",
            "id": 1000 + pull["number"],
            "node_id": f"PR_kwDO{pull['number']:06d}",
            "html_url": f"https://github.com/{OWNER}/{REPO}/pull/{pull['number']}",
            "number": pull["number"],
            "state": pull["state"],
            "locked": False,
            "title": pull["title"],
            "user": {"login": "vpt-bot", "id": 2, "type": "User"},
            "body": pull["body"],
            "created_at": "2026-11-23T12:00:00Z",
            "updated_at": "2026-11-23T12:00:00Z",
            "head": {
                "label": f"{head_owner}:{pull['head']}",
                "ref": pull["head"],
                "sha": head_sha,
                "repo": {"full_name": head_repo, "name": REPO, "owner": {"login": head_owner}},
            },
            "base": {"label": f"{OWNER}:{pull['base']}", "ref": pull["base"], "sha": base_sha},
            "draft": False,
            "merged": False,
            "maintainer_can_modify": True,
        }

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        self.requests.append(Recorded(method, path, query, headers, body))
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        prefix = f"/repos/{OWNER}/{REPO}"
        not_found = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        if self.rate_limited:
            return 403, {"message": "API rate limit exceeded for user ID 2."}
        if self.secondary_limited and method in ("POST", "PATCH"):
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
            )
            return self.secondary_status, {
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
            }
        if self.server_error and method in ("POST", "PATCH"):
            return self.server_error, {"message": "Server Error"}
        if self.read_only and method in ("POST", "PATCH"):
            message = "Resource not accessible by personal access token"
            return 403, {"message": message, "documentation_url": "https://docs.github.com/rest"}
        if path.lower() == f"/repos/{FORK}".lower() and method == "GET":
            return (200, self._fork_body()) if self.fork is not None else (404, not_found)
        if self.missing_repo or not (path == prefix or path.startswith(prefix + "/")):
            return 404, not_found
        rest = path[len(prefix) :]
        if method == "GET" and rest == "":
            return 200, self._repo_body()
        if method == "GET" and rest.startswith("/git/ref/heads/"):
            branch = rest.removeprefix("/git/ref/heads/")
            sha = self.remote.sha(branch)
            if sha is None:
                return 404, not_found
            ref_url = f"{self.base_url}{prefix}/git/refs/heads/{branch}"
            obj = {"sha": sha, "type": "commit", "url": f"{self.base_url}{prefix}/git/commits/{sha}"}
            return 200, {"ref": f"refs/heads/{branch}", "node_id": "REF_1", "url": ref_url, "object": obj}
        if rest == "/pulls" and method == "GET":
            head = query.get("head", [None])[0]
            base = query.get("base", [None])[0]
            state = query.get("state", ["open"])[0]
            found = [
                p
                for p in self.pulls
                if (head is None or head.lower() == f"{p.get('head_owner', OWNER)}:{p['head']}".lower())
                and base in (None, p["base"])
                and state in ("all", p["state"])
            ]
            return 200, [self._pull_body(p) for p in found]
        too_long = {"resource": "Issue", "code": "custom", "field": "body"}
        if rest.startswith("/pulls") and method in ("POST", "PATCH") and len(body.get("body") or "") > 65536:
            # GitHub's answer (renovatebot/renovate#2032 quotes it)
            errors = [too_long | {"message": "body is too long (maximum is 65536 characters)"}]
            return 422, {"message": "Validation Failed", "errors": errors}
        if rest == "/pulls" and method == "POST":
            # "owner:branch" is the branch of owner's repository; a bare "branch" the list's own
            owner, colon, ref = body["head"].rpartition(":")
            owned = self._owned(owner if colon else OWNER)
            if owned is None or owned[1].sha(ref) is None:
                errors = [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
                return 422, {"message": "Validation Failed", "errors": errors}
            head_owner = owned[0].split("/")[0]
            if self.fork_collab_denied and head_owner != OWNER and body.get("maintainer_can_modify"):
                # GitHub's answer (electron/trop#93 quotes it)
                message = "fork_collab Fork collab can't be granted by someone without permission"
                errors = [
                    {"resource": "PullRequest", "code": "custom", "field": "fork_collab", "message": message}
                ]
                return 422, {"message": "Validation Failed", "errors": errors}
            if any(
                (p.get("head_owner", OWNER), p["head"]) == (head_owner, ref) and p["state"] == "open"
                for p in self.pulls
            ):
                message = f"A pull request already exists for {head_owner}:{ref}."
                errors = [{"resource": "PullRequest", "code": "custom", "message": message}]
                return 422, {"message": "Validation Failed", "errors": errors}
            pull = {
                "number": len(self.pulls) + 1,
                "state": "open",
                "title": body["title"],
                "body": body.get("body", ""),
                "head": ref,
                "head_owner": head_owner,
                "base": body["base"],
            }
            self.pulls.append(pull)
            if self.lost_answer:
                return 502, {"message": "Server Error"}
            return 201, self._pull_body(pull)
        match = re.fullmatch(r"/pulls/(\d+)", rest)
        if match and method == "PATCH":
            number = int(match.group(1))
            patched = next((p for p in self.pulls if p["number"] == number), None)
            if patched is None:
                return 404, not_found
            patched.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
            return 200, self._pull_body(patched)
        return 404, not_found


def _handler(state: FakeGithub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = state.handle(self.command, parts.path, parse_qs(parts.query), headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            self.send_header("X-RateLimit-Remaining", "0" if state.rate_limited else "4999")
            if state.rate_limited:
                self.send_header("X-RateLimit-Reset", "1795000000")  # 2026-11-18 11:06:40 UTC
            if state.secondary_limited and self.command in ("POST", "PATCH"):
                self.send_header("Retry-After", "60")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def github(remote: Remote) -> Iterator[FakeGithub]:
    state = FakeGithub(remote)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------
# Catalogue, candidates, config


def import_list(engine: Engine, path: Path = README_0624, *, text: str | None = None) -> int:
    """Import the list at `path` (or `text`, taken byte for byte) as the catalogue."""
    result = import_catalogue(
        engine,
        CATALOGUE,
        path.read_text(encoding="utf-8") if text is None else text,
        preset="awesome-vpt",
        readme_path="README.md",
        github_repo=f"{OWNER}/{REPO}",
    )
    return result.catalogue_id


def accept(
    engine: Engine,
    *,
    title: str,
    arxiv_id: str | None,
    venue: str | None,
    year: int | None,
    labels: list[str],
    relevance: float,
    label_scores: dict[str, float],
    reviewer: str = "alice",
    reason: str | None = None,
    code_url: str | None = None,
    previous_venue: str | None = None,
    abstract: str = "",
) -> int:
    """An accepted candidate with its paper and the reviewer's `accept` decision, inserted
    directly (as the review queue would leave them)."""
    decided = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == CATALOGUE))
        assert catalogue is not None
        paper = PaperRow(
            title=title,
            title_key=normalize.title_key(title),
            abstract=abstract,
            authors=[],
            year=year,
            venue=venue,
            arxiv_id=arxiv_id,
            code_url=code_url,
            previous_venue=previous_venue,
            venue_upgraded_at=decided if previous_venue else None,
        )
        session.add(paper)
        session.flush()
        candidate = CandidateRow(
            paper_id=paper.id,
            catalogue_id=catalogue.id,
            status="accepted",
            relevance=relevance,
            label_scores=label_scores,
            proposed_labels=labels,
            final_labels=labels,
            reviewer=reviewer,
            decided_at=decided,
        )
        session.add(candidate)
        session.flush()
        session.add(
            DecisionRow(
                candidate_id=candidate.id,
                reviewer=reviewer,
                action="accept",
                at=decided,
                before={"status": "pending"},
                after={"status": "accepted", "labels": labels},
                reason=reason,
            )
        )
        return candidate.id


def accept_iccv_vpt(engine: Engine, title: str, cvf_url: str | None = None) -> int:
    """An ICCV 2023 paper with no arXiv id, accepted for prompt-adaptation's VPT table."""
    candidate = accept(
        engine,
        title=title,
        arxiv_id=None,
        venue="ICCV",
        year=2023,
        labels=["vpt-learnable"],
        relevance=0.99,
        label_scores={"vpt-learnable": 0.84},
    )
    with transaction(engine) as session:
        session.get_one(CandidateRow, candidate).paper.cvf_url = cvf_url
    return candidate


def accept_inpainting(engine: Engine, label_scores: dict[str, float]) -> int:
    """A third paper, accepted after a first publish (Visual Prompting via Image Inpainting)."""
    return accept(
        engine,
        title="Visual Prompting via Image Inpainting",
        arxiv_id="2209.00647",
        venue="NeurIPS",
        year=2022,
        labels=["generative", "pixel"],
        relevance=0.77,
        label_scores=label_scores,
    )


def accept_plot(engine: Engine, label_scores: dict[str, float]) -> int:
    """A new paper, accepted before a publish (PLOT, ICLR 2023)."""
    return accept(
        engine,
        title="PLOT: Prompt Learning with Optimal Transport for Vision-Language Models",
        arxiv_id="2210.01253",
        venue="ICLR",
        year=2023,
        labels=["learnable", "token"],
        relevance=0.91,
        label_scores=label_scores,
    )


def accept_two(engine: Engine) -> tuple[int, int]:
    """One new paper (PLOT, ICLR 2023) and one venue upgrade of a listed preprint.

    The upgrade's venue (ICML 2025 for arXiv 2411.01327) is test data chosen by hand."""
    new = accept(
        engine,
        title="PLOT: Prompt Learning with Optimal Transport for Vision-Language Models",
        arxiv_id="2210.01253",
        venue="ICLR",
        year=2023,
        labels=["learnable", "token"],
        relevance=0.91,
        label_scores={"learnable": 0.88, "token": 0.74, "pixel": 0.12},
        reason="optimal-transport prompts",
        code_url="https://github.com/CHENGY12/PLOT",
    )
    upgrade = accept(
        engine,
        title="Adaptive Prompt: Unlocking the Power of Visual Prompt Tuning",
        arxiv_id="2411.01327",
        venue="ICML",
        year=2025,
        labels=["learnable", "token"],
        relevance=0.83,
        label_scores={"learnable": 0.8, "token": 0.7},
        reviewer="bob",
        previous_venue="arXiv",
    )
    return new, upgrade


def accept_synbol_twice_listed_paper(engine: Engine) -> tuple[str, int]:
    """synbol's list, imported, and its twice-listed "Arxiv 2023" paper accepted at TMLR 2024
    straight from a venue source: the list's text and the candidate's id."""
    synbol = LISTS / "synbol__Awesome-Parameter-Efficient-Transfer-Learning__README.md"
    old = synbol.read_text(encoding="utf-8")
    import_catalogue(engine, CATALOGUE, old, preset=None)
    candidate = accept(
        engine,
        title="Towards a Unified View on Visual Parameter-Efficient Transfer Learning",
        arxiv_id="2210.00788",
        venue="TMLR",  # test data chosen by hand
        year=2024,
        labels=[],
        relevance=0.9,
        label_scores={},
    )
    return old, candidate


def write_config(tmp_path: Path, github: FakeGithub, remote: Remote, **catalogue: Any) -> Path:
    """The config of the catalogue published to `remote`; keys given as None are left out."""
    entries = {"name": CATALOGUE, "preset": "awesome-vpt", "github_repo": f"{OWNER}/{REPO}"}
    entries["git_url"] = str(remote.bare)
    entries.update(catalogue)
    entries = {k: v for k, v in entries.items() if v is not None}
    lines = [f'data_dir = "{tmp_path / "data"}"', "", "[github]", f'api_url = "{github.base_url}"', ""]
    lines.append("[[catalogues]]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in entries.items()]
    path = tmp_path / "vpt-tracker.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
