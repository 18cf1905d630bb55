"""The models on real papers: ranking, thresholds, calibration, persistence, odd input."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vpt_tracker.classify import model as model_module
from vpt_tracker.classify.calibration import f1_threshold, recall_threshold
from vpt_tracker.classify.cues import CueSet
from vpt_tracker.classify.data import Example, TrainingSet
from vpt_tracker.classify.model import (
    CARD_FILE,
    MIN_POSITIVES,
    MODEL_FILE,
    CatalogueModel,
    Hyper,
    make_vectorizer,
)
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.errors import UserError

from .conftest import VPT_LABELS, load


def test_held_out_relevant_papers_outrank_unlabeled(
    relevant: list[Example], unlabeled: list[Example], hyper: Hyper
) -> None:
    train_pos, test_pos = relevant[::2], relevant[1::2]
    train_neg, test_neg = unlabeled[::2], unlabeled[1::2]
    model = CatalogueModel.train("half", TrainingSet(train_pos, unlabeled=train_neg), VPT_LABELS, hyper)
    pos = np.array([s.relevance for s in model.score(test_pos)])
    neg = np.array([s.relevance for s in model.score(test_neg)])
    auc = float((pos[:, None] > neg[None, :]).mean())
    assert auc > 0.9, auc
    # The threshold is a split-conformal bound for 95% recall on new papers: on unseen papers
    # it finds nearly all relevant ones. The fixture's unlabeled papers are mostly prompt and
    # CLIP papers (hard negatives), so the share queued is large, but not all of them.
    assert (pos >= model.relevance.threshold).mean() >= 0.9
    assert (neg >= model.relevance.threshold).mean() < 0.6


def test_threshold_helpers() -> None:
    probs = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    assert recall_threshold(probs, 0.95) == pytest.approx(0.1)
    assert recall_threshold(probs, 0.6) == pytest.approx(0.6)  # k = floor(0.4 * 6) = 2
    # The split-conformal order statistic, not the in-sample 95 % one: of 34 positives the
    # lowest (in-sample: the 2nd lowest), of 43 the 2nd lowest (in-sample: the 3rd lowest).
    scores = np.linspace(0.01, 0.99, 43)
    assert recall_threshold(scores[:34], 0.95) == pytest.approx(scores[0])
    assert recall_threshold(scores, 0.95) == pytest.approx(scores[1])
    y = np.array([1, 1, 0, 0, 1, 0])
    assert f1_threshold(np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1]), y) == pytest.approx(0.6)


def test_card_records_data_scheme_thresholds_and_versions(
    model: CatalogueModel, training: TrainingSet
) -> None:
    card = model.card
    assert card["data_sha256"] == training.data_hash()
    assert card["counts"]["relevant"] == 56 and card["counts"]["unlabeled"] == 400
    assert "weight 0.5" in card["scheme"]["pu_weighting"]
    assert card["thresholds"]["relevance"] == model.relevance.threshold
    assert set(card["thresholds"]["labels"]) == set(model.labels)
    assert card["versions"]["scikit-learn"]
    relevance_cv = card["cv_metrics_in_training"]["relevance"]
    assert relevance_cv["recall_at_threshold"] >= 0.95
    # Labels with fewer than 3 examples get no model, and the card says why.
    assert "robustness" in card["untrained_labels"] and "robustness" not in model.labels


def test_labels_and_base_to_novel_are_proposed(model: CatalogueModel, training: TrainingSet) -> None:
    assert {"multi-modality", "test-time"} <= set(model.labels)
    scores = model.score(training.relevant)
    proposed = [set(s.proposed_labels) for s in scores]
    truth = [set(e.labels) & set(model.labels) for e in training.relevant]
    hits = sum(len(p & t) for p, t in zip(proposed, truth, strict=True))
    assert hits >= 0.5 * sum(len(t) for t in truth)  # fitted on these, so most are recovered
    assert model.base_to_novel is not None
    novel = model.score(training.novel_positive + training.novel_negative)
    b2n = np.array([s.base_to_novel for s in novel])
    n_pos = len(training.novel_positive)
    assert b2n[:n_pos].mean() > b2n[n_pos:].mean() + 0.2


def test_the_flag_is_the_probability_at_the_models_own_threshold(
    model: CatalogueModel, training: TrainingSet, relevant: list[Example]
) -> None:
    assert model.base_to_novel is not None
    threshold = model.base_to_novel.threshold
    scores = model.score(training.novel_positive + training.novel_negative)
    assert all(
        s.base_to_novel is not None and s.base_to_novel_flag == (s.base_to_novel >= threshold) for s in scores
    )
    assert 0 < sum(bool(s.base_to_novel_flag) for s in scores) < len(scores)
    without = replace(model, base_to_novel=None)
    assert {(s.base_to_novel, s.base_to_novel_flag) for s in without.score(relevant[:5])} == {(None, None)}


def test_base_to_novel_learns_from_unlabeled_papers_too(
    training: TrainingSet, hyper: Hyper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Domain-generalization papers that are not about prompts are not flagged.

    Against other prompt-learning papers alone, "domain generalization" is a base-to-novel
    word (CoOp-style papers report both). `novel_lookalikes.jsonl` holds real papers with it in
    the title and no prompt, CLIP, base or novel in the text, none of them trained on.
    The probabilities are compared, not only the flags: with 13 positives whose out-of-fold
    probabilities spread from 0.01 to 0.98, the F1-best threshold moves with every change.
    """
    lookalikes = load("novel_lookalikes")
    cued = replace(hyper, cues=load_preset("generalizable-vlm").cues)  # its cues say "domain generalization"

    def probabilities(trained: CatalogueModel) -> list[float]:
        return [s.base_to_novel or 0.0 for s in trained.score(lookalikes)]

    with_background = CatalogueModel.train("fixture", training, VPT_LABELS, cued)
    monkeypatch.setattr(model_module, "NOVEL_BACKGROUND", 0)
    without_background = CatalogueModel.train("fixture", training, VPT_LABELS, cued)
    assert sum(probabilities(with_background)) < 0.5 * sum(probabilities(without_background))
    assert with_background.base_to_novel is not None
    threshold = with_background.base_to_novel.threshold
    assert sum(p >= threshold for p in probabilities(with_background)) <= len(lookalikes) // 4
    assert "unlabeled papers as negatives" in with_background.card["scheme"]["base_to_novel"]


