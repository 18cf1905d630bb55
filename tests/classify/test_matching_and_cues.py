"""Finding list entries' abstracts by near-equal titles, and the preset's fixed cue features."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from vpt_tracker.classify.cues import CueReader, CueSet
from vpt_tracker.classify.data import AbstractIndex, Example, TrainingSet
from vpt_tracker.classify.model import CatalogueModel, Hyper
from vpt_tracker.classify.rules import RuleSet
from vpt_tracker.classify.taxonomy import load_preset, read_preset
from vpt_tracker.errors import UserError

from .conftest import VPT_LABELS

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
        ("E2VPT: An Effective and Efficient Approach for Visual Prompt Tuning", 1, "title"),  # "E^2VPT"
        ("Synthetic Text Images Can Be Good Visual Prompts for Vision-Language Models", 2, "variant"),
        ("Multimodal Few-Shot Learning with Frozen Language Models(DeepMind)", 5, "variant"),
    ],
)
def test_near_equal_titles_find_their_paper(
    index: AbstractIndex, entry: str, expected: int, how: str
) -> None:
    found = index.match(entry)
    assert found is not None and found.paper is POOL[expected] and found.how == how
    assert index.find(entry, fuzzy=False) is (POOL[expected] if how != "fuzzy" else None)


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
    assert model.explain(example).probability == pytest.approx(model.score([example])[0].relevance, abs=1e-3)


def test_bad_cue_config_is_a_user_error() -> None:
    with pytest.raises(UserError, match="bad regular expression"):
        CueSet.from_config({"patterns": {"broken": "(unclosed"}})
    with pytest.raises(UserError, match="unknown models"):
        CueSet.from_config({"patterns": {"ok": "x"}, "models": ["nonsense"]})
    with pytest.raises(UserError, match="unknown models"):
        CueSet.from_config({"patterns": {"ok": {"pattern": "x", "models": ["nonsense"]}}})
    with pytest.raises(UserError, match="expected"):
        CueSet.from_config({"patterns": {"no-pattern": {"models": ["labels"]}}})
    odd: list[dict[str, object]] = [
        {"pattern": "x", "all": ["y"]},
        {"all": []},
        {"all": "x"},
        {"builtin": "vision-words", "pattern": "x"},
    ]
    for both_or_empty in odd:
        with pytest.raises(UserError, match="expected"):
            CueSet.from_config({"patterns": {"odd": both_or_empty}})
    with pytest.raises(UserError, match="cue 'half': bad regular expression"):
        CueSet.from_config({"patterns": {"half": {"all": ["fine", "(unclosed"]}}})
    with pytest.raises(UserError, match="cue 'seeing': unknown builtin 'vision'; known: vision-words"):
        CueSet.from_config({"patterns": {"seeing": {"builtin": "vision"}}})


def test_a_builtin_cue_is_one_pattern_for_every_preset_and_the_recipes() -> None:
    """`{ builtin = "vision-words" }` names the pattern that the three presets' `says-vision`
    and `recipes.about_vision_prompts` share, instead of three copies in the presets."""
    from vpt_tracker.classify.cues import BUILTIN_PATTERNS
    from vpt_tracker.classify.recipes import about_vision_prompts

    cues = CueSet.from_config({"patterns": {"seeing": {"builtin": "vision-words", "models": ["relevance"]}}})
    assert cues.patterns == (("seeing", BUILTIN_PATTERNS["vision-words"]),)
    assert cues.columns_for("relevance") == [0] and not cues.columns_for("labels")
    texts = ["prompts for a vit on point clouds", "prompts whose objectives are written in text"]
    assert cues.matrix(texts).toarray().ravel().tolist() == [1.0, 0.0]
    assert [about_vision_prompts(Example("", text)) for text in texts] == [True, False]
    for preset in ("awesome-vpt", "prompt-adaptation", "generalizable-vlm"):
        assert ("says-vision", BUILTIN_PATTERNS["vision-words"]) in load_preset(preset).cues.patterns


def test_an_all_cue_fires_only_when_every_part_occurs() -> None:
    both = {"all": [r"\bbase and novel\b", "prompt|clip"]}
    texts = [
        "Prompt learning for CLIP; we report base and novel accuracy.",
        "We report base and novel accuracy of our prompts.",  # the other order
        "Open-vocabulary detection: base and novel categories.",  # no prompt
        "Prompt learning for CLIP on eleven datasets.",  # no base and novel
    ]
    cues = CueSet.from_config({"patterns": {"both": both}})
    fired = cues.matrix(texts).toarray().ravel().tolist()
    assert fired == [1.0, 1.0, 0.0, 0.0]
    # The same answers when a batch reads it next to other cues (`CueReader`'s prefilter),
    # and when it stands in for a label.
    more = CueSet.from_config({"patterns": {"a": "zzz", "both": both, "b": "yyy"}, "models": ["labels"]})
    assert more.matrix(texts).toarray()[:, 1].tolist() == fired
    with_label = replace(more, label_cues=(("base-to-novel", "both"),))
    assert with_label.stand_ins([]) == [("base-to-novel", 1)]
    assert with_label.matching_rows(CueReader(texts), [1], [1, 2, 3]) == [[1]]
    assert more.describe()["requires"] == {"both": ["prompt|clip"]}


def test_each_cue_feeds_only_its_models() -> None:
    """A preset's base-to-novel cues stay out of its label models, and its label cues out of the rest."""
    cues = load_preset("generalizable-vlm").cues
    label_names = cues.names_for("labels")
    novel_names = cues.names_for("base_to_novel")
    assert "cue:visual-prompts" in label_names and "cue:harmonic-mean" not in label_names
    assert "cue:harmonic-mean" in novel_names and "cue:visual-prompts" not in novel_names
    assert cues.names_for("relevance") == ["cue:says-vision"]  # its one relevance cue
    assert "cue:says-vision" not in label_names + novel_names
    text = ["Visual prompts for CLIP; we report the harmonic mean of base and novel accuracy."]
    empty = sparse.csr_matrix((1, 3), dtype=np.float32)
    for model, names in (("labels", label_names), ("base_to_novel", novel_names)):
        extended = cues.extend(model, empty, text)
        assert extended.shape == (1, 3 + len(names))
        fired = {names[j - 3] for j in extended.indices}
        assert fired == (
            {"cue:visual-prompts"}
            if model == "labels"
            else {"cue:harmonic-mean", "cue:base-and-novel", "cue:prompt-base-to-novel"}
        )
    per_cue = cues.describe()["models_per_cue"]
    assert isinstance(per_cue, dict) and per_cue["visual-prompts"] == ["labels"]


