"""Fixed cue features: a few domain phrases a maintainer writes down, next to the TF-IDF terms.

With a dozen positives, TF-IDF cannot learn that "base-to-novel", "harmonic mean" or "11
datasets" decide whether a CLIP prompt-learning paper reports base-to-novel experiments: each
phrase is rare, spelt several ways and split into n-grams that also occur elsewhere. A cue is
a named regular expression over the lower-cased text; it adds one binary column per cue to
the features of the models a preset names (`[cues] models = [...]` in its TOML), so the
linear model learns one weight per *idea*. The cues are data, not code: a maintainer edits
them in the preset without a release, and the model card lists them.

A cue may also require other patterns (`all = [...]`): it fires only when every one of them
occurs. A linear model cannot learn "A *and* B" from two columns, and some ideas are exactly
that: "base and novel classes" decides base-to-novel in a CLIP prompt-learning paper and means
something else in an open-vocabulary detector.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import sparse

from vpt_tracker.classify.rules import EXPONENTIAL, backtracks_exponentially
from vpt_tracker.errors import UserError

CUE_MODELS = ("relevance", "base_to_novel", "labels")  # the models cue columns may be appended to
PREFIX = "cue:"  # how a cue column is named in `explain`

# Patterns a preset names instead of writing them out (`name = { builtin = "vision-words" }`):
# ideas that several presets and the training recipes must spell the same way.
BUILTIN_PATTERNS = {
    # A vision term as a whole word (an LLM paper's "objectives" are not "objects"): what the
    # presets' `says-vision` relevance cue reads, and what `recipes.about_vision_prompts`
    # requires of a related list's entry.
    "vision-words": (
        r"\b(?:image|visual|vision|video|pixel|segment|detect|clip\b|vit\b|3d\b|point[\s-]*cloud"
        r"|scene|objects?\b)"
    ),
}


@dataclass(frozen=True)
class CueSet:
    """Named patterns, and which of a catalogue's models see them as extra columns."""

    patterns: tuple[tuple[str, str], ...] = ()
    models: tuple[str, ...] = ()
    # Per cue (aligned with `patterns`): the models it feeds; empty = `models`. Lets one
    # preset keep base-to-novel cues out of its label models and label cues out of the rest.
    targets: tuple[tuple[str, ...], ...] = ()
    # (label, cue name): the cue that stands in for a label too rare to get a model. Such a
    # label is proposed for a candidate whose text the cue matches (a preset's `cue = ...`).
    label_cues: tuple[tuple[str, str], ...] = ()
    # Per cue (aligned with `patterns`): more patterns that must all occur too (`all = [...]`).
    # Kept apart from the first one, not folded into one lookahead regex: the first pattern
    # alone joins `CueReader`'s prefilter, and the others are read only where it matched
    # (a lookahead in the combined prefilter made reading the cues six times slower).
    requires: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        unknown = (set(self.models) | {m for models in self.targets for m in models}) - set(CUE_MODELS)
        if unknown:
            raise UserError(f"cues: unknown models {sorted(unknown)}; known: {', '.join(CUE_MODELS)}")
        names = [name for name, _ in self.patterns]
        for label, cue in self.label_cues:
            if cue not in names:
                raise UserError(f"label {label!r} names the cue {cue!r}; the cues are: {', '.join(names)}")
        for index, (name, pattern) in enumerate(self.patterns):
            for each in (pattern, *self._requires_of(index)):
                try:
                    re.compile(each)  # `re` keeps the compiled pattern for `CueReader`
                except re.error as exc:
                    raise UserError(f"cue {name!r}: bad regular expression {each!r} ({exc})") from None
                if backtracks_exponentially(each):  # as a keyword rule: it would hang scoring
                    raise UserError(f"cue {name!r}: {EXPONENTIAL}")

    @classmethod
    def from_config(cls, data: Mapping[str, object] | None) -> CueSet:
        """From a preset's `[cues]` table: `models = [...]` and `[cues.patterns] name = "regex"`.

        A pattern may instead be `name = { pattern = "regex", models = [...] }`, to feed
        other models than the table's default, `name = { all = ["regex", ...] }`: a cue
        that fires only when every one of the regexes occurs somewhere in the text, or
        `name = { builtin = "vision-words", models = [...] }`: one of `BUILTIN_PATTERNS`.
        """
        if not data:
            return cls()
        patterns = data.get("patterns", {})
        models = data.get("models", ["base_to_novel"])
        if not isinstance(patterns, Mapping) or not isinstance(models, list):
            raise UserError("cues: expected a [cues.patterns] table and a `models` list")
        pairs: list[tuple[str, str]] = []
        targets: list[tuple[str, ...]] = []
        requires: list[tuple[str, ...]] = []
        for name, value in patterns.items():
            if isinstance(value, Mapping):
                own_models = value.get("models", [])
                parts = _table_cue_patterns(str(name), value)
                if not isinstance(own_models, list) or parts is None:
                    raise UserError(
                        f'cue {name!r}: expected {{ pattern = "...", models = [...] }}, '
                        '{ all = ["...", ...], models = [...] } or { builtin = "...", models = [...] }'
                    )
                pairs.append((str(name), str(parts[0])))
                requires.append(tuple(str(part) for part in parts[1:]))
                targets.append(tuple(str(m) for m in own_models))
            else:
                pairs.append((str(name), str(value)))
                requires.append(())
                targets.append(())
        return cls(tuple(pairs), tuple(str(m) for m in models), tuple(targets), requires=tuple(requires))

    def _models_of(self, index: int) -> tuple[str, ...]:
        own = self.targets[index] if index < len(self.targets) else ()
        return own or self.models

    def _requires_of(self, index: int) -> tuple[str, ...]:
        return self.requires[index] if index < len(self.requires) else ()

    def columns_for(self, model: str) -> list[int]:
        """The cue columns `model` sees, in pattern order."""
        return [i for i in range(len(self.patterns)) if model in self._models_of(i)]

    def applies_to(self, model: str) -> bool:
        return bool(self.columns_for(model))

    def names_for(self, model: str) -> list[str]:
        """How the columns `model` sees are named in `explain`."""
        return [PREFIX + self.patterns[i][0] for i in self.columns_for(model)]

    def matrix(
        self,
        texts: Sequence[str] | CueReader,
        rows: Sequence[int] | None = None,
        columns: Sequence[int] | None = None,
    ) -> sparse.csr_matrix:
        """One row per text, one binary column per cue (1 when its pattern occurs).

        `rows`: read only these texts (the others stay all-zero). `columns`: only these cues
        (the matrix then has just their columns). Python's regex engine needs 5-60 µs per
        abstract per cue, so callers read no more than they use; pass one `CueReader` to the
        models that score the same texts and each pattern reads each text once.
        """
        reader = texts if isinstance(texts, CueReader) else CueReader(texts)
        chosen = list(range(len(self.patterns))) if columns is None else list(columns)
        found = self.matching_rows(reader, chosen, rows)
        hits_rows = [row for matching in found for row in matching]
        cols = [col for col, matching in enumerate(found) for _ in matching]
        return sparse.csr_matrix(
            (np.ones(len(hits_rows), dtype=np.float32), (hits_rows, cols)),
            shape=(len(reader), len(chosen)),
        )

    def matching_rows(
        self, reader: CueReader, columns: Sequence[int], rows: Sequence[int] | None = None
    ) -> list[list[int]]:
        """Per cue of `columns`, the rows (of `rows`, default all) it matches: its pattern and
        every pattern it requires, the latter read only where the former matched."""
        found = reader.read([self.patterns[c][1] for c in columns], rows)
        for position, column in enumerate(columns):
            for required in self._requires_of(column):
                if found[position]:
                    found[position] = reader.read([required], found[position])[0]
        return found

    def extend(
        self,
        model: str,
        features: sparse.csr_matrix,
        texts: Sequence[str] | CueReader,
        rows: Sequence[int] | None = None,
    ) -> sparse.csr_matrix:
        """`features` with the cue columns of `model` appended (unchanged when it has none).

        `rows`: the texts whose cues are read (default all); see `matrix`.
        """
        columns = self.columns_for(model)
        if not columns:
            return features
        return sparse.hstack(
            [features, self.matrix(texts, rows, columns)], format="csr", dtype=features.dtype
        )

    def stand_ins(self, trained: Iterable[str]) -> list[tuple[str, int]]:
        """(label, cue column) for each label with a cue but without a model among `trained`."""
        column = {name: index for index, (name, _) in enumerate(self.patterns)}
        have = set(trained)
        return [(label, column[cue]) for label, cue in self.label_cues if label not in have]

    def describe(self) -> dict[str, object]:
        return {
            "models": list(self.models),
            "patterns": dict(self.patterns),
            "requires": {
                name: list(self._requires_of(i))
                for i, (name, _) in enumerate(self.patterns)
                if self._requires_of(i)
            },
            "models_per_cue": {name: list(self._models_of(i)) for i, (name, _) in enumerate(self.patterns)},
            "label_cues": dict(self.label_cues),
        }


