"""The committed default models load with the installed scikit-learn and score real papers;
the recipes that built them still find their training data in ../shared."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.classify.data import AbstractIndex, Example, TrainingSet, mentions_prompt
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.classify.presets import presets_dir
from vpt_tracker.classify.recipes import (
    RECIPES,
    SAYS_BASE_TO_NOVEL,
    ListSource,
    about_vision_prompts,
    build_training_set,
    load_pool,
    match_entries,
    results_table,
)
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.errors import UserError

from .conftest import load


@pytest.mark.parametrize("preset", ["awesome-vpt", "prompt-adaptation", "generalizable-vlm"])
def test_shipped_model_loads_and_ranks(
    preset: str, relevant: list[Example], unlabeled: list[Example]
) -> None:
    directory = presets_dir() / preset
    model = CatalogueModel.load(directory)
    card = model.card
    assert card["preset"] == preset and card["evaluation"]["folds"] == 5
    assert set(model.labels) <= {label.key for label in load_preset(preset).labels}
    assert (directory / "model.pkl.xz").stat().st_size < 3_000_000
    if preset == "generalizable-vlm":
        assert model.base_to_novel is not None
    scores = model.score(relevant + unlabeled)
    listed = sum(s.relevance for s in scores[: len(relevant)]) / len(relevant)
    others = sum(s.relevance for s in scores[len(relevant) :]) / len(unlabeled)
    assert listed > others


def test_shipped_generalizable_model_proposes_exactly_one_modality(
    relevant: list[Example], unlabeled: list[Example]
) -> None:
    """Two modality labels often pass their thresholds; the list shows one badge per entry."""
    model = CatalogueModel.load(presets_dir() / "generalizable-vlm")
    modality = ("text", "image", "image-text")
    assert model.exclusive == (modality,)
    scores = model.score(relevant + unlabeled)
    both = [s for s in scores if sum(s.labels[key] >= model.labels[key].threshold for key in s.labels) > 1]
    # two pass for some papers; every entry of the list shows exactly one badge
    assert both and all(sum(key in modality for key in s.proposed_labels) == 1 for s in scores)
    # and where none passes, the most probable is proposed
    assert model.one_per_group([], {"text": 0.1, "image": 0.05, "image-text": 0.2}) == ["image-text"]


def test_shipped_adaptation_model_proposes_one_prompt_kind(
    relevant: list[Example], unlabeled: list[Example]
) -> None:
    """prompt-adaptation files every paper in its VP or VPT table: without a kind it has no place."""
    model = CatalogueModel.load(presets_dir() / "prompt-adaptation")
    preset = load_preset("prompt-adaptation")
    assert model.required == preset.required
    (kinds,) = preset.required
    for score in model.score(relevant + unlabeled):
        assert sum(key in kinds for key in score.proposed_labels) == 1
        assert preset.section_for(list(score.proposed_labels)) is not None


def test_shipped_awesome_vpt_model_proposes_learnable_by_its_cue(relevant: list[Example]) -> None:
    """Only Core Methodologies rows say a prompt kind, and all those with an abstract are
    Learnable: no model can learn the label, so its cue proposes it (for candidates)."""
    model = CatalogueModel.load(presets_dir() / "awesome-vpt")
    assert "learnable" not in model.labels
    assert model.card["labels_proposed_by_cue"]["learnable"] == "learned-prompts"
    tuned = [e for e in relevant if "prompt tuning" in e.text().lower()]
    scores = [score for score in model.score(tuned) if model.should_queue(score)]
    assert scores and all("learnable" in score.proposed_labels for score in scores)


@pytest.mark.parametrize("preset", ["awesome-vpt", "prompt-adaptation"])
def test_shipped_relevance_model_weighs_the_word_prompt(preset: str, relevant: list[Example]) -> None:
    """The visual-prompt presets' relevance cues: the same abstract ranks lower without "prompt"."""
    model = CatalogueModel.load(presets_dir() / preset)
    assert model.cues.names_for("relevance") == ["cue:says-prompt", "cue:says-vision"]
    paper = next(e for e in relevant if e.abstract.lower().count("prompt") == 1)
    explanation = model.explain(paper, top=60)
    assert {"cue:says-prompt", "cue:says-vision"} <= {term for term, weight in explanation.up if weight > 0}
    # the same paper with "prompt" reworded as "adapter": no cue, no prompt terms
    reworded = Example(
        paper.title.replace("Prompt", "Adapter").replace("prompt", "adapter"),
        paper.abstract.replace("prompt", "adapter").replace("Prompt", "Adapter"),
    )
    with_word, without = model.score([paper, reworded])
    assert without.relevance < with_word.relevance / 2


