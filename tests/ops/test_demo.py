"""`vpt-tracker demo` end to end: the whole product on the bundled recordings, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from vpt_tracker.enqueue import default_dir
from vpt_tracker.store import make_engine, transaction
from vpt_tracker.store.tables import CandidateRow, CatalogueRow, PaperRow, RunRow

pytestmark = pytest.mark.slow
PRESETS = ("awesome-vpt", "prompt-adaptation", "generalizable-vlm")


def run_demo(tmp_path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`vpt-tracker demo --output-dir OUT` in a process of its own, offline."""
    # Any request that is not to the local replay server goes to a dead proxy and fails.
    env = {
        **os.environ,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1",
        "VPT_CONFIG": str(tmp_path / "absent.toml"),  # no user config leaks in
    }
    env.pop("VPT_DATABASE_URL", None)
    (tmp_path / "absent.toml").write_text("")
    return subprocess.run(
        [sys.executable, "-c", "from vpt_tracker.cli import main; main()", "demo", "--output-dir", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_demo_runs_the_product_offline_in_under_two_minutes(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    started = time.monotonic()
    done = run_demo(tmp_path, out)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert seconds < 120, f"the demo took {seconds:.0f}s"
    output = done.stdout

    # The real nightly run fetched every source from the replay server, with no errors.
    engine = make_engine(f"sqlite:///{out / 'demo.db'}")
    try:
        with transaction(engine) as session:
            [run] = session.scalars(select(RunRow)).all()
            assert run.outcome == "ok", run.errors
            records = {name: counts["records"] for name, counts in run.counts["sources"].items()}
            assert set(records) == {"arxiv_api", "arxiv_rss", "openreview", "cvf"}
            assert all(count > 0 for count in records.values()), records
            # The CVF listing turned arXiv preprints into proceedings papers.
            upgraded = session.scalars(select(PaperRow).where(PaperRow.venue_upgraded_at.is_not(None))).all()
            assert {paper.venue for paper in upgraded} >= {"CVPR", "ICCV"}
            accepted_rows = session.scalars(
                select(CandidateRow)
                .options(selectinload(CandidateRow.catalogue))
                .where(CandidateRow.status == "accepted")
            ).all()
            assert accepted_rows and {row.reviewer for row in accepted_rows} == {"demo"}
            # The stored base-to-novel flag is the shipped model's decision at its own threshold.
            novel = session.scalars(
                select(CandidateRow).join(CatalogueRow).where(CatalogueRow.name == "generalizable-vlm")
            ).all()
            card = json.loads((default_dir("generalizable-vlm") / "model-card.json").read_text())
            threshold = card["thresholds"]["base_to_novel"]
            assert novel and all(
                c.base_to_novel is not None and c.base_to_novel_flag == (c.base_to_novel >= threshold)
                for c in novel
            )
    finally:
        engine.dispose()

    for preset in PRESETS:
        assert re.search(
            rf"imported {preset!r}: [1-9][0-9]* entries(?: in|,) [1-9][0-9]* sections"
            r"( \([1-9][0-9]* with entries\))?$",
            output,
            re.MULTILINE,
        )
        assert f"{preset}: " in output and "pending candidates; the top 3:" in output
    assert "labels: " in output
    assert " (cue)" in output  # a label its preset cue proposed shows so, not as a probability of 0

    message = message_from_bytes((out / "digest.eml").read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"].startswith("vpt-tracker digest ")
    html = (out / "digest.html").read_text()
    assert "<h2>awesome-vpt</h2>" in html and "Accepted this week" in html

    # Every catalogue with an accepted paper has its dry-run diff; a paper that the list's
    # layout has no section for is reported instead of added.
    diffs = {path.stem: path.read_text() for path in out.glob("*.diff")}
    assert set(diffs) == {row.catalogue.name for row in accepted_rows}, output
    added = [text for text in diffs.values() if text]
    assert added, output
    for text in added:
        assert text.startswith("--- a/README.md\n+++ b/README.md\n")
        assert any(line.startswith("+") and not line.startswith("+++") for line in text.splitlines())
    for name, text in diffs.items():
        if not text:
            assert f"publish {name} --dry-run" in output and "not added: " in output
    assert "demo finished in" in output


def test_a_demo_in_a_folder_of_other_files_replaces_only_its_own(tmp_path: Path) -> None:
    """`demo --output-dir ~/work` deleted every *.diff there and the whole `repos` folder
    (a maintainer's clones), though the demo writes neither."""
    out = tmp_path / "work"
    clone = out / "repos" / "awesome-vpt"
    clone.mkdir(parents=True)
    (clone / "README.md").write_text("a maintainer's clone\n")
    (out / "notes.diff").write_text("a maintainer's patch\n")
    for _ in range(2):  # the second run replaces the first one's files
        done = run_demo(tmp_path, out)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (clone / "README.md").read_text() == "a maintainer's clone\n"
    assert (out / "notes.diff").read_text() == "a maintainer's patch\n"
    assert {path.stem for path in out.glob("*.diff")} == {"notes", *PRESETS}
    engine = make_engine(f"sqlite:///{out / 'demo.db'}")
    try:
        with transaction(engine) as session:
            assert len(session.scalars(select(RunRow)).all()) == 1  # a fresh database, not appended to
    finally:
        engine.dispose()


@pytest.mark.parametrize("where", ["under-a-file", "a-folder-named-digest.eml"])
def test_an_output_dir_the_demo_cannot_use_is_one_line(tmp_path: Path, where: str) -> None:
    """An --output-dir under a file, or a folder where a demo file goes, was a
    NotADirectoryError or IsADirectoryError traceback, exit 1; the folder is left as it was."""
    (tmp_path / "a-file").write_text("notes\n")
    out = tmp_path / "a-file" / "demo" if where == "under-a-file" else tmp_path / "out"
    if where != "under-a-file":
        (out / "digest.eml").mkdir(parents=True)
    done = run_demo(tmp_path, out)
    assert done.returncode == 2 and done.stdout == "", done.stderr[-3000:]
    reason = "Not a directory" if where == "under-a-file" else "Is a directory"
    expected = rf"Error: cannot use {re.escape(str(out))} for the demo: \S+: {reason}\n"
    assert re.fullmatch(expected, done.stderr), done.stderr
    assert (tmp_path / "a-file").read_text() == "notes\n"
    assert where == "under-a-file" or sorted(p.name for p in out.iterdir()) == ["digest.eml"]
