"""Training and scoring inputs as plain data: no database, no network.

The store (via `enqueue.py`), the list files (via `recipes.py`) and `papers.jsonl` files
all become `Example`s here, so that the models and their evaluation see one shape of
data wherever it came from.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpt_tracker.dumps import iter_jsonl
from vpt_tracker.errors import UserError
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

    def key(self) -> str:
        """A stable identity for de-duplication: the arXiv id, else the folded title."""
        return (self.id and arxiv_id(self.id)) or title_key(self.title)


@dataclass
class TrainingSet:
    """What one catalogue's models learn from.

    `relevant` are the positives (entries with abstracts, accepted decisions); `rejected`
    are reviewed negatives; `unlabeled` are fetched papers nobody reviewed, which are
    mostly but not surely negatives (the PU setting). `novel_positive` / `novel_negative`
    train the base-to-novel flag; they may be empty for presets that do not need it.
    """

    relevant: list[Example]
    rejected: list[Example] = field(default_factory=list)
    unlabeled: list[Example] = field(default_factory=list)
    novel_positive: list[Example] = field(default_factory=list)
    novel_negative: list[Example] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "relevant": len(self.relevant),
            "relevant_with_abstract": sum(e.has_abstract for e in self.relevant),
            "rejected": len(self.rejected),
            "unlabeled": len(self.unlabeled),
            "novel_positive": len(self.novel_positive),
            "novel_negative": len(self.novel_negative),
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
                digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()


def example_from_json(data: dict[str, Any], where: str) -> Example:
    """An `Example` from a `papers.jsonl` line (the corpus format: `summary` for the abstract)."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise UserError(f"{where}: missing or empty 'title'")
    abstract = data.get("abstract", data.get("summary")) or ""
    comment = data.get("comment")
    if not isinstance(abstract, str) or (comment is not None and not isinstance(comment, str)):
        raise UserError(f"{where}: 'abstract'/'summary' and 'comment' must be strings")
    ident = data.get("id")
    return Example(
        title=title,
        abstract=abstract,
        comment=comment,
        id=None if ident is None else str(ident),
        labels=tuple(str(label) for label in data.get("labels", []) or []),
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


class AbstractIndex:
    """Papers with abstracts, looked up by arXiv id or by folded title.

    This is how a list entry (a title and maybe an arXiv link) finds its abstract in a
    local corpus; the first paper seen for a key wins, so the order of sources matters.
    """

    def __init__(self, papers: Iterable[Example] = ()) -> None:
        self.papers: list[Example] = []
        self._by_arxiv: dict[str, int] = {}
        self._by_title: dict[str, int] = {}
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

    def find(self, title: str, arxiv: str | None = None) -> Example | None:
        if arxiv and arxiv in self._by_arxiv:
            return self.papers[self._by_arxiv[arxiv]]
        position = self._by_title.get(title_key(title))
        return None if position is None else self.papers[position]

    def __len__(self) -> int:
        return len(self.papers)


def sample(examples: Sequence[Example], size: int, seed: int) -> list[Example]:
    """A reproducible random sample (all of them when there are fewer than `size`)."""
    if len(examples) <= size:
        return list(examples)
    return random.Random(seed).sample(list(examples), size)


def mentions_prompt(example: Example) -> bool:
    """The hard subset of the issue: papers whose text says "prompt" at all."""
    return "prompt" in example.text().lower()
