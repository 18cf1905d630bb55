"""The publish use case: promote, render, check, commit, push, open or update the pull request.

The order is chosen so that a failure at any step leaves a consistent state and a rerun
picks up from there:

1. GitHub is asked about the base branch first, so a bad token, a missing repository or
   no network fail before anything changes.
2. The list's repository is fetched. If its README is no longer the text the catalogue was
   imported from, upstream is taken in (our changes replayed on it) and publishing stops
   for a look, unless the change is exactly our own merged pull request.
3. Promotion and the render are committed together; the new README is checked (lossless
   round trip, every old entry still there) before any push.
4. The branch is updated with a fast-forward commit when it is still based on the base
   branch, else rebuilt from the base branch and pushed with a lease (a stale branch never
   blocks, and someone else's push is never lost). A branch holding a commit someone else
   made (a maintainer's fix on the PR) stops publishing before either.
5. One pull request per branch: an open one is edited, never duplicated, and closed when
   nothing is left to propose in it.
6. Only then do candidates become `published`.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from vpt_tracker import normalize
from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.catalogue.promote import Change, Promotion, Skipped, listed_as_is, pending_changes, promote
from vpt_tracker.catalogue.service import get_catalogue, render_catalogue
from vpt_tracker.classify.presets import SHIPPED, Presets
from vpt_tracker.config import Settings
from vpt_tracker.errors import UserError
from vpt_tracker.locks import exclusive
from vpt_tracker.models import CandidateStatus
from vpt_tracker.publish.git import GitRepo, RemoteState
from vpt_tracker.publish.github import GithubClient, PullRequest, same_repo, split_repo
from vpt_tracker.publish.upstream import Rebase, entry_key, rebase_catalogue
from vpt_tracker.store import session_factory, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, EntryRow, PublicationRow, PullRequestRow
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)

SIZE_WARNING_BYTES = 450 * 1024  # GitHub stops rendering a README at 512 kB
STEPS = (
    "check GitHub",
    "fetch repository",
    "promote and render",
    "push branch",
    "pull request",
    "mark published",
)


class UpstreamChanged(UserError):
    """The README changed upstream; it was taken in and publishing stopped for a look."""

    exit_code = 1


class RenderCheckFailed(UserError):
    exit_code = 1


class BranchHasForeignCommits(UserError):
    """Someone else committed to our branch; pushing would overwrite their work."""

    exit_code = 1


HEAD_MAX = 255  # the `pull_requests.branch` column, which keeps `Target.head`


@dataclass(frozen=True)
class Target:
    """Where a catalogue is published, resolved from the config."""

    catalogue: str
    github_repo: str
    git_url: str
    base_branch: str
    branch: str
    readme_path: str
    api_url: str
    token: str | None
    workdir: Path
    fork: str | None = None  # "owner/name": our branch lives there, the PR comes from it
    fork_git_url: str | None = None

    @property
    def head_repo(self) -> str:
        """The repository our branch lives in: the fork, else the list's own."""
        return self.fork or self.github_repo

    @property
    def head(self) -> str:
        """Where our pull request comes from, as the `pull_requests` table keeps it: the
        branch for the list's own repository, `owner/name:branch` for a fork (a branch name
        has no ':'), so that a pull request from the list's branch is not taken for one from
        the fork's, or the other way round, when the config changes."""
        return f"{self.fork}:{self.branch}" if self.fork else self.branch


def split_head(head: str) -> tuple[str | None, str]:
    """`Target.head` as stored -> (the fork "owner/name" or None for the list's own
    repository, the branch)."""
    repo, colon, branch = head.partition(":")
    return (repo, branch) if colon else (None, head)


def describe_head(head: str) -> str:
    """A stored head as a person reads it: 'branch', or 'branch' of owner/name."""
    repo, branch = split_head(head)
    return f"{branch!r} of {repo}" if repo else repr(branch)


