"""Config resolution: TOML < secrets file < environment < CLI flags; secrets masked."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any, get_args

import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel

from unprivileged import run_cli
from vpt_tracker.cli import main
from vpt_tracker.config import ARXIV_HOSTS, REVIEW_ACTIONS, ConfigError, Settings, load_settings
from vpt_tracker.models import check_branch_name


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_toml_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "c.toml", 'database_url = "sqlite:///from-toml.db"\n[smtp]\nport = 25\n')
    assert load_settings(config).database_url == "sqlite:///from-toml.db"
    assert load_settings(config).smtp.port == 25
    monkeypatch.setenv("VPT_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("VPT_SMTP__PORT", "2525")
    assert load_settings(config).database_url == "sqlite:///from-env.db"
    assert load_settings(config).smtp.port == 2525
    assert load_settings(config, database_url="sqlite:///from-cli.db").database_url == "sqlite:///from-cli.db"


def test_default_database_lives_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPT_DATABASE_URL", raising=False)
    monkeypatch.setenv("VPT_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'vpt-tracker.db'}"
    assert "site-packages" not in settings.database_url and "/src/" not in settings.database_url


def test_data_dir_in_the_file_holds_the_default_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`data_dir` in the file moved the cache, the models and the working copies, and left the
    database in the user data dir: only $VPT_DATA_DIR moved it. `init` makes it there."""
    monkeypatch.chdir(tmp_path)
    for name in ("VPT_DATABASE_URL", "VPT_DATA_DIR", "VPT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = write(tmp_path / "c.toml", f'data_dir = "{tmp_path / "data"}"\n')
    assert load_settings(config).database_url == f"sqlite:///{tmp_path / 'data' / 'vpt-tracker.db'}"
    given = write(tmp_path / "d.toml", f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "sqlite:///x.db"\n')
    assert load_settings(given).database_url == "sqlite:///x.db"
    result = CliRunner().invoke(main, ["--config", str(config), "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "vpt-tracker.db").is_file()


def test_catalogues_and_secrets_file(tmp_path: Path) -> None:
    secrets = write(tmp_path / "secrets.toml", '[github]\ntoken = "ghp_from_secrets_file"\n')
    config = write(
        tmp_path / "c.toml",
        f'secrets_file = "{secrets}"\n'
        '[[catalogues]]\nname = "vpt"\npreset = "awesome-vpt"\nreadme = "README.md"\n'
        'github_repo = "yunbeizhang/Awesome-Visual-Prompt-Tuning"\n',
    )
    settings = load_settings(config)
    assert settings.catalogue("vpt") is not None
    assert settings.catalogue("vpt").preset == "awesome-vpt"  # type: ignore[union-attr]
    assert settings.github.token is not None
    assert settings.github.token.get_secret_value() == "ghp_from_secrets_file"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[smtp]\nport = "many"\n', "smtp.port"),
        ('[[catalogues]]\nname = "x"\npreset = "nope"\n', "catalogues.0.preset"),
        ('[[catalogues]]\nname = "../lists"\n', "catalogues.0.name"),
        ('[[catalogues]]\nname = "x"\ngithub_repo = "https://github.com/o/r"\n', "catalogues.0.github_repo"),
        ('[[catalogues]]\nname = "x"\nbranch = "new entries"\n', "catalogues.0.branch"),
        ('[[catalogues]]\nname = "x"\nbase_branch = "main..dev"\n', "catalogues.0.base_branch"),
        # The path in the list's repository, not the local clone's file: refused at load, not
        # at the first publish (or, for `catalogue import`, at import).
        ('[[catalogues]]\nname = "x"\nreadme = "/home/me/list/README.md"\n', "catalogues.0.readme"),
        ('[[catalogues]]\nname = "x"\nreadme = "../README.md"\n', "catalogues.0.readme"),
        (
            "[[sources.cvf.conferences]]\nname = 'CVPR'\nyear = 99999999999\n",
            "sources.cvf.conferences.0.year",
        ),
        (
            "[[sources.openreview.venues]]\nvenue_id = 'ICLR.cc/2024/Conference'\nname = 'ICLR'\nyear = 24\n",
            "sources.openreview.venues.0.year",
        ),
        ("unknown_key = 1\n", "unknown_key"),
        # No request was sent, and `fetch` ended in an AssertionError traceback.
        ("[http]\nmax_retries = -1\n", "http.max_retries"),
        # `sleep length must be non-negative`, a ValueError traceback, at the first retry.
        ("[http]\nbackoff_cap = -1.0\n", "http.backoff_cap"),
        ("[http]\nbackoff_base = nan\n", "http.backoff_base"),
        ("[http]\ndefault_min_interval = -1.0\n", "http.default_min_interval"),
        ('[http]\nmin_interval = { "api2.openreview.net" = -2.0 }\n', "http.min_interval"),
        ("[http]\nmax_body_bytes = 0\n", "http.max_body_bytes"),
        # Every fetch failed with httpx's "missing an 'http://' or 'https://' protocol", exit 1.
        ('[sources.arxiv_api]\nbase_url = "export.arxiv.org/api/query"\n', "sources.arxiv_api.base_url"),
        ('[sources.cvf]\nbase_url = "https:///CVPR2024"\n', "sources.cvf.base_url"),
        # An empty venue or conference asked for nothing, and the fetch "stored 0 records".
        (
            "[[sources.openreview.venues]]\nvenue_id = ''\nname = 'ICLR'\nyear = 2024\n",
            "sources.openreview.venues.0.venue_id",
        ),
        ("[[sources.cvf.conferences]]\nname = ' '\nyear = 2024\n", "sources.cvf.conferences.0.name"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path / "c.toml", text))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[smtp]\nhots = "mail.example.org"\n', "smtp.hots"),
        ('[[catalogues]]\nname = "x"\npreseet = "awesome-vpt"\n', "catalogues.0.preseet"),
        ('[[catalogues]]\nname = "x"\n[catalogues.rules]\ninclue = ["vpt"]\n', "catalogues.0.rules.inclue"),
        ('[sources.arxiv_api]\ncategoris = ["cs.CV"]\n', "sources.arxiv_api.categoris"),
        ("[sources.arxiv_rss]\nenable = false\n", "sources.arxiv_rss.enable"),
        ("[sources.cvfs]\nenabled = false\n", "sources.cvfs"),
        ("[[sources.cvf.conferences]]\nname = 'CVPR'\nyaer = 2025\n", "sources.cvf.conferences.0.yaer"),
        ('[schedule]\ntimezon = "Europe/Berlin"\n', "schedule.timezon"),
        ('[http]\ncontacts = "me"\n', "http.contacts"),
        ('[github]\ntokens = "ghp_x"\n', "github.tokens"),
        ('[review]\nreviewr = "ana"\n', "review.reviewr"),
    ],
)
def test_a_misspelt_key_in_a_section_is_refused(tmp_path: Path, text: str, key: str) -> None:
    """A typo in a section was silently ignored, so the default stood in for the value the
    maintainer wrote (a digest to localhost, every arXiv category, a catalogue with no preset)."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ": unknown key"):
        load_settings(write(tmp_path / "c.toml", text))


def test_the_secrets_file_variable_wins_over_the_files_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$VPT_SECRETS_FILE is above the TOML file like every variable: the file's secrets file was
    read, while the resolved config (`config show`) named the variable's."""
    write(tmp_path / "file.toml", '[smtp]\npassword = "from-the-files-one"\n')
    chosen = write(tmp_path / "env.toml", '[smtp]\npassword = "from-the-variables-one"\n')
    config = write(tmp_path / "c.toml", f'secrets_file = "{tmp_path / "file.toml"}"\n')
    monkeypatch.setenv("VPT_SECRETS_FILE", str(chosen))
    settings = load_settings(config)
    assert settings.secrets_file == chosen
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "from-the-variables-one"


def test_an_empty_variable_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`VPT_DATA_DIR=` (set, empty) was the current folder: the database, the cache and the
    models went wherever the command ran. Empty is unset, for every `VPT_*` variable."""
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "c.toml", '[smtp]\nhost = "mail.example.org"\n')
    for name in ("VPT_DATA_DIR", "VPT_DATABASE_URL", "VPT_SECRETS_FILE", "VPT_SMTP__HOST", "VPT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    unset = load_settings(config)
    empties = ("VPT_DATA_DIR", "VPT_DATABASE_URL", "VPT_SECRETS_FILE", "VPT_SMTP__HOST", "VPT_GITHUB__TOKEN")
    for name in empties:
        monkeypatch.setenv(name, "")
    empty = load_settings(config)
    assert empty.data_dir == unset.data_dir != Path(".")
    assert empty.database_url == unset.database_url and empty.secrets_file is None
    assert empty.smtp.host == "mail.example.org" and empty.github.token is None
    # An error is not blamed on an empty variable, which gave nothing.
    monkeypatch.setenv("VPT_SMTP__PORT", "")
    with pytest.raises(ConfigError, match=r"^bad config: smtp\.port: "):
        load_settings(write(tmp_path / "bad.toml", '[smtp]\nport = "many"\n'))


def test_a_relative_path_in_the_file_is_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`secrets_file = "secrets.toml"` beside /etc/vpt-tracker.toml was read from the current
    folder (cron's: the home folder), and so were `data_dir`, `classifiers_dir` and
    `github.workdir`. A path from the environment is still the current folder's."""
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    write(etc / "secrets.toml", '[smtp]\npassword = "beside-the-config"\n')
    config = write(
        etc / "vpt-tracker.toml",
        'secrets_file = "secrets.toml"\ndata_dir = "data"\nclassifiers_dir = "models"\n'
        '[github]\nworkdir = "repos"\n',
    )
    monkeypatch.chdir(elsewhere)
    for name in ("VPT_DATA_DIR", "VPT_DATABASE_URL", "VPT_SECRETS_FILE", "VPT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(config)
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "beside-the-config"
    assert settings.secrets_file == etc / "secrets.toml"
    assert settings.data_dir == etc / "data"
    assert settings.database_url == f"sqlite:///{etc / 'data' / 'vpt-tracker.db'}"
    assert settings.classifiers_dir == etc / "models" and settings.github.workdir == etc / "repos"
    monkeypatch.setenv("VPT_DATA_DIR", "data")
    assert load_settings(config).data_dir == Path("data")


@pytest.mark.parametrize("name", ["vpt_secrets_file", "vpt_config"])
def test_a_lowercase_variable_is_read_as_its_capital_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Every `VPT_*` variable is read in any case (`vpt_data_dir` was); `vpt_secrets_file`
    passed the check for unknown variables and `config show` named it, but its secrets were
    never read, and `vpt_config` was not read at all."""
    monkeypatch.chdir(tmp_path)
    for each in ("VPT_SECRETS_FILE", "VPT_CONFIG"):
        monkeypatch.delenv(each, raising=False)
    secrets = write(tmp_path / "secrets.toml", '[smtp]\npassword = "from-a-lowercase-variable"\n')
    if name == "vpt_config":
        monkeypatch.setenv(name, str(write(tmp_path / "c.toml", f'secrets_file = "{secrets}"\n')))
    else:
        monkeypatch.setenv(name, str(secrets))
    settings = load_settings()
    assert settings.secrets_file == secrets and settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "from-a-lowercase-variable"


def test_a_catalogue_configured_twice_is_refused(tmp_path: Path) -> None:
    """A copied `[[catalogues]]` block left with the first one's name was accepted: the first
    block won everywhere and the second list (its preset, repository, rules) was never tracked."""
    text = (
        '[[catalogues]]\nname = "awesome-vpt"\npreset = "awesome-vpt"\n'
        '[[catalogues]]\nname = "awesome-vpt"\npreset = "generalizable-vlm"\n'
    )
    with pytest.raises(ConfigError, match=r"catalogues: .*catalogue 'awesome-vpt' is configured twice"):
        load_settings(write(tmp_path / "c.toml", text))


def test_a_misspelt_environment_variable_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPT_SMTP__HOTS", "mail.example.org")
    with pytest.raises(ConfigError, match=r"smtp\.hots \(from VPT_SMTP__HOTS\): unknown key"):
        load_settings(write(tmp_path / "c.toml", ""))


def test_a_misspelt_top_level_environment_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`VPT_DATABSE_URL` was ignored without a word, and every command used the default
    database in place of the one it named; only a misspelt key inside a section was refused."""
    monkeypatch.setenv("VPT_DATABSE_URL", "postgresql+psycopg://tracker@db/tracker")
    with pytest.raises(ConfigError, match=r"^bad config: databse_url \(from VPT_DATABSE_URL\): unknown key$"):
        load_settings(write(tmp_path / "c.toml", ""))
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "c.toml"), "stats"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    # The variables that are not config keys stay allowed: the config file's own, and the
    # test suite's (README: VPT_TEST_POSTGRES_URL).
    monkeypatch.delenv("VPT_DATABSE_URL")
    monkeypatch.setenv("VPT_CONFIG", str(tmp_path / "c.toml"))
    monkeypatch.setenv("VPT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
    monkeypatch.setenv("VPT_DATA_DIR", str(tmp_path))
    assert load_settings().data_dir == tmp_path


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows editors (Notepad) start a UTF-8 file with a byte-order mark, which tomllib
    takes for text: the whole file was "not valid TOML: Invalid statement (at line 1,
    column 1)". It is skipped, as the JSON-lines readers skip it."""
    config = tmp_path / "c.toml"
    config.write_bytes(b'\xef\xbb\xbfdata_dir = "' + str(tmp_path).encode() + b'"\n')
    assert load_settings(config).data_dir == tmp_path
    secrets = tmp_path / "secrets.toml"
    secrets.write_bytes(b'\xef\xbb\xbf[github]\ntoken = "ghp_from_a_bom_file"\n')
    settings = load_settings(config, secrets_file=secrets)
    assert settings.github.token is not None
    assert settings.github.token.get_secret_value() == "ghp_from_a_bom_file"


def test_an_interval_for_one_host_keeps_arxivs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`min_interval` and `host_groups` name hosts over the arXiv defaults, not instead of
    them: setting OpenReview's interval silently gave arXiv the 1 s default (its terms ask
    for 3 s across the API and RSS), and a group of one's own split the arXiv hosts."""
    from vpt_tracker.http import HttpClient

    config = write(
        tmp_path / "c.toml",
        '[http]\nmin_interval = { "api2.openreview.net" = 2.0 }\n'
        'host_groups = { "openaccess.thecvf.com" = "cvf" }\n',
    )
    http = load_settings(config).http
    client = HttpClient(http)
    try:
        assert client.min_interval("api2.openreview.net") == 2.0
        assert client.min_interval("export.arxiv.org") == client.min_interval("rss.arxiv.org") == 3.0
        assert client.host_group("rss.arxiv.org") == client.host_group("export.arxiv.org") == "arxiv"
        assert client.host_group("openaccess.thecvf.com") == "cvf"
        assert client.min_interval("openaccess.thecvf.com") == 1.0  # the default interval
        # The same from the environment; and an interval is still the maintainer's to set:
        # raised for one arXiv host, it is the whole group's (one interval per group).
        monkeypatch.setenv("VPT_HTTP__MIN_INTERVAL", '{"export.arxiv.org": 5.0}')
        again = HttpClient(load_settings(write(tmp_path / "d.toml", "")).http)
        assert again.min_interval("export.arxiv.org") == 5.0 and again.min_interval("arxiv.org") == 5.0
        again.close()
    finally:
        client.close()


