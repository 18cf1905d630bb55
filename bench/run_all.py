"""Run the render, backfill and nightly benchmarks and write `bench/results/summary.json`.

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
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "note": "shared machine: other test runs may have been using the CPUs",
    }


def run(script: str, args: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        done = subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)], check=False)
        figures = json.loads(out.read_text(encoding="utf-8")) if out.stat().st_size else {}
        return {"exit_code": done.returncode, "figures": figures}
    finally:
        out.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "render": run("render.py", ["--entries", "500", "--accepted", "3"] if args.quick else []),
        "backfill": run("backfill.py", ["--sizes", "3000,10000"] if args.quick else []),
        "nightly": run("nightly.py", ["--store", "10000"] if args.quick else []),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'summary.json'}")
    return max(summary[name]["exit_code"] for name in ("render", "backfill", "nightly"))


if __name__ == "__main__":
    sys.exit(main())