@pytest.mark.shared
def test_recipes_match_the_shared_lists(shared_dir: Path) -> None:
    pool = load_pool(shared_dir / "data")
    assert len(pool) > 25_000
    data, provenance = build_training_set(
        RECIPES["awesome-vpt"], shared_dir / "data" / "lists", pool, unlabeled=100
    )
    assert len(data.relevant) >= 40 and len(data.unlabeled) == 100
    own = provenance["relevant"]["yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"]
    assert own["with_abstract"] >= 10 and own["dropped_not_vision_prompts"] == 0
    # related lists are broader than the preset: entries not about prompts for vision models are dropped
    assert sum(source["dropped_not_vision_prompts"] for source in provenance["relevant"].values()) >= 10
    titles = {e.title for e in data.relevant}
    assert "SLIP: Self-Supervision Meets Language-Image Pre-training" not in titles
    assert "Prompt-to-Prompt Image Editing with Cross-Attention Control" not in titles  # text-to-image
    assert "HyperPrompt: Prompt-based Task-Conditioning of Transformers" not in titles  # NLP
    # an LLM paper whose only "vision" word was "objectives" (BWLONG's Prompt Learning section)
    assert not any(title.startswith("In-context Autoencoder") for title in titles)
    own_sources = [source for source in RECIPES["awesome-vpt"].relevant if source.own]
    preset = load_preset("awesome-vpt")
    own_keys = {
        e.key()
        for source in own_sources
        for e in match_entries(source, shared_dir / "data" / "lists", pool, preset).examples
    }
    assert all(mentions_prompt(e) for e in data.relevant if e.key() not in own_keys)
    # a related list's labels are only those its sections can say: BWLONG has no test-time section
    # adapters and LoRA are what a visual-prompt maintainer rejects
    assert any(e.title.startswith("Tip-Adapter") for e in data.rejected)
    assert not {e.key() for e in data.rejected} & {e.key() for e in data.relevant}
    assert not {e.key() for e in data.rejected} & {e.key() for e in data.unlabeled}
    scopes = [(set(e.labels), e.label_scope) for e in data.relevant if e.label_scope is not None]
    assert scopes and all(labels <= scope for labels, scope in scopes)


@pytest.mark.shared
def test_the_shipped_models_are_what_make_models_builds_today(shared_dir: Path) -> None:
    """`make models` is reproducible: today's recipes, lists, pool and seed give the very
    training data each shipped card names. A change to parsing, title folding or a recipe
    that moves any example fails here until the models are rebuilt (and their figures
    checked); before this test, the title folding of d9fc7fb had moved the keys of the
    training data of all three models unnoticed."""
    pool = load_pool(shared_dir / "data")
    for preset in ("awesome-vpt", "prompt-adaptation", "generalizable-vlm"):
        card = CatalogueModel.load(presets_dir() / preset).card
        data, _ = build_training_set(RECIPES[preset], shared_dir / "data" / "lists", pool, seed=0)
        assert data.data_hash() == card["data_sha256"], f"{preset}: run `make models` and check the figures"


