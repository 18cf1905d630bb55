"""The GitHub REST calls that publishing needs: get a ref, list, create, edit and close pulls.

The base URL is configurable (GitHub Enterprise serves the same API under `/api/v3`).
Every failure becomes one line that says what was wrong and what to do, and never
contains the token: it is sent only in the `Authorization` header.

This client is an `httpx.Client` of its own rather than `vpt_tracker.http.HttpClient`,
because that one only offers GET (the fetchers' politeness rules); unify them once it
grows POST/PATCH.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from vpt_tracker import __version__
from vpt_tracker.errors import UserError
from vpt_tracker.models import check_github_repo

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"


class GithubError(UserError):
    """The GitHub API refused or could not be reached; nothing was published."""

    exit_code = 1


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str  # the page a person opens (html_url)
    head_sha: str
    state: str
    title: str
    body: str


def _pull(data: dict[str, Any]) -> PullRequest:
    return PullRequest(
        number=int(data["number"]),
        url=str(data.get("html_url") or data.get("url") or ""),
        head_sha=str((data.get("head") or {}).get("sha") or ""),
        state=str(data.get("state") or "open"),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
    )


def split_repo(repo: str) -> tuple[str, str]:
    """ "owner/name" -> ("owner", "name"); a UserError for anything else (a repository
    stored before names were checked at import may still be one)."""
    try:
        owner, _, name = check_github_repo(repo.strip()).partition("/")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return owner, name


def same_repo(a: str, b: str) -> bool:
    """Whether two "owner/name" name one repository: GitHub's names ignore case."""
    return a.lower() == b.lower()


def head_label(owner: str, branch: str) -> str:
    """`owner:branch`, how GitHub names a pull request's head across repositories."""
    return f"{owner}:{branch}"


