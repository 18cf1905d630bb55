"""Temporary files of killed writers: the next write of the same path removes them, and
only them.

A result file or a model is written into `<name>.<host>-<pid>-<random>.tmp` and renamed
over its path (`files.temporary_file`). A writer SIGKILLed half-way left that file for the
maintainer to delete by hand. Each writer now holds an `flock` on its file until the rename;
the kernel lets go of it when the writer dies, and a later writer removes a file only while
it holds that lock itself. `write_hold_child.py` writes half a file and holds there.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from faults.helpers import start_held
from vpt_tracker.cli.context import write_output
from vpt_tracker.files import temporary_file

WRITE_CHILD = Path(__file__).with_name("write_hold_child.py")


def leftovers(target: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(target.parent.glob(f"{target.name}.*.tmp"))}


def test_a_killed_writers_file_goes_with_the_next_write_and_a_live_writers_stays(tmp_path: Path) -> None:
    target = tmp_path / "out" / "scores.jsonl"
    target.parent.mkdir()
    holds = [tmp_path / "killed", tmp_path / "live"]
    for hold in holds:
        hold.mkdir()
    killed = start_held(WRITE_CHILD, {"path": str(target), "text": "the killed run's\n"}, holds[0])
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    (left,) = leftovers(target).items()  # its half, as before
    assert left[1] == "the kill" and f"-{killed.pid}-" in left[0]

    live = start_held(WRITE_CHILD, {"path": str(target), "text": "the live run's\n"}, holds[1])
    try:
        (writing,) = set(leftovers(target)) - {left[0]}
        with write_output(target) as out:
            out.write("this run's\n")
        assert target.read_text() == "this run's\n"
        # The killed writer's file went; the live one's is left whole, mid-write.
        assert leftovers(target) == {writing: "the liv"} and f"-{live.pid}-" in writing
    finally:
        (holds[1] / "go").touch()
        out_bytes, err = live.communicate(timeout=60)
    assert live.returncode == 0, (out_bytes + err).decode()[-2000:]
    assert target.read_text() == "the live run's\n" and leftovers(target) == {}


def test_only_unheld_files_of_this_shape_and_host_go(tmp_path: Path) -> None:
    """A file this process still holds is left (a writer in this process, or another's that
    was just made); so are names another host's writer made (an NFS mount whose locks are
    local to each host would show its live files as unheld), those of versions before the
    lock (`<name>.<random>.tmp`, whose writers held none), and other targets' files."""
    held = temporary_file(tmp_path, "scores.jsonl")
    try:
        other_host = f"scores.jsonl.{'0' * 8 if '00000000' not in held.name else '1' * 8}-1-0123abcd.tmp"
        strangers = [other_host, "scores.jsonl.0123456789ab.tmp", "scores.jsonl.tmp", "model.pkl.xz.tmp"]
        for name in strangers:
            (tmp_path / name).write_text("someone's")
        dead = Path(held.name).with_name(Path(held.name).name.replace(f"-{os.getpid()}-", "-1-"))
        dead.write_text("a killed writer's")  # this host's shape, nobody holds it
        with temporary_file(tmp_path, "scores.jsonl") as second:
            assert Path(second.name).exists() and Path(held.name).exists() and not dead.exists()
            Path(second.name).unlink()
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*strangers, Path(held.name).name])
    finally:
        Path(held.name).unlink()
        held.close()
