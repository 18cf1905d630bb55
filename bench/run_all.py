"""Run every benchmark and write `bench/results/summary.json`.

ingest, classify, review, render, backfill and nightly, one after another (never two at once:
they would time each other). Scripts with `--json` give their figures as JSON; the others'
printed output is kept as text.

    .venv/bin/python bench/run_all.py            # full sizes (minutes)
    .venv/bin/python bench/run_all.py --quick    # small sizes, to check the scripts run

Each benchmark also prints its own figures; the summary adds the machine's description so
that figures are never quoted without it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def machine() -> dict[str, Any]:
    memory = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            memory = handle.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory": memory,
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def run(script: str, args: list[str], *, json_output: bool = True) -> dict[str, Any]:
    """One benchmark in its own process, with the load average before and after it."""
    load_before = os.getloadavg()
    if not json_output:
        done = subprocess.run(
            [sys.executable, str(BENCH / script), *args], check=False, capture_output=True, text=True
        )
        print(done.stdout, end="", flush=True)
        print(done.stderr, end="", file=sys.stderr, flush=True)
        return {
            "exit_code": done.returncode,
            "output": done.stdout.splitlines(),
            "load_average": [load_before, os.getloadavg()],
        }
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        ran = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)], check=False)
        figures = json.loads(out.read_text(encoding="utf-8")) if out.stat().st_size else {}
        return {
            "exit_code": ran.returncode,
            "figures": figures,
            "load_average": [load_before, os.getloadavg()],
        }
    finally:
        out.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args(argv)
    quick = args.quick
    summary: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "ingest": run("ingest.py", ["--records", "20000"] if quick else [], json_output=False),
        "classify": run(
            "classify.py", ["--papers", "5000", "--unlabeled", "3000"] if quick else [], json_output=False
        ),
        "review": run(
            "review.py", ["--candidates", "2000", "--presses", "20"] if quick else [], json_output=False
        ),
        "render": run("render.py", ["--entries", "500", "--accepted", "3"] if quick else []),
        "backfill": run("backfill.py", ["--sizes", "3000,10000"] if quick else []),
        "nightly": run("nightly.py", ["--store", "10000"] if quick else []),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'summary.json'}")
    return max(
        result["exit_code"]
        for result in summary.values()
        if isinstance(result, dict) and "exit_code" in result
    )


if __name__ == "__main__":
    sys.exit(main())