def test_one_setting_for_a_group_sets_all_its_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lowering arXiv's interval took all three arXiv hosts: the group's name could only raise
    it, over the hosts' 3 s defaults. A group set by its name now replaces its hosts'
    defaults; a host set beside it can still only raise the group's interval."""
    from vpt_tracker.http import HttpClient

    def intervals(text: str) -> dict[str, float]:
        with HttpClient(load_settings(write(tmp_path / "c.toml", text)).http) as client:
            return {host: client.min_interval(host) for host in (*ARXIV_HOSTS, "api2.openreview.net")}

    def arxiv(seconds: float) -> dict[str, float]:
        return {**dict.fromkeys(ARXIV_HOSTS, seconds), "api2.openreview.net": 1.0}

    assert intervals('[http]\nmin_interval = { "arxiv" = 1.0 }\n') == arxiv(1.0)
    assert intervals('[http]\nmin_interval = { "arxiv" = 5.0 }\n') == arxiv(5.0)
    assert intervals('[http]\nmin_interval = { "arxiv" = 0.5, "rss.arxiv.org" = 2.0 }\n') == arxiv(2.0)
    # One host alone cannot lower the group; all three hosts still can, as before.
    assert intervals('[http]\nmin_interval = { "rss.arxiv.org" = 1.0 }\n') == arxiv(3.0)
    three = "[http]\nmin_interval = { " + ", ".join(f'"{host}" = 1.5' for host in ARXIV_HOSTS) + " }\n"
    assert intervals(three) == arxiv(1.5)
    # A group of the maintainer's own, with hosts of no default.
    mine = (
        '[http]\nhost_groups = { "a.example.org" = "ex", "b.example.org" = "ex" }\n'
        'min_interval = { "ex" = 2.0 }\n'
    )
    with HttpClient(load_settings(write(tmp_path / "g.toml", mine)).http) as client:
        assert client.min_interval("a.example.org") == client.min_interval("b.example.org") == 2.0
    # From the environment, and as `config show` resolves it.
    monkeypatch.setenv("VPT_HTTP__MIN_INTERVAL", '{"arxiv": 0.5}')
    http = load_settings(write(tmp_path / "e.toml", "")).http
    assert http.min_interval == {"arxiv": 0.5}
    with HttpClient(http) as client:
        assert {client.min_interval(host) for host in ARXIV_HOSTS} == {0.5}


