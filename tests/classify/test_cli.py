"""`vpt-tracker classify ...` end to end: score without a store, evaluate/replay/explain with one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vpt_tracker.catalogue.markdown import parse
from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.cli import main
from vpt_tracker.cli.context import run_guarded
from vpt_tracker.normalize import arxiv_id, title_key

from .conftest import FIXTURES, LISTS


def run(tmp_path: Path, *args: str, db_url: str | None = None) -> tuple[int, str, str]:
    env = {"VPT_DATA_DIR": str(tmp_path), "VPT_CONFIG": ""}
    prefix = ["--database", db_url] if db_url else ["--database", f"sqlite:///{tmp_path / 'unused.db'}"]
    result = CliRunner().invoke(main, [*prefix, *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def score_awesome_vpt(tmp_path: Path, papers: Path, output: str) -> tuple[int, str, str]:
    """`classify score` of a papers file with the shipped awesome-vpt model."""
    return run(
        tmp_path,
        "classify",
        "score",
        "--catalogue",
        "awesome-vpt",
        "--input",
        str(papers),
        "--output",
        output,
    )


@pytest.mark.parametrize("command", ["train", "score", "evaluate", "replay", "explain", "enqueue"])
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    code, out, _ = run(tmp_path, "classify", command, "--help")
    assert code == 0 and "Example:" in out


def test_score_writes_one_line_per_paper(tmp_path: Path, model: CatalogueModel) -> None:
    model.save(tmp_path / "classifiers" / "mine")
    output = tmp_path / "scores.jsonl"
    source = FIXTURES / "unlabeled.jsonl"
    code, out, err = run(
        tmp_path, "classify", "score", "--catalogue", "mine", "--input", str(source), "--output", str(output)
    )
    assert code == 0, err
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 400 and "scored 400 papers" in out
    first = rows[0]
    assert set(first) >= {
        "id",
        "relevance",
        "labels",
        "base_to_novel",
        "base_to_novel_flag",
        "proposed_labels",
        "low_confidence",
        "rule",
    }
    assert first["id"] == json.loads(source.read_text(encoding="utf-8").splitlines()[0])["id"]
    assert set(first["labels"]) == set(model.labels)
    assert model.base_to_novel is not None
    threshold = model.base_to_novel.threshold
    assert all(row["base_to_novel_flag"] == (row["base_to_novel"] >= threshold) for row in rows)
    queued = sum(row["queued"] for row in rows)
    assert f"{queued} above threshold" in out and 0 < queued < 400


def test_score_to_standard_output(tmp_path: Path, model: CatalogueModel) -> None:
    """`--output -`: stdout holds the score lines alone, in input order; the summary is on stderr."""
    model.save(tmp_path / "classifiers" / "mine")
    source = FIXTURES / "unlabeled.jsonl"
    code, out, err = run(
        tmp_path, "classify", "score", "--catalogue", "mine", "--input", str(source), "--output", "-"
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    ids = [json.loads(line)["id"] for line in source.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ids and "scored 400 papers" in err
    assert not (Path.cwd() / "-").exists()


def test_score_of_one_paper_says_one_paper(tmp_path: Path) -> None:
    """It said "scored 1 papers"."""
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        json.dumps({"id": 1, "title": "Visual prompt tuning", "abstract": "We tune prompts."}) + "\n"
    )
    code, out, err = score_awesome_vpt(tmp_path, papers, str(tmp_path / "scores.jsonl"))
    assert code == 0, err
    assert out.startswith("scored 1 paper with ")


def test_score_of_an_empty_file_is_refused_as_ingest_jsonl_refuses_it(tmp_path: Path) -> None:
    papers = tmp_path / "papers.jsonl"
    papers.write_text("\n")
    code, out, err = score_awesome_vpt(tmp_path, papers, str(tmp_path / "scores.jsonl"))
    assert (code, out) == (
        2,
        "",
    ) and err == f"Error: {papers} holds no records (one JSON object per line expected)\n"
    assert not (tmp_path / "scores.jsonl").exists()


def test_score_gives_back_each_id_as_written(tmp_path: Path) -> None:
    """Output ids are the input's: a numeric id came back as a string ("7"), so a join on
    the id found nothing, and an object id came back as its Python repr ("{'arxiv': ...}")."""
    ids = [7, "2503.00001", {"arxiv": "2203.12119", "row": 3}, None, 2.5, ["a", 1]]
    papers = tmp_path / "papers.jsonl"
    lines: list[dict[str, object]] = [
        {"title": "Visual prompt tuning", "abstract": "We tune visual prompts."} for _ in ids
    ]
    for line, ident in zip(lines, ids, strict=True):
        if ident is not None:
            line["id"] = ident
    papers.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    code, out, err = score_awesome_vpt(tmp_path, papers, "-")
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids


def test_score_gives_back_a_numeric_id_with_its_digits(tmp_path: Path) -> None:
    """An arXiv id written as a number, `2203.10100`, is the float 2203.101 to JSON's reader:
    `score` wrote it back as `2203.101`, which joins by text with nothing (and the paper's
    id, "2203.101", is no arXiv id). Each number goes back with the digits it came with."""
    written = ["2203.10100", "1.50", "1E3", "-0.0", "7"]
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        "".join(f'{{"id": {ident}, "title": "Visual prompt tuning"}}\n' for ident in written),
        encoding="utf-8",
    )
    code, out, err = score_awesome_vpt(tmp_path, papers, "-")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(",")[0] for line in lines] == [f'{{"id": {ident}' for ident in written]
    assert [json.loads(line)["id"] for line in lines] == [2203.101, 1.5, 1000.0, -0.0, 7]


def test_score_gives_back_an_id_with_a_lone_surrogate(tmp_path: Path) -> None:
    """JSON may escape half of a surrogate pair ("\\ud800"), which no UTF-8 text can hold: writing
    such an id back stopped `score` with a UnicodeEncodeError traceback after every paper was
    scored (with `--output -`, after the rows before it were printed). It is written escaped."""
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        '{"id": "ok-\\u00e9", "title": "Visual prompt tuning"}\n'
        '{"id": "half-\\ud800", "title": "Visual prompt tuning \\udfff"}\n'
        '{"id": {"\\udc00": 1}, "title": "Visual prompt tuning"}\n',
        encoding="utf-8",
    )
    ids = ["ok-\u00e9", "half-\ud800", {"\udc00": 1}]
    output = tmp_path / "scores.jsonl"
    for target in (str(output), "-"):
        code, out, err = score_awesome_vpt(tmp_path, papers, target)
        assert code == 0, err
        text = output.read_text(encoding="utf-8") if target != "-" else out
        assert [json.loads(line)["id"] for line in text.splitlines()] == ids
        assert '"id": "ok-\u00e9"' in text  # other ids are still written as UTF-8


def test_score_bad_input_names_the_line_and_writes_nothing(tmp_path: Path, model: CatalogueModel) -> None:
    model.save(tmp_path / "classifiers" / "mine")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "title": "ok", "summary": "fine"}\n{"id": 2, "title": \n', encoding="utf-8")
    output = tmp_path / "scores.jsonl"
    code, _, err = run(
        tmp_path, "classify", "score", "--catalogue", "mine", "--input", str(bad), "--output", str(output)
    )
    assert code == 2 and err.strip() == f"Error: {bad}:2: not valid JSON (Expecting value)"
    assert not output.exists()
    code, _, err = run(
        tmp_path, "classify", "score", "--catalogue", "nope", "--input", str(bad), "--output", str(output)
    )
    assert code == 2 and "no model for catalogue 'nope'" in err and len(err.strip().splitlines()) == 1


def _corpus_file(path: Path) -> None:
    """The fixture papers in the arXiv corpus format that `ingest-jsonl` reads."""
    lines = []
    for name in ("relevant", "unlabeled"):
        for line in (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            paper = json.loads(line)
            ident = arxiv_id(paper["id"]) if paper["id"] else None
            row = {
                "title": paper["title"],
                "summary": paper["abstract"],
                "comment": paper["comment"],
                "authors": [],
                "categories": ["cs.CV"],
            }
            if ident:
                row["id"] = ident
            lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_train_evaluate_replay_explain_enqueue_from_the_store(tmp_path: Path) -> None:
    """The current zhengli97 list in the store; the 2024-12 version of it replayed."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    before = LISTS / "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README@2024-12-20.md"
    after = LISTS / "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md"
    papers = tmp_path / "papers.jsonl"
    _corpus_file(papers)
    code, _, err = run(tmp_path, "ingest-jsonl", str(papers), db_url=db_url)
    assert code == 0, err

    def import_list(name: str) -> None:
        code, _, err = run(
            tmp_path,
            "catalogue",
            "import",
            str(after),
            "--name",
            name,
            "--preset",
            "generalizable-vlm",
            db_url=db_url,
        )
        assert code == 0, err

    import_list("vlm")

    code, out, err = run(tmp_path, "classify", "train", "vlm", db_url=db_url)
    assert code == 0, err
    assert (
        out.startswith("trained vlm: 29 relevant, 0 rejected")
        and str(tmp_path / "classifiers" / "vlm") in out
    )
    card = json.loads((tmp_path / "classifiers" / "vlm" / "model-card.json").read_text(encoding="utf-8"))
    assert card["preset"] == "generalizable-vlm" and card["counts"]["relevant"] == 29
    # Exactly one modality badge per paper; the labels learn from the entries without an
    # abstract in this store too (their titles).
    modality = [["text", "image", "image-text"]]
    assert card["hyperparameters"]["exclusive"] == card["hyperparameters"]["required"] == modality
    without = card["counts"]["labelled_entries_without_abstract"]
    assert 29 < card["cv_metrics_in_training"]["labels"]["text"]["papers"] <= 29 + without
    assert "exactly one label of text, image, image-text per paper: the most probable" in out
    # The preset needs the base-to-novel flag and this model replaces its default, which had one.
    assert "base-to-novel model: no" in out and card["thresholds"]["base_to_novel"] is None
    assert (
        "no base-to-novel model: it needs at least 5 relevant papers and 5 papers rejected with a "
        "reason that mentions 'base-to-novel' (or given by --negatives-jsonl) (this catalogue has "
        "29 and 0); until then its candidates get no base-to-novel flag"
    ) in out

    code, out, err = run(tmp_path, "classify", "evaluate", "vlm", "--folds", "3", "--json", db_url=db_url)
    assert code == 0, err
    report = json.loads(out)
    assert report["folds"] == 3 and report["relevance"]["positives"] == 29
    assert {"recall_at_threshold", "review_load", "wss_at_95", "precision_at_k"} <= set(report["relevance"])
    assert set(report["labels"]) <= {"text", "image", "image-text"}
    code, out, _ = run(tmp_path, "classify", "evaluate", "vlm", "--folds", "3", db_url=db_url)
    assert code == 0 and "WSS@95" in out and 'papers mentioning "prompt"' in out and "keyword baseline" in out

    code, out, err = run(
        tmp_path,
        "classify",
        "replay",
        "vlm",
        "--before",
        str(before),
        "--after",
        str(after),
        "--json",
        db_url=db_url,
    )
    assert code == 0, err
    replayed = json.loads(out)
    assert replayed["before_entries_in_store"] == 21 and replayed["added_in_pool"] == 8
    assert set(replayed["recall_at_load"]) == {"1%", "3%", "10%"} and replayed["recall_at_load"]["10%"] >= 0.5
    # The older README and one entry added: "1 added entries ranked" it said.
    ranked = {title_key(row["title"]) for row in replayed["ranks"]}
    added = next(e for e in parse(after.read_text()).entries if title_key(e.title) in ranked)
    lines = before.read_text().splitlines(keepends=True)  # the row goes after the last entry's
    lines.insert(
        parse(before.read_text()).entries[-1].line,
        after.read_text().splitlines(keepends=True)[added.line - 1],
    )
    one_more = tmp_path / "README@one-more.md"
    one_more.write_text("".join(lines))
    args = ["--before", str(before), "--after", str(one_more)]
    code, out, err = run(tmp_path, "classify", "replay", "vlm", *args, db_url=db_url)
    assert code == 0, err
    assert out.startswith("catalogue vlm: trained on 21 older entries; 1 added entry ranked among "), out

    code, out, err = run(tmp_path, "classify", "explain", "--catalogue", "vlm", "1", db_url=db_url)
    assert code == 0, err
    assert "relevance" in out and "up:" in out and "down:" in out
    assert "base-to-novel" not in out  # trained from a store without base-to-novel rejections
    code, _, err = run(tmp_path, "classify", "explain", "--catalogue", "vlm", "99999", db_url=db_url)
    assert code == 2 and err.strip() == "Error: no paper with id 99999"
    # A catalogue without a model of its own uses the shipped default, which has the flag's model.
    import_list("g")
    code, out, err = run(tmp_path, "classify", "explain", "--catalogue", "g", "1", db_url=db_url)
    assert code == 0 and "  base-to-novel " in out and "(threshold 0.115, " in out, err
    code, out, err = run(tmp_path, "classify", "explain", "--catalogue", "g", "1", "--json", db_url=db_url)
    novel = json.loads(out)["base_to_novel_explanation"]
    assert novel["flagged"] == (novel["probability"] >= novel["threshold"]) and novel["up"] + novel["down"]

    code, out, err = run(tmp_path, "classify", "enqueue", "vlm", db_url=db_url)
    assert code == 0 and out.startswith("vlm: scored ") and "queued" in out, err

    # `train` rescores the queue's pending candidates (they kept the old model's scores, and
    # `explain` gave the new one's: stored at 0.40, explained at 0.47).
    code, out, err = run(tmp_path, "classify", "enqueue", "g", db_url=db_url)
    assert code == 0, err
    code, out, err = run(
        tmp_path, "review", "list", "--catalogue", "g", "--limit", "9999", "--json", db_url=db_url
    )
    assert code == 0, err
    queued = json.loads(out)
    code, out, err = run(tmp_path, "classify", "train", "g", db_url=db_url)
    assert code == 0, err
    assert f"rescored {len(queued)} pending candidates with the new model" in out and len(queued) > 1
    code, out, err = run(
        tmp_path, "review", "list", "--catalogue", "g", "--limit", "9999", "--json", db_url=db_url
    )
    rescored = json.loads(out)
    assert {row["id"] for row in rescored} == {row["id"] for row in queued}
    assert [row["relevance"] for row in rescored] != [row["relevance"] for row in queued]
    for row in rescored[:3]:
        code, out, err = run(
            tmp_path, "classify", "explain", "--catalogue", "g", str(row["paper_id"]), "--json", db_url=db_url
        )
        assert code == 0 and json.loads(out)["relevance"] == pytest.approx(row["relevance"], abs=1e-4), err

    code, _, err = run(tmp_path, "classify", "train", "nope", db_url=db_url)
    assert code == 2 and "unknown catalogue 'nope'; known catalogues: g, vlm" in err
    code, _, err = run(
        tmp_path,
        "classify",
        "replay",
        "vlm",
        "--before",
        str(tmp_path / "x.md"),
        "--after",
        str(after),
        db_url=db_url,
    )
    assert code == 2 and "x.md does not exist" in err