class GithubClient:
    """A thin REST client for one repository."""

    def __init__(
        self,
        api_url: str,
        repo: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise UserError("no GitHub token: set VPT_GITHUB__TOKEN or github.token in the secrets file")
        self.owner, self.name = split_repo(repo)
        self.repo = f"{self.owner}/{self.name}"
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"vpt-tracker/{__version__}",
            },
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GithubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise GithubError(f"cannot reach the GitHub API at {self.api_url}: {reason}") from None
        log.debug("%s %s -> %s", method, path, response.status_code)
        return response

    def _fail(self, response: httpx.Response, doing: str, *, repo: str | None = None) -> GithubError:
        """The error for a failed call about `repo` (default: this repository)."""
        repo = repo or self.repo
        message = _message(response)
        status = response.status_code
        if status == 401:
            return GithubError(
                f"GitHub rejected the token while {doing} (401 {message}); "
                "set a valid token in VPT_GITHUB__TOKEN or the secrets file",
                exit_code=2,
            )
        limit = _rate_limit(response, message)
        if limit is not None:
            what, when = limit
            return GithubError(f"GitHub {what} while {doing}; {when}")
        if status == 403:
            return GithubError(
                f"the token may not write to {repo} ({doing}: 403 {message}); "
                "it needs the 'contents' and 'pull requests' permissions",
                exit_code=2,
            )
        if status == 404:
            return GithubError(
                f"repository {repo} not found at {self.api_url} ({doing}: 404); "
                "check github_repo, and that the token can see it",
                exit_code=2,
            )
        if status >= 500:  # GitHub's own fault ("Server Error", a 502 from its proxy): it passes
            return GithubError(
                f"GitHub answered {status} while {doing}: {message}; a fault on GitHub's side, "
                "nothing was marked published: run publish again later"
            )
        return GithubError(f"GitHub answered {status} while {doing}: {message}")

    def _json(self, response: httpx.Response, doing: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GithubError(f"GitHub sent a body that is not JSON while {doing}") from None

    # -- endpoints -------------------------------------------------------------------------

    def get_branch_sha(self, branch: str) -> str:
        """The commit `branch` points at; checks the token and the repository on the way."""
        doing = f"reading branch {branch!r} of {self.repo}"
        ref = quote(branch, safe="/")
        response = self._request("GET", f"/repos/{self.owner}/{self.name}/git/ref/heads/{ref}")
        if response.status_code == 404:
            repo = self._request("GET", f"/repos/{self.owner}/{self.name}")
            if repo.status_code == 200:
                raise GithubError(f"{self.repo} has no branch {branch!r}; check base_branch", exit_code=2)
            raise self._fail(repo, doing)
        if response.status_code != 200:
            raise self._fail(response, doing)
        data = self._json(response, doing)
        try:
            return str(data["object"]["sha"])
        except (KeyError, TypeError):
            raise GithubError(f"GitHub sent an unexpected ref body while {doing}") from None

    def find_open_pull(self, branch: str, base: str, *, head_repo: str | None = None) -> PullRequest | None:
        """The open pull request from `branch` of `head_repo` (default: this repository, else
        a fork's "owner/name") into `base`, if there is one."""
        pulls = self.list_pulls(branch, base, state="open", head_repo=head_repo)
        return min(pulls, key=lambda p: p.number) if pulls else None

    def list_pulls(
        self, branch: str, base: str, *, state: str, head_repo: str | None = None
    ) -> list[PullRequest]:
        """Pull requests from `branch` of `head_repo` (default: this repository) into `base` in
        `state` ("open", "closed", "all").

        GitHub filters on `head = owner:branch`, the owner of the repository the branch lives
        in: asked with the list's owner, the pull request from a fork is not found.
        """
        head = self._head_repo(head_repo)
        doing = f"listing pull requests of {self.repo}"
        response = self._request(
            "GET",
            f"/repos/{self.owner}/{self.name}/pulls",
            params={"head": head_label(head[0], branch), "base": base, "state": state, "per_page": 100},
        )
        if response.status_code != 200:
            raise self._fail(response, doing)
        data = self._json(response, doing)
        if not isinstance(data, list):
            raise GithubError(f"GitHub sent an unexpected body while {doing}")
        # Filter again: some GitHub Enterprise versions ignore `head` for unknown owners, and
        # an organisation may hold the list and a fork of it under one owner.
        return [_pull(p) for p in data if _from(p, head, branch)]

    def create_pull(
        self, *, branch: str, base: str, title: str, body: str, head_repo: str | None = None
    ) -> PullRequest:
        """Open a pull request from `branch` of `head_repo` (default: this repository) into `base`.

        From a fork GitHub wants `head = owner:branch` (plus `head_repo` when the fork has the
        list's owner), and lets the list's maintainers push to the branch only when asked
        (`maintainer_can_modify`).
        """
        head = self._head_repo(head_repo)
        doing = f"opening a pull request on {self.repo}"
        payload: dict[str, Any] = {
            "title": title,
            "head": branch,
            "base": base,
            "body": body,
            "maintainer_can_modify": True,
        }
        cross = not same_repo("/".join(head), self.repo)  # from a fork
        if cross:
            payload["head"] = head_label(head[0], branch)
            if head[0].lower() == self.owner.lower():
                payload["head_repo"] = head[1]
        response = self._request("POST", f"/repos/{self.owner}/{self.name}/pulls", json=payload)
        if response.status_code == 422 and "fork_collab" in response.text:
            # "Fork collab can't be granted by someone without permission": a token that may
            # push to the fork's branch but not let others (an organisation's fork). The pull
            # request is opened without maintainer edits rather than not at all.
            log.warning(
                "GitHub refused edits by maintainers on %s; opening the pull request without", payload["head"]
            )
            payload["maintainer_can_modify"] = False
            response = self._request("POST", f"/repos/{self.owner}/{self.name}/pulls", json=payload)
        if response.status_code == 422 and "already exists" in response.text:
            existing = self.find_open_pull(branch, base, head_repo=head_repo)  # opened by a concurrent run
            if existing is not None:
                return self.update_pull(existing.number, title=title, body=body)
        message = _message(response)
        if response.status_code == 403 and cross and _rate_limit(response, message) is None:
            # The token pushed to the fork but may not open the pull request on the list: a
            # fine-grained token reaches only the repositories its owner may grant it.
            raise GithubError(
                f"the token may not open a pull request on {self.repo} ({doing} from {payload['head']}: "
                f"403 {message}); it needs 'pull requests' (write) on {self.repo}, which a fine-grained "
                "token gets only for repositories of its owner: for a list you do not own use a classic "
                "token (scope public_repo). The branch is pushed; run publish again after the fix",
                exit_code=2,
            )
        if response.status_code != 201:
            raise self._fail(response, doing)
        return _pull(self._json(response, doing))

    def _head_repo(self, head_repo: str | None) -> tuple[str, str]:
        """("owner", "name") of the repository a pull request's branch lives in."""
        return split_repo(head_repo) if head_repo else (self.owner, self.name)

    def check_fork(self, fork: str) -> None:
        """Check, before anything is pushed, that `fork` is a fork of this repository (in its
        network: GitHub opens pull requests only between those) that the token may push to.

        Each way this fails is one line naming the fork: a fork that does not exist (or the
        token cannot see), the list itself under another name, a repository of another
        network, a fork the token may only read.
        """
        owner, name = split_repo(fork)
        doing = f"reading the fork {owner}/{name}"
        response = self._request("GET", f"/repos/{owner}/{name}")
        if response.status_code == 404:
            raise GithubError(
                f"the fork {owner}/{name} is not found at {self.api_url}; create it on GitHub (Fork on "
                f"{self.repo}'s page) or fix `fork` in the config, and check that the token can see it",
                exit_code=2,
            )
        if response.status_code != 200:
            raise self._fail(response, doing, repo=f"{owner}/{name}")
        data = self._json(response, doing)
        if not isinstance(data, dict):
            raise GithubError(f"GitHub sent an unexpected body while {doing}")
        full_name = str(data.get("full_name") or f"{owner}/{name}")
        if same_repo(full_name, self.repo):
            raise GithubError(
                f"the fork {owner}/{name} is the list's repository {self.repo} itself; set `fork` to your "
                "fork of the list, or remove it to push to the list's repository",
                exit_code=2,
            )
        if _network(data) != _network(self._repository(doing)):
            parent = (data.get("parent") or {}).get("full_name")
            what = f"a fork of {parent}" if parent else "not a fork"
            raise GithubError(
                f"{full_name} is {what}, not of {self.repo}, so GitHub cannot open a pull request from "
                f"it; set `fork` to your fork of {self.repo}",
                exit_code=2,
            )
        permissions = data.get("permissions")
        if isinstance(permissions, dict) and not permissions.get("push", True):
            raise GithubError(
                f"the token may not push to the fork {full_name} (its permissions there are read only); "
                "it needs the 'contents' (write) permission on the fork",
                exit_code=2,
            )

    def _repository(self, doing: str) -> dict[str, Any]:
        response = self._request("GET", f"/repos/{self.owner}/{self.name}")
        if response.status_code != 200:
            raise self._fail(response, doing)
        data = self._json(response, doing)
        if not isinstance(data, dict):
            raise GithubError(f"GitHub sent an unexpected body while {doing}")
        return data

    def close_pull(self, number: int) -> PullRequest:
        return self._patch_pull(number, {"state": "closed"}, f"closing pull request #{number} on {self.repo}")

    def update_pull(self, number: int, *, title: str, body: str) -> PullRequest:
        doing = f"editing pull request #{number} on {self.repo}"
        return self._patch_pull(number, {"title": title, "body": body}, doing)

    def _patch_pull(self, number: int, changes: dict[str, str], doing: str) -> PullRequest:
        response = self._request("PATCH", f"/repos/{self.owner}/{self.name}/pulls/{number}", json=changes)
        if response.status_code != 200:
            raise self._fail(response, doing)
        return _pull(self._json(response, doing))


def _from(data: dict[str, Any], head: tuple[str, str], branch: str) -> bool:
    """Whether a pull request's body says it comes from `branch` of repository `head`
    ("owner", "name"). A head whose repository was deleted (`repo: null`) is known by its
    label, `owner:branch`."""
    about = data.get("head") or {}
    if about.get("ref", branch) != branch:
        return False
    repo = about.get("repo")
    if isinstance(repo, dict) and repo.get("full_name"):
        return same_repo(str(repo["full_name"]), "/".join(head))
    label = about.get("label")
    return label is None or str(label).lower() == head_label(head[0], branch).lower()


def _network(data: dict[str, Any]) -> str:
    """The repository a repository body's network starts from (`source` of a fork, else the
    repository itself), lower case: GitHub opens pull requests only within one network."""
    source = data.get("source") or {}
    return str(source.get("full_name") or data.get("full_name") or "").lower()


def _rate_limit(response: httpx.Response, message: str) -> tuple[str, str] | None:
    """Which rate limit an answer reports and when to retry; None when it is not one.

    GitHub has two limits. The primary one (calls per hour) answers 403 or 429 with
    `x-ratelimit-remaining: 0` and resets at `x-ratelimit-reset`. The secondary one (too many
    writes too fast, e.g. pull requests opened for several lists in a row) answers 403 or
    429 with `retry-after`, while calls remain: read as a 403 it looked like a token without
    write permission, and sent the maintainer to replace a token that was fine.
    """
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        when = "try again later"
        if reset.isdigit():
            when = f"it resets at {datetime.fromtimestamp(int(reset), UTC):%Y-%m-%d %H:%M} UTC"
        return "rate limit exhausted", when
    secondary = "secondary rate limit" in message.lower()
    if secondary or headers.get("retry-after") or response.status_code == 429:
        wait = headers.get("retry-after", "")
        when = f"retry after {wait} s" if wait.isdigit() else "wait a few minutes and try again"
        return f"secondary rate limit hit ({message})", when
    return None


def _message(response: httpx.Response) -> str:
    """GitHub's `message`, with the `errors` it gives for a 422 ("Validation Failed" alone
    does not say that a pull request already exists, or that there is nothing to compare)."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if not isinstance(data, dict) or not data.get("message"):
        return response.reason_phrase or "no message"
    message = str(data["message"])
    details = []
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            if text:
                details.append(str(text))
        elif isinstance(error, str):
            details.append(error)
    return f"{message}: {'; '.join(details)}" if details else message
