"""The store-facing use cases on SQLite and PostgreSQL: train from the store, enqueue, explain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from vpt_tracker.catalogue.service import import_catalogue
from vpt_tracker.classify.data import Example
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.classify.taxonomy import load_preset
from vpt_tracker.config import CatalogueConfig, KeywordRules, Settings
from vpt_tracker.enqueue import (
    explain,
    model_version,
    paper_example,
    readme_examples,
    replay_catalogue,
    rescore_catalogue,
    score_and_enqueue,
    train_catalogue,
    training_set,
)
from vpt_tracker.errors import UserError
from vpt_tracker.models import Scores
from vpt_tracker.normalize import title_key
from vpt_tracker.review.panes import render_detail
from vpt_tracker.review.queue import ReviewQueue
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, PaperRow

from .conftest import LISTS
from .store import VPT_README, paper_row, store_catalogue

OFF_TOPIC_TITLE = "Gaussian splatting"


@pytest.fixture
def store(engine: Engine, relevant: list[Example], unlabeled: list[Example]) -> dict[str, int]:
    """The real list imported, every fixture paper stored, the non-entries accepted as candidates."""
    return store_catalogue(engine, relevant, unlabeled)


def _settings(tmp_path: Path, include: list[str] | None = None) -> Settings:
    rules = KeywordRules(include=include or [], exclude=[])
    return Settings(
        data_dir=tmp_path, catalogues=[CatalogueConfig(name="vpt", preset="awesome-vpt", rules=rules)]
    )


def test_training_set_from_store(engine: Engine, store: dict[str, int]) -> None:
    with transaction(engine) as session:
        data, preset = training_set(session, "vpt", extra_negatives=[Example("Extra", "negative")])
    assert preset is not None and preset.name == "awesome-vpt"
    assert len(data.relevant) == 56  # entries matched by arXiv id / title + accepted candidates
    assert len(data.rejected) == 2  # the rejected candidate + the extra negative
    assert len(data.unlabeled) == 400 - 1  # abstracts only: the title-only paper is left out
    # labels of entries come from the preset, through the imported entry rows
    assert any("pixel" in e.labels for e in data.relevant)
    # Where the list says nothing of a label (its preset's [[silent]]: no prompt kind or level
    # under Applications), an entry or an accepted paper filed there neither carries nor denies it.
    silent = [e for e in data.relevant if e.label_scope is not None]
    assert any("test-time" in e.labels for e in silent)
    assert all(not e.knows_label("learnable") and e.knows_label("test-time") for e in silent)
    assert all(e.knows_label("learnable") for e in data.relevant if "pixel" in e.labels)
    # Entries with no abstract in the store teach the labels from their titles, silent where filed too.
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "vpt"))
        assert catalogue is not None
        stored = {row.title_key for row in session.scalars(select(PaperRow)) if row.abstract}
        without = [e for e in catalogue.entries if e.labels and e.title_key not in stored]
        filed = [" > ".join(e.section_path or []).lower() for e in without]
    assert [e.title for e in data.entries_without_abstract] == [e.title for e in without]
    for entry, path in zip(data.entries_without_abstract, filed, strict=True):
        applications = "applications and advanced topics" in path
        assert entry.knows_label("learnable") is not applications and entry.knows_label("test-time")
    assert any("applications and advanced topics" in path for path in filed)


def test_a_rejected_paper_the_list_holds_since_is_not_a_negative(
    engine: Engine, store: dict[str, int]
) -> None:
    """A paper rejected once and added to the README later (by hand, or a decision undone too
    late) is an entry: a positive only. It was a positive and a negative of one training set."""
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "vpt"))
        assert catalogue is not None
        keys = {entry.title_key for entry in catalogue.entries}
        listed = session.scalars(
            select(PaperRow)
            .where(PaperRow.title_key.in_(keys), PaperRow.abstract != "")
            .order_by(PaperRow.id)
        ).first()
        assert listed is not None
        session.add(
            CandidateRow(
                paper_id=listed.id,
                catalogue_id=catalogue.id,
                status="rejected",
                reason="no base-to-novel experiments",
            )
        )
        listed_key = listed.title_key
    with transaction(engine) as session:
        data, _preset = training_set(session, "vpt")
    assert listed_key in {title_key(e.title) for e in data.relevant}
    assert [e.title for e in data.rejected] == [
        e.title for e in data.rejected if title_key(e.title) != listed_key
    ]
    assert len(data.rejected) == 1  # the fixture's own rejected paper only


def test_decided_papers_without_an_abstract_are_left_out_and_counted(
    engine: Engine, store: dict[str, int], tmp_path: Path
) -> None:
    """An accepted paper without an abstract was dropped from the positives without a word,
    while a rejected one was a negative (and a base-to-novel negative) from its title alone.
    Both are left out now, and the card and `train` say how many."""
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "vpt"))
        assert catalogue is not None
        accepted = PaperRow(title="Prompting frozen ViTs with no abstract yet", title_key="no abstract one")
        rejected = PaperRow(title="Text-to-image prompts with no abstract", title_key="no abstract two")
        session.add_all([accepted, rejected])
        session.flush()
        session.add_all(
            [
                CandidateRow(paper_id=accepted.id, catalogue_id=catalogue.id, status="accepted"),
                CandidateRow(
                    paper_id=rejected.id,
                    catalogue_id=catalogue.id,
                    status="rejected",
                    reason="no base-to-novel experiments",
                ),
            ]
        )
    with transaction(engine) as session:
        data, _preset = training_set(session, "vpt")
    assert len(data.rejected) == 1 and all(e.has_abstract for e in data.rejected + data.relevant)
    assert data.decided_without_abstract == {"accepted": 1, "rejected": 1}
    model, _directory = train_catalogue(engine, "vpt", settings=_settings(tmp_path))
    assert model.card["training_data"]["decided_without_abstract"] == {"accepted": 1, "rejected": 1}
    assert model.card["counts"]["rejected"] == 1


def test_a_catalogue_of_decisions_only_says_which_accepted_papers_wait_for_an_abstract(
    engine: Engine, relevant: list[Example], unlabeled: list[Example], tmp_path: Path
) -> None:
    """A catalogue with no entries yet learns from its decisions alone. When too few accepted
    papers have an abstract, the message counts the ones that wait for theirs: it said only
    "3 relevant papers ... run `catalogue enrich`", which fills no candidate's abstract."""
    import_catalogue(engine, "fresh", "# Fresh list\n\n## 2026\n", preset="awesome-vpt")
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "fresh"))
        assert catalogue is not None and not catalogue.entries
        with_abstract = [paper_row(e) for e in relevant[:3]]
        without = [
            PaperRow(title=f"Visual prompt tuning, part {n}", title_key=f"vpt part {n}") for n in (1, 2)
        ]
        session.add_all(with_abstract + without + [paper_row(e) for e in unlabeled[:20]])
        session.flush()
        session.add_all(
            CandidateRow(paper_id=row.id, catalogue_id=catalogue.id, status="accepted")
            for row in with_abstract + without
        )
    settings = Settings(data_dir=tmp_path, catalogues=[CatalogueConfig(name="fresh", preset="awesome-vpt")])
    with pytest.raises(UserError) as refused:
        train_catalogue(engine, "fresh", settings=settings)
    assert str(refused.value).endswith(
        "has 3 relevant papers with abstracts; at least 8 are needed to train (run `vpt-tracker "
        "catalogue enrich` or accept more papers); 2 accepted papers without an abstract: they "
        "count once their abstracts are stored"
    )


