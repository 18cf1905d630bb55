"""`vpt-tracker catalogue ...` end to end, including every kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from vpt_tracker.cli import main
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, DecisionRow, PaperRow, PullRequestRow

LISTS = Path(__file__).parents[1] / "fixtures" / "lists"
STELLAR = LISTS / "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
VPT = LISTS / "yunbeizhang__Awesome-Visual-Prompt-Tuning__README@2025-06-24.md"


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--database", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_render_stats_check(db_url: str, tmp_path: Path) -> None:
    code, out, _ = run(
        db_url, "catalogue", "import", str(STELLAR), "--name", "g", "--preset", "generalizable-vlm"
    )
    assert code == 0 and "34 entries" in out
    target = tmp_path / "out.md"
    code, _, _ = run(db_url, "catalogue", "render", "g", "--output", str(target))
    assert code == 0 and target.read_bytes() == STELLAR.read_bytes()
    code, out, _ = run(db_url, "catalogue", "render", "g")
    assert out == STELLAR.read_text(encoding="utf-8")
    code, out, _ = run(db_url, "catalogue", "stats", "g", "--json")
    assert code == 0 and json.loads(out)["labels"] == {"image-text": 25, "text": 9}
    code, out, _ = run(db_url, "catalogue", "stats", "g")
    assert "Published in 2025" in out and "with neither" in out


def test_one_entry_is_one_entry(db_url: str, tmp_path: Path) -> None:
    """A list of one: import said "1 entries in 1 sections", stats "1 entries", and check
    "1 entries, 0 problem(s)" (synthetic lists)."""
    one = tmp_path / "one.md"
    one.write_text("# Papers\n\n- **Visual Prompt Tuning** [[paper]](https://arxiv.org/abs/2203.12119)\n")
    code, out, err = run(db_url, "catalogue", "import", str(one), "--name", "one")
    assert code == 0, err
    assert out == "imported 'one': 1 entry in 1 section\n"
    code, out, _ = run(db_url, "catalogue", "stats", "one")
    assert code == 0 and out.startswith("one: 1 entry (preset: none)\n")
    checked = CliRunner().invoke(main, ["catalogue", "check", str(one)])
    assert checked.exit_code == 0 and checked.stderr == "1 entry, 0 problems\n"
    twice = tmp_path / "twice.md"
    twice.write_text(
        one.read_text() + "- **Visual Prompt Tuning** [[paper]](https://arxiv.org/abs/2203.12119)\n"
    )
    checked = CliRunner().invoke(main, ["catalogue", "check", str(twice)])
    assert checked.exit_code == 1 and checked.stderr == "2 entries, 1 problem\n"


def test_import_counts_the_sections_stats_lists(db_url: str) -> None:
    """Import said "56 entries in 24 sections", counting every heading, while `stats` listed the
    10 sections that hold entries: it says both now (a copy of the real list)."""
    code, out, err = run(db_url, "catalogue", "import", str(VPT), "--name", "vpt")
    assert code == 0, err
    assert out == "imported 'vpt': 56 entries, 24 sections (10 with entries)\n"
    code, out, _ = run(db_url, "catalogue", "stats", "vpt", "--json")
    assert code == 0 and len(json.loads(out)["sections"]) == 10


def test_bad_input_is_one_line_and_exit_2(db_url: str, tmp_path: Path) -> None:
    binary = tmp_path / "x.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    prose = tmp_path / "notes.txt"
    prose.write_text("just a sentence, no list\n")
    cases = [
        (["catalogue", "import", str(tmp_path / "missing.md"), "--name", "x"], "does not exist"),
        (["catalogue", "import", str(binary), "--name", "x"], "binary"),
        (["catalogue", "import", str(prose), "--name", "x"], "does not look like a markdown list"),
        (["catalogue", "import", str(STELLAR), "--name", "x", "--preset", "nope"], "unknown preset 'nope'"),
        # An empty preset was stored as "" and the list imported without labels, silently.
        (["catalogue", "import", str(STELLAR), "--name", "x", "--preset", ""], "unknown preset ''"),
        (["catalogue", "stats", "nope"], "unknown catalogue 'nope'"),
        (["catalogue", "render", "nope"], "unknown catalogue 'nope'"),
    ]
    for args, message in cases:
        code, _, err = run(db_url, *args)
        assert code == 2, args
        assert err.startswith("Error: ") and message in err and err.count("\n") == 1, err
    code, _, err = run(db_url, "catalogue", "stats", "x")
    assert "known catalogues: none yet" in err  # the failed imports wrote nothing


def test_render_output_errors_are_one_line(db_url: str, tmp_path: Path) -> None:
    code, _, _ = run(db_url, "catalogue", "import", str(STELLAR), "--name", "g")
    assert code == 0
    folder = tmp_path / "a-folder"
    folder.mkdir()
    missing = tmp_path / "no-such-folder" / "README.md"
    for target, reason in ((folder, "Is a directory"), (missing, "No such file or directory")):
        code, out, err = run(db_url, "catalogue", "render", "g", "--output", str(target))
        assert code == 2 and err == f"Error: cannot write {target}: {reason}\n" and out == ""
    assert list(folder.iterdir()) == [] and list(tmp_path.glob("*.tmp")) == []
    # `-` is standard output, as for `classify score`.
    code, out, _ = run(db_url, "catalogue", "render", "g", "--output", "-")
    assert code == 0 and out == STELLAR.read_text(encoding="utf-8")
    assert not (Path.cwd() / "-").exists()


def test_second_import_refuses_without_replace(db_url: str) -> None:
    assert run(db_url, "catalogue", "import", str(STELLAR), "--name", "g")[0] == 0
    code, _, err = run(db_url, "catalogue", "import", str(VPT), "--name", "g")
    assert code == 2 and "--replace" in err
    code, out, _ = run(db_url, "catalogue", "import", str(VPT), "--name", "g", "--replace")
    assert code == 0 and out.startswith("replaced 'g': 56 entries")


def test_unreachable_database_exits_69(tmp_path: Path) -> None:
    code, _, err = run("postgresql://nobody@127.0.0.1:1/none", "catalogue", "stats", "g")
    assert code == 69 and err.startswith("Error: cannot reach database")


@pytest.mark.parametrize("command", ["import", "render", "stats", "check"])
def test_help(command: str) -> None:
    result = CliRunner().invoke(main, ["catalogue", command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_check_help_names_every_kind_of_problem() -> None:
    # The help named three kinds and said "same normalised title or arXiv id": `same-link`
    # (one arXiv link under two titles), which check reports too, was missing.
    result = CliRunner().invoke(main, ["catalogue", "check", "--help"])
    assert result.exit_code == 0
    for kind in ("unparsed", "duplicate", "same-link", "no-link"):
        assert kind in result.output


def test_check_exit_codes(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["catalogue", "check", str(VPT)])
    assert result.exit_code == 1
    assert f"{VPT}:79: duplicate:" in result.stdout
    clean = tmp_path / "clean.md"
    shutil.copy(STELLAR, clean)
    text = clean.read_text(encoding="utf-8")
    # drop the entries without any link; the rest of this list is clean
    lines = text.splitlines(keepends=True)
    keep = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (
            "[No paper available] [No code available]" in line
            or "[No paper available] [No code available]" in nxt
        ):
            continue
        keep.append(line)
    clean.write_text("".join(keep), encoding="utf-8")
    result = CliRunner().invoke(main, ["catalogue", "check", str(clean)])
    assert result.exit_code == 0, result.stdout
    result = CliRunner().invoke(main, ["catalogue", "check", str(tmp_path / "nope.md")])
    assert result.exit_code == 2


def test_import_takes_preset_and_repo_from_the_config(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "vpt-tracker.toml"
    config.write_text(
        '[[catalogues]]\nname = "g"\npreset = "generalizable-vlm"\ngithub_repo = "StellarOdys2ey/x"\n'
    )
    result = CliRunner().invoke(
        main,
        ["--config", str(config), "--database", db_url, "catalogue", "import", str(STELLAR), "--name", "g"],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main, ["--config", str(config), "--database", db_url, "catalogue", "stats", "g", "--json"]
    )
    stats = json.loads(result.stdout)
    assert stats["preset"] == "generalizable-vlm" and stats["labels"] == {"image-text": 25, "text": 9}


def test_a_readme_with_a_byte_order_mark_reads_like_one_without(db_url: str, tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a byte-order mark and GitHub shows such a README as if it had
    none. The mark was read as part of the first line, so a heading or table header there was
    not one: a list starting with `## Published in 2025` had that section's entries outside
    any section (no labels from it, no place for a new entry), one starting with its table
    had no entries at all ("does not look like a markdown list")."""
    body = STELLAR.read_text(encoding="utf-8")
    body = body[body.index("## Published in 2026") :]  # a README that starts with a section
    plain, marked = tmp_path / "plain.md", tmp_path / "marked.md"
    plain.write_text(body, encoding="utf-8")
    marked.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    outs = {}
    for path in (plain, marked):
        code, out, err = run(
            db_url, "catalogue", "import", str(path), "--name", path.stem, "--preset", "generalizable-vlm"
        )
        assert code == 0, err
        outs[path.stem] = out.split(":", 1)[1]
        code, out, _ = run(db_url, "catalogue", "stats", path.stem, "--json")
        outs[path.stem + "-stats"] = json.loads(out)["sections"]
    assert outs["marked"] == outs["plain"] and outs["marked-stats"] == outs["plain-stats"]
    assert "(top)" not in outs["marked-stats"]
    target = tmp_path / "out.md"
    code, _, _ = run(db_url, "catalogue", "render", "marked", "--output", str(target))
    assert code == 0 and target.read_bytes() == marked.read_bytes()  # the mark is kept

    table = VPT.read_text(encoding="utf-8")
    table = table[table.index("| Title ") :]
    marked.write_bytes(b"\xef\xbb\xbf" + table.encode("utf-8"))
    result = CliRunner().invoke(main, ["catalogue", "check", str(marked)])
    assert result.exit_code == 1 and result.stderr.startswith("56 entries"), result.stderr


