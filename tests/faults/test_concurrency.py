"""Two nightly runs at the same moment, and two reviewers racing on one candidate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from faults.helpers import snapshot, write_config
from review import factory
from vpt_tracker import identity
from vpt_tracker.errors import UserError
from vpt_tracker.ingest import ingest_records
from vpt_tracker.locks import EX_TEMPFAIL
from vpt_tracker.models import RawRecord
from vpt_tracker.replay import Fault, ReplayServer
from vpt_tracker.review.queue import Conflict, ReviewQueue
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import CandidateRow, DecisionRow, RunRow, SightingRow

# One paper that ingestion keeps as two (the titles differ): `papers merge` joins them.
PAPER = RawRecord(
    source="arxiv_api",
    source_id="2402.05555",
    title="Prompt Pools for Continual Learning",
    abstract="We learn a pool of prompts.",
    authors=("Kai Wu",),
    arxiv_id="2402.05555",
)
PAPER_AT_CVPR = RawRecord(
    source="cvf",
    source_id="cvpr-pools",
    title="Learning Prompt Pools for Continual Adaptation",
    authors=("Kai Wu", "Li Na"),
    cvf_url="https://openaccess.thecvf.com/content/CVPR2024/html/Wu_Pools_CVPR_2024_paper.html",
    venue="CVPR 2024",
    year=2024,
)


def load(engine: Engine, *records: RawRecord) -> list[int]:
    """Ingest the records; the paper of each."""
    ingest_records(engine, records)
    with transaction(engine) as session:
        return [
            session.scalars(select(SightingRow.paper_id).where(SightingRow.source_id == r.source_id)).one()
            for r in records
        ]


CLI = [sys.executable, "-c", "from vpt_tracker.cli import main; main()"]


def test_two_nightly_runs_at_once_one_runs_the_other_exits_75(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with ReplayServer() as replay:
        # The first arXiv API request answers only after a while: the run that gets the
        # lock is still holding it when the other process asks for it.
        replay.inject(Fault("delay", match="/api/query", delay=6.0, times=1))
        config = write_config(tmp_path / "vpt-tracker.toml", replay.urls(), db_url, tmp_path)
        env = {**os.environ, "VPT_CONFIG": str(config)}
        command = [*CLI, "--config", str(config), "run", "nightly"]
        runs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=180) for run in runs]
    codes = sorted(run.returncode for run in runs)
    details = [out.decode()[-800:] + err.decode()[-800:] for out, err in outputs]
    assert codes == [0, EX_TEMPFAIL], details
    loser = outputs[[run.returncode for run in runs].index(EX_TEMPFAIL)]
    message = loser[1].decode().strip().splitlines()
    assert len(message) == 1 and message[0].startswith("Error: ") and "in progress" in message[0], message

    with transaction(engine) as session:
        rows = session.scalars(select(RunRow)).all()
        assert [(row.kind, row.outcome) for row in rows] == [("nightly", "ok")]
        duplicates = session.execute(
            select(SightingRow.source, SightingRow.source_id, SightingRow.payload_hash)
            .group_by(SightingRow.source, SightingRow.source_id, SightingRow.payload_hash)
            .having(func.count() > 1)
        ).all()
    assert duplicates == []
    counts = snapshot(engine).counts()
    assert counts["papers"] > 0 and counts["sightings"] >= counts["papers"]


def test_two_reviewers_race_on_one_candidate(engine: Engine) -> None:
    catalogue = factory.catalogue(engine, "vpt", entry_labels=[["learnable"], ["pixel"]])
    candidate = factory.candidate(
        engine, catalogue, "Visual Prompt Tuning", relevance=0.9, proposed=["learnable"]
    )
    ana, bo = ReviewQueue(engine, "ana", "vpt"), ReviewQueue(engine, "bo", "vpt")
    seen = {name: queue.get(candidate).version for name, queue in (("ana", ana), ("bo", bo))}
    assert seen["ana"] == seen["bo"]
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def act(name: str, action: object) -> None:
        start.wait()
        try:
            results[name] = action()  # type: ignore[operator]
        except Conflict as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=act, args=("ana", lambda: ana.accept(candidate, ["learnable"], seen["ana"]))),
        threading.Thread(target=act, args=("bo", lambda: bo.reject(candidate, "off-topic", seen["bo"]))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    conflicts = [name for name, result in results.items() if isinstance(result, Conflict)]
    assert len(results) == 2 and len(conflicts) == 1, results
    winner = ({"ana", "bo"} - set(conflicts)).pop()
    final = ana.get(candidate)
    assert final.status == ("accepted" if winner == "ana" else "rejected")
    assert final.version == seen["ana"] + 1
    # The loser is told what happened instead (the Conflict carries the current state)...
    lost = results[conflicts[0]]
    assert isinstance(lost, Conflict) and lost.current is not None and lost.current.status == final.status
    # ...and the audit log holds both outcomes: the winner's decision, then the loser's attempt.
    loser = "bo" if winner == "ana" else "ana"
    with transaction(engine) as session:
        decisions = session.scalars(
            select(DecisionRow).where(DecisionRow.candidate_id == candidate).order_by(DecisionRow.id)
        ).all()
        assert [(d.reviewer, d.action) for d in decisions] == [
            (winner, "accept" if winner == "ana" else "reject"),
            (loser, "conflict"),
        ]
        assert decisions[1].before == {"attempted": "accept" if loser == "ana" else "reject"}
    # The loser can act on the new state knowingly: an undo by the winner reopens it.
    assert [item.status for item in (ana if winner == "ana" else bo).undo()] == ["pending"]


class _PausingRanks(dict[str, int]):
    """`identity._STATUS_RANK` that holds the merge at its first use: the candidates of both
    papers are read, none is dropped yet (a wrap from outside; the merge has no test hook)."""

    def __init__(self, ranks: dict[str, int], reached: threading.Event, go: threading.Event) -> None:
        super().__init__(ranks)
        self.reached, self.go = reached, go

    def get(self, key: str, default: int = -1) -> int:  # type: ignore[override]
        if not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(60)
        return super().get(key, default)


def test_a_reject_during_a_merge_is_kept_or_refused(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """`papers merge` keeps, of two candidates of one catalogue, the one furthest along, as it
    read them. A reviewer who rejected the other one meanwhile was told "rejected", and the
    merge then deleted that candidate and kept the deferred one: the paper came back to the
    queue, its rejection undone by a repair (PostgreSQL; SQLite's write lock serialised them).
    The merge now locks the candidates it weighs: the reject waits, and is refused (the
    candidate was merged away), or comes first and is kept."""
    keep, other = load(engine, PAPER, PAPER_AT_CVPR)
    catalogue = factory.catalogue(engine, "vpt", entry_labels=[["learnable"]])
    with transaction(engine) as session:
        kept = CandidateRow(paper_id=keep, catalogue_id=catalogue, status="deferred", relevance=0.5)
        dropped = CandidateRow(paper_id=other, catalogue_id=catalogue, status="pending", relevance=0.5)
        session.add_all([kept, dropped])
        session.flush()
        kept_id, dropped_id = kept.id, dropped.id
    bo = ReviewQueue(engine, "bo", "vpt")
    version = bo.get(dropped_id).version

    reached, go = threading.Event(), threading.Event()
    monkeypatch.setattr(identity, "_STATUS_RANK", _PausingRanks(identity._STATUS_RANK, reached, go))
    outcome: dict[str, object] = {}

    def merging() -> None:
        outcome["merge"] = identity.merge(engine, keep, other)

    def rejecting() -> None:
        try:
            outcome["reject"] = bo.reject(dropped_id, "off-topic", version)
        except (Conflict, UserError) as exc:
            outcome["reject"] = exc

    merge = threading.Thread(target=merging)
    merge.start()
    assert reached.wait(60)
    reject = threading.Thread(target=rejecting)
    reject.start()
    reject.join(timeout=3)  # done at once without the lock; waits for the merge with it
    go.set()
    merge.join(timeout=60)
    reject.join(timeout=60)
    assert "merge" in outcome and "reject" in outcome, outcome

    with transaction(engine) as session:
        left = session.scalars(select(CandidateRow).where(CandidateRow.paper_id == keep)).all()
    assert len(left) == 1
    if isinstance(outcome["reject"], Exception):  # refused: the merge's choice stands
        # One line that says why (it was an IntegrityError: the conflict's audit row named
        # the deleted candidate).
        assert f"candidate {dropped_id} was removed meanwhile" in str(outcome["reject"])
        assert (left[0].id, left[0].status) == (kept_id, "deferred")
    else:  # the reviewer was told "rejected": the paper must stay rejected
        assert left[0].status == "rejected", (outcome["reject"], left[0].id, left[0].status)