def test_enqueue_creates_pending_candidates_once(
    engine: Engine, store: dict[str, int], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, include=[OFF_TOPIC_TITLE])
    model, directory = train_catalogue(engine, "vpt", settings=settings)
    assert directory == tmp_path / "classifiers" / "vpt" and (directory / "model-card.json").is_file()
    stats = score_and_enqueue(engine, "vpt", None, settings=settings)
    assert stats.scored == 400  # 456 + 1 papers minus 56 known as entries/candidates minus 1 rejected
    assert 0 < stats.queued < stats.scored
    with transaction(engine) as session:
        pending = list(session.scalars(select(CandidateRow).where(CandidateRow.status == "pending")))
        by_rule = [c for c in pending if c.rule]
        assert len(pending) == stats.queued and len(by_rule) == stats.queued_by_rule >= 1
        assert all(c.rule == f"include: {OFF_TOPIC_TITLE}" for c in by_rule)
        assert all(c.relevance >= model.relevance.threshold for c in pending if not c.rule)
        assert all(c.model_version and c.label_scores for c in pending)
        title_only = session.scalar(
            select(CandidateRow).where(
                CandidateRow.paper_id == store["Visual Prompt Tuning for frozen vision transformers"]
            )
        )
        assert title_only is not None and title_only.low_confidence
        rejected = session.scalars(
            select(CandidateRow).where(CandidateRow.paper_id == store["__rejected__"])
        ).all()
        assert [c.status for c in rejected] == ["rejected"]
    # a second run proposes nothing again: queued, rejected and listed papers are skipped, the rest
    # (below threshold) are scored again and stay below it
    again = score_and_enqueue(engine, "vpt", list(store.values()), settings=settings)
    assert again.queued == 0 and again.scored == stats.scored - stats.queued
    assert again.skipped_known == 56 + 1 + stats.queued
    with transaction(engine) as session:
        assert (
            session.scalar(select(func.count(CandidateRow.id)).where(CandidateRow.status == "pending"))
            == stats.queued
        )


