"""One catalogue's models: relevance, taxonomy labels and the base-to-novel flag.

Every model is a TF-IDF + logistic-regression pair. Linear models are chosen on purpose:
they train in seconds on tens of thousands of abstracts, score hundreds of thousands in a
minute, and their weights *explain* a score term by term (the review UI shows them).

Calibration and thresholds come from one K-fold pass per model: the out-of-fold decision
values fit a Platt sigmoid (so probabilities are calibrated on data the model did not see)
and the relevance threshold is a split-conformal bound that keeps the catalogue's recall
target on new papers (`recall_threshold`). The final model is then refit on all the data.
Those statistics live in `calibration.py`; this module assembles them into one catalogue's
models, scores with them, explains their scores and saves them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import lzma
import os
import pickle
import platform
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import IO, Any

import joblib
import numpy as np
import scipy
import sklearn
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from threadpoolctl import threadpool_limits

from vpt_tracker.classify import WORD_TOKEN_PATTERN

# `LinearScorer` is imported here for the saved models too: their pickles name it as
# `vpt_tracker.classify.model.LinearScorer`, from before it moved to `calibration`.
from vpt_tracker.classify.calibration import (
    FloatArray,
    LinearScorer,
    f1_threshold,
    fit_calibrated,
    prf,
    recall_threshold,
)
from vpt_tracker.classify.cues import CueReader, CueSet
from vpt_tracker.classify.data import Example, TrainingSet, sample
from vpt_tracker.classify.rules import RuleSet
from vpt_tracker.classify.taxonomy import Preset
from vpt_tracker.errors import UserError
from vpt_tracker.files import sync_folder, temporary_file
from vpt_tracker.locks import folder_locked
from vpt_tracker.models import Scores
from vpt_tracker.wording import plural

MIN_POSITIVES = 8  # fewer relevant examples with abstracts cannot be cross-validated honestly
MIN_LABEL_EXAMPLES = 3  # a label needs this many positive and negative examples to get a model
MIN_NOVEL_EXAMPLES = 5  # per class, for the base-to-novel model
UNLABELED_WEIGHT = 0.5  # PU weighting: an unreviewed paper counts half a reviewed negative
TITLE_WEIGHT = 0.5  # a labelled entry known by its title alone counts half a paper with an abstract
COUNT_BATCH = 2_000  # texts whose tokens are held as Python ints at once (36 bytes each)
NOVEL_BACKGROUND = 2_000  # unlabeled papers that are also base-to-novel negatives (see `_train`)
MODEL_FILE = "model.pkl.xz"
CARD_FILE = "model-card.json"
MODEL_HASH_KEY = "model_sha256"  # the card's SHA-256 of the model file it describes (see `save`)
FORMAT_VERSION = 3  # 3: cues may feed the label models; 2: xz-compressed pickle; 1: joblib


def relevant_with_abstracts(count: int) -> str:
    """What `train` and `evaluate` count when they refuse: "1 relevant paper with an abstract"
    (it said "1 relevant papers with abstracts" to a new catalogue of one enriched entry)."""
    return plural(count, "relevant paper with an abstract", "relevant papers with abstracts")


@dataclass(frozen=True)
class Hyper:
    """The knobs of one training run; all of them go into the model card."""

    folds: int = 5
    seed: int = 0
    recall_target: float = 0.95
    c_relevance: float = 4.0
    c_labels: float = 4.0
    c_novel: float = 4.0
    max_features: int = 40_000
    ngram_max: int = 2
    analyzer: str = "word"  # "word" or "char_wb"
    cues: CueSet = field(default_factory=CueSet)  # fixed phrase features (the preset's `[cues]`)
    # Label groups of which an entry carries at most one (the preset's `exclusive_groups`,
    # and its required groups).
    exclusive: tuple[tuple[str, ...], ...] = ()
    # Label groups of which an entry carries exactly one (the preset's `required_groups`).
    required: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def for_preset(cls, preset: Preset | None, **knobs: Any) -> Hyper:
        """`knobs` plus what a catalogue's preset sets: its cue features and label groups."""
        if preset is None:
            return cls(**knobs)
        return cls(cues=preset.cues, exclusive=preset.exclusive, required=preset.required, **knobs)

    def describe(self) -> dict[str, Any]:
        """The knobs as JSON-able data, for the model card."""
        return {k: v for k, v in self.__dict__.items() if k != "cues"} | {"cues": self.cues.describe()}


def make_vectorizer(hyper: Hyper) -> TfidfVectorizer:
    if hyper.analyzer == "char_wb":
        return TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(3, 5),
            min_df=3,
            max_df=0.5,
            sublinear_tf=True,
            max_features=hyper.max_features,
            strip_accents="unicode",
            dtype=np.float32,
        )
    return TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, hyper.ngram_max),
        min_df=2,
        max_df=0.5,
        sublinear_tf=True,
        max_features=hyper.max_features,
        strip_accents="unicode",
        dtype=np.float32,
        token_pattern=WORD_TOKEN_PATTERN,
    )


