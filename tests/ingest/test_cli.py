"""`ingest-jsonl`, `stats` and `catalogue enrich` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from vpt_tracker.cli import main
from vpt_tracker.dumps import read_conference_index
from vpt_tracker.normalize import title_key
from vpt_tracker.replay import ReplayServer
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, EntryRow, PaperRow, RunRow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = sorted((FIXTURES / "corpus").glob("*.jsonl"))
INGEST = FIXTURES / "ingest"
VPT_LIST = INGEST / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"
CONFERENCES = sorted((INGEST / "conferences").glob("*.json"))
REPLAY = INGEST / "replay"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config file or environment of the developer's leaks in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPT_CONFIG", raising=False)
    monkeypatch.delenv("VPT_DATABASE_URL", raising=False)


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--database", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


def stats(db_url: str) -> dict[str, object]:
    code, out, err = run(db_url, "stats", "--json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_stats_prints_every_count_of_its_json(db_url: str) -> None:
    # The stored cursors were counted in --json only.
    code, out, err = run(db_url, "stats")
    assert code == 0, err
    assert out.splitlines() == [
        "papers: 0 (0 with abstract, 0 with arXiv id, 0 upgraded to a venue)",
        "sightings: 0",
        "catalogue entries linked to papers: 0",
        "cursors: 0",
    ]


def distinct_ids(paths: list[Path]) -> set[str]:
    return {
        json.loads(line)["id"] for path in paths for line in path.read_text().splitlines() if line.strip()
    }


@pytest.mark.parametrize("command", [["ingest-jsonl"], ["stats"], ["catalogue", "enrich"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_ingest_jsonl_then_stats_and_rerun_changes_nothing(db_url: str) -> None:
    code, out, err = run(db_url, "ingest-jsonl", *map(str, CORPUS), "--json")
    assert code == 0, err
    counts = json.loads(out)
    papers = len(distinct_ids(CORPUS))
    assert counts["new_papers"] == papers
    data = stats(db_url)
    assert data["papers"] == papers
    assert data["sightings"] == counts["new_sightings"]
    assert data["by_source"] == {"jsonl": counts["new_sightings"]}
    assert data["papers_with_abstract"] == papers

    code, out, _ = run(db_url, "ingest-jsonl", *map(str, CORPUS))
    assert code == 0 and "0 new papers" in out
    assert stats(db_url) == data
    engine = make_engine(db_url)
    with transaction(engine) as session:
        runs = session.scalars(select(RunRow).order_by(RunRow.id)).all()
        assert [(r.kind, r.outcome) for r in runs] == [("ingest", "ok"), ("ingest", "ok")]
        assert runs[0].counts["jsonl"]["new_papers"] == papers
    engine.dispose()


def test_ingest_jsonl_of_one_record_says_one(db_url: str, tmp_path: Path) -> None:
    """It said "1 records from 1 file(s): 1 new papers"."""
    one = tmp_path / "one.jsonl"
    one.write_text(CORPUS[0].read_text().splitlines()[0] + "\n")
    code, out, err = run(db_url, "ingest-jsonl", str(one))
    assert code == 0, err
    assert out == "1 record from 1 file: 1 new paper, 0 merged, 0 already stored\n"


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_file_is_refused_as_classify_score_refuses_it(
    db_url: str, tmp_path: Path, text: str
) -> None:
    """It succeeded with "0 records from 1 file", and recorded a run that stored nothing;
    `classify score` refused the same file."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text(text)
    code, out, err = run(db_url, "ingest-jsonl", str(CORPUS[0]), str(empty))
    assert (code, out) == (
        2,
        "",
    ) and err == f"Error: {empty} holds no records (one JSON object per line expected)\n"
    assert stats(db_url)["papers"] == 0