def test_the_rule_that_queued_a_candidate_is_shown_to_its_reviewer(
    engine: Engine, store: dict[str, int], tmp_path: Path
) -> None:
    """The include rule stored with a candidate reaches the review UI's detail pane and
    `review list --json`: a paper far below the threshold in the queue says why it is there.
    The queue read every other column of the candidate but this one."""
    settings = _settings(tmp_path, include=[OFF_TOPIC_TITLE])
    train_catalogue(engine, "vpt", settings=settings)
    score_and_enqueue(engine, "vpt", None, settings=settings)
    with transaction(engine) as session:
        ids = session.scalars(select(CandidateRow.id).where(CandidateRow.rule.is_not(None))).all()
        plain = session.scalar(select(CandidateRow.id).where(CandidateRow.rule.is_(None)))
    assert ids and plain is not None
    queue = ReviewQueue(engine, "ana", "vpt")
    for item in queue.items(ids):
        assert item.rule == f"include: {OFF_TOPIC_TITLE}"
        assert item.to_json()["rule"] == f"include: {OFF_TOPIC_TITLE}"
        assert f"rule: include: {OFF_TOPIC_TITLE}\n" in str(render_detail(item, None))
    unruled = queue.get(plain)
    assert unruled.rule is None and unruled.to_json()["rule"] is None
    assert "rule:" not in str(render_detail(unruled, None))


def test_a_paper_a_table_lists_by_its_name_is_not_proposed(
    engine: Engine, tmp_path: Path, prompt_papers: dict[str, dict[str, str]]
) -> None:
    """prompt-adaptation's VPT table lists "VPT" and "E2VPT" by arXiv links; the conference
    records of both papers have no arXiv id and their whole titles, so only the name tells."""
    readme = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README.md"
    import_catalogue(engine, "pa", readme.read_text(encoding="utf-8"), preset="prompt-adaptation")
    titles = {
        "Visual Prompt Tuning": 2022,
        "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning": 2023,
        "Read-only Prompt Optimization for Vision-Language Few-shot Learning": 2023,
    }
    with transaction(engine) as session:
        for title, year in titles.items():
            paper = prompt_papers[title_key(title)]
            session.add(
                PaperRow(title=title, title_key=title_key(title), abstract=paper["abstract"], year=year)
            )
    rules = KeywordRules(include=["prompt"], exclude=[])  # queued by rule, whatever the model says
    settings = Settings(
        data_dir=tmp_path, catalogues=[CatalogueConfig(name="pa", preset="prompt-adaptation", rules=rules)]
    )
    stats = score_and_enqueue(engine, "pa", None, settings=settings)
    assert (stats.queued, stats.listed_by_name) == (1, 2)
    with transaction(engine) as session:
        queued = [c.paper.title for c in session.scalars(select(CandidateRow))]
    assert queued == ["Read-only Prompt Optimization for Vision-Language Few-shot Learning"]