@dataclass
class Explanation:
    """Why a paper got a score (relevance, or base-to-novel): the terms that pushed it up and down."""

    probability: float
    threshold: float
    up: list[tuple[str, float]]
    down: list[tuple[str, float]]
    low_confidence: bool = False


@dataclass(frozen=True)
class Analyzed:
    """Texts tokenised by one analyzer and counted over a list of terms.

    Any model whose vectorizer has the same analyzer settings, and whose vocabulary is among
    `terms`, turns this into its features by mapping the terms onto its vocabulary: one
    sparse product instead of tokenising again. Terms outside every vocabulary (most
    bigrams) are dropped while counting, so the matrix stays small.
    """

    terms: list[str]
    counts: sparse.csr_matrix  # texts x terms, raw counts

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer, texts: Sequence[str], terms: Sequence[str] = ()) -> Analyzed:
        """Count `texts` over `terms` (default: the vectorizer's own vocabulary)."""
        terms = tuple(terms) or tuple(vectorizer.vocabulary_)
        word_pairs = vectorizer.analyzer == "word" and vectorizer.ngram_range == (1, 2)
        if word_pairs and vectorizer.stop_words is None:
            counts = _WordPairIndex.of(terms).count(vectorizer, texts)
        else:  # other analyzers go through scikit-learn's own
            analyze, lookup = vectorizer.build_analyzer(), {term: i for i, term in enumerate(terms)}.get
            indices: list[int] = []
            indptr = [0]
            for text in texts:
                indices += [index for index in map(lookup, analyze(text)) if index is not None]
                indptr.append(len(indices))
            counts = sparse.csr_matrix(
                (np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int64), indptr),
                shape=(len(texts), len(terms)),
            )
            counts.sum_duplicates()
        return cls(list(terms), counts)