def test_base_and_novel_counts_only_next_to_prompts(training: TrainingSet, hyper: Hyper) -> None:
    """The words "base and novel" decide the flag in a CLIP prompt paper, and not elsewhere.

    Open-vocabulary detectors, few-shot segmenters and class-discovery papers use the same
    words for their training classes (`base_novel_elsewhere.jsonl`); as unlabeled negatives
    they teach the model that the words alone mean little, and then it misses CLIP prompt
    papers that say base-to-novel (`base_novel_prompt.jsonl`, none of them trained on). The
    preset's `prompt-base-to-novel` cue (both together: `all = [...]`) restores them.
    """
    elsewhere = load("base_novel_elsewhere")
    prompt_papers = load("base_novel_prompt")
    store = replace(training, unlabeled=training.unlabeled + elsewhere)
    cues = load_preset("generalizable-vlm").cues
    names = [name for name, _ in cues.patterns]
    cut = names.index("prompt-base-to-novel")
    without = replace(
        cues,
        patterns=cues.patterns[:cut] + cues.patterns[cut + 1 :],
        targets=cues.targets[:cut] + cues.targets[cut + 1 :],
    )

    def flagged(cue_set: CueSet, papers: list[Example]) -> int:
        trained = CatalogueModel.train("fixture", store, VPT_LABELS, replace(hyper, cues=cue_set))
        assert trained.base_to_novel is not None
        threshold = trained.base_to_novel.threshold
        return sum((s.base_to_novel or 0.0) >= threshold for s in trained.score(papers))

    with_cue = flagged(cues, prompt_papers)
    assert with_cue >= len(prompt_papers) - 1
    assert flagged(without, prompt_papers) < with_cue
    assert flagged(cues, elsewhere) == 0