def test_explain_and_errors(
    engine: Engine, store: dict[str, int], tmp_path: Path, relevant: list[Example]
) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(UserError, match="unknown catalogue 'elsewhere'; known catalogues: vpt"):
        score_and_enqueue(engine, "elsewhere", None, settings=settings)
    with pytest.raises(UserError, match="unknown catalogue 'elsewhere'"):
        train_catalogue(engine, "elsewhere", settings=settings)
    import_catalogue(engine, "bare", VPT_README.read_text(encoding="utf-8"), preset=None)
    with pytest.raises(UserError, match="no model for catalogue 'bare': train one with"):
        score_and_enqueue(engine, "bare", None, settings=settings)
    train_catalogue(engine, "vpt", settings=settings)
    result = explain(engine, "vpt", store[relevant[0].title], 5, settings=settings)
    assert result.title == relevant[0].title and result.up and len(result.up) <= 5
    assert result.to_json()["relevance"] == result.explanation.probability
    # awesome-vpt has no base-to-novel model, so nothing explains a flag
    assert result.novel_explanation is None and result.to_json()["base_to_novel_explanation"] is None
    with pytest.raises(UserError, match="no paper with id 999999"):
        explain(engine, "vpt", 999_999, settings=settings)


def test_models_trained_from_the_store_get_their_presets_cue_features(tmp_path: Path) -> None:
    """`classify train` must build the same kind of model as `make models`: with the cues."""
    from vpt_tracker.classify.taxonomy import load_preset
    from vpt_tracker.enqueue import _hyper

    settings = _settings(tmp_path)
    novel = _hyper(settings, "vpt", load_preset("generalizable-vlm"), seed=0)
    assert "base-to-novel" in dict(novel.cues.patterns) and "base_to_novel" in novel.cues.models
    assert novel.cues.applies_to("labels") and novel.cues.names_for("relevance") == ["cue:says-vision"]
    plain = _hyper(settings, "vpt", load_preset("awesome-vpt"), seed=0).cues
    assert plain.applies_to("labels") and not plain.applies_to("base_to_novel")
    assert ("pixel", "pixel-space") in plain.label_cues  # and the labels' stand-in cues
    assert novel.exclusive == (("text", "image", "image-text"),)  # and the exclusive label groups


def test_enqueue_is_refused_while_a_run_holds_the_lock(
    engine: Engine, db_url: str, tmp_path: Path, store: dict[str, int]
) -> None:
    """Two enqueues at once (a maintainer's `classify enqueue` during the nightly run) both read
    the known papers, then both inserted the same candidates: the second died on the unique
    (paper, catalogue) key with an IntegrityError traceback, and when it was the nightly's,
    that night's papers were scored for no catalogue. Now it is refused like a second run."""
    from click.testing import CliRunner

    from vpt_tracker.cli import main
    from vpt_tracker.locks import exclusive

    config = tmp_path / "vpt-tracker.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[[catalogues]]\nname = "vpt"\npreset = "awesome-vpt"\n')

    def enqueue() -> tuple[int, str, str]:
        args = ["--config", str(config), "--database", db_url, "classify", "enqueue", "vpt"]
        result = CliRunner().invoke(main, args)
        return result.exit_code, result.stdout, result.stderr

    def pending() -> int:
        with transaction(engine) as session:
            query = select(func.count(CandidateRow.id)).where(CandidateRow.status == "pending")
            return int(session.scalar(query) or 0)

    with exclusive(engine, "pipeline"):  # what `run nightly` and `run backfill` hold
        code, _, err = enqueue()
        assert code == 75 and err.startswith("Error: another vpt-tracker pipeline run is in progress"), err
        assert err.count("\n") == 1 and pending() == 0
    code, out, err = enqueue()
    assert code == 0 and out.startswith("vpt: scored 400, queued "), err
    assert pending() > 0


