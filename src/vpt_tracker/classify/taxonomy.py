"""Taxonomy presets: the labels of a catalogue and how its README shows them.

A preset (`classifiers/<name>.toml`) says which labels a catalogue uses, which section
headings, badges and table cells of its README mean which label (so that an imported
list becomes labelled training data), and where a new entry with given labels goes and
what it shows (badge, Type cell). Keeping this in data, not code, lets a maintainer adapt
a preset to a renamed section without a release.

TOML shape::

    name = "awesome-vpt"
    title = "Awesome Visual Prompt Tuning"
    [[labels]]
    key = "learnable"
    title = "Learnable"
    group = "prompt kind"
    when = [{ section = "Learnable Visual Prompts" }]   # any alternative; all keys must hold
    badge = "Text"                  # shown on a new entry with this label (optional)
    cells = { Type = "Learnable" }  # table cells of a new entry with this label (optional)
    [[placements]]                  # first whose labels are all given wins
    labels = ["learnable", "pixel"]
    section = ["Core Methodologies", "1. Learnable Visual Prompts", "Pixel-Level"]

`when` keys: `section` (case-insensitive substring of a heading on the entry's section
path), `badge` (a badge text, case-insensitive), `cell` (header -> substring of that
cell). A section path may use `{year}`, filled from the new entry's year.

`exclusive_groups = ["modality"]` names label groups of which an entry carries at most one
label (the generalizable-vlm list shows one modality badge per entry): the model then
proposes one label of such a group (see `CatalogueModel.one_per_group`).
`required_groups = ["prompt kind"]` names groups of which every entry carries exactly one
label (prompt-adaptation files each paper in its VP or VPT table, by prompt kind): such a
group is exclusive too, and the model proposes its likeliest label when none passes its
threshold. A paper that carries none of its labels was not labelled for it (a related list
that can only say "pixel-level"), so it is neither a positive nor a negative for them.

`[[silent]]` tables name headings under which the list says nothing of some label groups::

    [[silent]]
    section = "Applications and Advanced Topics"   # a heading substring, as in `when`
    groups = ["prompt kind", "level"]

An entry filed there neither carries those labels nor denies them: awesome-vpt files each
paper in one section, and a test-time prompt tuner under its Applications has learnable
prompts all the same. Training leaves such entries out of those labels' models (for the
shipped models and for one trained on a store alike; see `Example.label_scope`).

An optional `[cues]` table adds fixed phrase features to some of the catalogue's models
(see `classify/cues.py`)::

    [cues]
    models = ["base_to_novel"]      # default models: "relevance", "base_to_novel", "labels"
    [cues.patterns]
    harmonic-mean = 'harmonic mean'     # a regex over the lower-cased text
    visual-prompts = { pattern = 'visual prompts?', models = ["labels"] }   # its own models
    says-vision = { builtin = "vision-words", models = ["relevance"] }   # a shared pattern
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vpt_tracker.catalogue.markdown import NewEntry
from vpt_tracker.classify.cues import CueSet
from vpt_tracker.classify.presets import SHIPPED
from vpt_tracker.errors import UserError
from vpt_tracker.models import Label


@dataclass(frozen=True)
class _Rule:
    section: str | None = None
    badge: str | None = None
    cell: tuple[tuple[str, str], ...] = ()

    def matches(self, section_path: list[str], badges: list[str], cells: dict[str, str]) -> bool:
        if self.section is not None and not any(self.section in part.lower() for part in section_path):
            return False
        if self.badge is not None and self.badge not in [b.lower() for b in badges]:
            return False
        lowered = {k.lower(): v.lower() for k, v in cells.items()}
        return all(value in lowered.get(header, "") for header, value in self.cell)


@dataclass
class _LabelSpec:
    label: Label
    rules: list[_Rule]
    badge: str | None = None
    cells: dict[str, str] = field(default_factory=dict)


@dataclass
class Preset:
    name: str
    labels: list[Label]
    title: str = ""
    requires_base_to_novel: bool = False
    cues: CueSet = field(default_factory=CueSet)
    # Label keys per group of which an entry carries at most one (`exclusive_groups`, and
    # the required groups).
    exclusive: tuple[tuple[str, ...], ...] = ()
    # Label keys per group of which an entry carries exactly one (`required_groups`).
    required: tuple[tuple[str, ...], ...] = ()
    # (heading substring, label keys): under such a heading the list says nothing of them.
    silent: tuple[tuple[str, tuple[str, ...]], ...] = ()
    _specs: list[_LabelSpec] = field(default_factory=list, repr=False)
    _placements: list[tuple[list[str], list[str]]] = field(default_factory=list, repr=False)

    @property
    def label_keys(self) -> list[str]:
        """Every label's key, in the preset's order: what a model of this preset can propose."""
        return [label.key for label in self.labels]

    def labels_for(self, section_path: list[str], badges: list[str], cells: dict[str, str]) -> list[str]:
        """The label keys an imported entry carries, in the preset's label order."""
        return [
            spec.label.key
            for spec in self._specs
            if any(rule.matches(section_path, badges, cells) for rule in spec.rules)
        ]

    def silent_on(self, section_path: Sequence[str]) -> frozenset[str]:
        """The labels an entry filed under `section_path` says nothing about (`[[silent]]`)."""
        parts = [part.lower() for part in section_path]
        return frozenset(
            key for heading, keys in self.silent if any(heading in part for part in parts) for key in keys
        )

    def clash(self, labels: Sequence[str]) -> str | None:
        """Why these labels cannot all be shown: two of a group an entry carries one of."""
        for group in self.exclusive:
            both = [key for key in group if key in labels]
            if len(both) > 1:
                name = next(label.group for label in self.labels if label.key == both[0])
                return (
                    f"it would show {len(both)} {name!r} labels, {' and '.join(map(repr, both))}, "
                    f"where an entry of preset {self.name!r} shows one"
                )
        return None

    def section_for(self, labels: list[str], *, year: int | None = None) -> list[str] | None:
        """Where a new entry with these labels goes; None when no placement fits."""
        given = set(labels)
        for needed, section in self._placements:
            if set(needed) <= given:
                if any("{year}" in part for part in section):
                    if year is None:
                        continue
                    return [part.replace("{year}", str(year)) for part in section]
                return list(section)
        return None

    def unplaceable(self, section_paths: Sequence[Sequence[str]]) -> list[tuple[list[str], list[str]]]:
        """The placements (labels, section) naming a section that none of `section_paths` is,
        matched as `Document.insert_entry` finds a section (the whole path or its last parts,
        without regard to case); a `{year}` part takes any year, since a missing year section
        is made from a sibling. Said at import, so that a preset's misspelt heading is found
        before a paper is accepted for it."""
        paths = [[part.strip().lower() for part in path] for path in section_paths]
        missing = []
        for labels, section in self._placements:
            parts = [
                re.compile(re.escape(part.strip().lower()).replace(re.escape("{year}"), r"\d{4}"))
                for part in section
            ]
            if not any(
                len(path) >= len(parts)
                and all(p.fullmatch(have) for p, have in zip(parts, path[-len(parts) :], strict=True))
                for path in paths
            ):
                missing.append((list(labels), list(section)))
        return missing

    def entry_for(
        self,
        title: str,
        venue: str | None,
        year: int | None,
        paper_url: str | None,
        code_url: str | None,
        labels: list[str],
        short_name: str | None = None,
    ) -> NewEntry:
        """A new entry showing the labels the way this list shows them (badges, cells)."""
        badges: list[str] = []
        cells: dict[str, str] = {}
        for spec in self._specs:
            if spec.label.key not in labels:
                continue
            if spec.badge and spec.badge not in badges:
                badges.append(spec.badge)
            for header, value in spec.cells.items():
                cells.setdefault(header, value)
        return NewEntry(
            title=title,
            venue=venue,
            year=year,
            paper_url=paper_url,
            code_url=code_url,
            short_name=short_name,
            badges=badges,
            cells=cells,
        )