@pytest.mark.parametrize("analyzer", ["word", "word-unigrams", "char_wb"])
def test_scoring_features_equal_scikit_learns(
    model: CatalogueModel, unlabeled: list[Example], analyzer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring counts terms its own way (`Analyzed`, `_WordPairIndex`); the features must not change."""
    monkeypatch.setattr(model_module, "COUNT_BATCH", 7)  # tokens are gathered in rounds of 7 texts
    # A known bigram split across two texts is no bigram of either: a batch is counted at once.
    first, second = next(term for term in model.vectorizer.vocabulary_ if " " in term).split(" ")
    texts = [e.text() for e in unlabeled[:150]] + [
        "",
        "Ünïcödé — Prompt-Tuning  of   visual prompts; prompt tuning",
        "$\\mathbf{x}$ \\emph{prompt} tuning {\\'e}t{\\'e}",
        "one",
        f"ends with {first}",
        f"{second} starts this one",
        f"{first} {second}",
        "",
        f"{second}",
    ]
    vectorizer = model.vectorizer
    if analyzer != "word":
        kind = "char_wb" if analyzer == "char_wb" else "word"
        vectorizer = make_vectorizer(Hyper(analyzer=kind, ngram_max=1, max_features=3000))
        vectorizer.fit([e.text() for e in unlabeled])
    other = replace(model, vectorizer=vectorizer)
    expected = vectorizer.transform(texts)
    assert abs(other.features(texts) - expected).max() < 1e-6 and other.features(texts).nnz == expected.nnz


def test_models_sharing_one_count_score_as_each_alone(
    model: CatalogueModel, unlabeled: list[Example], relevant: list[Example]
) -> None:
    """Catalogues whose vectorizers tokenise alike are counted once per batch, over the union
    of their vocabularies; each must still get exactly its own features and scores."""
    narrow = make_vectorizer(Hyper(max_features=2_000))
    narrow.fit([e.text() for e in relevant + unlabeled[:100]])
    columns = len(narrow.vocabulary_) + len(model.cues.columns_for("relevance"))
    weights = replace(model.relevance, coef=np.linspace(-1.0, 1.0, columns))
    other = replace(model, vectorizer=narrow, relevance=weights, labels={}, base_to_novel=None)
    assert set(narrow.vocabulary_) - set(model.vectorizer.vocabulary_)  # the union is wider than either
    papers = unlabeled[:80] + relevant[:20]
    together = CatalogueModel.score_many([(model, None), (other, None)], papers, batch=37)
    assert together == [model.score(papers), other.score(papers)]
    assert len({s.relevance for s in together[1]}) > 10  # the second model's own weights were read


def test_save_load_gives_the_same_scores(
    model: CatalogueModel, tmp_path: Path, unlabeled: list[Example]
) -> None:
    model.save(tmp_path / "m")
    loaded = CatalogueModel.load(tmp_path / "m")
    assert [s.relevance for s in loaded.score(unlabeled[:50])] == [
        s.relevance for s in model.score(unlabeled[:50])
    ]
    assert (tmp_path / "m" / "model.pkl.xz").stat().st_size < 2_000_000
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_save_leaves_another_writers_temporary_files_alone(model: CatalogueModel, tmp_path: Path) -> None:
    """Every save wrote `model.pkl.xz.tmp` and `model-card.json.tmp`: a second writer of the
    same folder (a second `classify train`, or `make models`) overwrote the first one's files
    half-way and renamed them in as its own. Each save now has temporary names of its own."""
    folder = tmp_path / "m"
    folder.mkdir()
    theirs = {folder / f"{MODEL_FILE}.tmp": b"another writer's model", folder / f"{CARD_FILE}.tmp": b"{}"}
    for path, data in theirs.items():
        path.write_bytes(data)
    model.save(folder)
    assert {path: path.read_bytes() for path in theirs} == theirs
    assert CatalogueModel.load(folder).labels.keys() == model.labels.keys()
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [CARD_FILE, MODEL_FILE, *(p.name for p in theirs)]
    )


def test_save_syncs_each_file_before_its_rename_and_the_folder_after(
    model: CatalogueModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename can reach the disk before the data it names: after a power loss the model or
    its card was empty or partial. Each temporary file is now fsynced before it is renamed
    in, and the folder after the renames (so that they last)."""
    folder = tmp_path / "m"
    model.save(folder)  # the folder exists: its inode is known
    events: list[tuple[str, int]] = []
    fsync, rename = os.fsync, Path.replace

    def record_fsync(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def record_replace(self: Path, target: str | os.PathLike[str]) -> Path:
        events.append(("replace", self.stat().st_ino))
        return rename(self, target)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(Path, "replace", record_replace)
    model.save(folder)
    replaced = [inode for kind, inode in events if kind == "replace"]
    assert len(replaced) == 2
    for inode in replaced:
        assert events.index(("fsync", inode)) < events.index(("replace", inode))
    last_rename = max(index for index, (kind, _) in enumerate(events) if kind == "replace")
    assert ("fsync", folder.stat().st_ino) in events[last_rename:]
    assert CatalogueModel.load(folder).labels.keys() == model.labels.keys()


def test_model_from_another_sklearn_version_says_retrain(model: CatalogueModel, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    card_path = tmp_path / "m" / "model-card.json"
    card = json.loads(card_path.read_text())
    card["versions"]["scikit-learn"] = "0.24.2"
    card_path.write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"trained with scikit-learn 0\.24\.2.*retrain with"):
        CatalogueModel.load(tmp_path / "m")


def test_missing_or_broken_model_is_a_user_error(model: CatalogueModel, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no trained model"):
        CatalogueModel.load(tmp_path / "nothing")
    model.save(tmp_path / "m")
    (tmp_path / "m" / "model.pkl.xz").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="retrain"):
        CatalogueModel.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (b"[]", "is not a JSON object"),
        (b'"a model"', "is not a JSON object"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (None, "has no table of library versions"),  # "versions" is not a table
    ],
)
def test_a_card_that_is_not_a_model_card_says_retrain(
    model: CatalogueModel, tmp_path: Path, card: bytes | None, message: str
) -> None:
    """A card that is valid JSON but no object, or not UTF-8, was an AttributeError or a
    UnicodeDecodeError traceback from `score`, `explain`, `enqueue` and the nightly run."""
    model.save(tmp_path / "m")
    card_path = tmp_path / "m" / CARD_FILE
    if card is None:
        data = json.loads(card_path.read_text())
        data["versions"] = "scikit-learn"
        card = json.dumps(data).encode()
    card_path.write_bytes(card)
    with pytest.raises(UserError, match=rf"model card \S*model-card\.json {message}.*retrain"):
        CatalogueModel.load(tmp_path / "m")


@pytest.mark.parametrize("unreadable", [MODEL_FILE, CARD_FILE])
def test_a_model_that_cannot_be_read_is_one_line(
    model: CatalogueModel, tmp_path: Path, unreadable: str
) -> None:
    """A model or card file without read permission was a PermissionError traceback, exit 1."""
    from unprivileged import run_cli

    model.save(tmp_path / "awesome-vpt")
    (tmp_path / "awesome-vpt" / unreadable).chmod(0)
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"id": 1, "title": "Visual prompt tuning", "abstract": "Prompts."}\n')
    result = run_cli(
        "classify", "score", "--catalogue", "awesome-vpt", "--input", str(papers), "--output", "-",
        env={"VPT_CLASSIFIERS_DIR": str(tmp_path), "VPT_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr == (
        f"Error: cannot read {tmp_path / 'awesome-vpt' / unreadable}: Permission denied; retrain the model "
        "or fix its permissions\n"
    )


@pytest.mark.parametrize("new_file", [MODEL_FILE, CARD_FILE])
def test_a_model_beside_another_models_card_says_retrain(
    model: CatalogueModel, tmp_path: Path, new_file: str
) -> None:
    """What a save killed between its two renames leaves: one file of the new model, the other
    of the old one. Both halves are refused (`test_crash.py` kills a real `classify train`)."""
    model.save(tmp_path / "old")
    replace(model, labels={}, card=dict(model.card)).save(tmp_path / "new")
    (tmp_path / "old" / new_file).write_bytes((tmp_path / "new" / new_file).read_bytes())
    with pytest.raises(
        UserError,
        match=r"model\.pkl\.xz is not the model its card describes \(model-card\.json records another "
        r"model_sha256: .*\); retrain with `vpt-tracker classify train fixture`",
    ):
        CatalogueModel.load(tmp_path / "old")
    assert CatalogueModel.load(tmp_path / "new").labels == {}


def test_a_card_without_the_model_hash_says_retrain(model: CatalogueModel, tmp_path: Path) -> None:
    """A card that records no model_sha256 cannot say which model it describes."""
    model.save(tmp_path / "m")
    card_path = tmp_path / "m" / CARD_FILE
    card = json.loads(card_path.read_text())
    del card["model_sha256"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"records no model_sha256.*retrain with"):
        CatalogueModel.load(tmp_path / "m")


def test_a_model_that_cannot_be_saved_is_a_user_error(model: CatalogueModel, tmp_path: Path) -> None:
    """A classifiers_dir under a file, a full disk, a folder where the model file goes: each was
    an OSError traceback at the end of training, and a failed rename left `*.tmp` files."""
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match=r"^cannot save the model in \S*a-file/m: Not a directory$"):
        model.save(tmp_path / "a-file" / "m")
    model.save(tmp_path / "m")
    card = (tmp_path / "m" / CARD_FILE).read_bytes()
    (tmp_path / "m" / MODEL_FILE).unlink()
    (tmp_path / "m" / MODEL_FILE).mkdir()
    (tmp_path / "m" / MODEL_FILE / "x").write_text("x")
    with pytest.raises(UserError, match=r"^cannot save the model in \S*/m: "):
        model.save(tmp_path / "m")
    assert sorted(path.name for path in (tmp_path / "m").iterdir()) == [CARD_FILE, MODEL_FILE]
    assert (tmp_path / "m" / CARD_FILE).read_bytes() == card