def test_one_reader_serves_several_cue_sets_with_the_same_answers(training: TrainingSet) -> None:
    """Catalogues sharing cue patterns read them once per batch (a `CueReader`); partial reads
    (label cues of candidates only) and a prefilter miss must not leave wrong answers behind."""
    texts = [e.text() for e in training.relevant[:30] + training.unlabeled[:90]]
    vpt = load_preset("awesome-vpt").cues
    adaptation = load_preset("prompt-adaptation").cues
    shared = set(vpt.patterns) & set(adaptation.patterns)
    assert ("says-prompt", "prompt|reprogram") in shared  # the two presets' relevance cues
    reader = CueReader(texts)
    candidates = list(range(0, len(texts), 3))
    reads = [
        (vpt, "labels", candidates),
        (adaptation, "relevance", None),
        (adaptation, "labels", candidates[::2]),
        (vpt, "relevance", None),
        (vpt, "labels", None),
    ]
    for cues, model, rows in reads:
        columns = cues.columns_for(model)
        expected = np.zeros((len(texts), len(columns)))
        for row in range(len(texts)) if rows is None else rows:
            for col, column in enumerate(columns):
                expected[row, col] = re.search(cues.patterns[column][1], texts[row].lower()) is not None
        assert (cues.matrix(reader, rows, columns).toarray() == expected).all(), (model, rows is None)
        assert (cues.matrix(texts, rows, columns).toarray() == expected).all(), (model, rows is None)
    relevance = vpt.matrix(reader, None, vpt.columns_for("relevance")).toarray()
    assert 0 < relevance[:, 0].sum() < len(texts)  # says-prompt: some papers, not all


