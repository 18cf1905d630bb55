"""The deployment files: docker-compose.yml, Dockerfile and the example config agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vpt_tracker.config import load_settings
from vpt_tracker.scheduler import build_scheduler
from vpt_tracker.store import make_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"tracker", "postgres", "mailpit"}
    tracker = services["tracker"]
    assert tracker["command"] == ["serve"]
    assert tracker["build"] == "."
    assert tracker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert tracker["stop_signal"] == "SIGTERM"
    # Named volumes used by services are declared.
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared


def test_postgres_has_a_healthcheck_and_a_volume(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    check = postgres["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "pg_isready" in check["test"][1]
    env = postgres["environment"]
    assert f"-U {env['POSTGRES_USER']}" in check["test"][1] and f"-d {env['POSTGRES_DB']}" in check["test"][1]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    for key in ("interval", "timeout", "retries"):
        assert key in check


def test_tracker_environment_points_at_the_other_services(compose: dict) -> None:
    services = compose["services"]
    env = services["tracker"]["environment"]
    pg = services["postgres"]["environment"]
    url = env["VPT_DATABASE_URL"]
    match = re.fullmatch(r"postgresql\+psycopg://(\w+):(\w+)@postgres:5432/(\w+)", url)
    assert match, url
    assert match.groups() == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    assert env["VPT_SMTP__HOST"] == "mailpit"
    smtp_ports = [p.split(":")[1] for p in services["mailpit"]["ports"]]
    assert env["VPT_SMTP__PORT"] in smtp_ports
    assert env["VPT_CONFIG"] in [v.split(":")[1] for v in services["tracker"]["volumes"]]
    # No secret is written into the compose file.
    assert not any("TOKEN" in key or "PASSWORD" in key for key in env)


def test_the_example_config_with_the_compose_environment_gives_a_working_schedule(
    compose: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in compose["services"]["tracker"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("VPT_CONFIG")
    settings = load_settings(ROOT / "vpt-tracker.example.toml")
    assert settings.database_url.startswith("postgresql+psycopg://tracker:")
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == ("mailpit", 1025, "none")
    assert settings.smtp.recipients == ["maintainers@example.org"]  # from the TOML file, merged
    assert {c.name for c in settings.catalogues} == {"awesome-vpt", "generalizable-vlm"}
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    scheduler = build_scheduler(settings, engine)
    assert {job.id for job in scheduler.get_jobs()} == {"nightly", "digest"}


def test_dockerfile_runs_the_cli_and_copies_what_exists() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["vpt-tracker"]' in text and 'CMD ["serve"]' in text
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_the_example_config_as_copied_works_from_any_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`cp vpt-tracker.example.toml vpt-tracker.toml`, then `init`: its database_url was
    `sqlite:///var/...`, a path relative to the current folder (three slashes), so `init`
    failed (`the folder of the SQLite database var/vpt-tracker/vpt-tracker.db does not exist`)
    and cron, whose folder is $HOME, would have looked somewhere else again."""
    from click.testing import CliRunner

    from vpt_tracker.cli import main

    for key in ("VPT_DATABASE_URL", "VPT_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VPT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vpt-tracker.toml").write_text((ROOT / "vpt-tracker.example.toml").read_text())
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "vpt-tracker.db").is_file()


def test_the_build_context_leaves_out_the_local_environment() -> None:
    """The README's set-up makes `.venv` in the checkout (525 MB here); with no
    `.dockerignore`, `docker compose up` sent it, `.git`, `demo-output/` and any local
    database to the builder as the build context. What the Dockerfile copies stays in."""
    ignored = (ROOT / ".dockerignore").read_text().split()
    for local in (".venv", ".git", "demo-output", "*.db", ".env", "vpt-tracker.toml"):
        assert local in ignored, local
    copied = {
        source
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from" not in line
        for source in line.split()[1:-1]
    }
    assert not copied & set(ignored)
