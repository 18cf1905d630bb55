"""`vpt-tracker review …` end to end through click, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from vpt_tracker.cli import main
from vpt_tracker.review.app import ReviewApp, SessionSummary
from vpt_tracker.review.queue import ReviewQueue

from .factory import LISTS, PROMPT_ADAPTATION_README, REWRITTEN_README, candidate, catalogue

AWESOME_VPT_README = "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"


@pytest.fixture
def cli(engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)  # no ./vpt-tracker.toml
    monkeypatch.delenv("VPT_CONFIG", raising=False)

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, ["--database", db_url, "review", *args], input=input)

    return run


@pytest.fixture
def ids(engine: Engine) -> dict[str, int]:
    cat = catalogue(engine, "vpt", entry_labels=[["learnable", "pixel", "token"]])
    return {
        "high": candidate(
            engine,
            cat,
            "Visual Prompt Tuning",
            relevance=0.9,
            proposed=["learnable"],
            venue="ECCV",
            year=2022,
            arxiv_id="2203.12119",
        ),
        "low": candidate(engine, cat, "Sheep grazing", relevance=0.1),
    }


def test_list_as_json_and_lines(cli: Any, ids: dict[str, int]) -> None:
    result = cli("list", "--catalogue", "vpt", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["id"] for row in data] == [ids["high"], ids["low"]]
    assert data[0]["links"] == {"arXiv": "https://arxiv.org/abs/2203.12119"} and data[0]["venue"] == "ECCV"
    lines = cli("list", "--filter", "sheep")
    assert lines.exit_code == 0 and "Sheep grazing" in lines.stdout and "Visual" not in lines.stdout


def test_list_filter_folds_accents(cli: Any, engine: Engine) -> None:
    # `--filter zurich` did not list "Zürich" (on either database).
    candidate(engine, catalogue(engine, "vpt"), "Prompt tuning at ETH Zürich")
    lines = cli("list", "--filter", "zurich")
    assert lines.exit_code == 0 and "Zürich" in lines.stdout


def test_list_marks_a_cut_title(cli: Any, engine: Engine) -> None:
    """A title longer than a line holds ends in "…": it was cut mid-word without a sign
    ("… for Powerful 3D Open-world Learni"), and read as the whole title."""
    title = "PointCLIP V2: Prompting CLIP and GPT for Powerful 3D Open-world Learning"
    candidate(engine, catalogue(engine, "long"), title)
    listed = cli("list", "--catalogue", "long")
    assert listed.exit_code == 0, listed.output
    assert "  PointCLIP V2: Prompting CLIP and GPT for Powerful 3D Open-world Learn…  (?)" in listed.stdout


def test_undo_of_a_relabel_says_what_it_undid(cli: Any, ids: dict[str, int]) -> None:
    assert cli("relabel", str(ids["high"]), "--labels", "pixel", "--reviewer", "alice").exit_code == 0
    assert cli("relabel", str(ids["high"]), "--labels", "token", "--reviewer", "alice").exit_code == 0
    undone = cli("undo", "--reviewer", "alice")
    assert undone.exit_code == 0, undone.output
    assert (
        f"undone: relabel of {ids['high']}, its labels are pixel again" in undone.stdout
    )  # not "pending again"
    undone = cli("undo", "--reviewer", "alice")
    assert f"undone: relabel of {ids['high']}, its labels are the proposed ones again" in undone.stdout


def test_accept_keeps_the_labels_of_a_relabel(cli: Any, ids: dict[str, int]) -> None:
    """`review accept ID` after `review relabel ID --labels pixel` accepted the proposed
    labels (`learnable`): the relabel was lost, where the app's `a` starts from an `l` edit."""
    assert cli("relabel", str(ids["high"]), "--labels", "pixel").exit_code == 0
    accepted = cli("accept", str(ids["high"]))
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout == f"accepted {ids['high']}: Visual Prompt Tuning [pixel]\n"
    assert cli("undo").exit_code == 0 and cli("undo").exit_code == 0  # the accept, the relabel
    accepted = cli("accept", str(ids["high"]))  # with no relabel: the proposed labels
    assert accepted.stdout == f"accepted {ids['high']}: Visual Prompt Tuning [learnable]\n"


