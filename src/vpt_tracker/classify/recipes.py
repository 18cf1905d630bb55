"""Training sets for the shipped default models, built from README files and local corpora.

The three preset lists alone are too small to learn from: only a handful of their entries
have an abstract in the local corpora (14 for awesome-vpt, 1 for generalizable-vlm, 0 for
prompt-adaptation). A recipe therefore adds entries of *related* real lists that follow the
same admission idea (for example the visual-prompt sections of the PETL lists), each with
a section filter and a badge/section → label map. Everything a recipe uses is written
into the model card, so the shipped models can be rebuilt and judged.

This module reads files only; `make models` calls `python -m vpt_tracker.classify.recipes`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vpt_tracker.catalogue.markdown import Document, ParsedEntry, parse
from vpt_tracker.classify.cues import BUILTIN_PATTERNS
from vpt_tracker.classify.data import (
    AbstractIndex,
    Example,
    TrainingSet,
    mentions_prompt,
    read_conference_index,
    read_jsonl,
    sample,
)
from vpt_tracker.classify.taxonomy import Preset, load_preset
from vpt_tracker.normalize import title_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListSource:
    """Entries of one README used by a recipe.

    `sections`: keep an entry when any of these (case-insensitive) substrings occurs on its
    section path (empty = all entries). `label_map`: section/badge substring → label key,
    used when the README is not the preset's own list. `own`: the preset's own list (labels
    come from the preset). `preset_labels`: a related list that uses the preset's vocabulary,
    labelled by the preset's rules too. `results_table`: a heading whose table lists the
    papers with reported results (by short name or paper link); only the entries it lists
    are used, and the others are unknown (`Matched.unlisted`). `same_list`: an earlier form of
    the preset's own list under another taxonomy, mapped by `label_map`: its sections decide
    the labels they can express, as the own list's do (see `_merge`). `silent_under`: (heading
    substring, label) pairs: under such a heading the list says nothing about the label, so its
    entries there neither carry it nor deny it (their `label_scope` leaves it out).
    """

    file: str
    sections: tuple[str, ...] = ()
    exclude_sections: tuple[str, ...] = ()
    own: bool = False
    label_map: tuple[tuple[str, str], ...] = ()
    preset_labels: bool = False
    results_table: str = ""
    same_list: bool = False
    silent_under: tuple[tuple[str, str], ...] = ()

    @property
    def decides(self) -> bool:
        """Whether its placement of a paper overrides what related lists say (see `_merge`)."""
        return self.own or self.preset_labels or self.same_list

    def describe(self) -> str:
        """The file name, plus the sections when a recipe uses one file more than once."""
        return self.file + (f" [{', '.join(self.sections)}]" if self.sections else "")

    def keeps(self, entry: ParsedEntry) -> bool:
        path = " > ".join(entry.section_path).lower()
        if any(s.lower() in path for s in self.exclude_sections):
            return False
        return not self.sections or any(s.lower() in path for s in self.sections)

    def labels(self, entry: ParsedEntry, preset: Preset) -> list[str]:
        if self.own or self.preset_labels:
            silent = self.silent_on(entry, preset)
            labels = preset.labels_for(entry.section_path, entry.badges, entry.cells)
            return [label for label in labels if label not in silent]
        # Each heading, and the whole path for needles that span headings ("learnable visual
        # prompts > pixel": Pixel-Level exists under Learnable and under Generative).
        path = [part.lower() for part in entry.section_path]
        haystack = path + [" > ".join(path)] + [b.lower() for b in entry.badges]
        haystack += [v.lower() for v in entry.cells.values()]
        silent = self.silent_on(entry)
        return sorted(
            {
                label
                for needle, label in self.label_map
                if label not in silent and any(needle in h for h in haystack)
            }
        )

    def silent_on(self, entry: ParsedEntry, preset: Preset | None = None) -> frozenset[str]:
        """The labels this list says nothing about where `entry` sits (`silent_under`), and
        for a list labelled by `preset`'s rules, those its `[[silent]]` tables name."""
        path = " > ".join(entry.section_path).lower()
        own = frozenset(label for heading, label in self.silent_under if heading.lower() in path)
        if preset is not None and (self.own or self.preset_labels):
            return own | preset.silent_on(entry.section_path)
        return own