def test_a_malformed_line_names_file_and_line_and_nothing_is_written(db_url: str, tmp_path: Path) -> None:
    good = CORPUS[0].read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([good[0], good[1], '{"id": "2501.00001", "title": ', good[2]]) + "\n")
    code, _, err = run(db_url, "ingest-jsonl", str(CORPUS[1]), str(bad))
    assert code == 2
    assert f"{bad}:3: not valid JSON" in err and len(err.strip().splitlines()) == 1
    assert stats(db_url)["papers"] == 0

    missing_title = tmp_path / "missing.jsonl"
    missing_title.write_text(good[0] + "\n" + json.dumps({"id": "2501.00002", "authors": ["A B"]}) + "\n")
    code, _, err = run(db_url, "ingest-jsonl", str(missing_title))
    assert code == 2 and f"{missing_title}:2: missing 'title'" in err

    wrong_id = tmp_path / "wrong-id.jsonl"
    wrong_id.write_text(json.dumps({"id": "not-an-id", "title": "T"}) + "\n")
    code, _, err = run(db_url, "ingest-jsonl", str(wrong_id))
    assert code == 2 and "is not an arXiv id" in err
    assert stats(db_url)["papers"] == 0


def test_ingest_jsonl_reads_conference_indexes_as_enrich_does(db_url: str, tmp_path: Path) -> None:
    # It read every file as JSON lines, so `ICLR2024.json` failed at line 1 with "Expecting
    # property name" although `catalogue enrich --from-jsonl` reads the same file.
    code, out, err = run(db_url, "ingest-jsonl", *map(str, CONFERENCES), "--json")
    assert code == 0, err
    expected = {(r.title, r.venue, r.year) for path in CONFERENCES for r in read_conference_index(path)}
    engine = make_engine(db_url)
    with transaction(engine) as session:
        stored = {(p.title, p.venue, p.year) for p in session.scalars(select(PaperRow))}
    engine.dispose()
    assert stored == expected and json.loads(out)["new_papers"] == len(expected)

    lines = tmp_path / "CVPR2024.json"  # JSON lines under a conference index's name
    lines.write_text("".join(CORPUS[0].read_text().splitlines(keepends=True)[:2]))
    code, _, err = run(db_url, "ingest-jsonl", str(lines))
    assert code == 2
    hint = "(a .json file is read as one conference index; name JSON lines .jsonl)"
    assert err == f"Error: {lines}: not valid JSON (Extra data) {hint}\n"

    as_text = tmp_path / "dump.txt"  # any other name is JSON lines, as before
    as_text.write_text(lines.read_text())
    code, out, err = run(db_url, "ingest-jsonl", str(as_text))
    assert code == 0 and "2 new papers" in out, err

    one = tmp_path / "CVPR2025.json"  # one paper of JSON lines is valid JSON too
    one.write_text(CORPUS[0].read_text().splitlines(keepends=True)[0])
    code, _, err = run(db_url, "ingest-jsonl", str(one))
    assert code == 2  # it said "…: id: expected an object"
    assert err == f"Error: {one}: holds one paper, not a conference index {hint}\n"


def test_a_conference_index_with_a_byte_order_mark_is_read(db_url: str, tmp_path: Path) -> None:
    # A corpus file with a BOM was read, the same index saved by a Windows editor was not:
    # "not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig))", and enrich failed too.
    source = next(p for p in CONFERENCES if p.name == "ICLR2024.json")
    saved = tmp_path / source.name
    saved.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    assert read_conference_index(saved) == read_conference_index(source)
    code, out, err = run(db_url, "ingest-jsonl", str(saved), "--json")
    assert code == 0, err
    assert json.loads(out)["new_papers"] == len({r.title for r in read_conference_index(source)})


def test_records_without_id_are_identified_by_title_and_authors(db_url: str, tmp_path: Path) -> None:
    source = json.loads(CORPUS[0].read_text().splitlines()[0])
    without_id = {key: value for key, value in source.items() if key not in ("id", "abs", "pdf")}
    revised = {**without_id, "title": without_id["title"].upper(), "summary": "A revised abstract."}
    other_authors = {**without_id, "authors": ["Someone Else"]}
    dump = tmp_path / "no-ids.jsonl"
    dump.write_text("\n".join(json.dumps(line) for line in (without_id, revised, other_authors)) + "\n")

    code, out, err = run(db_url, "ingest-jsonl", str(dump), "--json")
    assert code == 0, err
    assert json.loads(out)["new_papers"] == 2  # the revision joins the first; other authors stay apart
    code, out, _ = run(db_url, "ingest-jsonl", str(dump), str(CORPUS[0]), "--json")
    counts = json.loads(out)
    # The dump's lines are already stored; the corpus's own line (with its id) joins that paper.
    lines = [line for line in CORPUS[0].read_text().splitlines() if line.strip()]
    assert counts["duplicate_sightings"] == 3 + len(lines) - len(set(lines))
    assert counts["merged"] >= 1  # the corpus line of that paper, with its id, joins the id-less paper
    engine = make_engine(db_url)
    with transaction(engine) as session:
        paper = session.scalar(select(PaperRow).where(PaperRow.arxiv_id == source["id"]))
        assert paper is not None and paper.authors == source["authors"] and len(paper.sightings) == 3
    engine.dispose()
    assert stats(db_url)["papers"] == 1 + len(distinct_ids([CORPUS[0]]))


