"""The classifier's use cases on top of the store: train, evaluate, replay, enqueue, explain.

`classify/` works on plain `Example`s and never sees the database; this module is the
glue. It turns a catalogue's entries, its review decisions and a sample of unreviewed
papers into a `TrainingSet`, finds the model that applies to a catalogue (its own trained
model, else the shipped default of its preset), and writes `pending` candidates.

Where models live: a catalogue's own model in `<classifiers_dir or data_dir/classifiers>/
<catalogue>/`; the shipped defaults in the repository's `classifiers/<preset>/`. Keeping
them apart means `classify train` never overwrites a committed default model.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.catalogue.names import ListedNames
from vpt_tracker.catalogue.service import get_catalogue
from vpt_tracker.classify.data import Example, TrainingSet
from vpt_tracker.classify.evaluate import evaluate, replay
from vpt_tracker.classify.model import (
    MIN_POSITIVES,
    MODEL_FILE,
    CatalogueModel,
    Explanation,
    Hyper,
    model_directory,
)
from vpt_tracker.classify.presets import SHIPPED, Presets, presets_dir
from vpt_tracker.classify.rules import RuleSet
from vpt_tracker.classify.taxonomy import Preset
from vpt_tracker.config import Settings, load_settings
from vpt_tracker.errors import UserError
from vpt_tracker.ingest import chunks
from vpt_tracker.locks import exclusive_folder
from vpt_tracker.models import POSITIVE_STATUSES, CandidateStatus, Scores
from vpt_tracker.normalize import arxiv_id, title_key
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, EntryRow, PaperRow, ScoringBacklogRow, utcnow
from vpt_tracker.wording import plural

log = logging.getLogger(__name__)

UNLABELED_SAMPLE = 15_000  # unreviewed papers drawn as PU negatives (training on 15k takes seconds)
SCORE_BATCH = 10_000  # papers read and scored per round
NOVEL_REASON = "base-to-novel"  # a rejection whose reason says this is a base-to-novel negative
#: How long a scored `scoring_backlog` row is kept for the digests of past weeks: a year.
SCORED_KEPT = timedelta(days=366)


@dataclass
class EnqueueStats:
    catalogue: str
    scored: int = 0
    queued: int = 0
    queued_by_rule: int = 0
    excluded_by_rule: int = 0
    skipped_known: int = 0  # already an entry, or already a candidate (any status, rejected included)
    listed_by_name: int = 0  # above the threshold, but listed under its name (`ListedNames`)
    low_confidence: int = 0
    rescored: int = 0  # pending candidates scored again: another model scored them (`rescore_pending`)
    model: str = ""

    def summary(self) -> str:
        """The counts as one line for a person (`classify enqueue`, `run nightly|backfill`)."""
        rescored = f"; rescored {plural(self.rescored, 'pending candidate')}" if self.rescored else ""
        return (
            f"scored {self.scored}, queued {self.queued} ({self.queued_by_rule} by rule, "
            f"{self.excluded_by_rule} excluded by rule, {self.low_confidence} low-confidence, "
            f"{self.listed_by_name} already listed by name){rescored}"
        )

    @classmethod
    def total(cls, catalogue: str, rounds: Sequence[Mapping[str, Any]]) -> EnqueueStats:
        """The counts of several rounds (a run's stored `counts`, one per backfill window) summed."""
        total = cls(catalogue)
        for name, value in vars(total).items():
            if isinstance(value, int):
                setattr(total, name, sum(int(r.get(name) or 0) for r in rounds))
        return total


@dataclass
class PaperExplanation:
    paper_id: int
    title: str
    catalogue: str
    explanation: Explanation
    labels: dict[str, float] = field(default_factory=dict)
    base_to_novel: float | None = None
    rule: str | None = None
    base_to_novel_flag: bool | None = None
    novel_explanation: Explanation | None = None  # why the base-to-novel flag is (not) set

    @property
    def up(self) -> list[tuple[str, float]]:
        return self.explanation.up

    @property
    def down(self) -> list[tuple[str, float]]:
        return self.explanation.down

    def to_json(self) -> dict[str, Any]:
        e, novel = self.explanation, self.novel_explanation
        return {
            "paper_id": self.paper_id,
            "title": self.title,
            "catalogue": self.catalogue,
            "relevance": e.probability,
            "threshold": e.threshold,
            "low_confidence": e.low_confidence,
            **_terms_json(e),
            "labels": self.labels,
            "base_to_novel": self.base_to_novel,
            "base_to_novel_explanation": None
            if novel is None
            else {
                "probability": novel.probability,
                "threshold": novel.threshold,
                "flagged": self.base_to_novel_flag,
                **_terms_json(novel),
            },
            "rule": self.rule,
        }


def _terms_json(explanation: Explanation) -> dict[str, list[dict[str, Any]]]:
    return {
        "up": [{"term": t, "weight": w} for t, w in explanation.up],
        "down": [{"term": t, "weight": w} for t, w in explanation.down],
    }


# ---- models ------------------------------------------------------------------------------
def trained_dir(settings: Settings, catalogue_name: str) -> Path:
    """Where `classify train` saves a catalogue's own model."""
    if "/" in catalogue_name or "\\" in catalogue_name or catalogue_name in ("", ".", ".."):
        raise UserError(f"catalogue name {catalogue_name!r} cannot be used as a folder name")
    return (settings.classifiers_dir or settings.data_dir / "classifiers") / catalogue_name


def default_dir(preset: str) -> Path:
    return presets_dir() / preset


def catalogue_preset(settings: Settings, catalogue_name: str, session: Session | None = None) -> str | None:
    """The preset of a catalogue: the stored catalogue's, else the config's."""
    if session is not None:
        row = session.scalar(select(CatalogueRow).where(CatalogueRow.name == catalogue_name))
        if row is not None and row.preset:
            return row.preset
    config = settings.catalogue(catalogue_name)
    return config.preset if config else None


def load_model(settings: Settings, catalogue_name: str, preset: str | None) -> tuple[CatalogueModel, Path]:
    """The catalogue's own model if trained, else its preset's shipped default.

    A catalogue name that is itself a preset name (and has no model of its own) gets
    that preset's default, so `classify score --catalogue awesome-vpt` works without a store.
    """
    own = trained_dir(settings, catalogue_name)
    if (own / MODEL_FILE).is_file():
        return CatalogueModel.load(own), own
    for name in (preset, catalogue_name):
        if name and (default_dir(name) / MODEL_FILE).is_file():
            return CatalogueModel.load(default_dir(name)), default_dir(name)
    known = [c.name for c in settings.catalogues]
    raise UserError(
        f"no model for catalogue {catalogue_name!r}: train one with `vpt-tracker classify train "
        f"{catalogue_name}` (configured catalogues: {', '.join(known) or 'none'}; shipped presets: "
        "awesome-vpt, prompt-adaptation, generalizable-vlm)"
    )


def rules_for(settings: Settings, catalogue_name: str) -> RuleSet:
    config = settings.catalogue(catalogue_name)
    if config is None:
        return RuleSet()
    return RuleSet(config.rules.include, config.rules.exclude)


def recall_target(settings: Settings, catalogue_name: str) -> float:
    config = settings.catalogue(catalogue_name)
    return config.recall_target if config else 0.95


# ---- training data from the store --------------------------------------------------------
def paper_example(row: PaperRow, labels: Iterable[str] = ()) -> Example:
    return Example(
        title=row.title,
        abstract=row.abstract or "",
        comment=row.comment,
        labels=tuple(labels),
        id=row.arxiv_id or f"paper:{row.id}",
        full_text=row.full_text,
    )


def _silent_where_filed(example: Example, section_path: Sequence[str], preset: Preset | None) -> Example:
    """`example`, unlabelled for what its list says nothing of where it is filed (the preset's
    `[[silent]]` tables): a test-time prompt tuner in awesome-vpt's Applications is not
    "not learnable". An accepted candidate is filed where its labels place it."""
    if preset is None:
        return example
    return example.unlabelled_for(preset.silent_on(section_path), preset.label_keys)


@dataclass
class _ListedPapers:
    """Stored papers by id, arXiv id and folded title: what an entry may list.

    One rule for "the papers an entry lists" serves a stored catalogue (`_entry_papers`) and a
    README text (`readme_examples`): its linked paper, the one with its arXiv id and each one
    whose folded title is the entry's, in that order (then by id), each paper once.
    """

    by_id: dict[int, PaperRow] = field(default_factory=dict)
    by_arxiv: dict[str, PaperRow] = field(default_factory=dict)
    by_title: dict[str, list[PaperRow]] = field(default_factory=dict)

    def add_titled(self, paper: PaperRow, key: str) -> None:
        self.by_title.setdefault(key, []).append(paper)

    def of(self, paper_id: int | None, arxiv: str | None, key: str) -> list[PaperRow]:
        found = [
            self.by_id.get(paper_id) if paper_id is not None else None,
            self.by_arxiv.get(arxiv) if arxiv else None,
            *self.by_title.get(key, []),
        ]
        return list({p.id: p for p in found if p is not None}.values())


def _entry_papers(session: Session, catalogue: CatalogueRow) -> list[tuple[EntryRow, list[PaperRow]]]:
    """Each entry with every stored paper it lists (`_ListedPapers.of`).

    This is what "already listed" means wherever the store is asked (enqueue, training): a
    paper of the same folded title is the same paper, as `promote._match_entry` (the paper
    upgrades the entry or is refused as "already listed") and `catalogue check` (a
    "duplicate") take it. Ingest can keep two records of one paper apart (first authors that
    fold differently); when only one of them counted, the other was proposed again for a list
    that holds it, and taken as an unlabelled negative in training.
    """
    entries = list(catalogue.entries)
    linked = {e.paper_id for e in entries if e.paper_id is not None}
    ids = {e.arxiv_id for e in entries if e.arxiv_id}
    keys = {e.title_key for e in entries if e.title_key}
    listed = _ListedPapers()
    for chunk in chunks(sorted(linked), 500):
        for paper in session.scalars(select(PaperRow).where(PaperRow.id.in_(chunk))):
            listed.by_id[paper.id] = paper
    for chunk in chunks(sorted(ids), 500):
        for paper in session.scalars(select(PaperRow).where(PaperRow.arxiv_id.in_(chunk))):
            listed.by_arxiv[paper.arxiv_id or ""] = paper
    for chunk in chunks(sorted(keys), 500):
        query = select(PaperRow).where(PaperRow.title_key.in_(chunk)).order_by(PaperRow.id)
        for paper in session.scalars(query):
            listed.add_titled(paper, paper.title_key)
    return [(entry, listed.of(entry.paper_id, entry.arxiv_id, entry.title_key)) for entry in entries]


def training_set(
    session: Session,
    catalogue_name: str,
    *,
    extra_negatives: Sequence[Example] = (),
    unlabeled: int = UNLABELED_SAMPLE,
    seed: int = 0,
    presets: Presets = SHIPPED,
) -> tuple[TrainingSet, Preset | None]:
    """Positives: entries with abstracts + accepted decisions; negatives: rejections + extras;
    unlabeled: a seeded sample of the other papers with abstracts."""
    catalogue = get_catalogue(session, catalogue_name)
    preset = presets.load(catalogue.preset) if catalogue.preset else None
    relevant: dict[int, Example] = {}
    listed: set[int] = set()  # every paper an entry lists: none of them is an unlabelled negative
    without_abstract: list[Example] = []
    for entry, papers in _entry_papers(session, catalogue):
        listed.update(p.id for p in papers)
        # one positive per entry (two records of a paper are one paper), with an abstract if any has one
        paper = next((p for p in papers if p.abstract and p.abstract.strip()), papers[0] if papers else None)
        if paper is not None and paper.id not in relevant:
            example = paper_example(paper, entry.labels or [])
            relevant[paper.id] = _silent_where_filed(example, entry.section_path or [], preset)
        if entry.labels and (paper is None or not relevant[paper.id].has_abstract):
            titled = Example(entry.title, "", labels=tuple(entry.labels))
            without_abstract.append(_silent_where_filed(titled, entry.section_path or [], preset))
    rejected: list[Example] = []
    novel_negative: list[Example] = []
    decided: set[int] = set()
    query = (
        select(CandidateRow, PaperRow)
        .join(PaperRow, PaperRow.id == CandidateRow.paper_id)
        .where(CandidateRow.catalogue_id == catalogue.id)
    )
    decided_titles: set[str] = set()
    without: Counter[str] = Counter()  # decided papers without an abstract, by decision
    for candidate, paper in session.execute(query):
        decided.add(paper.id)
        decided_titles.add(paper.title_key)
        if candidate.status in POSITIVE_STATUSES:
            labels = (
                candidate.final_labels if candidate.final_labels is not None else candidate.proposed_labels
            )
            example = paper_example(paper, labels or [])
            section = preset.section_for(list(example.labels)) if preset else None
            if paper.id not in relevant:  # an entry's paper is the entry's
                relevant[paper.id] = _silent_where_filed(example, section or [], preset)
                if not example.has_abstract:
                    without[CandidateStatus.ACCEPTED.value] += 1
        elif candidate.status == CandidateStatus.REJECTED.value:
            if paper.id in listed:
                # Rejected, and listed since (the maintainer added it to the README by hand):
                # the list is the later word. It was a positive and a negative at once.
                continue
            example = paper_example(paper)
            if not example.has_abstract:
                # As an accepted paper without one is no positive: a title alone would teach
                # the models that short texts are irrelevant (or not base-to-novel).
                without[CandidateStatus.REJECTED.value] += 1
                continue
            rejected.append(example)
            if candidate.reason and NOVEL_REASON in candidate.reason.lower():
                novel_negative.append(example)
    _refuse_own_papers(catalogue_name, list(relevant.values()), extra_negatives)
    # Another record of a reviewed paper is that paper, not an unlabeled one (as for entries).
    known = set(relevant) | decided | listed | _papers_titled(session, decided_titles)
    other_ids = [
        pid
        for pid in session.scalars(select(PaperRow.id).where(PaperRow.abstract != "").order_by(PaperRow.id))
        if pid not in known
    ]
    if len(other_ids) > unlabeled:
        other_ids = sorted(random.Random(seed).sample(other_ids, unlabeled))
    unlabeled_examples: list[Example] = []
    for chunk in chunks(other_ids, 1000):
        unlabeled_examples.extend(
            paper_example(p) for p in session.scalars(select(PaperRow).where(PaperRow.id.in_(chunk)))
        )
    positives = [e for e in relevant.values() if e.has_abstract]
    needs_novel = bool(preset and preset.requires_base_to_novel)
    data = TrainingSet(
        relevant=positives,
        rejected=rejected + list(extra_negatives),
        unlabeled=unlabeled_examples,
        novel_positive=positives if needs_novel else [],
        novel_negative=(novel_negative + list(extra_negatives)) if needs_novel else [],
        entries_without_abstract=without_abstract,
        decided_without_abstract=dict(sorted(without.items())),
    )
    return data, preset


def _refuse_own_papers(catalogue_name: str, own: Sequence[Example], negatives: Sequence[Example]) -> None:
    """A negative from a file that is one of the catalogue's own papers would be a positive and
    a negative of the same training set; the file is wrong, so it is refused, not ignored.
    The same paper is known by its arXiv id or by its folded title (a file may have either)."""
    ids = {ident for e in own if (ident := arxiv_id(e.id or ""))}
    titles = {title_key(e.title) for e in own}
    for negative in negatives:
        if arxiv_id(negative.id or "") in ids or title_key(negative.title) in titles:
            raise UserError(
                f"the --negatives-jsonl paper {negative.title!r} is a paper of catalogue "
                f"{catalogue_name!r} (an entry or an accepted candidate): a paper cannot be both; "
                "remove it from the negatives"
            )


def _hyper(
    settings: Settings, catalogue_name: str, preset: Preset | None, *, seed: int, folds: int = 5
) -> Hyper:
    """Training knobs: the catalogue's recall target and its preset's cues and label groups."""
    return Hyper.for_preset(
        preset, folds=folds, seed=seed, recall_target=recall_target(settings, catalogue_name)
    )


def _label_keys(preset: Preset | None, data: TrainingSet) -> list[str]:
    if preset is not None:
        return preset.label_keys
    return sorted({label for e in data.relevant for label in e.labels})


def train_catalogue(
    engine: Engine,
    catalogue_name: str,
    *,
    settings: Settings,
    extra_negatives: Sequence[Example] = (),
    seed: int = 0,
) -> tuple[CatalogueModel, Path]:
    """Train a catalogue's models from the store and save them to `trained_dir`."""
    with transaction(engine) as session:
        data, preset = training_set(
            session, catalogue_name, extra_negatives=extra_negatives, seed=seed, presets=settings.presets
        )
    directory = model_directory(trained_dir(settings, catalogue_name))  # before minutes of training
    # A second train of the catalogue exits 75 at once (as a second nightly run does) rather
    # than after minutes of training, to save over the first one's files.
    with exclusive_folder(directory, f"train-{catalogue_name}"):
        hyper = _hyper(settings, catalogue_name, preset, seed=seed)
        model = CatalogueModel.train(catalogue_name, data, _label_keys(preset, data), hyper)
        model.card["preset"] = preset.name if preset else None
        model.card["training_data"] = {
            "source": "store",
            "extra_negatives": len(extra_negatives),
            "decided_without_abstract": data.decided_without_abstract,
        }
        model.save(directory)
    return model, directory


def rescore_catalogue(engine: Engine, catalogue_name: str, model: CatalogueModel) -> int:
    """`rescore_pending` for a catalogue by name, in a transaction of its own: what `classify
    train` does once the new model is saved, so the review queue shows its scores at once."""
    with transaction(engine) as session:
        return rescore_pending(session, get_catalogue(session, catalogue_name).id, model)


def evaluate_catalogue(
    engine: Engine, catalogue_name: str, *, settings: Settings, folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    with transaction(engine) as session:
        data, preset = training_set(session, catalogue_name, seed=seed, presets=settings.presets)
    hyper = _hyper(settings, catalogue_name, preset, seed=seed, folds=folds)
    return evaluate(catalogue_name, data, _label_keys(preset, data), hyper, folds=folds)


def replay_catalogue(
    engine: Engine,
    catalogue_name: str,
    before_text: str,
    after_text: str,
    *,
    settings: Settings,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on the older README's entries only; rank the entries added since among all papers."""
    preset_name = catalogue_preset(settings, catalogue_name)
    with transaction(engine) as session:
        if preset_name is None:
            preset_name = get_catalogue(session, catalogue_name).preset
        preset = settings.presets.load(preset_name) if preset_name else None
        papers = list(session.scalars(select(PaperRow).where(PaperRow.abstract != "")))
    before, listed_before = readme_examples(before_text, papers, preset)
    after, _ = readme_examples(after_text, papers, preset)
    if len(before) < MIN_POSITIVES:
        # Training's own message would say "accept more papers", which replay never reads.
        entries = len(parse(before_text).entries)
        raise UserError(
            f"only {len(before)} of the {plural(entries, 'entry', 'entries')} of the older "
            "README (--before) have a paper with an abstract in the store; replay trains on them "
            f"alone and needs at least {MIN_POSITIVES}"
        )
    added = [example for pid, example in after.items() if pid not in listed_before]
    if not added:
        raise UserError("no entry of the newer README is both new and in the store: nothing to replay")
    pool = {p.id: paper_example(p) for p in papers}
    others = [pid for pid in sorted(pool) if pid not in listed_before]
    sample = (
        others if len(others) <= UNLABELED_SAMPLE else random.Random(seed).sample(others, UNLABELED_SAMPLE)
    )
    data = TrainingSet(relevant=list(before.values()), unlabeled=[pool[pid] for pid in sample])
    hyper = _hyper(settings, catalogue_name, preset, seed=seed)
    report = replay(catalogue_name, data, added, list(pool.values()), _label_keys(preset, data), hyper)
    report["catalogue"] = catalogue_name
    report["before_entries_in_store"] = len(before)
    return report


def readme_examples(
    text: str, papers: Sequence[PaperRow], preset: Preset | None
) -> tuple[dict[int, Example], set[int]]:
    """The entries of a README text as training examples, and every paper they list.

    An entry lists the paper with its arXiv id and each paper whose folded title is its own
    (`_ListedPapers.of`, as for a stored catalogue); its example is the first of them. The
    others are listed too, so that replay never samples a second record of a listed paper
    as an unlabeled negative, nor counts it as a paper added later.
    """
    listed_papers = _ListedPapers(by_arxiv={p.arxiv_id: p for p in papers if p.arxiv_id})
    for paper in sorted(papers, key=lambda p: p.id):
        listed_papers.add_titled(paper, title_key(paper.title))
    examples: dict[int, Example] = {}
    listed: set[int] = set()
    for entry in parse(text).entries:
        own = listed_papers.of(None, entry.arxiv_id, title_key(entry.title))
        if not own:
            continue
        seen = own[0].id in listed  # an earlier entry gave this paper its example
        listed.update(p.id for p in own)
        if seen:
            continue
        labels = preset.labels_for(entry.section_path, entry.badges, entry.cells) if preset else []
        examples[own[0].id] = _silent_where_filed(paper_example(own[0], labels), entry.section_path, preset)
    return examples, listed


# ---- enqueue and explain -----------------------------------------------------------------
def _known_papers(session: Session, catalogue: CatalogueRow) -> tuple[set[int], ListedNames]:
    """Papers never to propose again: entries of the catalogue and every existing candidate,
    each with every stored paper of its folded title; and the entries no paper was found for
    that show only a name, to know theirs by.

    A candidate's paper is known by its title as an entry's is (`_entry_papers`): ingest keeps
    two records of one paper apart when their first authors fold differently (the preprint and
    the CVF version), and a rejection made for one record proposed the other again.
    """
    pairs = _entry_papers(session, catalogue)
    known = {paper.id for _entry, papers in pairs for paper in papers}
    decided = (
        select(PaperRow.id, PaperRow.title_key)
        .join(CandidateRow, CandidateRow.paper_id == PaperRow.id)
        .where(CandidateRow.catalogue_id == catalogue.id)
    )
    keys: set[str] = set()
    for paper_id, key in session.execute(decided):
        known.add(paper_id)
        keys.add(key)
    known |= _papers_titled(session, keys)
    return known, ListedNames.of(entry for entry, papers in pairs if not papers)


def _papers_titled(session: Session, keys: Iterable[str]) -> set[int]:
    """Every stored paper with one of these folded titles: the records of one paper that
    ingest kept apart (first authors that fold differently) are one paper to a catalogue."""
    found: set[int] = set()
    for chunk in chunks(sorted({key for key in keys if key}), 500):
        found.update(session.scalars(select(PaperRow.id).where(PaperRow.title_key.in_(chunk))))
    return found


def score_and_enqueue(
    engine: Engine, catalogue_name: str, paper_ids: list[int] | None = None, *, settings: Settings
) -> EnqueueStats:
    """Score papers for one catalogue; see `score_and_enqueue_many`."""
    return score_and_enqueue_many(engine, [catalogue_name], paper_ids, settings=settings)[catalogue_name]


@dataclass
class _Target:
    """One catalogue being enqueued: its model, rules, known papers and running counts."""

    catalogue_id: int
    model: CatalogueModel
    rules: RuleSet
    known: set[int]
    names: ListedNames
    version: str
    stats: EnqueueStats
    wanted: set[int] | None = None  # the papers to score for this catalogue; None: every one
    queued_titles: set[str] = field(default_factory=set)  # folded titles queued by this run


def score_and_enqueue_many(
    engine: Engine,
    catalogue_names: Sequence[str],
    paper_ids: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    *,
    settings: Settings,
    on_error: Callable[[str, Exception], None] | None = None,
    in_transaction: Callable[[Session, list[str]], None] | None = None,
) -> dict[str, EnqueueStats]:
    """Score papers for several catalogues and create `pending` candidates above threshold or by rule.

    `paper_ids=None` scores every paper not yet known to a catalogue; a mapping gives each
    catalogue papers of its own (the pipeline's catching up: what one catalogue missed, the
    others have scored). A paper that is an entry, or was ever a candidate (a rejected one
    included), is skipped: a rejection is final.
    The papers are read once (only the columns scoring needs) and tokenised once for all the
    catalogues, which is what makes a 300k backfill fit in minutes. A catalogue that cannot be
    scored (unknown, no model) raises, or is reported to `on_error` and left out.
    Everything is written in one transaction, so a failure leaves no partial queue;
    `in_transaction(session, names of the catalogues scored)` runs last in it, so that a
    caller's bookkeeping of what was scored commits, or rolls back, with the candidates.
    """
    results: dict[str, EnqueueStats] = {}
    with transaction(engine) as session:
        targets: dict[str, _Target] = {}
        for name in dict.fromkeys(catalogue_names):
            try:
                targets[name] = _target(session, settings, name)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(name, exc)
        if not targets:
            if in_transaction is not None:
                in_transaction(session, [])
            return results
        if paper_ids is None:
            every = session.scalars(select(PaperRow.id).order_by(PaperRow.id))
            ids = [pid for pid in every if any(pid not in t.known for t in targets.values())]
        else:
            for name, target in targets.items():
                wanted = paper_ids.get(name, ()) if isinstance(paper_ids, Mapping) else paper_ids
                target.wanted = set(wanted)
                target.stats.skipped_known = len(target.wanted & target.known)
            ids = sorted(set().union(*(target.wanted or () for target in targets.values())))
        pairs = [(target.model, target.rules) for target in targets.values()]
        for batch in chunks(ids, SCORE_BATCH):
            papers = _scoring_rows(session, batch)
            examples = [paper_example(paper) for paper in papers]
            # One process: worker processes (joblib) measured slower here, shipping the
            # models and the texts to them cost more than the second core gave back.
            scored = CatalogueModel.score_many(pairs, examples, batch=len(examples))
            rows: list[dict[str, Any]] = []
            for target, scores in zip(targets.values(), scored, strict=True):
                rows.extend(_queue(target, papers, scores))
            if rows:
                session.execute(insert(CandidateRow), rows)
        for target in targets.values():  # the new rows carry this model's version: not rescored
            target.stats.rescored = rescore_pending(session, target.catalogue_id, target.model)
        if paper_ids is None:  # every paper a catalogue did not know is scored: it owes none
            clear_backlog(session, list(targets))
        if in_transaction is not None:
            in_transaction(session, list(targets))
        results = {name: target.stats for name, target in targets.items()}
    for stats in results.values():
        log.info(
            "catalogue %s: scored %d, queued %d (%d by rule, %d excluded by rule)",
            stats.catalogue,
            stats.scored,
            stats.queued,
            stats.queued_by_rule,
            stats.excluded_by_rule,
        )
    return results


def clear_backlog(session: Session, names: Sequence[str]) -> None:
    """Mark what these catalogues owed as scored (`scoring_backlog`, which a nightly run keeps
    for a catalogue it could not score), in the transaction that scored it for them.

    The rows stay, stamped `scored_at`: a digest built after its week counts what was owed at
    the week's end. Rows scored more than `SCORED_KEPT` ago are deleted here; a digest of a
    week older than that counts only what is still owed of it. Called with the pipeline lock
    held, so no row was added since the caller read them.
    """
    if not names:
        return
    now = utcnow()
    owed = ScoringBacklogRow.catalogue.in_(names)
    session.execute(
        update(ScoringBacklogRow).where(owed, ScoringBacklogRow.scored_at.is_(None)).values(scored_at=now)
    )
    session.execute(delete(ScoringBacklogRow).where(owed, ScoringBacklogRow.scored_at < now - SCORED_KEPT))


def model_version(model: CatalogueModel) -> str:
    """Which model scored a candidate (`candidates.model_version`): its training data's hash
    and the second it was trained, so a retrain on the same data is another model too."""
    card = model.card
    return (str(card.get("data_sha256", ""))[:12] + "@" + str(card.get("trained_at", "")))[:64]


#: Each candidate column a model's score fills and the `Scores` field it holds: the model's
#: fields, and no other. A new candidate (`_queue`) and a rescored one (`rescore_pending`) get
#: them alike.
_MODEL_FIELDS = {
    "relevance": "relevance",
    "label_scores": "labels",
    "proposed_labels": "proposed_labels",
    "base_to_novel": "base_to_novel",
    "base_to_novel_flag": "base_to_novel_flag",
    "low_confidence": "low_confidence",
}


def _model_fields(score: Scores) -> dict[str, Any]:
    """The candidate columns `score` fills (`_MODEL_FIELDS`), by column name."""
    return {column: getattr(score, attribute) for column, attribute in _MODEL_FIELDS.items()}


def rescore_pending(session: Session, catalogue_id: int, model: CatalogueModel) -> int:
    """Score again, with `model`, the catalogue's pending candidates another model scored;
    return how many were rescored.

    A maintainer retrains to teach the model their decisions: the queue's order, the relevance
    and labels shown and the base-to-novel flag must be the new model's, as `explain`'s terms
    are. Only `pending` candidates, and only the model's fields: a reviewer's own labels
    (`final_labels`), the reason and the rule that queued it stay. One that now falls below
    the threshold stays pending: a reviewer may be looking at it, and the queue's order puts
    it last. Its labels are scored as a candidate's (`all_labels`: the label cues too).
    Each row is written only if it is still pending at the version read (the review queue's
    optimistic lock), with its version bumped: a decision taken meanwhile in the review app is
    never overwritten, and a reviewer's screen that read the old scores gets a conflict rather
    than deciding on them. A row skipped so is rescored by the next enqueue if still pending.
    """
    version = model_version(model)
    pending = CandidateStatus.PENDING.value
    stale = session.execute(
        select(CandidateRow.id, CandidateRow.version, CandidateRow.paper_id)
        .where(
            CandidateRow.catalogue_id == catalogue_id,
            CandidateRow.status == pending,
            or_(CandidateRow.model_version.is_(None), CandidateRow.model_version != version),
        )
        .order_by(CandidateRow.id)
    ).all()
    table: Table = CandidateRow.__table__  # type: ignore[assignment]  # declared as FromClause
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.version == bindparam("b_version"),
            table.c.status == pending,
        )
        .values(
            {name: bindparam(f"b_{name}") for name in _MODEL_FIELDS}
            | {
                "model_version": version,
                "version": table.c.version + 1,
                "updated_at": bindparam("b_now"),
            }
        )
    )
    rescored = 0
    for batch in chunks(stale, SCORE_BATCH):
        papers = {row.id: row for row in _scoring_rows(session, [c.paper_id for c in batch])}
        scores = model.score([paper_example(papers[c.paper_id]) for c in batch], all_labels=True)
        now = utcnow()
        params = [
            {f"b_{name}": value for name, value in _model_fields(score).items()}
            | {"b_id": candidate.id, "b_version": candidate.version, "b_now": now}
            for candidate, score in zip(batch, scores, strict=True)
        ]
        rescored += session.connection().execute(statement, params).rowcount
    return rescored


def _target(session: Session, settings: Settings, name: str) -> _Target:
    catalogue = get_catalogue(session, name)
    model, directory = load_model(settings, name, catalogue.preset)
    known, names = _known_papers(session, catalogue)
    return _Target(
        catalogue_id=catalogue.id,
        model=model,
        rules=rules_for(settings, name),
        known=known,
        names=names,
        version=model_version(model),
        stats=EnqueueStats(catalogue=name, model=str(directory)),
    )


def _scoring_rows(session: Session, ids: Sequence[int]) -> list[Any]:
    """Only the columns that scoring reads: loading whole ORM rows cost more than scoring."""
    columns = (
        PaperRow.id,
        PaperRow.title,
        PaperRow.title_key,
        PaperRow.abstract,
        PaperRow.comment,
        PaperRow.arxiv_id,
        PaperRow.full_text,
        PaperRow.year,
    )
    rows: list[Any] = []
    for chunk in chunks(ids, 1000):
        rows.extend(session.execute(select(*columns).where(PaperRow.id.in_(chunk))))
    rows.sort(key=lambda row: row.id)
    return rows


def _queue(target: _Target, papers: Sequence[Any], scores: Sequence[Scores]) -> Iterator[dict[str, Any]]:
    """Count the scores of one catalogue and yield the candidate rows it queues."""
    stats = target.stats
    now = utcnow()
    for paper, score in zip(papers, scores, strict=True):
        if paper.id in target.known or (target.wanted is not None and paper.id not in target.wanted):
            continue
        if paper.title_key and paper.title_key in target.queued_titles:
            stats.skipped_known += 1  # a second record of a paper this run queued: one review item
            continue
        stats.scored += 1
        if score.rule and score.rule.startswith("exclude:"):
            stats.excluded_by_rule += 1
        if not target.model.should_queue(score):
            continue
        if target.names.find(paper.title, paper.abstract, paper.year) is not None:
            stats.listed_by_name += 1  # asked of queued papers only: a regex over the abstract
            continue
        stats.queued += 1
        if paper.title_key:
            target.queued_titles.add(paper.title_key)
        stats.queued_by_rule += bool(score.rule)
        stats.low_confidence += score.low_confidence
        yield {
            "paper_id": paper.id,
            "catalogue_id": target.catalogue_id,
            "status": CandidateStatus.PENDING.value,
            **_model_fields(score),
            "rule": score.rule,
            "model_version": target.version,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }


def explain(
    engine: Engine, catalogue_name: str, paper_id: int, top: int = 10, *, settings: Settings | None = None
) -> PaperExplanation:
    """The terms that pushed a paper's relevance up or down, with its label and rule scores.

    Without `settings` (the review UI calls it so), the config is resolved as the CLI does.
    """
    settings = settings or load_settings()
    with transaction(engine) as session:
        paper = session.get(PaperRow, paper_id)
        if paper is None:
            raise UserError(f"no paper with id {paper_id}")
        preset = catalogue_preset(settings, catalogue_name, session)
        if preset is None and settings.catalogue(catalogue_name) is None:
            get_catalogue(session, catalogue_name)  # raises the "unknown catalogue" error
        example = paper_example(paper)
    model, _directory = load_model(settings, catalogue_name, preset)
    score = model.score([example], rules_for(settings, catalogue_name))[0]
    return PaperExplanation(
        paper_id=paper_id,
        title=example.title,
        catalogue=catalogue_name,
        explanation=model.explain(example, top),
        labels=score.labels,
        base_to_novel=score.base_to_novel,
        rule=score.rule,
        base_to_novel_flag=score.base_to_novel_flag,
        novel_explanation=None
        if model.base_to_novel is None
        else model.explain(example, top, of="base_to_novel"),
    )
