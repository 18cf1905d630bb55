"""Write a result file through `cli.context.write_output` and hold half-way, until the test
kills this process or lets it finish (tests of temporary files left by killed writers).

    python tests/faults/write_hold_child.py '{"path": "/tmp/out/scores.jsonl", "text": "mine",
                                               "hold": "/tmp/folder"}'

It writes the first half of `text`, touches `<hold>/ready`, waits for `<hold>/go` (at most
two minutes), then writes the rest: the target then holds `text` whole.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vpt_tracker.cli.context import write_output


def main() -> None:
    spec = json.loads(sys.argv[1])
    hold, text = Path(spec["hold"]), spec["text"]
    with write_output(Path(spec["path"])) as out:
        out.write(text[: len(text) // 2])
        out.flush()
        (hold / "ready").touch()
        deadline = time.monotonic() + 120
        while not (hold / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        out.write(text[len(text) // 2 :])
    print("written")


if __name__ == "__main__":
    main()