def test_every_stored_paper_with_an_entrys_title_is_listed(
    engine: Engine, tmp_path: Path, prompt_papers: dict[str, dict[str, str]]
) -> None:
    """Two records of one paper that ingest kept apart (their first authors fold differently):
    awesome-vpt lists "Visual Prompt Tuning" with an ECVA link (no arXiv id), and E^2VPT with
    its arXiv link. Only one of each pair counted as listed: the other was proposed again for
    the list that holds it, and taken as an unlabelled negative when training."""
    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset="awesome-vpt")
    vpt = "Visual Prompt Tuning"
    e2vpt = "E^2VPT: An Effective and Efficient Approach for Visual Prompt Tuning"
    rpo = "Read-only Prompt Optimization for Vision-Language Few-shot Learning"  # not in the list
    records = [(vpt, None), (vpt, "2203.12119"), (e2vpt, "2307.13770"), (e2vpt, None), (rpo, None)]
    with transaction(engine) as session:
        rows = [
            PaperRow(
                title=title,
                title_key=title_key(title),
                abstract=prompt_papers[title_key(title)]["abstract"],
                arxiv_id=arxiv,
            )
            for title, arxiv in records
        ]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    with transaction(engine) as session:
        data, _ = training_set(session, "vpt")
    assert [e.title for e in data.unlabeled] == [rpo]
    assert sorted(e.title for e in data.relevant) == [e2vpt, vpt]  # one positive per entry
    rules = KeywordRules(include=["prompt"], exclude=[])  # queued by rule, whatever the model says
    settings = Settings(
        data_dir=tmp_path, catalogues=[CatalogueConfig(name="vpt", preset="awesome-vpt", rules=rules)]
    )
    stats = score_and_enqueue(engine, "vpt", ids, settings=settings)  # as the nightly run gives them
    assert (stats.scored, stats.queued, stats.skipped_known) == (1, 1, 4)
    with transaction(engine) as session:
        assert [c.paper.title for c in session.scalars(select(CandidateRow))] == [rpo]


def test_replay_lists_every_record_of_an_entrys_paper(prompt_papers: dict[str, dict[str, str]]) -> None:
    """`classify replay` matches README entries to stored papers as the store does: an entry
    lists every record with its title, so a second record of a listed paper is neither an
    unlabelled negative nor a paper "added" by the newer README."""
    vpt = "Visual Prompt Tuning"
    rpo = "Read-only Prompt Optimization for Vision-Language Few-shot Learning"  # not in the list
    records = [(1, vpt, "2203.12119"), (2, vpt, None), (3, rpo, None)]
    papers = [
        PaperRow(
            id=i,
            title=t,
            title_key=title_key(t),
            abstract=prompt_papers[title_key(t)]["abstract"],
            arxiv_id=a,
        )
        for i, t, a in records
    ]
    examples, listed = readme_examples(
        VPT_README.read_text(encoding="utf-8"), papers, load_preset("awesome-vpt")
    )
    assert listed == {1, 2}
    assert [e.title for e in examples.values()] == [vpt] and list(examples) == [1]  # one example per entry


def test_replay_with_too_few_older_entries_in_the_store_says_so(
    engine: Engine, store: dict[str, int], tmp_path: Path
) -> None:
    """Replay trains on the older README's entries alone. With too few of them in the store
    (a wrong or empty --before file), the error told the maintainer to accept more papers,
    which replay never reads."""
    after = VPT_README.read_text(encoding="utf-8")
    head = after.split("\n")
    few = "\n".join(head[: next(i for i, line in enumerate(head) if "arxiv.org/abs/" in line) + 1])
    for before in ("", few):
        with pytest.raises(UserError) as caught:
            replay_catalogue(engine, "vpt", before, after, settings=_settings(tmp_path))
        message = str(caught.value)
        assert re.fullmatch(
            r"only \d of the \d+ entr(y|ies) of the older README \(--before\) have a paper with an "
            r"abstract in the store; replay trains on them alone and needs at least 8",
            message,
        ), message


