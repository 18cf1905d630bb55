"""Run the real CLI in a process of its own that file permissions apply to, even as root.

Root reads and writes anything, so a "permission denied" test would pass for the wrong
reason (or not fail at all). As root, the child drops CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH from its capability bounding set before `exec`: it stays root, owns
what root owns, but a mode-000 file or folder is closed to it as to anyone else.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import vpt_tracker

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
SRC = Path(vpt_tracker.__file__).resolve().parents[1]


def _drop_file_capabilities() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`vpt-tracker ARGS` with file permissions enforced; stdout and stderr captured as text."""
    command = [sys.executable, "-c", "from vpt_tracker.cli import main; main()", *args]
    environment = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(
        command,
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None,
    )