def _test_time_papers(training: TrainingSet) -> list[Example]:
    return [e for e in training.relevant if "test-time" in e.labels]


def test_a_label_cue_carries_a_phrase_the_training_data_never_spells(training: TrainingSet) -> None:
    """Label models see the preset's label cues: "TTA" alone then reads as test-time."""
    respell = re.compile(r"test[\s-]*time", re.IGNORECASE).sub
    relevant = [
        replace(e, title=respell("inference-stage", e.title), abstract=respell("inference-stage", e.abstract))
        for e in training.relevant
    ]
    data = replace(training, relevant=relevant)
    cues = CueSet((("test-time", r"\btest[\s-]*time\b|\btta\b|\binference[\s-]*stage\b"),), ("labels",))
    plain = CatalogueModel.train("plain", data, ["test-time"], Hyper(folds=4, max_features=8000))
    cued = CatalogueModel.train("cued", data, ["test-time"], Hyper(folds=4, max_features=8000, cues=cues))
    paper = Example("Prompt tuning for CLIP", "We adapt prompts with TTA on each unlabeled test sample.")
    assert cued.score([paper])[0].labels["test-time"] > plain.score([paper])[0].labels["test-time"] + 0.1
    assert cued.relevance.coef.shape == plain.relevance.coef.shape  # relevance sees no label cue


def test_label_cues_are_read_for_candidates_only(training: TrainingSet) -> None:
    """Scoring reads label cues where labels are used: above the threshold or included by a rule."""
    cues = CueSet((("test-time", r"\btest[\s-]*time\b"),), ("labels",))
    model = CatalogueModel.train(
        "cued", training, ["test-time"], Hyper(folds=4, max_features=8000, cues=cues)
    )
    scorer = model.labels["test-time"]

    def label(example: Example, *, cues_read: bool) -> float:
        text = [example.text()]
        features = cues.extend("labels", model.features(text), text, None if cues_read else [])
        return round(float(scorer.proba(features)[0]), 4)

    candidate = Example("Test-time visual prompt tuning for CLIP", "Prompts adapted at test time for CLIP.")
    relevance = [s.relevance for s in model.score(training.unlabeled)]
    lowest = training.unlabeled[relevance.index(min(relevance))]
    unrelated = replace(lowest, title="Cooking robots", abstract=lowest.abstract + " It adapts at test time.")
    (cand,) = model.score([candidate])
    (other,) = model.score([unrelated])
    assert model.should_queue(cand) and not model.should_queue(other)
    assert label(unrelated, cues_read=True) > label(unrelated, cues_read=False)  # the cue matters here
    assert cand.labels["test-time"] == label(candidate, cues_read=True)
    assert other.labels["test-time"] == label(unrelated, cues_read=False)  # below the threshold: not read
    included = model.score([unrelated], RuleSet(include=["cooking robots"]))[0]
    assert included.rule == "include: cooking robots"
    assert included.labels["test-time"] == label(unrelated, cues_read=True)  # a rule makes it a candidate
    # Evaluation asks for every paper's labels as a candidate would get them.
    (everything,) = model.score([unrelated], all_labels=True)
    assert everything.labels["test-time"] == label(unrelated, cues_read=True)
    assert everything.relevance == other.relevance and not model.should_queue(everything)