def test_explain_says_none_where_no_term_moved_the_score(tmp_path: Path) -> None:
    """A paper of words no model knows: `up:` and `down:` were printed empty, where --json
    gives empty lists."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"id": "2501.00001", "title": "Qzxv wplk", "summary": "Brrt fnord."}\n')
    assert run(tmp_path, "ingest-jsonl", str(papers), db_url=db_url)[0] == 0
    readme = LISTS / "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md"
    imported = run(
        tmp_path,
        "catalogue",
        "import",
        str(readme),
        "--name",
        "g",
        "--preset",
        "generalizable-vlm",
        db_url=db_url,
    )
    assert imported[0] == 0, imported[2]
    code, out, err = run(tmp_path, "classify", "explain", "--catalogue", "g", "1", db_url=db_url)
    assert code == 0, err
    assert "  up:   (none)\n  down: (none)\n" in out and "    up:   (none)\n    down: (none)\n" in out
    code, out, err = run(tmp_path, "classify", "explain", "--catalogue", "g", "1", "--json", db_url=db_url)
    data = json.loads(out)
    assert data["up"] == data["down"] == data["base_to_novel_explanation"]["up"] == []


@pytest.mark.parametrize("bad", ["0", "-1", str(2**31), str(2**63)])
def test_explain_a_paper_id_out_of_range_is_a_usage_error(tmp_path: Path, db_url: str, bad: str) -> None:
    """Paper ids are int4 on PostgreSQL: 2**31 was a NumericValueOutOfRange traceback, 2**63 on SQLite."""
    code, _, err = run(tmp_path, "classify", "explain", "--catalogue", "vlm", "--", bad, db_url=db_url)
    assert code == 2, err
    assert f"Invalid value for 'PAPER_ID': {bad} is not in the range 1<=x<=2147483647." in err
    code, _, err = run(tmp_path, "classify", "explain", "--catalogue", "vlm", str(2**31 - 1), db_url=db_url)
    assert code == 2 and err == f"Error: no paper with id {2**31 - 1}\n"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_seed_numpy_cannot_take_is_a_usage_error(tmp_path: Path, command: str) -> None:
    # 2**32 reached numpy's RandomState as a ValueError traceback.
    code, _, err = run(tmp_path, "classify", command, "vlm", "--seed", str(2**32))
    assert code == 2, err
    assert f"Invalid value for '--seed': {2**32} is not in the range 0<=x<=4294967295." in err


def test_score_reads_the_summary_when_the_abstract_is_empty(tmp_path: Path, model: CatalogueModel) -> None:
    """An exporter that writes both keys, one of them empty or null, kept `"abstract": ""`:
    every paper was scored from its title alone (low confidence). The first non-empty one counts."""
    model.save(tmp_path / "classifiers" / "mine")
    lines = (FIXTURES / "relevant.jsonl").read_text(encoding="utf-8").splitlines()[:5]
    as_written, both_keys = tmp_path / "as-written.jsonl", tmp_path / "both-keys.jsonl"
    as_written.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rewritten = []
    for number, line in enumerate(lines):
        paper = json.loads(line)
        summary = paper.pop("abstract")
        assert summary.strip()
        # Either order, and an empty or a null abstract.
        paper = {"abstract": "" if number % 2 else None, "summary": summary} | paper
        rewritten.append(json.dumps(paper, ensure_ascii=False))
    both_keys.write_text("\n".join(rewritten) + "\n", encoding="utf-8")
    results = []
    for source in (as_written, both_keys):
        code, out, err = run(
            tmp_path, "classify", "score", "--catalogue", "mine", "--input", str(source), "--output", "-"
        )
        assert code == 0, err
        results.append([json.loads(row) for row in out.splitlines()])
    assert results[1] == results[0]
    assert not any(row["low_confidence"] for row in results[1])


@pytest.mark.parametrize("ident", ["NaN", "Infinity", "-Infinity", "1e400", '{"row": NaN}'])
def test_score_refuses_an_id_strict_json_cannot_hold(tmp_path: Path, ident: str) -> None:
    """Python reads `NaN`, `Infinity` and `1e400` (as inf) and wrote them back as `NaN` and
    `Infinity`, which strict JSON parsers reject: the output file could not be read. Such an id
    stops the command with the line's name before anything is written."""
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        '{"id": 1, "title": "Visual prompt tuning"}\n'
        f'{{"id": {ident}, "title": "Visual prompt tuning", "summary": "We tune visual prompts."}}\n',
        encoding="utf-8",
    )
    output = tmp_path / "scores.jsonl"
    for target in (str(output), "-"):
        code, out, err = score_awesome_vpt(tmp_path, papers, target)
        assert code == 2 and out == "" and not output.exists()
        assert err.startswith(f"Error: {papers}:2: 'id'") and len(err.strip().splitlines()) == 1