@dataclass(frozen=True)
class Recipe:
    preset: str
    relevant: tuple[ListSource, ...]
    novel_positive: tuple[ListSource, ...] = ()
    novel_negative: tuple[ListSource, ...] = ()
    rejected: tuple[ListSource, ...] = ()  # what this preset's maintainer would reject (reviewed negatives)
    notes: str = ""


# What the presets admit, per the issue: papers that adapt or steer *vision* models with
# prompts, not papers that prompt a language model or a text-to-image model. Related lists
# are broader (HyperPrompt conditions NLP transformers; Prompt-to-Prompt edits images through
# a diffusion model's text prompt), so their entries are positives only when they pass this.
_VISION = re.compile(BUILTIN_PATTERNS["vision-words"], re.IGNORECASE)  # the presets' `says-vision`
_TEXT_TO_IMAGE = re.compile(
    r"\btext[\s-]*(?:to|2)[\s-]*(?:image|video)|\bimage\s+(?:editing|generation|synthesis)\b", re.I
)
_ADAPTS_PROMPTS = re.compile(
    r"\bprompt[\s-]*(?:tuning|learning)\b|\bvisual\s+prompt|\b(?:learnable|soft)\s+prompt", re.I
)


def results_table(document: Document, heading: str) -> tuple[set[str], set[str]]:
    """The first-column names and the links of the table rows under `heading`.

    `heading` is matched against the section path, e.g. "General Prompt Learning >
    Experimental Comparison" (the test-time section has a results table of its own).
    zhengli97's list keeps a base-to-novel results table there, above its paper list: a row
    means the paper reports base/novel/HM results.
    """
    rows = document.table_rows(heading)
    return {row.cells[0] for row in rows if row.cells}, {url for row in rows for url in row.links}


def about_vision_prompts(paper: Example) -> bool:
    """Whether a related list's entry is what the presets admit: prompts for a vision model."""
    text = paper.text()
    if not mentions_prompt(paper) or not _VISION.search(text):
        return False
    return not _TEXT_TO_IMAGE.search(text) or bool(_ADAPTS_PROMPTS.search(text))


# A base-to-novel negative is only "another prompt-learning paper of a related list": nobody
# checked it. One whose own text says it reports base-to-novel results (LoGoPrompt, FROSTER)
# is a positive by the flag's definition ("reports base-to-novel generalization experiments"),
# which is what a maintainer reading its abstract would decide, so it is moved there.
SAYS_BASE_TO_NOVEL = re.compile(r"\bbase[\s-]*(?:to|2|and)[\s-]*(?:novel|new)\b", re.IGNORECASE)