@pytest.mark.parametrize(
    ("kept", "said"),
    [(MIN_POSITIVES - 1, "7 relevant papers with abstracts"), (1, "1 relevant paper with an abstract")],
)
def test_too_few_positives_names_the_minimum(
    relevant: list[Example], unlabeled: list[Example], kept: int, said: str
) -> None:
    few = TrainingSet([*relevant[:kept], Example("No abstract at all")], unlabeled=unlabeled)
    with pytest.raises(UserError, match=f"has {said}; at least 8 are needed to train"):
        CatalogueModel.train("thin", few, VPT_LABELS)


def test_too_few_negatives_names_the_minimum(relevant: list[Example], unlabeled: list[Example]) -> None:
    few = TrainingSet(relevant, unlabeled=unlabeled[:1])
    with pytest.raises(UserError, match="has 1 negative or unlabeled paper; at least 8 are needed to train"):
        CatalogueModel.train("thin", few, VPT_LABELS)


def test_title_only_papers_are_low_confidence_and_odd_text_does_not_crash(model: CatalogueModel) -> None:
    odd = [
        Example("Visual Prompt Tuning for Vision Transformers"),
        Example(
            "Fran\\c{c}ois's $\\mathcal{L}_{2}$ \\textbf{prompts} — ünïcödé 🚀 \u200b\x00",
            "∑ ∞ \ud83d lone surrogate",
        ),
        Example("", ""),
        Example("A title", "x" * 100_000),
    ]
    scores = model.score(odd)
    assert [s.low_confidence for s in scores] == [True, False, True, False]
    assert all(0.0 <= s.relevance <= 1.0 for s in scores)
    # scored from the title: a prompt-tuning title outranks an off-topic one
    assert (
        scores[0].relevance
        > model.score([Example("Gaussian splatting for city-scale driving scenes")])[0].relevance
    )


