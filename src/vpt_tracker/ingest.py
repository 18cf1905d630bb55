"""Ingestion: turn raw records into canonical papers, keeping every sighting.

Identity is resolved in two steps. Exact keys come first (versionless arXiv id, lower-cased
DOI, OpenReview forum id, CVF page URL), because a shared key is proof. Only a record that
no key places is compared by title and first author with rapidfuzz, and only against the
papers that share a *block* with it: a pair of its rarest-looking title words, or its first
author with its rarest word. A block holds a handful of papers whatever the size of the
store, so fuzzy comparisons per record stay flat and the whole ingestion grows linearly.

A fuzzy match never overrides a key: a paper with another arXiv id, DOI, OpenReview id or
CVF URL is never a candidate, so two different arXiv ids are never one paper. Nor is a key
hit taken when another of the record's keys says otherwise (two preprints that carry one
proceedings-volume DOI stay two). Two similar titles published at different venues or in
different years are two papers ("Mask Transfiner", CVPR 2022, and "Video Mask Transfiner",
ECCV 2022), and so are a preprint and a paper published two or more years before it. Titles
whose numbers differ ("Qwen2.5-Omni" and "Qwen3.5-Omni", "TalentCLEF 2025" and "2026") are
never a fuzzy match (`title_score`).

A merge keeps the record as a sighting, fills what the paper lacks, and lets a venue
sighting (CVPR, ICLR, ...) upgrade a preprint: the old venue goes to `previous_venue` and
`venue_upgraded_at` is set, for the digest and the pull request. A venue is never replaced
by a preprint.

`ingest_page` writes a page's records and its cursor in the caller's transaction, so that a
crash loses nothing and a rerun duplicates nothing; `ingest_records` is the batched bulk path.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import pickle
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from itertools import combinations, islice
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz
from sqlalchemy import CursorResult, Engine, Table, func, insert, select, update
from sqlalchemy.orm import Session

from vpt_tracker import normalize
from vpt_tracker.models import Page, RawRecord
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CursorRow,
    EntryRow,
    IdentityGenerationRow,
    PaperRow,
    SightingRow,
    VenueUpgradeRow,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Title similarity (rapidfuzz ratio on folded titles, 0..100) needed for a fuzzy merge.
TITLE_THRESHOLD_WITH_AUTHORS = 90.0  # ... when both sides share an author
TITLE_THRESHOLD_TITLE_ONLY = 96.0  # ... when one side has no authors to check
# The numbers of a title, and the "plus" of an extended version ("EvTexture++": `normalize`).
_NUMBERS = re.compile(r"\d+|\bplus\b")
MAX_BLOCK_SIZE = 200  # larger blocks are too common to discriminate; they are skipped
AUTHOR_KEYS_KEPT = 8  # authors compared for overlap (reordering happens near the front)
_SQL_IN_CHUNK = 900
# Bulk writes go through Core: the ORM's bulk path costs more than the rest of a batch.
_PAPERS = cast(Table, PaperRow.__table__)
_SIGHTINGS = cast(Table, SightingRow.__table__)

#: A paper's exact identity keys, in the order `IdentityIndex.resolve` trusts them (an arXiv
#: id first: a DOI never overrules it). Ingestion, identity repair and `papers show` all
#: walk this one tuple, so a new key is added in one place.
KEY_FIELDS: tuple[str, ...] = ("arxiv_id", "doi", "openreview_id", "cvf_url")
#: How messages name each of `KEY_FIELDS`.
KEY_LABELS: dict[str, str] = dict(
    zip(KEY_FIELDS, ("arXiv id", "DOI", "OpenReview id", "CVF URL"), strict=True)
)

# Long words that are in too many titles to be a useful block.
_COMMON_WORDS_TEXT = """
    learning learned learnable network networks model models modeling modelling towards using based
    with from via deep neural large language vision visual image images video videos data dataset
    datasets method methods approach framework efficient effective improving improved generalization
    representation representations understanding analysis training transformer transformers
    multimodal multi through task tasks study benchmark benchmarking detection segmentation
    generation prompt prompts prompting tuning adaptation foundation"""
_COMMON_WORDS = frozenset(_COMMON_WORDS_TEXT.split())
_ARXIV_YEAR = re.compile(r"^(\d{2})(\d{2})\.\d{4,5}$")


@dataclass
class IngestStats:
    """What one ingestion did; stats add up with `+=` across pages and batches."""

    records: int = 0
    new_papers: int = 0
    merged: int = 0  # records attached to a paper that already existed
    new_sightings: int = 0
    duplicate_sightings: int = 0  # records already stored, skipped
    upgraded: int = 0  # preprints upgraded to a venue
    fuzzy_comparisons: int = 0
    new_paper_ids: list[int] = field(default_factory=list)

    def __iadd__(self, other: IngestStats) -> IngestStats:
        for item in fields(self):
            if item.name == "new_paper_ids":
                self.new_paper_ids.extend(other.new_paper_ids)
            else:
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
        return self

    def as_dict(self) -> dict[str, int]:
        """The counts, without the id list (for logs, run records and `--json`)."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name != "new_paper_ids"}


def arxiv_year(arxiv: str | None) -> int | None:
    """The submission year encoded in a new-style arXiv id (`2503.11731` -> 2025)."""
    match = _ARXIV_YEAR.match(arxiv or "")
    if not match:
        return None
    return 2000 + int(match.group(1))


@dataclass(frozen=True)
class RecordKeys:
    """A record's normalised identity: the exact keys and what the fuzzy match compares."""

    arxiv_id: str | None
    doi: str | None
    openreview_id: str | None
    cvf_url: str | None
    title_key: str
    author_keys: tuple[str, ...]
    lead_authors: tuple[str, ...] = ()  # initial + surname of the first two authors, for blocking
    # Where and when the record says the paper was published (None for a preprint).
    venue_series: str | None = None
    venue_year: int | None = None
    # The initial of each author's given name, beside `author_keys` ("" where none is given).
    author_initials: tuple[str, ...] = ()
    # A rejected, desk-rejected or withdrawn OpenReview submission: its forum id finds the
    # paper that holds it, which then lets it go, and is never a paper's key again.
    refused: bool = False

    @property
    def first_author(self) -> str:
        return self.author_keys[0] if self.author_keys else ""


