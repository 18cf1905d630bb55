"""Finding list entries' abstracts by near-equal titles, and the preset's fixed cue features."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from vpt_tracker.classify.cues import CueSet
from vpt_tracker.classify.data import AbstractIndex, Example, TrainingSet
from vpt_tracker.classify.model import CatalogueModel, Hyper
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.errors import UserError

# Real titles: conference-index spellings in the pool, list-entry spellings in the queries.
POOL = [
    Example("Compacter: Efficient Low-Rank Hypercomplex Adapter Layers", "a", id="u1"),
    Example("E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning", "a", id="u2"),
    Example("LoGoPrompt: Synthetic Text Images Can Be Good Visual Prompts for Vision-Language Models", "a"),
    Example("Frozen CLIP Models Are Efficient Video Learners", "a", id="u4"),
    Example("Federated Text-driven Prompt Generation for Vision-Language Models", "a", id="u5"),
    Example("Multimodal Few-Shot Learning with Frozen Language Models", "a", id="u6"),
    Example("Mask Transfiner for High-Quality Instance Segmentation", "a", id="u7"),
]


@pytest.fixture(scope="module")
def index() -> AbstractIndex:
    return AbstractIndex(POOL)


@pytest.mark.parametrize(
    ("entry", "expected", "how"),
    [
        ("Compacter: Efficient Low-Rank Hypercomplex Adapter Layer", 0, "fuzzy"),  # singular
        ("E2VPT: An Effective and Efficient Approach for Visual Prompt Tuning", 1, "variant"),
        ("Synthetic Text Images Can Be Good Visual Prompts for Vision-Language Models", 2, "variant"),
        ("Multimodal Few-Shot Learning with Frozen Language Models(DeepMind)", 5, "variant"),
    ],
)
def test_near_equal_titles_find_their_paper(
    index: AbstractIndex, entry: str, expected: int, how: str
) -> None:
    found = index.match(entry)
    assert found is not None and found.paper is POOL[expected] and found.how == how
    assert index.find(entry, fuzzy=False) is (POOL[expected] if how == "variant" else None)


@pytest.mark.parametrize(
    "entry",
    [
        "Fine-tuned CLIP Models are Efficient Video Learners",  # another paper, ratio 90
        "Replication Study: Federated Text-Driven Prompt Generation for Vision-Language Models",
        "Video Mask Transfiner for High-Quality Video Instance Segmentation",  # a follow-up paper
        "Compacter 2: Efficient Low-Rank Hypercomplex Adapter Layers",  # numbers must agree
    ],
)
def test_near_misses_are_rejected(index: AbstractIndex, entry: str) -> None:
    assert index.match(entry) is None


def test_exact_keys_still_win(index: AbstractIndex) -> None:
    found = index.match("frozen clip models are efficient video learners", arxiv=None)
    assert found is not None and found.how == "title" and found.paper is POOL[3]


# ---- cues ------------------------------------------------------------------------------

_PHRASE = re.compile(r"base[\s-]*to[\s-]*novel", re.IGNORECASE)


def _without_phrase(examples: list[Example]) -> list[Example]:
    """The same papers with "base-to-novel" respelt "base-to-new": the phrase never occurs in training."""
    respell = _PHRASE.sub
    return [
        replace(e, abstract=respell("base-to-new", e.abstract), title=respell("base-to-new", e.title))
        for e in examples
    ]


def test_a_cue_carries_a_phrase_the_training_data_never_spells(training: TrainingSet, tmp_path: Path) -> None:
    """The cue regex joins spellings: a model trained on "base-to-new" scores "base-to-novel" too.

    Two texts differ only by a sentence reporting base-to-novel results. Without cues the
    phrase is out of vocabulary and both score alike; with the preset's cues, the base-to-novel
    one scores clearly higher.
    """
    data = TrainingSet(
        relevant=_without_phrase(training.relevant),
        unlabeled=_without_phrase(training.unlabeled),
        novel_positive=_without_phrase(training.novel_positive),
        novel_negative=_without_phrase(training.novel_negative),
    )
    assert not any(_PHRASE.search(e.text()) for e in data.novel_positive + data.novel_negative)
    cues = load_preset("generalizable-vlm").cues
    assert cues.applies_to("base_to_novel")
    plain = CatalogueModel.train("plain", data, [], Hyper(folds=4, max_features=8000))
    cued = CatalogueModel.train("cued", data, [], Hyper(folds=4, max_features=8000, cues=cues))
    body = "We learn soft prompts for CLIP with a consistency constraint on the frozen encoders."
    reports = Example("Prompt learning for CLIP", body + " We report Base-to-Novel generalization.")
    silent = Example("Prompt learning for CLIP", body + " We report generalization.")
    (p_plain, n_plain), (p_cued, n_cued) = plain.score([reports, silent]), cued.score([reports, silent])
    assert p_plain.base_to_novel == pytest.approx(n_plain.base_to_novel, abs=0.02)
    assert p_cued.base_to_novel is not None and n_cued.base_to_novel is not None
    assert p_cued.base_to_novel > n_cued.base_to_novel + 0.1
    cued.save(tmp_path / "cued")
    assert CatalogueModel.load(tmp_path / "cued").score([reports])[0] == p_cued


def test_cues_on_relevance_show_in_explain(training: TrainingSet) -> None:
    cues = CueSet((("harmonic-mean", r"\bharmonic\s+mean\b"),), ("relevance",))
    model = CatalogueModel.train("cued", training, [], Hyper(folds=4, max_features=8000, cues=cues))
    example = Example(
        "Prompt tuning", "Visual prompts for CLIP; the harmonic mean of base and novel accuracies."
    )
    explanation = model.explain(example, top=50)
    names = [term for term, _ in explanation.up + explanation.down]
    assert "cue:harmonic-mean" in names
    assert model.explain(example).relevance == pytest.approx(model.score([example])[0].relevance, abs=1e-3)


def test_bad_cue_config_is_a_user_error() -> None:
    with pytest.raises(UserError, match="bad regular expression"):
        CueSet.from_config({"patterns": {"broken": "(unclosed"}})
    with pytest.raises(UserError, match="unknown models"):
        CueSet.from_config({"patterns": {"ok": "x"}, "models": ["labels"]})
