"""Fixed cue features: a few domain phrases a maintainer writes down, next to the TF-IDF terms.

With a dozen positives, TF-IDF cannot learn that "base-to-novel", "harmonic mean" or "11
datasets" decide whether a CLIP prompt-learning paper reports base-to-novel experiments: each
phrase is rare, spelt several ways and split into n-grams that also occur elsewhere. A cue is
a named regular expression over the lower-cased text; it adds one binary column per cue to
the features of the models a preset names (`[cues] models = [...]` in its TOML), so the
linear model learns one weight per *idea*. The cues are data, not code: a maintainer edits
them in the preset without a release, and the model card lists them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from vpt_tracker.errors import UserError

CUE_MODELS = ("relevance", "base_to_novel")  # the models cue columns may be appended to
PREFIX = "cue:"  # how a cue column is named in `explain`


@dataclass(frozen=True)
class CueSet:
    """Named patterns, and which of a catalogue's models see them as extra columns."""

    patterns: tuple[tuple[str, str], ...] = ()
    models: tuple[str, ...] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _any: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(CUE_MODELS)
        if unknown:
            raise UserError(f"cues: unknown models {sorted(unknown)}; known: {', '.join(CUE_MODELS)}")
        compiled = []
        for name, pattern in self.patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise UserError(f"cue {name!r}: bad regular expression {pattern!r} ({exc})") from None
        object.__setattr__(self, "_compiled", tuple(compiled))
        # One scan with all cues first: most papers match none, and one combined search costs
        # a fifth of one search per cue (scoring 300k papers must stay within a minute).
        if compiled:
            object.__setattr__(self, "_any", re.compile("|".join(f"(?:{p})" for _, p in self.patterns)))

    @classmethod
    def from_config(cls, data: Mapping[str, object] | None) -> CueSet:
        """From a preset's `[cues]` table: `models = [...]` and `[cues.patterns] name = "regex"`."""
        if not data:
            return cls()
        patterns = data.get("patterns", {})
        models = data.get("models", ["base_to_novel"])
        if not isinstance(patterns, Mapping) or not isinstance(models, list):
            raise UserError("cues: expected a [cues.patterns] table and a `models` list")
        return cls(tuple((str(k), str(v)) for k, v in patterns.items()), tuple(str(m) for m in models))

    def applies_to(self, model: str) -> bool:
        return bool(self.patterns) and model in self.models

    @property
    def names(self) -> list[str]:
        return [PREFIX + name for name, _ in self.patterns]

    def matrix(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """One row per text, one binary column per cue (1 when its pattern occurs)."""
        rows: list[int] = []
        cols: list[int] = []
        for row, text in enumerate(texts):
            lowered = text.lower()
            if self._any is None or not self._any.search(lowered):
                continue
            for col, pattern in enumerate(self._compiled):
                if pattern.search(lowered):
                    rows.append(row)
                    cols.append(col)
        return sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(texts), len(self._compiled))
        )

    def extend(self, model: str, features: sparse.csr_matrix, texts: Sequence[str]) -> sparse.csr_matrix:
        """`features` with the cue columns appended when `model` uses cues, else unchanged."""
        if not self.applies_to(model):
            return features
        return sparse.hstack([features, self.matrix(texts)], format="csr", dtype=features.dtype)

    def describe(self) -> dict[str, object]:
        return {"models": list(self.models), "patterns": dict(self.patterns)}