def record_keys(record: RawRecord) -> RecordKeys:
    arxiv = normalize.arxiv_id(record.arxiv_id)
    if arxiv is None:
        for url in (record.abs_url, record.pdf_url):
            if url and "arxiv.org/" in url:
                arxiv = normalize.arxiv_id(url)
                break
    if arxiv is None and normalize.is_arxiv_doi(record.doi):
        arxiv = normalize.arxiv_id(record.doi)
    authors, initials = author_fields(record.authors)
    series = venue_series(record_venue(record))
    year = record_year(record) or (record.published.year if record.published else None)
    return RecordKeys(
        arxiv_id=arxiv,
        doi=normalize.doi(record.doi),
        openreview_id=normalize.openreview_id(record.openreview_id),
        cvf_url=normalize.cvf_url(record.cvf_url),
        title_key=normalize.title_key(record.title or "")[:512],
        author_keys=authors,
        lead_authors=lead_author_keys(authors, initials),
        venue_series=series,
        venue_year=year if series else None,
        author_initials=initials,
        refused=record.decision in REFUSED,
    )


# OpenReview decisions that end a submission: such a record is no venue sighting, whatever
# venue it names, and its forum id is not the paper's: the paper comes back under another
# forum id (its resubmission), which must find it (see `RecordKeys.refused`).
REFUSED = frozenset({"rejected", "desk-rejected", "withdrawn"})


def record_venue(record: RawRecord) -> str | None:
    """The venue a record says the paper was published at: none for a refused submission."""
    return None if record.decision in REFUSED else record.venue


def record_year(record: RawRecord) -> int | None:
    """The record's year if it is one (a payload's 10**12 overflowed PostgreSQL's column)."""
    return record.year if record.year is not None and 1000 <= record.year <= 9999 else None


def venue_series(venue: str | None) -> str | None:
    """A published venue without its year ("ICCV'23" -> "iccv"); None for a preprint."""
    if normalize.is_preprint_venue(venue):
        return None
    return " ".join(word for word in normalize.title_key(venue or "").split() if not word.isdigit()) or None


def published_apart(a_series: str | None, a_year: int | None, a_arxiv: str | None, b: RecordKeys) -> bool:
    """True when two sightings cannot be one paper by where and when they were published:
    two venues, or one venue in two years, or a venue year two or more years before the
    other's arXiv id (a paper is sometimes posted after its conference, seldom years after).
    """
    if a_series and b.venue_series:
        return a_series != b.venue_series or (
            a_year is not None and b.venue_year is not None and a_year != b.venue_year
        )
    if a_series and a_year is not None:
        arxiv = arxiv_year(b.arxiv_id)
        return arxiv is not None and a_year + 1 < arxiv
    if b.venue_series and b.venue_year is not None:
        arxiv = arxiv_year(a_arxiv)
        return arxiv is not None and b.venue_year + 1 < arxiv
    return False


def title_numbers(title_key: str) -> list[str]:
    """The numbers of a folded title, in order ("qwen2 5 omni technical report": 2, 5), with
    each "plus" ("evtexture plus plus …", `normalize`): the marks of a version."""
    return _NUMBERS.findall(title_key)


def title_score(a: str, b: str, score_cutoff: float) -> float:
    """How alike two folded titles are (0..100, 0 below `score_cutoff`) for a fuzzy match.

    Titles whose numbers differ score 0: a version, a year or a digit in a model's name
    makes another paper, however alike the rest ("Qwen2.5-Omni Technical Report" and
    "Qwen3.5-Omni Technical Report" are 96.6 % alike, "Overview of the TalentCLEF 2025: …"
    and "… 2026: …" 98.9 %). Every fuzzy title decision goes through here.
    """
    score = fuzz.ratio(a, b, score_cutoff=score_cutoff)
    if score and title_numbers(a) != title_numbers(b):  # numbers only for a pair that passes
        return 0.0
    return score