# (Under "Applications and Advanced Topics" the own list says no prompt kind or level: the
# preset's `[[silent]]` table, which a model trained on a store reads too.)
_AWESOME_VPT_OWN = (
    ListSource(
        "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md",
        own=True,
        exclude_sections=("survey",),
    ),
    ListSource(
        "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-06.md",
        own=True,
        exclude_sections=("survey",),
    ),
)
_VPT_RELATED_LABELS = (
    ("pixel level", "pixel"),
    ("pixel_level", "pixel"),
    ("token level", "token"),
    ("embedding level", "token"),
    ("test-time", "test-time"),
    ("test time", "test-time"),
    # Not "continual": continual learning (L2P, DualPrompt) is not test-time adaptation; the
    # prompt-adaptation list keeps them apart ("PA under Constrained Learning").
    # badges of the PETL lists for prompts that meet text (CLIP-style), as the own list's
    # "VPT in Multimodality" section: "Text Prompt", "Joint Prompt", "CrossModal", "MultiModal Prompt"
    ("text prompt", "multi-modality"),
    ("joint prompt", "multi-modality"),
    ("crossmodal", "multi-modality"),
    ("cross modal", "multi-modality"),
    ("multimodal prompt", "multi-modality"),
)
_VPT_RELATED = (
    ListSource(
        "jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md",
        sections=("Prompt",),
        label_map=_VPT_RELATED_LABELS,
    ),
    ListSource(
        "synbol__Awesome-Parameter-Efficient-Transfer-Learning__README.md",
        sections=("Prompt Tuning",),
        label_map=_VPT_RELATED_LABELS,
    ),
    ListSource(
        "ttengwang__Awesome_Prompting_Papers_in_Computer_Vision__README.md",
        sections=("Vision Prompt",),
        exclude_sections=("Vision-Language",),
        label_map=_VPT_RELATED_LABELS,
    ),
    # Not its "Vision-Language Prompt" sections: the 5 papers they would add over the other
    # lists are mostly adapters (VL-Adapter, Tip-Adapter, pi-Tuning), which no preset admits.
    ListSource(
        "JindongGu__Awesome-Prompting-on-Vision-Language-Model__README.md",
        sections=("CLIP",),
        label_map=(
            ("image-text matching", "multi-modality"),  # the heading: its rows prompt CLIP, but…
            ("patch-wise", "pixel"),  # "Visual patch-wise prompts"
            ("robust", "robustness"),
            ("test-time", "test-time"),
        ),
        # …its "Applications & Responsible AI" rows mix CLIP prompt learners (TPT, DenseCLIP)
        # with prompts for a ViT or a CNN (L2P, DualPrompt, DePT, Segment Anything).
        silent_under=(("Applications & Responsible AI", "multi-modality"),),
    ),
    ListSource(
        "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md",
        exclude_sections=("Survey", "Foundation Models", "Datasets", "Adapter"),
        label_map=(
            ("test-time", "test-time"),
            ("general prompt learning", "multi-modality"),
            ("another form of prompt", "multi-modality"),
        ),
    ),
    # Not its "In-context learning" section: in-context learning of language models (Frozen,
    # ICAE) is what the issue calls prompting a chat model, not adapting a vision model.
    ListSource(
        "BWLONG__Awesome-Prompt-Learning-CV__README.md",
        exclude_sections=("In-context learning",),
        label_map=_VPT_RELATED_LABELS,
    ),
)
# What a visual-prompt list leaves out although it sits next to prompts in the PETL lists:
# adapters, side tuning, LoRA and other reparameterisations, and foundation models. These
# are the papers a maintainer rejects, so they are reviewed negatives (weight 1), which
# teaches "adapter" apart from "prompt" better than the unlabeled sample does. Not the
# prefix-tuning or unified sections: prefix tuning is prompt tuning by another name.
_NOT_PROMPTS = (
    ListSource(
        "jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md",
        exclude_sections=("Prompt", "Unified"),
    ),
    ListSource(
        "synbol__Awesome-Parameter-Efficient-Transfer-Learning__README.md",
        exclude_sections=("Prompt", "Prefix", "Unified"),
    ),
    ListSource(
        "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md",
        sections=("Adapter", "Foundation Models"),
    ),
)

# awesome-vpt sections → prompt-adaptation labels (the same list, rewritten in 2025-10).
_ADAPTATION_FROM_VPT = (
    ("learnable visual prompts > pixel", "vp-learnable"),
    ("learnable visual prompts > token", "vpt-learnable"),
    ("generative visual prompts > pixel", "vp-generated"),
    ("generative visual prompts > token", "vpt-generated"),
    ("non-learnable", "vp-fixed"),
    ("test-time", "test-time"),
    ("black-box", "black-box"),
    ("robustness", "robustness"),
    ("fairness", "fairness"),
    ("privacy", "privacy"),
    ("calibration", "calibration"),
    ("segmentation", "segmentation"),
    ("multimodality", "multi-modal"),
)