def test_an_abstract_written_as_abstract_is_stored(db_url: str, tmp_path: Path) -> None:
    """`classify score` reads `abstract` or `summary`; `ingest-jsonl` read only `summary`, so
    the same papers file stored every paper without its abstract."""
    first, second = (json.loads(line) for line in CORPUS[0].read_text().splitlines()[:2])
    as_abstract = {**{k: v for k, v in first.items() if k != "summary"}, "abstract": first["summary"]}
    both = {**second, "summary": "", "abstract": second["summary"]}  # an exporter writing both keys
    dump = tmp_path / "papers.jsonl"
    dump.write_text("\n".join(json.dumps(line) for line in (as_abstract, both)) + "\n")
    code, _, err = run(db_url, "ingest-jsonl", str(dump))
    assert code == 0, err
    engine = make_engine(db_url)
    with transaction(engine) as session:
        stored = {
            row.arxiv_id: row.abstract
            for row in session.execute(select(PaperRow.arxiv_id, PaperRow.abstract))
        }
    engine.dispose()
    assert stored == {first["id"]: first["summary"].strip(), second["id"]: second["summary"].strip()}


def test_enrich_from_conference_indexes(db_url: str) -> None:
    code, _, err = run(
        db_url, "catalogue", "import", str(VPT_LIST), "--name", "vpt", "--preset", "awesome-vpt"
    )
    assert code == 0, err
    dumps = [arg for path in CONFERENCES for arg in ("--from-jsonl", str(path))]
    code, out, err = run(db_url, "catalogue", "enrich", "vpt", "--no-arxiv", *dumps, "--json")
    assert code == 0, err
    first = json.loads(out)
    indexed = {title_key(r.title): r for path in CONFERENCES for r in read_conference_index(path)}

    engine = make_engine(db_url)
    with transaction(engine) as session:
        rows = session.execute(
            select(EntryRow, PaperRow).outerjoin(PaperRow, PaperRow.id == EntryRow.paper_id)
        ).all()
        titled = [(entry, paper) for entry, paper in rows if title_key(entry.title)]
        assert all(paper is not None for _, paper in titled)  # every real entry is linked
        matched = [(entry, paper) for entry, paper in titled if title_key(entry.title) in indexed]
        # Two of the real index entries have an empty abstract: linked, but not "matched".
        with_abstract = [(e, p) for e, p in matched if indexed[title_key(e.title)].abstract]
        assert first["matched_local"] == len(with_abstract) == len(matched) - 2 >= 10
        for entry, paper in matched:
            record = indexed[title_key(entry.title)]
            assert paper.abstract == record.abstract
            assert paper.cvf_url == record.cvf_url and paper.openreview_id == record.openreview_id
        e2vpt = next(paper for entry, paper in matched if entry.title.startswith("E^2VPT"))
        assert (e2vpt.venue, e2vpt.year, e2vpt.arxiv_id) == ("ICCV", 2023, "2307.13770")
        autovp = next(paper for entry, paper in matched if entry.title.startswith("AutoVP"))
        assert (autovp.arxiv_id, autovp.openreview_id, autovp.venue) == ("2310.08381", "wR9qVlPh0P", "ICLR")
        # Duplicated rows of the README are one paper.
        robust = {paper.id for entry, paper in matched if entry.title.startswith("Understanding Zero-Shot")}
        assert len(robust) == 1
    engine.dispose()

    code, out, _ = run(db_url, "catalogue", "enrich", "vpt", "--no-arxiv", *dumps, "--json")
    again = json.loads(out)
    assert code == 0
    assert again["complete"] == len(with_abstract) and again["linked"] == 0
    assert again["ingest"]["new_papers"] == 0 and again["ingest"]["new_sightings"] == 0


