"""Plain dataclasses shared by every layer.

They carry no database or network behaviour, so that sources, the classifier and the
markdown renderer can be tested without a store, and the store can change without them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any


class CandidateStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    PUBLISHED = "published"


#: The statuses in which a candidate's paper is the catalogue's: accepted, or in its list.
POSITIVE_STATUSES = (CandidateStatus.ACCEPTED.value, CandidateStatus.PUBLISHED.value)


class RunOutcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"  # some sources failed; the others went on
    FAILED = "failed"


#: The kinds of `runs` row that fetch from the sources and judge their health; an `ingest`
#: loads local files.
PIPELINE_KINDS = ("nightly", "backfill")


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end) in UTC that a source is asked to cover."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")

    @classmethod
    def for_days(cls, since: date, until: date) -> Window:
        """Whole UTC days from `since` up to and including `until`."""
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
        return cls(start, end)

    def days(self) -> list[date]:
        """The calendar days this window touches, in order."""
        first = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class RawRecord:
    """One paper as one source saw it, before identity resolution.

    `payload` keeps what the source sent (already decoded to JSON-able data) so that a
    sighting can always be re-derived; `payload_hash` makes re-ingestion idempotent.
    """

    source: str
    source_id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    arxiv_version: int | None = None
    doi: str | None = None
    openreview_id: str | None = None
    cvf_url: str | None = None
    venue: str | None = None
    year: int | None = None
    published: datetime | None = None
    updated: datetime | None = None
    categories: tuple[str, ...] = ()
    primary_category: str | None = None
    comment: str | None = None
    journal_ref: str | None = None
    pdf_url: str | None = None
    abs_url: str | None = None
    code_url: str | None = None
    supplementary_url: str | None = None
    announce_type: str | None = None
    decision: str | None = None  # e.g. "accepted" / "rejected" for OpenReview
    payload: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: `asdict` deep-copies `payload`, which made serialising a record
        # the costliest step of ingestion. The payload is JSON-able data that nobody mutates.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("published", "updated"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["authors"] = list(self.authors)
        data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RawRecord:
        """The record a sighting's payload (`to_json`) was made from.

        Identity repair (`papers split`/`merge`) rebuilds papers from their sightings this
        way. Keys this version does not know are ignored and missing ones take their
        defaults, so that payloads stored by other versions still read.
        """
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("published", "updated"):
            if isinstance(values.get(key), str):
                parsed = datetime.fromisoformat(values[key])
                values[key] = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        for key in ("authors", "categories"):
            values[key] = tuple(values.get(key) or ())
        values["payload"] = values.get("payload") or {}
        return cls(**values)

    @property
    def payload_hash(self) -> str:
        """A stable hash of the record's content, used to skip sightings already stored."""
        body = self.to_json()
        encoded = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Page:
    """A batch of records plus the cursor value that is valid once they are stored.

    Sources yield pages, and ingestion stores a page's records and its cursor in one
    transaction: that is what makes a killed run resumable without loss or duplication.
    """

    source: str
    cursor_key: str
    records: list[RawRecord]
    cursor: str | None  # serialised position to resume from *after* this page
    done: bool = False  # the window is exhausted for this cursor key
    # What went wrong for single records without stopping the source (a dead paper page):
    # the run reports them in the source's health; the page is stored all the same.
    problems: tuple[str, ...] = ()


@dataclass
class Paper:
    """A canonical paper, the merge of all its sightings."""

    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    venue: str | None = None
    arxiv_id: str | None = None
    doi: str | None = None
    openreview_id: str | None = None
    cvf_url: str | None = None
    code_url: str | None = None
    pdf_url: str | None = None
    comment: str | None = None
    categories: list[str] = field(default_factory=list)
    id: int | None = None
    previous_venue: str | None = None
    venue_upgraded_at: datetime | None = None


@dataclass(frozen=True)
class Label:
    """A taxonomy label of a preset, e.g. `vpt-learnable` shown as "VPT-Learnable"."""

    key: str
    title: str
    group: str = ""


@dataclass
class Scores:
    """What the classifier proposes for one paper and one catalogue."""

    relevance: float
    labels: dict[str, float] = field(default_factory=dict)
    base_to_novel: float | None = None
    # The flag: `base_to_novel` at or above the model's own threshold (the card's), stored
    # with the scores as `proposed_labels` are, so that every view shows the model's decision.
    base_to_novel_flag: bool | None = None
    proposed_labels: list[str] = field(default_factory=list)
    low_confidence: bool = False
    rule: str | None = None  # the keyword rule that fired, if any


@dataclass
class Candidate:
    paper_id: int
    catalogue: str
    status: CandidateStatus
    scores: Scores
    id: int | None = None
    final_labels: list[str] | None = None
    version: int = 1


@dataclass
class Decision:
    candidate_id: int
    reviewer: str
    action: str
    at: datetime
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    id: int | None = None


# A catalogue's name becomes a directory (`classifiers/<name>/`) and part of a git branch
# (`vpt-tracker/<name>`), so it keeps to the characters both accept, and to the column's size.
CATALOGUE_NAME_MAX = 64
_CATALOGUE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?")


def check_catalogue_name(name: str) -> str:
    """`name` if it can name a catalogue, else ValueError saying what is allowed."""
    if not name:
        raise ValueError("a catalogue needs a non-empty name")
    if (
        len(name) > CATALOGUE_NAME_MAX
        or not _CATALOGUE_NAME.fullmatch(name)
        or ".." in name
        or name.endswith(".lock")
    ):
        raise ValueError(
            f"catalogue name {name[:80]!r} is not allowed: use at most {CATALOGUE_NAME_MAX} letters, "
            "digits, '.', '_' or '-', starting with a letter or digit and not ending in '.' or '.lock' "
            "(it names a folder and a git branch)"
        )
    return name


_GITHUB_REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/(?!\.\.?$)[A-Za-z0-9._-]{1,100}")


def check_github_repo(repo: str, key: str = "github_repo") -> str:
    """`repo` if it is a GitHub "owner/name" (GitHub's own rules), else ValueError naming the
    config `key` that holds it."""
    if not _GITHUB_REPO.fullmatch(repo):
        raise ValueError(f"{key} must look like 'owner/name' (GitHub's characters), not {repo[:120]!r}")
    return repo


def check_readme_path(path: str) -> str:
    """`path` if it can name a file inside a repository (relative, not leading out of it),
    else ValueError: a bad one would otherwise fail only at the first publish."""
    parts = path.replace("\\", "/").split("/")
    if not path.strip() or path.startswith(("/", "\\")) or ".." in parts or "\0" in path or ":" in parts[0]:
        raise ValueError(
            f"readme path {path[:120]!r} is not a path inside the list's repository "
            "(relative, like README.md or docs/README.md)"
        )
    return path


_BAD_IN_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|//|@\{|/\.|\.lock(?:/|$)")


def check_branch_name(branch: str) -> str:
    """`branch` if git accepts it as a branch name (`git check-ref-format --branch`), else
    ValueError: a bad one would otherwise fail only at the first publish, after the commit."""
    if (
        not branch
        or len(branch) > 255  # the pull requests table's column
        or branch == "@"
        or branch.startswith(("-", "/", "."))
        or branch.endswith(("/", "."))
        or _BAD_IN_BRANCH.search(branch)
    ):
        raise ValueError(f"{branch[:120]!r} is not a git branch name")
    return branch
