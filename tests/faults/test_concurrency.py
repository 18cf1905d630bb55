"""Two nightly runs at the same moment, and two reviewers racing on one candidate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import Engine, func, select

from faults.helpers import snapshot, write_config
from review import factory
from vpt_tracker.locks import EX_TEMPFAIL
from vpt_tracker.replay import Fault, ReplayServer
from vpt_tracker.review.queue import Conflict, ReviewQueue
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import DecisionRow, RunRow, SightingRow

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
