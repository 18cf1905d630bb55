"""Screenshots of the main screens, compared with the committed SVGs in __snapshots__/.

Regenerate after an intended change with `pytest tests/review/test_snapshots.py --snapshot-update`
and look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot

from vpt_tracker.review.app import ReviewApp
from vpt_tracker.review.queue import ReviewQueue
from vpt_tracker.store import make_engine
from vpt_tracker.store.migrate import upgrade

from .factory import candidate, catalogue

SIZE = (120, 32)


@pytest.fixture
def sqlite(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'review.db'}")
    upgrade(engine)
    return engine


def filled(engine: Engine) -> ReviewApp:
    cat = catalogue(engine, "awesome-vpt", entry_labels=[["learnable", "pixel", "token", "generative"]])
    candidate(
        engine,
        cat,
        "Visual Prompt Tuning",
        relevance=0.97,
        proposed=["learnable", "token"],
        abstract="We introduce Visual Prompt Tuning (VPT), an efficient alternative to full fine-tuning: "
        "a few learnable prompt tokens in the input space of a frozen Transformer.",
        authors=["Menglin Jia", "Luming Tang", "Bor-Chun Chen"],
        venue="ECCV",
        year=2022,
        arxiv_id="2203.12119",
        code_url="https://github.com/kmnp/vpt",
        comment="ECCV 2022",
        base_to_novel=0.2,
        base_to_novel_flag=False,
    )
    candidate(
        engine,
        cat,
        "Learning to Prompt for Vision-Language Models",
        relevance=0.81,
        proposed=["learnable"],
        abstract="Context optimisation learns prompt vectors for CLIP.",
        venue="IJCV",
        year=2022,
        arxiv_id="2109.01134",
        base_to_novel=0.9,
        base_to_novel_flag=True,
    )
    candidate(
        engine, cat, "Grazing patterns of alpine sheep", relevance=0.12, abstract="Unrelated.", year=2024
    )

    def explainer(_catalogue: str, _paper_id: int) -> dict[str, Any]:
        return {"up": ["prompt tokens", "frozen", "prompt"], "down": ["fine-tuning"]}

    return ReviewApp(
        ReviewQueue(engine, "alice", "awesome-vpt"),
        reject_reasons=["off-topic", "not a vision model", "duplicate"],
        opener=lambda _url: None,
        explainer=explainer,
        explain_delay=0,
    )


async def settled(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_main_screen(snap_compare: Any, sqlite: Engine) -> None:
    assert snap_compare(filled(sqlite), terminal_size=SIZE, run_before=settled)


def test_second_row_highlighted(snap_compare: Any, sqlite: Engine) -> None:
    assert snap_compare(filled(sqlite), press=["j"], terminal_size=SIZE, run_before=settled)


def test_help_screen(snap_compare: Any, sqlite: Engine) -> None:
    assert snap_compare(filled(sqlite), press=["question_mark"], terminal_size=SIZE, run_before=settled)


def test_accept_label_editor(snap_compare: Any, sqlite: Engine) -> None:
    assert snap_compare(filled(sqlite), press=["a"], terminal_size=SIZE, run_before=settled)


def test_reject_reason_prompt(snap_compare: Any, sqlite: Engine) -> None:
    assert snap_compare(filled(sqlite), press=["x"], terminal_size=SIZE, run_before=settled)


def test_empty_queue(snap_compare: Any, sqlite: Engine) -> None:
    catalogue(sqlite, "awesome-vpt")
    app = ReviewApp(ReviewQueue(sqlite, "alice", "awesome-vpt"), explainer=lambda *_: {})
    assert snap_compare(app, terminal_size=SIZE)


@pytest.mark.parametrize("columns", [40, 80])
def test_main_screen_on_a_narrow_terminal(snap_compare: Any, sqlite: Engine, columns: int) -> None:
    """At 40 columns the rows keep their titles and drop labels and venue (they kept those and
    showed "V…"); at 80 they keep the labels, cut, and the venue."""
    assert snap_compare(filled(sqlite), terminal_size=(columns, 24), run_before=settled)