def resolve_target(settings: Settings, name: str, readme_path: str | None, stored_repo: str | None) -> Target:
    """The publishing target of catalogue `name`; UserError naming the missing key."""
    config = settings.catalogue(name)
    if config is None:
        raise UserError(
            f"catalogue {name!r} has no [[catalogues]] entry in the config; add one with "
            f'name = "{name}" and github_repo = "owner/name"'
        )
    repo = config.github_repo or stored_repo
    if not repo:
        raise UserError(f"catalogue {name!r} has no github_repo in the config")
    owner, repo_name = split_repo(repo)
    token = _token(settings.github.token.get_secret_value()) if settings.github.token else None
    workdir = (settings.github.workdir or settings.data_dir / "repos") / name
    git_url = config.git_url or f"https://github.com/{owner}/{repo_name}.git"
    fork = config.fork
    if fork is not None and same_repo(fork, f"{owner}/{repo_name}"):
        raise UserError(
            f"fork {fork!r} of catalogue {name!r} is the list's repository itself; set it to your fork "
            "of the list, or remove fork to push to the list's repository"
        )
    fork_git_url = (config.fork_git_url or f"https://github.com/{fork}.git") if fork else None
    if fork_git_url is not None and fork_git_url.rstrip("/") == git_url.rstrip("/"):
        raise UserError(
            f"fork_git_url of catalogue {name!r} is its git_url; set it to your fork's URL, or remove "
            "fork to push to the list's repository"
        )
    target = Target(
        catalogue=name,
        github_repo=f"{owner}/{repo_name}",
        git_url=git_url,
        base_branch=config.base_branch,
        branch=config.branch or f"vpt-tracker/{name}",
        readme_path=readme_path or "README.md",
        api_url=settings.github.api_url,
        token=token,
        workdir=workdir,
        fork=fork,
        fork_git_url=fork_git_url,
    )
    if len(target.head) > HEAD_MAX:
        raise UserError(
            f"fork and branch of catalogue {name!r} together take {len(target.head)} characters, and at "
            f"most {HEAD_MAX} are kept; set a shorter branch"
        )
    return target


def _token(value: str) -> str | None:
    """The GitHub token without the line break or spaces around it (a secrets file, a
    Kubernetes secret or a pasted value often ends in one); a UserError, naming the key and
    never the value, for a character no token has inside it.

    Sent as it was, such a token failed as "cannot reach the GitHub API ...: Illegal header
    value b'Bearer ghp_...'", which printed the whole token; a non-ASCII one was a traceback.
    """
    token = value.strip()
    if any(not ("!" <= char <= "~") for char in token):
        raise UserError(
            "github.token (VPT_GITHUB__TOKEN or the secrets file) holds a character no GitHub token "
            "has (a space, a line break or a non-ASCII character); set it again"
        )
    return token or None


@dataclass
class Plan:
    """What a publish would push: the README before and after, and the PR text."""

    catalogue: str
    readme_path: str
    old_text: str
    new_text: str
    changes: list[Change]
    skipped: list[Skipped]
    title: str
    body: str
    warnings: list[str] = field(default_factory=list)

    @property
    def diff(self) -> str:
        return unified_diff(self.old_text, self.new_text, self.readme_path)


def unified_diff(old: str, new: str, path: str, context: int = 3) -> str:
    """The unified diff of two texts, showing only the lines that change.

    `difflib.unified_diff` treats a line found in more than 1% of a text over 200 lines as
    junk (its `autojunk`): a README's blank lines and table separator rows are such lines,
    and the dry run showed an unchanged blank line as removed and added again next to each
    changed line. This matcher has no junk; the hunks are written as difflib writes them.
    """
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out: list[str] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        if not out:
            out += [f"--- a/{path}\n", f"+++ b/{path}\n"]
        first, last = group[0], group[-1]
        out.append(f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[i1:i2]]
                continue
            out += ["-" + line for line in a[i1:i2]]
            out += ["+" + line for line in b[j1:j2]]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)