def _table_cue_patterns(name: str, value: Mapping[str, object]) -> list[object] | None:
    """A cue written as a table: its pattern, then those it requires; None when malformed."""
    kinds = [kind for kind in ("pattern", "all", "builtin") if kind in value]
    if kinds == ["pattern"]:
        return [value["pattern"]]
    if kinds == ["all"]:
        parts = value["all"]
        return parts if isinstance(parts, list) and parts else None
    if kinds == ["builtin"]:
        builtin = value["builtin"]
        if not isinstance(builtin, str) or builtin not in BUILTIN_PATTERNS:
            raise UserError(
                f"cue {name!r}: unknown builtin {builtin!r}; known: {', '.join(BUILTIN_PATTERNS)}"
            )
        return [BUILTIN_PATTERNS[builtin]]
    return None


class CueReader:
    """The texts of one batch, lower-cased once, and which of them each cue pattern matches.

    Catalogues often share cues (the two visual-prompt presets have the same relevance cues),
    and a nightly run scores the same batch with every catalogue's models: with one reader
    per batch, each pattern reads each text once, not once per model.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self._lowered: dict[int, str] = {}
        self._found: dict[str, dict[int, bool]] = {}  # pattern -> row -> matched

    def __len__(self) -> int:
        return len(self.texts)

    def _lower(self, row: int) -> str:
        text = self._lowered.get(row)
        if text is None:
            text = self._lowered[row] = self.texts[row].lower()
        return text

    def read(self, patterns: Sequence[str], rows: Sequence[int] | None) -> list[list[int]]:
        """Per pattern, the rows (of `rows`, default all) whose text it matches."""
        known = [self._found.setdefault(pattern, {}) for pattern in patterns]
        todo = [
            row
            for row in (range(len(self.texts)) if rows is None else rows)
            if any(row not in k for k in known)
        ]
        if todo:
            # One combined scan first when there are several cues that must each be tried at
            # every position (label cues): most papers match none, and one search costs a
            # fifth of one search per cue. With one or two cues that most papers match
            # (relevance) it only adds a search, and cues that are all found by a fast scan
            # (base-to-novel, `_is_quick`) took 17-22 µs per abstract together, the prefilter
            # alone 43-60 µs.
            slow = len(patterns) > 2 and not all(map(_is_quick, patterns))
            prefilter = _prefilter(tuple(patterns)) if slow else None
            matchers = [_matcher(pattern) for pattern in patterns]
            for row in todo:
                text = self._lower(row)
                if prefilter is not None and not prefilter.search(text):
                    for k in known:
                        k[row] = False
                    continue
                for k, matches in zip(known, matchers, strict=True):
                    if row not in k:
                        k[row] = matches(text)
        selected = range(len(self.texts)) if rows is None else rows
        return [[row for row in selected if k[row]] for k in known]


_WORDS = re.compile(r"[a-z0-9 ]+(?:\|[a-z0-9 ]+)*")
# A numbered back-reference (`\1`, `(?(1)…)`): in a joined search the groups are numbered anew.
# (An escaped backslash before a digit matches too: that only costs the joined search.)
_NUMBERED_REFERENCE = re.compile(r"\\[1-9]|\(\?\(\d")
_VERBOSE = re.compile(r"\(\?[aiLmsux-]*x")  # an inline flag group that turns on verbose mode


@functools.lru_cache(maxsize=256)
def _prefilter(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One search for any of `patterns`, or None when they cannot be joined into one and
    keep their answers: a global flag (`(?x)` for a verbose pattern) must open the whole
    expression, and a numbered back-reference would point at another pattern's group."""
    if any(_NUMBERED_REFERENCE.search(pattern) for pattern in patterns):
        return None
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error:  # each pattern compiled alone (`CueSet`): only the joining failed
        return None