def test_list_of_every_catalogue_names_each_lines_catalogue(
    cli: Any, engine: Engine, ids: dict[str, int]
) -> None:
    # Without --catalogue a paper queued for two lists showed as two identical lines but for
    # the id: `review accept` of the wrong one accepted it for the other list.
    other = catalogue(engine, "awesome-vpt")
    twin = candidate(
        engine, other, "Visual Prompt Tuning", relevance=0.9, proposed=["learnable"], venue="ECCV", year=2022
    )
    lines = cli("list").stdout.splitlines()
    mine = next(line for line in lines if line.split()[0] == str(ids["high"]))
    theirs = next(line for line in lines if line.split()[0] == str(twin))
    assert mine.split()[3] == "vpt" and theirs.split()[3] == "awesome-vpt"
    scoped = cli("list", "--catalogue", "vpt").stdout.splitlines()  # one catalogue: as before
    assert scoped[0].split()[3:5] == ["Visual", "Prompt"]


def test_list_refuses_a_label_filter_with_an_unknown_label(cli: Any, ids: dict[str, int]) -> None:
    result = cli("list", "--catalogue", "vpt", "--filter", "label:pxel")
    assert result.exit_code == 2 and "unknown label 'pxel' for catalogue 'vpt'" in result.stderr


def test_accept_reject_undo(cli: Any, engine: Engine, ids: dict[str, int]) -> None:
    result = cli("accept", str(ids["high"]), "--labels", "learnable,token", "--reviewer", "carol")
    assert result.exit_code == 0, result.output
    assert "accepted" in result.stdout and "learnable, token" in result.stdout
    assert cli("reject", str(ids["low"]), "--reason", "off-topic", "--reviewer", "carol").exit_code == 0
    accepted = json.loads(cli("list", "--status", "accepted", "--json").stdout)
    assert [(r["id"], r["final_labels"], r["reviewer"]) for r in accepted] == [
        (ids["high"], ["learnable", "token"], "carol")
    ]
    undone = cli("--reviewer", "carol", "undo")  # group-level option works too
    assert undone.exit_code == 0 and f"undone: {ids['low']} is pending again" in undone.stdout
    assert ReviewQueue(engine, "x").get(ids["low"]).status == "pending"


def test_accept_warns_when_the_list_has_no_section_for_the_labels(cli: Any, engine: Engine) -> None:
    cat = catalogue(engine, "pa", preset="prompt-adaptation", readme=PROMPT_ADAPTATION_README)
    new = candidate(engine, cat, "Test-time prompt tuning for CLIP", relevance=0.8, proposed=["test-time"])
    result = cli("accept", str(new), "--reviewer", "carol")
    assert result.exit_code == 0 and f"accepted {new}" in result.stdout
    assert "warning: it would not be published: no section of preset 'prompt-adaptation'" in result.stderr
    assert f"review relabel {new} --labels" in result.stderr
    fixed = cli("relabel", str(new), "--labels", "vpt-learnable,test-time", "--reviewer", "carol")
    assert fixed.exit_code == 0 and "relabelled" in fixed.stdout and fixed.stderr == ""


