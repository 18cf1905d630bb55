"""Training and scoring inputs as plain data: no database, no network.

The store (via `enqueue.py`), the list files (via `recipes.py`) and `papers.jsonl` files
all become `Example`s here, so that the models and their evaluation see one shape of
data wherever it came from.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

from vpt_tracker.dumps import expect_object, first_text, iter_jsonl, literal, text_field
from vpt_tracker.errors import UserError
from vpt_tracker.ingest import TITLE_THRESHOLD_TITLE_ONLY
from vpt_tracker.normalize import arxiv_id, title_key


@dataclass(frozen=True)
class Example:
    """One paper as the classifier sees it, with the labels a catalogue gives it (if any)."""

    title: str
    abstract: str = ""
    comment: str | None = None
    labels: tuple[str, ...] = ()
    id: str | None = None
    full_text: str | None = None
    # The labels whose absence means "no": None = every label of the catalogue. A related
    # list that cannot express a label (it has no section or badge for it) says nothing
    # about it, so its papers are neither positives nor negatives for that label.
    label_scope: frozenset[str] | None = None

    @property
    def has_abstract(self) -> bool:
        return bool(self.abstract and self.abstract.strip())

    def text(self) -> str:
        """Title, abstract and comment in one string: what the TF-IDF features are built from."""
        parts = [self.title, self.abstract or "", self.comment or ""]
        return "\n".join(part for part in parts if part)

    def evidence_text(self) -> str:
        """The text the base-to-novel flag reads: the same plus the full text where fetched."""
        return self.text() + ("\n" + self.full_text if self.full_text else "")

    def knows_label(self, label: str) -> bool:
        """Whether this example's `labels` say yes or no about `label` (see `label_scope`)."""
        return self.label_scope is None or label in self.label_scope

    def key(self) -> str:
        """A stable identity for de-duplication: the arXiv id, else the folded title."""
        return (self.id and arxiv_id(self.id)) or title_key(self.title)

    def silent_on(self, groups: Sequence[Sequence[str]], label_keys: Sequence[str]) -> Example:
        """This example, unlabelled for each group it carries none of (see `label_scope`).

        For a group of which every entry carries exactly one label (a preset's
        `required_groups`), a paper with none of them was not labelled for the group: a
        related list that can say "pixel-level" but not "token-level" is silent about the
        prompt kind of its other papers, not saying "no kind".
        """
        silent = {key for group in groups if not set(group) & set(self.labels) for key in group}
        return self.unlabelled_for(silent, label_keys)

    def unlabelled_for(self, labels: Collection[str], label_keys: Iterable[str]) -> Example:
        """This example with `labels` taken out of its `label_scope` (None: all `label_keys`):
        neither a positive nor a negative for them. Unchanged when `labels` is empty."""
        if not labels:
            return self
        scope = frozenset(label_keys) if self.label_scope is None else self.label_scope
        return replace(self, label_scope=scope - frozenset(labels))


@dataclass
class TrainingSet:
    """What one catalogue's models learn from.

    `relevant` are the positives (entries with abstracts, accepted decisions); `rejected`
    are reviewed negatives; `unlabeled` are fetched papers nobody reviewed, which are
    mostly but not surely negatives (the PU setting). `novel_positive` / `novel_negative`
    train the base-to-novel flag; they may be empty for presets that do not need it.
    `entries_without_abstract` are the catalogue's labelled entries that have no abstract
    (a title and labels): the label models learn from their titles at a lower weight, the
    relevance model does not (a title alone would teach it that short texts are relevant).
    They are often most of a list, and its newest part: the entries with abstracts can be a
    skewed sample of it, e.g. mostly the older ones.
    """

    relevant: list[Example]
    rejected: list[Example] = field(default_factory=list)
    unlabeled: list[Example] = field(default_factory=list)
    novel_positive: list[Example] = field(default_factory=list)
    novel_negative: list[Example] = field(default_factory=list)
    entries_without_abstract: list[Example] = field(default_factory=list)
    # Reviewed papers left out for want of an abstract, by decision ("accepted", "rejected"):
    # a title alone teaches the relevance model how long a text is. Not training data (not in
    # `counts` or `data_hash`); `train` says how many, so a decision is never lost unseen.
    decided_without_abstract: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "relevant": len(self.relevant),
            "relevant_with_abstract": sum(e.has_abstract for e in self.relevant),
            "rejected": len(self.rejected),
            "unlabeled": len(self.unlabeled),
            "novel_positive": len(self.novel_positive),
            "novel_negative": len(self.novel_negative),
            "labelled_entries_without_abstract": len(self.entries_without_abstract),
        }

    def data_hash(self) -> str:
        """A SHA-256 over every example and its role: two models with the same hash saw the same data."""
        digest = hashlib.sha256()
        for role, examples in (
            ("relevant", self.relevant),
            ("rejected", self.rejected),
            ("unlabeled", self.unlabeled),
            ("novel+", self.novel_positive),
            ("novel-", self.novel_negative),
        ):
            for example in examples:
                row = [role, example.key(), example.text(), sorted(example.labels)]
                if example.label_scope is not None:
                    row.append(sorted(example.label_scope))
                digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        for entry in self.entries_without_abstract:
            row = ["labels-only", entry.key(), sorted(entry.labels)]
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()