def test_check_counts_lines_as_editors_do(tmp_path: Path) -> None:
    """A title pasted from a PDF can hold a line separator (U+2028) or a form feed: in
    markdown, and in an editor, that is no line break. `check` counted one there (it cut
    lines as `str.splitlines` does), so every `FILE:LINE` after it pointed past the entry."""
    text = STELLAR.read_text(encoding="utf-8")
    pasted = text.replace("ReBaPL: Repulsive", "ReBaPL:\u2028Repulsive").replace(
        "PROMISE: Prompt", "PROMISE:\x0cPrompt"
    )
    for name, body in (("plain.md", text), ("pasted.md", pasted)):
        (tmp_path / name).write_text(body, encoding="utf-8")
    lines = {}
    for name in ("plain.md", "pasted.md"):
        result = CliRunner().invoke(main, ["catalogue", "check", str(tmp_path / name)])
        assert result.exit_code == 1
        lines[name] = [line.split(":", 2)[1] for line in result.stdout.splitlines()]
    assert lines["pasted.md"] == lines["plain.md"] == ["27", "29", "55"]


def test_a_utf16_readme_is_named_as_such(db_url: str, tmp_path: Path) -> None:
    """Windows PowerShell's `>` and Notepad's "Unicode" write UTF-16. Its NUL bytes made the
    README "a binary file, not a markdown README", which sends a maintainer looking for a
    broken file instead of to the encoding."""
    text = STELLAR.read_text(encoding="utf-8")
    for encoding in ("utf-16", "utf-16-be"):
        readme = tmp_path / f"{encoding}.md"
        data = text.encode(encoding)
        readme.write_bytes(data if data[:2] in (b"\xff\xfe", b"\xfe\xff") else b"\xfe\xff" + data)
        commands = (["import", str(readme), "--name", "g"], ["check", str(readme)])
        for args in commands:
            code, out, err = run(db_url, "catalogue", *args)
            assert code == 2 and out == "", err
            assert err == f"Error: {readme} is UTF-16 text, not UTF-8: save it as UTF-8\n"
    code, _, err = run(db_url, "catalogue", "stats", "g")
    # and it says how to import it under the name asked for (it gave no file and no --name)
    assert "none yet; import it with `vpt-tracker catalogue import README.md --name g`" in err


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_readme_without_a_mark_is_named_as_such(db_url: str, tmp_path: Path, encoding: str) -> None:
    """`iconv -t UTF-16LE` (or BE) writes no byte-order mark: only a README with one was named
    UTF-16, and this one was "a binary file, not a markdown README"."""
    readme = tmp_path / "README.md"
    readme.write_bytes(STELLAR.read_text(encoding="utf-8").encode(encoding))
    for args in (["import", str(readme), "--name", "g"], ["check", str(readme)]):
        code, out, err = run(db_url, "catalogue", *args)
        assert code == 2 and out == "", err
        assert (
            err
            == f"Error: {readme} is UTF-16 text (without a byte-order mark), not UTF-8: save it as UTF-8\n"
        )
    binary = tmp_path / "binary.md"  # NULs in no such pattern
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = run(db_url, "catalogue", "check", str(binary))
    assert code == 2 and err == f"Error: {binary} is a binary file, not a markdown README\n"