@functools.lru_cache(maxsize=256)
def _matcher(pattern: str) -> Callable[[str], bool]:
    r"""How to test one lower-cased text: a pattern of plain lower-case words joined by `|`
    (`prompt|reprogram`) is a substring test, the same answer as the regex and 4× faster;
    a pattern led by `\b` is found through its rest (see `_word_start_matcher`). Cached: every
    batch of every catalogue reads the same few patterns."""
    if _WORDS.fullmatch(pattern):
        words = pattern.split("|")
        return lambda text: any(word in text for word in words)
    if _word_led(pattern):
        return _word_start_matcher(pattern)
    search = re.compile(pattern).search
    return lambda text: search(text) is not None


def _is_quick(pattern: str) -> bool:
    """Whether `_matcher` finds `pattern` by a fast scan, not by trying it at every position."""
    return bool(_WORDS.fullmatch(pattern)) or _word_led(pattern)


@functools.lru_cache(maxsize=256)
def _word_led(pattern: str) -> bool:
    r"""A `\b` and a rest that is a pattern of its own and leads every match.

    Not when the pattern has a `|` outside any group (`\ba|\bb`): without the first `\b` the
    other branches still hide their first characters, and the search gets slower, not faster.
    """
    if not pattern.startswith("\\b") or _VERBOSE.search(pattern) or len(_branches(pattern)) > 1:
        return False  # (in a verbose group, a `#` comment may hold any bracket or bar)
    try:
        re.compile(pattern[2:])
    except re.error:  # say, `\b` had a quantifier
        return False
    return True