def author_fields(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The surnames of the first `AUTHOR_KEYS_KEPT` authors, and their given names' initials."""
    surnames: list[str] = []
    initials: list[str] = []
    for name in names[:AUTHOR_KEYS_KEPT]:
        name = normalize.without_suffix(name)
        surname = normalize.author_key(name)
        if surname:
            given = name.split(",", 1)[1] if "," in name else " ".join(name.split()[:-1])
            surnames.append(surname)
            initials.append(normalize.fold_text(given).strip()[:1])
    return tuple(surnames), tuple(initials)


def lead_author_keys(surnames: tuple[str, ...], initials: tuple[str, ...]) -> tuple[str, ...]:
    """Initial and surname of the first two authors ("fchollet"): a surname alone ("wang")
    is shared by too many papers to block on."""
    return tuple(initial + surname for surname, initial in zip(surnames[:2], initials[:2], strict=True))


def share_an_author(a: RecordKeys | _Known, b: RecordKeys | _Known) -> bool:
    """True when some author of `a` has the surname of one of `b` and no other initial.

    A surname alone is weak evidence in this field: "FedSC: Federated Learning with
    Semantic-Aware Collaboration" (Huan Wang, …) and "FedDisco: Federated Learning with
    Discrepancy-Aware Collaboration" (Jianyu Wang, …) are 90 % alike and share "wang".
    An initial missing on either side (a bare surname) does not rule a match out.
    """
    if not set(a.author_keys) & set(b.author_keys):
        return False
    a_initials = a.author_initials or ("",) * len(a.author_keys)
    b_initials = b.author_initials or ("",) * len(b.author_keys)
    return any(
        surname == other and (not initial or not other_initial or initial == other_initial)
        for surname, initial in zip(a.author_keys, a_initials, strict=True)
        for other, other_initial in zip(b.author_keys, b_initials, strict=True)
    )


def _stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (CRC-32 and Adler-32, both in C)."""
    data = text.encode()
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def block_keys(title_key: str, lead_authors: tuple[str, ...]) -> list[int]:
    """The blocks a paper belongs to; two versions of a paper share at least one of them.

    - pairs among the title's four longest uncommon words, or common ones for titles with
      fewer (a typo or a changed word leaves the other pairs intact);
    - each of the first two authors with each of the two longest words (short titles, which
      have few pairs);
    - the first two authors together (titles that changed more; reordered author lists).
    A single word is never a block: it would grow with the store. Hashes, not strings, keep
    the index small; stable ones (not `hash()`, which is salted per process), so that an
    index saved by one run is valid in the next.
    """
    tokens = {w for w in title_key.split() if len(w) > 2} or set(title_key.split())
    # Uncommon words first, longest first; common words fill up short titles.
    words = sorted(tokens, key=lambda w: (w in _COMMON_WORDS, -len(w), w))[:4]
    keys = [_stable_hash(f"{a} {b}") for a, b in combinations(sorted(words), 2)]
    leading = sorted(set(lead_authors[:2]))
    for author in leading:
        keys.extend(_stable_hash(f"@{author} {word}") for word in words[:2])
    if len(leading) == 2:
        keys.append(_stable_hash(f"@@{leading[0]} {leading[1]}"))
    elif not leading and len(words) == 1:
        keys.append(_stable_hash(words[0]))  # a one-word title without authors: nothing else to go on
    return keys


class _Known:
    """One paper as the index knows it: its keys, and its database id once it has one."""

    __slots__ = (
        "arxiv_id",
        "author_initials",
        "author_keys",
        "cvf_url",
        "doi",
        "id",
        "lead_authors",
        "openreview_id",
        "title_key",
        "venue_series",
        "venue_year",
    )

    def __init__(self, paper_id: int | None, keys: RecordKeys) -> None:
        self.id = paper_id
        self.arxiv_id = keys.arxiv_id
        self.doi = keys.doi
        self.openreview_id = keys.openreview_id
        self.cvf_url = keys.cvf_url
        self.title_key = keys.title_key
        self.author_keys = keys.author_keys
        self.author_initials = keys.author_initials
        self.lead_authors = keys.lead_authors
        self.venue_series = keys.venue_series
        self.venue_year = keys.venue_year

    def __reduce__(self) -> tuple[Any, ...]:
        # One call per object instead of pickle's generic __slots__ path: a saved index of
        # 300k papers loads several times faster.
        return (_known_from_fields, tuple(getattr(self, name) for name in _KNOWN_FIELDS))

    def conflicts(self, keys: RecordKeys, *, by_doi: bool = True) -> bool:
        """True when an exact key says the record is another paper.

        `by_doi=False` for a record placed by its arXiv id: the DOI an arXiv entry gives is
        the authors' to change between versions (the conference's, then the journal's), and
        the id is the entry's own.
        """
        return (
            (self.arxiv_id is not None and keys.arxiv_id is not None and self.arxiv_id != keys.arxiv_id)
            or (by_doi and self.doi is not None and keys.doi is not None and self.doi != keys.doi)
            or (
                self.openreview_id is not None
                and keys.openreview_id is not None
                and self.openreview_id != keys.openreview_id
                and not keys.refused  # a refused submission's forum proves nothing
            )
            or (self.cvf_url is not None and keys.cvf_url is not None and self.cvf_url != keys.cvf_url)
        )


_KNOWN_FIELDS = _Known.__slots__


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while an index of many small objects is built.

    The collector would walk the growing index again and again (it holds no cycles):
    reading a saved index of 100k papers took twice as long with it running.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _known_from_fields(*values: Any) -> _Known:
    known = _Known.__new__(_Known)
    for name, value in zip(_KNOWN_FIELDS, values, strict=True):
        setattr(known, name, value)
    return known


class _FrozenBlocks:
    """Blocks as two sorted arrays (block hash, paper position) over a list of papers.

    A saved index keeps its blocks this way: unpickling 2.4 million dictionary entries (300k
    papers) took longer than the rest of a nightly run's ingestion, while two arrays load
    as bytes. A run looks up only its own records' blocks, by binary search.
    """

    __slots__ = ("keys", "knowns", "members")

    def __init__(self, keys: NDArray[np.uint64], members: NDArray[np.int64], knowns: list[_Known]) -> None:
        self.keys = keys
        self.members = members
        self.knowns = knowns

    def __reduce__(self) -> tuple[Any, ...]:
        return (_FrozenBlocks, (self.keys, self.members, self.knowns))

    def get(self, key: int) -> list[_Known]:
        needle = np.uint64(key)
        low = int(np.searchsorted(self.keys, needle, "left"))
        high = int(np.searchsorted(self.keys, needle, "right"))
        return [self.knowns[position] for position in self.members[low:high]]


class IdentityIndex:
    """The in-memory identity index of the store: exact-key maps and fuzzy blocks.

    Build it with `load(session)`. It can be reused across pages and batches of one process
    (the bulk path does so); after a rolled-back transaction, load a new one.
    """

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, _Known]] = {name: {} for name in KEY_FIELDS}
        self.by_title: dict[str, list[_Known]] = {}
        # A block is one paper or, once shared, a list of them (most blocks hold one paper).
        self.blocks: dict[int, _Known | list[_Known]] = {}
        self.frozen: _FrozenBlocks | None = None  # blocks of a saved index (see `freeze`)
        self.fuzzy_comparisons = 0  # rapidfuzz calls
        self.candidates_seen = 0  # block members looked at (including those a key rules out)
        # Papers added or given keys since the index was last saved or read (see _IndexCache).
        self.changed: dict[int, _Known] = {}
        self.saved_state: tuple[Any, ...] | None = None  # the store state of the last save/read

    @classmethod
    def load(cls, session: Session) -> IdentityIndex:
        with _collector_paused():
            return cls._load(session)

    @classmethod
    def _load(cls, session: Session) -> IdentityIndex:
        index = cls()
        rows = session.execute(
            select(
                PaperRow.id,
                PaperRow.arxiv_id,
                PaperRow.doi,
                PaperRow.openreview_id,
                PaperRow.cvf_url,
                PaperRow.title_key,
                PaperRow.authors,
                PaperRow.venue,
                PaperRow.year,
            ).execution_options(yield_per=5000)
        )
        for paper_id, arxiv, doi, openreview, cvf, title_key, authors, venue, year in rows:
            author_keys, initials = author_fields(authors or [])
            series = venue_series(venue)
            keys = RecordKeys(
                arxiv_id=arxiv,
                doi=doi,
                openreview_id=openreview,
                cvf_url=cvf,
                title_key=title_key or "",
                author_keys=author_keys,
                lead_authors=lead_author_keys(author_keys, initials),
                venue_series=series,
                venue_year=year if series else None,
                author_initials=initials,
            )
            index.add(_Known(paper_id, keys))
        index.changed.clear()
        return index

    def __len__(self) -> int:
        return sum(len(known) for known in self.by_title.values())

    def add(self, known: _Known) -> None:
        self.changed[id(known)] = known
        for name in KEY_FIELDS:
            value = getattr(known, name)
            if value is not None:
                self.by_key[name][value] = known
        self.by_title.setdefault(known.title_key, []).append(known)
        for key in block_keys(known.title_key, known.lead_authors):
            members = self.blocks.get(key)
            if members is None:
                self.blocks[key] = known
            elif isinstance(members, list):
                members.append(known)
            else:
                self.blocks[key] = [members, known]

    def without_held_keys(self, keys: RecordKeys) -> RecordKeys:
        """`keys` without the exact keys another paper holds: no key is held twice, and the
        paper that had it first keeps it (as `claim_keys` does for a merge)."""
        held: dict[str, Any] = {
            name: None
            for name in KEY_FIELDS
            if getattr(keys, name) is not None and getattr(keys, name) in self.by_key[name]
        }
        if keys.refused and keys.openreview_id is not None:
            held["openreview_id"] = None  # a refused submission's forum is no paper's key
        return replace(keys, **held) if held else keys

    def claim_keys(self, known: _Known, keys: RecordKeys) -> None:
        """Give `known` the record's exact keys that it lacks and no other paper holds; a
        refused submission takes its forum id back from the paper (see `RecordKeys.refused`)."""
        if keys.refused and keys.openreview_id is not None:
            if known.openreview_id == keys.openreview_id:
                self.by_key["openreview_id"].pop(keys.openreview_id, None)
                known.openreview_id = None
                self.changed[id(known)] = known
            keys = replace(keys, openreview_id=None)
        for name in KEY_FIELDS:
            value = getattr(keys, name)
            if value is not None and getattr(known, name) is None and value not in self.by_key[name]:
                setattr(known, name, value)
                self.by_key[name][value] = known
                self.changed[id(known)] = known
        if not known.author_keys and keys.author_keys:
            known.author_keys, known.author_initials = keys.author_keys, keys.author_initials
            self.changed[id(known)] = known
        if known.venue_series is None and keys.venue_series is not None:  # as `_merge` upgrades it
            known.venue_series, known.venue_year = keys.venue_series, keys.venue_year
            self.changed[id(known)] = known

    def freeze(self) -> None:
        """Move every block into `frozen` arrays (before the index is saved whole)."""
        knowns = [known for group in self.by_title.values() for known in group]
        position = {id(known): index for index, known in enumerate(knowns)}
        keys: list[int] = []
        members: list[int] = []
        for key, group in self.blocks.items():
            for known in (group,) if isinstance(group, _Known) else group:
                keys.append(key)
                members.append(position[id(known)])
        key_array = np.fromiter(keys, dtype=np.uint64, count=len(keys))
        member_array = np.fromiter(members, dtype=np.int64, count=len(members))
        if self.frozen is not None:
            moved = np.fromiter(
                (position[id(k)] for k in self.frozen.knowns), np.int64, len(self.frozen.knowns)
            )
            key_array = np.concatenate([self.frozen.keys, key_array])
            member_array = np.concatenate([moved[self.frozen.members], member_array])
        order = np.argsort(key_array, kind="stable")  # stable: members keep their insertion order
        self.frozen = _FrozenBlocks(key_array[order], member_array[order], knowns)
        self.blocks = {}

    def apply(self, fields: Sequence[tuple[Any, ...]]) -> None:
        """Replay journaled papers (`_KNOWN_FIELDS` tuples): new ones are added, known ones updated."""
        by_id: dict[int, _Known] | None = None
        for values in fields:
            update = _known_from_fields(*values)
            if not any(known.id == update.id for known in self.by_title.get(update.title_key, ())):
                self.add(update)
                continue
            if by_id is None:
                by_id = {known.id: known for group in self.by_title.values() for known in group if known.id}
            known = by_id[cast(int, update.id)]  # journaled papers are stored ones: they have ids
            if known.openreview_id is not None and update.openreview_id is None:  # let go (refused)
                if self.by_key["openreview_id"].get(known.openreview_id) is known:
                    del self.by_key["openreview_id"][known.openreview_id]
                known.openreview_id = None
            for name in KEY_FIELDS:
                value = getattr(update, name)
                if value is not None and getattr(known, name) is None:
                    setattr(known, name, value)
                    self.by_key[name][value] = known
            if not known.author_keys:
                known.author_keys, known.author_initials = update.author_keys, update.author_initials
            if known.venue_series is None:
                known.venue_series, known.venue_year = update.venue_series, update.venue_year

    def resolve(self, keys: RecordKeys) -> _Known | None:
        """The paper this record is, or None for a new paper."""
        for name in KEY_FIELDS:
            value = getattr(keys, name)
            if value is not None:
                hit = self.by_key[name].get(value)
                # A key is proof unless another key of the record says it is another paper
                # (a DOI never overrules an arXiv id: see `_Known.conflicts`).
                if hit is not None and not hit.conflicts(keys, by_doi=name != "arxiv_id"):
                    return hit
        return self._fuzzy(keys)

    def _fuzzy(self, keys: RecordKeys) -> _Known | None:
        if not keys.title_key:
            return None
        candidates: dict[int, _Known] = {}
        for known in self.by_title.get(keys.title_key, ()):
            candidates[id(known)] = known
        for block in block_keys(keys.title_key, keys.lead_authors):
            members = self.blocks.get(block)
            if self.frozen is not None:
                saved = self.frozen.get(block)
                if saved:
                    members = saved + (
                        [] if members is None else [members] if isinstance(members, _Known) else members
                    )
            if isinstance(members, _Known):
                candidates[id(members)] = members
            elif members is not None and len(members) <= MAX_BLOCK_SIZE:
                for known in members:
                    candidates[id(known)] = known
        best: _Known | None = None
        best_score = 0.0
        self.candidates_seen += len(candidates)
        for known in candidates.values():
            if known.conflicts(keys):
                continue
            both_have_authors = bool(keys.author_keys and known.author_keys)
            if both_have_authors and not share_an_author(keys, known):
                continue
            threshold = TITLE_THRESHOLD_WITH_AUTHORS if both_have_authors else TITLE_THRESHOLD_TITLE_ONLY
            self.fuzzy_comparisons += 1
            score = title_score(keys.title_key, known.title_key, threshold)
            if score <= best_score:
                continue
            if score < 100 and published_apart(known.venue_series, known.venue_year, known.arxiv_id, keys):
                continue  # similar titles, but published apart: "Mask Transfiner", "Video Mask Transfiner"
            best, best_score = known, score
        return best


def _new_paper_values(record: RawRecord, keys: RecordKeys, now: datetime) -> dict[str, Any]:
    venue = record_venue(record)
    if venue is None and (keys.arxiv_id or record.source.startswith("arxiv")):
        venue = "arXiv"
    year = record_year(record)
    if year is None and record.published is not None:
        year = record.published.year
    if year is None:
        year = arxiv_year(keys.arxiv_id)
    return {
        "title": record.title,
        "title_key": keys.title_key,
        "first_author_key": keys.first_author[:128],
        "abstract": record.abstract or "",
        "authors": list(record.authors),
        "year": year,
        "venue": venue[:128] if venue else None,
        "previous_venue": None,
        "venue_upgraded_at": None,
        "arxiv_id": keys.arxiv_id,
        "doi": keys.doi,
        "openreview_id": keys.openreview_id,
        "cvf_url": keys.cvf_url,
        "code_url": record.code_url,
        "pdf_url": record.pdf_url,
        "comment": record.comment,
        "journal_ref": record.journal_ref,
        "categories": list(record.categories),
        "primary_category": normalize.arxiv_category(record.primary_category),
        "published_at": record.published,
        "created_at": now,
        "modified_at": now,
    }


_FILLED_FROM_RECORD = ("code_url", "pdf_url", "comment", "journal_ref")


def _merge(values: dict[str, Any], record: RawRecord, known: _Known, now: datetime) -> tuple[set[str], bool]:
    """Merge a record into a paper's column values; returns the changed columns and whether
    the paper was upgraded from a preprint to a venue."""
    changed: set[str] = set()

    def put(column: str, value: Any) -> None:
        if values.get(column) != value:
            values[column] = value
            changed.add(column)

    if not values.get("abstract") and record.abstract:
        put("abstract", record.abstract)
    if not values.get("authors") and record.authors:
        put("authors", list(record.authors))
        put("first_author_key", normalize.first_author_key(record.authors)[:128])
    if not values.get("categories") and record.categories:
        put("categories", list(record.categories))
    for column in _FILLED_FROM_RECORD:
        value = getattr(record, column)
        if value and not values.get(column):
            put(column, value)
    category = normalize.arxiv_category(record.primary_category)
    if category and not values.get("primary_category"):
        put("primary_category", category)
    for column in KEY_FIELDS:
        # The index decided which keys this paper may hold (no unique key is taken twice).
        if values.get(column) is None and getattr(known, column) is not None:
            put(column, getattr(known, column))
    refused_forum = normalize.openreview_id(record.openreview_id) if record.decision in REFUSED else None
    if refused_forum is not None and values.get("openreview_id") == refused_forum:
        put("openreview_id", None)  # a refused submission takes its forum id back (`claim_keys`)
    if record.published and (values.get("published_at") is None or record.published < values["published_at"]):
        put("published_at", record.published)

    upgraded = False
    venue = record_venue(record)
    if venue and not normalize.is_preprint_venue(venue) and normalize.is_preprint_venue(values.get("venue")):
        put("previous_venue", values.get("venue") or ("arXiv" if values.get("arxiv_id") else None))
        put("venue", venue[:128])
        if record_year(record) is not None:
            put("year", record_year(record))
        put("venue_upgraded_at", now)
        upgraded = True
    elif values.get("venue") is None and venue:
        put("venue", venue[:128])
    if values.get("venue") is None and values.get("arxiv_id"):
        put("venue", "arXiv")  # as for a paper first seen with its arXiv id
    if values.get("year") is None:
        year = record_year(record) or (record.published.year if record.published else None)
        year = year or arxiv_year(values.get("arxiv_id"))
        if year is not None:
            put("year", year)
    if changed:
        values["modified_at"] = now
        changed.add("modified_at")
    return changed, upgraded


def rebuild_papers(
    session: Session, groups: Sequence[Sequence[tuple[RawRecord, datetime]]], *, rebuilt: Sequence[int]
) -> list[dict[str, Any]]:
    """Each group's paper as ingestion would have made it from these records alone.

    Identity repair (`vpt_tracker.identity`) calls this when it moves sightings between
    papers: every group is replayed in order through the code ingestion uses, the first
    record making the paper (`_new_paper_values`) and each later one merging into it
    (`_merge`, at its own fetch time, so a venue upgrade keeps the time it happened). Exact
    keys follow ingestion's rule too: a key that another stored paper (not one of `rebuilt`,
    the papers being remade) or an earlier group holds is not taken, so no unique key is
    ever held twice. Returns each group's column values; `created_at` is its first record's
    time, for the caller to keep or replace.
    """
    index = IdentityIndex()
    keyed = [[(_stored_form(record)[0], at) for record, at in group] for group in groups]
    wanted: dict[str, set[str]] = {name: set() for name in KEY_FIELDS}
    for group in keyed:
        for record, _at in group:
            keys = record_keys(record)
            for name in KEY_FIELDS:
                if getattr(keys, name) is not None:
                    wanted[name].add(getattr(keys, name))
    for name, held in wanted.items():
        column = getattr(PaperRow, name)
        for chunk in chunks(sorted(held), _SQL_IN_CHUNK):
            query = select(PaperRow.id, column).where(column.in_(chunk), PaperRow.id.not_in(list(rebuilt)))
            for paper_id, value in session.execute(query):
                index.by_key[name][value] = _Known(paper_id, RecordKeys(None, None, None, None, "", ()))
    papers: list[dict[str, Any]] = []
    for group in keyed:
        if not group:
            raise ValueError("a paper is rebuilt from one sighting at least")
        (first, first_at), later = group[0], group[1:]
        keys = index.without_held_keys(record_keys(first))
        known = _Known(None, keys)
        index.add(known)
        values = _new_paper_values(first, keys, first_at)
        for record, at in later:
            index.claim_keys(known, record_keys(record))
            _merge(values, record, known, at)
        papers.append(values)
    return papers


def _stored_sightings(session: Session, records: list[RawRecord], hashes: set[str]) -> dict[str, int]:
    """Payload hash -> paper id of the records' sightings that are already stored.

    Looked up by (source, source_id), the leading columns of the sightings' unique index: a
    lookup by hash alone would scan the whole table for every batch.
    """
    by_source: dict[str, set[str]] = {}
    for record in records:
        by_source.setdefault(record.source, set()).add(record.source_id[:512])
    stored: dict[str, int] = {}
    query = select(SightingRow.payload_hash, SightingRow.paper_id)
    for source, source_ids in by_source.items():
        for chunk in chunks(sorted(source_ids), _SQL_IN_CHUNK):
            same = query.where(SightingRow.source == source, SightingRow.source_id.in_(chunk))
            for payload_hash, paper_id in session.execute(same):
                if payload_hash in hashes:
                    stored[payload_hash] = paper_id
    return stored


def _stored_form(record: RawRecord) -> tuple[RawRecord, dict[str, Any], str]:
    """The record's JSON form (the sighting's payload) and its hash, from one serialisation,
    with the record itself, made storable when it was not (see `_storable`).

    The hash is `RawRecord.payload_hash` (a test holds them equal); computing both from one
    `to_json()` halves the cost of the slowest step of a bulk load.
    """
    body = record.to_json()
    encoded = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    if not _UNSTORABLE_IN_JSON.search(encoded):  # no NUL or other control character
        try:
            return record, body, hashlib.sha256(encoded.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:  # a lone surrogate
            pass
    record = _storable(record)
    body = record.to_json()
    encoded = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return record, body, hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _storable(record: RawRecord) -> RawRecord:
    """The record without what no store can keep: NUL characters (PostgreSQL refuses them in
    text and JSON) and lone surrogates (a truncated emoji in a JSON dump: not UTF-8 at all).

    One bad character in one abstract would otherwise fail its page on every rerun, and the
    source's cursor would never move. A surrogate becomes U+FFFD and a NUL is dropped. The
    other control characters (ESC, BEL, backspace, DEL, the C1 range; not tab or line breaks)
    are dropped too: a title is printed by the CLI, the review app and the digest, and an
    ESC sequence in a feed's title would reach the maintainer's terminal.
    """
    return replace(
        record,
        **{
            item.name: _printable(getattr(record, item.name))
            for item in fields(record)
            if isinstance(getattr(record, item.name), str | tuple | dict)
        },
    )


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# How `json.dumps(..., ensure_ascii=False)` writes them: C0 escaped (`\u001b`; tab and line
# breaks as `\t`, `\n`, `\r`), DEL and C1 as they are. A false alarm (a title holding a
# backslash before "u001b") only takes the slower path.
_UNSTORABLE_IN_JSON = re.compile(r"\\u00[01][0-9a-fA-F]|[\x7f-\x9f]")


def _printable(value: Any) -> Any:
    """`value` (a string, or strings in tuples, lists and dicts) without NULs, other control
    characters and surrogates."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", _CONTROL.sub("", value))
    if isinstance(value, tuple | list):
        return type(value)(_printable(item) for item in value)
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    return value


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """`items` in lists of at most `size`: SQL `IN` lists and batches that stay bounded."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _paper_values(row: PaperRow) -> dict[str, Any]:
    """A stored paper's columns; datetimes made UTC-aware (SQLite reads them back naive), so
    that they compare with the records' aware ones."""
    values = {column.key: getattr(row, column.key) for column in PaperRow.__table__.columns}
    for column, value in values.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            values[column] = value.replace(tzinfo=UTC)
    return values