# The related lists' labels in prompt-adaptation terms: VP works in pixel space, VPT in token
# space, and the prompt-tuning sections of those lists hold learnable prompts.
_ADAPTATION_FROM_RELATED = {
    "pixel": "vp-learnable",
    "token": "vpt-learnable",
    "multi-modality": "multi-modal",
    "test-time": "test-time",
    "robustness": "robustness",
}
_ADAPTATION_RELATED_EXTRA = (
    ("point cloud", "point-clouds"),
    ("segmentation", "segmentation"),
    ("medical", "medical"),
    ("robot", "robotics"),
    ("black-box", "black-box"),
)


def _related_for_adaptation(source: ListSource) -> ListSource:
    """A related-list source of awesome-vpt with its label map translated to prompt-adaptation keys."""
    translated = tuple(
        (needle, _ADAPTATION_FROM_RELATED[key])
        for needle, key in source.label_map
        if key in _ADAPTATION_FROM_RELATED
    )
    silent = tuple(
        (heading, _ADAPTATION_FROM_RELATED[key])
        for heading, key in source.silent_under
        if key in _ADAPTATION_FROM_RELATED
    )
    return replace(source, label_map=translated + _ADAPTATION_RELATED_EXTRA, silent_under=silent)


def _adaptation_source(file: str) -> ListSource:
    # Silent on the prompt kinds under its applications, as awesome-vpt's preset says of itself.
    kinds = ("vp-learnable", "vpt-learnable", "vp-generated", "vpt-generated", "vp-fixed")
    return ListSource(
        file,
        exclude_sections=("survey",),
        label_map=_ADAPTATION_FROM_VPT,
        same_list=True,
        silent_under=tuple(("applications and advanced topics", key) for key in kinds),
    )


RECIPES: dict[str, Recipe] = {
    "awesome-vpt": Recipe(
        "awesome-vpt",
        relevant=_AWESOME_VPT_OWN + _VPT_RELATED,
        rejected=_NOT_PROMPTS,
        notes="own list (2025-06 snapshots) + visual-prompt sections of jianghaojun, synbol, ttengwang, "
        "JindongGu (CLIP), zhengli97 (prompt sections) and BWLONG (related entries only when they are "
        "about prompts for vision models, see about_vision_prompts); entries matched by arXiv id, folded "
        "title, title variants and a guarded fuzzy title match (AbstractIndex.match); reviewed negatives "
        "= adapter, side-tuning and LoRA sections of the PETL lists and zhengli97's adapters and "
        "foundation models",
    ),
    "prompt-adaptation": Recipe(
        "prompt-adaptation",
        relevant=(
            ListSource(
                "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md", own=True, exclude_sections=("survey",)
            ),
            _adaptation_source("yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"),
            _adaptation_source("yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-06.md"),
            *(_related_for_adaptation(source) for source in _VPT_RELATED),
        ),
        rejected=_NOT_PROMPTS,
        notes="own list (0 local abstracts) + its awesome-vpt predecessor with sections mapped to VP/VPT "
        "labels + the same related visual-prompt lists and reviewed negatives as awesome-vpt",
    ),
    "generalizable-vlm": Recipe(
        "generalizable-vlm",
        relevant=(
            ListSource("StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md", own=True),
            # Its badges are the preset's own (Text / Image / Image-Text, one per paper), so the
            # preset's exact badge rules label it; a substring map gave "Image-Text" all three.
            ListSource(
                "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md",
                sections=("General Prompt Learning",),
                preset_labels=True,
            ),
        ),
        # The base-to-novel flag: Stellar's entries (its admission rule) and the papers of
        # zhengli97's base-to-novel results table. The rest of that section (VPT, CuPL, ...)
        # sits there as prompt learning, not for reported base/novel results: unknown.
        novel_positive=(
            ListSource("StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md", own=True),
            ListSource(
                "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md",
                sections=("General Prompt Learning",),
                results_table="General Prompt Learning > Experimental Comparison",
            ),
        ),
        novel_negative=(
            ListSource(
                "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md",
                exclude_sections=("General Prompt Learning", "Survey", "Foundation Models", "Datasets"),
            ),
            ListSource("JindongGu__Awesome-Prompting-on-Vision-Language-Model__README.md"),
            ListSource("ttengwang__Awesome_Prompting_Papers_in_Computer_Vision__README.md"),
            ListSource("jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md"),
            ListSource("synbol__Awesome-Parameter-Efficient-Transfer-Learning__README.md"),
            ListSource("yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"),
        ),
        notes="relevant = StellarOdys2ey entries + zhengli97 'General Prompt Learning' (the list whose "
        "layout Stellar follows; its results table reports base/novel/HM). base-to-novel negatives = the "
        "other prompt-learning papers of zhengli97, JindongGu, ttengwang, jianghaojun, synbol, yunbeizhang.",
    ),
}