class _WordPairIndex:
    """Terms of one or two words, indexed so that numpy finds them in a whole batch of texts.

    scikit-learn builds every bigram of a text as a string and looks it up, in Python; most
    are in no vocabulary. Here each token becomes a word number by one C-level `map` over
    a dict, and a bigram is a pair of numbers: numpy finds the known pairs of the whole
    batch by one sorted search. Scoring 300k papers spent 0.45 of its time on those
    lookups (the tokenising regex is the rest). The terms counted are the same.
    """

    def __init__(self, terms: Sequence[str]) -> None:
        self.word_ids: dict[str, int] = {}
        unigrams: list[tuple[int, int]] = []  # (word, term)
        bigrams: list[tuple[int, int, int]] = []  # (first word, second word, term)
        for index, term in enumerate(terms):
            ids = [self.word_ids.setdefault(word, len(self.word_ids)) for word in term.split(" ")]
            if len(ids) == 1:
                unigrams.append((ids[0], index))
            elif len(ids) == 2:  # (word bigram vocabularies hold nothing longer)
                bigrams.append((ids[0], ids[1], index))
        self.terms = len(terms)
        words = max(1, len(self.word_ids))
        self.unigram_term = np.full(words, -1, dtype=np.int32)
        for word, index in unigrams:
            self.unigram_term[word] = index
        pairs = np.array(bigrams, dtype=np.int64).reshape(-1, 3)
        codes = pairs[:, 0] * words + pairs[:, 1]
        order = np.argsort(codes)
        self.starts, self.ends = np.zeros(words, dtype=bool), np.zeros(words, dtype=bool)
        self.starts[pairs[:, 0]], self.ends[pairs[:, 1]] = True, True
        self.bigram_codes, self.bigram_term = codes[order], pairs[order, 2].astype(np.int32)

    @classmethod
    @functools.lru_cache(maxsize=4)
    def of(cls, terms: tuple[str, ...]) -> _WordPairIndex:
        """One index per term list (built in ~0.1 s; each batch of a run reuses it)."""
        return cls(terms)

    def count(self, vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sparse.csr_matrix:
        """texts x terms raw counts: the uni- and bigrams of `vectorizer`'s tokens."""
        preprocess, tokenize = vectorizer.build_preprocessor(), vectorizer.build_tokenizer()
        word_id, unknown = self.word_ids.get, repeat(-1)
        parts: list[NDArray[np.int32]] = []
        lengths: list[int] = []
        for start in range(0, len(texts), COUNT_BATCH):
            ids: list[int] = []
            for text in texts[start : start + COUNT_BATCH]:
                before = len(ids)
                ids += map(word_id, tokenize(preprocess(text)), unknown)
                lengths.append(len(ids) - before)
            parts.append(np.fromiter(ids, dtype=np.int32, count=len(ids)))
        word = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        row = np.repeat(np.arange(len(texts), dtype=np.int32), np.asarray(lengths, dtype=np.int64))
        known = word >= 0
        unigram = np.where(known, self.unigram_term[np.maximum(word, 0)], -1)
        # A bigram is two neighbouring words of one text that start and end some known bigram.
        first, second = word[:-1], word[1:]
        paired = np.flatnonzero(
            known[:-1]
            & known[1:]
            & self.starts[np.maximum(first, 0)]
            & self.ends[np.maximum(second, 0)]
            & (row[:-1] == row[1:])
        )
        codes = first[paired].astype(np.int64) * len(self.unigram_term) + second[paired]
        at = np.minimum(np.searchsorted(self.bigram_codes, codes), max(0, len(self.bigram_codes) - 1))
        found = self.bigram_codes[at] == codes if len(self.bigram_codes) else np.zeros(len(codes), dtype=bool)
        rows = np.concatenate([row[unigram >= 0], row[paired[found]]])
        columns = np.concatenate([unigram[unigram >= 0], self.bigram_term[at[found]]])
        return sparse.csr_matrix(  # from (row, column) pairs: a repeated term is summed
            (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(texts), self.terms)
        )


@dataclass
class CatalogueModel:
    """The trained models of one catalogue (or one preset's default)."""

    name: str
    vectorizer: TfidfVectorizer
    relevance: LinearScorer
    labels: dict[str, LinearScorer] = field(default_factory=dict)
    base_to_novel: LinearScorer | None = None
    card: dict[str, Any] = field(default_factory=dict)
    cues: CueSet = field(default_factory=CueSet)
    exclusive: tuple[tuple[str, ...], ...] = ()  # see `Hyper.exclusive`
    required: tuple[tuple[str, ...], ...] = ()  # see `Hyper.required`

    # ---- training -------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        name: str,
        data: TrainingSet,
        label_keys: Sequence[str],
        hyper: Hyper | None = None,
        *,
        with_novel: bool = True,
    ) -> CatalogueModel:
        """Fit all models of a catalogue; a UserError says why when the data is too thin."""
        # One BLAS/OpenMP thread: many small solver steps are far slower with threads that
        # spin against each other (and against other processes) on a small machine.
        with threadpool_limits(limits=1):
            return cls._train(name, data, label_keys, hyper or Hyper(), with_novel=with_novel)

    @classmethod
    def _train(
        cls, name: str, data: TrainingSet, label_keys: Sequence[str], hyper: Hyper, *, with_novel: bool
    ) -> CatalogueModel:
        relevant = [e.silent_on(hyper.required, label_keys) for e in data.relevant if e.has_abstract]
        if len(relevant) < MIN_POSITIVES:
            # Accepted papers without an abstract are not among them (`TrainingSet`), and
            # `catalogue enrich` fills only the entries': say so, or the count looks wrong.
            accepted = data.decided_without_abstract.get("accepted", 0)
            until = (
                "it counts once its abstract is" if accepted == 1 else "they count once their abstracts are"
            )
            waiting = (
                f"; {plural(accepted, 'accepted paper')} without an abstract: {until} stored"
                if accepted
                else ""
            )
            raise UserError(
                f"catalogue {name!r} has {relevant_with_abstracts(len(relevant))}; at least "
                f"{MIN_POSITIVES} are needed to train "
                f"(run `vpt-tracker catalogue enrich` or accept more papers){waiting}"
            )
        negatives = data.rejected + data.unlabeled
        if len(negatives) < MIN_POSITIVES:
            raise UserError(
                f"catalogue {name!r} has {plural(len(negatives), 'negative or unlabeled paper')}; "
                f"at least {MIN_POSITIVES} are needed to train"
            )
        started = datetime.now(UTC)
        vectorizer = make_vectorizer(hyper)
        corpus = [e.text() for e in relevant + negatives] + [
            e.evidence_text() for e in data.novel_positive + data.novel_negative
        ]
        vectorizer.fit(corpus)
        # The fitted vectorizer keeps every pruned term in `stop_words_`: megabytes of no use.
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_
        texts = [e.text() for e in relevant + negatives]
        tfidf = vectorizer.transform(texts).tocsr()
        features = hyper.cues.extend("relevance", tfidf, texts)
        y = np.array([1] * len(relevant) + [0] * len(negatives))
        base = np.array(
            [1.0] * (len(relevant) + len(data.rejected)) + [UNLABELED_WEIGHT] * len(data.unlabeled)
        )
        relevance, oof = fit_calibrated(features, y, hyper.c_relevance, hyper.folds, hyper.seed, base)
        relevance.threshold = recall_threshold(oof[y == 1], hyper.recall_target)
        metrics: dict[str, Any] = {"relevance": _relevance_oof_metrics(oof, y, relevance.threshold)}

        label_models: dict[str, LinearScorer] = {}
        skipped: dict[str, str] = {}
        label_features = hyper.cues.extend("labels", tfidf[: len(relevant)], texts[: len(relevant)])
        # The list's labelled entries that have no abstract teach the labels from their titles:
        # locally they outnumber the ones with an abstract (64 to 12 for generalizable-vlm),
        # and they are the list's own recent choices, where the abstracts found are mostly of
        # older papers (generalizable-vlm's 2024+ entries carry Image-Text two to one).
        titled = [e.silent_on(hyper.required, label_keys) for e in data.entries_without_abstract]
        if titled:
            title_texts = [e.text() for e in titled]
            title_features = hyper.cues.extend(
                "labels", vectorizer.transform(title_texts).tocsr(), title_texts
            )
            label_features = sparse.vstack([label_features, title_features]).tocsr()
        label_examples = relevant + titled
        label_weights = np.array([1.0] * len(relevant) + [TITLE_WEIGHT] * len(titled))
        label_metrics: dict[str, Any] = {}
        for key in label_keys:
            # Only papers whose source can say yes or no about this label (`Example.label_scope`).
            rows = np.array([i for i, e in enumerate(label_examples) if e.knows_label(key)], dtype=np.int64)
            target = np.array([key in label_examples[i].labels for i in rows], dtype=int)
            if target.sum() < MIN_LABEL_EXAMPLES or (1 - target).sum() < MIN_LABEL_EXAMPLES:
                skipped[key] = f"{int(target.sum())} of {len(target)} labelled papers carry it"
                continue
            scorer, label_oof = fit_calibrated(
                label_features[rows], target, hyper.c_labels, hyper.folds, hyper.seed, label_weights[rows]
            )
            scorer.threshold = f1_threshold(label_oof, target)
            label_models[key] = scorer
            # `papers`: those that can say yes or no about it (`Example.knows_label`)
            label_metrics[key] = prf(label_oof >= scorer.threshold, target == 1) | {"papers": len(rows)}
        metrics["labels"] = label_metrics
        exclusive = tuple(dict.fromkeys(hyper.exclusive + hyper.required))  # exactly one is at most one

        novel: LinearScorer | None = None
        if with_novel and min(len(data.novel_positive), len(data.novel_negative)) >= MIN_NOVEL_EXAMPLES:
            # Against other prompt-learning papers alone, the model learns that "domain
            # generalization" or "unseen classes" mean base-to-novel, and flags every domain-
            # generalization paper it is shown (nested CV: 85-156 of 15,000 unlabeled papers).
            # Unlabeled papers as PU-weighted negatives teach it the population it scores
            # (a seeded sample: a store lists them in the order they were fetched).
            background = sample(data.unlabeled, NOVEL_BACKGROUND, hyper.seed)
            novel_texts = [e.evidence_text() for e in data.novel_positive + data.novel_negative + background]
            novel_features = hyper.cues.extend(
                "base_to_novel", vectorizer.transform(novel_texts).tocsr(), novel_texts
            )
            novel_y = np.array(
                [1] * len(data.novel_positive) + [0] * (len(data.novel_negative) + len(background))
            )
            novel_weights = np.array(
                [1.0] * (len(data.novel_positive) + len(data.novel_negative))
                + [UNLABELED_WEIGHT] * len(background)
            )
            novel, novel_oof = fit_calibrated(
                novel_features, novel_y, hyper.c_novel, hyper.folds, hyper.seed, novel_weights
            )
            novel.threshold = f1_threshold(novel_oof, novel_y)
            metrics["base_to_novel"] = prf(novel_oof >= novel.threshold, novel_y == 1)

        model = cls(
            name=name,
            vectorizer=vectorizer,
            relevance=relevance,
            labels=label_models,
            base_to_novel=novel,
            cues=hyper.cues,
            exclusive=exclusive,
            required=hyper.required,
        )
        model.card = {
            "format": FORMAT_VERSION,
            "name": name,
            "trained_at": started.isoformat(timespec="seconds"),
            "training_seconds": round((datetime.now(UTC) - started).total_seconds(), 2),
            "data_sha256": data.data_hash(),
            "counts": data.counts() | {"vocabulary": len(vectorizer.vocabulary_)},
            "hyperparameters": hyper.describe(),
            "scheme": {
                "features": f"TF-IDF ({hyper.analyzer} n-grams) over title + abstract + arXiv comment",
                "relevance": "logistic regression; positives = entries with abstracts + accepted decisions",
                "pu_weighting": (
                    f"unlabeled papers are negatives with weight {UNLABELED_WEIGHT} (rejected: 1.0), "
                    "then both classes balanced (weighted biased-PU scheme)"
                ),
                "calibration": f"Platt sigmoid fit on {hyper.folds}-fold out-of-fold decision values",
                "relevance_threshold": (
                    "k-th lowest out-of-fold relevant score, k = floor((1 - recall_target) * (n + 1)) "
                    f"(at least 1): a split-conformal bound for recall >= {hyper.recall_target} on new papers"
                ),
                "label_thresholds": (
                    "best out-of-fold F1 per label (one-vs-rest, trained on relevant papers and, "
                    f"with weight {TITLE_WEIGHT}, on the titles of labelled entries without an abstract)"
                ),
                "exclusive_groups": (
                    "of each group in hyperparameters.exclusive, only one proposed label: the one with "
                    "the most probable"
                    + (
                        "; of each group in hyperparameters.required, that label also when none passes "
                        "its threshold (a relevant paper with none of its labels is unlabelled for them)"
                        if hyper.required
                        else ""
                    )
                    if exclusive
                    else "none"
                ),
                "labels_without_model": (
                    "proposed for a candidate whose text matches the label's cue (the preset's "
                    "`cue = ...`; see labels_proposed_by_cue), otherwise never"
                ),
                "label_scope": "a label learns only from papers whose source can express it (label_scope)",
                "base_to_novel": (
                    "logistic regression, base-to-novel papers vs other prompt-learning papers, "
                    f"plus a sample of {NOVEL_BACKGROUND} unlabeled papers as negatives "
                    f"with weight {UNLABELED_WEIGHT}"
                ),
                "cue_features": (
                    "one binary column per preset cue (regexes in hyperparameters.cues), appended to the "
                    "features of the models listed per cue in hyperparameters.cues.models_per_cue"
                    if hyper.cues.patterns
                    else "none"
                ),
            },
            "thresholds": {
                "relevance": relevance.threshold,
                "labels": {key: scorer.threshold for key, scorer in label_models.items()},
                "base_to_novel": None if novel is None else novel.threshold,
            },
            "untrained_labels": skipped,
            "labels_proposed_by_cue": {
                label: cue for label, cue in hyper.cues.label_cues if label in skipped
            },
            "cv_metrics_in_training": metrics,
            "versions": library_versions(),
        }
        return model

    # ---- scoring --------------------------------------------------------------------
    def score(
        self,
        examples: Sequence[Example],
        rules: RuleSet | None = None,
        batch: int = 20_000,
        *,
        jobs: int = 1,
        all_labels: bool = False,
    ) -> list[Scores]:
        """Scores for each example, in order. Papers without an abstract are marked low-confidence.

        The label models read their cue features only for candidates (papers at or above the
        relevance threshold, or included by a rule): only a candidate's labels are stored and
        shown, and reading a dozen cues of every paper would add a third to the cost of
        scoring. Below the threshold the label models see TF-IDF terms only, unless
        `all_labels` asks for every paper's labels as a candidate would get them (evaluation
        measures the labels of relevant papers whether or not they pass the threshold).
        """
        (scores,) = CatalogueModel.score_many(
            [(self, rules)], examples, batch, jobs=jobs, all_labels=all_labels
        )
        return scores

    @staticmethod
    def score_many(
        models: Sequence[tuple[CatalogueModel, RuleSet | None]],
        examples: Sequence[Example],
        batch: int = 20_000,
        *,
        jobs: int = 1,
        all_labels: bool = False,
    ) -> list[list[Scores]]:
        """The same papers scored by several catalogues' models: one list of scores per model.

        Tokenising is most of the cost of scoring, and it does not depend on the model's
        vocabulary, only on its analyzer settings: each text is tokenised once per distinct
        analyzer (one, for models trained with the same `Hyper`) instead of once per model.
        `jobs > 1` scores batches in that many worker processes: tokenising is pure Python,
        so processes (not threads) are what use a second core.
        """
        chunks = [examples[start : start + batch] for start in range(0, len(examples), batch)]
        if jobs > 1 and len(chunks) > 1:
            packed = _PackedModels.of(models)
            parts = joblib.Parallel(n_jobs=min(jobs, len(chunks)))(
                joblib.delayed(_score_packed_chunk)(packed, chunk, all_labels) for chunk in chunks
            )
        else:
            parts = [_score_chunk_many(models, chunk, all_labels) for chunk in chunks]
        return [[score for part in parts for score in part[index]] for index in range(len(models))]

    def features(self, texts: Sequence[str], analyzed: Analyzed | None = None) -> sparse.csr_matrix:
        """TF-IDF rows for `texts`, equal to `vectorizer.transform(texts)`.

        `analyzed` (the texts tokenised and counted once, see `Analyzed`) lets several models
        share the tokenising, which is most of the cost. Counting here instead of in
        scikit-learn also avoids its KeyError per out-of-vocabulary n-gram (most bigrams).
        """
        vectorizer = self.vectorizer
        analyzed = analyzed or Analyzed.of(vectorizer, texts)
        lookup = vectorizer.vocabulary_.get
        columns = np.fromiter((lookup(term, -1) for term in analyzed.terms), np.int64, len(analyzed.terms))
        kept = np.flatnonzero(columns >= 0)
        to_model = sparse.csr_matrix(
            (np.ones(len(kept), dtype=np.float32), (kept, columns[kept])),
            shape=(len(analyzed.terms), len(vectorizer.vocabulary_)),
        )
        counts = (analyzed.counts @ to_model).astype(vectorizer.dtype)
        if vectorizer.binary:
            counts.data[:] = 1
        weighting = TfidfTransformer(
            norm=vectorizer.norm,
            use_idf=vectorizer.use_idf,
            smooth_idf=vectorizer.smooth_idf,
            sublinear_tf=vectorizer.sublinear_tf,
        )
        if vectorizer.use_idf:
            weighting.idf_ = vectorizer.idf_
        return weighting.transform(counts, copy=False).tocsr()

    def _score_chunk(
        self,
        chunk: Sequence[Example],
        rules: RuleSet | None,
        analyzed: Analyzed | None = None,
        reader: CueReader | None = None,
        all_labels: bool = False,
    ) -> list[Scores]:
        """Scores of one batch; `analyzed` and `reader` (of `e.text()` for each paper) may be
        shared by the models that score the same batch (see `_score_chunk_many`)."""
        results: list[Scores] = []
        if chunk:
            if reader is None:
                reader = CueReader([e.text() for e in chunk])
            texts = reader.texts
            features = self.features(texts, analyzed)
            relevance = self.relevance.proba(self.cues.extend("relevance", features, reader))
            hits = [rules.match(text) for text in texts] if rules else [None] * len(texts)
            above = relevance >= self.relevance.threshold
            candidates = [
                i
                for i, hit in enumerate(hits)
                if (above[i] and hit is None) or (hit and hit.action == "include")
            ]
            labelled = list(range(len(chunk))) if all_labels else candidates
            label_features = (
                self.cues.extend("labels", features, reader, labelled) if self.labels else features
            )
            label_probs = {key: scorer.proba(label_features) for key, scorer in self.labels.items()}
            # Labels too rare for a model are proposed by their cue, for the same papers (as
            # above, only a candidate's labels are stored or shown).
            stand_ins = self.cues.stand_ins(self.labels)
            by_cue: dict[int, list[str]] = {}
            if stand_ins and labelled:
                matched = self.cues.matching_rows(reader, [column for _, column in stand_ins], labelled)
                for (key, _), rows in zip(stand_ins, matched, strict=True):
                    for row in rows:
                        by_cue.setdefault(row, []).append(key)
            novel = None
            if self.base_to_novel is not None:
                with_full = [i for i, e in enumerate(chunk) if e.full_text]
                novel_features = features
                if with_full:
                    extra = self.vectorizer.transform([chunk[i].evidence_text() for i in with_full])
                    novel_features = features.tolil()
                    novel_features[with_full] = extra
                    novel_features = novel_features.tocsr()
                evidence = CueReader([e.evidence_text() for e in chunk]) if with_full else reader
                novel = self.base_to_novel.proba(self.cues.extend("base_to_novel", novel_features, evidence))
            for i, example in enumerate(chunk):
                labels = {key: round(float(probs[i]), 4) for key, probs in label_probs.items()}
                proposed = [key for key, p in labels.items() if p >= self.labels[key].threshold]
                proposed = self.one_per_group(proposed + by_cue.get(i, []), labels)
                novel_p = None if novel is None else round(float(novel[i]), 4)
                scores = Scores(
                    relevance=round(float(relevance[i]), 4),
                    labels=labels,
                    base_to_novel=novel_p,
                    base_to_novel_flag=(
                        None
                        if novel_p is None or self.base_to_novel is None
                        else novel_p >= self.base_to_novel.threshold
                    ),
                    proposed_labels=proposed,
                    low_confidence=not example.has_abstract,
                )
                if rules:
                    hit = hits[i]
                    scores.rule = hit.describe() if hit else None
                results.append(scores)
        return results

    def one_per_group(self, proposed: list[str], probs: dict[str, float]) -> list[str]:
        """Of an exclusive group's proposed labels, only the most likely one; of a required
        group with none proposed, its most likely label with a model.

        Each label's model is one-vs-rest, so two of a group can both pass their thresholds;
        but the list shows one modality badge per entry, and two would be rendered side by
        side. The labels learned from all of the list's labelled entries (titles too), so their
        probabilities already hold the list's shares. A label proposed by its cue (no
        probability) yields to one with a model. A required group's label is what
        places an entry (prompt-adaptation has no table for a paper without a prompt kind), so
        a candidate without one could not be accepted as proposed.
        """
        for group in self.exclusive:  # none for most presets: nothing runs per paper
            rivals = [key for key in proposed if key in group]
            if len(rivals) > 1:
                best = max(rivals, key=lambda key: probs.get(key, -1.0))
                proposed = [key for key in proposed if key not in group or key == best]
        for group in self.required:
            modelled = [key for key in group if key in probs]
            if modelled and not set(group) & set(proposed):
                proposed = [*proposed, max(modelled, key=probs.__getitem__)]
        return proposed

    def should_queue(self, scores: Scores) -> bool:
        """Rules first (exclude never queues, include always does), then the threshold."""
        if scores.rule:
            return scores.rule.startswith("include:")
        return scores.relevance >= self.relevance.threshold

    def explain(self, example: Example, top: int = 10, *, of: str = "relevance") -> Explanation:
        """The terms whose TF-IDF weight times model weight moved a score most.

        `of`: "relevance", or "base_to_novel" (the flag's model, which reads the full text
        too where it was fetched, and its own cues: a maintainer sees why a paper is flagged).
        """
        scorer = {"relevance": self.relevance, "base_to_novel": self.base_to_novel}.get(of)
        if scorer is None:
            raise UserError(f"catalogue {self.name!r} has no {of} model")
        text = example.text() if of == "relevance" else example.evidence_text()
        row = self.cues.extend(of, self.vectorizer.transform([text]).tocsr(), [text])
        names = self._term_names + self.cues.names_for(of)
        contributions = [
            (str(names[j]), float(v * scorer.coef[j])) for j, v in zip(row.indices, row.data, strict=True)
        ]
        up = sorted((c for c in contributions if c[1] > 0), key=lambda c: -c[1])[:top]
        down = sorted((c for c in contributions if c[1] < 0), key=lambda c: c[1])[:top]
        return Explanation(
            probability=float(scorer.proba(row)[0]),
            threshold=scorer.threshold,
            up=[(t, round(w, 4)) for t, w in up],
            down=[(t, round(w, 4)) for t, w in down],
            low_confidence=not example.has_abstract,
        )

    @functools.cached_property
    def _term_names(self) -> list[str]:
        """The vocabulary in column order, built once per loaded model (20 ms for 40k terms):
        explaining a paper in the store explains its relevance and its base-to-novel flag."""
        return [str(name) for name in self.vectorizer.get_feature_names_out()]

    # ---- persistence ----------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """`model.pkl.xz` plus `model-card.json`, the card holding the model file's SHA-256.

        Each file is written to a temporary name and renamed over the old one, but two renames
        are not one: a process killed between them leaves a new model beside the old card (its
        thresholds, data hash and metrics), or the reverse. The card's `model_sha256` makes
        such a pair fail `load` with a "retrain" error instead of scoring silently. (One new
        directory swapped in for the old one cannot be done in one step either: a directory
        cannot be renamed over a non-empty one, and a crash between moving the old one away
        and the new one in leaves no model, where a catalogue falls back to its preset's
        default without a word.)
        """
        model_directory(directory)
        payload = {
            "format": FORMAT_VERSION,
            "sklearn": sklearn.__version__,
            "name": self.name,
            "vectorizer": self.vectorizer,
            "relevance": self.relevance,
            "labels": self.labels,
            "base_to_novel": self.base_to_novel,
            "cues": self.cues,
            "exclusive": self.exclusive,
            "required": self.required,
        }
        # A plain pickle (xz-compressed), not `joblib.dump`: joblib reads back through a
        # pure-Python unpickler, which took 2 s per model, a fifth of a nightly run's CPU budget.
        data = lzma.compress(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL), preset=6)
        self.card[MODEL_HASH_KEY] = hashlib.sha256(data).hexdigest()
        card = (json.dumps(self.card, indent=2, sort_keys=True, default=str) + "\n").encode()
        written: list[Path] = []
        try:
            # Each temporary file stays open until it is renamed in: its lock tells the next
            # save that it is still being written (`files.temporary_file`).
            with contextlib.ExitStack() as handles:
                try:
                    for name, content in ((MODEL_FILE, data), (CARD_FILE, card)):
                        handle = handles.enter_context(temporary_file(directory, name))
                        written.append(Path(handle.name))
                        _write_durably(handle, content)
                    written[0].replace(directory / MODEL_FILE)
                    written[1].replace(directory / CARD_FILE)
                except BaseException:
                    for tmp in written:
                        with contextlib.suppress(OSError):
                            tmp.unlink(missing_ok=True)
                    raise
            sync_folder(directory)
        except OSError as exc:  # a full disk, a folder where a file goes
            raise _cannot_save(directory, exc) from None

    @classmethod
    def load(cls, directory: Path) -> CatalogueModel:
        """A saved model; a UserError when it is missing, broken, not the one its card describes
        (see `save`) or made by another scikit-learn.

        A model and card that do not match while a `classify train` holds the folder's lock
        are most likely its save, caught between its two renames: the pair is read again
        once the lock is free (at most `SAVE_WAIT` seconds). It was refused as if a train had
        been killed ("retrain"), and a nightly run lost that catalogue's scoring.
        """
        deadline = time.monotonic() + SAVE_WAIT
        while True:
            try:
                return cls._load(directory)
            except _Mismatch:
                if not folder_locked(directory) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def _load(cls, directory: Path) -> CatalogueModel:
        model_path, card_path = directory / MODEL_FILE, directory / CARD_FILE
        if not model_path.is_file() or not card_path.is_file():
            raise UserError(f"no trained model in {directory}; run `vpt-tracker classify train` first")
        # Every way a card is not a card is "retrain", in one line: a card that was JSON but no
        # object, not UTF-8, or not readable was a traceback from every command that scores.
        try:
            card = json.loads(_read_model_file(card_path).decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"model card {card_path} is not UTF-8 text; retrain the model") from None
        except json.JSONDecodeError as exc:
            raise UserError(
                f"model card {card_path} is not valid JSON ({exc.msg}); retrain the model"
            ) from None
        if not isinstance(card, dict):
            raise UserError(f"model card {card_path} is not a JSON object; retrain the model")
        if not isinstance(card.get("versions", {}), dict):
            raise UserError(f"model card {card_path} has no table of library versions; retrain the model")
        retrain = (
            f"retrain with `vpt-tracker classify train {card.get('name', 'NAME')}` "
            "(or `make models` for the shipped defaults)"
        )
        data = _read_model_file(model_path)
        recorded = card.get(MODEL_HASH_KEY)
        if recorded != hashlib.sha256(data).hexdigest():
            why = "records no model_sha256" if recorded is None else "records another model_sha256"
            raise _Mismatch(
                f"{model_path} is not the model its card describes ({card_path.name} {why}: a "
                f"training run was interrupted while saving, or one file was replaced); {retrain}"
            )
        made_with = card.get("versions", {}).get("scikit-learn")
        if made_with != sklearn.__version__:
            raise UserError(
                f"the model in {directory} was trained with scikit-learn {made_with}, "
                f"but {sklearn.__version__} is installed; {retrain}"
            )
        try:
            payload = pickle.loads(lzma.decompress(data))  # our own model files (as trusted as joblib ones)
        except Exception as exc:  # a truncated or foreign pickle: any error means "retrain"
            raise UserError(f"cannot load {model_path} ({type(exc).__name__}); retrain the model") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise UserError(f"{model_path} has an unknown format; retrain with `vpt-tracker classify train`")
        return cls(
            name=payload["name"],
            vectorizer=payload["vectorizer"],
            relevance=payload["relevance"],
            labels=payload["labels"],
            base_to_novel=payload["base_to_novel"],
            card=card,
            cues=payload.get("cues") or CueSet(),
            exclusive=payload.get("exclusive", ()),
            required=payload.get("required", ()),
        )


#: How long a reader waits for a `classify train` that is saving the model it reads.
SAVE_WAIT = 30.0


class _Mismatch(UserError):
    """The model file is not the one its card describes (see `CatalogueModel.load`)."""


def _read_model_file(path: Path) -> bytes:
    """The bytes of a model or card file; a UserError when they cannot be read (no permission)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"cannot read {path}: {exc.strerror or exc}; retrain the model or fix its permissions"
        ) from None