def _word_start_matcher(pattern: str) -> Callable[[str], bool]:
    r"""A search for `\b<rest>` that lets the regex engine skip ahead.

    Python's engine scans for a pattern's leading literal (or set of first characters) at C
    speed, but a leading `\b` hides it, so the whole pattern is tried at every position:
    `\bharmonic\s+mean\b` took 33 µs per abstract, `harmonic\s+mean\b` 1.1 µs. So `rest`
    is searched for, and the full pattern is tried only where it starts. When `rest` begins
    with a group of plain words (`(?:novel|unseen|new)\s+...`), each word leads a search of
    its own: a set of first characters as common as `n` and `u` scanned at 20 µs, each word
    at 1-2 µs. The answer is the same: every match of the full pattern is a match of one of
    those searches at the same place, and each place where one matches is tried in order.
    """
    match_all = re.compile(pattern).match
    finders = [re.compile(lead).search for lead in _leads(pattern[2:])]

    def matches(text: str) -> bool:
        for find in finders:
            start = 0
            # (`start` past the end would be read as the end: a lead that matches "" loops)
            while start <= len(text) and (found := find(text, start)) is not None:
                if match_all(text, found.start()):
                    return True
                start = found.start() + 1
        return False

    return matches


def _leads(rest: str) -> list[str]:
    r"""`rest`, or one pattern per branch when it begins with a group that is not repeated:
    `(?:11|eleven)\s+datasets` gives `11\s+datasets` and `eleven\s+datasets`."""
    if rest.startswith("(?:"):
        close = next((index for index, char, depth in _syntax(rest) if char == ")" and depth == 0), -1)
        body, after = rest[3:close], rest[close + 1 :]
        if close > 0 and not after.startswith(("?", "*", "+", "{")):
            return [branch + after for branch in _branches(body)]
    return [rest]


def _branches(pattern: str) -> list[str]:
    """The alternatives of `pattern` split at its `|`s outside any group."""
    cuts = [index for index, char, depth in _syntax(pattern) if char == "|" and depth == 0]
    return [pattern[start + 1 : end] for start, end in pairwise([-1, *cuts, len(pattern)])]


def _syntax(pattern: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, depth) of each character of `pattern` that is syntax: not escaped
    and not in a character class; `depth` counts the groups open around it."""
    depth, escaped, class_from = 0, False, -1
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif class_from >= 0:
            if char == "]" and index > class_from:  # a `]` first in a class (`[]a]`) is literal
                class_from = -1
        elif char == "[":
            class_from = index + 1 + (pattern[index + 1 : index + 2] == "^")
        else:
            depth -= char == ")"
            yield index, char, depth
            depth += char == "("