@pytest.mark.shared
def test_generalizable_recipe_labels_and_negatives(shared_dir: Path) -> None:
    pool = load_pool(shared_dir / "data")
    data, provenance = build_training_set(
        RECIPES["generalizable-vlm"], shared_dir / "data" / "lists", pool, unlabeled=100
    )
    # One modality badge per paper: "Image-Text" is not also "Text" and "Image"
    assert all(len(e.labels) <= 1 for e in data.relevant)
    assert {label for e in data.relevant for label in e.labels} == {"text", "image", "image-text"}
    # The entries with no local abstract are mostly 2024-2026 papers, and Image-Text ones; the
    # matched ones are mostly 2022-2023 papers, and Text ones. Their labels are kept apart.
    unmatched = data.entries_without_abstract
    assert len(unmatched) >= 50 and all(len(e.labels) == 1 and not e.has_abstract for e in unmatched)
    share = sum(e.labels == ("image-text",) for e in unmatched) / len(unmatched)
    matched = sum("image-text" in e.labels for e in data.relevant) / len(data.relevant)
    assert share > 0.5 > matched
    # A related paper that says, in its own text, that it reports base-to-novel results is a
    # positive for the flag (LoGoPrompt is one); no negative says so
    assert any(e.title.startswith("LoGoPrompt") for e in data.novel_positive)
    assert provenance["novel_positive_by_own_text"]
    assert data.novel_negative and not any(
        SAYS_BASE_TO_NOVEL.search(e.evidence_text()) for e in data.novel_negative
    )
    assert SAYS_BASE_TO_NOVEL.search("strong base-to-new generalization") is not None
    # zhengli97's base-to-novel results table decides its positives: CoCoOp has a row there;
    # VPT sits in the same section without base/novel results, so it is neither positive
    # nor negative; ProGrad has no row but its abstract says base-to-new.
    positives = {e.title for e in data.novel_positive}
    negatives = {e.title for e in data.novel_negative}
    assert "Conditional Prompt Learning for Vision-Language Models" in positives
    assert "Visual Prompt Tuning" not in positives | negatives
    assert "Prompt-aligned Gradient for Prompt Tuning" in provenance["novel_positive_by_own_text"]


@pytest.mark.shared
def test_the_own_list_decides_the_labels_and_related_lists_add_up(shared_dir: Path) -> None:
    """A paper's place in the preset's own list (or its earlier form) settles the labels that
    list can express; related lists add only what it cannot say, and add up among themselves."""
    pool = load_pool(shared_dir / "data")
    lists = shared_dir / "data" / "lists"
    vpt, _ = build_training_set(RECIPES["awesome-vpt"], lists, pool, unlabeled=10)
    adaptation, _ = build_training_set(RECIPES["prompt-adaptation"], lists, pool, unlabeled=10)

    def example(data: TrainingSet, title: str) -> Example:
        return next(e for e in data.relevant if e.title.lower().startswith(title.lower()))

    def labels(data: TrainingSet, title: str) -> set[str]:
        return set(example(data, title).labels)

    # Visual Prompt Tuning sits under Token-Level only: JindongGu's CLIP section ("multi-modality",
    # "patch-wise" → pixel) must not add to it, in either preset's terms
    assert labels(vpt, "Visual Prompt Tuning") == {"learnable", "token"}
    assert labels(adaptation, "Visual Prompt Tuning") == {"vpt-learnable"}
    # the 2025-06-06 snapshot also listed this one under Token-Level; the newest one does not
    assert "token" not in labels(vpt, "Understanding Zero-shot Adversarial Robustness")
    # the earlier form's sections map to the VP/VPT labels ("learnable visual prompts > pixel")
    assert labels(adaptation, "AutoVP") == {"vp-learnable"}
    assert labels(adaptation, "E^2VPT") == {"vpt-learnable"}
    # jianghaojun lists this one without a level badge, synbol under prompt tokens: both count
    assert "vpt-learnable" in labels(adaptation, "Instance-aware Dynamic Prompt Tuning")
    # A related list's heading or badge gives only the label it means: ttengwang's
    # "continual-learning" badge is not test-time adaptation, and the rows under JindongGu's
    # CLIP heading that prompt a ViT (L2P, DualPrompt) are not multi-modality
    for data, test_time, multi_modal in (
        (vpt, "test-time", "multi-modality"),
        (adaptation, "test-time", "multi-modal"),
    ):
        for title in ("Learning to Prompt for Continual Learning", "DualPrompt"):
            assert not {test_time, multi_modal} & labels(data, title)
            # still a test-time negative: silence there is about multi-modality only
            scope = example(data, title).label_scope
            assert scope is not None and test_time in scope
        assert test_time in labels(data, "O-TPT")  # a related list's test-time heading
        assert multi_modal in labels(data, "Conditional Prompt Learning")
    # Segment Anything sits only there: silent on multi-modality, still "not pixel-level"
    scope = example(vpt, "Segment Anything").label_scope
    assert scope is not None and "pixel" in scope and "multi-modality" not in scope
    # The own list's Applications rows say nothing of prompt kind or level: a test-time prompt
    # tuner there is neither "learnable" nor "not learnable"; its Core rows say both
    for title in ("C-TPT", "Diverse Data Augmentation with Diffusions"):
        scope = example(vpt, title).label_scope
        assert scope is not None and not {"learnable", "pixel", "token"} & scope and "test-time" in scope
    assert example(vpt, "AutoVP").label_scope is None and labels(vpt, "AutoVP") == {"learnable", "pixel"}
    # …and so do its rows with no abstract in the pool, whose titles teach the label models
    tpt = next(e for e in vpt.entries_without_abstract if e.title.startswith("Test-Time Prompt Tuning"))
    assert tpt.labels == ("test-time",) and tpt.knows_label("test-time") and not tpt.knows_label("learnable")