def model_directory(directory: Path) -> Path:
    """`directory`, made if missing, to save a model in; a UserError when it cannot be.

    `classify train` calls it before training, which takes minutes on a store: a
    classifiers_dir that cannot hold the model is told at once."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_save(directory, exc) from None
    return directory


def _write_durably(handle: IO[bytes], content: bytes) -> None:
    """Write `content` to `handle` and fsync it, before it is renamed over a model file.

    A rename can reach the disk before the data it points at: after a power loss the model
    or its card was empty or cut short (the card's hash then refused the pair, but the old,
    whole model was lost too)."""
    handle.write(content)
    handle.flush()
    os.fsync(handle.fileno())


def _cannot_save(directory: Path, exc: OSError) -> UserError:
    return UserError(f"cannot save the model in {directory}: {exc.strerror or exc}")


def analyzer_key(vectorizer: TfidfVectorizer) -> str:
    """What decides a vectorizer's tokens (not its vocabulary): equal keys, equal tokens."""
    params = vectorizer.get_params()
    names = ("analyzer", "ngram_range", "lowercase", "strip_accents", "token_pattern", "stop_words",
             "preprocessor", "tokenizer")  # fmt: skip
    return repr([(name, params.get(name)) for name in names])


def _score_chunk_many(
    models: Sequence[tuple[CatalogueModel, RuleSet | None]],
    chunk: Sequence[Example],
    all_labels: bool = False,
) -> list[list[Scores]]:
    texts = [example.text() for example in chunk]
    reader = CueReader(texts)  # cue patterns shared by several catalogues read each text once
    groups: dict[str, list[CatalogueModel]] = {}
    for model, _rules in models:
        groups.setdefault(analyzer_key(model.vectorizer), []).append(model)
    analyzed: dict[str, Analyzed] = {}
    for key, members in groups.items():
        terms = dict.fromkeys(term for model in members for term in model.vectorizer.vocabulary_)
        analyzed[key] = Analyzed.of(members[0].vectorizer, texts, list(terms))
    return [
        model._score_chunk(chunk, rules, analyzed[analyzer_key(model.vectorizer)], reader, all_labels)
        for model, rules in models
    ]