@pytest.mark.parametrize("path", ["../README.md", "/home/me/list/README.md", "docs/../../README.md", ""])
def test_a_readme_path_outside_the_repository_is_refused_at_import(
    db_url: str, tmp_path: Path, path: str
) -> None:
    """`--readme-path` names the README inside the list's repository. A local path (the
    clone's `/home/me/list/README.md`) or one leading out of it was stored, and only the
    first publish failed on it, after fetching the repository."""
    code, out, err = run(db_url, "catalogue", "import", str(STELLAR), "--name", "g", "--readme-path", path)
    assert code == 2 and out == "" and err.startswith("Error: readme path ") and err.count("\n") == 1, err
    code, _, err = run(db_url, "catalogue", "stats", "g")
    assert "known catalogues: none yet" in err
    assert (
        run(db_url, "catalogue", "import", str(STELLAR), "--name", "g", "--readme-path", "docs/README.md")[0]
        == 0
    )
    code, out, err = run(
        db_url, "catalogue", "import", str(STELLAR), "--name", "g", "--replace", "--readme-path", path
    )
    assert code == 2 and err.startswith("Error: readme path "), err


PETL = LISTS / "jianghaojun__Awesome-Parameter-Efficient-Transfer-Learning__README.md"
PETL_PRESET = """
name = "petl"
[[labels]]
key = "prompt"
when = [{ section = "Prompt" }]
[[labels]]
key = "adapter"
when = [{ section = "Adapter" }]
[[labels]]
key = "pixel"
group = "level"
when = [{ badge = "Pixel Level Prompt" }]
badge = "Pixel_Level_Prompt"
[[labels]]
key = "token"
group = "level"
when = [{ badge = "Token_level_Prompt" }]
badge = "Token_level_Prompt"
[[placements]]
labels = ["prompt"]
section = ["Papers", "Prompt"]
[[placements]]
labels = ["adapter"]
section = ["Papers", "Adaptr"]
[[placements]]
labels = []
section = ["Papers", "Others"]
[[silent]]
section = "adapters"
groups = ["level"]
"""


