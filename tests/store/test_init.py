"""`vpt-tracker init` creates or upgrades the database; a bad database is one line, exit 2."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from conftest import PG_URL, require_postgres
from unprivileged import run_cli
from vpt_tracker.cli import GuardedGroup, main
from vpt_tracker.cli.context import AppContext, pass_app
from vpt_tracker.store import make_engine


def test_init_creates_schema(db_url: str) -> None:
    result = CliRunner().invoke(main, ["--database", db_url, "init"])
    assert result.exit_code == 0, result.output
    assert "database ready" in result.output
    engine = make_engine(db_url)
    assert "papers" in inspect(engine).get_table_names()
    engine.dispose()
    again = CliRunner().invoke(main, ["--database", db_url, "init"])
    assert again.exit_code == 0


@pytest.mark.parametrize(
    "command", [["init"], ["runs"], ["stats"], ["run", "nightly"], ["review", "list"], ["serve"]]
)
def test_an_unreachable_database_is_exit_69(command: list[str]) -> None:
    """A PostgreSQL server that is down (nothing listens on its port) is no fault of the
    command: exit 69 (EX_UNAVAILABLE), so that cron and monitoring retry it instead of asking
    for a fix. It was 2, the exit code of a bad command or config."""
    url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"
    result = CliRunner().invoke(main, ["--database", url, *command], env={"VPT_CONFIG": ""})
    assert result.exit_code == 69, (result.output, result.exception)
    assert result.stderr.startswith(
        "Error: cannot reach database postgresql+psycopg://postgres:***@127.0.0.1:1/test: connection failed: "
    ), result.stderr
    assert result.stderr.count("\n") == 1 and "s3cret" not in result.stderr


def test_a_server_that_refuses_the_connection_is_exit_2() -> None:
    """A server that answers and refuses (here: no such role) wants a fix, not a retry."""
    require_postgres()
    url = (
        make_url(PG_URL).set(username="vpt_no_such_role", password=None).render_as_string(hide_password=False)
    )
    result = CliRunner().invoke(main, ["--database", url, "runs"], env={"VPT_CONFIG": ""})
    error = one_line_error(result)
    assert error.startswith("Error: cannot connect to database ") and 'role "vpt_no_such_role"' in error, (
        error
    )


@contextmanager
def postgres_answering(severity: str, sqlstate: str, message: str) -> Iterator[int]:
    """A server on 127.0.0.1 that answers every connection as PostgreSQL does when it cannot
    take it: no to TLS, then an ErrorResponse (severity, SQLSTATE, message). Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    fields = b"".join(
        code + text.encode() + b"\0" for code, text in ((b"S", severity), (b"V", severity), (b"C", sqlstate))
    )
    fields += b"M" + message.encode() + b"\0\0"
    error = b"E" + struct.pack("!i", 4 + len(fields)) + fields

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with connection:
                length, code = struct.unpack("!ii", connection.recv(8))
                connection.recv(length - 8)
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: no
                    connection.sendall(b"N")
                    length = struct.unpack("!i", connection.recv(4))[0]
                    connection.recv(length - 4)  # the startup message
                connection.sendall(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


@pytest.mark.parametrize(
    ("sqlstate", "message", "code"),
    [
        ("57P03", "the database system is starting up", 69),
        ("53300", "sorry, too many clients already", 69),
        ("28P01", 'password authentication failed for user "postgres"', 2),
    ],
)
def test_a_server_that_takes_no_connections_for_now_is_exit_69(
    sqlstate: str, message: str, code: int
) -> None:
    """A server starting up (a cron job right after a reboot) or with every connection slot
    taken is worth a retry, like one that is down; a wrong password is not."""
    with postgres_answering("FATAL", sqlstate, message) as port:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test?sslmode=disable"
        result = CliRunner().invoke(main, ["--database", url, "runs"], env={"VPT_CONFIG": ""})
    assert result.exit_code == code, (result.output, result.exception)
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_not_a_url_is_exit_2() -> None:
    result = CliRunner().invoke(main, ["--database", "::not a url::", "init"])
    assert result.exit_code == 2
    assert "not a database URL" in result.output


def one_line_error(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("how", ["--database", "VPT_DATABASE_URL"])
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("foo://host/db", "unknown database kind 'foo' in foo://host/db"),
        ("postgresql+nodriver://u@127.0.0.1/db", "unknown database kind 'postgresql+nodriver'"),
        (
            "postgresql://u:s3cret@127.0.0.1:port/db",
            "not a database URL: 'postgresql://u:***@127.0.0.1:port/db'",
        ),
        ("sqlite://somehost/x.db", "not a usable database URL sqlite://somehost/x.db: "),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none?no_such_option=1", "cannot connect to database"),
    ],
)
@pytest.mark.parametrize("command", [["init"], ["runs"]])
def test_a_malformed_database_url_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, url: str, message: str, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no vpt-tracker.toml from the working folder
    args, env = [*command], {"VPT_CONFIG": ""}
    if how == "--database":
        args = ["--database", url, *args]
    else:
        env["VPT_DATABASE_URL"] = url
    error = one_line_error(CliRunner().invoke(main, args, env=env))
    assert message in error and "s3cret" not in error, error