def test_shipped_generalizable_relevance_weighs_a_vision_word_not_the_word_prompt(
    relevant: list[Example],
) -> None:
    """The list admits adapters that pass its base-to-novel rule, so its relevance model has
    only the vision cue: an LLM-prompting paper names no vision term."""
    model = CatalogueModel.load(presets_dir() / "generalizable-vlm")
    assert model.cues.names_for("relevance") == ["cue:says-vision"]
    paper = next(e for e in relevant if "clip" in e.abstract.lower())
    explanation = model.explain(paper, top=60)
    assert "cue:says-vision" in {term for term, weight in explanation.up if weight > 0}


def test_a_vision_word_is_a_whole_word() -> None:
    """An LLM paper's "objectives" are not "objects": it names no vision term.

    The same words are the presets' `says-vision` relevance cue, so both agree."""
    llm = Example(
        "Compressing context",
        "We pretrain a language model with autoencoding objectives and fine-tune it on prompts.",
    )
    detector = replace(llm, abstract=llm.abstract + " The prompts steer object detectors.")
    assert not about_vision_prompts(llm)
    assert about_vision_prompts(detector)
    for preset in ("awesome-vpt", "prompt-adaptation", "generalizable-vlm"):
        cues = load_preset(preset).cues
        (column,) = [i for i, (name, _) in enumerate(cues.patterns) if name == "says-vision"]
        matrix = cues.matrix([llm.text().lower(), detector.text().lower()], columns=[column])
        assert matrix.toarray().ravel().tolist() == [0.0, 1.0]


def test_a_label_map_needle_may_span_headings() -> None:
    """Pixel-Level sits under Learnable and under Generative: only the whole path tells them apart."""
    markdown = """# List
### 1. Learnable Visual Prompts
#### Pixel-Level
| Title | Venue |
| --- | --- |
| [A Learnable One](https://arxiv.org/abs/2000.00001) | ICLR |
### 2. Generative Visual Prompts
#### Pixel-Level
| Title | Venue |
| --- | --- |
| [A Generated One](https://arxiv.org/abs/2000.00002) | ICLR |
"""
    source = ListSource(
        "synthetic.md",
        label_map=(
            ("learnable visual prompts > pixel", "vp-learnable"),
            ("generative visual prompts > pixel", "vp-generated"),
        ),
        same_list=True,
    )
    preset = load_preset("prompt-adaptation")
    learnable, generated = parse(markdown).entries
    assert source.labels(learnable, preset) == ["vp-learnable"]
    assert source.labels(generated, preset) == ["vp-generated"]
    assert source.decides and not replace(source, same_list=False).decides