@pytest.mark.parametrize("key", ["arxv", "openreview"])
def test_a_min_interval_key_that_is_no_group_nor_host_is_refused(tmp_path: Path, key: str) -> None:
    """A misspelt group was taken for a host that no request goes to: the interval it meant
    was never set, and nothing said so."""
    config = write(tmp_path / "c.toml", f'[http]\nmin_interval = {{ "{key}" = 1.0 }}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == (
        f"bad config: http.min_interval: Value error, '{key}' is neither a group of http.host_groups"
        " (arxiv) nor a host name such as 'export.arxiv.org'"
    )
    for fine in ("localhost", "127.0.0.1", "::1", "api2.openreview.net"):
        assert load_settings(write(tmp_path / "d.toml", f'[http]\nmin_interval = {{ "{fine}" = 1.0 }}\n'))


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path / "c.toml", "this is = = not toml"))


def test_config_show_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPT_GITHUB__TOKEN", "ghp_supersecret_token")
    monkeypatch.setenv("VPT_SMTP__PASSWORD", "smtp-password-42")
    url = "postgresql://user:dbpass99@localhost/x"
    result = CliRunner().invoke(main, ["--database", url, "config", "show"])
    assert result.exit_code == 0, result.output
    assert "ghp_supersecret_token" not in result.output
    assert "smtp-password-42" not in result.output
    assert "dbpass99" not in result.output
    data = json.loads(result.output)
    assert data["github"]["token"] == "**********"
    assert data["smtp"]["password"] == "**********"


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[smtp]\nport = "many"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "config", "show"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "smtp.port" in result.output