def _ingest(
    session: Session,
    records: list[RawRecord],
    index: IdentityIndex,
    *,
    run_id: int | None,
    now: datetime,
) -> tuple[IngestStats, list[int | None]]:
    """Resolve and store one batch of records in the session's transaction.

    Returns the stats and, for each record, the id of the paper it is a sighting of.
    """
    stats = IngestStats(records=len(records))
    comparisons_before = index.fuzzy_comparisons

    forms = [_stored_form(record) for record in records]
    records = [record for record, _body, _hash in forms]
    bodies = [(body, payload_hash) for _record, body, payload_hash in forms]
    hashes = [payload_hash for _body, payload_hash in bodies]
    stored = _stored_sightings(session, records, set(hashes))
    duplicates: list[tuple[int, str]] = []  # (position, hash) of records already stored
    planned: dict[str, _Known] = {}

    # 1. Resolve identities in record order, so that later records see earlier ones.
    plan: list[tuple[RawRecord, str, RecordKeys, _Known, bool]] = []
    fresh: dict[int, dict[str, Any]] = {}  # id(_Known) -> values of a paper new in this batch
    for position, (record, payload_hash) in enumerate(zip(records, hashes, strict=True)):
        if payload_hash in stored or payload_hash in planned:
            stats.duplicate_sightings += 1
            duplicates.append((position, payload_hash))
            continue
        keys = record_keys(record)
        known = index.resolve(keys)
        if known is None:
            keys = index.without_held_keys(keys)  # a new paper, whose key another one holds
            known = _Known(None, keys)
            index.add(known)
            fresh[id(known)] = _new_paper_values(record, keys, now)
            plan.append((record, payload_hash, keys, known, True))
        else:
            index.claim_keys(known, keys)
            plan.append((record, payload_hash, keys, known, False))
        planned[payload_hash] = known

    # 2. Load the stored papers that records merge into.
    existing_ids = sorted({known.id for *_, known, new in plan if not new and known.id is not None})
    loaded: dict[int, dict[str, Any]] = {}
    for chunk in chunks(existing_ids, _SQL_IN_CHUNK):
        for row in session.scalars(select(PaperRow).where(PaperRow.id.in_(chunk))):
            loaded[row.id] = _paper_values(row)

    # 3. Merge, in order.
    changed: dict[int, set[str]] = {}
    upgrades: list[tuple[_Known, dict[str, Any]]] = []  # each upgrade, with the paper's values
    for record, _hash, _keys, known, new in plan:
        if new:
            continue
        stats.merged += 1
        values = fresh[id(known)] if known.id is None else loaded[known.id]
        columns, upgraded = _merge(values, record, known, now)
        stats.upgraded += int(upgraded)
        if upgraded:
            upgrades.append((known, values))
        if known.id is not None and columns:
            changed.setdefault(known.id, set()).update(columns)

    # 4. Write: new papers (ids come back in order), updated papers, then sightings.
    new_knowns = [known for *_, known, new in plan if new]
    if new_knowns:
        statement = insert(_PAPERS).returning(_PAPERS.c.id, sort_by_parameter_order=True)
        result = session.execute(statement, [fresh[id(known)] for known in new_knowns])
        for known, paper_id in zip(new_knowns, result.scalars().all(), strict=True):
            known.id = paper_id
            stats.new_paper_ids.append(paper_id)
        stats.new_papers = len(new_knowns)
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
    for paper_id, columns in changed.items():
        update_values = {"id": paper_id, **{column: loaded[paper_id][column] for column in columns}}
        by_columns.setdefault(frozenset(columns), []).append(update_values)
    for rows in by_columns.values():
        session.execute(update(PaperRow), rows)
    if new_knowns or by_columns:
        identity_changed(session)
    if plan:
        bodies_by_hash = {payload_hash: body for body, payload_hash in bodies}
        session.execute(
            insert(_SIGHTINGS),
            [
                {
                    "paper_id": known.id,
                    "source": record.source,
                    "source_id": record.source_id[:512],
                    "payload_hash": payload_hash,
                    "payload": bodies_by_hash[payload_hash],
                    "fetched_at": now,
                    "run_id": run_id,
                }
                for record, payload_hash, _keys, known, _new in plan
            ],
        )
    if upgrades:
        _record_upgrades(session, upgrades, now)
    stats.new_sightings = len(plan)
    stats.fuzzy_comparisons = index.fuzzy_comparisons - comparisons_before
    paper_ids: list[int | None] = [planned[h].id if h in planned else None for h in hashes]
    for position, payload_hash in duplicates:
        paper_ids[position] = stored.get(payload_hash, paper_ids[position])
    return stats, paper_ids