def load_pool(shared_data: Path) -> AbstractIndex:
    """Every local paper with an abstract: the arXiv corpus first, then the conference indexes."""
    fixtures = shared_data / "fixtures"
    papers: list[Example] = []
    for path in sorted(fixtures.glob("corpus/*/*.jsonl")):
        papers.extend(read_jsonl(path))
    indexes = sorted(fixtures.glob("conferences/*.json")) + sorted(
        fixtures.glob("*/derived_glimpse-data/*.json")
    )
    for path in indexes:
        papers.extend(read_conference_index(path))
    return AbstractIndex(p for p in papers if p.has_abstract)


@dataclass
class Matched:
    examples: list[Example] = field(default_factory=list)
    entries: int = 0
    inexact: int = 0  # matched by a title variant or the fuzzy fallback (see `AbstractIndex.match`)
    off_topic: int = 0  # related-list entries dropped by `about_vision_prompts`
    unlisted: list[Example] = field(default_factory=list)  # kept entries its results table lacks
    # Kept entries with no abstract in the pool (title and labels), from lists labelled by the
    # preset's own rules (`TrainingSet.entries_without_abstract`).
    unmatched: list[Example] = field(default_factory=list)


def match_entries(
    source: ListSource,
    lists_dir: Path,
    pool: AbstractIndex,
    preset: Preset,
    *,
    with_labels: bool = True,
    only_vision_prompts: bool = False,
) -> Matched:
    """The entries of one README that a source keeps, matched to abstracts in the pool.

    `only_vision_prompts` drops a related list's entries that fail `about_vision_prompts`:
    those lists are broader than a preset (CLIP pre-training, adapters, poisoning attacks,
    text-to-image editing sit next to prompt papers), and such an entry is not what the
    preset's maintainer admits.

    A related list's `label_scope` is the labels its map gave to at least one of its entries:
    a list without, say, a test-time section says nothing about test-time (see `Example`); an
    entry under a `silent_under` heading leaves out the labels the list is silent on there.
    """
    document = _read_list(lists_dir / source.file)
    names, links = results_table(document, source.results_table) if source.results_table else (None, None)
    found = Matched()
    keys = preset.label_keys
    silent: list[frozenset[str]] = []  # per example of found.examples: see ListSource.silent_under
    for entry in document.entries:
        if not source.keeps(entry):
            continue
        found.entries += 1
        quiet = source.silent_on(entry, preset)
        found_paper = pool.match(entry.title, entry.arxiv_id)
        if found_paper is None:
            if with_labels and (source.own or source.preset_labels):
                labels = tuple(source.labels(entry, preset))
                if labels:
                    titled = Example(entry.title, "", labels=labels, id=entry.arxiv_id)
                    found.unmatched.append(titled.unlabelled_for(quiet, keys))
            continue
        paper = found_paper.paper
        if only_vision_prompts and not source.own and not about_vision_prompts(paper):
            found.off_topic += 1
            continue
        found.inexact += found_paper.how in ("variant", "fuzzy")
        labels = tuple(source.labels(entry, preset)) if with_labels else ()
        example = Example(paper.title, paper.abstract, paper.comment, labels, paper.id)
        if (
            names is not None
            and links is not None
            and not (entry.short_name in names or entry.paper_url in links)
        ):
            found.unlisted.append(example)
        else:
            found.examples.append(example)
            silent.append(quiet)
    if with_labels:
        # A list labelled by the preset's rules can say every label (None); a related list,
        # those its map gave to any of its entries.
        own_rules = source.own or source.preset_labels
        scope = None if own_rules else frozenset(label for e in found.examples for label in e.labels)
        found.examples = [
            replace(example, label_scope=scope).unlabelled_for(quiet, keys)
            for example, quiet in zip(found.examples, silent, strict=True)
        ]
    return found