def test_enrich_needs_a_known_catalogue_and_something_to_enrich_from(db_url: str) -> None:
    code, _, err = run(
        db_url, "catalogue", "enrich", "nope", "--no-arxiv", "--from-jsonl", str(CONFERENCES[0])
    )
    assert code == 2 and "unknown catalogue 'nope'" in err
    code, _, err = run(db_url, "catalogue", "enrich", "nope", "--no-arxiv")
    assert code == 2 and "nothing to enrich from" in err


@pytest.fixture
def arxiv_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayServer]:
    """Recorded export.arxiv.org answers on 127.0.0.1, chosen by the query."""
    with ReplayServer(REPLAY) as server:
        monkeypatch.setenv("VPT_SOURCES__ARXIV_API__BASE_URL", server.urls()["arxiv_api"])
        monkeypatch.setenv("VPT_HTTP__DEFAULT_MIN_INTERVAL", "0")
        yield server


def import_synthetic_list(db_url: str) -> None:
    """The hand-made list the enrich tests look up, as catalogue `syn`."""
    code, _, err = run(
        db_url,
        "catalogue",
        "import",
        str(INGEST / "synthetic-list.md"),
        "--name",
        "syn",
        "--preset",
        "awesome-vpt",
    )
    assert code == 0, err


def test_enrich_of_one_entry_says_one(db_url: str, tmp_path: Path) -> None:
    """It said "1 entries ... 1 new papers" (a synthetic list of one and a dump of one)."""
    one = tmp_path / "one.md"
    one.write_text("# Papers\n\n- **Visual Prompt Tuning** [[paper]](https://arxiv.org/abs/2203.12119)\n")
    assert run(db_url, "catalogue", "import", str(one), "--name", "one")[0] == 0
    dump = tmp_path / "dump.jsonl"
    dump.write_text(
        json.dumps({"id": "2203.12119", "title": "Visual Prompt Tuning", "abstract": "Prompts."}) + "\n"
    )
    code, out, err = run(db_url, "catalogue", "enrich", "one", "--no-arxiv", "--from-jsonl", str(dump))
    assert code == 0, err
    assert out.startswith("one: 1 entry, 0 already complete; 1 matched in dumps") and out.endswith(
        ", 1 new paper\n"
    )


def test_enrich_from_arxiv_by_id_and_by_title(db_url: str, arxiv_server: ReplayServer) -> None:
    import_synthetic_list(db_url)
    code, out, err = run(db_url, "catalogue", "enrich", "syn", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["matched_arxiv"], result["unmatched"], result["title_searches"]) == (2, 1, 2)
    queries = [request.query for request in arxiv_server.requests]
    assert [q["id_list"] for q in queries if q.get("id_list")] == ["1605.08386"]
    assert len([q for q in queries if q.get("search_query", "").startswith("ti:")]) == 2

    engine = make_engine(db_url)
    with transaction(engine) as session:
        rows = session.execute(
            select(EntryRow.title, PaperRow)
            .join(PaperRow, PaperRow.id == EntryRow.paper_id)
            .order_by(EntryRow.position)
        ).all()
    engine.dispose()
    papers = {title: paper for title, paper in rows}
    heat = papers["Heat-bath random walks with Markov bases"]
    assert heat.arxiv_id == "1605.08386" and heat.abstract.startswith("Graphs on lattice points")
    aew = papers["Proceedings of Workshop AEW10: Concepts in Information Theory and Communications"]
    assert aew.arxiv_id == "1707.08567" and aew.abstract and (aew.venue, aew.year) == ("AEW", 2017)
    nowhere = papers["A Paper That No Archive Has"]
    assert nowhere.abstract == "" and nowhere.arxiv_id is None and nowhere.venue == "WACV"