def test_accept_warns_when_the_preset_names_a_section_the_list_no_longer_has(
    cli: Any, engine: Engine
) -> None:
    """The `awesome-vpt` preset was written for yunbeizhang's list as of 2025-06-24; the list was
    rewritten on 2025-10-20 and its "Token-Level" section went. The preset still has a
    placement for the labels, so the accept said nothing, and publish left the paper out."""
    cat = catalogue(engine, "vpt", preset="awesome-vpt", readme=REWRITTEN_README)
    new = candidate(
        engine,
        cat,
        "Prompt tokens for frozen ViTs",
        relevance=0.9,
        proposed=["learnable", "token"],
        year=2025,
    )
    result = cli("accept", str(new), "--reviewer", "carol")
    assert result.exit_code == 0 and f"accepted {new}" in result.stdout
    assert (
        "warning: it would not be published: the list has no section "
        "'Core Methodologies > 1. Learnable Visual Prompts > Token-Level', where preset 'awesome-vpt' "
        "puts the labels ['learnable', 'token'] (renamed or removed upstream?)"
    ) in result.stderr


def test_accept_is_quiet_when_the_list_has_the_section(cli: Any, engine: Engine) -> None:
    cat = catalogue(engine, "vpt", preset="awesome-vpt", readme=LISTS / AWESOME_VPT_README)
    new = candidate(
        engine,
        cat,
        "Prompt tokens for frozen ViTs",
        relevance=0.9,
        proposed=["learnable", "token"],
        year=2025,
    )
    result = cli("accept", str(new), "--reviewer", "carol")
    assert result.exit_code == 0 and result.stderr == ""


def test_list_marks_the_models_base_to_novel_flag_not_a_fixed_probability(cli: Any, engine: Engine) -> None:
    """The flag is the model's decision at its own threshold (0.11 for the shipped model)."""
    cat = catalogue(engine, "g", preset="generalizable-vlm")
    below_half = candidate(
        engine, cat, "Flagged at 0.30", relevance=0.9, base_to_novel=0.3, base_to_novel_flag=True
    )
    above_half = candidate(
        engine, cat, "Not flagged at 0.60", relevance=0.8, base_to_novel=0.6, base_to_novel_flag=False
    )
    lines = {
        line.split()[0]: line for line in cli("list", "--catalogue", "g").stdout.splitlines() if line.strip()
    }
    assert lines[str(below_half)].endswith("[b2n]  []")
    assert "[b2n]" not in lines[str(above_half)]
    listed = json.loads(cli("list", "--catalogue", "g", "--json").stdout)
    assert {row["id"]: row["base_to_novel_flag"] for row in listed} == {below_half: True, above_half: False}


def test_bad_input_is_one_line_and_exit_code_2(cli: Any, engine: Engine, ids: dict[str, int]) -> None:
    missing = cli("accept", "9999", "--reviewer", "carol")
    assert missing.exit_code == 2 and missing.stderr.strip().startswith("Error: no candidate 9999")
    bad_label = cli("accept", str(ids["high"]), "--labels", "bogus", "--reviewer", "carol")
    assert bad_label.exit_code == 2
    assert (
        "unknown label 'bogus'" in bad_label.stderr
        and "valid labels: learnable, pixel, token" in bad_label.stderr
    )
    assert len(bad_label.stderr.strip().splitlines()) == 1
    no_reason = cli("reject", str(ids["high"]))
    assert no_reason.exit_code == 2 and "--reason" in no_reason.stderr
    unknown = cli("list", "--catalogue", "nope")
    assert unknown.exit_code == 2 and "known catalogues: vpt" in unknown.stderr
    nothing = cli("undo", "--reviewer", "nobody")
    assert nothing.exit_code == 2 and "nothing to undo" in nothing.stderr
    # A NUL in a reason or a filter: PostgreSQL refused it with a DataError traceback.
    for args in (
        ("reject", str(ids["high"]), "--reason", "off\x00topic"),
        ("defer", str(ids["high"]), "--reason", "ask\x00bob"),
        ("bulk-reject", "--below", "0.5", "--reason", "low\x00score", "--yes"),
        ("list", "--filter", "prompt\x00"),
    ):
        nul = cli(*args, "--reviewer", "carol")
        assert nul.exit_code == 2 and "cannot contain a NUL character" in nul.stderr, (args, nul.output)
    assert ReviewQueue(engine, "x").get(ids["high"]).status == "pending"