def test_config_show_masks_a_database_url_it_cannot_parse(tmp_path: Path) -> None:
    url = "postgresql://u:s3cret@127.0.0.1:port/db"
    result = CliRunner().invoke(main, ["--database", url, "config", "show"], env={"VPT_CONFIG": ""})
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["database_url"] == "postgresql://u:***@127.0.0.1:port/db"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        # Nothing listens on port 1: exit 69, the server is unavailable.
        ("postgresql+psycopg://nobody@127.0.0.1:1/none?password=s3cret", 69),
        # libpq knows no PASSWORD option (its names are lower case): exit 2, fix the URL.
        ("postgresql+psycopg://nobody@127.0.0.1:1/none?sslmode=disable&PASSWORD=s3cret", 2),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none?sslpassword=s3cret", 69),
        ("postgresql://nobody@127.0.0.1:port/none?password=s3cret", 2),  # one that does not parse
    ],
)
def test_a_password_in_the_query_of_the_database_url_is_masked(url: str, code: int) -> None:
    """libpq (and so psycopg) takes the password as a query parameter too, which hid it from
    the URL's own password masking: `config show`, `init` and the "cannot reach" error
    printed it as written."""
    env = {"VPT_CONFIG": ""}
    shown = CliRunner().invoke(main, ["--database", url, "config", "show"], env=env)
    assert shown.exit_code == 0, (shown.output, shown.exception)
    database_url = json.loads(shown.stdout)["database_url"]
    assert "s3cret" not in database_url and "=***" in database_url, database_url
    error = one_line_error(CliRunner().invoke(main, ["--database", url, "runs"], env=env), code)
    assert "s3cret" not in error and "=***" in error, error


def test_a_sqlite_file_that_is_not_a_database_is_one_line_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    for command in (["init"], ["runs"], ["stats"]):
        error = one_line_error(CliRunner().invoke(main, ["--database", f"sqlite:///{notes}", *command]))
        assert error == f"Error: {notes} is not a SQLite database file (file is not a database)\n"
    assert notes.read_text() == "not a database\n" * 100