def _hunk_range(start: int, stop: int) -> str:
    """A hunk's line range as unified diffs write it ("12,3"; "12" for one line; "11,0" for none)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


@dataclass
class Outcome:
    plan: Plan
    pull: PullRequest | None = None
    created: bool = False
    pushed: bool = False
    published: int = 0  # candidates marked published
    rebase: Rebase | None = None
    closed: PullRequest | None = None  # our open pull request, closed: nothing was left in it


# --------------------------------------------------------------------------------------
# Checks and PR text


def check_render(old_text: str, new_text: str, changes: list[Change]) -> list[str]:
    """Refuse a README that does not parse back to itself or lost any entry; warnings otherwise."""
    new_doc = parse(new_text)
    if new_doc.render() != new_text:
        raise RenderCheckFailed("the new README does not parse back to the same text; nothing was pushed")
    old_keys = Counter(_entry_key(e.title, e.raw) for e in parse(old_text).entries)
    new_keys = Counter(_entry_key(e.title, e.raw) for e in new_doc.entries)
    lost = old_keys - new_keys
    if lost:
        sample = ", ".join(repr(k) for k in list(lost)[:3])
        raise RenderCheckFailed(
            f"the new README would lose {sum(lost.values())} entries of the current one ({sample}); "
            "nothing was pushed"
        )
    missing = [c.title for c in changes if c.action == "added" and not _shown(c, new_keys)]
    if missing:
        raise RenderCheckFailed(f"added entries missing from the render: {missing[:3]}; nothing was pushed")
    warnings = []
    size = len(new_text.encode("utf-8"))
    if size > SIZE_WARNING_BYTES:
        warnings.append(
            f"the README is {size / 1024:.0f} kB; GitHub stops rendering READMEs over 512 kB, "
            "consider splitting the list"
        )
    return warnings


def _entry_key(title: str, raw: str = "") -> str:
    """What identifies an entry across the old and the new README: its title's key (which
    a title with no Latin letter or digit also has), else its line. Keyed by its line, such
    an entry was "missing from the render" once added, and "lost" once its venue was
    upgraded: every publish of the catalogue stopped."""
    return entry_key(title) or raw.strip()


def _shown(change: Change, keys: Counter[str]) -> bool:
    """Whether an added entry is in the README: by its title, or by its short name where the
    table names papers so (`markdown._names_papers`)."""
    names = [change.title] + ([change.short_name] if change.short_name else [])
    return any(_entry_key(name) in keys for name in names)


#: The characters of a title or a reviewer's reason a pull request body shows. A reason has no
#: length limit (notes pasted into an accept): one of 70000 characters made its entry larger
#: than the whole body, and the body then said "… and N more" about every paper.
FIELD_LIMIT = 1000


def _md(text: str, limit: int | None = None) -> str:
    """Untrusted text (titles, reasons) as inert markdown on one line; with `limit`, cut to
    that many characters and marked with "…" (cut before escaping, so that no escape is
    split)."""
    flat = " ".join(str(text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    for char in "\\`*_[]<>|#":
        flat = flat.replace(char, "\\" + char)
    return no_mentions(flat)


_MENTION = re.compile(r"(?<![\w.+-])@(?=[A-Za-z0-9])")  # not inside an address (ana@example.org)


def no_mentions(text: str) -> str:
    """`text` with a zero-width space after each `@` that could start a GitHub mention.

    GitHub notifies every user or team named `@name` in a pull request body or a commit
    message, and a backslash does not stop it (github/cmark-gfm#389): a title from the
    sources ("Prompts @ Scale, by @octocat") or a reviewer's reason ("as @maintainer asked")
    pinged people from the bot's pull request. The text still reads the same. An `@` inside
    an e-mail address mentions nobody and is left alone.
    """
    return _MENTION.sub("@\u200b", text)


def _venue(venue: str | None, year: int | None) -> str:
    return " ".join(str(p) for p in (venue, year) if p) or "no venue"


def pull_title(name: str, changes: list[Change]) -> str:
    added = sum(1 for c in changes if c.action == "added")
    updated = len(changes) - added
    parts = []
    if added:
        parts.append(f"add {plural(added, 'paper')}")
    if updated:
        parts.append(f"update {plural(updated, 'venue')}")
    return f"{name}: {' and '.join(parts) or 'no changes'} (vpt-tracker)"


#: GitHub refuses a pull request text over this many characters (422 "body is too long").
BODY_LIMIT = 65536
_BODY_RESERVE = 2000  # for the headings, the notes of what was left out and the closing line


def pull_body(name: str, changes: list[Change], limit: int = BODY_LIMIT) -> str:
    """The PR body: each change with its section, labels, scores and reviewer decision.

    A backlog of a few hundred papers (after a backfill) would pass GitHub's limit, and the
    pull request could never be opened: the changes past the limit are counted, not
    detailed (the README diff shows them all). A title or reason longer than `FIELD_LIMIT`
    is shown cut, so that no single entry is too large to be shown.
    """
    lines = [
        f"This pull request was prepared by vpt-tracker for the list `{_md(name)}`.",
        "Each paper below was proposed by the classifier and accepted by a reviewer.",
        "",
    ]
    budget = limit - _BODY_RESERVE - _chars(lines)
    added = [c for c in changes if c.action == "added"]
    updated = [c for c in changes if c.action == "updated"]
    blocks: list[tuple[str, list[list[str]]]] = []
    if added:
        blocks.append(
            (f"### Added ({len(added)})", [_change_lines(c, _venue(c.venue, c.year)) for c in added])
        )
    if updated:
        blocks.append(
            (
                f"### Venue updates ({len(updated)})",
                [
                    _change_lines(
                        c, f"{_venue(*c.previous) if c.previous else 'preprint'} → {_venue(c.venue, c.year)}"
                    )
                    for c in updated
                ],
            )
        )
    sizes = [[_chars(entry) for entry in entries] for _, entries in blocks]
    for (heading, entries), entry_sizes, share in zip(
        blocks, sizes, _fair_shares(sizes, budget), strict=True
    ):
        lines += [heading, ""]
        shown = 0
        for entry, size in zip(entries, entry_sizes, strict=True):
            if size > share:
                break
            lines += entry
            share -= size
            shown += 1
        if shown < len(entries):
            lines.append(
                f"- … and {len(entries) - shown} more, not detailed here (GitHub takes at most {limit} "
                "characters of pull request text); the diff shows every one"
            )
        lines.append("")
    lines.append(f"<!-- vpt-tracker catalogue={name} entries={len(changes)} -->")
    return "\n".join(lines) + "\n"


def _chars(lines: list[str]) -> int:
    """The characters `lines` take in the body, a newline after each."""
    return sum(len(line) + 1 for line in lines)


def _fair_shares(sizes: list[list[int]], budget: int) -> list[int]:
    """The characters each section of the body may use: an equal part of `budget` each, a
    section that needs less leaving the rest to the others.

    Filled in order, the added papers of a large backlog took the whole budget and the venue
    updates were left with a heading and their "… and N more" line only.
    """
    needs = [sum(section) for section in sizes]
    shares = [0] * len(needs)
    left, open_ = budget, sorted(range(len(needs)), key=lambda i: needs[i])
    while open_:
        index = open_.pop(0)
        shares[index] = min(needs[index], max(left, 0) // (len(open_) + 1))
        left -= shares[index]
    return shares


def _change_lines(change: Change, venue: str) -> list[str]:
    url = normalize.web_url(change.paper_url)
    title = f"[{_md(change.title, FIELD_LIMIT)}]({url})" if url else _md(change.title, FIELD_LIMIT)
    out = [f"- **{title}** ({_md(venue)})"]
    if change.section_path:
        out.append(f"  - section: {_md(' > '.join(change.section_path))}")
    out.append(f"  - labels: {', '.join(_md(x) for x in change.labels) or 'none'}")
    if change.relevance is not None:
        scores = [f"relevance {change.relevance:.2f}"]
        scores += [f"{_md(k)} {v:.2f}" for k, v in sorted(change.label_scores.items(), key=lambda kv: -kv[1])]
        if change.base_to_novel is not None:
            scores.append(f"base-to-novel {change.base_to_novel:.2f}")
        out.append(f"  - scores: {', '.join(scores)}")
    decision = change.decision
    if decision is not None:
        when = decision.at.strftime("%Y-%m-%d %H:%M UTC")
        why = f": {_md(decision.reason, FIELD_LIMIT)}" if decision.reason else ""
        out.append(f"  - decision: {_md(decision.action)} by {_md(decision.reviewer)} on {when}{why}")
    elif change.candidate_id is None:
        out.append("  - decision: none (the paper's venue changed in the sources)")
    return out


# --------------------------------------------------------------------------------------
# The use case


Progress = Callable[[str], None]


def _plan(
    session: Session, name: str, old_text: str, readme_path: str, presets: Presets
) -> tuple[Plan, Promotion]:
    promotion = promote(session, name, presets)
    new_text = render_catalogue(session, name)
    changes = pending_changes(session, name)
    warnings = check_render(old_text, new_text, changes) if changes else []
    plan = Plan(
        catalogue=name,
        readme_path=readme_path,
        old_text=old_text,
        new_text=new_text,
        changes=changes,
        skipped=promotion.skipped,
        title=pull_title(name, changes),
        body=pull_body(name, changes),
        warnings=warnings,
    )
    return plan, promotion


def dry_run(engine: Engine, name: str, presets: Presets = SHIPPED) -> Plan:
    """What `publish` would push, against the README as imported; the database is untouched
    (promotion runs in a transaction that is rolled back) and no remote is contacted."""
    with session_factory(engine)() as session:
        try:
            catalogue = get_catalogue(session, name)
            return _plan(session, name, catalogue.source_text, catalogue.readme_path or "README.md", presets)[
                0
            ]
        finally:
            session.rollback()


class Publisher:
    """Publishes one catalogue to its repository; see the module docstring for the order."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        name: str,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Progress | None = None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.clock = clock
        self.presets = settings.presets
        self.progress = progress or (lambda step: log.info("publish %s: %s", name, step))
        with session_factory(engine)() as session:
            catalogue = get_catalogue(session, name)
            self.target = resolve_target(settings, name, catalogue.readme_path, catalogue.github_repo)
        if not self.target.token:
            raise UserError("no GitHub token: set VPT_GITHUB__TOKEN or github.token in the secrets file")
        self.github = GithubClient(
            self.target.api_url, self.target.github_repo, self.target.token, transport=transport
        )
        self.repo = GitRepo(
            self.target.workdir,
            self.target.git_url,
            token=self.target.token,
            fork_url=self.target.fork_git_url,
        )

    def close(self) -> None:
        self.github.close()

    def run(self) -> Outcome:
        """Publish once; a second publish of the same catalogue at the same time is refused
        (exit 75) rather than racing on the working copy and the branch."""
        try:
            with exclusive(self.engine, f"publish-{self.name}"):
                return self._run()
        finally:
            self.close()

    def _run(self) -> Outcome:
        target = self.target
        self.progress(STEPS[0])
        self.github.get_branch_sha(target.base_branch)
        if target.fork:
            self.github.check_fork(target.fork)

        self.progress(STEPS[1])
        remote = self.repo.sync(target.base_branch, target.branch)
        upstream = self.repo.show(remote.base_ref, target.readme_path)
        if upstream is None:
            raise UserError(
                f"{target.github_repo} has no {target.readme_path} on {target.base_branch!r}; "
                "re-import the catalogue with --readme-path"
            )
        rebase = self._take_in_upstream(upstream, remote)

        self.progress(STEPS[2])
        with transaction(self.engine) as session:
            plan, _ = _plan(session, self.name, upstream, target.readme_path, self.presets)
        outcome = Outcome(plan=plan, rebase=rebase)
        if not plan.changes:
            log.info("nothing to publish for %s", self.name)
            outcome.closed = self._close_emptied_pull()
            return outcome

        existing = self._open_pull()
        if existing is None:
            self._refuse_closed_duplicate(plan)
            self._refuse_open_pull_of_another_branch()
        self.progress(STEPS[3])
        self._refuse_foreign_commits(remote, existing)
        outcome.pushed = self._push(plan, remote)

        self.progress(STEPS[4])
        if existing is not None:
            outcome.pull = self.github.update_pull(existing.number, title=plan.title, body=plan.body)
        else:
            outcome.pull = self.github.create_pull(
                branch=target.branch,
                base=target.base_branch,
                title=plan.title,
                body=plan.body,
                head_repo=target.fork,
            )
            outcome.created = True

        self.progress(STEPS[5])
        outcome.published = self._mark_published(plan, outcome.pull)
        return outcome

    def _open_pull(self) -> PullRequest | None:
        """Our open pull request (the oldest, if a race opened two), from the target's head."""
        target = self.target
        return self.github.find_open_pull(target.branch, target.base_branch, head_repo=target.fork)

    def _pull_list(self, state: str, head: str) -> list[PullRequest]:
        """Our pull requests in `state` from `head` (`Target.head`, as stored) into the base."""
        fork, branch = split_head(head)
        return self.github.list_pulls(branch, self.target.base_branch, state=state, head_repo=fork)

    def _take_in_upstream(self, upstream: str, remote: RemoteState) -> Rebase | None:
        """If upstream's README is not our base any more, make it the base (our changes
        replayed) and stop, unless it is exactly the README we last pushed (our PR merged)."""
        with transaction(self.engine) as session:
            catalogue = get_catalogue(session, self.name)
            if catalogue.source_text == upstream:
                catalogue.upstream_commit = catalogue.upstream_commit or remote.base_sha
                return None
            pushed = session.scalars(
                select(PullRequestRow.readme_sha256).where(PullRequestRow.catalogue_id == catalogue.id)
            ).all()
            rebase = rebase_catalogue(
                session, self.name, upstream, remote.base_sha, now=self.clock(), presets=self.presets
            )
            ours = _digest(upstream) in pushed
            _published_upstream(session, catalogue, self.clock())
        if ours:
            log.info("upstream merged our pull request; %s", rebase.summary())
            return rebase
        raise UpstreamChanged(
            f"{self.target.readme_path} on {self.target.base_branch!r} changed upstream since import "
            f"(now {remote.base_sha[:10]}); re-imported it and {rebase.summary()}. Nothing was pushed: "
            f"check `vpt-tracker publish {self.name} --dry-run`, then run publish again"
        )

    def _close_emptied_pull(self) -> PullRequest | None:
        """Close our open pull request when nothing is left to propose (its papers were
        rejected since, or upstream has them now): left open, a merge would still add them.

        Its README hash is forgotten, so that proposing the same README again later (the
        reject undone) is not refused as a pull request the maintainer declined.
        """
        pull = self._open_pull()
        if pull is None:
            return None
        closed = self.github.close_pull(pull.number)
        with transaction(self.engine) as session:
            catalogue = get_catalogue(session, self.name)
            for row in session.scalars(
                select(PullRequestRow).where(
                    PullRequestRow.catalogue_id == catalogue.id, PullRequestRow.number == pull.number
                )
            ):
                row.state = "closed"
                row.readme_sha256 = None
                row.updated_at = self.clock()
        return closed

    def _refuse_closed_duplicate(self, plan: Plan) -> None:
        """A maintainer who closed our pull request without merging said no: the same
        README is not proposed again in a new one."""
        target = self.target
        closed = {p.number for p in self._pull_list("closed", target.head)}
        if not closed:
            return
        digest = _digest(plan.new_text)
        with session_factory(self.engine)() as session:
            same = session.scalars(
                select(PullRequestRow.number).where(
                    PullRequestRow.catalogue_id == get_catalogue(session, self.name).id,
                    PullRequestRow.number.in_(closed),
                    PullRequestRow.readme_sha256 == digest,
                )
            ).first()
        if same is not None:
            ids = ", ".join(str(c.candidate_id) for c in plan.changes if c.candidate_id is not None)
            which = f" (candidates {ids})" if ids else ""
            raise UserError(
                f"pull request #{same} with exactly these changes was closed without merging; "
                "not opening it again. Reject the papers it should not have proposed with "
                f"`vpt-tracker review reject ID --reason ...`{which}, or accept new ones, "
                "and publish again",
                exit_code=1,
            )

    def _refuse_open_pull_of_another_branch(self) -> None:
        """Stop before opening a pull request while ours from another branch is still open
        (the config's `branch` was changed): a second one would propose the same papers
        beside it, and the first was recorded as closed although it was open."""
        target = self.target
        with session_factory(self.engine)() as session:
            others = session.execute(
                select(PullRequestRow.number, PullRequestRow.branch).where(
                    PullRequestRow.catalogue_id == get_catalogue(session, self.name).id,
                    PullRequestRow.state == "open",
                    PullRequestRow.number.is_not(None),
                    PullRequestRow.branch != target.head,
                )
            ).all()
        for number, head in others:
            fork, branch = split_head(head)
            same_fork = same_repo(fork or "", target.fork or "")
            if branch == target.branch and same_fork:
                continue  # the same fork, its name written in other case: GitHub's names ignore case
            if any(p.number == number for p in self._pull_list("open", head)):
                if not same_fork:
                    now = f"the catalogue publishes from {describe_head(target.head)} now"
                    back = (
                        f"set fork = {fork!r} again"
                        if fork
                        else "remove fork from the catalogue's config again"
                    )
                else:
                    now = f"the catalogue's branch is {target.branch!r} now"
                    back = f"set branch = {branch!r} again"
                raise UserError(
                    f"pull request #{number} from {describe_head(head)} is still open for {self.name!r} "
                    f"({now}); nothing was pushed. Close it (this run's pull request "
                    f"proposes all its papers) or {back}, and publish again",
                    exit_code=1,
                )

    def _refuse_foreign_commits(self, remote: RemoteState, pull: PullRequest | None) -> None:
        """Stop if the branch holds a commit vpt-tracker did not make (a maintainer pushed a
        fix to the PR): a commit on top would undo it in the README, and a rebuilt branch
        would be force-pushed over it."""
        if remote.branch_sha is None:
            return
        target = self.target
        foreign = self.repo.foreign_commits(remote.base_ref, remote.branch_ref)
        if not foreign:
            return
        newest = foreign[0]
        subject = " ".join(newest.subject.split())
        subject = subject if len(subject) <= 60 else subject[:57] + "..."
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        merge = f"pull request #{pull.number}" if pull is not None else f"it into {target.base_branch!r}"
        raise BranchHasForeignCommits(
            f"the branch {target.branch!r} has a commit vpt-tracker did not make "
            f"({newest.sha[:10]} by {newest.author}: {subject!r}{more}); nothing was pushed, so it is "
            f"not overwritten. To go on, merge {merge} or delete the branch {target.branch!r} on "
            f"{target.head_repo} (its commits are lost), then run publish again"
        )

    def _push(self, plan: Plan, remote: RemoteState) -> bool:
        target = self.target
        base_ref, branch_ref = remote.base_ref, remote.branch_ref
        on_base = remote.branch_sha is not None and self.repo.is_ancestor(base_ref, branch_ref)
        start = branch_ref if on_base else base_ref
        message = (
            plan.title
            + "\n\n"
            + "\n".join(f"- {c.action}: {no_mentions(' '.join(c.title.split()))}" for c in plan.changes)
        )
        commit = self.repo.commit_file(start, target.branch, target.readme_path, plan.new_text, message)
        if commit is None and on_base:
            log.info("branch %s already holds this README", target.branch)
            return False
        if commit is None:
            raise UserError(f"the README on {target.base_branch!r} already has every change; nothing to push")
        self._remember_push(plan)
        self.repo.push(target.branch, remote.branch_sha)
        return True

    def _remember_push(self, plan: Plan) -> None:
        """Record the README about to be pushed before pushing it, as a pull request row with
        no number yet (`_mark_published` gives it one).

        Recorded only once the pull request existed, a run stopped in between (Ctrl-C, the
        database gone) left no trace of it: when the maintainer merged that pull request,
        the next run took our own README for a maintainer's edit and stopped.
        """
        digest = _digest(plan.new_text)
        with transaction(self.engine) as session:
            catalogue = get_catalogue(session, self.name)
            known = session.scalars(
                select(PullRequestRow.id).where(
                    PullRequestRow.catalogue_id == catalogue.id, PullRequestRow.readme_sha256 == digest
                )
            ).first()
            if known is None:
                session.add(
                    PullRequestRow(
                        catalogue_id=catalogue.id,
                        branch=self.target.head,
                        number=None,
                        state="pushed",
                        readme_sha256=digest,
                        updated_at=self.clock(),
                    )
                )

    def _mark_published(self, plan: Plan, pull: PullRequest) -> int:
        now = self.clock()
        count = 0
        with transaction(self.engine) as session:
            catalogue = get_catalogue(session, self.name)
            for change in plan.changes:
                entry = session.get(EntryRow, change.entry_id)
                if entry is not None:
                    entry.extra = {**(entry.extra or {}), "pull_request": pull.number}
                if change.candidate_id is None:
                    continue
                candidate = session.get(CandidateRow, change.candidate_id)
                if candidate is not None and candidate.status == CandidateStatus.ACCEPTED:
                    _publish(session, candidate, now, pull.number)
                    count += 1
            row = session.scalars(
                select(PullRequestRow).where(
                    PullRequestRow.catalogue_id == catalogue.id, PullRequestRow.number == pull.number
                )
            ).first()
            for pushed in session.scalars(
                select(PullRequestRow).where(
                    PullRequestRow.catalogue_id == catalogue.id, PullRequestRow.number.is_(None)
                )
            ):
                session.delete(pushed)  # a push recorded by `_remember_push`: this row takes it over
            if row is None:
                row = PullRequestRow(catalogue_id=catalogue.id, branch=self.target.head, number=pull.number)
                session.add(row)
            for old in session.scalars(
                select(PullRequestRow).where(
                    PullRequestRow.catalogue_id == catalogue.id, PullRequestRow.number != pull.number
                )
            ):
                old.state = "closed"  # GitHub has one open PR per branch, and it is `pull`
            row.url = pull.url
            row.state = pull.state
            row.head_sha = pull.head_sha or None
            row.readme_sha256 = _digest(plan.new_text)
            row.updated_at = now
        return count


def _published_upstream(session: Session, catalogue: CatalogueRow, now: datetime) -> None:
    """Candidates whose papers the list upstream has now (imported entries linked to them)
    that are still `accepted` become `published`: by our merged pull request, or by a
    maintainer who listed the paper by hand.

    A run stopped after opening the pull request and before recording it (Ctrl-C) left them
    `accepted` for good, and they could be rejected while the list showed them. So did a
    paper promoted by a publish that failed (a refused push) and then added by the
    maintainer: taken in as "already upstream", its candidate stayed `accepted`, waiting for
    a publish that never came. And so did one accepted before any publish promoted it, whose
    paper the maintainer listed by hand meanwhile: `publish` warned at every run that it was
    "already listed", and the reviewer could reject a paper the list showed.
    """
    entries = list(catalogue.entries)
    ours = {e.candidate_id for e in entries if e.state == "imported" and e.candidate_id}
    accepted = session.scalars(
        select(CandidateRow).where(
            CandidateRow.catalogue_id == catalogue.id,
            CandidateRow.status == CandidateStatus.ACCEPTED.value,
        )
    ).all()
    for candidate in accepted:
        if candidate.id in ours or listed_as_is(entries, candidate.paper) is not None:
            _publish(session, candidate, now, None)


def _publish(session: Session, candidate: CandidateRow, now: datetime, pull_request: int | None) -> None:
    """Mark an accepted candidate published, and record it (`publications`): its
    `published_at` is cleared if its entry leaves the list, the record stays (the digest)."""
    candidate.status = CandidateStatus.PUBLISHED.value
    candidate.published_at = now
    session.add(
        PublicationRow(
            catalogue_id=candidate.catalogue_id, candidate_id=candidate.id, at=now, pull_request=pull_request
        )
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