@functools.lru_cache(maxsize=32)
def _read_list(path: Path) -> Document:
    """A list README parsed once: recipes use one file for several roles and sections."""
    return parse(path.read_text(encoding="utf-8"))


def _merge(groups: Iterable[tuple[bool, list[Example]]]) -> list[Example]:
    """De-duplicated by paper; `groups` holds (decides, examples) per list, in the recipe's order.

    Within one list, a paper's rows add up (an entry under both Pixel-Level and Robustness has
    both labels). Across lists, the first list that *decides* (the preset's own list, newest
    snapshot first, or one labelled by the preset's rules: `ListSource.decides`) and can express
    a label (`label_scope`; None is every label) settles it; later lists add only the labels no
    deciding list could express. Visual Prompt Tuning sits under Token-Level in the own list,
    so JindongGu's CLIP section must not add "multi-modality" to it, nor an older snapshot a
    section the maintainer has since moved it out of. Related lists add up among themselves:
    a missing badge there says little. The recipes name the deciding lists first.
    """
    merged: dict[str, Example] = {}
    decided: dict[str, frozenset[str] | None] = {}  # per paper: the labels a deciding list settled
    for decides, group in groups:
        for key, example in _union_by_paper(group).items():
            settled = decided.get(key, frozenset())
            known = merged.get(key)
            if known is None:
                merged[key] = example
            elif settled is not None:
                merged[key] = _union(known, example, settled)
            if decides and settled is not None:
                decided[key] = None if example.label_scope is None else settled | example.label_scope
    return list(merged.values())


def _union_by_paper(examples: Iterable[Example]) -> dict[str, Example]:
    by_paper: dict[str, Example] = {}
    for example in examples:
        key = example.key()
        by_paper[key] = _union(by_paper[key], example) if key in by_paper else example
    return by_paper


def _union(known: Example, other: Example, settled: frozenset[str] = frozenset()) -> Example:
    """`known` with `other`'s labels added, except those in `settled`; a label scope of None
    (every label) absorbs the other."""
    added = tuple(label for label in other.labels if label not in settled)
    scope = (
        None
        if known.label_scope is None or other.label_scope is None
        else known.label_scope | other.label_scope
    )
    return replace(known, labels=tuple(dict.fromkeys(known.labels + added)), label_scope=scope)