def test_a_sqlite_path_in_a_missing_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-folder" / "store.db"
    error = one_line_error(CliRunner().invoke(main, ["--database", f"sqlite:///{missing}", "init"]))
    assert error == f"Error: the folder of the SQLite database {missing} does not exist\n"
    assert not missing.parent.exists()  # a typo in the path creates nothing
    notes = tmp_path / "notes.txt"
    notes.write_text("a file, not a folder\n")
    inside = notes / "store.db"
    error = one_line_error(CliRunner().invoke(main, ["--database", f"sqlite:///{inside}", "init"]))
    assert error == f"Error: the folder of the SQLite database {inside} does not exist\n"
    # Only the default database's folder (in the data dir) is made on first use.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPT_DATABASE_URL", raising=False)
    env = {"VPT_CONFIG": "", "VPT_DATA_DIR": str(tmp_path / "data" / "vpt")}
    result = CliRunner().invoke(main, ["init"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "vpt" / "vpt-tracker.db").is_file()


def test_a_read_only_database_is_one_line_and_left_unchanged(tmp_path: Path) -> None:
    # The import got as far as its INSERT and ended in an OperationalError traceback.
    database = tmp_path / "store.db"
    url = f"sqlite:///{database}"
    assert CliRunner().invoke(main, ["--database", url, "init"]).exit_code == 0
    before = database.read_bytes()
    database.chmod(0o444)
    readme = (
        Path(__file__).parents[1]
        / "fixtures/lists/StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    )
    result = run_cli(
        "--database", url, "catalogue", "import", str(readme), "--name", "g", "--preset", "generalizable-vlm"
    )
    assert result.returncode == 2
    assert result.stderr == "Error: the database refused the command: attempt to write a readonly database\n"
    assert database.read_bytes() == before


@pytest.mark.parametrize("command", [["init"], ["runs"]])
def test_a_database_from_a_newer_version_is_one_line_and_left_alone(db_url: str, command: list[str]) -> None:
    """A database that a newer vpt-tracker migrated (a downgrade, or an old copy installed
    beside a new one) was an alembic `CommandError` traceback, exit 1, from every command."""
    assert CliRunner().invoke(main, ["--database", db_url, "init"]).exit_code == 0
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    result = CliRunner().invoke(main, ["--database", db_url, *command])
    message = one_line_error(result)
    assert "schema revision 0099_from_the_future" in message and "newer" in message, message
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == (
            "0099_from_the_future"
        )
    engine.dispose()


@pytest.fixture
def restricted_role() -> Iterator[tuple[str, str]]:
    """(a PostgreSQL URL of a role that may use but not create in its schema, that schema's
    admin URL): what PostgreSQL 15 gives an ordinary user in `public`, or a read-only role."""
    require_postgres()
    suffix = uuid.uuid4().hex[:12]
    role, schema = f"vpt_ro_{suffix}", f"t_ro_{suffix}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
    url = make_url(PG_URL)
    options = f"?options=-csearch_path%3D{schema}"
    try:
        yield (
            url.set(username=role, password=None).render_as_string(hide_password=False) + options,
            PG_URL + options,
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_a_postgresql_role_without_the_rights_is_one_line(restricted_role: tuple[str, str]) -> None:
    """A role that may not create tables (`init`), or not read them (any command), was a
    ProgrammingError traceback, exit 1; a read-only SQLite file was one line already."""
    url, admin_url = restricted_role
    message = one_line_error(CliRunner().invoke(main, ["--database", url, "init"]))
    assert re.fullmatch(
        r"Error: the database refused the command: permission denied for schema t_ro_\w+\n", message
    ), message
    assert CliRunner().invoke(main, ["--database", admin_url, "init"]).exit_code == 0
    message = one_line_error(CliRunner().invoke(main, ["--database", url, "stats"]))
    assert message == "Error: the database refused the command: permission denied for table alembic_version\n"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_server_gone_mid_command_is_exit_69(db_url: str) -> None:
    """A PostgreSQL restart or failover in the middle of a command ends its session: like a
    server that is down, that is "try again later", exit 69; it was "the database refused the
    command" and exit 2, the code of a command to fix."""

    @click.group(cls=GuardedGroup)
    @click.pass_context
    def group(ctx: click.Context) -> None:
        ctx.obj = AppContext(database_url=db_url)
        ctx.call_on_close(ctx.obj.close)

    @group.command()
    @pass_app
    def query(app: AppContext) -> None:
        with app.engine().connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            admin = create_engine(PG_URL)
            with admin.begin() as other:  # what a server restart does to the session
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.dispose()
            connection.execute(text("SELECT count(*) FROM papers"))

    result = CliRunner().invoke(group, ["query"], env={"VPT_CONFIG": ""})
    assert result.exit_code == 69, (result.output, result.exception)
    shown = make_engine(db_url).url.render_as_string(hide_password=True)
    reason = "terminating connection due to administrator command"
    assert result.stderr == f"Error: lost the connection to database {shown}: {reason}\n", result.stderr


def test_a_server_down_when_a_command_connects_again_is_exit_69() -> None:
    """A server that went down mid-command refuses the next connection the command opens (a
    run marking itself failed, a lock let go): that is as unavailable, exit 69, not a refusal."""

    @click.group(cls=GuardedGroup)
    def group() -> None:
        pass

    @group.command()
    def query() -> None:
        with make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test").connect():
            pass

    result = CliRunner().invoke(group, ["query"], env={"VPT_CONFIG": ""})
    assert result.exit_code == 69, (result.output, result.exception)
    assert result.stderr.startswith("Error: lost the connection to the database: connection failed: ")