def example_from_json(data: dict[str, Any], where: str) -> Example:
    """An `Example` from a `papers.jsonl` line (the corpus format: `summary` for the abstract)."""
    expect_object(data, where)
    title = text_field(data.get("title"), where, "title", required=True)
    comment = data.get("comment")
    text_field(comment, where, "comment")  # a string or null, as written
    abstract = first_text(data, ("abstract", "summary"))
    if abstract is None:
        raise UserError(f"{where}: 'abstract' and 'summary' must be strings")
    # A string would be read one label per character, and a number is not iterable.
    labels = data.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise UserError(f"{where}: 'labels' must be a list of strings")
    ident = data.get("id")
    return Example(
        title=title,
        abstract=abstract,
        comment=comment,
        id=None if ident is None else literal(ident),
        labels=tuple(labels),
    )


def read_jsonl(path: Path) -> Iterator[Example]:
    """Examples from a JSON-lines file; a bad line is a UserError naming the file and line.

    Undecodable bytes are replaced, not fatal: odd text is still scored (from what is left)."""
    for where, data in iter_jsonl(path, errors="replace"):
        yield example_from_json(data, where)


def read_conference_index(path: Path) -> Iterator[Example]:
    """Papers from a derived conference index (`{url: {title, abstract, ...}}`)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for url, item in data.items():
        if isinstance(item, dict) and item.get("title"):
            yield Example(title=item["title"], abstract=item.get("abstract") or "", id=url)


# A list entry's title often differs from the paper's in ways that are not a different paper:
# a trailing "(Affiliation)" or "." (BWLONG), a missing or added "Acronym: " prefix, a singular
# for a plural. Those are matched by variants, then by a fuzzy fallback guarded by a high cutoff.
_TRAILING_NOTE = re.compile(r"\s*\([^()]*\)\s*\.?\s*$")
_DIGITS = re.compile(r"\d+")
MIN_VARIANT_WORDS = 5  # a subtitle or stripped title shorter than this is too generic to match by
MIN_STRIPPED_WORDS = 3  # ... and a title without its "(note)" (still an exact match of the rest)
MAX_FUZZY_BLOCK = 400  # a rare title word listing more papers than this is not a useful block


@dataclass(frozen=True)
class Match:
    """A paper found for a list entry, and how: "arxiv", "title", "variant" or "fuzzy"."""

    paper: Example
    how: str


class AbstractIndex:
    """Papers with abstracts, looked up by arXiv id, by folded title, then by near-equal title.

    This is how a list entry (a title and maybe an arXiv link) finds its abstract in a
    local corpus; the first paper seen for a key wins, so the order of sources matters.
    """

    def __init__(self, papers: Iterable[Example] = ()) -> None:
        self.papers: list[Example] = []
        self._by_arxiv: dict[str, int] = {}
        self._by_title: dict[str, int] = {}
        self._by_subtitle: dict[str, int] = {}  # "Acronym: Rest" indexed by "rest"; -1 = ambiguous
        self._by_word: dict[str, list[int]] | None = None  # built on the first fuzzy lookup
        for paper in papers:
            self.add(paper)

    def add(self, paper: Example) -> None:
        ident = arxiv_id(paper.id) if paper.id else None
        tkey = title_key(paper.title)
        if (ident and ident in self._by_arxiv) or tkey in self._by_title:
            return
        self.papers.append(paper)
        position = len(self.papers) - 1
        if ident:
            self._by_arxiv[ident] = position
        if tkey:
            self._by_title[tkey] = position
        subtitle = _subtitle_key(paper.title)
        if subtitle:
            self._by_subtitle[subtitle] = -1 if subtitle in self._by_subtitle else position
        self._by_word = None

    def find(self, title: str, arxiv: str | None = None, *, fuzzy: bool = True) -> Example | None:
        found = self.match(title, arxiv, fuzzy=fuzzy)
        return None if found is None else found.paper

    def match(self, title: str, arxiv: str | None = None, *, fuzzy: bool = True) -> Match | None:
        """The paper for an entry: exact keys, then title variants, then (if `fuzzy`) a near-equal title.

        The fuzzy step compares folded titles without spaces (so "ProTuning" meets "Pro-Tuning") by
        rapidfuzz ratio against the ingest's title-only cutoff, only among papers sharing a
        rare title word with the entry, and only when both titles carry the same numbers
        ("v2", "3D" differ in meaning, not in spelling).
        """
        if arxiv and arxiv in self._by_arxiv:
            return Match(self.papers[self._by_arxiv[arxiv]], "arxiv")
        key = title_key(title)
        if key in self._by_title:
            return Match(self.papers[self._by_title[key]], "title")
        for variant in [key, *_title_variants(title)]:
            for table in (self._by_title, self._by_subtitle):
                position = table.get(variant, -1)
                if position >= 0:
                    return Match(self.papers[position], "variant")
        if fuzzy and len(key.split()) >= MIN_VARIANT_WORDS:
            near = self._fuzzy(key)
            if near is not None:
                return Match(self.papers[near], "fuzzy")
        return None

    def _fuzzy(self, key: str) -> int | None:
        by_word = self._word_blocks()
        words = sorted(
            {w for w in key.split() if 0 < len(by_word.get(w, ())) <= MAX_FUZZY_BLOCK},
            key=lambda w: len(by_word[w]),
        )
        candidates = {position for word in words[:2] for position in by_word[word]}
        compact, digits = key.replace(" ", ""), _DIGITS.findall(key)
        best, best_score = None, 0.0
        for position in sorted(candidates):
            other = title_key(self.papers[position].title)
            if _DIGITS.findall(other) != digits:
                continue
            score = fuzz.ratio(compact, other.replace(" ", ""), score_cutoff=TITLE_THRESHOLD_TITLE_ONLY)
            if score > best_score:
                best, best_score = position, score
        return best

    def _word_blocks(self) -> dict[str, list[int]]:
        if self._by_word is None:
            blocks: dict[str, list[int]] = {}
            for position, paper in enumerate(self.papers):
                for word in set(title_key(paper.title).split()):
                    if len(word) >= 4:
                        blocks.setdefault(word, []).append(position)
            self._by_word = blocks
        return self._by_word

    def __len__(self) -> int:
        return len(self.papers)


def _subtitle_key(title: str) -> str | None:
    """The folded part after "Name: ", when the name is one word and the rest is long enough.

    One word only: "LoGoPrompt: Synthetic Text Images ..." is that paper's name and title, but
    "Replication Study: Federated Text-Driven ..." is another paper about it.
    """
    name, colon, rest = title.partition(":")
    if not colon or len(name.split()) != 1:
        return None
    key = title_key(rest)
    return key if len(key.split()) >= MIN_VARIANT_WORDS else None


def _title_variants(title: str) -> list[str]:
    """Other keys an entry's title may match: without a trailing "(note)", without "Acronym: "."""
    variants = []
    stripped = _TRAILING_NOTE.sub("", title)
    if stripped != title and len(title_key(stripped).split()) >= MIN_STRIPPED_WORDS:
        variants.append(title_key(stripped))
    for text in (title, stripped):
        subtitle = _subtitle_key(text)
        if subtitle:
            variants.append(subtitle)
    return list(dict.fromkeys(variants))


def sample(examples: Sequence[Example], size: int, seed: int) -> list[Example]:
    """A reproducible random sample (all of them when there are fewer than `size`)."""
    if len(examples) <= size:
        return list(examples)
    return random.Random(seed).sample(list(examples), size)


def mentions_prompt(example: Example) -> bool:
    """The hard subset of the issue: papers whose text says "prompt" at all."""
    return "prompt" in example.text().lower()