def test_a_label_without_a_model_is_proposed_by_its_cue(training: TrainingSet) -> None:
    """ "robustness" has too few examples for a model; its cue proposes it, for candidates only."""
    cues = CueSet(
        (("robust", r"\badversarial\w*|\brobust(?:ness)?\b"),),
        ("labels",),
        label_cues=(("robustness", "robust"),),
    )
    model = CatalogueModel.train(
        "cued", training, ["robustness", "test-time"], Hyper(folds=4, max_features=8000, cues=cues)
    )
    assert "robustness" not in model.labels and "test-time" in model.labels
    assert model.card["labels_proposed_by_cue"] == {"robustness": "robust"}
    robust = Example(
        "Adversarially robust visual prompts for CLIP", "Visual prompt tuning against adversarial attacks."
    )
    plain = Example("Visual prompts for CLIP", "Visual prompt tuning of a frozen vision transformer.")
    scores = model.score([robust, plain])
    assert all(model.should_queue(s) for s in scores)
    assert "robustness" in scores[0].proposed_labels and "robustness" not in scores[1].proposed_labels
    assert "robustness" not in scores[0].labels  # a cue gives no probability
    below = replace(
        robust, title="Adversarially robust cooking robots", abstract="Robust recipes for kitchens."
    )
    (other,) = model.score([below])
    assert not model.should_queue(other) and "robustness" not in other.proposed_labels
    (everything,) = model.score([below], all_labels=True)  # as evaluation scores a relevant paper
    assert not model.should_queue(everything) and "robustness" in everything.proposed_labels
    # A label that has a model is never proposed by its cue.
    both = CueSet(cues.patterns, ("labels",), label_cues=(("robustness", "robust"), ("test-time", "robust")))
    trained = CatalogueModel.train(
        "both", training, ["test-time"], Hyper(folds=4, max_features=8000, cues=both)
    )
    assert trained.card["labels_proposed_by_cue"] == {}


def test_presets_name_existing_cues_for_their_labels(tmp_path: Path) -> None:
    vpt = load_preset("awesome-vpt")
    assert ("pixel", "pixel-space") in vpt.cues.label_cues and ("learnable", "x") not in vpt.cues.label_cues
    broken = (Path(__file__).parents[2] / "classifiers" / "awesome-vpt.toml").read_text()
    (tmp_path / "broken.toml").write_text(broken.replace('cue = "pixel-space"', 'cue = "pixel-spaces"'))
    with pytest.raises(UserError, match=r"broken\.toml: label 'pixel' names the cue 'pixel-spaces'"):
        read_preset("broken", tmp_path / "broken.toml")


def test_an_exclusive_group_proposes_its_most_probable_label(
    model: CatalogueModel, relevant: list[Example], tmp_path: Path
) -> None:
    """One-vs-rest models can pass two labels of a group that an entry shows one of."""
    plain = model.score(relevant)
    both = [s for s in plain if {"pixel", "token"} <= set(s.proposed_labels)]
    assert both  # the fixture model proposes both levels for some papers
    exclusive = replace(model, exclusive=(("pixel", "token"),))
    for before, after in zip(plain, exclusive.score(relevant), strict=True):
        assert after.labels == before.labels
        if before in both:
            kept = max(("pixel", "token"), key=lambda key: before.labels[key])
            rest = [key for key in before.proposed_labels if key not in ("pixel", "token")]
            assert after.proposed_labels == [key for key in before.proposed_labels if key in [*rest, kept]]
        else:
            assert after.proposed_labels == before.proposed_labels
    exclusive.save(tmp_path / "m")
    assert CatalogueModel.load(tmp_path / "m").exclusive == (("pixel", "token"),)
    # A label proposed by its cue (no probability) yields to one its model proposes.
    cued = replace(model, exclusive=(("pixel", "robustness"),))
    assert cued.one_per_group(["robustness", "token", "pixel"], {"pixel": 0.3}) == ["token", "pixel"]