def test_enrich_with_arxiv_failing_says_so_in_one_line_and_writes_nothing(
    db_url: str, arxiv_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # arXiv down (a 503 after every retry) ended the command in a SourceError traceback.
    from vpt_tracker.replay import Fault

    import_synthetic_list(db_url)
    before = stats(db_url)
    monkeypatch.setenv("VPT_HTTP__MAX_RETRIES", "0")
    arxiv_server.inject(Fault("status", match="/api/query", status=503))
    code, out, err = run(db_url, "catalogue", "enrich", "syn")
    assert code == 1 and out == ""
    assert err.startswith("Error: arXiv look-up failed: arxiv_api: GET ") and "answered HTTP 503" in err
    assert len(err.strip().splitlines()) == 1
    assert stats(db_url) == before


def test_ingest_and_enrich_wait_for_no_run(db_url: str) -> None:
    """Both ingest: while a nightly run (or a repair) holds the pipeline lock, they are refused
    at once (exit 75) and store nothing, rather than resolve papers with an index of their own."""
    from vpt_tracker.locks import EX_TEMPFAIL, exclusive

    code, _, err = run(
        db_url, "catalogue", "import", str(VPT_LIST), "--name", "vpt", "--preset", "awesome-vpt"
    )
    assert code == 0, err
    engine = make_engine(db_url)
    with exclusive(engine, "pipeline"):
        code, _, err = run(db_url, "ingest-jsonl", str(CORPUS[0]))
        assert code == EX_TEMPFAIL and "in progress" in err
        code, _, err = run(
            db_url, "catalogue", "enrich", "vpt", "--no-arxiv", "--from-jsonl", str(CONFERENCES[0])
        )
        assert code == EX_TEMPFAIL and "in progress" in err
    assert stats(db_url)["papers"] == 0
    code, _, err = run(db_url, "ingest-jsonl", str(CORPUS[0]))  # the run is over
    assert code == 0, err
    engine.dispose()


@pytest.mark.parametrize(
    ("fault", "recorded", "code"),
    [
        (RuntimeError("the database went away"), "RuntimeError: the database went away", 1),
        # Ctrl-C: the run said `failed` with no error at all (only an Exception was recorded).
        (KeyboardInterrupt(), "interrupted (Ctrl-C)", 130),
    ],
)
def test_a_load_that_fails_halfway_records_what_its_committed_batches_stored(
    db_url: str, monkeypatch: pytest.MonkeyPatch, fault: BaseException, recorded: str, code: int
) -> None:
    """The batches before a failure stay stored, and the run's counts say so (they were empty,
    as if the failed load had stored nothing)."""
    import vpt_tracker.ingest as ingest

    real, calls = ingest._ingest, []

    def fails_on_the_third_batch(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise fault
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "_ingest", fails_on_the_third_batch)
    result = CliRunner().invoke(
        main, ["--database", db_url, "ingest-jsonl", str(CORPUS[0]), "--batch-size", "5"]
    )
    assert result.exit_code == code
    engine = make_engine(db_url)
    with transaction(engine) as session:
        run = session.scalars(select(RunRow).where(RunRow.kind == "ingest")).one()
        papers = session.scalar(select(func.count()).select_from(PaperRow)) or 0
        assert run.outcome == "failed" and run.errors == {"jsonl": recorded}
        assert run.counts["jsonl"]["records"] == 10 and run.counts["jsonl"]["new_papers"] == papers > 0
    engine.dispose()


def test_enrich_finds_a_record_whose_title_is_the_entrys_but_for_a_leading_name(
    db_url: str, tmp_path: Path
) -> None:
    """Real rows: JindongGu's "MDM: Human Motion Diffusion Model" (ICLR 2023) is ICLR 2023's
    "Human Motion Diffusion Model"; BWLONG's "**LoGoPrompt**: Synthetic Text Images …" (its
    title without the name, arXiv 2309.01155) is ICCV 2023's "LoGoPrompt: Synthetic Text Images
    …". Neither was matched, and each record stayed a paper of its own beside the entry's."""
    named = INGEST / "named"
    jindong = tmp_path / "jindong.md"  # the table's header and the row, as the list has them
    jindong.write_text(
        "# Papers\n\n| Title | Venue | Year | Code if available | Comment |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| [MDM: Human Motion Diffusion Model]()                        | ICLR             | 2023 | "
        "[Github](https://github.com/GuyTevet/motion-diffusion-model) | Prompts for text-to-motion generation"
        "                        |\n"
    )
    bwlong = tmp_path / "bwlong.md"
    bwlong.write_text(
        "# Papers\n\n* **LoGoPrompt**: Synthetic Text Images Can Be Good Visual Prompts for Vision-Language "
        "Models(*School of Information Science and Technology, ShanghaiTech University*)"
        "[[arXiv 2309](https://arxiv.org/abs/2309.01155)]\n"
    )
    dumps = [arg for path in sorted(named.glob("*.json")) for arg in ("--from-jsonl", str(path))]
    assert run(db_url, "ingest-jsonl", *[str(path) for path in sorted(named.glob("*.json"))])[0] == 0
    for name, path in (("jindong", jindong), ("bwlong", bwlong)):
        assert run(db_url, "catalogue", "import", str(path), "--name", name)[0] == 0
        code, out, err = run(db_url, "catalogue", "enrich", name, "--no-arxiv", *dumps, "--json")
        assert code == 0, err
        assert json.loads(out)["ingest"]["new_papers"] == 0, name  # the entry's paper is the record's
    engine = make_engine(db_url)
    try:
        with transaction(engine) as session:
            papers = session.execute(
                select(PaperRow.title, PaperRow.venue, PaperRow.year, PaperRow.arxiv_id).order_by(
                    PaperRow.title
                )
            ).all()
            linked = session.scalars(select(EntryRow.paper_id)).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in papers] == [
        ("Human Motion Diffusion Model", "ICLR", 2023, None),
        (
            "LoGoPrompt: Synthetic Text Images Can Be Good Visual Prompts for Vision-Language Models",
            "ICCV",
            2023,
            "2309.01155",
        ),
    ]
    assert len(set(linked)) == 2