def test_a_list_may_be_silent_on_a_label_under_one_heading() -> None:
    """Rows under a `silent_under` heading neither carry the label nor deny it; the rest do."""
    markdown = """# List
## Prompting CLIP
| Title | Comment |
| --- | --- |
| [A CLIP One](https://arxiv.org/abs/2000.00001) | Visual patch-wise prompts |
### Applications
| Title | Comment |
| --- | --- |
| [A ViT One](https://arxiv.org/abs/2000.00002) | Visual patch-wise prompts |
"""
    source = ListSource(
        "synthetic.md",
        label_map=(("prompting clip", "multi-modality"), ("patch-wise", "pixel")),
        silent_under=(("Applications", "multi-modality"),),
    )
    preset = load_preset("awesome-vpt")
    clip, vit = parse(markdown).entries
    assert source.labels(clip, preset) == ["multi-modality", "pixel"]
    assert source.labels(vit, preset) == ["pixel"]
    assert source.silent_on(vit) == {"multi-modality"} and not source.silent_on(clip)


def test_the_own_list_is_silent_where_its_preset_says(tmp_path: Path) -> None:
    """An own-list row under a heading of the preset's `[[silent]]` leaves those labels out of
    its scope: awesome-vpt's Applications rows say no prompt kind or level."""
    (tmp_path / "own.md").write_text(
        """# List
## Core Methodologies
### Learnable Visual Prompts
#### Pixel-Level
| Title | Venue |
| --- | --- |
| [Padding Prompts](https://arxiv.org/abs/2000.00001) | ICLR |
## Applications and Advanced Topics
### VPT at Test-Time
| Title | Venue |
| --- | --- |
| [Test-Time Prompts](https://arxiv.org/abs/2000.00002) | ICML |
""",
        encoding="utf-8",
    )
    pool = AbstractIndex(
        [
            Example("Padding Prompts", "We learn a pixel prompt.", id="2000.00001"),
            Example("Test-Time Prompts", "We tune prompts at test time.", id="2000.00002"),
        ]
    )
    preset = load_preset("awesome-vpt")
    core, applied = match_entries(ListSource("own.md", own=True), tmp_path, pool, preset).examples
    assert set(core.labels) == {"learnable", "pixel"} and core.label_scope is None
    assert applied.labels == ("test-time",)
    assert applied.label_scope is not None
    assert not {"learnable", "non-learnable", "pixel", "token"} & applied.label_scope
    assert applied.knows_label("test-time") and applied.knows_label("multi-modality")


def test_results_table_is_read_under_its_heading_path() -> None:
    markdown = """# List
## General Prompt Learning
### Experimental Comparison
| Methods | Paper | HM |
| :---: | :---: | --- |
| CoOp | [Link](https://arxiv.org/abs/2109.01134) | 71.66 |
| MaPLe | [Link](https://arxiv.org/abs/2210.03117) | 78.55 |

### Paper List
| Other | [Link](https://arxiv.org/abs/2000.00001) | 1 |
## General Test-time Prompt Learning
### Experimental Comparison
| Methods | Paper |
| --- | --- |
| TPT | [Link](https://arxiv.org/abs/2209.07511) |
"""
    names, links = results_table(parse(markdown), "General Prompt Learning > Experimental Comparison")
    assert names == {"CoOp", "MaPLe"}  # not the header, the paper list or the test-time table
    assert links == {"https://arxiv.org/abs/2109.01134", "https://arxiv.org/abs/2210.03117"}


def test_explain_shows_why_the_shipped_model_flags_base_to_novel() -> None:
    """`classify explain` on the flag's model: its own cues and terms, its own probability."""
    model = CatalogueModel.load(presets_dir() / "generalizable-vlm")
    papers = load("base_novel_prompt")  # real CLIP prompt papers that say base-to-novel
    for paper in papers:
        explanation = model.explain(paper, top=20, of="base_to_novel")
        score = model.score([paper])[0]
        assert explanation.probability == pytest.approx(score.base_to_novel, abs=1e-3)
        assert explanation.threshold == model.card["thresholds"]["base_to_novel"]
        assert "cue:prompt-base-to-novel" in {term for term, _ in explanation.up}
    with pytest.raises(UserError, match="has no base_to_novel model"):
        CatalogueModel.load(presets_dir() / "awesome-vpt").explain(papers[0], of="base_to_novel")