def test_labels_learn_from_the_titles_of_entries_without_an_abstract(
    training: TrainingSet, hyper: Hyper, relevant: list[Example]
) -> None:
    """A list's labelled entries without an abstract teach its label models from their titles.

    Here "test-time" is carried by too few papers with abstracts for a model; the titles of
    the fixture's other test-time papers, as entries with no abstract, give it one. An entry
    whose list says nothing about a label where it is filed is no negative for it.
    """
    tta = [e for e in relevant if "test-time" in e.labels]
    others = [e for e in relevant if "test-time" not in e.labels]
    few = replace(training, relevant=others + tta[:2])
    without = CatalogueModel.train("few", few, VPT_LABELS, hyper)
    assert "test-time" not in without.labels
    titled = [Example(e.title, "", labels=e.labels) for e in tta[2:] + others[:8]]
    with_titles = CatalogueModel.train(
        "titles", replace(few, entries_without_abstract=titled), VPT_LABELS, hyper
    )
    assert "test-time" in with_titles.labels
    rows = len(few.relevant) + len(titled)
    assert with_titles.card["cv_metrics_in_training"]["labels"]["test-time"]["papers"] == rows
    # silent on "token" where filed: left out of that label's rows, not a negative
    quiet = [e.unlabelled_for(["token"], VPT_LABELS) for e in titled]
    silent = CatalogueModel.train("quiet", replace(few, entries_without_abstract=quiet), VPT_LABELS, hyper)
    learned = silent.card["cv_metrics_in_training"]["labels"]
    assert (learned["token"]["papers"], learned["test-time"]["papers"]) == (rows - len(titled), rows)
    # The relevance model does not learn from a title alone.
    assert with_titles.relevance.coef.tolist() == without.relevance.coef.tolist()


def test_presets_name_their_exclusive_and_required_groups(tmp_path: Path) -> None:
    modality = ("text", "image", "image-text")
    assert (
        load_preset("generalizable-vlm").exclusive == load_preset("generalizable-vlm").required == (modality,)
    )
    kinds = ("vp-fixed", "vp-learnable", "vp-generated", "vpt-learnable", "vpt-generated")
    assert load_preset("prompt-adaptation").required == (kinds,)  # the VP and VPT tables
    assert load_preset("prompt-adaptation").exclusive == (kinds,)  # exactly one is at most one
    assert load_preset("awesome-vpt").exclusive == load_preset("awesome-vpt").required == ()
    text = (Path(__file__).parents[2] / "classifiers" / "generalizable-vlm.toml").read_text()
    for kind in ("required", "exclusive"):
        broken = text.replace('required_groups = ["modality"]', f'{kind}_groups = ["modalities"]')
        (tmp_path / "broken.toml").write_text(broken)
        with pytest.raises(UserError, match=rf"broken\.toml: {kind} group 'modalities' has no labels"):
            read_preset("broken", tmp_path / "broken.toml")


def test_a_preset_names_the_headings_it_is_silent_under(tmp_path: Path) -> None:
    """awesome-vpt says a prompt kind and level only under Core Methodologies."""
    preset = load_preset("awesome-vpt")
    kinds_and_levels = {"learnable", "generative", "non-learnable", "pixel", "token"}
    assert preset.silent_on(["Applications and Advanced Topics", "VPT at Test-Time"]) == kinds_and_levels
    assert preset.silent_on(["Core Methodologies", "1. Learnable Visual Prompts", "Pixel-Level"]) == set()
    assert load_preset("generalizable-vlm").silent == ()
    text = (Path(__file__).parents[2] / "classifiers" / "awesome-vpt.toml").read_text()
    for broken, error in (
        (text.replace('groups = ["prompt kind", "level"]', 'groups = ["levels"]'), "silent group 'levels'"),
        (text.replace('section = "applications and advanced topics"', ""), r"\[\[silent\]\] table needs"),
    ):
        (tmp_path / "broken.toml").write_text(broken)
        with pytest.raises(UserError, match=error):
            read_preset("broken", tmp_path / "broken.toml")