def test_bulk_reject_asks_then_rejects(cli: Any, engine: Engine, ids: dict[str, int]) -> None:
    declined = cli("bulk-reject", "--below", "0.5", input="n\n")
    assert declined.exit_code == 1 and ReviewQueue(engine, "x").count() == 2
    result = cli("bulk-reject", "--below", "0.5", "--yes", "--reason", "noise")
    # One is one candidate, and undo reverts "it" (it said "rejected 1 candidates ... reverts them").
    assert result.exit_code == 0 and "rejected 1 candidate below 0.5 (noise)" in result.stdout
    assert result.stdout.endswith("`review undo` reverts it\n")
    assert ReviewQueue(engine, "x").get(ids["low"]).reason == "noise"


def test_bulk_reject_of_nothing_does_not_point_at_undo(cli: Any, engine: Engine, ids: dict[str, int]) -> None:
    # With nothing below the score it said "rejected 0 candidates ...; `review undo` reverts
    # them": no batch was recorded, so that undo reverted the reviewer's decision before it.
    assert cli("reject", str(ids["low"]), "--reason", "noise", "--reviewer", "alice").exit_code == 0
    result = cli("bulk-reject", "--below", "0.5", "--yes", "--reviewer", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout == "no pending candidate scores below 0.5 in any catalogue; nothing was rejected\n"
    scoped = cli("bulk-reject", "--below", "0.5", "--yes", "--catalogue", "vpt")
    assert "below 0.5 in vpt; nothing was rejected" in scoped.stdout
    assert ReviewQueue(engine, "x").get(ids["low"]).status == "rejected"


@pytest.mark.parametrize("where", ["group", "command"])
@pytest.mark.parametrize("name", ["", " "])
def test_a_blank_reviewer_is_refused(
    cli: Any, engine: Engine, ids: dict[str, int], name: str, where: str
) -> None:
    # `--reviewer ""` fell back to the login name (`" "` was refused): the decision was logged
    # under someone else's name.
    args = ["--reviewer", name, "defer", str(ids["low"])]
    if where == "command":
        args = ["defer", str(ids["low"]), "--reviewer", name]
    result = cli(*args)
    assert result.exit_code == 2 and "a reviewer name is needed" in result.stderr
    assert ReviewQueue(engine, "x").get(ids["low"]).status == "pending"


@pytest.mark.parametrize("below", ["nan", "inf", "-inf", "1.5", "-0.1"])
def test_bulk_reject_refuses_a_score_that_is_not_one(
    cli: Any, engine: Engine, ids: dict[str, int], below: str
) -> None:
    # `--below nan` was accepted (nan compares false with both bounds) and rejected nothing.
    result = cli("bulk-reject", "--below", below, "--yes")
    assert result.exit_code == 2 and "Invalid value for '--below'" in result.stderr
    assert ReviewQueue(engine, "x").count() == 2


def test_ctrl_c_at_the_bulk_reject_question_exits_130(
    engine: Engine, db_url: str, ids: dict[str, int]
) -> None:
    # click turns a Ctrl-C at its prompt into `Aborted!` and exit 1, where every other
    # command stopped by Ctrl-C says `Error: interrupted` and exits 130.
    import signal
    import subprocess
    import sys

    from ops.smtp import AS_AT_A_TERMINAL

    command = [sys.executable, "-c", AS_AT_A_TERMINAL, "--database", db_url, "review", "bulk-reject"]
    child = subprocess.Popen(
        [*command, "--below", "0.5"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        asked = b""
        while b"[y/N]" not in asked:
            byte = child.stdout.read(1)
            assert byte, f"no question: {asked!r}"
            asked += byte
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == "Error: interrupted"
    assert ReviewQueue(engine, "x").get(ids["low"]).status == "pending"


def test_bulk_reject_names_the_catalogues_it_rejects_in(
    cli: Any, engine: Engine, ids: dict[str, int]
) -> None:
    # Without --catalogue it rejects in every catalogue: the question gave a bare number, so a
    # maintainer of one list cleared the low scores of the others too, and was not told so.
    other = catalogue(engine, "awesome-vpt")
    candidate(engine, other, "Grazing sheep, revisited", relevance=0.2)
    candidate(engine, other, "Alpine sheep", relevance=0.3)
    declined = cli("bulk-reject", "--below", "0.5", input="n\n")
    assert "reject 3 pending candidates scoring below 0.5 in every catalogue: awesome-vpt 2, vpt 1?" in (
        declined.output
    )
    one = cli("bulk-reject", "--catalogue", "vpt", "--below", "0.5", input="n\n")
    assert "reject 1 pending candidate scoring below 0.5 in vpt?" in one.output
    result = cli("bulk-reject", "--below", "0.5", "--yes")
    assert result.exit_code == 0, result.output
    assert (
        "rejected 3 candidates below 0.5 (low score) in every catalogue: awesome-vpt 2, vpt 1;"
        in result.stdout
    )
    assert ReviewQueue(engine, "x").count() == 1


def test_the_app_needs_a_terminal(cli: Any, ids: dict[str, int]) -> None:
    result = cli("--catalogue", "vpt")  # CliRunner's streams are not terminals
    assert result.exit_code == 2 and "the review app needs a terminal" in result.stderr


@pytest.mark.parametrize("sub", ["", "list", "accept", "reject", "defer", "relabel", "undo", "bulk-reject"])
def test_every_command_has_help(cli: Any, sub: str) -> None:
    result = cli(*([sub] if sub else []), "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_bare_review_opens_the_app_and_prints_the_summary(
    cli: Any, engine: Engine, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def run_headless(self: ReviewApp) -> SessionSummary | None:
        async def drive() -> SessionSummary | None:
            async with self.run_test() as pilot:
                seen["catalogue"], seen["reviewer"] = self.queue.catalogue, self.queue.reviewer
                seen["reasons"] = self.reject_reasons
                await pilot.press("a", "enter", "q")
            return self.return_value

        return asyncio.run(drive())

    monkeypatch.setattr(ReviewApp, "run", run_headless)
    monkeypatch.setattr("vpt_tracker.cli.review._has_terminal", lambda: True)
    result = cli("--catalogue", "vpt", "--reviewer", "dana")
    assert result.exit_code == 0, result.output
    assert seen["catalogue"] == "vpt" and seen["reviewer"] == "dana" and "off-topic" in seen["reasons"]
    assert "review session of dana: 1 accepted" in result.stdout and "1 still pending" in result.stdout
    assert ReviewQueue(engine, "x").get(ids["high"]).status == "accepted"


@pytest.mark.parametrize("bad", ["0", "-3", str(2**31), str(2**63), "99999999999999999999999"])
def test_an_id_out_of_range_is_a_usage_error(cli: Any, ids: dict[str, int], bad: str) -> None:
    """Ids are int4 on PostgreSQL: 2**31 was a NumericValueOutOfRange traceback there, 2**63 on SQLite."""
    for command in (
        ["accept", "--", bad],
        ["reject", "--reason", "off-topic", "--", bad],
        ["defer", "--", bad],
        ["relabel", "--labels", "pixel", "--", bad],
    ):
        result = cli(*command)
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert (
            f"Invalid value for 'CANDIDATE_ID': {bad} is not in the range 1<=x<=2147483647." in result.stderr
        )
        assert "Traceback" not in result.output
    assert cli("list", "--json").exit_code == 0  # nothing changed
    if int(bad) > 0:  # a limit is a number of rows: no more than there can be ids
        limit = cli("list", "--limit", bad)
        assert limit.exit_code == 2 and "Invalid value for '--limit'" in limit.stderr, limit.output
    top = cli("accept", str(2**31 - 1))
    assert top.exit_code == 2 and top.stderr.startswith("Error: ") and top.stderr.count("\n") == 1