def mdm_list(tmp_path: Path) -> Path:
    """JindongGu's row of MDM (verbatim, no link) under a hand-written table heading."""
    jindong = FIXTURES / "lists" / "JindongGu__Awesome-Prompting-on-Vision-Language-Model__README.md"
    (row,) = [
        line for line in jindong.read_text(encoding="utf-8").splitlines() if "[MDM: Human Motion" in line
    ]
    path = tmp_path / "jindong.md"
    path.write_text(
        "# Papers\n\n| Title | Venue | Year | Code if available | Comment |\n"
        + "| --- " * 5
        + "|\n"
        + row
        + "\n"
    )
    return path


def test_enrich_merges_the_paper_an_entry_leaves_behind(db_url: str, tmp_path: Path) -> None:
    """The audit's "MDM: Human Motion Diffusion Model": enriched from a dump without its record,
    the entry became a paper of its own sighting; enriched again with ICLR2023.json, it moved to
    the record's paper and left the first behind, linked to nothing (`papers merge NEW OLD`)."""
    named = INGEST / "named"
    assert run(db_url, "catalogue", "import", str(mdm_list(tmp_path)), "--name", "jindong")[0] == 0
    code, _out, err = run(
        db_url, "catalogue", "enrich", "jindong", "--no-arxiv", "--from-jsonl", str(named / "ICCV2023.json")
    )
    assert code == 0, err
    assert stats(db_url)["papers"] == 1
    iclr = ("--no-arxiv", "--from-jsonl", str(named / "ICLR2023.json"))
    code, out, err = run(db_url, "catalogue", "enrich", "jindong", *iclr)
    assert code == 0, err
    assert out == (
        "jindong: 1 entry, 0 already complete; 0 matched in dumps, 0 on arXiv, 1 without abstract; 1 linked, "
        "1 new paper; 1 paper an entry left merged into its new one\n"
    )
    assert stats(db_url)["papers"] == 1 and stats(db_url)["catalogue_entries_linked"] == 1
    code, out, err = run(db_url, "catalogue", "enrich", "jindong", *iclr, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert (again["linked"], again["rejoined"], again["left_behind"], again["ingest"]["new_sightings"]) == (
        0,
        0,
        [],
        0,
    )


def test_enrich_names_the_merge_of_a_paper_left_behind_that_holds_more(db_url: str, tmp_path: Path) -> None:
    """The first paper of the entry holds a reviewer's rejection for another list: it is not
    merged, and the maintainer is told which `papers merge` would join the two."""
    named = INGEST / "named"
    assert run(db_url, "catalogue", "import", str(mdm_list(tmp_path)), "--name", "jindong")[0] == 0
    code, _out, err = run(
        db_url, "catalogue", "enrich", "jindong", "--no-arxiv", "--from-jsonl", str(named / "ICCV2023.json")
    )
    assert code == 0, err
    engine = make_engine(db_url)
    try:
        with transaction(engine) as session:
            old = session.scalars(select(PaperRow.id)).one()
            other = CatalogueRow(name="vlm", source_text="# list\n", source_sha256="0" * 64)
            session.add(other)
            session.flush()
            session.add(CandidateRow(paper_id=old, catalogue_id=other.id, status="rejected"))
    finally:
        engine.dispose()
    iclr = ("--no-arxiv", "--from-jsonl", str(named / "ICLR2023.json"))
    code, out, err = run(db_url, "catalogue", "enrich", "jindong", *iclr)
    assert code == 0, err
    assert out.endswith("; 1 paper an entry left holds more (warned above)\n")
    engine = make_engine(db_url)
    try:
        with transaction(engine) as session:
            new = session.scalars(select(EntryRow.paper_id)).one()
    finally:
        engine.dispose()
    assert new is not None and new != old
    assert (
        f"paper {old}, which it was linked to, holds more than its own sightings "
        "(candidate 1 of 'vlm' (rejected))" in err
    )
    assert f"`vpt-tracker papers merge {new} {old}`" in err
    assert stats(db_url)["papers"] == 2
    code, out, err = run(db_url, "catalogue", "enrich", "jindong", *iclr, "--json")
    (left,) = json.loads(out)["left_behind"]
    assert (left["paper_id"], left["left_id"], left["merge"]) == (
        new,
        old,
        f"vpt-tracker papers merge {new} {old}",
    )
    assert run(db_url, "papers", "merge", str(new), str(old))[0] == 0  # the maintainer's call
    code, out, err = run(db_url, "catalogue", "enrich", "jindong", *iclr, "--json")
    assert json.loads(out)["left_behind"] == [] and stats(db_url)["papers"] == 1


def test_enrich_merges_the_paper_a_dump_match_became_into_the_entrys(db_url: str, tmp_path: Path) -> None:
    """The audit's case on the command line: a stored "VPT" paper (arXiv 2203.12119, no
    abstract) and an entry "Visual Prompt Tuning" linking it, matched in ECCV2022.json (no
    arXiv id there). The ECCV record stayed a paper of its own and every rerun said "1 matched
    in dumps" without the entry getting its abstract."""
    short = tmp_path / "short.md"  # synthetic, one entry each
    short.write_text("# Papers\n\n- **VPT** [[paper]](https://arxiv.org/abs/2203.12119)\n")
    full = tmp_path / "full.md"
    full.write_text("# Papers\n\n- **Visual Prompt Tuning** [[paper]](https://arxiv.org/abs/2203.12119)\n")
    eccv = str(INGEST / "conferences" / "ECCV2022.json")
    assert run(db_url, "catalogue", "import", str(short), "--name", "short")[0] == 0
    assert run(db_url, "catalogue", "enrich", "short", "--no-arxiv", "--from-jsonl", eccv)[0] == 0
    assert run(db_url, "catalogue", "import", str(full), "--name", "full")[0] == 0
    code, out, err = run(db_url, "catalogue", "enrich", "full", "--no-arxiv", "--from-jsonl", eccv)
    assert code == 0, err
    assert out == (
        "full: 1 entry, 0 already complete; 1 matched in dumps, 0 on arXiv, 0 without abstract; 1 linked, "
        "0 new papers; 1 match merged into its entry's paper\n"
    )
    code, out, err = run(db_url, "catalogue", "enrich", "full", "--no-arxiv", "--from-jsonl", eccv)
    assert code == 0, err
    assert out == (
        "full: 1 entry, 1 already complete; 0 matched in dumps, 0 on arXiv, 0 without abstract; "
        "0 linked, 0 new papers\n"
    )
    for name in ("short", "full"):
        code, out, err = run(
            db_url, "catalogue", "enrich", name, "--no-arxiv", "--from-jsonl", eccv, "--json"
        )
        assert json.loads(out)["complete"] == 1, name
    engine = make_engine(db_url)
    try:
        with transaction(engine) as session:
            papers = session.execute(
                select(PaperRow.arxiv_id, PaperRow.venue, func.length(PaperRow.abstract) > 0).join(
                    EntryRow, EntryRow.paper_id == PaperRow.id
                )
            ).all()
            assert papers == [("2203.12119", "ECCV", True)] * 2
            assert session.scalar(select(func.count()).select_from(PaperRow)) == 1
    finally:
        engine.dispose()