def test_score_into_a_reader_that_stops_early_exits_quietly(tmp_path: Path) -> None:
    """`classify score --output - | head`: once `head` had its lines, the next write failed and
    click exited 1 with no message, so a script could not tell it from a failure. It now exits
    141 (128 + SIGPIPE, what a shell reports for `cat`, `grep` or `yes` there) and prints nothing."""
    env = {**os.environ, "VPT_DATA_DIR": str(tmp_path), "VPT_CONFIG": ""}
    command = [
        sys.executable,
        "-c",
        "from vpt_tracker.cli import main; main()",
        *("--database", f"sqlite:///{tmp_path / 'unused.db'}", "classify", "score"),
        *("--catalogue", "awesome-vpt", "--input", str(FIXTURES / "unlabeled.jsonl"), "--output", "-"),
    ]  # 400 lines of scores: more than a pipe holds, so the writer meets the closed pipe
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    assert json.loads(child.stdout.readline())["id"]
    child.stdout.close()  # what `head -1` does
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141 and err == ""


def test_a_broken_pipe_that_is_not_standard_output_is_not_hidden() -> None:
    """A BrokenPipeError of a socket (a server gone) while standard output is fine is an error
    as before, not a quiet exit."""

    def lost_server() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run_guarded(lost_server)


@pytest.mark.parametrize("how", ["same path", "another spelling", "hard link"])
def test_score_refuses_to_write_over_its_input(tmp_path: Path, how: str) -> None:
    """`--output` naming the input file replaced the papers with their scores once they were
    read: a typo lost the input, and a second run failed on "missing 'title'"."""
    papers = tmp_path / "papers.jsonl"
    text = '{"id": 1, "title": "Visual prompt tuning"}\n'
    papers.write_text(text, encoding="utf-8")
    output = {
        "same path": papers,
        "another spelling": tmp_path / "sub" / ".." / "papers.jsonl",
        "hard link": tmp_path / "link.jsonl",
    }[how]
    (tmp_path / "sub").mkdir()
    if how == "hard link":
        os.link(papers, output)
    code, out, err = score_awesome_vpt(tmp_path, papers, str(output))
    assert code == 2 and out == ""
    assert err == f"Error: --output {output} is the --input file; write the scores to another file\n"
    assert papers.read_text(encoding="utf-8") == text
    code, _, err = score_awesome_vpt(tmp_path, papers, str(tmp_path / "scores.jsonl"))
    assert code == 0, err


def test_replay_reads_its_readmes_as_catalogue_import_does(tmp_path: Path) -> None:
    """`replay` had a reader of its own: a UTF-16 README (PowerShell's `>`) was "cannot read …
    as UTF-8 text: 'utf-8' codec can't decode byte 0xff …", a folder "[Errno 21] Is a directory",
    and a file that is no list at all (a papers.jsonl) "only 0 of the 0 entries … have a paper"."""
    after = LISTS / "zhengli97__Awesome-Prompt-Adapter-Learning-for-VLMs__README.md"
    wide = tmp_path / "wide.md"
    wide.write_bytes(after.read_text(encoding="utf-8").encode("utf-16"))
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"id": 1, "title": "Visual prompt tuning"}\n', encoding="utf-8")
    for before, message in [
        (wide, f"{wide} is UTF-16 text, not UTF-8: save it as UTF-8"),
        (tmp_path, f"{tmp_path} is a directory, not a README file"),
        (papers, f"{papers} does not look like a markdown list: no headings and no entries"),
    ]:
        code, _, err = run(
            tmp_path, "classify", "replay", "vlm", "--before", str(before), "--after", str(after)
        )
        assert (code, err) == (2, f"Error: {message}\n")
