"""The terminal app driven headlessly by key presses, asserted on the database."""

from __future__ import annotations

import io
import json
import re
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.style import Style
from sqlalchemy import Engine, delete, event, make_url, select
from textual.widgets import Input, OptionList

from vpt_tracker.config import Settings
from vpt_tracker.errors import UserError
from vpt_tracker.review.app import ReviewApp, check_keys, store_explainer
from vpt_tracker.review.dialogs import AcceptScreen
from vpt_tracker.review.panes import CandidateList, DetailView, explanation_terms, highlight, render_detail
from vpt_tracker.review.queue import ReviewQueue
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.migrate import upgrade
from vpt_tracker.store.tables import CandidateRow, DecisionRow

from .factory import PROMPT_ADAPTATION_README, candidate, catalogue, many_candidates
from .tcp_proxy import TcpProxy

REASONS = ["off-topic", "duplicate"]


@pytest.fixture
def sqlite(tmp_path: Any) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'review.db'}")
    upgrade(engine)
    return engine


@pytest.fixture
def ids(sqlite: Engine) -> dict[str, int]:
    cat = catalogue(sqlite, "vpt", entry_labels=[["learnable", "pixel", "token"]])
    return {
        "first": candidate(
            sqlite,
            cat,
            "Visual Prompt Tuning",
            relevance=0.95,
            proposed=["learnable", "token"],
            abstract="Learnable prompt tokens for a frozen ViT.",
            arxiv_id="2203.12119",
            authors=["Menglin Jia"],
            venue="ECCV",
            year=2022,
            base_to_novel=0.8,
            base_to_novel_flag=True,
        ),
        "second": candidate(
            sqlite,
            cat,
            "Exploring Visual Prompts",
            relevance=0.7,
            proposed=["pixel"],
            abstract="Pixel padding prompts.",
            arxiv_id="2203.17274",
        ),
        "third": candidate(sqlite, cat, "Sheep grazing patterns", relevance=0.2, abstract="Unrelated."),
    }


def make_app(engine: Engine, **kw: Any) -> ReviewApp:
    opened: list[str] = []
    kw.setdefault("explain_delay", 0)
    app = ReviewApp(
        ReviewQueue(engine, "alice", "vpt"),
        reject_reasons=kw.pop("reject_reasons", REASONS),
        opener=opened.append,
        explainer=kw.pop("explainer", None),
        **kw,
    )
    app.opened = opened  # type: ignore[attr-defined]
    return app


async def settle(pilot: Any) -> None:
    """Let the app finish what the keys started: the decisions queued for the database (each
    in a worker of its own, the next started as one is done), the reads (each in a worker,
    some started by the answer of another), the explain timer and its worker, and the screen
    take the results."""
    await pilot.pause()
    while pilot.app.waiting_decisions or pilot.app.waiting_reads:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def status_of(engine: Engine, candidate_id: int) -> tuple[str, Any, Any]:
    item = ReviewQueue(engine, "x").get(candidate_id)
    return item.status, item.final_labels, item.reason


def log(engine: Engine) -> list[tuple[str, str]]:
    with transaction(engine) as session:
        return [(d.action, d.reviewer) for d in session.scalars(select(DecisionRow).order_by(DecisionRow.id))]


