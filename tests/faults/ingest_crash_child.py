"""Run `vpt-tracker ingest-jsonl` and SIGKILL this process after its N-th commit.

    python tests/faults/ingest_crash_child.py '{"db_url": "...", "data_dir": "...", "files": [...],
                                                 "batch_size": 50, "kill": 3}'

Its first commits record the run (`running`) and read the identity index; then each commit
is a batch of records (with `batch_size` 50, commit 5 is the first batch). The kill
wraps `SessionTransaction.commit` from the outside, in this process only, as
`crash_child.py` does for a nightly run.
"""

from __future__ import annotations

import json
import os
import sys

from sqlalchemy.orm import SessionTransaction

from faults.crash_child import wrap
from vpt_tracker.cli import main as cli


def main() -> None:
    spec = json.loads(sys.argv[1])
    wrap(SessionTransaction, "commit", "commit", "", int(spec["kill"]), after=True)
    os.environ.update({"VPT_DATA_DIR": spec["data_dir"], "VPT_CONFIG": ""})
    args = [
        "--database",
        spec["db_url"],
        "ingest-jsonl",
        *spec["files"],
        "--batch-size",
        str(spec["batch_size"]),
    ]
    cli.main(args=args, prog_name="vpt-tracker", standalone_mode=False)
    print("finished without reaching the kill point")


if __name__ == "__main__":
    main()