def _record_upgrades(session: Session, upgrades: list[tuple[_Known, dict[str, Any]]], now: datetime) -> None:
    """A `venue_upgrades` row per upgrade of the batch (papers written: ids known), with the
    lists that held the paper then: the paper's columns keep the last upgrade only."""
    paper_ids = sorted({known.id for known, _values in upgrades if known.id is not None})
    listed = lists_to_tell(session, paper_ids)
    rows = [
        {
            "paper_id": known.id,
            "at": now,
            "previous_venue": values.get("previous_venue"),
            "venue": values.get("venue"),
            "year": values.get("year"),
            "listed_in": listed.get(known.id, []) if known.id is not None else [],
        }
        for known, values in upgrades
    ]
    session.execute(insert(VenueUpgradeRow), rows)


def lists_to_tell(session: Session, paper_ids: Sequence[int]) -> dict[int, list[int]]:
    """For each paper, the ids of the catalogues whose list holds it (an entry linked to it)
    and does not show a venue for it already: an imported entry with a venue, not a preprint
    (importing a list whose entries give venues upgrades the preprints stored before from
    them, which is no news to that list). The lists a venue upgrade of the paper is news to."""
    listed: dict[int, set[int]] = {}
    shown: set[tuple[int, int]] = set()
    for chunk in chunks(paper_ids, _SQL_IN_CHUNK):
        query = select(EntryRow.paper_id, EntryRow.catalogue_id, EntryRow.state, EntryRow.venue).where(
            EntryRow.paper_id.in_(chunk)
        )
        for paper_id, catalogue_id, state, venue in session.execute(query):
            assert paper_id is not None  # taken by it
            listed.setdefault(paper_id, set()).add(catalogue_id)
            if state == "imported" and not normalize.is_preprint_venue(venue):
                shown.add((paper_id, catalogue_id))
    return {
        paper_id: sorted(c for c in catalogues if (paper_id, c) not in shown)
        for paper_id, catalogues in listed.items()
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def ingest_page(
    session: Session,
    page: Page,
    run_id: int | None = None,
    *,
    index: IdentityIndex | None = None,
    now: Clock = _utcnow,
) -> IngestStats:
    """Store a page's records and advance its cursor, in the caller's transaction.

    Both happen in `session`, so a failure anywhere leaves neither. Without `index`, the
    identity index of the last page is reused when the store has not changed since (see
    `_INDEX_CACHE`), so that the pages of a run do not each load it from the store.
    """
    cached = index is None
    if index is None:
        index = _INDEX_CACHE.take(session)
    stats, _ids = _ingest(session, list(page.records), index, run_id=run_id, now=now())
    _write_cursor(session, page.source, page.cursor_key, page.cursor)
    session.flush()
    if cached:
        _INDEX_CACHE.put(session, index)
    return stats


def ingest_resolved(
    session: Session,
    records: list[RawRecord],
    *,
    run_id: int | None = None,
    index: IdentityIndex | None = None,
    now: Clock = _utcnow,
) -> tuple[IngestStats, list[int]]:
    """Ingest records in the caller's transaction and say which paper each one is.

    For callers that must link something to the papers (catalogue enrichment): a record
    already stored is resolved to the paper of its stored sighting.
    """
    if index is None:
        index = IdentityIndex.load(session)
    stats, paper_ids = _ingest(session, records, index, run_id=run_id, now=now())
    session.flush()
    resolved = [paper_id for paper_id in paper_ids if paper_id is not None]
    if len(resolved) != len(paper_ids):  # pragma: no cover - every record has a paper by construction
        raise AssertionError("a record was not resolved to a paper")
    return stats, resolved


class _IndexCache:
    """The identity index of each database, kept between `ingest_page` calls and between runs.

    It is reused only if the store is in the state it was left in: same identity generation
    (`identity_changed`), paper count, highest id and latest modification. A rolled-back
    page, or papers written by another process or host, change one of them (the index's own
    writes are recorded after they are flushed), and the index is then loaded afresh. An
    index in use is taken out of the cache, so two threads never share one.

    With a snapshot folder (`keep_index_between_runs`), `save_index` writes the index to
    disk with the state it matches, and the next process starts from it when the store is
    still in that state: a nightly run over a store of 300k papers then reads one file
    instead of rebuilding the index from every paper (seconds instead of half a minute).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[Any, ...], IdentityIndex]] = {}
        self.snapshots: Path | None = None

    @staticmethod
    def url(session: Session) -> str:
        """The database's URL, which names its entry and its snapshot file."""
        return session.get_bind().engine.url.render_as_string(hide_password=False)

    @classmethod
    def _state(cls, session: Session) -> tuple[str, tuple[Any, ...]]:
        """The store's identity generation (`identity_changed`), with the paper count, highest
        id and latest modification, which also tell writes from outside vpt-tracker."""
        url = cls.url(session)
        generation = select(IdentityGenerationRow.generation).where(IdentityGenerationRow.id == 1)
        row = session.execute(
            select(
                generation.scalar_subquery(),
                func.count(PaperRow.id),
                func.max(PaperRow.id),
                func.max(PaperRow.modified_at),
            )
        ).one()
        return url, tuple(row)

    def take(self, session: Session) -> IdentityIndex:
        url, state = self._state(session)
        with self._lock:
            entry = self._entries.pop(url, None)
        if entry is not None and entry[0] == state:
            return entry[1]
        return self._read_snapshot(url, state) or IdentityIndex.load(session)

    def put(self, session: Session, index: IdentityIndex) -> None:
        url, state = self._state(session)
        with self._lock:
            self._entries[url] = (state, index)

    def save(self, session: Session) -> bool:
        """Write this database's cached index to the snapshot folder, if it is current.

        What changed since the last save is appended to a journal beside the snapshot (a
        nightly run's new papers: milliseconds); the whole index is rewritten only when
        there is no snapshot to extend or the journal has grown to a quarter of it.
        """
        if self.snapshots is None:
            return False
        url, state = self._state(session)
        with self._lock:
            entry = self._entries.get(url)
        if entry is None or entry[0] != state:
            return False
        index = entry[1]
        base, journal = self._snapshot_path(url), self._journal_path(url)
        base.parent.mkdir(parents=True, exist_ok=True)
        extend = (
            index.saved_state is not None
            and base.exists()
            and (journal.stat().st_size if journal.exists() else 0) < base.stat().st_size // 4
        )
        if extend:
            changes = [tuple(getattr(k, name) for name in _KNOWN_FIELDS) for k in index.changed.values()]
            _append_whole(journal, pickle.dumps((index.saved_state, state, changes), pickle.HIGHEST_PROTOCOL))
        else:
            index.freeze()
            # A fixed name (saves run under the pipeline lock), so that the next save replaces
            # what a killed one left; a save that fails (a full disk) removes it at once.
            temporary = base.with_suffix(".tmp")
            try:
                saved = (_SNAPSHOT_FORMAT, url, state, index)
                with temporary.open("wb") as stream:
                    pickle.dump(saved, stream, protocol=pickle.HIGHEST_PROTOCOL)
                temporary.replace(base)  # a crash leaves the old snapshot or none, never half a file
            finally:
                temporary.unlink(missing_ok=True)
            journal.unlink(missing_ok=True)
        index.changed.clear()
        index.saved_state = state
        return True

    def _snapshot_path(self, url: str) -> Path:
        assert self.snapshots is not None
        name = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.snapshots / f"identity-index-{name}.pickle"

    def _journal_path(self, url: str) -> Path:
        return self._snapshot_path(url).with_suffix(".journal")

    def _read_snapshot(self, url: str, state: tuple[Any, ...]) -> IdentityIndex | None:
        """The saved index plus its journal, if together they match the store's `state`."""
        if self.snapshots is None:
            return None
        path = self._snapshot_path(url)
        try:
            with path.open("rb") as stream, _collector_paused():
                saved_format, saved_url, saved_state, index = pickle.load(stream)
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged or foreign file: rebuild from the store
            log.warning("ignoring the identity index snapshot %s (%s)", path, type(exc).__name__)
            return None
        if (saved_format, saved_url) != (_SNAPSHOT_FORMAT, url) or not isinstance(index, IdentityIndex):
            return None
        current = saved_state
        try:
            with self._journal_path(url).open("rb") as stream:
                while current != state:
                    before, after, changes = pickle.load(stream)
                    if before != current:
                        break
                    index.apply(changes)
                    current = after
        except (FileNotFoundError, EOFError):
            pass
        except Exception as exc:  # a torn last record (a crash while appending): stop there
            log.warning("identity index journal of %s ends early (%s)", path, type(exc).__name__)
        if current != state:
            log.debug("identity index snapshot %s is stale", path)
            return None
        index.changed.clear()
        index.saved_state = state
        return index

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_INDEX_CACHE = _IndexCache()
_SNAPSHOT_FORMAT = 8  # 2: venue series and year; 3: title keys of migration 0004; 4: initials;
# 5: author keys with LaTeX letters folded (`normalize._LATEX_LETTERS`); 6: without "Jr.", "III";
# 7: title keys of migration 0008 (script markers folded away: "E^2VPT" is "e2vpt");
# 8: of migration 0012 (`\ell` is "l", "H_2O" is "h2o")


def identity_changed(session: Session) -> None:
    """Raise the store's identity generation, in the transaction that changes the papers.

    Every identity index kept anywhere (in memory, saved in any host's data dir) was built
    at an older generation and is no longer used once this commits. The papers' latest
    modification time did this before, but it comes from the writer's clock: a write from a
    host whose clock is behind left it as it was. The row lock this takes on PostgreSQL is
    held to the commit; identity writes run under the pipeline lock anyway.
    """
    table = cast(Table, IdentityGenerationRow.__table__)
    bumped = session.execute(update(table).where(table.c.id == 1).values(generation=table.c.generation + 1))
    if cast(CursorResult[Any], bumped).rowcount == 0:  # the row was deleted by hand
        session.execute(insert(table).values(id=1, generation=1))


def discard_index(session: Session) -> None:
    """Forget this store's identity index: in memory, and its snapshot and journal on disk,
    and (`identity_changed`) on every other host.

    For changes the index cannot follow by itself (identity repair moves keys between
    papers): the next ingestion rebuilds the index from the store. Called inside the
    repairing transaction, before it commits: if the commit then fails, only a cache is lost.
    """
    identity_changed(session)
    url = _INDEX_CACHE.url(session)
    with _INDEX_CACHE._lock:
        _INDEX_CACHE._entries.pop(url, None)
    if _INDEX_CACHE.snapshots is not None:
        _INDEX_CACHE._snapshot_path(url).unlink(missing_ok=True)
        _INDEX_CACHE._journal_path(url).unlink(missing_ok=True)


def keep_index_between_runs(folder: Path | None) -> None:
    """Save identity indexes in `folder` (see `_IndexCache`); None turns it off."""
    _INDEX_CACHE.snapshots = folder


def forget_indexes() -> None:
    """Drop the indexes kept in memory (the next page loads a snapshot or the store)."""
    _INDEX_CACHE.clear()


def _append_whole(path: Path, record: bytes) -> None:
    """Append `record` to `path`, or leave the file as it was.

    A write cut short (a full disk) is cut off again, so that the journal's next record
    follows a whole one: after a torn record every later one is unreadable, and each run
    would rebuild the index from the store until the snapshot was next rewritten.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(descriptor).st_size
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(descriptor, view) :]
        except OSError:
            with contextlib.suppress(OSError):  # e.g. a device, which cannot be truncated
                os.ftruncate(descriptor, size)
            raise
    finally:
        os.close(descriptor)


def save_index(engine: Engine) -> bool:
    """Write the current identity index of this store to the snapshot folder, if any.

    Called once a run's pages are all ingested; True when a snapshot was written. The
    snapshot only saves the next run work, so a folder that cannot be written (a full disk,
    a file in its place) is a warning and False: the records are committed, and a command
    that stored them all must not fail for it (`ingest-jsonl` did, with a traceback and
    its run recorded `failed`).
    """
    with transaction(engine) as session:
        try:
            return _INDEX_CACHE.save(session)
        except OSError as exc:
            log.warning("could not save the identity index snapshot (the next run rebuilds it): %s", exc)
            return False


def _write_cursor(session: Session, source: str, key: str, value: str | None) -> None:
    row = session.scalars(select(CursorRow).where(CursorRow.source == source, CursorRow.key == key)).first()
    if row is None:
        session.add(CursorRow(source=source, key=key, value=value))
    elif row.value != value:
        row.value = value


def read_cursors(session: Session, source: str) -> dict[str, str | None]:
    """Every cursor key of a source and its value; {} for a source never fetched."""
    rows = session.execute(select(CursorRow.key, CursorRow.value).where(CursorRow.source == source))
    return {key: value for key, value in rows}


def ingest_records(
    engine: Engine,
    records: Iterable[RawRecord],
    *,
    run_id: int | None = None,
    batch_size: int = 1000,
    index: IdentityIndex | None = None,
    now: Clock = _utcnow,
    progress: Callable[[IngestStats], None] | None = None,
) -> IngestStats:
    """Ingest many records in batches, one transaction per batch (for bulk loads).

    A failed batch rolls back whole and stops the load; the batches before it stay stored,
    and re-running the load skips them as duplicate sightings. `progress` is called after
    each committed batch with that batch's stats.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    total = IngestStats()
    iterator = iter(records)
    own_index = index is None
    with transaction(engine) as session:
        if index is None:
            index = _INDEX_CACHE.take(session)
    while batch := list(islice(iterator, batch_size)):
        with transaction(engine) as session:
            stats, _ids = _ingest(session, batch, index, run_id=run_id, now=now())
        total += stats
        if progress is not None:
            progress(stats)
    if own_index:  # later pages (and, once saved, later runs) start from this index
        with transaction(engine) as session:
            _INDEX_CACHE.put(session, index)
    log.info("ingested %s", total.as_dict())
    return total