def test_train_into_a_folder_that_cannot_be_made_fails_before_training(
    engine: Engine, store: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training a store takes minutes; a classifiers_dir that cannot hold the model is found
    first, with one line (it was a NotADirectoryError traceback once training had finished)."""
    (tmp_path / "a-file").write_text("x")
    settings = _settings(tmp_path).model_copy(update={"classifiers_dir": tmp_path / "a-file"})

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before the folder was checked")

    monkeypatch.setattr(CatalogueModel, "train", must_not_train)
    with pytest.raises(UserError, match=r"^cannot save the model in \S*a-file/vpt: Not a directory$"):
        train_catalogue(engine, "vpt", settings=settings)


def test_a_negative_that_is_the_catalogues_own_paper_is_refused(
    engine: Engine, store: dict[str, int], relevant: list[Example]
) -> None:
    """`--negatives-jsonl` papers were added to the negatives as they came: one that is an
    entry (or an accepted paper) of the catalogue was then a positive and a negative in the
    same training set, without a word."""
    entry = relevant[0]
    twin = Example(entry.title.upper(), "Another copy of its abstract.")  # the same paper, by title
    for negative in (entry, twin):
        with transaction(engine) as session, pytest.raises(UserError) as caught:
            training_set(session, "vpt", extra_negatives=[Example("Off topic", "x"), negative])
        assert str(caught.value) == (
            f"the --negatives-jsonl paper {negative.title!r} is a paper of catalogue 'vpt' (an entry "
            "or an accepted candidate): a paper cannot be both; remove it from the negatives"
        )


def test_a_second_record_of_a_decided_paper_is_not_proposed_again(
    engine: Engine, tmp_path: Path, prompt_papers: dict[str, dict[str, str]]
) -> None:
    """A rejection is final for the paper, not for one record of it. Ingest keeps two records
    of one paper apart when their first authors fold differently (the arXiv preprint and the
    CVF version, "Müller" and "Mueller"); entries list every record with their title, but a
    candidate counted for its own record only, so the venue version of a rejected paper was
    proposed again, and the second record of a pending one was a second review item."""
    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset="awesome-vpt")
    rpo = "Read-only Prompt Optimization for Vision-Language Few-shot Learning"  # not in the list
    cocoop = "Conditional Prompt Learning for Vision-Language Models"  # not in the list either
    prompt = next(t for t in prompt_papers if "prompt" in t and t not in (title_key(rpo), title_key(cocoop)))
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "vpt"))
        assert catalogue is not None and not {e.title_key for e in catalogue.entries} & {
            title_key(rpo),
            title_key(cocoop),
        }
        rows = {
            (title, arxiv): PaperRow(
                title=title,
                title_key=title_key(title),
                abstract=prompt_papers[title_key(title)]["abstract"],
                arxiv_id=arxiv,
            )
            for title, arxiv in [(rpo, "2308.14960"), (cocoop, "2203.05557")]
        }
        session.add_all(rows.values())
        session.flush()
        session.add(
            CandidateRow(
                paper_id=rows[rpo, "2308.14960"].id, catalogue_id=catalogue.id, status="rejected", reason="x"
            )
        )
        session.add(CandidateRow(paper_id=rows[cocoop, "2203.05557"].id, catalogue_id=catalogue.id))
        other = prompt_papers[prompt]
        twins = [
            PaperRow(title=rpo, title_key=title_key(rpo), abstract=prompt_papers[title_key(rpo)]["abstract"]),
            PaperRow(title=cocoop.upper(), title_key=title_key(cocoop), abstract="Conditional prompts."),
            PaperRow(title=other["title"], title_key=prompt, abstract=other["abstract"]),  # new, twice
            PaperRow(title=other["title"], title_key=prompt, abstract=other["abstract"]),
        ]
        session.add_all(twins)
        session.flush()
        ids = [row.id for row in twins]
    rules = KeywordRules(include=["prompt"], exclude=[])  # queued by rule, whatever the model says
    settings = Settings(
        data_dir=tmp_path, catalogues=[CatalogueConfig(name="vpt", preset="awesome-vpt", rules=rules)]
    )
    stats = score_and_enqueue(engine, "vpt", ids, settings=settings)  # as the nightly run gives them
    assert (stats.queued, stats.skipped_known) == (1, 3)
    with transaction(engine) as session:
        queued = session.scalars(select(CandidateRow).where(CandidateRow.paper_id.in_(ids))).all()
        assert [c.paper_id for c in queued] == [ids[2]]  # the first record of the new paper only
    assert score_and_enqueue(engine, "vpt", None, settings=settings).queued == 0  # `classify enqueue`


def test_a_second_record_of_a_reviewed_paper_is_not_an_unlabeled_negative(
    engine: Engine, prompt_papers: dict[str, dict[str, str]]
) -> None:
    """The records of a paper that ingest kept apart are one paper for training too, as they
    are for an entry: the second record of an accepted paper was drawn as an unlabeled
    negative, against its own positive."""
    import_catalogue(engine, "vpt", VPT_README.read_text(encoding="utf-8"), preset="awesome-vpt")
    rpo = "Read-only Prompt Optimization for Vision-Language Few-shot Learning"  # not in the list
    cocoop = "Conditional Prompt Learning for Vision-Language Models"  # not in the list either
    records = [(rpo, "2308.14960"), (rpo, None), (cocoop, None)]
    with transaction(engine) as session:
        catalogue = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "vpt"))
        assert catalogue is not None
        rows = [
            PaperRow(
                title=title,
                title_key=title_key(title),
                abstract=prompt_papers[title_key(title)]["abstract"],
                arxiv_id=arxiv,
            )
            for title, arxiv in records
        ]
        session.add_all(rows)
        session.flush()
        session.add(CandidateRow(paper_id=rows[0].id, catalogue_id=catalogue.id, status="accepted"))
    with transaction(engine) as session:
        data, _ = training_set(session, "vpt")
    assert [e.title for e in data.unlabeled] == [cocoop]
    assert [e.title for e in data.relevant] == [rpo]


def _candidates(engine: Engine) -> dict[int, CandidateRow]:
    with transaction(engine) as session:
        rows = list(session.scalars(select(CandidateRow)))
        session.expunge_all()
    return {row.id: row for row in rows}


def _expected_scores(engine: Engine, model: CatalogueModel, paper_id: int) -> Scores:
    """What `model` says of a paper as a candidate's (its labels read with the label cues)."""
    with transaction(engine) as session:
        paper = session.get(PaperRow, paper_id)
        assert paper is not None
        example = paper_example(paper)
    return model.score([example], all_labels=True)[0]


def _retrain_after_rejecting(
    engine: Engine, settings: Settings, queue: ReviewQueue, count: int
) -> CatalogueModel:
    """Reject the queue's first `count` candidates and retrain: the decisions a maintainer
    retrains to teach the model, so the new model scores the other candidates otherwise."""
    for candidate_id in queue.ids(limit=count):
        queue.reject(candidate_id, "off topic")
    model, _ = train_catalogue(engine, "vpt", settings=settings)
    return model


def test_a_retrained_model_rescores_the_pending_candidates(
    engine: Engine, store: dict[str, int], tmp_path: Path
) -> None:
    """After `classify train`, the pending candidates kept the old model's scores: the queue's
    order, the relevance and labels shown and the base-to-novel flag were the old model's while
    `explain` gave the new one's terms. The next enqueue (and the nightly run) rescores them,
    leaving a reviewer's own labels, and every candidate that is not pending, as they are."""
    settings = _settings(tmp_path)
    old, _ = train_catalogue(engine, "vpt", settings=settings)
    score_and_enqueue(engine, "vpt", None, settings=settings)
    queue = ReviewQueue(engine, "ana", "vpt")
    relabelled, deferred = queue.ids()[3:5]
    queue.relabel(relabelled, ["pixel"])
    queue.defer(deferred)
    new = _retrain_after_rejecting(engine, settings, queue, 3)
    assert model_version(new) != model_version(old)
    before = _candidates(engine)
    stale = [c for c in before.values() if c.status == "pending"]
    assert all(c.model_version == model_version(old) for c in stale)

    stats = score_and_enqueue(engine, "vpt", None, settings=settings)
    assert stats.rescored == len(stale) > 10  # the papers it queues (`queued`) it scored itself
    assert stats.summary().endswith(f"; rescored {len(stale)} pending candidates")
    after = _candidates(engine)
    for candidate in stale:
        now = after[candidate.id]
        expected = _expected_scores(engine, new, candidate.paper_id)
        assert now.status == "pending" and now.model_version == model_version(new)
        assert now.version == candidate.version + 1  # a screen that read the old scores conflicts
        assert (now.relevance, now.label_scores, now.proposed_labels) == (
            expected.relevance,
            expected.labels,
            expected.proposed_labels,
        )
        assert (now.base_to_novel, now.base_to_novel_flag) == (
            expected.base_to_novel,
            expected.base_to_novel_flag,
        )
        assert now.final_labels == (["pixel"] if candidate.id == relabelled else None)
    assert any(after[c.id].relevance != c.relevance for c in stale)
    # One below the new threshold stays pending: a reviewer may be looking at it.
    assert queue.count() == len(stale) + stats.queued
    for candidate in before.values():
        if candidate.status != "pending":
            now = after[candidate.id]
            assert (now.version, now.relevance, now.model_version) == (
                candidate.version,
                candidate.relevance,
                candidate.model_version,
            )
    assert after[deferred].status == "deferred"
    # The queue's order is the new model's.
    pending = [i for i, c in after.items() if c.status == "pending"]
    assert all(after[i].model_version == model_version(new) for i in pending)
    assert queue.ids() == sorted(pending, key=lambda i: (-after[i].relevance, i))
    # Once rescored, they are not scored again.
    assert score_and_enqueue(engine, "vpt", None, settings=settings).rescored == 0


def test_a_rescore_never_overwrites_a_decision_taken_meanwhile(
    engine: Engine, store: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`classify train` rescores the pending candidates (`rescore_catalogue`) while the review
    app decides in another process: a candidate accepted while the new model scores it keeps
    the reviewer's decision and the scores the reviewer saw; the others are rescored."""
    settings = _settings(tmp_path)
    old, _ = train_catalogue(engine, "vpt", settings=settings)
    score_and_enqueue(engine, "vpt", None, settings=settings)
    queue = ReviewQueue(engine, "ana", "vpt")
    new = _retrain_after_rejecting(engine, settings, queue, 3)
    accepted = queue.ids()[0]
    before = _candidates(engine)
    pending = [c for c in before.values() if c.status == "pending"]
    score = new.score

    def score_while_deciding(examples: list[Example], *args: object, **kwargs: object) -> list[Scores]:
        ReviewQueue(engine, "bo", "vpt").accept(accepted, ["token"])  # the review app, meanwhile
        return score(examples, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(new, "score", score_while_deciding)
    assert rescore_catalogue(engine, "vpt", new) == len(pending) - 1
    after = _candidates(engine)
    won = after[accepted]
    assert (won.status, won.final_labels, won.reviewer) == ("accepted", ["token"], "bo")
    assert (won.relevance, won.model_version) == (before[accepted].relevance, model_version(old))
    assert all(after[c.id].model_version == model_version(new) for c in pending if c.id != accepted)
    monkeypatch.undo()
    assert rescore_catalogue(engine, "vpt", new) == 0  # an accepted candidate is never rescored