@dataclass(frozen=True)
class _PackedModels:
    """Models pickled once for the worker processes, which unpickle them once each.

    joblib pickles a task's arguments for every task, and pickling a model (its vocabulary
    dict above all) took 0.19 s, against 2.9 s to score a batch of 10,000 papers: the
    parent spent a tenth of a core on it while the workers had both. Bytes are copied, not
    pickled again.
    """

    key: str
    payload: bytes

    @classmethod
    def of(cls, models: Sequence[tuple[CatalogueModel, RuleSet | None]]) -> _PackedModels:
        return cls(uuid.uuid4().hex, pickle.dumps(list(models), protocol=pickle.HIGHEST_PROTOCOL))

    def unpack(self) -> list[tuple[CatalogueModel, RuleSet | None]]:
        models = _UNPACKED.get(self.key)
        if models is None:
            _UNPACKED.clear()  # one run's models at a time in a worker
            models = _UNPACKED[self.key] = pickle.loads(self.payload)
        return models


_UNPACKED: dict[str, list[tuple[CatalogueModel, RuleSet | None]]] = {}


def _score_packed_chunk(
    packed: _PackedModels, chunk: Sequence[Example], all_labels: bool
) -> list[list[Scores]]:
    return _score_chunk_many(packed.unpack(), chunk, all_labels)


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


def _relevance_oof_metrics(oof: FloatArray, y: NDArray[Any], threshold: float) -> dict[str, float]:
    queued = oof >= threshold
    return {
        "recall_at_threshold": float((queued & (y == 1)).sum() / max(1, (y == 1).sum())),
        "review_load": float(queued.mean()),
    }