def test_a_preset_value_of_the_wrong_shape_names_its_key(tmp_path: Path) -> None:
    """Presets are edited by hand. A table where an array of tables belongs, a number where a
    heading belongs, a list where a table of cells belongs, a file saved as UTF-16: each was a
    TypeError, AttributeError, ValueError or UnicodeDecodeError traceback. A string where a
    list belongs became one group per character, and a label defined twice was kept twice."""
    vpt = (Path(__file__).parents[2] / "classifiers" / "awesome-vpt.toml").read_text(encoding="utf-8")
    vlm = (Path(__file__).parents[2] / "classifiers" / "generalizable-vlm.toml").read_text(encoding="utf-8")
    learnable = 'when = [{ section = "learnable visual prompts" }]'
    assert learnable in vpt and 'required_groups = ["modality"]' in vlm
    for text, error in (
        (
            vpt.replace(learnable, 'when = { section = "learnable visual prompts" }'),
            r"label 'learnable': when must be an array of tables "
            r"\(when = \[\{ \.\.\. \}\], or \[\[when\]\]\)",
        ),
        (
            vpt.replace(learnable, "when = [{ section = 1 }]"),
            r"label 'learnable': when\.section must be a string",
        ),
        (
            vpt.replace(learnable, 'when = [{ cell = ["Type"] }]'),
            r"label 'learnable': when\.cell must be a table",
        ),
        (vpt.replace('key = "learnable"', "key = 1"), r"a label's key must be a string, not 1"),
        (vpt.replace('key = "generative"', 'key = "learnable"'), r"label 'learnable' is defined twice"),
        (
            vlm.replace('required_groups = ["modality"]', 'required_groups = "modality"'),
            r"required groups must be a list of strings, not 'modality'",
        ),
    ):
        (tmp_path / "broken.toml").write_text(text, encoding="utf-8")
        with pytest.raises(UserError, match=r"^preset \S*broken\.toml: " + error):
            read_preset("broken", tmp_path / "broken.toml")
    (tmp_path / "broken.toml").write_text(vpt, encoding="utf-16")
    with pytest.raises(UserError, match=r"broken\.toml is not UTF-8 text"):
        read_preset("broken", tmp_path / "broken.toml")


def test_a_misspelt_preset_key_is_refused(tmp_path: Path) -> None:
    """A maintainer writing a preset for a new list misspells a key: it was ignored. A `when`
    table without a condition matched every entry (`sectoin = "Adapter"` gave all 84 entries of
    jianghaojun's list the label `adapter`), and `[[placement]]` left no section for new papers,
    found only at the first accept."""
    vpt = (Path(__file__).parents[2] / "classifiers" / "awesome-vpt.toml").read_text(encoding="utf-8")
    learnable = 'when = [{ section = "learnable visual prompts" }]'
    assert learnable in vpt and "[[placements]]" in vpt and "[[silent]]" in vpt
    for text, error in (
        (
            vpt.replace(learnable, 'when = [{ sectoin = "learnable visual prompts" }]'),
            r"label 'learnable': when: unknown key 'sectoin' \(known: section, badge, cell\)",
        ),
        (
            vpt.replace(learnable, "when = [{}]"),
            r"label 'learnable': a when table needs section, badge or cell",
        ),
        (vpt.replace(learnable, learnable + '\nbadges = "X"'), r"label 'learnable': unknown key 'badges'"),
        (
            vpt.replace("[[placements]]", "[[placement]]", 1),
            r"unknown key 'placement' \(known: name, title, ",
        ),
        (
            vpt.replace("[[placements]]\n", "[[placements]]\nsections = []\n", 1),
            r"placements: unknown key 'sections'",
        ),
        (vpt.replace("[[silent]]\n", "[[silent]]\ngroup = []\n", 1), r"silent: unknown key 'group'"),
    ):
        (tmp_path / "broken.toml").write_text(text, encoding="utf-8")
        with pytest.raises(UserError, match=r"^preset \S*broken\.toml: " + error):
            read_preset("broken", tmp_path / "broken.toml")


