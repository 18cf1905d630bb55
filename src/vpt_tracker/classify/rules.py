"""Keyword rules: a maintainer's fix for a blind spot of the model, without retraining.

A rule is a plain term (matched as whole words on the folded text, so `visual prompt`
matches "Visual-Prompt" and "visual  prompts" does not) or a `/regex/` (Python syntax,
case-insensitive, on the raw title + abstract + comment). `exclude` wins over `include`:
a maintainer who excludes "text-to-image" wants those papers gone even when they also
mention an included term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
            return _Compiled(rule, re.compile(text[1:-1], re.IGNORECASE), on_raw=True)
        except re.error as exc:
            raise UserError(f"bad {kind} rule {rule!r}: not a valid regular expression ({exc})") from None
    folded = fold_text(text)
    if not folded:
        raise UserError(f"bad {kind} rule {rule!r}: it has no letters or digits to match")
    words = r"\s+".join(re.escape(word) for word in folded.split())
    return _Compiled(rule, re.compile(rf"(?<![0-9a-z]){words}(?![0-9a-z])"), on_raw=False)


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