async def test_accept_with_prefilled_labels(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("a", "enter")
        assert status_of(sqlite, ids["first"]) == ("accepted", ["learnable", "token"], None)
        assert app.candidates.current is not None and app.candidates.current.candidate_id == ids["second"]
        assert "2 pending remaining" in str(app.main.query_one("#status").render())


async def test_label_editor_refuses_unknown_labels(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("a", "ctrl+u", *"bogus", "enter")
        assert "unknown: bogus" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        assert status_of(sqlite, ids["first"])[0] == "pending" and log(sqlite) == []
        await pilot.press("a", "ctrl+u", *"pixel", "enter")
        assert status_of(sqlite, ids["first"]) == ("accepted", ["pixel"], None)


async def test_label_editor_says_when_the_list_has_no_section_for_the_labels(sqlite: Engine) -> None:
    cat = catalogue(sqlite, "vpt", preset="prompt-adaptation", readme=PROMPT_ADAPTATION_README)
    first = candidate(sqlite, cat, "Test-time prompt tuning", relevance=0.9, proposed=["test-time"])
    second = candidate(sqlite, cat, "Prompt tokens for ViT", relevance=0.8, proposed=["test-time"])
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("a", "enter")
        error = str(app.screen.query_one("#error").render())
        assert "would not be published: no section of preset 'prompt-adaptation'" in error
        assert status_of(sqlite, first)[0] == "pending"
        await pilot.press("enter")  # the reviewer means it
        assert status_of(sqlite, first) == ("accepted", ["test-time"], None)
        await pilot.press("a", "ctrl+u", *"vpt-learnable", "enter")  # placeable: no second Enter
        assert status_of(sqlite, second) == ("accepted", ["vpt-learnable"], None)


async def test_a_candidate_deleted_under_the_label_editor_is_a_notification(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    """The placement check raised "no candidate" out of the dialog and the app closed with a
    traceback."""
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("a")
        with transaction(sqlite) as session:  # deleted elsewhere while the editor is open
            session.execute(delete(CandidateRow).where(CandidateRow.id == ids["first"]))
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running and app.screen is app.main
        assert any(f"no candidate {ids['first']}" in n.message for n in app._notifications)
        await pilot.press("j", "a", "enter")  # the app goes on
        assert status_of(sqlite, ids["second"])[0] == "accepted"


async def test_relabel_changes_labels_without_deciding(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("l")
        assert "Relabel #" in str(app.screen.query_one("#dialog-title").render())
        await pilot.press("ctrl+u", *"pixel, bogus", "enter")
        assert "unknown: bogus" in str(app.screen.query_one("#error").render())
        await pilot.press("ctrl+u", *"pixel", "enter")
        assert status_of(sqlite, ids["first"]) == ("pending", ["pixel"], None)
        current = app.candidates.current
        assert (
            current is not None and current.candidate_id == ids["first"] and current.final_labels == ["pixel"]
        )
        await pilot.press("a")  # the accept editor starts from the edited labels
        assert app.screen.query_one("#labels", Input).value == "pixel"
        await pilot.press("enter")
        assert status_of(sqlite, ids["first"]) == ("accepted", ["pixel"], None)
        await pilot.press("u", "u")  # the accept, then the relabel
        assert status_of(sqlite, ids["first"]) == ("pending", None, None)
        # Undoing a relabel says so; "#1 pending again" read as an undone decision.
        assert app._notifications and list(app._notifications)[-1].message == (
            f"undone your relabel of #{ids['first']}: its labels are the proposed ones again"
        )
    assert log(sqlite) == [("relabel", "alice"), ("accept", "alice"), ("undo", "alice"), ("undo", "alice")]


async def test_a_relabel_that_changes_nothing_is_not_written(sqlite: Engine, ids: dict[str, int]) -> None:
    # `l` then Enter on the labels as shown wrote a relabel decision that changed nothing; the
    # next `u` undid it, saying "its labels are the proposed ones again" of the same labels.
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("l", "enter")
        await settle(pilot)
        assert log(sqlite) == [] and status_of(sqlite, ids["first"]) == ("pending", None, None)
        assert list(app._notifications)[-1].message == f"#{ids['first']} labels unchanged: learnable, token"
        await pilot.press("l", "ctrl+u", *"token, learnable", "enter")  # another order is a change
        await settle(pilot)
        assert status_of(sqlite, ids["first"]) == ("pending", ["token", "learnable"], None)


async def test_reject_from_the_list_or_free_text_and_defer(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("x", "2")  # second listed reason
        assert status_of(sqlite, ids["first"]) == ("rejected", None, "duplicate")
        await pilot.press("x", "tab", *"needs code", "enter")
        assert status_of(sqlite, ids["second"]) == ("rejected", None, "needs code")
        await pilot.press("d")
        assert status_of(sqlite, ids["third"])[0] == "deferred"
        assert "Nothing to review" in str(app.main.query_one("#empty").render())
        await pilot.press("q")
    assert app.return_value is not None
    assert (app.return_value.rejected, app.return_value.deferred, app.return_value.remaining) == (2, 1, 0)
    assert "2 rejected, 1 deferred" in app.return_value.render()


async def test_a_superscript_digit_in_the_reason_list_is_not_a_reason_number(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    # "²" has a key of its own on AZERTY keyboards, and str.isdigit holds for it: the reason
    # list took it for a number, int() refused it, and the app closed with a ValueError.
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("x", "²")
        await settle(pilot)
        assert app.is_running and isinstance(app.screen.focused, OptionList)
        await pilot.press("2")
        assert status_of(sqlite, ids["first"]) == ("rejected", None, "duplicate")


async def test_an_empty_reason_says_one_is_needed(sqlite: Engine, ids: dict[str, int]) -> None:
    # Enter on an empty or blank reason did nothing at all: the prompt stayed, without a word.
    app = make_app(sqlite, reject_reasons=[])
    async with app.run_test() as pilot:
        await pilot.press("x", "space", "space", "enter")
        await settle(pilot)
        assert "a reject needs a reason" in screen_text(app)
        assert status_of(sqlite, ids["first"])[0] == "pending" and log(sqlite) == []
        await pilot.press(*"off-topic", "enter")
        assert status_of(sqlite, ids["first"]) == ("rejected", None, "off-topic")


async def test_without_configured_reasons_the_reject_prompt_takes_typing(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    # With `reject_reasons = []` the prompt focused an empty list: what the reviewer typed went
    # nowhere and Enter did nothing, unless they guessed to press Tab first.
    app = make_app(sqlite, reject_reasons=[])
    async with app.run_test() as pilot:
        await pilot.press("x", *"needs code", "enter")
        assert status_of(sqlite, ids["first"]) == ("rejected", None, "needs code")


async def test_keys_do_not_leak_into_text_inputs(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("slash", *"a x d u q j", "escape")
        await pilot.press("x", "tab", *"adxuq", "escape")
        assert log(sqlite) == []
        assert app.is_running


async def test_move_undo_and_open(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("j", "down", "k")
        assert app.candidates.current.candidate_id == ids["second"]  # type: ignore[union-attr]
        await pilot.press("o")
        assert app.opened == ["https://arxiv.org/abs/2203.17274"]  # type: ignore[attr-defined]
        await pilot.press("d", "u")
        assert status_of(sqlite, ids["second"])[0] == "pending"
        assert app.candidates.current.candidate_id == ids["second"]  # type: ignore[union-attr]
        assert log(sqlite) == [("defer", "alice"), ("undo", "alice")]
        assert app.summary.undone == 1


async def test_open_without_a_browser_shows_the_link(sqlite: Engine, ids: dict[str, int]) -> None:
    # Over ssh `webbrowser.open` finds no browser and returns False: "o" did nothing at all.
    # A browser command that fails (here `false`, as a broken $BROWSER would) is the same.
    app = make_app(sqlite)
    app.opener = webbrowser.GenericBrowser("false").open
    async with app.run_test() as pilot:
        await pilot.press("o")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("https://arxiv.org/abs/2203.12119" in m and "could not open" in m for m in messages)


async def test_detail_follows_the_cursor_in_the_same_call(sqlite: Engine, ids: dict[str, int]) -> None:
    """No message hop between the panes: the frame that draws the moved cursor has the new detail too."""
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await settle(pilot)
        detail = app.main.query_one(DetailView)
        app.candidates.move(1)  # no await below: nothing else has run since the cursor moved
        assert str(detail.text).startswith("Exploring Visual Prompts")
        app.candidates.drop(ids["second"])
        assert str(detail.text).startswith("Sheep grazing patterns")
        app.candidates.restore(ids["second"], app.queue.get(ids["second"]))
        assert str(detail.text).startswith("Exploring Visual Prompts")


async def test_filter_by_text_label_and_score(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("slash", *"label:pixel", "enter")
        assert app.candidates.ids == [ids["second"]]
        await pilot.press("slash", "ctrl+u", *"score<=0.5", "enter")
        assert app.candidates.ids == [ids["third"]]
        await pilot.press("slash", "ctrl+u", *"zzz", "enter")
        assert "No candidate matches" in str(app.main.query_one("#empty").render())
        await pilot.press("slash", "ctrl+u", *"exploring", "enter")
        assert app.candidates.ids == [ids["second"]]
        await pilot.press("slash", "ctrl+u", *"explöring", "enter")  # accents folded, as the CLI's
        assert app.candidates.ids == [ids["second"]]
        await pilot.press("slash", "ctrl+u", "enter")
        assert len(app.candidates.ids) == 3
        await pilot.press("slash", *"label:pxel", "enter")  # a typo is said, the list kept
        assert any("unknown label 'pxel'" in n.message for n in app._notifications)
        assert len(app.candidates.ids) == 3 and app.filter_text == ""


async def test_a_filter_keeps_the_highlighted_paper_or_starts_at_the_first_match(sqlite: Engine) -> None:
    # The highlight kept its row number across a filter: from row 5, a filter with 3 matches
    # highlighted the last of them, and clearing it highlighted whatever paper was 3rd, not
    # the one the reviewer had found with the filter.
    cat = catalogue(sqlite, "vpt")
    many_candidates(sqlite, cat, 30)
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press(*["j"] * 5)
        await pilot.press("slash", *"Clip", "enter")
        first = app.candidates.ids[0]
        assert len(app.candidates.ids) == 3 and app.candidates.cursor == 0
        await pilot.press("j")
        found = app.candidates.current
        assert found is not None and found.candidate_id != first
        await pilot.press("slash", "ctrl+u", "enter")
        assert len(app.candidates.ids) == 30
        assert (
            app.candidates.current is not None and app.candidates.current.candidate_id == found.candidate_id
        )


async def test_conflict_shows_the_other_reviewers_decision(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        ReviewQueue(sqlite, "bob", "vpt").reject(ids["first"], "off-topic")  # while Alice looks at it
        await pilot.press("a", "enter")
        assert status_of(sqlite, ids["first"]) == ("rejected", None, "off-topic")
        assert app.summary.conflicts == 1 and app.summary.accepted == 0
        assert ", 1 conflict in " in app.summary.render()  # it said "1 conflicts"
        assert any("now rejected by bob" in n.message for n in app._notifications)
        assert app.candidates.current is not None and app.candidates.current.status == "rejected"


async def test_a_refused_undo_then_goes_on_to_the_decision_before(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("d", "a", "enter")  # defer the first paper, accept the second
        ReviewQueue(sqlite, "bob", "vpt").reject(ids["second"], "duplicate")  # accepted: still rejectable
        await pilot.press("u")
        assert any("undo again to go on" in n.message for n in app._notifications)
        assert status_of(sqlite, ids["second"])[0] == "rejected"
        await pilot.press("u")  # before, the same refusal again, for good
        assert status_of(sqlite, ids["first"])[0] == "pending"
        assert app.candidates.current is not None and app.candidates.current.candidate_id == ids["first"]


async def test_every_catalogue_view_says_which_list_each_candidate_is_for(sqlite: Engine) -> None:
    # `vpt-tracker review` without --catalogue: a paper queued for two lists showed as two
    # identical rows with identical details, and nothing said which list "a" accepted it for.
    for name in ("awesome-vpt", "generalizable-vlm"):
        cat = catalogue(sqlite, name)
        candidate(sqlite, cat, "Visual Prompt Tuning", relevance=0.9, venue="ECCV", year=2022)
    app = ReviewApp(ReviewQueue(sqlite, "alice"), explainer=None, opener=lambda _url: None)
    async with app.run_test(size=(120, 20)) as pilot:
        await settle(pilot)
        rows = screen_text(app).splitlines()[2:4]
        assert "awesome-vpt" in rows[0] and "generalizable-vlm" in rows[1]
        assert "for awesome-vpt" in str(app.main.query_one(DetailView).text)
        await pilot.press("j", "a")
        assert "for generalizable-vlm" in str(app.screen.query_one("#dialog-title").render())
        await pilot.press("escape", "x")
        assert "for generalizable-vlm" in str(app.screen.query_one("#dialog-title").render())


async def test_every_catalogue_rows_keep_room_for_the_title_on_an_80_column_terminal(sqlite: Engine) -> None:
    # The catalogue's name was kept whole after the venue: on an 80x24 terminal the list pane
    # had two cells of title per row ("Se…", "Co…") in `review` without --catalogue.
    cat = catalogue(sqlite, "generalizable-vlm")
    candidate(sqlite, cat, "Self-regulating Prompts: Foundational Model Adaptation", relevance=0.9,
              proposed=["image-text"], venue="ICCV", year=2023)  # fmt: skip
    app = ReviewApp(ReviewQueue(sqlite, "alice"), explainer=None, opener=lambda _url: None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        row = next(line for line in screen_text(app).splitlines() if "0.90" in line).split("││")[0]
        assert "Self-regul" in row and "ICCV 2023 · generaliz…" in row, row
        assert "for generalizable-vlm" in str(app.main.query_one(DetailView).text)  # the name in full
    app = ReviewApp(ReviewQueue(sqlite, "alice"), explainer=None, opener=lambda _url: None)
    async with app.run_test(size=(120, 24)) as pilot:
        await settle(pilot)
        row = next(line for line in screen_text(app).splitlines() if "0.90" in line).split("││")[0]
        assert "ICCV 2023 · generalizable-vlm" in row, row  # cut only where it must be


async def test_remapped_keys(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite, keys={"accept": "y", "down": "n"})
    async with app.run_test() as pilot:
        await pilot.press("n", "y", "enter")
        assert status_of(sqlite, ids["second"])[0] == "accepted"
        await pilot.press("a")  # no longer bound
        assert len(app.screen_stack) == 1
    with pytest.raises(UserError, match="unknown action 'acept'"):
        check_keys({"acept": "y"})
    with pytest.raises(UserError, match="accept = '' names no key"):
        check_keys({"accept": ""})


async def test_remapped_keys_keep_their_place_in_the_footer_and_the_help(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    # Textual's keymap moved each remapped action to the end of the footer: with accept = "y"
    # it read "x Reject d Defer … q Quit y Accept".
    app = make_app(sqlite, keys={"accept": "y", "reject": "a", "help": "?,f1"})
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        shown = footer(app)
        order = ["y Accept", "a Reject", "d Defer", "u Undo", "o Open", "/ Filter", "? Help", "q Quit"]
        assert [shown.index(key) for key in order] == sorted(shown.index(key) for key in order), shown
        await pilot.press("a")  # taken from accept by reject, as the keymap had it
        await settle(pilot)
        assert "Reject #" in str(app.screen.query_one("#dialog-title").render())
        await pilot.press("escape", "f1")
        await settle(pilot)
        help_text = screen_text(app)
        assert re.search(r"y +Accept", help_text) and re.search(r"a +Reject", help_text), help_text
        assert re.search(r"\? f1 +Help", help_text), help_text


async def test_detail_highlights_the_terms_that_drove_the_score(sqlite: Engine, ids: dict[str, int]) -> None:
    calls: list[tuple[str, int]] = []

    def explainer(catalogue_name: str, paper_id: int) -> dict[str, Any]:
        calls.append((catalogue_name, paper_id))
        return {"up": [("prompt", 1.2), ("frozen", 0.4)], "down": []}

    app = make_app(sqlite, explainer=explainer)
    async with app.run_test() as pilot:
        await settle(pilot)
        detail = app.main.query_one(DetailView).text
        spans = {str(detail)[s.start : s.end].lower() for s in detail.spans if "green" in str(s.style)}
        assert {"prompt", "frozen"} <= spans
        assert "Menglin Jia" in str(detail) and "https://arxiv.org/abs/2203.12119" in str(detail)
        assert len(calls) == 1


async def test_no_model_means_no_highlighting_and_says_so(sqlite: Engine, ids: dict[str, int]) -> None:
    calls: list[int] = []

    def explainer(catalogue_name: str, paper_id: int) -> Any:
        calls.append(paper_id)
        raise UserError(f"catalogue {catalogue_name!r} has no trained model")

    app = make_app(sqlite, explainer=explainer)
    async with app.run_test() as pilot:
        await settle(pilot)
        assert "no highlighting: catalogue 'vpt' has no trained model" in str(
            app.main.query_one(DetailView).text
        )
        await pilot.press("j")
        await settle(pilot)
        # The missing model holds for the whole catalogue: the next paper says so without asking again.
        assert "no highlighting: catalogue 'vpt'" in str(app.main.query_one(DetailView).text)
        assert calls == [ids["first"]]


async def test_skimming_past_rows_explains_only_where_the_reviewer_rests(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    calls: list[int] = []

    def explainer(_catalogue: str, paper_id: int) -> dict[str, Any]:
        calls.append(paper_id)
        return {"up": ["prompt"]}

    app = make_app(sqlite, explainer=explainer, explain_delay=3600)
    async with app.run_test() as pilot:
        await pilot.press("j", "j", "k")
        await settle(pilot)
        assert calls == []  # each move restarted the (injected, long) delay
        app.explain_delay = 0
        await pilot.press("j")
        await settle(pilot)
        assert calls == [ids["third"]]


async def test_empty_queue_is_friendly(sqlite: Engine) -> None:
    catalogue(sqlite, "vpt")
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        assert "Nothing to review in vpt" in str(app.main.query_one("#empty").render())
        await pilot.press("a", "x", "d", "j", "o")
        assert log(sqlite) == [] and len(app.screen_stack) == 1
        await pilot.press("ctrl+q")  # Textual's own quit also ends with the summary
    assert app.return_value is not None and app.return_value.remaining == 0


async def test_the_end_of_the_queue_points_at_deferred_candidates(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    # "Nothing to review: the queue is empty" while papers waited in the deferred view read as
    # "done for the week"; and the deferred view, once emptied, promised new candidates from
    # the next nightly run, which never go there.
    ReviewQueue(sqlite, "alice", "vpt").defer(ids["second"])
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("x", "1", "x", "1")
        shown = str(app.main.query_one("#empty").render())
        assert "Nothing to review in vpt" in shown
        assert "1 deferred candidate waits: `vpt-tracker review --deferred` shows it" in shown
    app = make_app(sqlite, status="deferred")
    async with app.run_test() as pilot:
        await pilot.press("a", "enter")
        shown = str(app.main.query_one("#empty").render())
        assert "Nothing to review in vpt: no candidate is deferred" in shown and "nightly" not in shown


async def test_large_queue_loads_lazily(sqlite: Engine) -> None:
    cat = catalogue(sqlite, "vpt")
    many_candidates(sqlite, cat, 3000)
    queries: list[str] = []
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        engine = app.queue.engine
        event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
        await pilot.press(*["j"] * 12)
        assert app.candidates.cursor == 12
        # One page of rows covers these moves: no per-row queries, and no widget per candidate.
        assert len([q for q in queries if "FROM candidates" in q]) == 0
        assert len(app.candidates.ids) == 3000 and len(app.candidates._rows) == CandidateList.PAGE
        assert len(list(app.main.query("*"))) < 40
        height = app.candidates.scrollable_content_region.height
        presses = -(-(CandidateList.PAGE - 12) // (height - 1))  # past the first page, whatever the height
        await pilot.press(*["pagedown"] * presses)
        assert app.candidates.cursor == 12 + presses * (height - 1)
        # Scrolling past the first page fetched the next one, in one query.
        assert len([q for q in queries if "FROM candidates" in q]) == 1
        assert len(app.candidates._rows) == 2 * CandidateList.PAGE


async def test_undo_puts_the_candidate_back_in_place(sqlite: Engine, ids: dict[str, int]) -> None:
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("j", "d", "x", "1")
        assert app.candidates.ids == [ids["first"]] and app.remaining == 1
        await pilot.press("u")
        assert app.candidates.ids == [ids["first"], ids["third"]]
        assert app.candidates.current.candidate_id == ids["third"]  # type: ignore[union-attr]
        await pilot.press("u")
        assert app.candidates.ids == [ids["first"], ids["second"], ids["third"]]
        assert app.candidates.current.candidate_id == ids["second"]  # type: ignore[union-attr]
        assert app.remaining == 3 and status_of(sqlite, ids["second"])[0] == "pending"
        status = str(app.main.query_one("#status").render())
        assert "1 rejected, 1 deferred, 2 undone" in status  # the counts say the decisions were undone


async def test_undoing_a_bulk_reject_counts_the_candidates_instead_of_listing_them(sqlite: Engine) -> None:
    # `u` after `review bulk-reject` listed every id it put back in one notification: after
    # a backfill, thousands of ids in a toast taller than the screen.
    cat = catalogue(sqlite, "vpt")
    many_candidates(sqlite, cat, 60)
    rejected = ReviewQueue(sqlite, "alice", "vpt").bulk_reject_below(0.5, "low score").candidate_ids
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("u")
        await settle(pilot)
        message = list(app._notifications)[-1].message
        first = ", ".join(f"#{i}" for i in sorted(rejected)[:3])
        assert message == f"undone: {len(rejected)} candidates ({first}, …) pending again"
        assert len(app.candidates.ids) == 60


async def test_a_bulk_reject_undone_counts_as_one_undo_of_its_candidates(sqlite: Engine) -> None:
    # One `u` undoing a bulk reject of 29 candidates counted 29 undos: "0 rejected, 29 undone"
    # on the status line and on quit, for a session with one undo in it.
    cat = catalogue(sqlite, "vpt")
    many_candidates(sqlite, cat, 60)
    rejected = len(ReviewQueue(sqlite, "alice", "vpt").bulk_reject_below(0.5, "low score").candidate_ids)
    assert rejected > 2
    app = make_app(sqlite)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("u", "d", "u")
        await settle(pilot)
        expected = f"1 deferred, 2 undone ({rejected + 1} candidates)"
        assert expected in str(app.main.query_one("#status").render())
        await pilot.press("q")
    assert app.return_value is not None and f"{expected}, 0 conflicts" in app.return_value.render()


async def test_an_undo_puts_back_only_a_candidate_of_this_view(sqlite: Engine, ids: dict[str, int]) -> None:
    # The list put back any row it had dropped, whatever the undo left it as: a paper deferred
    # here, then accepted with `review accept` in another terminal, came back deferred into
    # the pending list on `u`, and `d` on it then said it was deferred already.
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("d")
        ReviewQueue(sqlite, "alice", "vpt").accept(ids["first"])  # `review accept`, elsewhere
        await pilot.press("u")
        await settle(pilot)
        assert status_of(sqlite, ids["first"])[0] == "deferred"
        assert app.candidates.ids == [ids["second"], ids["third"]] and app.remaining == 2


async def test_deferred_candidates_get_their_own_view(sqlite: Engine, ids: dict[str, int]) -> None:
    ReviewQueue(sqlite, "alice", "vpt").defer(ids["second"], "ask Bob")
    app = make_app(sqlite, status="deferred")
    async with app.run_test() as pilot:
        assert app.candidates.ids == [ids["second"]]
        assert "1 deferred remaining" in str(app.main.query_one("#status").render())
        await pilot.press("a", "enter")
        assert status_of(sqlite, ids["second"]) == ("accepted", ["pixel"], None)
        assert "Nothing to review" in str(app.main.query_one("#empty").render())


def footer(app: ReviewApp) -> str:
    """The footer line as the terminal shows it (its keys are separated by no-break spaces)."""
    return " ".join(screen_text(app).splitlines()[-1].split("\u00a0"))


async def test_the_footer_offers_only_keys_that_can_act_in_the_view(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    # The deferred view's footer showed `d Defer`, which every candidate there refused ("it is
    # deferred"); an empty list offered accept, reject and defer with nothing to act on.
    app = make_app(sqlite)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        assert "d Defer" in footer(app)
        await pilot.press("d", "d", "d")
        await settle(pilot)
        await settle(pilot)
        shown = footer(app)
        assert "Accept" not in shown and "Reject" not in shown and "Defer" not in shown, shown
        assert "u Undo" in shown and "/ Filter" in shown and "q Quit" in shown, shown
    app = make_app(sqlite, status="deferred")
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        shown = footer(app)
        assert "a Accept" in shown and "x Reject" in shown and "Defer" not in shown, shown
        await pilot.press("d")  # disabled too: no refusal to read
        await settle(pilot)
        assert not app._notifications and log(sqlite) == [("defer", "alice")] * 3
        await pilot.press("x", "1", "x", "1", "x", "1")
        await settle(pilot)
        await settle(pilot)
        assert "Accept" not in footer(app) and "u Undo" in footer(app)
        await pilot.press("u")  # a candidate again: its keys come back
        await settle(pilot)
        await settle(pilot)
        assert "a Accept" in footer(app) and "Defer" not in footer(app)


async def test_the_help_lists_only_keys_that_can_act_in_the_view(sqlite: Engine, ids: dict[str, int]) -> None:
    # The deferred view's help still listed `d Defer` after its footer hid it: the help asks
    # the footer's check (`ReviewScreen.check_action`), not a list of its own.
    ReviewQueue(sqlite, "alice", "vpt").defer(ids["second"], None)
    app = make_app(sqlite, status="deferred")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        shown = screen_text(app)
        assert re.search(r"a +Accept", shown) and re.search(r"x +Reject", shown), shown
        assert "Defer" not in shown, shown
    app = make_app(sqlite)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert re.search(r"d +Defer", screen_text(app)), screen_text(app)


def test_explanations_shaped_like_the_classifiers_are_read() -> None:
    @dataclass
    class Explanation:  # the shape of vpt_tracker.classify.model.Explanation
        relevance: float
        threshold: float
        up: list[tuple[str, float]]
        down: list[tuple[str, float]]

    up, down = explanation_terms(Explanation(0.9, 0.5, [("visual prompt", 1.5)], [("sheep", -0.7)]))
    assert (up, down) == (["visual prompt"], ["sheep"])
    text = highlight("A Visual Prompt for sheep.", up, down)
    styled = {str(text)[span.start : span.end]: str(span.style) for span in text.spans}
    assert styled == {"Visual Prompt": "bold green reverse", "sheep": "red underline"}


def test_highlighting_marks_the_words_the_model_counted_not_parts_of_other_words() -> None:
    # The model counts whole tokens ("or", "prompt", "task"; a hyphenated word is one token),
    # but the abstract was marked wherever the letters occur: "or" lowered the score of
    # Prompt-aligned Gradient (`classify explain`) and was underlined red inside "for",
    # "forgetting" and "prior", eleven times in L2P's abstract for the one word the model saw.
    fixtures = Path(__file__).parents[1] / "fixtures" / "classify"
    rows = [
        json.loads(line) for line in (fixtures / "relevant.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    abstract = next(r["abstract"] for r in rows if r["title"] == "Learning To Prompt for Continual Learning")
    text = highlight(abstract, ["prompt", "rehearsal", "continual learning"], ["or", "task"])
    spans = [(abstract[s.start : s.end].lower(), str(s.style), s.start, s.end) for s in text.spans]
    found: dict[str, int] = {}
    for word, _style, start, end in spans:
        found[" ".join(word.split())] = found.get(" ".join(word.split()), 0) + 1
        before, after = abstract[start - 1 : start], abstract[end : end + 1]
        assert not re.match(r"[A-Za-z0-9-]", before) and not re.match(r"[A-Za-z0-9-]", after), word
    assert found == {"prompt": 1, "rehearsal": 2, "continual learning": 4, "or": 1, "task": 3}
    assert {style for word, style, *_ in spans if word == "or"} == {"red underline"}


async def test_real_explain_without_a_trained_model_falls_back(
    sqlite: Engine, ids: dict[str, int], tmp_path: Any
) -> None:
    settings = Settings(data_dir=tmp_path, classifiers_dir=tmp_path / "classifiers")
    app = make_app(sqlite, explainer=store_explainer(sqlite, settings))
    async with app.run_test() as pilot:
        await settle(pilot)
        shown = str(app.main.query_one(DetailView).text)
        assert "no highlighting: no model for catalogue 'vpt'" in shown
        assert "Learnable prompt tokens for a frozen ViT." in shown


async def test_real_explain_with_a_trained_model_highlights_terms(
    sqlite: Engine, ids: dict[str, int], tmp_path: Any
) -> None:
    from vpt_tracker.classify.data import TrainingSet, read_jsonl
    from vpt_tracker.classify.model import CatalogueModel, Hyper
    from vpt_tracker.enqueue import explain, trained_dir

    fixtures = Path(__file__).parents[1] / "fixtures" / "classify"  # the classifier area's real papers
    data = TrainingSet(
        relevant=list(read_jsonl(fixtures / "relevant.jsonl")),
        unlabeled=list(read_jsonl(fixtures / "unlabeled.jsonl")),
    )
    model = CatalogueModel.train(
        "vpt", data, ["learnable", "pixel", "token"], Hyper(folds=3, seed=0), with_novel=False
    )
    settings = Settings(data_dir=tmp_path, classifiers_dir=tmp_path / "classifiers")
    model.save(trained_dir(settings, "vpt"))
    expected_up = {
        term.lower() for term, _weight in explain(sqlite, "vpt", ids["first"], settings=settings).up
    }
    assert expected_up

    app = make_app(sqlite, explainer=store_explainer(sqlite, settings))
    async with app.run_test() as pilot:
        await settle(pilot)
        detail = app.main.query_one(DetailView).text
        green = {str(detail)[s.start : s.end].lower() for s in detail.spans if "green" in str(s.style)}
        assert green and green <= expected_up


async def test_recount_shows_work_done_elsewhere(sqlite: Engine) -> None:
    cat = catalogue(sqlite, "vpt")
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        assert "Nothing to review" in str(app.main.query_one("#empty").render())
        new = candidate(sqlite, cat, "Arrived meanwhile", relevance=0.8)  # e.g. a nightly run
        app.recount()  # what the periodic timer calls
        await settle(pilot)
        assert app.candidates.ids == [new] and "1 pending remaining" in str(
            app.main.query_one("#status").render()
        )
        ReviewQueue(sqlite, "bob", "vpt").reject(new, "off-topic")
        app.recount()
        await settle(pilot)  # the recount reads in a worker
        assert app.remaining == 0 and app.candidates.ids == [new]  # the row stays until acted on


async def test_recount_fills_a_list_a_filter_emptied(sqlite: Engine) -> None:
    # The recount picked up new candidates only without a filter: a list that a filter had
    # emptied stayed empty, saying "No candidate matches", while new matches waited.
    cat = catalogue(sqlite, "vpt")
    candidate(sqlite, cat, "Visual Prompt Tuning", relevance=0.9)
    app = make_app(sqlite)
    async with app.run_test() as pilot:
        await pilot.press("slash", *"adapter", "enter")
        await settle(pilot)
        assert app.candidates.ids == []
        assert "No candidate matches" in str(app.main.query_one("#empty").render())
        new = candidate(sqlite, cat, "A CLIP adapter", relevance=0.6)  # e.g. a nightly run
        candidate(sqlite, cat, "Sheep grazing patterns", relevance=0.8)  # not a match
        app.recount()  # what the periodic timer calls
        await settle(pilot)
        assert app.candidates.ids == [new]
        assert "filter: adapter (1 match)" in str(app.main.query_one("#status").render())


def test_list_rows_fit_wide_characters_and_narrow_panes(sqlite: Engine) -> None:
    # Rows were measured in characters, not terminal cells: a title with CJK characters or an
    # emoji took up to twice its length and pushed the labels and venue out of the row. At a
    # narrow pane, a row whose title got no room at all showed its title and lost its venue
    # (`title[:-1]`), and a row with a status ("[rejected]" after a conflict) counted that
    # status twice.
    from vpt_tracker.review.panes import _row_strip

    cat = catalogue(sqlite, "vpt")
    rows = [
        candidate(
            sqlite,
            cat,
            "视觉提示调优：一种高效的视觉提示方法",
            relevance=0.9,
            proposed=["pixel"],
            venue="CVPR",
            year=2024,
        ),
        candidate(
            sqlite,
            cat,
            "🦙 Prompts for a frozen LLaMA-style ViT",
            relevance=0.8,
            proposed=["token"],
            venue="ICCV",
            year=2023,
        ),
        candidate(
            sqlite,
            cat,
            "DPC: Dual-Prompt Collaboration for Tuning Vision-Language Models",
            venue="arXiv",
            year=2025,
        ),
    ]
    ReviewQueue(sqlite, "bob", "vpt").reject(rows[2], "off-topic")
    for item in ReviewQueue(sqlite, "alice", "vpt").items(rows):
        for width in (100, 60, 36, 24):
            strip = _row_strip(item, width, Style())
            text = "".join(segment.text for segment in strip)
            assert strip.cell_length == width
            # a narrow row gives the venue up for the title (`test_narrow_rows_give_way_...`)
            if width >= 36:
                assert text.rstrip().endswith(item.venue_year), (width, text)
        assert item.title[:6] in "".join(segment.text for segment in _row_strip(item, 100, Style()))


def test_narrow_rows_give_way_to_the_title_labels_first_then_the_venue(sqlite: Engine) -> None:
    # A row kept its labels, venue and year whatever the width: on a 40-column terminal (a
    # list pane of 22 cells) the title got two ("V… l  ECCV 2022").
    from vpt_tracker.review.panes import TITLE_CELLS, _row_strip

    cat = catalogue(sqlite, "vpt")
    first = candidate(sqlite, cat, "Visual Prompt Tuning for Frozen Vision Transformers", relevance=0.9,
                      proposed=["learnable", "token"], venue="ECCV", year=2022)  # fmt: skip
    item = ReviewQueue(sqlite, "alice", "vpt").get(first)

    def row(width: int, every_catalogue: bool = False, **changes: Any) -> str:
        if every_catalogue:
            changes["catalogue"] = "generalizable-vlm"
        strip = _row_strip(replace(item, **changes), width, Style(), every_catalogue)
        assert strip.cell_length == width
        return "".join(segment.text for segment in strip)

    assert row(80).endswith("Vision Transf… learnable,token  ECCV 2022")  # room for everything
    assert row(46) == "  0.90 Visual Prompt Tun… learnable  ECCV 2022"  # 80 columns: as before
    assert row(40) == "  0.90 Visual Prompt … learna  ECCV 2022"  # the labels are cut
    assert row(36) == "  0.90 Visual Prompt Tun…  ECCV 2022"  # then dropped
    assert row(30) == "  0.90 Visual Prompt Tu…  2022"  # then the venue: the year stays
    assert row(22) == "  0.90 Visual Prompt …"  # 40 columns: the title alone
    assert row(22, title="Short") == "  0.90 Short      2022"  # a short title leaves room
    assert row(22, status="rejected") == "  0.90 [rejected] Vis…"  # the status is part of it
    for width in (22, 26, 30, 36):  # the title keeps TITLE_CELLS, its cut included
        assert row(width)[7 : 7 + TITLE_CELLS - 1] == item.title[: TITLE_CELLS - 1], width
    # In a view of every catalogue, the catalogue's name is cut, and dropped last.
    assert row(46, True) == "  0.90 Visual Prompt …  ECCV 2022 · generaliz…"
    assert row(36, True) == "  0.90 Visual Prompt …  2022 · gene…"
    assert row(30, True) == "  0.90 Visual Prompt …  gener…"
    assert row(26, True) == "  0.90 Visual Prompt Tuni…"


def test_detail_marks_labels_proposed_by_a_cue(sqlite: Engine, ids: dict[str, int]) -> None:
    item = ReviewQueue(sqlite, "x").get(ids["first"])
    from_cue = replace(item, proposed_labels=["learnable", "robustness"], label_scores={"learnable": 0.9})
    assert "proposed: learnable 0.90, robustness (cue)" in str(render_detail(from_cue, None))


async def test_brackets_in_titles_reasons_labels_and_filters_are_text_not_markup(sqlite: Engine) -> None:
    # A real arXiv title (corpus, 2025): Textual read "[CLS]" as a style and hid it, and a
    # "[/]" typed into the label editor or the filter, or in another reviewer's reason,
    # crashed the app with a MarkupError.
    title = "[CLS] is Not Enough: Multi-Label Recognition via Patch-Level Inference and Adaptive Aggregation"
    cat = catalogue(sqlite, "vpt", entry_labels=[["learnable", "pixel", "token"]])
    first = candidate(sqlite, cat, title, relevance=0.9, proposed=["token"])
    second = candidate(sqlite, cat, "Exploring Visual Prompts", relevance=0.5, proposed=["pixel"])
    app = make_app(sqlite, reject_reasons=["[red]off-topic[/red]"])
    async with app.run_test() as pilot:
        await pilot.press("a")
        assert str(app.screen.query_one("#dialog-title").render()) == f"Accept #{first}: {title}"
        await pilot.press("ctrl+u", *"[/]", "enter")
        await settle(pilot)
        assert "unknown: [/]" in str(app.screen.query_one("#error").render())
        await pilot.press("escape", "x")
        await settle(pilot)
        assert "1. [red]off-topic[/red]" in str(
            app.screen.query_one(OptionList).get_option_at_index(0).prompt
        )
        await pilot.press("1")
        assert status_of(sqlite, first) == ("rejected", None, "[red]off-topic[/red]")
        ReviewQueue(sqlite, "bob", "vpt").reject(second, "[/] a duplicate")  # while Alice looks at it
        await pilot.press("a", "enter")
        await settle(pilot)
        assert any("[/] a duplicate" in n.message for n in app._notifications)
        await pilot.press("slash", *"[/]", "enter")
        await settle(pilot)
        assert "filter: [/]" in str(app.main.query_one("#status").render())
        assert "“[/]”" in str(app.main.query_one("#empty").render())


async def test_a_nul_pasted_into_a_reason_or_the_filter_is_refused(engine: Engine) -> None:
    # PostgreSQL stores no NUL in text: a reason or a filter pasted with one raised a DataError
    # ("PostgreSQL text fields cannot contain NUL (0x00) bytes") that closed the app.
    from textual import events

    cat = catalogue(engine, "vpt")
    first = candidate(engine, cat, "Visual Prompt Tuning", relevance=0.9)
    candidate(engine, cat, "Exploring Visual Prompts", relevance=0.7)
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pilot.press("x", "tab")
        assert isinstance(app.screen.focused, Input)
        app.screen.focused.post_message(events.Paste("off\x00topic"))
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert "a reason cannot contain a NUL character" in screen_text(app)
        assert app.screen is not app.main and log(engine) == []  # the reason can be mended
        await pilot.press("ctrl+u", *"off-topic", "enter")
        await settle(pilot)
        assert status_of(engine, first) == ("rejected", None, "off-topic")
        await pilot.press("slash")
        assert isinstance(app.screen.focused, Input)
        app.screen.focused.post_message(events.Paste("prompt\x00"))
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running and app.screen is app.main and len(app.candidates.ids) == 1
        assert any("a filter cannot contain a NUL character" in n.message for n in app._notifications)
    with pytest.raises(UserError, match="NUL"):  # a listed reason (review.reject_reasons) too
        ReviewQueue(engine, "alice", "vpt").reject(first, "dup\x00licate")


def screen_text(app: ReviewApp) -> str:
    """What the terminal shows, as plain text (the way `App.export_screenshot` renders it)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def test_dialog_text_wraps_instead_of_being_cut_at_the_dialog_edge(sqlite: Engine) -> None:
    # A real arXiv title (corpus, 2025-06-28) and prompt-adaptation's 23 labels: on an 80x24
    # terminal the title, the list of valid labels and the warning ran past the dialog's edge
    # and were cut, so the reviewer saw neither the last valid labels nor "Enter again
    # accepts anyway".
    title = (
        "DiMPLe -- Disentangled Multi-Modal Prompt Learning: Enhancing Out-Of-Distribution "
        "Alignment with Invariant and Spurious Feature Separation"
    )
    cat = catalogue(sqlite, "vpt", preset="prompt-adaptation")
    candidate(sqlite, cat, title, relevance=0.9, proposed=["test-time"])
    app = make_app(sqlite)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a", "enter")
        await settle(pilot)
        shown = " ".join(screen_text(app).split())
        assert "Feature Separation" in shown  # the end of the title
        assert "calibration, survey" in shown  # the last valid labels
        assert "accepts anyway." in shown  # the end of the warning
        await pilot.press("escape", "x")
        await settle(pilot)
        assert "Feature Separation" in " ".join(screen_text(app).split())


async def test_a_small_terminal_keeps_the_focused_input_of_a_dialog_in_view(sqlite: Engine) -> None:
    cat = catalogue(sqlite, "vpt", preset="prompt-adaptation")
    candidate(sqlite, cat, "Test-time prompt tuning for zero-shot generalization", proposed=["test-time"])
    reasons = ["off-topic", "not a vision model", "no base-to-novel experiments", "duplicate", "survey"]
    app = make_app(sqlite, reject_reasons=reasons)
    async with app.run_test(size=(50, 14)) as pilot:
        for key in ("a", "x"):
            await pilot.press(key)
            await pilot.press("tab") if key == "x" else None
            await settle(pilot)
            focused = app.screen.focused
            assert isinstance(focused, Input)
            dialog = app.screen.query_one("#dialog")
            assert dialog.region.contains_region(focused.region), key
            await pilot.press("escape")


def autovp(sqlite: Engine) -> str:
    """A real paper with a long abstract (AutoVP, ICLR 2024) and a short one after it; its abstract."""
    fixtures = Path(__file__).parents[1] / "fixtures" / "classify"
    paper = json.loads((fixtures / "relevant.jsonl").read_text(encoding="utf-8").splitlines()[0])
    cat = catalogue(sqlite, "vpt")
    candidate(sqlite, cat, paper["title"], relevance=0.9, abstract=paper["abstract"], arxiv_id="2310.08381")
    candidate(sqlite, cat, "Exploring Visual Prompts", relevance=0.5, abstract="Pixel padding prompts.")
    return str(paper["title"]) + " " + str(paper["abstract"])


def detail_shown(app: ReviewApp) -> str:
    """The text inside the detail pane's border, as the terminal shows it, lines joined."""
    region = app.main.query_one(DetailView).region.shrink((1, 1, 1, 1))
    lines = screen_text(app).splitlines()[region.y : region.bottom]
    return " ".join(" ".join(line[region.x : region.right] for line in lines).split())


async def test_a_long_abstract_is_wrapped_inside_the_scrollbar_not_under_it(sqlite: Engine) -> None:
    # The abstract was wrapped at the pane's width before the scrollbar its length brings took
    # two columns of it: every line lost its last two characters ("Visua", "hithert", and the
    # arXiv link read ".../abs/2310" then "8381").
    text = autovp(sqlite)
    app = make_app(sqlite)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = detail_shown(app)
        assert shown.startswith("AutoVP: An Automated Visual Prompting")
        fields = "venue unknown relevance v pending arXiv https arxiv org abs"
        words = set(re.findall(r"[A-Za-z]+", f"{text} {fields}"))
        assert set(re.findall(r"[A-Za-z]+", shown)) <= words
        assert "2310.08381" in shown.replace(" ", "")


async def test_keys_scroll_a_long_abstract_in_the_detail_pane(sqlite: Engine) -> None:
    # On an 80x24 terminal the detail pane shows a third of AutoVP's abstract, and no key
    # scrolled it (the pane takes no focus): a keyboard-only reviewer decided without the rest.
    autovp(sqlite)
    ending = "expected to accelerate"
    app = make_app(sqlite)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert ending not in detail_shown(app)
        for _ in range(5):
            await pilot.press("space")
        await settle(pilot)
        assert ending in detail_shown(app)
        assert app.candidates.cursor == 0 and log(sqlite) == []  # the highlight did not move
        for _ in range(5):
            await pilot.press("b")
        await settle(pilot)
        assert detail_shown(app).startswith("AutoVP: An Automated")  # the top again
        await pilot.press("space", "j")
        await settle(pilot)
        assert app.main.query_one(DetailView).scroll_offset.y == 0  # the next paper from its top
        await pilot.press("question_mark")
        await settle(pilot)
        assert "Scroll detail down" in screen_text(app)


async def test_the_help_scrolls_by_keys_on_a_small_terminal(sqlite: Engine, ids: dict[str, int]) -> None:
    # On a 40x12 terminal the help showed its first three keys, each description wrapped
    # under its key, and no key scrolled to the others: the dialog takes no focus.
    app = make_app(sqlite)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.press("question_mark")
        await settle(pilot)
        assert "j ↓    Down" in screen_text(app)  # one row per key
        assert "Esc closes" not in screen_text(app)  # the end of the help
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown", "pagedown")
        await settle(pilot)
        assert "Esc closes" in screen_text(app)
        await pilot.press("pageup", "up", "k")
        await settle(pilot)
        assert "Esc closes" not in screen_text(app)
        await pilot.press("escape")
        assert app.screen is app.main and app.candidates.cursor == 0 and log(sqlite) == []


async def test_help_and_quit_are_in_the_footer_of_an_80_column_terminal(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    """The footer showed j/k Down/Up first, and at 80 columns `? Help` and `q Quit` fell off
    its end: on a standard terminal nothing said how to find the keys or leave."""
    app = make_app(sqlite)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        footer = screen_text(app).splitlines()[-1]
        for shown in ("a Accept", "x Reject", "u Undo", "? Help", "q Quit"):
            assert shown in " ".join(footer.split("\u00a0")), footer


async def test_the_status_line_wraps_on_an_80_column_terminal_instead_of_losing_its_end(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    """The counter line was one row, cut at the terminal's edge: at 80 columns it stopped at
    "0 deferred", so the "1 undone" the session counts was never seen, nor a filter's match count."""
    app = make_app(sqlite)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("d", "u", "slash", *"prompt", "enter")
        await settle(pilot)
        header = " ".join(" ".join(screen_text(app).splitlines()[:3]).split())
        assert "this session: 0 accepted, 0 rejected, 1 deferred, 1 undone" in header, header
        assert "filter: prompt (2 matches)" in header, header  # it said "(2 match)"
        assert app.candidates.region.y == app.main.query_one("#status").region.bottom  # nothing covered
        await pilot.press("d")  # the list still follows the cursor below the taller line
        await settle(pilot)
        assert status_of(sqlite, ids["first"])[0] == "deferred"
        assert "filter: prompt (1 match)" in screen_text(app)


@contextmanager
def another_writer(engine: Engine, busy_timeout_ms: int) -> Iterator[tuple[Engine, Any]]:
    """An engine on `engine`'s SQLite file with the given busy timeout, and a second connection
    (another process, e.g. a nightly run) holding the write lock until the test lets go."""
    import sqlite3

    waiting = make_engine(str(engine.url))
    event.listen(
        waiting,
        "connect",
        lambda connection, _record: connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}"),
    )
    writer = sqlite3.connect(str(engine.url.database), isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield waiting, writer
    finally:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        writer.close()
        waiting.dispose()


async def until(pilot: Any, condition: Any, seconds: float = 5.0) -> None:
    """Let the app run until `condition()` holds (it fails the test after `seconds`)."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


def status_line(app: ReviewApp) -> str:
    return str(app.main.query_one("#status").render())


async def test_the_app_stays_responsive_while_a_decision_waits_for_the_database(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    """A decision waited for SQLite on the app's thread: while another writer held it (up to
    the 30 s busy timeout) the screen did not change, and keys pressed meanwhile were dropped.
    Now the decision waits in a worker: the screen says so, moves act, further decisions queue
    in key order, and a second key on the row that waits is refused, not acted on unseen."""
    with another_writer(sqlite, 5000) as (engine, writer):
        app = make_app(engine)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.pause()
            await pilot.press("d")  # waits for the writer
            await until(pilot, lambda: "waiting for the database" in status_line(app))
            assert "⏳ waiting for the database… (deferring #1)" in status_line(app)
            assert "[deferring…] Visual" in screen_text(app)  # the row says it waits
            await pilot.press("d")  # again, on the same row: refused, not a defer of the next paper
            assert any(n.message == "defer of #1 ignored: deferring still waits for the database"
                       for n in app._notifications)  # fmt: skip
            await pilot.press("j")  # moves act at once
            assert app.candidates.current is not None and app.candidates.current.candidate_id == ids["second"]
            assert str(app.main.query_one(DetailView).text).startswith("Exploring Visual Prompts")
            await pilot.press("d", "u")  # queued behind the first, in this order
            await pilot.pause()
            assert "(deferring #1; 2 more decisions queued)" in status_line(app)
            assert log(sqlite) == []  # nothing written yet
            writer.execute("ROLLBACK")  # the writer is done, within the busy timeout
            await until(pilot, lambda: not app.waiting_decisions)
            await settle(pilot)
            assert log(sqlite) == [("defer", "alice"), ("defer", "alice"), ("undo", "alice")]
            assert status_of(sqlite, ids["first"])[0] == "deferred"
            assert status_of(sqlite, ids["second"])[0] == "pending"  # deferred, then undone
            assert app.candidates.ids == [ids["second"], ids["third"]]
            assert app.candidates.current is not None and app.candidates.current.candidate_id == ids["second"]
            assert "waiting" not in status_line(app) and "[deferring…]" not in screen_text(app)
            assert "2 deferred, 1 undone" in status_line(app)


async def test_a_decision_the_database_does_not_answer_drops_those_queued_after_it(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    """Past the busy timeout the decision is not written and its row stays; the decisions
    queued behind it rest on it (an undo would undo the decision before) and are not taken
    either, and the notices say which: nothing is lost unsaid, nothing is done twice."""
    with another_writer(sqlite, 3000) as (engine, writer):  # all four keys queue within it
        app = make_app(engine)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.pause()
            await pilot.press("d", "j", "d", "u")
            locked = "the database did not answer (database is locked); nothing was changed: try again"
            dropped = "not done, as the decision before it was not: deferring #2, undoing your last decision"
            await until(pilot, lambda: any(n.message == dropped for n in app._notifications), 15)
            await settle(pilot)
            assert locked in [n.message for n in app._notifications]
            assert log(sqlite) == [] and app.candidates.ids == [ids["first"], ids["second"], ids["third"]]
            assert app.summary.deferred == 0 and "waiting" not in status_line(app)
            assert "[deferring…]" not in screen_text(app)
            writer.execute("ROLLBACK")
            await pilot.press("d")  # the same key works once the database answers
            await until(pilot, lambda: log(sqlite) == [("defer", "alice")])
            assert status_of(sqlite, ids["second"])[0] == "deferred"


async def test_quitting_while_a_decision_waits_lets_it_finish(sqlite: Engine, ids: dict[str, int]) -> None:
    """`q` under a waiting decision quits once it is written, and the summary counts it."""
    with another_writer(sqlite, 5000) as (engine, writer):
        app = make_app(engine)
        async with app.run_test() as pilot:
            await pilot.pause()
            await pilot.press("d", "q")
            await pilot.pause()
            assert app.is_running
            assert any(n.message == "quitting once the database answers (1 decision waiting)"
                       for n in app._notifications)  # fmt: skip
            writer.execute("ROLLBACK")
            await until(pilot, lambda: not app.is_running)
        assert app.return_value is not None and app.return_value.deferred == 1
        assert status_of(sqlite, ids["first"])[0] == "deferred"


class Holder:
    """Another session holding the database so that even a read waits for it: on PostgreSQL a
    lock on the candidates and catalogues tables (as a migration takes one), on SQLite a connection in
    exclusive locking mode (readers wait for it, unlike for a writer in WAL mode).

    `hold` takes it; `release` lets go, at the latest after `seconds` (so that an app that
    waits for it on its own thread, as before, fails the test instead of hanging it)."""

    def __init__(self, engine: Engine, seconds: float = 20.0) -> None:
        self.engine, self.seconds = engine, seconds
        self._held: Any = None
        self._timer: Any = None
        import threading

        self._lock = threading.Lock()

    def hold(self) -> None:
        import sqlite3
        import threading

        held: Any
        if self.engine.dialect.name == "sqlite":
            # Exclusive locking mode needs the file to itself: the app's idle pooled connections
            # are closed (it opens new ones, which then wait).
            self.engine.dispose()
            database = str(self.engine.url.database)
            held = sqlite3.connect(database, timeout=5, isolation_level=None, check_same_thread=False)
            held.execute("PRAGMA locking_mode=EXCLUSIVE")
            held.execute("BEGIN EXCLUSIVE")
            held.execute("SELECT count(*) FROM candidates").fetchall()
        else:
            held = self.engine.connect()
            held.exec_driver_sql("LOCK TABLE candidates, catalogues IN ACCESS EXCLUSIVE MODE")
        self._held = held
        self._timer = threading.Timer(self.seconds, self.release)
        self._timer.start()

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, None
            if held is None:
                return
            if self.engine.dialect.name == "sqlite":
                held.close()  # closing ends the exclusive locking mode
            else:
                held.rollback()
                held.close()
        if self._timer is not None:
            self._timer.cancel()


@contextmanager
def held_database(db_url: str) -> Iterator[tuple[Engine, Holder]]:
    """A migrated store on `db_url` with three candidates (first, second, third by score),
    an engine for the app and a `Holder` of it."""
    engine = make_engine(db_url)
    upgrade(engine)
    holder = Holder(engine)
    try:
        yield engine, holder
    finally:
        holder.release()
        engine.dispose()


def three_candidates(engine: Engine) -> dict[str, int]:
    cat = catalogue(engine, "vpt", entry_labels=[["learnable", "pixel", "token"]])
    return {
        "first": candidate(engine, cat, "Visual Prompt Tuning", relevance=0.9, abstract="Prompt tokens."),
        "second": candidate(engine, cat, "Exploring Visual Prompts", relevance=0.7, abstract="Pixels."),
        "third": candidate(engine, cat, "Sheep grazing patterns", relevance=0.2, abstract="Unrelated."),
    }


def notices(app: ReviewApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_the_app_stays_responsive_while_a_filter_waits_for_the_database(db_url: str) -> None:
    """A filter read the database on the app's thread: while another session held it (a
    migration's lock on PostgreSQL, an exclusive lock on SQLite) the screen stood still, and
    the keys pressed meanwhile were dropped. Now the filter reads in a worker: the status line
    says it waits, moves act at once, a newer filter supersedes it (the older one's list is
    never shown), and a decision on the paper in view is taken, its list read after it."""
    with held_database(db_url) as (engine, holder):
        ids = three_candidates(engine)
        app = make_app(engine)
        async with app.run_test(size=(100, 24)) as pilot:
            await settle(pilot)
            holder.hold()
            try:
                await pilot.press("slash", *"sheep", "enter")  # waited here, on the app's thread
                waiting = "⏳ waiting for the database… (filter: sheep)"
                await until(pilot, lambda: waiting in status_line(app))
                await pilot.press("j")  # moves act at once
                assert app.candidates.current is not None
                assert app.candidates.current.candidate_id == ids["second"]
                assert str(app.main.query_one(DetailView).text).startswith("Exploring Visual Prompts")
                await pilot.press("slash", *["backspace"] * 5, *"prompt", "enter")  # supersedes `sheep`
                await until(pilot, lambda: "(filter: prompt)" in status_line(app))
                assert "sheep" not in status_line(app)
                await pilot.press("d")  # on the paper in view, of the list shown
                await until(pilot, lambda: f"deferring #{ids['second']}" in status_line(app))
                assert log(engine) == [] and app.filter_text == ""  # nothing answered yet
            finally:
                holder.release()
            await settle(pilot)
            assert log(engine) == [("defer", "alice")]
            assert status_of(engine, ids["second"])[0] == "deferred"
            # The list of `prompt`, read after the defer: without the deferred paper, and
            # `sheep`'s list was never shown.
            assert app.filter_text == "prompt" and app.candidates.ids == [ids["first"]]
            assert "2 pending remaining · filter: prompt (1 match)" in status_line(app)
            assert "waiting" not in status_line(app)
            assert not [m for m in notices(app) if "ignored" in m or "did not answer" in m], notices(app)


async def test_rows_read_while_the_database_waits_are_placeholders_not_a_frozen_screen(db_url: str) -> None:
    """A page down past the rows in hand read them on the app's thread, inside Textual's
    drawing: held by another session, the screen froze. Now they are read in a worker and drawn
    as placeholders meanwhile; a decision key on a row not read yet is refused, saying so
    (the reviewer has not seen that paper), and acts once the row is shown."""
    with held_database(db_url) as (engine, holder):
        many_candidates(engine, catalogue(engine, "vpt"), 2 * CandidateList.PAGE)
        app = make_app(engine)
        async with app.run_test(size=(100, 24)) as pilot:
            await settle(pilot)
            holder.hold()
            try:
                height = app.candidates.scrollable_content_region.height
                await pilot.press(*["pagedown"] * (CandidateList.PAGE // (height - 1) + 1))  # waited here
                await until(pilot, lambda: "… reading…" in screen_text(app))
                assert app.candidates.cursor >= CandidateList.PAGE
                assert "reading this candidate from the database" in str(app.main.query_one(DetailView).text)
                shown = app.candidates.ids[app.candidates.cursor]
                await pilot.press("d")
                refused = f"defer of #{shown} ignored: its row is still being read from the database"
                assert refused in notices(app)
                await until(pilot, lambda: "waiting for the database… (reading rows)" in status_line(app))
                await pilot.press("k")  # moves act meanwhile
                assert app.candidates.ids[app.candidates.cursor] != shown
                await pilot.press("j")
            finally:
                holder.release()
            await settle(pilot)
            assert "reading" not in screen_text(app) and "waiting" not in status_line(app)
            assert app.candidates.current is not None and app.candidates.current.candidate_id == shown
            await pilot.press("d")  # the row is shown: the key acts
            await settle(pilot)
            assert status_of(engine, shown)[0] == "deferred" and app.summary.deferred == 1


async def test_the_label_editor_checks_in_the_background(db_url: str) -> None:
    """The label editor's check of where the list would show the labels read the database on
    the app's thread: held by another session, Enter froze the screen. Now the check waits in
    a worker, the editor and the status line say so, and its answer comes once it is read."""
    with held_database(db_url) as (engine, holder):
        cat = catalogue(engine, "vpt", preset="prompt-adaptation", readme=PROMPT_ADAPTATION_README)
        first = candidate(engine, cat, "Test-time prompt tuning", relevance=0.9, proposed=["test-time"])
        app = make_app(engine)
        async with app.run_test(size=(100, 24)) as pilot:
            await settle(pilot)
            holder.hold()
            try:
                await pilot.press("a")  # the valid labels were read when the app opened
                await pilot.press("enter")  # the check waited here, on the app's thread
                await until(pilot, lambda: "where the labels would be published" in status_line(app))
                assert "checking where the list would show them" in screen_text(app)
                assert isinstance(app.screen, AcceptScreen)
            finally:
                holder.release()
            await settle(pilot)
            assert "Enter again accepts anyway" in screen_text(app)
            assert "waiting" not in status_line(app)
            await pilot.press("enter")
            await settle(pilot)
            assert status_of(engine, first)[:2] == ("accepted", ["test-time"])


async def test_an_enter_typed_while_the_valid_labels_are_read_is_answered_once_they_are(db_url: str) -> None:
    """In a view of every catalogue the label editor reads the catalogue's valid labels when
    it first opens: it opens at once, says it reads them, and an Enter typed meanwhile is
    neither dropped nor taken unchecked: it is answered once they are read."""
    with held_database(db_url) as (engine, holder):
        ids = three_candidates(engine)
        app = ReviewApp(ReviewQueue(engine, "alice"), reject_reasons=REASONS, explainer=None, explain_delay=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            holder.hold()
            try:
                await pilot.press("a")  # read the labels on the app's thread before it opened
                await until(pilot, lambda: "Valid: … (reading them from the database)" in screen_text(app))
                await pilot.press("end", *", pxel", "enter")
                waiting = "reading the valid labels from the database"
                await until(pilot, lambda: waiting in screen_text(app))
                assert log(engine) == []
            finally:
                holder.release()
            await settle(pilot)
            assert "unknown: pxel" in screen_text(app)  # checked once read, the editor still open
            assert "Valid: learnable, pixel, token" in screen_text(app)
            await pilot.press(*["backspace"] * 6, "enter")
            await settle(pilot)
            assert status_of(engine, ids["first"])[0] == "accepted" and log(engine) == [("accept", "alice")]


async def test_a_recount_read_before_a_decision_is_read_again_after_it(db_url: str) -> None:
    """A read that started before a decision was written may not show it: taken as it came,
    a recount under a defer said one more candidate remained than did. It is read again once
    the decisions are written; a recount asked while one waits reads after it."""
    import threading

    gate = threading.Event()

    class SlowCounts(ReviewQueue):
        """Counts as read before the gate opens, answered after (a slow database)."""

        def count(self, **kw: Any) -> int:
            counted = super().count(**kw)
            if threading.current_thread() is not threading.main_thread():
                gate.wait(10)
            return counted

    with held_database(db_url) as (engine, _holder):
        ids = three_candidates(engine)
        app = ReviewApp(SlowCounts(engine, "alice", "vpt"), explainer=None, explain_delay=0)
        async with app.run_test(size=(100, 24)) as pilot:
            await settle(pilot)
            app.recount()  # what the periodic timer calls: it counted on the app's thread
            await until(pilot, lambda: "⏳ waiting for the database… (recount)" in status_line(app))
            await pilot.press("d")
            await until(pilot, lambda: status_of(engine, ids["first"])[0] == "deferred")
            await until(pilot, lambda: not app.waiting_decisions)
            assert app.remaining == 2
            gate.set()  # the recount counted 3, before the defer
            await settle(pilot)
            assert app.remaining == 2 and "2 pending remaining" in status_line(app)


async def test_quitting_while_a_read_waits_for_the_database(db_url: str) -> None:
    """`q` counted what remains on the app's thread: held by another session, it did not
    quit until the database answered. The count now waits in a worker, and a second `q`
    leaves without it (*still pending: unknown*)."""
    import threading

    with held_database(db_url) as (engine, holder):
        three_candidates(engine)
        app = make_app(engine)
        try:
            async with app.run_test(size=(100, 24)) as pilot:
                await settle(pilot)
                holder.hold()
                await pilot.press("q")  # waited here, on the app's thread
                await until(pilot, lambda: "the count for the summary" in status_line(app))
                assert app.is_running
                await pilot.press("q")
                await until(pilot, lambda: not app.is_running)
            # The count left waiting does not keep the process: its thread is a daemon (the
            # interpreter waited for a thread of Textual's, and the summary with it).
            left = [thread for thread in threading.enumerate() if thread.name == "review read: quit"]
            assert left and all(thread.daemon for thread in left)
        finally:
            holder.release()
        assert app.return_value is not None and app.return_value.remaining is None


async def test_a_database_that_stays_locked_is_a_notice_not_a_crash(
    sqlite: Engine, ids: dict[str, int]
) -> None:
    """Another process holding the SQLite file past the busy timeout (a long nightly write)
    crashed the app with a traceback. The decision is not taken, the reviewer is told, and
    the same key works once the database is free."""
    import sqlite3

    engine = make_engine(str(sqlite.url))
    event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA busy_timeout=100"))
    app = make_app(engine)
    async with app.run_test() as pilot:
        await settle(pilot)
        blocker = sqlite3.connect(str(sqlite.url.database), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            await pilot.press("d")  # defer: a write
            await settle(pilot)
            await pilot.press("u")  # undo: nothing of mine to undo yet, but it reads
            await settle(pilot)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        messages = [n.message for n in app._notifications]
        assert any("database" in m and "nothing was changed" in m for m in messages), messages
        assert status_of(sqlite, ids["first"])[0] == "pending"
        await pilot.press("d")
        await settle(pilot)
        assert status_of(sqlite, ids["first"])[0] == "deferred"
    engine.dispose()


@contextmanager
def behind_a_proxy(db_url: str) -> Iterator[tuple[Engine, TcpProxy]]:
    """An engine on the test's PostgreSQL schema through a `TcpProxy` the test can cut."""
    url = make_url(db_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = make_engine(url.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            yield engine, proxy
        finally:
            engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_database_that_went_away_is_a_notice_for_filter_accept_and_quit(db_url: str) -> None:
    """A restarted PostgreSQL server (here, the connection to it cut, and new ones refused)
    was a notice for the keys that act in `action_review` only: a filter typed then, the
    placement check of the label editor, and Ctrl+Q closed the app with a traceback, and `q`
    said "try again" instead of leaving."""
    setup = make_engine(db_url)
    upgrade(setup)
    cat = catalogue(setup, "vpt", preset="prompt-adaptation", readme=PROMPT_ADAPTATION_README)
    first = candidate(setup, cat, "Test-time prompt tuning", relevance=0.9, proposed=["test-time"])
    setup.dispose()
    with behind_a_proxy(db_url) as (engine, proxy):
        app = make_app(engine)
        # Counted below: no periodic recount may add its own notice (a slow run passed 15 s).
        app.RECOUNT_SECONDS = 3600
        async with app.run_test() as pilot:
            await pilot.press("a")  # the label editor is open
            await settle(pilot)
            proxy.stop()  # the server restarts
            await pilot.press("enter")
            await settle(pilot)
            assert app.is_running and app.screen is app.main
            await pilot.press("slash", *"prompt", "enter")
            await settle(pilot)
            assert app.is_running and app.filter_text == "" and app.candidates.ids == [first]
            messages = [n.message for n in app._notifications]
            assert len([m for m in messages if m.startswith("the database did not answer (")]) == 2, messages
            await pilot.press("q")
            await settle(pilot)
        assert app.return_value is not None and app.return_value.remaining is None
        assert app.return_value.render().endswith("; still pending: unknown (the database did not answer)")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_rows_drawn_while_the_database_is_away_are_placeholders(db_url: str) -> None:
    """A page down past the rows in hand while PostgreSQL restarted: the list fetched the
    rows it drew from inside Textual's drawing, and the error closed the app."""
    setup = make_engine(db_url)
    upgrade(setup)
    many_candidates(setup, catalogue(setup, "vpt"), 2 * CandidateList.PAGE)
    setup.dispose()
    with behind_a_proxy(db_url) as (engine, proxy):
        app = make_app(engine)
        async with app.run_test() as pilot:
            await settle(pilot)
            proxy.stop()  # the server restarts
            height = app.candidates.scrollable_content_region.height
            await pilot.press(*["pagedown"] * (CandidateList.PAGE // (height - 1) + 1))
            await settle(pilot)
            assert app.is_running
            assert "(the database did not answer)" in screen_text(app)
            assert any(n.message.startswith("the database did not answer (") for n in app._notifications)
            proxy.start()  # it is back
            app.recount()  # what the periodic timer calls
            await settle(pilot)
            assert "(the database did not answer)" not in screen_text(app)
            await pilot.press("d")  # the highlighted row is a candidate again
            await settle(pilot)
            assert app.summary.deferred == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_explain_the_database_did_not_answer_is_asked_again(db_url: str, tmp_path: Path) -> None:
    """A failed explain (here PostgreSQL restarting) was kept for the paper for the rest of the
    session, as if it were the answer: coming back to it showed the failure again, unasked."""
    setup = make_engine(db_url)
    upgrade(setup)
    cat = catalogue(setup, "vpt")
    candidate(setup, cat, "Visual Prompt Tuning", relevance=0.9, abstract="Learnable prompt tokens.")
    candidate(setup, cat, "Exploring Visual Prompts", relevance=0.7, abstract="Pixel padding prompts.")
    setup.dispose()
    settings = Settings(data_dir=tmp_path, classifiers_dir=tmp_path / "classifiers")  # no model
    with behind_a_proxy(db_url) as (engine, proxy):
        app = make_app(engine, explainer=store_explainer(engine, settings), explain_delay=3600)
        async with app.run_test() as pilot:
            await settle(pilot)
            proxy.stop()  # the server restarts
            app.explain_delay = 0
            await pilot.press("j")
            await settle(pilot)
            shown = str(app.main.query_one(DetailView).text)
            assert "no highlighting, explain failed" in shown, shown
            proxy.start()  # it is back
            await pilot.press("k")
            await settle(pilot)
            await pilot.press("j")
            await settle(pilot)
            # asked again: the answer that lasts, for the whole catalogue
            shown = str(app.main.query_one(DetailView).text)
            assert "no highlighting: no model for catalogue 'vpt'" in shown, shown