def test_a_required_group_proposes_its_likeliest_label_when_none_passes(
    model: CatalogueModel, relevant: list[Example], tmp_path: Path
) -> None:
    """prompt-adaptation has no table for a paper without a prompt kind: one is always proposed."""
    group = ("pixel", "token")
    exclusive = replace(model, exclusive=(group,))
    required = replace(model, exclusive=(group,), required=(group,))
    before, after = exclusive.score(relevant), required.score(relevant)
    filled = [i for i, s in enumerate(before) if not set(group) & set(s.proposed_labels)]
    assert filled and len(filled) < len(relevant)  # the fixture model proposes no level for some papers
    for i, (was, now) in enumerate(zip(before, after, strict=True)):
        if i in filled:
            likeliest = max(group, key=lambda key: was.labels[key])
            assert now.proposed_labels == [*was.proposed_labels, likeliest]
        else:
            assert now.proposed_labels == was.proposed_labels
    required.save(tmp_path / "m")
    assert CatalogueModel.load(tmp_path / "m").required == (group,)
    # a label its cue proposed counts; a group with no model stays empty
    assert required.one_per_group(["token"], {"pixel": 0.9}) == ["token"]
    assert replace(required, required=(("privacy", "fairness"),)).one_per_group([], {"pixel": 0.9}) == []


def test_a_paper_with_no_label_of_a_required_group_is_unlabelled_for_it(
    training: TrainingSet, hyper: Hyper
) -> None:
    """A related list that can say "pixel-level" but not "token-level" is silent, not saying "no"."""
    keys = ["pixel", "token", "test-time"]
    silent = Example("a", "b", labels=("test-time",), label_scope=frozenset({"pixel", "test-time"}))
    assert silent.silent_on([("pixel", "token")], keys).label_scope == frozenset({"test-time"})
    assert Example("a", "b").silent_on([("pixel", "token")], keys).label_scope == frozenset({"test-time"})
    said = Example("a", "b", labels=("token",))
    assert said.silent_on([("pixel", "token")], keys) is said
    # in training, only papers with a level teach the level models
    with_level = sum(bool({"pixel", "token"} & set(e.labels)) for e in training.relevant if e.has_abstract)
    plain = CatalogueModel.train("p", training, keys, hyper)
    required = CatalogueModel.train("r", training, keys, replace(hyper, required=(("pixel", "token"),)))

    def rows(model: CatalogueModel, key: str) -> int:
        return int(model.card["cv_metrics_in_training"]["labels"][key]["papers"])

    assert rows(required, "pixel") == with_level < rows(plain, "pixel")
    # among papers with a level, "token" has too few negatives for a model: 5 of 7 carry it
    assert required.card["untrained_labels"]["token"].endswith(f"of {with_level} labelled papers carry it")
    assert "token" in plain.labels
    assert rows(required, "test-time") == rows(plain, "test-time")


TRICKY_TEXTS = [
    "xharmonic mean of harmonic meanx",  # `rest` first matches inside a word, then not at all
    "the harmonicmean and then the harmonic  mean.",
    "base-to-novel",  # at the very start
    "cross-dataset|",
    "unbase to novel, then base to novel",
    "11 datasets and eleven   image classification datasets",
    "",
    "novel",
    "]novel |novel seen reseen",
]


def test_a_word_start_cue_answers_as_the_regex_does(training: TrainingSet) -> None:
    """Cues led by `\\b` are searched through their rest, then tried where that starts
    (`cues._word_start_matcher`): every shipped cue pattern, and patterns with groups,
    classes and alternatives, must give `re.search`'s answer on real and awkward texts."""
    from vpt_tracker.classify import cues as cues_module

    patterns = {
        pattern
        for preset in ("awesome-vpt", "prompt-adaptation", "generalizable-vlm")
        for cues in [load_preset(preset).cues]
        for index, (_, first) in enumerate(cues.patterns)
        for pattern in (first, *cues.requires[index])
    } | {
        r"\bharmonic\s+mean\b",
        r"\b(?:a|b)|\bnovel",  # an alternative outside any group: searched as written
        r"\b[(|]?novel\b",  # `|` and `(` in a class are no alternative or group
        r"\b\(?base\b",
        r"\bx?",  # the rest may match the empty string
        r"\b(?:[]|]?novel|(?:cross|base)[\s-]*(?:to|dataset))\b",  # a group, a class with `]`, `|`
        r"\b(?:[^]a]ovel|harmonic)\s",
        r"\b(?:un|re)?seen\b|base",  # a repeated leading group
        "\\b(?x:harmonic  # a comment (a | bar\n |base)",  # verbose: searched as written
    }
    texts = [e.text().lower() for e in training.relevant[:40] + training.unlabeled[:200]] + TRICKY_TEXTS
    led = [p for p in patterns if cues_module._word_led(p)]
    assert len(led) >= 10  # most shipped cues take the word-start path
    assert r"\b(?:a|b)|\bnovel" not in led and not [p for p in led if "(?x" in p]
    for pattern in sorted(patterns):
        matches = cues_module._matcher(pattern)
        if pattern in led:
            assert matches.__qualname__.startswith("_word_start_matcher"), pattern
        expected = [re.search(pattern, text) is not None for text in texts]
        assert [matches(text) for text in texts] == expected, pattern
        assert any(expected) or pattern == r"\b\(?base\b", pattern  # each pattern is exercised


