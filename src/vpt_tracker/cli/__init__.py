"""The `vpt-tracker` command line.

`main` is the root group; each area registers its commands from its own module in this
package (`catalogue.py`, `sources.py`, ...), so that areas do not edit one large file.
Errors that mean bad input become one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

# First of ours: until `startup.finished()` below, a Ctrl-C is one line and exit 130.
from vpt_tracker.cli import startup
from vpt_tracker.cli.context import AppContext, run_guarded

# Modules that add commands to `main`, in help order. Each defines `register(main)`.
COMMAND_MODULES = [
    "vpt_tracker.cli.admin",
    "vpt_tracker.cli.catalogue",
    "vpt_tracker.cli.sources",
    "vpt_tracker.cli.ingest",
    "vpt_tracker.cli.papers",
    "vpt_tracker.cli.classify",
    "vpt_tracker.cli.review",
    "vpt_tracker.cli.publish",
    "vpt_tracker.cli.ops",
]


class GuardedGroup(click.Group):
    """A group whose commands turn known errors into a one-line message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(lambda: super(GuardedGroup, self).invoke(ctx))


@click.group(
    cls=GuardedGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),  # read by load_settings, whose errors are one line
    help="Config file (default: $VPT_CONFIG, then ./vpt-tracker.toml).",
)
@click.option("--database", "database_url", metavar="URL", help="Database URL (overrides the config).")
@click.option("-v", "--verbose", count=True, help="More logging: -v info, -vv debug.")
@click.version_option(package_name="vpt-tracker")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, database_url: str | None, verbose: int) -> None:
    """Keep curated paper lists on visual prompt tuning up to date.

    Fetch new papers, score them against each catalogue, review them in a terminal UI and
    publish the accepted ones as a pull request.
    """
    ctx.obj = AppContext(config_file=config_file, database_url=database_url, verbosity=verbose)
    ctx.call_on_close(ctx.obj.close)


try:
    for _module in COMMAND_MODULES:
        importlib.import_module(_module).register(main)
finally:  # a module that fails to load leaves no handler behind in the importing process
    startup.finished()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
