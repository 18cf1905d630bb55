r"""Keyword rules: a maintainer's fix for a blind spot of the model, without retraining.

A rule is a plain term (matched as whole words on the folded text, so `visual prompt`
matches "Visual-Prompt" and "visual  prompts" does not; a term with letters that do not fold
to Latin ones is refused, as they would drop out of it; a term with `+`, `#`, `*` or a word's
leading `.`, which folding drops, matches those characters as written: `C++`, `C#`, `.NET`)
or a `/regex/` (Python syntax,
case-insensitive, on the raw title + abstract + comment; one that matches the empty text
would match every paper, and is refused; so is one that opens with `/` and does not end
with one, `/zebra/i`). `exclude` wins over `include`:
a maintainer who excludes "text-to-image" wants those papers gone even when they also
mention an included term.

A regex that can backtrack exponentially (a repeated group holding a repeat, `(\w+\s?)+`)
is refused when the rules are compiled: Python's engine has no time limit, and one such
rule on one long abstract hung the nightly run (see `backtracks_exponentially`).
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vpt_tracker.errors import UserError
from vpt_tracker.normalize import fold_text


@dataclass(frozen=True)
class RuleHit:
    action: str  # "include" | "exclude"
    rule: str  # the rule as the maintainer wrote it

    def describe(self) -> str:
        return f"{self.action}: {self.rule}"


@dataclass(frozen=True)
class _Compiled:
    source: str
    pattern: re.Pattern[str]
    on_raw: bool  # regexes match the raw text, terms the folded text


def _compile(rule: str, kind: str) -> _Compiled:
    text = rule.strip()
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        try:
            pattern = re.compile(text[1:-1], re.IGNORECASE)
        except re.error as exc:
            raise UserError(f"bad {kind} rule {rule!r}: not a valid regular expression ({exc})") from None
        if backtracks_exponentially(text[1:-1]):
            raise UserError(f"bad {kind} rule {rule!r}: {EXPONENTIAL}")
        if pattern.search("") is not None:
            # A search finds such a pattern at the start of any text: a stray `|` or an
            # optional whole pattern queued (or, as an exclude, dropped) every paper.
            raise UserError(
                f"bad {kind} rule {rule!r}: it matches every paper (it matches the empty text); "
                "check for a stray `|` or a pattern that is optional as a whole"
            )
        return _Compiled(rule, pattern, on_raw=True)
    if text.startswith("/"):
        raise UserError(f"bad {kind} rule {rule!r}: {_unclosed(text)}")
    # Folding keeps a-z and digits: another script's letters would drop out without a word,
    # and "视觉提示 prompt" became the term "prompt".
    dropped = "".join(char for char in text if char.isalnum() and not fold_text(char))
    if dropped:
        regex = "/" + _METACHARACTERS.sub(lambda m: "\\" + m.group(), text) + "/"
        raise UserError(
            f"bad {kind} rule {rule!r}: plain terms match the text folded to Latin letters and "
            f"digits, which drops {dropped!r}; write the rule as a regex, {regex!r}"
        )
    folded = fold_text(text)
    if not folded:
        raise UserError(f"bad {kind} rule {rule!r}: it has no letters or digits to match")
    if _SYMBOLS.search(text):
        # Folding drops `+`, `#` and a word's leading `.`: `C++` and `C#` became the term "c",
        # which matched every paper that says "vitamin C", and `.NET` every "neural net".
        # Such a term matches its own characters, as a token, on the raw text.
        words = r"\s+".join(re.escape(word) for word in text.split())
        pattern = re.compile(rf"(?<![0-9a-z+#*]){words}(?![0-9a-z+#*])", re.IGNORECASE)
        return _Compiled(rule, pattern, on_raw=True)
    words = r"\s+".join(re.escape(word) for word in folded.split())
    return _Compiled(rule, re.compile(rf"(?<![0-9a-z]){words}(?![0-9a-z])"), on_raw=False)


# Characters that are part of a term's meaning, where folding reads them as a space: `+` and
# `#` (C++, C#, F#), `*` (A*), and a `.` that opens a word (.NET). A hyphen, slash or
# apostrophe stays a separator (`R-CNN` is "r cnn" and matches "R CNN"; `3D-` is "3d").
_SYMBOLS = re.compile(r"[+#*]|(?<!\S)\.(?=[0-9A-Za-z])")


_METACHARACTERS = re.compile(r"[.^$*+?{}\[\]\\|()]")  # re.escape escapes spaces too
_TRAILING_FLAGS = re.compile(r"^/.+/([A-Za-z]+)$")


def _unclosed(text: str) -> str:
    """Why a rule that opens a regex with `/` but does not end with one is refused.

    Read as a plain term, `/zebra/i` (a Perl or JavaScript habit) was the words "zebra i": it
    never matched "Zebra stripes", and nothing said so.
    """
    flags = _TRAILING_FLAGS.match(text)
    if flags:
        return (
            f"flags after the closing `/` are not read; a rule ignores case already, and other "
            f"flags go inside it (`/(?s)...`): write {text[: -len(flags.group(1))]!r}"
        )
    return "a regex must end with `/` (a plain term does not start with one)"


class RuleSet:
    """The compiled include/exclude rules of one catalogue."""

    def __init__(self, include: list[str] | None = None, exclude: list[str] | None = None) -> None:
        self.include = [_compile(rule, "include") for rule in include or []]
        self.exclude = [_compile(rule, "exclude") for rule in exclude or []]

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def match(self, text: str) -> RuleHit | None:
        """The rule that decides this paper, exclude first; None when no rule fires."""
        if not self:
            return None
        folded = fold_text(text)
        for action, rules in (("exclude", self.exclude), ("include", self.include)):
            for rule in rules:
                if rule.pattern.search(text if rule.on_raw else folded):
                    return RuleHit(action, rule.source)
        return None


# ---- catastrophic backtracking -----------------------------------------------------------
# A regex backtracks exponentially when a repeat that runs more than once holds a repeat of
# variable length that nothing separates from the next round's: in `(\w+\s?)+` the letters
# of one word can be split between rounds in 2**(length - 1) ways, and each is tried before
# the search moves on (30 letters took minutes). A repeat is separated from the next one when
# an item between them must consume a character it cannot (`(\w+\s)+`, `(?:[a-z]+-)+`; not
# `(\w+-\w+)+`, whose second `\w+` abuts the next round's first): then each split is forced.
# Possessive repeats and atomic groups never backtrack into what they matched, so they are safe.
_sre: Any = importlib.import_module("re._parser")  # the parser `re.compile` uses
_ALPHABET = string.printable + "\u00a0\u2013\u2014éüßαλжк中"  # characters to tell classes apart
_CATEGORIES = {
    name: re.compile(regex)
    for name, regex in (
        ("CATEGORY_DIGIT", r"\d"),
        ("CATEGORY_NOT_DIGIT", r"\D"),
        ("CATEGORY_SPACE", r"\s"),
        ("CATEGORY_NOT_SPACE", r"\S"),
        ("CATEGORY_WORD", r"\w"),
        ("CATEGORY_NOT_WORD", r"\W"),
    )
}
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT")  # the backtracking ones (not POSSESSIVE_REPEAT)
_ZERO_WIDTH = ("AT", "ASSERT", "ASSERT_NOT")
_GROUPS = (*_REPEATS, "POSSESSIVE_REPEAT", "SUBPATTERN", "ATOMIC_GROUP", "BRANCH", "GROUPREF_EXISTS")


EXPONENTIAL = (
    "a repeated group holds a repeat that nothing separates from the next round, so one long "
    "abstract can take the regex engine hours; end each round with a character the inner repeat "
    "cannot match (`(\\w+\\s)+`, not `(\\w+\\s?)+`), or make the outer repeat possessive "
    "(`(?:\\w+\\s?)++`)"
)


def backtracks_exponentially(pattern: str) -> bool:
    """Whether `pattern` (case-insensitive) holds a repeat that can backtrack exponentially."""
    tree = _sre.parse(pattern, re.IGNORECASE)
    alphabet = frozenset(_ALPHABET.lower()) | {chr(code).lower() for code in _literals(tree)}
    return _has_explosive_repeat(tree, alphabet)


def _literals(items: Sequence[Any]) -> Iterator[int]:
    for op, av in items:
        if str(op) in ("LITERAL", "NOT_LITERAL"):
            yield av
        elif str(op) == "IN":
            for kind, value in av:
                if str(kind) == "LITERAL":
                    yield value
                elif str(kind) == "RANGE":
                    yield from value
        for child in _children(op, av):
            yield from _literals(child)


def _children(op: Any, av: Any) -> list[Sequence[Any]]:
    """The sub-sequences of one parsed item."""
    name = str(op)
    if name in (*_REPEATS, "POSSESSIVE_REPEAT"):
        return [av[2]]
    if name == "SUBPATTERN":
        return [av[3]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "BRANCH":
        return list(av[1])
    if name == "GROUPREF_EXISTS":
        return [branch for branch in av[1:] if branch is not None]
    return []


def _has_explosive_repeat(items: Sequence[Any], alphabet: frozenset[str]) -> bool:
    for op, av in items:
        if str(op) in _REPEATS and av[1] >= 2 and _rounds_can_overlap(list(_mandatory(av[2])), alphabet):
            return True
        if any(_has_explosive_repeat(child, alphabet) for child in _children(op, av)):
            return True
    return False


def _rounds_can_overlap(body: list[tuple[Any, Any]], alphabet: frozenset[str]) -> bool:
    """Whether, in `body` repeated, some item of variable length can share characters with
    the next such item (in this round or the next) with no separator between them: an
    item that must consume a character the first cannot."""
    for index, item in enumerate(body):
        if not _variable([item]) or not (chars := _chars([item], alphabet)):
            continue
        for op, av in body[index + 1 :] + body[: index + 1]:  # on to itself, in the next round
            other = _chars([(op, av)], alphabet)
            if not _item_nullable(op, av) and not other & chars:
                break  # separated
            if _variable([(op, av)]) and other & chars:
                return True
    return False


def _variable(items: Sequence[Any]) -> bool:
    """Whether `items` hold a backtracking repeat of variable length (not inside an atomic
    group, a possessive repeat or a lookaround, which never give back what they matched)."""
    for op, av in items:
        name = str(op)
        if name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT", *_ZERO_WIDTH):
            continue
        if (name in _REPEATS and av[1] > av[0]) or any(_variable(child) for child in _children(op, av)):
            return True
    return False


def _mandatory(items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """The items of `items`, groups opened."""
    for op, av in items:
        if str(op) == "SUBPATTERN":
            yield from _mandatory(av[3])
        else:
            yield op, av


def _nullable(items: Sequence[Any]) -> bool:
    """Whether `items` can match the empty string (when unsure: yes)."""
    return all(_item_nullable(op, av) for op, av in items)


def _item_nullable(op: Any, av: Any) -> bool:
    name = str(op)
    if name in ("LITERAL", "NOT_LITERAL", "IN", "ANY"):
        return False
    if name in (*_REPEATS, "POSSESSIVE_REPEAT"):
        return av[0] == 0 or _nullable(av[2])
    if name in ("SUBPATTERN", "ATOMIC_GROUP"):
        return _nullable(_children(op, av)[0])
    if name == "BRANCH":
        return any(_nullable(branch) for branch in av[1])
    return True


def _chars(items: Sequence[Any], alphabet: frozenset[str]) -> frozenset[str]:
    """The (lower-case) characters of `alphabet` that `items` may consume (when unsure: all)."""
    found: set[str] = set()
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            found.add(chr(av).lower())
        elif name in ("NOT_LITERAL", "ANY"):
            found |= alphabet - ({chr(av).lower()} if name == "NOT_LITERAL" else set())
        elif name == "IN":
            found |= {char for char in alphabet if _in_class(av, char)}
        elif name in _ZERO_WIDTH:
            continue
        elif name in _GROUPS:
            for child in _children(op, av):
                found |= _chars(child, alphabet)
        else:  # a back-reference, or what this parser does not know: anything
            return alphabet
    return frozenset(found)


def _in_class(items: Sequence[Any], char: str) -> bool:
    """Whether a character class (`[...]`, `\\w`) matches `char` in either case."""
    upper = char.upper() if len(char.upper()) == 1 else char
    negate = any(str(kind) == "NEGATE" for kind, _value in items)
    return any(_in_item(str(kind), value, each) for kind, value in items for each in (char, upper)) != negate


def _in_item(kind: str, value: Any, char: str) -> bool:
    if kind == "LITERAL":
        return ord(char) == value
    if kind == "RANGE":
        return bool(value[0] <= ord(char) <= value[1])
    if kind == "CATEGORY":
        category = _CATEGORIES.get(str(value))
        return category is None or category.match(char) is not None
    return False
