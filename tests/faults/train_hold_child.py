"""Run `vpt-tracker classify train NAME` and hold it just before it saves the model, until
the test lets it go (concurrency tests: a second train of the same catalogue meanwhile).

    python tests/faults/train_hold_child.py '{"db_url": "...", "data_dir": "...", "name": "vpt",
                                               "hold": "/tmp/folder"}'

It writes `<hold>/ready` when it reaches the save, then waits for `<hold>/go` (at most two
minutes). The pause wraps `CatalogueModel.save` from the outside, in this process only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from vpt_tracker.classify.model import CatalogueModel
from vpt_tracker.cli import main as cli


def main() -> None:
    spec = json.loads(sys.argv[1])
    hold = Path(spec["hold"])
    save = CatalogueModel.save

    def wait_then_save(self: CatalogueModel, directory: Path) -> None:
        (hold / "ready").touch()
        deadline = time.monotonic() + 120
        while not (hold / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        save(self, directory)

    CatalogueModel.save = wait_then_save  # type: ignore[method-assign]
    os.environ.update({"VPT_DATA_DIR": spec["data_dir"], "VPT_CONFIG": ""})
    args = ["--database", spec["db_url"], "classify", "train", spec["name"]]
    cli.main(args=args, prog_name="vpt-tracker")


if __name__ == "__main__":
    main()