def one_line_error(result: Result) -> str:
    """The command failed as bad input should: exit 2, one `Error:` line, no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


@pytest.mark.parametrize("how", ["--config", "VPT_CONFIG", "secrets_file"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is a directory"),
        (b'[smtp]\nsender = "caf\xe9"\n', "is not UTF-8 text"),
    ],
)
def test_an_unreadable_config_file_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, content: bytes | None, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    if content is None:
        bad.mkdir()
    else:
        bad.write_bytes(content)
    args, env = ["config", "show"], {}
    if how == "--config":
        args = ["--config", str(bad), *args]
    elif how == "VPT_CONFIG":
        env["VPT_CONFIG"] = str(bad)
    else:
        env["VPT_CONFIG"] = str(write(tmp_path / "main.toml", f'secrets_file = "{bad}"\n'))
    error = one_line_error(CliRunner().invoke(main, args, env=env))
    kind = "secrets file" if how == "secrets_file" else "config file"
    assert error.startswith(f"Error: {kind} {bad} {message}"), error


def test_a_config_file_without_read_permission_is_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "private.toml", "[smtp]\nport = 25\n")
    config.chmod(0)
    result = run_cli("config", "show", env={"VPT_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"Error: config file {config} cannot be read: Permission denied\n"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("VPT_SMTP", "{bad", "VPT_SMTP is not valid JSON"),
        ("VPT_SMTP__RECIPIENTS", "ana@example.org", "VPT_SMTP__RECIPIENTS is not valid JSON"),
        ("VPT_CATALOGUES", "awesome-vpt", "VPT_CATALOGUES is not valid JSON"),
        ("VPT_HTTP__MIN_INTERVAL", "{'arxiv.org': 3}", "VPT_HTTP__MIN_INTERVAL is not valid JSON"),
        ("VPT_SMTP__PORT", "many", "bad config: smtp.port (from VPT_SMTP__PORT): Input should be"),
        ("vpt_smtp__port", "many", "bad config: smtp.port (from vpt_smtp__port): Input should be"),
        ("VPT_CATALOGUES", '[{"name": "x", "preset": "nope"}]', "catalogues.0.preset (from VPT_CATALOGUES)"),
        # One item of a list: the message blamed the list ("Input should be a valid list")
        # and named no variable, though the file's list was a good one.
        (
            "VPT_CATALOGUES__0__RECALL_TARGET",
            "0.9",
            "bad config: catalogues (from VPT_CATALOGUES__0__RECALL_TARGET): a list is set from the "
            "environment whole, as JSON in VPT_CATALOGUES, not item by item",
        ),
        (
            "VPT_SMTP__RECIPIENTS__0",
            "ana@example.org",
            "smtp.recipients (from VPT_SMTP__RECIPIENTS__0): a list is set from the environment whole, "
            "as JSON in VPT_SMTP__RECIPIENTS, not item by item",
        ),
    ],
)
def test_a_bad_environment_variable_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPT_SMTP__HOST", "mail.example.org")  # a good neighbour is not blamed
    result = CliRunner().invoke(main, ["config", "show"], env={variable: value})
    error = one_line_error(result)
    assert message in error and "VPT_SMTP__HOST" not in error, error
    # The same bad value from the file is not blamed on the environment.
    config = write(tmp_path / "c.toml", '[smtp]\nport = "many"\n')
    from_file = one_line_error(CliRunner().invoke(main, ["--config", str(config), "config", "show"]))
    assert from_file.startswith("Error: bad config: smtp.port: Input should be a valid integer"), from_file


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("[smtp]\ntimeout = 0\n", {}, "smtp.timeout"),
        ("[http]\ntimeout = -1.5\n", {}, "http.timeout"),
        ("[smtp]\ntimeout = inf\n", {}, "smtp.timeout"),
        ("", {"VPT_HTTP__TIMEOUT": "0"}, "http.timeout (from VPT_HTTP__TIMEOUT)"),
    ],
)
def test_a_timeout_must_be_positive(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    config = write(tmp_path / "c.toml", text)
    result = CliRunner().invoke(main, ["--config", str(config), "config", "show"], env=env)
    assert one_line_error(result).startswith(f"Error: bad config: {key}: "), result.stderr


BRANCHES = [
    "vpt-tracker/awesome-vpt",
    "feature/a.b",
    "ok_1",
    "a..b",
    "a b",
    "-x",
    "x.lock",
    "a/.x",
    "x/",
    "a@{b",
    "a~1",
]


@pytest.mark.parametrize("branch", BRANCHES)
def test_a_branch_is_accepted_exactly_when_git_accepts_it(branch: str) -> None:
    # A bad branch name used to fail only at the first publish, after the commit was made.
    git = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True).returncode == 0
    try:
        check_branch_name(branch)
        ours = True
    except ValueError:
        ours = False
    assert ours == git


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("[smtp]\nport = 70000\n", {}, "smtp.port"),
        ("[smtp]\nport = 0\n", {}, "smtp.port"),
        ("", {"VPT_SMTP__PORT": "-25"}, "smtp.port (from VPT_SMTP__PORT)"),
    ],
)
def test_an_smtp_port_must_be_a_port(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    """`port = 70000` passed the config and failed each digest send as a delivery error
    (`OverflowError`: the week marked failed and retried five times); `port = 0` made smtplib
    use port 25 (465 with ssl) while the messages said `:0`."""
    config = write(tmp_path / "c.toml", text)
    result = CliRunner().invoke(main, ["--config", str(config), "config", "show"], env=env)
    assert one_line_error(result).startswith(f"Error: bad config: {key}: "), result.stderr


@pytest.mark.parametrize("command", [["config", "show"], ["stats"], ["review", "list"]])
def test_an_unknown_review_action_is_refused_when_the_config_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A misspelt action in `review.keys` was refused only when the review app started:
    `config show` printed it, and every other command ran with it, without a word."""
    text = f'database_url = "sqlite:///{tmp_path}/t.db"\n[review.keys]\nacept = "y"\n'
    config = write(tmp_path / "c.toml", text)
    result = CliRunner().invoke(main, ["--config", str(config), *command])
    error = one_line_error(result)
    assert error.startswith("Error: bad config: review.keys: "), error
    assert "unknown action 'acept'; actions: " + ", ".join(REVIEW_ACTIONS) in error
    assert not (tmp_path / "t.db").exists()  # refused before the store was opened
    # From the environment the same, naming the variable.
    monkeypatch.setenv("VPT_REVIEW__KEYS", '{"accept": "y", "rejct": "n"}')
    with pytest.raises(ConfigError, match=r"^bad config: review\.keys \(from VPT_REVIEW__KEYS\): .*'rejct'"):
        load_settings(write(tmp_path / "empty.toml", ""))
    # A known action passes.
    monkeypatch.setenv("VPT_REVIEW__KEYS", '{"accept": "y"}')
    assert load_settings(tmp_path / "empty.toml").review.keys == {"accept": "y"}