def build_training_set(
    recipe: Recipe, lists_dir: Path, pool: AbstractIndex, *, unlabeled: int = 15_000, seed: int = 0
) -> tuple[TrainingSet, dict[str, Any]]:
    """The recipe's training set plus a provenance record (per file: entries kept, matched)."""
    preset = load_preset(recipe.preset)
    provenance: dict[str, Any] = {
        "notes": recipe.notes,
        "relevant": {},
        "rejected": {},
        "novel_positive": {},
        "novel_negative": {},
        "novel_positive_by_own_text": [],
    }

    # Entries a results table does not list: whether they report base-to-novel results is
    # unknown, so they are positives when their own text says so, and otherwise left out.
    unknown: list[Example] = []
    unmatched: dict[str, Example] = {}  # by title key; the first list wins

    def collect(role: str, sources: tuple[ListSource, ...], with_labels: bool) -> list[Example]:
        groups = []
        for source in sources:
            about_prompts = role == "relevant"
            found = match_entries(
                source, lists_dir, pool, preset, with_labels=with_labels, only_vision_prompts=about_prompts
            )
            provenance[role][source.describe()] = {
                "sections": list(source.sections),
                "entries": found.entries,
                "with_abstract": len(found.examples),
                "by_near_title": found.inexact,
                "dropped_not_vision_prompts": found.off_topic,
            } | ({"not_in_results_table": len(found.unlisted)} if source.results_table else {})
            groups.append((source.decides, found.examples))
            unknown.extend(found.unlisted)
            for entry in found.unmatched:
                unmatched.setdefault(title_key(entry.title), entry)
        return _merge(groups)

    relevant = collect("relevant", recipe.relevant, True)
    novel_positive = collect("novel_positive", recipe.novel_positive, False)
    positive_keys = {e.key() for e in novel_positive}
    other_prompt_papers = collect("novel_negative", recipe.novel_negative, False)
    unknown_keys = {e.key() for e in unknown}
    novel_negative: list[Example] = []
    for example in unknown + other_prompt_papers:
        if example.key() in positive_keys:
            continue
        if SAYS_BASE_TO_NOVEL.search(example.evidence_text()):
            novel_positive.append(example)
            positive_keys.add(example.key())
            provenance["novel_positive_by_own_text"].append(example.title)
        elif example.key() not in unknown_keys:
            novel_negative.append(example)
    relevant_keys = {e.key() for e in relevant}
    # For a catalogue that admits only base-to-novel papers, the other prompt-learning papers
    # are what its maintainer rejects: they become reviewed negatives for relevance too.
    rejected = _merge(
        [
            (False, [e for e in novel_negative if e.key() not in relevant_keys]),
            (False, [e for e in collect("rejected", recipe.rejected, False) if e.key() not in relevant_keys]),
        ]
    )
    listed = relevant + rejected + novel_positive + novel_negative
    known = {e.key() for e in listed} | {title_key(e.title) for e in listed}
    others = [p for p in pool.papers if p.key() not in known and title_key(p.title) not in known]
    matched_titles = {title_key(e.title) for e in relevant}
    data = TrainingSet(
        relevant=relevant,
        rejected=rejected,
        unlabeled=sample(others, unlabeled, seed),
        novel_positive=novel_positive,
        novel_negative=novel_negative,
        entries_without_abstract=[entry for key, entry in unmatched.items() if key not in matched_titles],
    )
    provenance["unlabeled_pool"] = len(others)
    return data, provenance


def main(argv: list[str] | None = None) -> int:
    """`make models`: train, evaluate (nested CV) and save the three default models."""
    from vpt_tracker.classify.evaluate import evaluate
    from vpt_tracker.classify.model import CatalogueModel, Hyper

    parser = argparse.ArgumentParser(prog="python -m vpt_tracker.classify.recipes", description=main.__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument(
        "--out", type=Path, default=Path("classifiers"), help="where classifiers/<preset>/ go"
    )
    parser.add_argument("--preset", action="append", help="only this preset (repeatable)")
    parser.add_argument(
        "--unlabeled", type=int, default=15_000, help="unlabeled papers sampled (default 15000)"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    pool = load_pool(args.shared)
    log.info("pool: %d papers with abstracts (%.1fs)", len(pool), time.perf_counter() - started)
    for name in args.preset or list(RECIPES):
        recipe = RECIPES[name]
        data, provenance = build_training_set(
            recipe, args.shared / "lists", pool, unlabeled=args.unlabeled, seed=args.seed
        )
        log.info("%s: %s", name, data.counts())
        preset = load_preset(name)
        keys = preset.label_keys
        hyper = Hyper.for_preset(preset, folds=args.folds, seed=args.seed)
        report = evaluate(name, data, keys, hyper, folds=args.folds)
        model = CatalogueModel.train(name, data, keys, hyper)
        model.card["preset"] = name
        model.card["training_data"] = provenance
        model.card["evaluation"] = report
        model.save(args.out / name)
        log.info("%s: saved to %s\n%s", name, args.out / name, json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