def test_a_new_lists_own_preset_is_checked_against_its_readme(db_url: str, tmp_path: Path) -> None:
    """A maintainer of a list none of the shipped presets fits (jianghaojun's) writes one:
    the config takes it, and the import says where preset and README disagree. A misspelt
    placement heading was found at the first accept of such a paper, and a badge written as
    the image URL has it (`Token_level_Prompt`, which the list shows as "Token level Prompt")
    left the label without an example, without a word."""
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "petl.toml").write_text(PETL_PRESET)
    config = tmp_path / "vpt-tracker.toml"
    config.write_text(
        'presets_dir = "presets"\n'
        '[[catalogues]]\nname = "petl"\npreset = "petl"\ngithub_repo = "jianghaojun/x"\n'
    )
    options = ["--config", str(config), "--database", db_url]
    result = CliRunner().invoke(main, [*options, "catalogue", "import", str(PETL), "--name", "petl"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 'petl': 84 entries, 13 sections (4 with entries)\n"
    warnings = result.stderr.splitlines()
    assert warnings[0] == (
        "warning: preset 'petl' puts new papers with the labels ['adapter'] in 'Papers > Adaptr', "
        "a section this README does not have: such a paper cannot be published"
    )
    assert warnings[1].startswith("warning: this README's sections: Awesome-Parameter-Efficient-Transfer")
    assert "Papers > Adapter; " in warnings[1]
    assert warnings[2] == (
        "warning: preset 'petl' is silent under 'adapters', which is part of no heading of this README: "
        "check its [[silent]] section"
    )
    assert warnings[3].startswith(
        "warning: no entry of this README has the label 'token' of preset 'petl': check its `when`"
    )
    assert len(warnings) == 4
    stats = CliRunner().invoke(main, [*options, "catalogue", "stats", "petl", "--json"])
    assert json.loads(stats.stdout)["labels"] == {"prompt": 41, "adapter": 27, "pixel": 4}
    # Fixed, the preset and the README agree: a replace says nothing more.
    (presets / "petl.toml").write_text(
        PETL_PRESET.replace('"Adaptr"', '"Adapter"')
        .replace('"adapters"', '"adapter"')
        .replace('{ badge = "Token_level_Prompt" }', '{ badge = "Token level Prompt" }')
    )
    again = CliRunner().invoke(
        main, [*options, "catalogue", "import", str(PETL), "--name", "petl", "--replace"]
    )
    assert again.exit_code == 0 and again.stderr == "", again.output
    stats = CliRunner().invoke(main, [*options, "catalogue", "stats", "petl", "--json"])
    assert json.loads(stats.stdout)["labels"] == {"prompt": 41, "adapter": 27, "pixel": 4, "token": 1}


def test_remove_asks_then_takes_the_catalogue_out(db_url: str) -> None:
    """A catalogue imported under a mistyped name stayed among the known ones for good."""
    assert run(db_url, "catalogue", "import", str(STELLAR), "--name", "g")[0] == 0
    assert run(db_url, "catalogue", "import", str(VPT), "--name", "vtp")[0] == 0
    code, _, err = run(db_url, "catalogue", "remove", "nope")
    assert code == 2 and err == "Error: unknown catalogue 'nope'; known catalogues: g, vtp\n"
    no = CliRunner().invoke(main, ["--database", db_url, "catalogue", "remove", "vtp"], input="n\n")
    assert no.exit_code == 1 and "entries: 56" in no.stdout and "remove catalogue 'vtp'?" in no.stdout
    yes = CliRunner().invoke(main, ["--database", db_url, "catalogue", "remove", "vtp"], input="y\n")
    assert yes.exit_code == 0, yes.output
    assert yes.stdout.endswith("removed catalogue 'vtp'\n")
    code, _, err = run(db_url, "catalogue", "stats", "vtp")
    assert code == 2 and "known catalogues: g\n" in err


def test_remove_refuses_history_and_names_the_config_and_model(db_url: str, tmp_path: Path) -> None:
    """With history (a review decision) it takes --force; its own trained model folder goes
    with it, and a catalogue still in the config is said to be so."""
    config = tmp_path / "vpt-tracker.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[[catalogues]]\nname = "g"\npreset = "generalizable-vlm"\n')
    base = ["--config", str(config), "--database", db_url, "catalogue"]
    assert CliRunner().invoke(main, [*base, "import", str(STELLAR), "--name", "g"]).exit_code == 0
    model = tmp_path / "classifiers" / "g"
    model.mkdir(parents=True)
    (model / "model-card.json").write_text("{}")
    engine = make_engine(db_url)
    with transaction(engine) as session:
        paper = PaperRow(title="Visual Prompt Tuning", title_key="visual prompt tuning")
        session.add(paper)
        session.flush()
        catalogue_id = session.scalars(select(CatalogueRow.id)).one()
        candidate = CandidateRow(paper_id=paper.id, catalogue_id=catalogue_id, status="rejected")
        session.add(candidate)
        session.flush()
        session.add(DecisionRow(candidate_id=candidate.id, reviewer="ann", action="reject"))
        session.add(PullRequestRow(catalogue_id=catalogue_id, branch="vpt-tracker/g", number=7, state="open"))
    engine.dispose()
    refused = CliRunner().invoke(main, [*base, "remove", "g", "--yes"])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr == (
        "Error: catalogue 'g' has history that removing it would lose: 1 open pull request (#7 open); "
        "candidates rejected 1; "
        "1 review decision; pass --force to remove it all the same\n"
    )
    assert model.is_dir()
    forced = CliRunner().invoke(main, [*base, "remove", "g", "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "  candidates: 1 (rejected 1)\n  review decisions: 1\n" in forced.stdout
    assert f"  trained model folder: {model}\n" in forced.stdout
    assert f"removed its trained model folder {model}\n" in forced.stdout
    assert "note: 'g' is still a [[catalogues]] entry of the config" in forced.stdout
    assert "note: pull request #7 open is still on GitHub: close it there\n" in forced.stdout
    assert not model.exists()


def test_a_preset_in_presets_dir_serves_import_review_and_publish(db_url: str, tmp_path: Path) -> None:
    """README "A preset of your own": `presets_dir` names a folder of one's own presets, looked in
    before the shipped ones. Presets were read only from the checkout's `classifiers/` or the
    installed package's copy: a pip or Docker user had to bind-mount a file into the package,
    and `--preset`, the review's label check and publish's placement knew no preset of theirs."""
    shipped = (Path(__file__).parents[2] / "classifiers" / "awesome-vpt.toml").read_text(encoding="utf-8")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my-vpt.toml").write_text(shipped.replace('name = "awesome-vpt"', 'name = "my-vpt"'))
    config = tmp_path / "vpt-tracker.toml"
    config.write_text('presets_dir = "mine"\n')  # relative to the config file's folder
    options = ["--config", str(config), "--database", db_url]
    unknown = CliRunner().invoke(
        main, [*options, "catalogue", "import", str(VPT), "--name", "v", "--preset", "nope"]
    )
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "Error: unknown preset 'nope'; known presets: "
        "awesome-vpt, generalizable-vlm, my-vpt, prompt-adaptation "
        f"(looked in {tmp_path / 'mine'} and the shipped presets)\n"
    )
    imported = CliRunner().invoke(
        main, [*options, "catalogue", "import", str(VPT), "--name", "vpt", "--preset", "my-vpt"]
    )
    assert imported.exit_code == 0, imported.output
    engine = make_engine(db_url)
    with transaction(engine) as session:
        paper = PaperRow(
            title="Prompt tokens for frozen ViTs", title_key="prompt tokens for frozen vits", year=2025
        )
        session.add(paper)
        session.flush()
        catalogue_id = session.scalars(select(CatalogueRow.id)).one()
        candidate = CandidateRow(paper_id=paper.id, catalogue_id=catalogue_id, proposed_labels=["learnable"])
        session.add(candidate)
        session.flush()
        candidate_id = str(candidate.id)
    engine.dispose()
    review = [*options, "review", "--reviewer", "carol"]
    wrong = CliRunner().invoke(main, [*review, "accept", candidate_id, "--labels", "learnable,tokens"])
    assert wrong.exit_code == 2 and "unknown label 'tokens'" in wrong.stderr, wrong.output
    # Placed by the preset: no "would not be published" warning.
    accepted = CliRunner().invoke(main, [*review, "accept", candidate_id, "--labels", "learnable,token"])
    assert accepted.exit_code == 0 and accepted.stderr == "", accepted.output
    plan = CliRunner().invoke(main, [*options, "publish", "vpt", "--dry-run"])
    assert plan.exit_code == 0, plan.output
    [added] = [line for line in plan.stdout.splitlines() if line.startswith("+| ")]
    assert "Prompt tokens for frozen ViTs" in added