README = Path(__file__).resolve().parents[1] / "README.md"
#: Tables whose keys are the maintainer's (hosts, actions), not config keys.
FREE_TABLES = ("min_interval", "host_groups", "keys")


def _config_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key `model` takes, dotted (`smtp.port`, `catalogues.rules.include`)."""
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(prefix + name)
        for arg in (field.annotation, *get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= _config_keys(arg, f"{prefix}{name}.")
    return keys


def _toml_keys(data: Any, prefix: str = "") -> set[str]:
    keys = set()
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict):
            for name, value in item.items():
                keys.add(prefix + name)
                if name not in FREE_TABLES:
                    keys |= _toml_keys(value, f"{prefix}{name}.")
    return keys


def _readme_toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_every_config_key_is_documented_in_the_readme() -> None:
    """A key is documented in a README TOML block (commented-out lines count), as `section.key`
    or `key = …` in the text, or, for a catalogue, in the `[[catalogues]]` item; a section is
    documented by its keys. `data_dir` was only ever `<data_dir>` and `$VPT_DATA_DIR`."""
    text = README.read_text(encoding="utf-8")
    documented: set[str] = set()
    for block in _readme_toml_blocks():
        uncommented = re.sub(r"^# ?([a-z_]+ = )", r"\1", block, flags=re.MULTILINE)
        documented |= _toml_keys(tomllib.loads(uncommented))
    documented |= set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)(?:`| = )", text))
    item = re.search(r"^- `\[\[catalogues\]\]`:(.*?)^- ", text, re.DOTALL | re.MULTILINE)
    assert item, "the [[catalogues]] item of ## Configuration"
    documented |= {f"catalogues.{name}" for name in re.findall(r"`([a-z_]+)`", item.group(1))}
    keys = _config_keys(Settings)
    sections = {key.rsplit(".", 1)[0] for key in keys if "." in key}
    missing = sorted(k for k in keys - documented if k not in sections)
    assert missing == []


@pytest.mark.parametrize("block", _readme_toml_blocks(), ids=lambda block: block.split("\n")[0])
def test_every_readme_config_example_loads(block: str, tmp_path: Path) -> None:
    """Each TOML block of the README is a config the program takes: no key it refuses."""
    load_settings(write(tmp_path / "c.toml", block))


def test_the_example_config_loads_with_its_commented_out_keys(tmp_path: Path) -> None:
    """vpt-tracker.example.toml's commented-out keys are keys too: turned on, they load and apply."""
    example = (README.parent / "vpt-tracker.example.toml").read_text(encoding="utf-8")
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", example, flags=re.MULTILINE)
    uncommented = re.sub(r'^database_url = "sqlite:.*$', "", uncommented, flags=re.MULTILINE)
    settings = load_settings(write(tmp_path / "c.toml", uncommented))
    assert settings.data_dir == Path("/var/lib/vpt-tracker")
    assert settings.database_url.startswith("postgresql+psycopg://")


