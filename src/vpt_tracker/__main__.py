"""`python -m vpt_tracker`: the `vpt-tracker` command, for a checkout or a venv whose
scripts folder is not on PATH (cron lines, `docker exec`)."""

from vpt_tracker.cli import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="vpt-tracker")