def load_preset(name: str) -> Preset:
    """The shipped preset `name` (`SHIPPED.load`): what a caller with no settings reads (the
    recipes, the benchmarks). A catalogue's preset is loaded with `Settings.presets.load`."""
    return SHIPPED.load(name)


def read_preset(name: str, path: Path) -> Preset:
    """The preset `name` from its file `path` (a UserError if it is not valid)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"preset {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"preset {path} is not UTF-8 text") from None
    return _build(name, data, path)


# The keys each table of a preset may hold. A preset is written by hand, and a misspelt key
# was ignored: `when = [{ sectoin = "Adapter" }]` left a rule of no condition, which every
# entry of the list matched, and `[[placement]]` left the preset with no section for new
# entries, found only when a paper was accepted.
_KEYS = {
    "preset": (
        *("name", "title", "requires_base_to_novel", "exclusive_groups", "required_groups"),
        *("labels", "placements", "silent", "cues"),
    ),
    "label": ("key", "title", "group", "when", "badge", "cells", "cue"),
    "when": ("section", "badge", "cell"),
    "placement": ("labels", "section"),
    "silent": ("section", "groups"),
}


def _known_keys(table: dict[str, Any], kind: str, where: str, path: Path) -> None:
    """A UserError naming the first key of `table` that a `kind` table does not have."""
    allowed = _KEYS[kind]
    for key in table:
        if key not in allowed:
            raise UserError(f"preset {path}: {where}unknown key {key!r} (known: {', '.join(allowed)})")


def _build(name: str, data: dict[str, Any], path: Path) -> Preset:
    specs: list[_LabelSpec] = []
    label_cues: list[tuple[str, str]] = []
    _known_keys(data, "preset", "", path)
    try:
        for item in _tables(data.get("labels", []), "labels", path):
            key = _text(item["key"], "a label's key", path)
            if any(spec.label.key == key for spec in specs):
                raise UserError(f"preset {path}: label {key!r} is defined twice")
            where = f"label {key!r}:"
            _known_keys(item, "label", f"{where} ", path)
            for rule in _tables(item.get("when", []), f"{where} when", path):
                _known_keys(rule, "when", f"{where} when: ", path)
                if not rule:
                    raise UserError(
                        f"preset {path}: {where} a when table needs section, badge or cell "
                        "(an empty one would match every entry)"
                    )
            if "cue" in item:
                label_cues.append((key, _text(item["cue"], f"{where} cue", path)))
            label = Label(
                key=key,
                title=_text(item.get("title", key), f"{where} title", path),
                group=_text(item.get("group", ""), f"{where} group", path),
            )
            rules = [
                _Rule(
                    section=_text(rule["section"], f"{where} when.section", path).lower()
                    if "section" in rule
                    else None,
                    badge=_text(rule["badge"], f"{where} when.badge", path).lower()
                    if "badge" in rule
                    else None,
                    cell=tuple(
                        (k.lower(), v.lower())
                        for k, v in _cells(rule.get("cell", {}), f"{where} when.cell", path)
                    ),
                )
                for rule in _tables(item.get("when", []), f"{where} when", path)
            ]
            badge = _text(item["badge"], f"{where} badge", path) if "badge" in item else None
            specs.append(
                _LabelSpec(label, rules, badge, dict(_cells(item.get("cells", {}), f"{where} cells", path)))
            )
        keys = {s.label.key for s in specs}
        placements = []
        for place in _tables(data.get("placements", []), "placements", path):
            _known_keys(place, "placement", "placements: ", path)
            labels = _texts(place["labels"], "placements.labels", path)
            unknown = set(labels) - keys
            if unknown:
                raise UserError(f"preset {path}: placement names unknown labels {sorted(unknown)}")
            placements.append((labels, _texts(place["section"], "placements.section", path)))
    except KeyError as exc:
        raise UserError(f"preset {path} misses the key {exc.args[0]!r}") from None
    required = _groups(data, "required", specs, path)
    silent = []
    for item in data.get("silent", []):
        if not isinstance(item, dict) or not isinstance(item.get("section"), str) or "groups" not in item:
            raise UserError(f'preset {path}: a [[silent]] table needs section = "..." and groups = [...]')
        _known_keys(item, "silent", "silent: ", path)
        keys_of = _group_keys(item["groups"], "silent", specs, path)
        silent.append((item["section"].lower(), tuple(key for group in keys_of for key in group)))
    exclusive = tuple(dict.fromkeys(_groups(data, "exclusive", specs, path) + required))
    try:
        cues = replace(CueSet.from_config(data.get("cues")), label_cues=tuple(label_cues))
    except UserError as exc:
        raise UserError(f"preset {path}: {exc}") from None
    return Preset(
        name=data.get("name", name),
        labels=[s.label for s in specs],
        title=data.get("title", ""),
        requires_base_to_novel=bool(data.get("requires_base_to_novel", False)),
        cues=cues,
        exclusive=exclusive,
        required=required,
        silent=tuple(silent),
        _specs=specs,
        _placements=placements,
    )


def _groups(
    data: dict[str, Any], kind: str, specs: list[_LabelSpec], path: Path
) -> tuple[tuple[str, ...], ...]:
    """The label keys of each group named by `<kind>_groups` (exclusive or required)."""
    return _group_keys(data.get(f"{kind}_groups", []), kind, specs, path)


def _group_keys(names: Any, kind: str, specs: list[_LabelSpec], path: Path) -> tuple[tuple[str, ...], ...]:
    """The label keys of each named group; a group without labels is the preset's error."""
    groups = []
    for group in _texts(names, f"{kind} groups", path):
        members = tuple(s.label.key for s in specs if s.label.group == group)
        if not members:
            raise UserError(f"preset {path}: {kind} group {group!r} has no labels")
        groups.append(members)
    return tuple(groups)


# A preset is edited by hand: a value of the wrong shape (`when = { section = "…" }` for
# `when = [{ section = "…" }]`, a number for a heading) is the preset's error, naming the
# key. Each was a TypeError or AttributeError traceback, or, for a string where a list
# belongs, one group or label per character.
def _tables(value: Any, what: str, path: Path) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        key = what.rsplit(" ", 1)[-1]
        raise UserError(
            f"preset {path}: {what} must be an array of tables ({key} = [{{ ... }}], or [[{key}]])"
        )
    return value


def _text(value: Any, what: str, path: Path) -> str:
    if not isinstance(value, str):
        raise UserError(f"preset {path}: {what} must be a string, not {value!r}")
    return value


def _texts(value: Any, what: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UserError(f"preset {path}: {what} must be a list of strings, not {value!r}")
    return value


def _cells(value: Any, what: str, path: Path) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise UserError(f'preset {path}: {what} must be a table of strings (header = "text"), not {value!r}')
    return list(value.items())
