"""Queue logic on SQLite and PostgreSQL: actions, audit rows, undo, bulk, locking, scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from vpt_tracker.errors import UserError
from vpt_tracker.review.queue import Conflict, Filter, ReviewQueue, resolve_reviewer
from vpt_tracker.store import transaction
from vpt_tracker.store.db import fold_case
from vpt_tracker.store.tables import CandidateRow, DecisionRow

from .factory import LISTS, PROMPT_ADAPTATION_README, candidate, catalogue


class Clock:
    """A clock that moves one second per call, so decision order never depends on timing."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def setup(engine: Engine) -> dict[str, Any]:
    cat = catalogue(engine, "vpt", entry_labels=[["learnable", "pixel"], ["token"]])
    ids = {
        "high": candidate(
            engine,
            cat,
            "Visual Prompt Tuning",
            relevance=0.95,
            proposed=["learnable", "token"],
            abstract="Prompt tokens for ViT.",
            arxiv_id="2203.12119",
        ),
        "mid": candidate(
            engine,
            cat,
            "Pixel prompts for CLIP",
            relevance=0.52,
            proposed=["pixel"],
            abstract="Padding prompts around the image.",
            base_to_novel=0.3,
            base_to_novel_flag=True,
        ),
        "low": candidate(
            engine,
            cat,
            "A study of sheep",
            relevance=0.1,
            abstract="Unrelated grazing.",
            base_to_novel=0.6,
            base_to_novel_flag=False,
        ),
    }
    return {"catalogue": cat, **ids}


def queue(engine: Engine, reviewer: str = "alice", **kw: Any) -> ReviewQueue:
    return ReviewQueue(engine, reviewer, "vpt", clock=Clock(), **kw)


def decisions(engine: Engine) -> list[DecisionRow]:
    with transaction(engine) as session:
        return list(session.scalars(select(DecisionRow).order_by(DecisionRow.id)))


def test_next_follows_relevance_or_uncertainty(engine: Engine, setup: dict[str, Any]) -> None:
    assert queue(engine).next().candidate_id == setup["high"]  # type: ignore[union-attr]
    uncertain = queue(engine, order="uncertainty")
    assert uncertain.next().candidate_id == setup["mid"]  # type: ignore[union-attr]
    assert uncertain.ids() == [setup["mid"], setup["low"], setup["high"]]
    assert queue(engine).count() == 3


