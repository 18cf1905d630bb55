"""Method names of papers ("CoOp", "RPO"), and the list entries that call a paper by one.

Some lists show a name on every entry (generalizable-vlm's `` `RPO` **Title** ``), and some
tables name a paper by it alone (prompt-adaptation's "VPT", "E2VPT"). A new entry needs its
name; and a paper that arrives under its whole title with no arXiv id to match by
("E^2VPT: An Effective ...", from CVF) must still be known as the listed "E2VPT".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from vpt_tracker import normalize

if TYPE_CHECKING:  # the markdown layer uses `titles_agree` and stays free of the store
    from vpt_tracker.store.tables import EntryRow

# A name has at most this many words: a title's "Name: ..." prefix, or an entry that shows one.
NAME_WORDS = 3
_SHORT_NAME = re.compile(r"^([^:]{1,24}):\s+\S")
# "we propose Read-only Prompt Optimization (RPO)": the authors naming their own method. It
# must be "we"/"our"/"this paper" that proposes, so that "a recent method named Context
# Optimization (CoOp)" in CoCoOp's abstract is not taken, and the acronym must close the
# verb's object within ten words, so that an acronym defined later in the sentence for a
# term of the field ("... on point clouds (PC)") is not taken either.
_NAMED_IN_ABSTRACT = re.compile(
    r"(?i:\b(?:we|our|this\s+(?:paper|work))\b[^.;]{0,60}?"
    r"\b(?:propos|present|introduc|call|dubb|term|nam|develop|design)\w*\b)"
    r"(?:[\s,:]+(?!(?i:we|which|that|to)\b)[\w'-]+){1,10}?\s*"
    r"\(([A-Z][\w-]*[A-Z0-9][\w-]*)(?<![A-Z]s)\)"
)
# Acronyms of a kind of model, which a paper defines for its reader but does not name itself by.
_FIELD_ACRONYMS = frozenset(
    {"CNN", "GAN", "GNN", "LLM", "LSTM", "LVLM", "MLLM", "MLP", "RNN", "VAE", "VIT", "VLM"}
)
# A preprint of December is often listed with next year's venue: a name still fits.
NAME_YEAR_SLACK = 1


def short_name(title: str, abstract: str | None = None) -> str | None:
    """The paper's method name, for the lists that show one on every entry (generalizable-vlm's
    `` `RPO` **Title** ``): the name a title starts with ("CoOp: Learning to Prompt ..."),
    else the one its abstract says the authors propose ("we propose ... (RPO)").

    Of the 60 entries of the real lists (newest versions) that show a short name and have a
    local abstract, the title gives 19 (3 unlike the list's: "Self-regulating Prompts" for
    "PromptSRC"), and the abstract 21 of the other 41 (one unlike: "CTP" for "CTP-TFT"). The
    other 20 go without a name, as before.
    """
    match = _SHORT_NAME.match(title.strip())
    if match and len(match.group(1).split()) <= NAME_WORDS:
        return match.group(1).strip()
    named = _NAMED_IN_ABSTRACT.search(abstract or "")
    if named and named.group(1).upper() not in _FIELD_ACRONYMS:
        return named.group(1)
    return None


@dataclass
class ListedNames:
    """The entries of a list that call their paper by its name, to know that paper by.

    A paper is listed under an entry of at most `NAME_WORDS` words when its own name (its
    title's, else its abstract's, see `short_name`) folds to that entry's title and their
    years differ by at most `NAME_YEAR_SLACK`, which keeps one "LPT" from another.
    """

    by_key: dict[str, list[EntryRow]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[EntryRow]) -> ListedNames:
        names = cls()
        for entry in entries:
            key = _name_key(entry.title)
            if key and len(entry.title.split()) <= NAME_WORDS:
                names.by_key.setdefault(key, []).append(entry)
        return names

    def find(self, title: str, abstract: str | None, year: int | None) -> EntryRow | None:
        """The entry that lists this paper by its name, if any."""
        if not self.by_key:
            return None
        name = short_name(title, abstract)
        for entry in self.by_key.get(_name_key(name), []) if name else []:
            if entry.year is None or year is None or abs(entry.year - year) <= NAME_YEAR_SLACK:
                return entry
        return None


# A list's title and the paper's own are the same paper's at this fuzzy ratio of their cores
# (typos, "Image Inpainting" shown as "Inpainting"); CoOp's title against CoCoOp's is 77.
LISTED_TITLE_RATIO = 90.0


def titles_agree(listed: str, title: str, abstract: str | None = None) -> bool:
    """Whether a list entry shown as `listed` can be the paper `title` (with `abstract`).

    For checking a list's link against the paper it names: lists link the wrong paper
    (zhengli97 lists CoOp with CoCoOp's arXiv link). The list may add a name ("CPT: ...")
    or an affiliation ("...(Tsinghua University)"), shorten the title ("Prompt Engineering
    on Vision-Language Models" for "A Systematic Survey of Prompt Engineering on ...") or
    show only the paper's name ("VPT", "E2VPT"). A paper renamed since (Tip-Adapter's two
    titles) does not agree: its old title is another paper's as far as this can tell.

    Lenient on purpose: it is asked whether a link is clearly wrong, and most links are
    right. Titles of different papers can agree ("Towards a Unified View of/on Visual
    Parameter-Efficient Transfer Learning", "MaPLe: Multi-modal Prompt Learning" inside
    "Label Alignment for Multi-Modal Prompt Learning"), so it never tells two entries without
    a shared link apart.
    """
    a, b = title_core(listed), title_core(title)
    if not a or not b:
        return False
    if fuzz.ratio(a, b) >= LISTED_TITLE_RATIO:
        return True
    words_a, words_b = set(a.split()), set(b.split())
    if min(len(words_a), len(words_b)) >= 3 and (words_a <= words_b or words_b <= words_a):
        return True
    for name_only, full, full_abstract in ((listed, title, abstract), (title, listed, None)):
        if len(name_only.split()) <= NAME_WORDS:  # a table that names papers
            key = _name_key(name_only)
            name = short_name(full, full_abstract)
            initials = "".join(word[0] for word in normalize.title_key(full).split())
            if key == initials or (name is not None and key == _name_key(name)):
                return True
    return False


def title_core(title: str) -> str:
    """The folded title without a leading "Name:" and a trailing "(Affiliation)"."""
    title = re.sub(r"\s*\([^()]*\)\s*$", "", title.strip())
    named = _SHORT_NAME.match(title)
    if named and len(named.group(1).split()) <= NAME_WORDS:
        title = title[named.end(1) + 1 :]
    return normalize.title_key(title)


def _name_key(name: str) -> str:
    """Folded and without spaces, so that "Pro-Tuning" (folded "pro tuning") is "ProTuning"."""
    return normalize.title_key(name).replace(" ", "")