def test_explain_names_the_terms_that_moved_the_score(model: CatalogueModel, relevant: list[Example]) -> None:
    example = next(e for e in relevant if "visual prompt" in e.text().lower())
    explanation = model.explain(example, top=5)
    assert explanation.probability == pytest.approx(model.score([example])[0].relevance, abs=1e-3)
    assert 0 < len(explanation.up) <= 5 and all(w > 0 for _, w in explanation.up)
    assert all(w < 0 for _, w in explanation.down)
    up_terms = {term for term, _ in explanation.up}
    assert up_terms & {"vp", "prompt", "prompting", "visual prompt", "prompt tuning", "tuning"}, up_terms


def test_a_label_learns_only_from_papers_whose_source_can_express_it(training: TrainingSet) -> None:
    """Papers of a list without a test-time section are not test-time negatives (`label_scope`).

    Half of the test-time papers are marked as coming from such a list, without the label:
    read as negatives they drown the label; out of scope they are left out of its model.
    """
    test_time = [e for e in training.relevant if "test-time" in e.labels]
    silent = {e.key() for e in test_time[: len(test_time) // 2]}
    relevant = [
        replace(e, labels=(), label_scope=frozenset({"multi-modality"})) if e.key() in silent else e
        for e in training.relevant
    ]
    unscoped = [replace(e, label_scope=None) for e in relevant]
    hyper = Hyper(folds=3, seed=0, max_features=8000)
    scoped_model = CatalogueModel.train("scoped", replace(training, relevant=relevant), ["test-time"], hyper)
    naive_model = CatalogueModel.train("naive", replace(training, relevant=unscoped), ["test-time"], hyper)
    held = [e for e in test_time if e.key() in silent]
    scoped = [s.labels["test-time"] for s in scoped_model.score(held)]
    naive = [s.labels["test-time"] for s in naive_model.score(held)]
    assert sum(scoped) > sum(naive)
    # the label was trained on fewer papers: the out-of-scope ones are neither yes nor no
    assert scoped_model.card["cv_metrics_in_training"]["labels"]["test-time"]["support"] == len(
        test_time
    ) - len(silent)


def test_scoring_in_worker_processes_gives_the_same_scores(
    model: CatalogueModel, unlabeled: list[Example], relevant: list[Example]
) -> None:
    """`jobs > 1` ships the models to the workers pickled once (`_PackedModels`) and each
    worker keeps the latest run's models: a second run with other models must not be scored
    with the first one's."""
    packed = model_module._PackedModels.of([(model, None)])
    first = packed.unpack()
    assert packed.unpack() is first  # unpickled once per process, not once per batch
    assert model_module._PackedModels.of([(model, None)]).unpack() is not first  # a new run, anew
    papers = unlabeled[:60] + relevant[:15]
    assert model.score(papers, batch=20, jobs=2) == model.score(papers)
    weights = replace(model.relevance, coef=-model.relevance.coef)
    flipped = replace(model, relevance=weights)
    expected = flipped.score(papers)
    assert [s.relevance for s in expected] != [s.relevance for s in model.score(papers)]
    assert flipped.score(papers, batch=20, jobs=2) == expected
