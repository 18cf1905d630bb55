"""`init` and `config show`."""

from __future__ import annotations

import click

from vpt_tracker.cli.context import AppContext, echo_json, pass_app
from vpt_tracker.config import masked_dump
from vpt_tracker.store import safe_url


@click.command()
@pass_app
def init(app: AppContext) -> None:
    """Create the database, or upgrade it to the current schema."""
    app.engine(migrate=True)
    click.echo(f"database ready: {safe_url(app.settings.database_url)}")


@click.group()
def config() -> None:
    """Inspect the resolved configuration."""


@config.command("show")
@pass_app
def config_show(app: AppContext) -> None:
    """Print the resolved config as JSON, with secrets masked."""
    data = masked_dump(app.settings)
    data["database_url"] = safe_url(app.settings.database_url)
    echo_json(data)


def register(main: click.Group) -> None:
    main.add_command(init)
    main.add_command(config)