def test_accept_writes_status_and_decision_together(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    item = q.accept(setup["high"])
    assert item.status == "accepted" and item.final_labels == ["learnable", "token"]
    assert item.reviewer == "alice" and item.version == 2
    [decision] = decisions(engine)
    assert decision.action == "accept" and decision.reviewer == "alice"
    assert decision.before["status"] == "pending" and decision.before["version"] == 1
    assert decision.after["status"] == "accepted" and decision.after["final_labels"] == ["learnable", "token"]
    assert q.count() == 2 and q.next().candidate_id == setup["mid"]  # type: ignore[union-attr]
    edited = q.accept(setup["mid"], ["pixel", "learnable", "pixel"])
    assert edited.final_labels == ["pixel", "learnable"]


def test_invalid_label_is_refused_listing_the_valid_ones(engine: Engine, setup: dict[str, Any]) -> None:
    with pytest.raises(UserError, match=r"unknown label 'generative'.*valid labels: learnable, pixel, token"):
        queue(engine).accept(setup["high"], ["learnable", "generative"])
    assert queue(engine).get(setup["high"]).status == "pending"
    assert decisions(engine) == []


def test_labels_come_from_the_preset_when_the_catalogue_has_one(engine: Engine) -> None:
    taxonomy = pytest.importorskip("vpt_tracker.classify.taxonomy")
    presets = pytest.importorskip("vpt_tracker.classify.presets")
    if "awesome-vpt" not in presets.preset_names():
        pytest.skip("the awesome-vpt preset has not landed in classifiers/ yet")
    valid = [label.key for label in taxonomy.load_preset("awesome-vpt").labels]
    cat = catalogue(engine, "vpt", preset="awesome-vpt")
    cid = candidate(engine, cat, "Visual Prompt Tuning", proposed=[valid[0]])
    with pytest.raises(UserError, match="valid labels: " + ", ".join(valid)):
        queue(engine).accept(cid, ["no-such-label"])
    assert queue(engine).accept(cid).final_labels == [valid[0]]


def test_reject_needs_a_reason_and_records_it(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    with pytest.raises(UserError, match="needs a reason"):
        q.reject(setup["low"], "  ")
    item = q.reject(setup["low"], "off-topic")
    assert item.status == "rejected" and item.reason == "off-topic"
    assert decisions(engine)[0].reason == "off-topic"


def test_defer_then_decide_later(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    assert q.defer(setup["mid"], "ask Bob").status == "deferred"
    assert setup["mid"] not in q.ids()
    assert q.ids(status="deferred") == [setup["mid"]]
    with pytest.raises(UserError, match=r"cannot defer candidate .* it is deferred by alice"):
        q.defer(setup["mid"])
    assert q.accept(setup["mid"]).status == "accepted"


def test_missing_or_decided_candidates_give_a_clear_message(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    with pytest.raises(UserError, match=r"no candidate 9999 in catalogue 'vpt'"):
        q.accept(9999)
    q.reject(setup["low"], "off-topic")
    with pytest.raises(UserError, match=r"cannot accept candidate \d+: it is rejected by alice .*off-topic"):
        q.accept(setup["low"])
    assert len(decisions(engine)) == 1


def test_relabel_changes_labels_of_an_accepted_candidate(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    q.accept(setup["high"])
    item = q.relabel(setup["high"], ["pixel"])
    assert item.status == "accepted" and item.final_labels == ["pixel"]
    assert [d.action for d in decisions(engine)] == ["accept", "relabel"]


def test_a_relabel_keeps_who_decided_and_when(engine: Engine, setup: dict[str, Any]) -> None:
    # A relabel took over the candidate's decision: Alice's accept became "accepted by bob at
    # <the relabel>", so the weekly digest listed the paper again as accepted that week, by
    # Bob, and a pending paper whose labels were edited read as decided. The log says who
    # relabelled.
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    accepted = alice.accept(setup["high"], ["token"])
    relabelled = bob.relabel(setup["high"], ["pixel"])
    assert (relabelled.reviewer, relabelled.decided_at) == ("alice", accepted.decided_at)
    assert relabelled.final_labels == ["pixel"] and relabelled.version == accepted.version + 1
    pending = bob.relabel(setup["mid"], ["token"])
    assert (pending.status, pending.reviewer, pending.decided_at) == ("pending", None, None)
    assert [(d.action, d.reviewer) for d in decisions(engine)][-2:] == [
        ("relabel", "bob"),
        ("relabel", "bob"),
    ]
    assert bob.undo()[0].final_labels is None and bob.undo()[0].final_labels == ["token"]


def test_undo_reverts_my_last_decision_and_is_audited(engine: Engine, setup: dict[str, Any]) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    alice.accept(setup["high"], ["token"])
    alice.reject(setup["low"], "off-topic")
    bob.defer(setup["mid"])
    [reverted] = alice.undo()
    assert reverted.candidate_id == setup["low"] and reverted.status == "pending"
    assert reverted.reason is None and reverted.reviewer is None
    [reverted] = alice.undo()
    assert reverted.candidate_id == setup["high"] and reverted.final_labels is None
    assert bob.get(setup["mid"]).status == "deferred"  # Bob's decision is his own
    with pytest.raises(UserError, match="nothing to undo: alice"):
        alice.undo()
    log = decisions(engine)
    assert [(d.action, d.reviewer, d.undone) for d in log] == [
        ("accept", "alice", True),
        ("reject", "alice", True),
        ("defer", "bob", False),
        ("undo", "alice", False),
        ("undo", "alice", False),
    ]
    assert log[3].undoes_id == log[1].id and log[4].undoes_id == log[0].id


def test_undo_after_undo_walks_back_through_my_decisions(engine: Engine, setup: dict[str, Any]) -> None:
    # Each undo gives the candidate a new version; the next undo must not take that for a
    # change by someone else (it refused every earlier decision of the candidate for good).
    alice = queue(engine, "alice")
    alice.defer(setup["mid"])
    alice.accept(setup["mid"], ["pixel"])
    alice.reject(setup["high"], "off-topic")
    assert [item.candidate_id for item in alice.undo()] == [setup["high"]]
    assert alice.undo()[0].status == "deferred"
    [back] = alice.undo()
    assert (back.candidate_id, back.status, back.reviewer) == (setup["mid"], "pending", None)


def test_undo_walks_back_past_a_decision_taken_again_and_undone_again(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # "a, u, a, u, u": accept, think better of it, accept with other labels, undo that too,
    # then undo the defer. The candidate is back where the defer left it, by two undos in a
    # row; only the last of them was looked at, so the defer was refused as if someone else
    # had changed the candidate, for good: every later undo tried it again.
    alice = queue(engine, "alice")
    alice.defer(setup["mid"])
    alice.accept(setup["mid"], ["pixel"])
    alice.undo()
    alice.accept(setup["mid"], ["token"])
    assert alice.undo()[0].status == "deferred"
    [back] = alice.undo()
    assert (back.candidate_id, back.status, back.reviewer) == (setup["mid"], "pending", None)


def test_a_losing_reviewers_conflict_does_not_block_my_undo(engine: Engine, setup: dict[str, Any]) -> None:
    # Bob acted on a stale screen: his attempt is audited as a "conflict" row, which changes
    # nothing. It made the candidate's latest decision not an undo, so Alice's undo of her
    # defer was refused as "changed since", and her undo stack stuck there.
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    seen_by_bob = bob.get(setup["mid"])
    alice.defer(setup["mid"])
    alice.accept(setup["mid"], ["pixel"])
    alice.undo()
    with pytest.raises(Conflict):
        bob.reject(setup["mid"], "off-topic", expected_version=seen_by_bob.version)
    [back] = alice.undo()
    assert (back.status, back.reviewer) == ("pending", None)
    assert [d.action for d in decisions(engine)] == ["defer", "accept", "undo", "conflict", "undo"]


def test_an_undo_by_the_other_reviewer_gives_my_state_back(engine: Engine, setup: dict[str, Any]) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    alice.defer(setup["mid"])
    bob.accept(setup["mid"], ["pixel"])
    bob.undo()  # the candidate is deferred by alice again
    assert alice.undo()[0].status == "pending"


def test_undo_after_undo_still_refuses_a_change_by_someone_else(
    engine: Engine, setup: dict[str, Any]
) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    alice.defer(setup["mid"])
    alice.accept(setup["mid"], ["pixel"])
    alice.undo()
    bob.accept(setup["mid"], ["token"])
    with pytest.raises(Conflict, match=r"it was changed since .*accepted by bob"):
        alice.undo()


def test_undo_refuses_when_someone_changed_the_candidate_since(engine: Engine, setup: dict[str, Any]) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    alice.defer(setup["mid"])
    bob.accept(setup["mid"], ["pixel"])
    with pytest.raises(Conflict, match=r"it was changed since .*accepted by bob") as caught:
        alice.undo()
    assert caught.value.current is not None and caught.value.current.status == "accepted"
    assert alice.get(setup["mid"]).status == "accepted"
    log = decisions(engine)
    assert [d.undone for d in log] == [False, False, False]
    # The refusal is audited, pointing at the defer it could not undo (the next undo passes it).
    assert [(d.action, d.reviewer) for d in log] == [
        ("defer", "alice"),
        ("accept", "bob"),
        ("conflict", "alice"),
    ]
    assert log[2].undoes_id == log[0].id and log[2].before == {"attempted": "undo"}


def test_a_refused_undo_lets_the_next_undo_go_on_to_my_earlier_decisions(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # Alice bulk-rejects the low scores, then accepts "high"; Bob rejects "high" (an accepted
    # candidate may be rejected). Undoing her accept is refused, rightly. But every later undo
    # stopped at that accept too, so her bulk reject could never be undone, and no command
    # takes a rejected candidate back.
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    alice.bulk_reject_below(0.6, "low score")
    alice.accept(setup["high"], ["token"])
    bob.reject(setup["high"], "duplicate")
    with pytest.raises(Conflict, match=r"changed since .*rejected by bob.*undo again to go on") as caught:
        alice.undo()
    assert caught.value.current is not None and caught.value.current.status == "rejected"
    assert alice.get(setup["high"]).status == "rejected"  # Bob's decision stands
    reverted = alice.undo()
    assert sorted(i.candidate_id for i in reverted) == sorted([setup["mid"], setup["low"]])
    assert {i.status for i in reverted} == {"pending"}
    assert alice.get(setup["high"]).status == "rejected"
    with pytest.raises(UserError, match="nothing to undo"):
        alice.undo()
    assert bob.undo()[0].status == "accepted"  # Bob's own undo is untouched by Alice's refusal


def test_bulk_reject_below_a_score_is_one_undoable_batch(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    result = q.bulk_reject_below(0.6, "low score")
    assert result.rejected == 2 and sorted(result.candidate_ids) == sorted([setup["mid"], setup["low"]])
    assert q.ids() == [setup["high"]]
    assert {d.reason for d in decisions(engine)} == {"low score"}
    reverted = q.undo()
    assert sorted(i.candidate_id for i in reverted) == sorted([setup["mid"], setup["low"]])
    assert q.count() == 3


def test_stale_version_from_a_screen_is_a_conflict(engine: Engine, setup: dict[str, Any]) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    seen_by_alice = alice.get(setup["high"])
    seen_by_bob = bob.get(setup["high"])
    bob.reject(setup["high"], "duplicate", expected_version=seen_by_bob.version)
    with pytest.raises(Conflict, match="changed by another reviewer: it is now rejected by bob") as caught:
        alice.accept(setup["high"], expected_version=seen_by_alice.version)
    assert caught.value.current is not None and caught.value.current.reason == "duplicate"
    assert [(d.reviewer, d.action) for d in decisions(engine)] == [("bob", "reject"), ("alice", "conflict")]


@pytest.fixture
def interleave() -> Iterator[list[Any]]:
    """Run a callback just before the next ORM flush, i.e. after a reviewer read the row."""
    pending: list[Any] = []

    def before_flush(session: Session, _context: Any, _instances: Any) -> None:
        if pending:
            pending.pop()()

    event.listen(Session, "before_flush", before_flush)
    yield pending
    event.remove(Session, "before_flush", before_flush)


def test_two_reviewers_racing_never_both_win(
    engine: Engine, setup: dict[str, Any], interleave: list[Any]
) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    # Alice's transaction has read version 1 and is about to write; Bob commits first.
    interleave.append(lambda: bob.reject(setup["high"], "off-topic"))
    with pytest.raises(Conflict, match=r"now rejected by bob.*your accept was not applied") as caught:
        alice.accept(setup["high"])
    assert caught.value.current is not None and caught.value.current.version == 2
    with transaction(engine) as session:
        row = session.get(CandidateRow, setup["high"])
        assert row is not None and (row.status, row.reviewer, row.version) == ("rejected", "bob", 2)
        # Both outcomes are audited: Bob's reject, and Alice's attempt that lost.
        audit = session.scalars(select(DecisionRow).order_by(DecisionRow.id)).all()
        assert [(d.reviewer, d.action) for d in audit] == [("bob", "reject"), ("alice", "conflict")]
        assert audit[1].before == {"attempted": "accept"}
        assert audit[1].after == {"status": "rejected", "reviewer": "bob"}
    # The losing attempt changed nothing, so there is nothing of Alice's to undo.
    with pytest.raises(UserError, match="nothing to undo"):
        alice.undo()


def test_filter_by_text_label_and_score(engine: Engine, setup: dict[str, Any]) -> None:
    q = queue(engine)
    assert q.ids(filter=Filter.parse("clip")) == [setup["mid"]]
    assert q.ids(filter=Filter.parse("GRAZING")) == [setup["low"]]
    assert q.ids(filter=Filter.parse("label:token")) == [setup["high"]]
    assert q.ids(filter=Filter.parse("score<0.6")) == [setup["mid"], setup["low"]]
    assert q.ids(filter=Filter.parse("prompt score>=0.6")) == [setup["high"]]
    assert q.ids(filter=Filter.parse("100%_off")) == []
    with pytest.raises(UserError, match="cannot read the score filter"):
        Filter.parse("score~1")
    # The flag, not the probability: "low" has 0.6 and is not flagged; "high" has no flag at all.
    assert q.ids(filter=Filter.parse("b2n:yes")) == [setup["mid"]]
    assert q.ids(filter=Filter.parse("B2N:no")) == [setup["high"], setup["low"]]
    assert Filter.parse("prompt b2n:no").describe() == "prompt b2n:no" and Filter.parse("b2n:yes")
    with pytest.raises(UserError, match="write b2n:yes or b2n:no"):
        Filter.parse("b2n:maybe")


def test_a_label_filter_reads_the_labels_a_reviewer_chose_over_the_proposed_ones(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # After "l" changed a paper's labels from pixel to token, the list shows "token", but
    # label:pixel still found it (by its proposal) and label:token found it too.
    q = queue(engine)
    q.relabel(setup["mid"], ["token"])
    assert q.ids(filter=Filter.parse("label:pixel")) == []
    assert q.ids(filter=Filter.parse("label:token")) == [setup["high"], setup["mid"]]
    q.relabel(setup["high"], [])  # no label at all, by choice
    assert q.ids(filter=Filter.parse("label:token")) == [setup["mid"]]
    q.undo()
    q.undo()  # the proposals count again
    assert q.ids(filter=Filter.parse("label:pixel")) == [setup["mid"]]
    assert q.ids(filter=Filter.parse("label:learnable")) == [setup["high"]]


def test_a_strict_score_filter_leaves_out_the_bound_as_bulk_reject_does(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # `review list --filter "score<0.2"` is how a maintainer previews `bulk-reject --below 0.2`
    # (the --filter help offers "score<X"), but "<" was read as "<=": a candidate scoring
    # exactly 0.2 (scores have four decimals) was listed and then not rejected.
    edge = candidate(engine, setup["catalogue"], "Sheep at the bound", relevance=0.1, abstract="Grazing.")
    q = queue(engine)
    assert q.ids(filter=Filter.parse("score<0.1")) == []
    assert q.ids(filter=Filter.parse("score<=0.1")) == [setup["low"], edge]
    assert q.ids(filter=Filter.parse("score>0.1")) == [setup["high"], setup["mid"]]
    assert q.ids(filter=Filter.parse("score=0.1")) == [setup["low"], edge]
    assert Filter.parse("score>0.1 score<0.9").describe() == "score>0.1 score<0.9"
    assert sum(q.count_below(0.1).values()) == len(q.ids(filter=Filter.parse("score<0.1")))


def test_a_filter_word_matches_a_title_without_regard_to_accents(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # "zurich" did not find "Zürich": lower() keeps accents, on SQLite and PostgreSQL alike.
    cat = setup["catalogue"]
    zurich = candidate(engine, cat, "Prompt tuning at ETH Zürich", relevance=0.4)
    plain = candidate(engine, cat, "Malmo and Zurich benchmarks", relevance=0.3)
    q = queue(engine)
    assert q.ids(filter=Filter.parse("zurich")) == [zurich, plain]
    assert q.ids(filter=Filter.parse("ZÜRICH")) == [zurich, plain]
    assert q.ids(filter=Filter.parse("Malmö")) == [plain]
    # A word with punctuation matches as typed: its folded key ("c") would match nearly anything.
    assert q.ids(filter=Filter.parse("c++")) == []


def test_a_label_filter_with_a_label_no_taxonomy_knows_is_refused(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # label:pxel (or label:Pixel) found nothing, and "no candidate matches" read as "there is
    # no such paper" rather than "there is no such label".
    q = queue(engine)
    with pytest.raises(
        UserError, match="unknown label 'pxel' for catalogue 'vpt'; valid labels: learnable, pixel"
    ):
        q.check_filter(Filter.parse("clip label:pxel"))
    q.check_filter(Filter.parse("clip label:pixel"))
    everywhere = ReviewQueue(engine, "alice")  # no catalogue: any catalogue's labels
    catalogue(engine, "other", preset="prompt-adaptation")
    everywhere.check_filter(Filter.parse("label:test-time"))
    with pytest.raises(UserError, match="unknown label 'Pixel' in any catalogue"):
        everywhere.check_filter(Filter.parse("label:Pixel"))
    catalogue(engine, "untaxed")  # neither preset nor entries: any label may be there
    everywhere.check_filter(Filter.parse("label:Pixel"))


def test_words_that_begin_with_score_are_words(engine: Engine, setup: dict[str, Any]) -> None:
    # Any word starting with "score" was taken for a malformed score bound: searching for
    # "scores" or "scoring" said "cannot read the score filter" and found nothing.
    scored = candidate(engine, setup["catalogue"], "Prompt scoring for CLIP", abstract="Scores of prompts.")
    q = queue(engine)
    assert q.ids(filter=Filter.parse("scoring")) == [scored]
    assert q.ids(filter=Filter.parse("Scores score>=0.4")) == [scored]
    for bad in ("score>=abc", "score=>0.5", "score<", "score~1"):
        with pytest.raises(UserError, match="cannot read the score filter"):
            Filter.parse(bad)


def test_scope_is_one_catalogue_and_unknown_names_are_listed(engine: Engine, setup: dict[str, Any]) -> None:
    other = catalogue(engine, "other")
    foreign = candidate(engine, other, "Elsewhere", relevance=0.99)
    assert foreign not in queue(engine).ids()
    with pytest.raises(UserError, match="no candidate"):
        queue(engine).accept(foreign)
    everything = ReviewQueue(engine, "alice")
    assert everything.ids()[0] == foreign and everything.count() == 4
    with pytest.raises(UserError, match="unknown catalogue 'nope'; known catalogues: other, vpt"):
        ReviewQueue(engine, "alice", "nope")


def test_a_reviewer_name_too_long_for_the_decision_log_is_refused_up_front(
    engine: Engine, setup: dict[str, Any]
) -> None:
    with pytest.raises(UserError, match="at most 128 characters"):
        queue(engine, "a" * 129)
    longest = queue(engine, "a" * 128)
    longest.accept(setup["high"])
    assert [d.reviewer for d in decisions(engine)] == ["a" * 128]


def test_reviewer_name_resolution() -> None:
    assert resolve_reviewer("config-name", "flag-name") == "flag-name"
    assert resolve_reviewer("config-name") == "config-name"
    assert resolve_reviewer(None)  # the login name


def test_bulk_reject_is_all_or_nothing_when_raced(engine: Engine, setup: dict[str, Any]) -> None:
    alice, bob = queue(engine, "alice"), queue(engine, "bob")
    fired: list[str] = []

    def bob_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Alice's batch has read its rows; just before her UPDATE, Bob decides one of them.
        if statement.lstrip().upper().startswith("UPDATE CANDIDATES") and not fired:
            fired.append(statement)
            bob.accept(setup["mid"], ["pixel"])

    event.listen(engine, "before_cursor_execute", bob_first)
    try:
        with pytest.raises(Conflict, match="another reviewer changed some of these 2 candidates"):
            alice.bulk_reject_below(0.6, "low score")
    finally:
        event.remove(engine, "before_cursor_execute", bob_first)
    assert alice.get(setup["low"]).status == "pending"  # nothing of Alice's batch was applied
    assert alice.get(setup["mid"]).status == "accepted"
    assert [(d.action, d.reviewer) for d in decisions(engine)] == [("accept", "bob")]


def test_bulk_reject_reports_progress_per_chunk(engine: Engine, setup: dict[str, Any]) -> None:
    seen: list[tuple[int, int]] = []
    result = queue(engine).bulk_reject_below(
        1.0, "cleanup", progress=lambda done, total: seen.append((done, total))
    )
    assert result.rejected == 3 and seen == [(3, 3)]


def test_placement_problem_names_labels_the_list_has_no_section_for(engine: Engine) -> None:
    """prompt-adaptation keeps papers only in its VP and VPT tables: "test-time" alone has no place."""
    cat = catalogue(
        engine,
        "pa",
        preset="prompt-adaptation",
        entry_labels=[["vpt-learnable"]],
        readme=PROMPT_ADAPTATION_README,
    )
    new = candidate(engine, cat, "Test-time prompt tuning for CLIP", proposed=["test-time"])
    pa = ReviewQueue(engine, "alice", "pa")
    problem = pa.placement_problem(new, ["test-time"])
    assert problem == (
        "it would not be published: no section of preset 'prompt-adaptation' takes the labels ['test-time']"
    )
    assert pa.placement_problem(new, ["vpt-learnable", "test-time"]) is None
    # A paper the list already has is upgraded in place: it needs no section.
    listed = candidate(engine, cat, "Entry 0", proposed=["test-time"])
    assert pa.placement_problem(listed, ["test-time"]) is None
    # Without a preset no new entry can be placed at all: nothing for the reviewer to fix.
    plain = candidate(engine, catalogue(engine, "plain"), "Pixel prompts", proposed=["pixel"])
    assert ReviewQueue(engine, "alice", "plain").placement_problem(plain, ["pixel"]) is None
    with pytest.raises(UserError, match="no candidate 9999"):
        pa.placement_problem(9999, [])


def test_placement_problem_names_two_labels_of_an_exclusive_group(engine: Engine) -> None:
    """generalizable-vlm shows one modality badge per entry; two would be rendered side by side."""
    readme = LISTS / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    cat = catalogue(engine, "gvlm", preset="generalizable-vlm", entry_labels=[["text"]], readme=readme)
    new = candidate(engine, cat, "Multi-modal prompt learning", proposed=["text", "image-text"], year=2025)
    gvlm = ReviewQueue(engine, "alice", "gvlm")
    assert gvlm.placement_problem(new, ["text", "image-text"]) == (
        "it would show 2 'modality' labels, 'text' and 'image-text', "
        "where an entry of preset 'generalizable-vlm' shows one"
    )
    assert gvlm.placement_problem(new, ["image-text"]) is None


def test_filter_words_fold_non_ascii_capitals_on_both_stores(engine: Engine, setup: dict[str, Any]) -> None:
    # SQLite's own lower() folds ASCII only; PostgreSQL's folds every script. Both must match.
    cat = setup["catalogue"]
    german = candidate(engine, cat, "Ein Überblick über Prompt-Lernen", relevance=0.4, abstract="Prompts.")
    french = candidate(engine, cat, "Écho des invites visuelles", relevance=0.3, abstract="ÉTUDE.")
    greek = candidate(engine, cat, "Prompts for ΟΠΤΙΚΗΣ ΜΑΘΗΣΗΣ", relevance=0.2, abstract="Greek.")
    q = queue(engine)
    assert q.ids(filter=Filter.parse("überblick")) == [german]
    assert q.ids(filter=Filter.parse("ÜBERBLICK")) == [german]
    assert q.ids(filter=Filter.parse("ÉCHO")) == [french]
    assert q.ids(filter=Filter.parse("étude")) == [french]
    assert q.ids(filter=Filter.parse("οπτικη")) == [greek]
    # A capital sigma folds to σ wherever it stands (PostgreSQL's way), word-final too.
    assert q.ids(filter=Filter.parse("ΜΑΘΗΣΗΣ")) == [greek]
    assert q.ids(filter=Filter.parse("οπτικησ")) == [greek]


def test_a_dotted_capital_i_folds_as_postgresql_folds_it_on_both_stores(
    engine: Engine, setup: dict[str, Any]
) -> None:
    # Python's str.lower writes "İ" (U+0130) as "i" and a combining dot above, PostgreSQL's
    # lower() as "i": "istanbul" found the paper only on PostgreSQL, "İstanbul" only on SQLite.
    turkish = candidate(
        engine,
        setup["catalogue"],
        "Prompt Tuning for İstanbul Street Scenes",
        relevance=0.4,
        abstract="Maps.",
    )
    q = queue(engine)
    for word in ("istanbul", "İstanbul", "İSTANBUL", "ISTANBUL"):
        assert q.ids(filter=Filter.parse(word)) == [turkish], word


def test_fold_case_is_postgresqls_lower_for_every_character(engine: Engine) -> None:
    # The review filter folds its words with `fold_case` and the stored text with the store's
    # lower(). One character on which the two disagree is a word that matches on one store and
    # not the other ("İ" was one).
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's lower() is fold_case itself (store.db registers it)")
    query = (
        "SELECT code, lower(chr(code)) FROM generate_series(1, 1114111) AS code "
        "WHERE code NOT BETWEEN 55296 AND 57343 AND lower(chr(code)) <> chr(code)"  # not the surrogates
    )
    with engine.connect() as connection:
        store = {chr(code): low for code, low in connection.execute(text(query))}
    assert len(store) > 1000  # it folds every script's capitals, not only ASCII
    folded = {chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c).lower() != chr(c)}
    differ = {hex(ord(ch)): (fold_case(ch), store.get(ch, ch)) for ch in folded | store.keys()}
    assert {code: pair for code, pair in differ.items() if pair[0] != pair[1]} == {}
