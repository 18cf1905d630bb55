"""Run `vpt-tracker classify train NAME` and SIGKILL this process between the two renames
that save the model and its model card (crash-safety tests).

    python tests/faults/train_crash_child.py '{"db_url": "...", "data_dir": "...", "name": "vpt",
                                                "seed": 1}'

The kill wraps `Path.replace` from the outside, in this process only (the production code
has no test hook): right after the first rename onto `model.pkl.xz` or `model-card.json`,
whichever comes first, before the second. With `"hold": FOLDER` it does not die there: it
touches `FOLDER/ready`, waits for `FOLDER/go`, then makes the second rename and finishes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from vpt_tracker.classify.model import CARD_FILE, MODEL_FILE
from vpt_tracker.cli import main as cli


def main() -> None:
    spec = json.loads(sys.argv[1])
    rename = Path.replace

    hold = Path(spec["hold"]) if spec.get("hold") else None

    def replace_then_die(self: Path, target: str | os.PathLike[str]) -> Path:
        result = rename(self, target)
        if Path(target).name in (MODEL_FILE, CARD_FILE) and hold is not None:
            if not (hold / "ready").exists():  # the first rename only: hold until let go
                (hold / "ready").touch()
                deadline = time.monotonic() + 120
                while not (hold / "go").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
        elif Path(target).name in (MODEL_FILE, CARD_FILE):
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Path.replace = replace_then_die  # type: ignore[method-assign,assignment]
    os.environ.update({"VPT_DATA_DIR": spec["data_dir"], "VPT_CONFIG": ""})
    args = ["--database", spec["db_url"], "classify", "train", spec["name"], "--seed", str(spec["seed"])]
    cli.main(args=args, prog_name="vpt-tracker", standalone_mode=False)
    print("saved" if hold is not None else "finished without reaching the kill point")


if __name__ == "__main__":
    main()