def _default(settings: Settings, key: str) -> Any:
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def test_the_readme_operations_table_gives_the_codes_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """`| `smtp.host`, `smtp.port` | `localhost`, `587` | …`: each backticked default is the code's."""
    for name in ("VPT_SMTP__HOST", "VPT_SMTP__PORT", "VPT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    row = r"^\| (`[a-z_.]+`(?:(?:, | / )`[a-z_.]+`)*) \| ([^|]*) \|"
    rows = re.findall(row, README.read_text(encoding="utf-8"), re.MULTILINE)
    checked = 0
    for keys_cell, defaults_cell in rows:
        keys = re.findall(r"`([a-z_]+\.[a-z_.]+)`", keys_cell)
        given = [part.strip() for part in defaults_cell.split(", ")] if defaults_cell.strip() else []
        for key, written in zip(keys, given, strict=False):
            if not (written.startswith("`") and written.endswith("`")):
                continue  # "none", "SQLite in the data dir": said in words
            expected = _default(defaults, key)
            shown = written.strip("`")
            assert (float(shown) == expected) if isinstance(expected, int | float) else shown == expected, key
            checked += 1
    assert checked >= 8


def test_the_readme_http_and_sources_block_gives_the_codes_defaults(tmp_path: Path) -> None:
    """The `[http]` / `[sources.*]` block of the README shows the defaults, bar the contact,
    venues and conferences, which are examples."""
    block = next(b for b in _readme_toml_blocks() if b.startswith("[http]"))
    shown = load_settings(write(tmp_path / "c.toml", block))
    defaults = Settings()
    examples = {"contact", "venues", "conferences"}
    for key in _toml_keys(tomllib.loads(block)):
        if examples & set(key.split(".")) or isinstance(_default(defaults, key), BaseModel):
            continue
        assert _default(shown, key) == _default(defaults, key), key


def test_the_example_config_shows_every_section() -> None:
    """The README says vpt-tracker.example.toml "shows every section": [github] and [review]
    were missing, so a maintainer copying it never saw the working copies' folder or the keys."""
    example = tomllib.loads((README.parent / "vpt-tracker.example.toml").read_text(encoding="utf-8"))
    sections = {
        name
        for name, field in Settings.model_fields.items()
        for arg in (field.annotation, *get_args(field.annotation))
        if isinstance(arg, type) and issubclass(arg, BaseModel)
    }
    assert sorted(sections - set(example)) == []


@pytest.mark.parametrize(
    ("text", "env", "key", "bad"),
    [
        ('[sources.arxiv_api]\ncategories = ["cs CV"]\n', {}, "sources.arxiv_api.categories.0", "cs CV"),
        ('[sources.arxiv_rss]\ncategories = ["cs.CV", ""]\n', {}, "sources.arxiv_rss.categories.1", ""),
        (
            '[sources.arxiv_api]\ncategories = ["cs.CV+cs.LG"]\n',
            {},
            "sources.arxiv_api.categories.0",
            "cs.CV+cs.LG",
        ),
        (
            "",
            {"VPT_SOURCES__ARXIV_RSS__CATEGORIES": '["cs.CV", "cs:LG"]'},
            "sources.arxiv_rss.categories.1 (from VPT_SOURCES__ARXIV_RSS__CATEGORIES)",
            "cs:LG",
        ),
    ],
)
def test_an_arxiv_category_must_be_one(
    tmp_path: Path, text: str, env: dict[str, str], key: str, bad: str
) -> None:
    """`categories = ["cs CV"]` loaded: the API query read `(cat:cs CV OR …)`, a query for
    something else than cs.CV, without a word."""
    config = write(tmp_path / "c.toml", text)
    result = CliRunner().invoke(main, ["--config", str(config), "config", "show"], env=env)
    error = one_line_error(result)
    assert error.startswith(f"Error: bad config: {key}: "), result.stderr
    assert f"{bad!r} is not an arXiv category such as 'cs.CV'" in error


def test_arxiv_categories_of_every_form_are_accepted(tmp_path: Path) -> None:
    text = '[sources.arxiv_api]\ncategories = ["cs.CV", "hep-th", "astro-ph", "math.AG", "eess.IV"]\n'
    config = write(
        tmp_path / "c.toml", text + '[sources.arxiv_rss]\ncategories = ["cs.CV+cs.LG", "q-bio.NC"]\n'
    )
    result = CliRunner().invoke(main, ["--config", str(config), "config", "show"])
    assert result.exit_code == 0, result.output


def test_a_preset_in_presets_dir_is_a_known_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README "A preset of your own": `presets_dir` (relative to the config file's folder) is
    looked in before the shipped presets. Only the shipped presets were known (and before
    that only their three names), so `preset = "petl"` was a config error unless the file was
    put inside the checkout or the installed package."""
    etc = tmp_path / "etc"
    (etc / "presets").mkdir(parents=True)
    (etc / "presets" / "petl.toml").write_text(
        '[[labels]]\nkey = "prompt"\nwhen = [{ section = "Prompt" }]\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    catalogue = '[[catalogues]]\nname = "petl"\npreset = "petl"\n'
    settings = load_settings(write(etc / "c.toml", 'presets_dir = "presets"\n' + catalogue))
    assert settings.presets_dir == etc / "presets"
    assert settings.catalogue("petl").preset == "petl"  # type: ignore[union-attr]
    assert settings.presets.load("petl").label_keys == ["prompt"]
    misspelt = 'presets_dir = "presets"\n' + catalogue.replace('preset = "petl"', 'preset = "petll"')
    with pytest.raises(ConfigError) as error:
        load_settings(write(etc / "c.toml", misspelt))
    assert str(error.value) == (
        "bad config: catalogues.0.preset: unknown preset 'petll'; known presets: awesome-vpt, "
        f"generalizable-vlm, petl, prompt-adaptation (looked in {etc / 'presets'} and the shipped presets)"
    )
    with pytest.raises(
        ConfigError, match=r"catalogues\.0\.preset: unknown preset 'petl'; known presets: awesome-vpt, "
    ):
        load_settings(write(etc / "c.toml", catalogue))  # no presets_dir: the shipped ones only


def test_presets_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$VPT_PRESETS_DIR sets it as the key does (relative to the current folder, as every variable)."""
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "petl.toml").write_text('[[labels]]\nkey = "prompt"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPT_PRESETS_DIR", "presets")
    config = write(tmp_path / "c.toml", '[[catalogues]]\nname = "petl"\npreset = "petl"\n')
    assert load_settings(config).presets.names() == [
        "awesome-vpt",
        "generalizable-vlm",
        "petl",
        "prompt-adaptation",
    ]
    monkeypatch.setenv("VPT_CATALOGUES", '[{"name": "x", "preset": "nope"}]')
    with pytest.raises(
        ConfigError, match=r"catalogues\.0\.preset \(from VPT_CATALOGUES\): unknown preset 'nope'"
    ):
        load_settings(config)


def test_presets_dir_is_a_folder_that_names_no_shipped_preset(tmp_path: Path) -> None:
    """A preset of one's own may not take a shipped preset's name (which file a catalogue's
    labels came from would hang on the config), and a folder that is not there (a bind mount
    that did not happen) is said at load, not as an unknown preset at the import."""
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "awesome-vpt.toml").write_text('[[labels]]\nkey = "prompt"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path / "c.toml", 'presets_dir = "presets"\n'))
    assert str(error.value) == (
        f"bad config: presets_dir: Value error, {tmp_path / 'presets'} has presets named as "
        "shipped ones: awesome-vpt; give yours another name (a shipped preset cannot be replaced)"
    )
    with pytest.raises(ConfigError, match=r"presets_dir: Value error, .*/missing is not a folder"):
        load_settings(write(tmp_path / "c.toml", 'presets_dir = "missing"\n'))