def test_a_pattern_is_split_only_at_its_own_alternatives() -> None:
    from vpt_tracker.classify.cues import _branches, _leads

    assert _branches(r"\ba|\bb") == [r"\ba", r"\bb"]
    assert _branches(r"\b(?:a|b)") == [r"\b(?:a|b)"]
    assert _branches(r"\b[|(]a|[]|]|[^]|]") == [r"\b[|(]a", "[]|]", "[^]|]"]
    assert _branches(r"\b\(a\|b") == [r"\b\(a\|b"]
    assert _leads(r"(?:11|eleven)\s+(?:[a-z-]+\s+){0,3}datasets") == [
        r"11\s+(?:[a-z-]+\s+){0,3}datasets",
        r"eleven\s+(?:[a-z-]+\s+){0,3}datasets",
    ]
    assert _leads(r"(?:a|(?:b|c)d)e") == ["ae", "(?:b|c)de"]
    assert _leads(r"(?:un|re)?seen") == [r"(?:un|re)?seen"]  # a repeated group is not split


def test_cues_that_cannot_share_one_search_still_answer_as_the_regex_does() -> None:
    """Three or more label cues are first tried as one combined search. A cue in verbose mode,
    `(?x) …`, compiled on its own (so the preset loaded), but joined to the others it was a
    `re.error` ("global flags not at the start") that stopped training and scoring; and a
    back-reference `\\1` pointed at another cue's group, so that cue never fired."""
    patterns = (
        ("kind", r"(pixel|token)[\s-]+level"),
        ("verbose", "(?x) visual \\s+ prompt  # a comment"),
        ("repeated", r"\b(\w+) \1\b"),
        ("segmentation", r"\bsegment"),
    )
    texts = [
        "pixel-level visual  prompts for segmentation",
        "we we repeat a word",
        "token level prompts",
        "nothing at all",
    ]
    for chosen in (patterns, patterns[:1] + patterns[2:]):  # with the verbose cue, and without
        cues = CueSet(chosen, ("labels",))
        expected = [[re.search(p, text) is not None for _, p in chosen] for text in texts]
        assert (cues.matrix(texts).toarray() == np.array(expected)).all(), [name for name, _ in chosen]
        assert expected[1][-2] and expected[0][-1]  # the back-reference fires


def test_a_cue_that_backtracks_exponentially_is_refused() -> None:
    """As for a keyword rule: a preset cue `(\\w+\\s?)+:` is read on every candidate's text
    (every paper's, for relevance cues), and one abstract without a colon hung training."""
    with pytest.raises(UserError, match=r"^cue 'words': a repeated group holds a repeat"):
        CueSet.from_config({"patterns": {"ok": "prompt", "words": r"(\w+\s?)+:"}})
    with pytest.raises(UserError, match=r"^cue 'both': a repeated group holds a repeat"):
        CueSet.from_config({"patterns": {"both": {"all": ["prompt", r"(?:[a-z]+-?)+:"]}}})
    assert CueSet.from_config({"patterns": {"words": r"(?:\w+\s)+:"}}).patterns  # separated rounds
