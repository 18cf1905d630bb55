"""The weekly digest: content from the store, rendering, and delivery to a real SMTP server."""

from __future__ import annotations

import shutil
import signal
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ops.feeds import client, feed_server, rss_settings
from ops.seed import HOSTILE, IN_WEEK, NOW, queue_at, seed_week
from ops.smtp import free_port, self_signed, send_held_mid_delivery, smtp_server
from vpt_tracker.config import CatalogueConfig, ScheduleConfig, Settings, SmtpConfig
from vpt_tracker.digest import DigestNotSent, build_digest, parse_week, render, send_digest, send_due
from vpt_tracker.digest.build import TOP_PER_LIST, Week
from vpt_tracker.enqueue import SCORED_KEPT, clear_backlog
from vpt_tracker.errors import UserError
from vpt_tracker.pipeline import nightly, owe_to_catalogues, scoring_backlog
from vpt_tracker.review.queue import ReviewQueue
from vpt_tracker.store import transaction
from vpt_tracker.store.tables import (
    CandidateRow,
    CatalogueRow,
    DigestRow,
    EntryRow,
    PaperRow,
    RunRow,
    ScoringBacklogRow,
)

WEEK = Week(2026, 47)


def settings_for(port: int, catalogues: tuple[str, ...] = ("awesome-vpt",), **smtp: object) -> Settings:
    """SMTP on `port`; the catalogues configured (the seeded `awesome-vpt`, as in a deployment)."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "recipients": ["ana@example.org", "bo@example.org"],
        "timeout": 5,
    }
    values.update(smtp)
    configured = [CatalogueConfig(name=name) for name in catalogues]
    return Settings(database_url="sqlite://", smtp=SmtpConfig(**values), catalogues=configured)  # type: ignore[arg-type]


def digest_row(engine: Engine, week: str = "2026-W47") -> DigestRow | None:
    with transaction(engine) as session:
        return session.scalar(select(DigestRow).where(DigestRow.week == week))


def test_parse_week() -> None:
    assert parse_week(None, NOW) == WEEK  # the last complete week
    assert parse_week("current", NOW) == Week(2026, 48)
    assert parse_week("2026-W01", NOW).start.isoformat() == "2025-12-29T00:00:00+00:00"
    with pytest.raises(UserError, match="ISO week"):
        parse_week("2026-47", NOW)
    with pytest.raises(UserError, match=r"^--week '2026-W54': 2026 has 53 ISO weeks; its last is 2026-W53$"):
        parse_week("2026-W54", NOW)
    with pytest.raises(UserError, match=r"^--week '2025-W53': 2025 has 52 ISO weeks; its last is 2025-W52$"):
        parse_week("2025-W53", NOW)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("2026-W54", "'2026-W54': 2026 has 53 ISO weeks; its last is 2026-W53"),
        ("2026-W00", "'2026-W00': ISO weeks start at 01; the first of 2026 is 2026-W01"),
        ("0000-W01", "'0000-W01' is not an ISO week like 2026-W47"),  # there is no year 0
        ("last", "'last' is not an ISO week like 2026-W47"),
        ("2026-W1", "'2026-W1' is not an ISO week like 2026-W47"),  # no label: they sort as weeks
        ("2026-W47-3", "'2026-W47-3' is not an ISO week like 2026-W47"),
        ("26-W47", "'26-W47' is not an ISO week like 2026-W47"),
        ("2025-W53", "'2025-W53': 2025 has 52 ISO weeks; its last is 2025-W52"),  # 2025-12-29 is 2026-W01
    ],
)
def test_a_bad_week_label_is_refused_with_what_is_wrong(label: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Week.parse(label)
    assert str(caught.value) == message


def test_week_labels_read_back_as_their_weeks() -> None:
    """Through the year's end: 2026 has 53 ISO weeks, 2027-W01 starts on 2027-01-04."""
    assert Week.parse("2026-W53") == Week(2026, 53)
    assert Week.parse(" 2027-W01 ") == Week(2027, 1)
    assert Week.parse("2027-W01").start.isoformat() == "2027-01-04T00:00:00+00:00"
    assert Week.parse("2026-W47").label == "2026-W47"


def test_a_stored_week_label_that_is_none_names_the_table(engine: Engine) -> None:
    """The digest job reads the labels of the `digests` rows; one edited by hand into no week
    is an error that says where it is, not a bare ValueError from int()."""
    with transaction(engine) as session:
        session.add(DigestRow(week="2026-W99", status="failed", attempts=1, recipients=[]))
    last = "2026 has 53 ISO weeks; its last is 2026-W53"
    with pytest.raises(UserError, match=rf"^digests table: '2026-W99': {last}$"):
        send_due(settings_for(free_port()), engine, now=NOW)


def test_digest_content_groups_candidates_and_reports_the_week(engine: Engine) -> None:
    seed_week(engine)
    digest = build_digest(engine, WEEK, now=NOW)
    [cat] = digest.catalogues
    assert cat.name == "awesome-vpt"
    # Groups ordered by their best candidate; within a group the top ones first.
    assert [group.label for group in cat.groups] == ["Learnable", "Generative"]
    learnable = cat.groups[0].papers
    assert [p.title for p in learnable] == [
        "Visual Prompt Tuning at Scale",
        "Token Prompts for ViTs",
        HOSTILE,
    ]
    assert learnable[0].url == "https://arxiv.org/abs/2611.00001"
    assert learnable[0].labels == [("Learnable", 0.8), ("Token-Level", 0.8)]
    assert learnable[2].url == "https://doi.org/10.1000/xyz"
    assert cat.groups[1].papers[0].url == "https://openreview.net/forum?id=abcDEF"
    assert cat.new_count == 4  # the old pending paper was queued before this week
    assert [p.title for p in cat.accepted] == ["Accepted Pixel Prompts"]
    assert cat.accepted[0].note == "by ana"
    assert [p.title for p in cat.published] == ["Published Prompt Paper"]
    assert [(p.title, p.note) for p in cat.upgrades] == [("Upgraded Paper", "arXiv → CVPR 2026")]
    assert cat.queue_size == 5 and cat.queue_unknown == 0
    assert cat.oldest_pending_days == 20.7  # 2026-11-02 07:00 to the week's end, 2026-11-23 00:00
    health = {h.source: h for h in digest.health}
    assert health["arxiv_api"].last_healthy and health["arxiv_api"].records == 120
    assert not health["arxiv_rss"].last_healthy
    assert health["arxiv_rss"].pending_refetch == 1
    assert digest.subject == "vpt-tracker digest 2026-W47: 4 new candidates, 1 unhealthy source"

    # Another week holds none of it.
    empty = build_digest(engine, Week(2026, 40), now=NOW)
    assert empty.catalogues[0].new_count == 0 and empty.runs == 0


def test_html_is_escaped_and_text_is_plain(engine: Engine) -> None:
    seed_week(engine)
    text, html = render(build_digest(engine, WEEK, now=NOW))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert '<a href="https://arxiv.org/abs/2611.00001">Visual Prompt Tuning at Scale</a>' in html
    assert HOSTILE in text  # the text part is not HTML: shown as is
    assert "0.97  Visual Prompt Tuning at Scale" in text
    assert "arxiv_rss: UNHEALTHY" in text
    assert "Upgraded Paper: arXiv → CVPR 2026" in text
    assert "Queue at the week's end: 5 pending, oldest 20.7 days" in text


def test_a_base_to_novel_flag_shows_so(engine: Engine) -> None:
    """The model's flag, not its probability: 0.9 unflagged shows nothing, 0.3 flagged does."""
    seed_week(engine)
    with transaction(engine) as session:
        for relevance, probability, flag in ((0.97, 0.3, True), (0.71, 0.9, False)):
            row = session.scalars(select(CandidateRow).where(CandidateRow.relevance == relevance)).one()
            row.base_to_novel, row.base_to_novel_flag = probability, flag
    digest = build_digest(engine, WEEK, now=NOW)
    assert [p.base_to_novel for p in digest.catalogues[0].groups[0].papers] == [True, False, False]
    text, html = render(digest)
    assert "0.97  Visual Prompt Tuning at Scale [base-to-novel]" in text
    assert text.count("[base-to-novel]") == 1 and html.count("<em>base-to-novel</em>") == 1


def test_a_label_proposed_by_its_cue_shows_so(engine: Engine) -> None:
    """A label with too few examples for a model comes from its preset cue, without a probability."""
    seed_week(engine)
    with transaction(engine) as session:
        session.scalars(select(CandidateRow).where(CandidateRow.relevance == 0.71)).one().label_scores = {}
    digest = build_digest(engine, WEEK, now=NOW)
    assert digest.catalogues[0].groups[0].papers[1].labels == [("Learnable", None)]
    text, html = render(digest)
    assert "labels: Learnable (cue)" in text and "Learnable (cue)" in html


def test_the_digest_covers_the_configured_catalogues(engine: Engine) -> None:
    """Not the stored ones: a catalogue removed from the config is left out, and one configured
    but not imported yet is named with what to do (it has nothing else to show)."""
    seed_week(engine)  # awesome-vpt, with a week of candidates
    with transaction(engine) as session:
        session.add(CatalogueRow(name="retired", preset="awesome-vpt", source_text="", source_sha256="0"))
        papers = session.scalars(select(PaperRow.id).order_by(PaperRow.id).limit(2)).all()
        # Two papers whose scoring failed for awesome-vpt, and one for the catalogue not imported.
        session.add_all(
            ScoringBacklogRow(catalogue="awesome-vpt", paper_id=paper, created_at=IN_WEEK) for paper in papers
        )
        session.add(ScoringBacklogRow(catalogue="upcoming", paper_id=papers[0], created_at=IN_WEEK))
    with smtp_server() as (inbox, port):
        settings = settings_for(port, catalogues=("upcoming", "awesome-vpt"))
        assert [c.name for c in build_digest(engine, WEEK, now=NOW, settings=settings).catalogues] == [
            "awesome-vpt",
            "upcoming",
        ]
        send_digest(settings, engine, WEEK, now=NOW)
        [(_rcpts, message)] = inbox.messages
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content().replace("\r\n", "\n")
    assert message["Subject"] == "vpt-tracker digest 2026-W47: 4 new candidates, 1 unhealthy source"
    assert "retired" not in text and "retired" not in html.get_content()
    assert "== awesome-vpt ==" in text and "Visual Prompt Tuning at Scale" in text
    assert "2 papers wait to be scored for awesome-vpt" in text
    assert (
        "== upcoming ==\nNot imported yet: run `vpt-tracker catalogue import README.md --name upcoming`"
        " with the list's README" in text
    )
    assert "1 paper waits to be scored for upcoming" in text
    assert "<h2>upcoming</h2>" in html.get_content() and "Not imported yet" in html.get_content()


def test_the_import_line_of_a_catalogue_not_imported_yet_imports_it(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest told to run `vpt-tracker catalogue import NAME`, which fails: the command
    takes the README file and wants `--name` (`Error: Missing option '--name'`, exit 2). The
    line it gives now, run in a clone of the list, imports it with its preset and path."""
    from click.testing import CliRunner

    from vpt_tracker.cli import main

    readme = Path(__file__).resolve().parents[1] / "fixtures" / "lists"
    readme /= "StellarOdys2ey__Generalizable-Prompt-Learning-for-VLMs__README.md"
    (tmp_path / "docs").mkdir()
    shutil.copy(readme, tmp_path / "docs" / "LIST.md")
    configured = CatalogueConfig(name="gen-vlm", preset="generalizable-vlm", readme=Path("docs/LIST.md"))
    settings = Settings(database_url=db_url, catalogues=[configured])
    text, html = render(build_digest(engine, WEEK, now=NOW, settings=settings))
    line = (
        "vpt-tracker catalogue import docs/LIST.md --name gen-vlm --preset generalizable-vlm"
        " --readme-path docs/LIST.md"
    )
    assert f"Not imported yet: run `{line}` with the list's README" in text
    assert f"<code>{line}</code>" in html
    monkeypatch.chdir(tmp_path)  # the clone
    result = CliRunner().invoke(main, ["--database", db_url, *line.split()[1:]])
    assert result.exit_code == 0, result.output
    [part] = build_digest(engine, WEEK, now=NOW, settings=settings).catalogues
    assert part.imported
    with transaction(engine) as session:
        row = session.scalar(select(CatalogueRow).where(CatalogueRow.name == "gen-vlm"))
        assert row is not None and (row.preset, row.readme_path) == ("generalizable-vlm", "docs/LIST.md")


def test_send_delivers_multipart_and_refuses_the_same_week_twice(engine: Engine) -> None:
    seed_week(engine)
    with smtp_server() as (inbox, port):
        settings = settings_for(port)
        result = send_digest(settings, engine, WEEK, now=NOW)
        assert result.recipients == ["ana@example.org", "bo@example.org"]
        [(rcpts, message)] = inbox.messages
        assert rcpts == ["ana@example.org", "bo@example.org"]
        assert message["Subject"] == "vpt-tracker digest 2026-W47: 4 new candidates, 1 unhealthy source"
        assert message.get_content_type() == "multipart/alternative"
        plain = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert plain is not None and html is not None
        assert "Visual Prompt Tuning at Scale" in plain.get_content()
        assert "&lt;script&gt;" in html.get_content()
        row = digest_row(engine)
        assert row is not None and row.status == "sent" and row.attempts == 1

        with pytest.raises(UserError, match=r"already sent .* use --force"):
            send_digest(settings, engine, WEEK, now=NOW)
        assert len(inbox.messages) == 1
        send_digest(settings, engine, WEEK, now=NOW, force=True)
        assert len(inbox.messages) == 2


def test_sends_leave_no_lock_file_per_week(engine: Engine) -> None:
    """On SQLite a send of a week held `<database>.digest-2026-W47.lock`, and the file stayed:
    one more beside the database for every week sent, failed or refused. It goes with the
    lock now."""
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL the week's lock is an advisory lock: no file")
    seed_week(engine)
    with smtp_server() as (_inbox, port):
        send_digest(settings_for(port), engine, WEEK, now=NOW)
        with pytest.raises(UserError, match="already sent"):
            send_digest(settings_for(port), engine, WEEK, now=NOW)
    with pytest.raises(DigestNotSent):
        send_digest(settings_for(free_port()), engine, Week(2026, 46), now=NOW)
    assert engine.url.database is not None
    assert sorted(Path(engine.url.database).parent.glob("*.lock")) == []


def test_unreachable_server_marks_for_retry_and_the_scheduler_job_retries(engine: Engine) -> None:
    seed_week(engine)
    dead_port = free_port()  # nothing listens there
    with pytest.raises(
        DigestNotSent, match=r"cannot reach the SMTP server 127\.0\.0\.1:\d+.*marked for retry"
    ):
        send_digest(settings_for(dead_port), engine, WEEK, now=NOW)
    row = digest_row(engine)
    assert row is not None and row.status == "failed" and row.attempts == 1
    assert "cannot reach" in (row.last_error or "")

    # A week later the job sends the new week and retries the failed one.
    with smtp_server() as (inbox, port):
        results = send_due(settings_for(port), engine, now=NOW + timedelta(days=7))
    assert sorted(r.week for r in results) == ["2026-W47", "2026-W48"]
    assert len(inbox.messages) == 2
    row = digest_row(engine)
    assert row is not None and row.status == "sent" and row.attempts == 2 and row.last_error is None


def test_names_and_international_domains_reach_a_server_without_smtputf8(engine: Engine) -> None:
    """A display name with umlauts or a domain like bücher.example needs no SMTPUTF8: the names
    are encoded words in the headers, the domains go as their IDNA A-labels (xn--...)."""
    seed_week(engine)
    recipients = ["Ana Müller <ana@example.org>", "bo@bücher.example", '"Lee, Chi" <chi@example.org>']
    sender = "Büro Digest <digest@straße.example>"
    with smtp_server(smtputf8=False) as (inbox, port):
        result = send_digest(settings_for(port, recipients=recipients, sender=sender), engine, WEEK, now=NOW)
    assert result.recipients == recipients
    [(envelope, message)] = inbox.messages
    assert envelope == ["ana@example.org", "bo@xn--bcher-kva.example", "chi@example.org"]
    to = message["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in to] == [
        ("Ana Müller", "ana@example.org"),
        ("", "bo@xn--bcher-kva.example"),
        ("Lee, Chi", "chi@example.org"),
    ]
    [sent_from] = message["From"].addresses
    assert (sent_from.display_name, sent_from.addr_spec) == ("Büro Digest", "digest@xn--strae-oqa.example")
    row = digest_row(engine)
    assert row is not None and row.status == "sent"


def test_a_non_ascii_mailbox_name_needs_smtputf8(engine: Engine) -> None:
    seed_week(engine)
    with smtp_server() as (inbox, port):  # offers SMTPUTF8: delivered as written
        send_digest(settings_for(port, recipients=["jörg@bücher.example"]), engine, WEEK, now=NOW)
    assert [envelope for envelope, _ in inbox.messages] == [["jörg@xn--bcher-kva.example"]]
    with smtp_server(smtputf8=False) as (inbox, port), pytest.raises(DigestNotSent, match="SMTPUTF8"):
        send_digest(settings_for(port, recipients=["jörg@example.org"]), engine, WEEK, now=NOW, force=True)
    assert inbox.messages == []


@pytest.mark.parametrize("recipient", ["ana at example.org", "ana@bad..example", "ana@-x-.example"])
def test_a_recipient_that_is_no_address_is_a_config_error(engine: Engine, recipient: str) -> None:
    seed_week(engine)
    with smtp_server() as (inbox, port), pytest.raises(UserError, match=r"smtp\.recipients: .* is not"):
        send_digest(settings_for(port, recipients=["ok@example.org", recipient]), engine, WEEK, now=NOW)
    assert inbox.messages == [] and digest_row(engine) is None


def test_a_week_whose_digest_job_was_missed_goes_with_the_next_one(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The service was down on a Monday morning (a deploy, the host asleep past the grace
    time): that week's digest had no row, so the next job sent only its own week and the
    missed one was never sent. Now the weeks since the last digest go too (at most 4)."""
    seed_week(engine)
    with smtp_server() as (inbox, port):
        settings = settings_for(port)
        assert [r.week for r in send_due(settings, engine, now=NOW - timedelta(days=7))] == ["2026-W46"]
        # No job on Monday 2026-11-23 (2026-W47 due); the next one, a week later:
        results = send_due(settings, engine, now=NOW + timedelta(days=7))
        assert [r.week for r in results] == ["2026-W47", "2026-W48"]
        # Down for five weeks, across the year's end (2026 has 53 ISO weeks): the last four go.
        results = send_due(settings, engine, now=NOW + timedelta(days=42))
    assert [r.week for r in results] == ["2026-W50", "2026-W51", "2026-W52", "2026-W53"]
    weeks = [str(message["X-VPT-Tracker-Week"]) for _, message in inbox.messages]
    assert weeks == ["2026-W46", "2026-W47", "2026-W48", "2026-W50", "2026-W51", "2026-W52", "2026-W53"]
    assert "2026-W49" in caplog.text and "not sent" in caplog.text
    with transaction(engine) as session:
        assert session.scalar(select(DigestRow).where(DigestRow.week == "2026-W49")) is None


def test_a_digest_sent_before_its_week_ended_does_not_stand_for_the_week(engine: Engine) -> None:
    """`digest send --week current` on a Thursday (a maintainer trying the mail setup) marked
    the week sent, and the job on Monday skipped it: the whole week's digest never went out."""
    seed_week(engine)
    thursday = NOW + timedelta(days=3, hours=5)
    with smtp_server() as (inbox, port):
        settings = settings_for(port)
        preview = send_digest(settings, engine, parse_week("current", thursday), now=thursday)
        assert preview.week == "2026-W48"
        # The week is not over: sending it again is no resend, so no --force is needed.
        send_digest(settings, engine, Week(2026, 48), now=thursday + timedelta(hours=1))
        monday = NOW + timedelta(days=7)
        results = send_due(settings, engine, now=monday)
        assert [r.week for r in results] == ["2026-W48"]
        with pytest.raises(UserError, match="already sent"):
            send_digest(settings, engine, Week(2026, 48), now=monday + timedelta(hours=1))
        assert send_due(settings, engine, now=monday + timedelta(hours=2)) == []
    assert [str(message["X-VPT-Tracker-Week"]) for _, message in inbox.messages] == ["2026-W48"] * 3
    row = digest_row(engine, "2026-W48")
    assert row is not None and row.status == "sent" and row.sent_at == monday


def test_refused_recipients_leave_the_digest_unsent(engine: Engine) -> None:
    seed_week(engine)
    with smtp_server() as (inbox, port):
        inbox.refuse = True
        with pytest.raises(DigestNotSent, match="refused every recipient"):
            send_digest(settings_for(port), engine, WEEK, now=NOW)
    row = digest_row(engine)
    assert row is not None and row.status == "failed"


def test_no_recipients_is_a_config_error(engine: Engine) -> None:
    with pytest.raises(UserError, match=r"smtp\.recipients"):
        send_digest(settings_for(25, recipients=[]), engine, WEEK, now=NOW)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_plain_auth_and_wrong_password(engine: Engine) -> None:
    seed_week(engine)
    with smtp_server(credentials=("digest", "s3cret-pw")) as (inbox, port):
        with pytest.raises(DigestNotSent, match="rejected the login for 'digest'"):
            send_digest(settings_for(port, username="digest", password="wrong"), engine, WEEK, now=NOW)
        send_digest(settings_for(port, username="digest", password="s3cret-pw"), engine, WEEK, now=NOW)
    assert len(inbox.messages) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_starttls_with_auth(engine: Engine, tmp_path: Path) -> None:
    seed_week(engine)
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with smtp_server(tls_context=server_tls, credentials=("digest", "s3cret-pw")) as (inbox, port):
        settings = settings_for(port, security="starttls", username="digest", password="s3cret-pw")
        send_digest(settings, engine, WEEK, now=NOW, ssl_context=client_tls)
        # Without trusting the certificate, TLS fails and the digest stays unsent; the line
        # says so (it was "cannot reach the SMTP server", which had answered).
        untrusted = (
            rf"not sent: TLS with the SMTP server 127\.0\.0\.1:{port} failed: its certificate is not"
            r" trusted \(self-signed certificate\); it is marked"
        )
        with pytest.raises(DigestNotSent, match=untrusted):
            send_digest(settings, engine, Week(2026, 46), now=NOW)
    assert len(inbox.messages) == 1
    assert inbox.messages[0][1]["X-VPT-Tracker-Week"] == "2026-W47"


def test_a_send_interrupted_mid_delivery_is_marked_failed(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """Ctrl-C while the server keeps the client waiting: the week is failed (retried), not left built."""
    seed_week(engine)
    with send_held_mid_delivery(db_url, tmp_path, "2026-W47") as (child, port):
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
    assert child.returncode != 0
    row = digest_row(engine)
    assert row is not None and row.status == "failed" and row.attempts == 1
    assert row.last_error == f"interrupted (KeyboardInterrupt) while sending through 127.0.0.1:{port}"


def test_a_candidate_is_filed_under_its_most_probable_label(engine: Engine) -> None:
    """Proposed labels come in the preset's order; the group is the likeliest one, not the first."""
    seed_week(engine)
    with transaction(engine) as session:
        row = session.scalars(select(CandidateRow).where(CandidateRow.relevance == 0.97)).one()
        row.proposed_labels = ["learnable", "token", "robustness"]
        row.label_scores = {"learnable": 0.24, "token": 0.96}  # robustness: proposed by its cue
    digest = build_digest(engine, WEEK, now=NOW)
    groups = {group.label: [p.title for p in group.papers] for group in digest.catalogues[0].groups}
    assert groups["Token-Level"] == ["Visual Prompt Tuning at Scale"]
    assert "Visual Prompt Tuning at Scale" not in groups["Learnable"]


TOKYO, SYDNEY, BERLIN = ZoneInfo("Asia/Tokyo"), ZoneInfo("Australia/Sydney"), ZoneInfo("Europe/Berlin")
#: Monday 2026-11-23 08:00 in Tokyo, the default digest line there: still Sunday in UTC.
TOKYO_MONDAY = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)


def in_zone(settings: Settings, zone: str) -> Settings:
    return settings.model_copy(update={"schedule": ScheduleConfig(timezone=zone)})


def test_last_week_is_the_week_that_ended_in_the_schedule_time_zone() -> None:
    """In UTC weeks, Monday 08:00 in Tokyo or Sydney was Sunday: "last week" was the week before."""
    assert parse_week(None, TOKYO_MONDAY) == Week(2026, 46)  # in UTC, as before
    last = parse_week(None, TOKYO_MONDAY, TOKYO)
    assert last == Week(2026, 47, TOKYO)
    assert (last.monday.isoformat(), last.next_monday.isoformat()) == ("2026-11-16", "2026-11-23")
    assert (last.start.isoformat(), last.end.isoformat()) == (
        "2026-11-15T15:00:00+00:00",
        "2026-11-22T15:00:00+00:00",
    )
    sydney_monday = datetime(2026, 11, 23, 8, tzinfo=SYDNEY)  # AEDT, UTC+11: Sunday 21:00 UTC
    assert parse_week("last", sydney_monday, SYDNEY) == Week(2026, 47, SYDNEY)
    assert parse_week("current", sydney_monday, SYDNEY) == Week(2026, 48, SYDNEY)
    # Tokyo's week 48 has begun (Monday 00:00 JST) while UTC's has not.
    assert parse_week("2026-W48", TOKYO_MONDAY, TOKYO).start < TOKYO_MONDAY
    with pytest.raises(UserError, match="in the future"):
        parse_week("2026-W48", TOKYO_MONDAY)


@pytest.mark.parametrize(
    ("week", "hours", "start", "end"),
    [
        # Clocks go back on Sunday 2026-10-25: a week of 169 hours, CEST to CET.
        (43, 169, "2026-10-18T22:00:00+00:00", "2026-10-25T23:00:00+00:00"),
        # Clocks go forward on Sunday 2026-03-29: 167 hours, CET to CEST.
        (13, 167, "2026-03-22T23:00:00+00:00", "2026-03-29T22:00:00+00:00"),
        (47, 168, "2026-11-15T23:00:00+00:00", "2026-11-22T23:00:00+00:00"),
    ],
)
def test_a_week_with_a_clock_change_ends_at_monday_midnight(
    engine: Engine, week: int, hours: int, start: str, end: str
) -> None:
    """The end is the next Monday's midnight in the zone, not the start plus 7 days (an hour
    early or late in a DST week): a candidate queued late on Sunday is in its week, one
    queued at Monday 00:00 in the next."""
    berlin = Week(2026, week, BERLIN)
    assert berlin.end - berlin.start == timedelta(hours=hours)
    assert (berlin.start.isoformat(), berlin.end.isoformat()) == (start, end)
    first, after = datetime.fromisoformat(start), datetime.fromisoformat(end)
    second = timedelta(seconds=1)
    queue_at(engine, first - second, first, after - timedelta(minutes=30), after - second, after)
    titles = {
        week.label: sorted(
            p.title for g in build_digest(engine, week, now=after).catalogues[0].groups for p in g.papers
        )
        for week in (berlin.preceding(), berlin, berlin.following())
    }
    assert titles == {
        berlin.preceding().label: [f"Queued {first - second:%Y-%m-%d %H:%M:%S} UTC"],
        berlin.label: [
            f"Queued {moment:%Y-%m-%d %H:%M:%S} UTC"
            for moment in (first, after - timedelta(minutes=30), after - second)
        ],
        berlin.following().label: [f"Queued {after:%Y-%m-%d %H:%M:%S} UTC"],
    }


def test_a_monday_morning_digest_in_tokyo_sends_the_week_that_just_ended(engine: Engine) -> None:
    """The serve job at `0 8 * * mon` in Asia/Tokyo sent the week before last (UTC's last
    week), a week late; now Tokyo's: from Monday 00:00 JST, with what was queued early on
    that Monday (Sunday in UTC) and in the last hours of Sunday JST."""
    seed_week(engine)  # 4 candidates on Wednesday 2026-11-18
    early_monday = datetime(2026, 11, 16, 3, tzinfo=TOKYO)  # Sunday 18:00 UTC: UTC's week 46
    queue_at(engine, early_monday, datetime(2026, 11, 22, 23, 30, tzinfo=TOKYO))
    with smtp_server() as (inbox, port):
        settings = in_zone(settings_for(port), "Asia/Tokyo")
        assert [r.week for r in send_due(settings, engine, now=TOKYO_MONDAY)] == ["2026-W47"]
        # An hour later the job (a misfire, a restart) finds the week sent.
        assert send_due(settings, engine, now=TOKYO_MONDAY + timedelta(hours=1)) == []
    [(_rcpts, message)] = inbox.messages
    assert message["Subject"] == "vpt-tracker digest 2026-W47: 6 new candidates, 1 unhealthy source"
    plain = message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "(2026-11-16 to 2026-11-23, exclusive, Monday 00:00 Asia/Tokyo)" in text
    assert "Queued 2026-11-15 18:00:00 UTC" in text and "Queued 2026-11-22 14:30:00 UTC" in text
    row = digest_row(engine)
    assert row is not None and row.status == "sent" and row.sent_at == TOKYO_MONDAY


def test_a_week_counts_as_sent_once_it_ended_in_the_schedule_time_zone(engine: Engine) -> None:
    """Sunday 20:00 UTC is Monday 05:00 in Tokyo: Tokyo's week 47 is over, and a digest sent
    then is the whole week's (in UTC weeks it was sent before the week ended)."""
    seed_week(engine)
    sunday_evening_utc = datetime(2026, 11, 22, 20, tzinfo=UTC)
    week = Week(2026, 47, TOKYO)
    with smtp_server() as (inbox, port):
        settings = in_zone(settings_for(port), "Asia/Tokyo")
        send_digest(settings, engine, week, now=sunday_evening_utc)
        with pytest.raises(UserError, match="already sent"):
            send_digest(settings, engine, week, now=sunday_evening_utc + timedelta(hours=1))
        assert send_due(settings, engine, now=TOKYO_MONDAY) == []
        # A week not over in Tokyo yet (`--week current`) is still no week's digest.
        thursday = datetime(2026, 11, 26, 12, tzinfo=TOKYO)
        send_digest(settings, engine, parse_week("current", thursday, TOKYO), now=thursday)
        assert [r.week for r in send_due(settings, engine, now=TOKYO_MONDAY + timedelta(days=7))] == [
            "2026-W48"
        ]
    assert [str(m["X-VPT-Tracker-Week"]) for _, m in inbox.messages] == ["2026-W47", "2026-W48", "2026-W48"]


def test_digests_sent_in_utc_weeks_stay_sent_when_the_weeks_follow_the_time_zone(engine: Engine) -> None:
    """The upgrade, in Tokyo: the older version's job on Monday 2026-11-30 08:00 JST sent
    week 47 (UTC's last week, a week late). Its row stays sent; the first job of this version
    sends the two weeks since (48, which the older version would have sent a week late, and
    49, which just ended), each once."""
    seed_week(engine)
    with transaction(engine) as session:
        old_job = datetime(2026, 11, 29, 23, tzinfo=UTC)  # Monday 08:00 JST
        session.add(DigestRow(week="2026-W47", status="sent", attempts=1, recipients=[], sent_at=old_job))
    with smtp_server() as (inbox, port):
        settings = in_zone(settings_for(port), "Asia/Tokyo")
        results = send_due(settings, engine, now=datetime(2026, 12, 6, 23, tzinfo=UTC))
    assert [r.week for r in results] == ["2026-W48", "2026-W49"]
    assert len(inbox.messages) == 2


def test_a_paper_accepted_in_the_week_stays_accepted_once_published(engine: Engine) -> None:
    """Accepting is the reviewer's decision of that week whatever came after: a paper accepted
    on Monday and published on Thursday, or published the week after (a digest sent late,
    a retry), is still one of the week's accepted papers."""
    seed_week(engine)
    with transaction(engine) as session:
        accepted = session.scalars(select(CandidateRow).where(CandidateRow.status == "accepted")).one()
        accepted.status, accepted.published_at = "published", NOW + timedelta(days=2)
    digest = build_digest(engine, WEEK, now=NOW + timedelta(days=3))
    [cat] = digest.catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [("Accepted Pixel Prompts", "by ana")]
    assert [p.title for p in cat.published] == ["Published Prompt Paper"]
    # Published in the week of its acceptance: under both, as both happened that week.
    with transaction(engine) as session:
        session.get(CandidateRow, accepted.id).published_at = NOW - timedelta(days=1)  # type: ignore[union-attr]
    [cat] = build_digest(engine, WEEK, now=NOW).catalogues
    assert [p.title for p in cat.accepted] == ["Accepted Pixel Prompts"]
    assert [p.title for p in cat.published] == ["Accepted Pixel Prompts", "Published Prompt Paper"]


def add_listed_upgrade(
    session: Session,
    cat: CatalogueRow,
    position: int,
    title: str,
    title_key: str,
    *,
    year: int | None = None,
    **entry: str,
) -> None:
    """A paper of the list whose preprint went to CVPR in the week, and its entry."""
    row = PaperRow(
        title=title,
        title_key=title_key,
        venue="CVPR",
        year=year,
        previous_venue="arXiv",
        venue_upgraded_at=IN_WEEK,
    )
    session.add(row)
    session.flush()
    session.add(
        EntryRow(
            catalogue_id=cat.id, paper_id=row.id, position=position, title=title, title_key=title_key, **entry
        )
    )


def test_long_lists_of_decisions_and_upgrades_are_bounded(engine: Engine) -> None:
    """Hundreds of papers accepted by a script (`review accept` in a loop), their publishing,
    or a conference's proceedings upgrading hundreds of a catalogue's preprints at once:
    each list shows its first
    `TOP_PER_LIST` and counts the rest, as the label groups do, so the email stays readable
    and small."""
    seed_week(engine)
    many = TOP_PER_LIST + 7
    with transaction(engine) as session:
        cat = session.scalars(select(CatalogueRow)).one()
        for n in range(many):
            for kind, fields in (
                ("accepted", {"status": "accepted", "decided_at": IN_WEEK, "reviewer": "bo"}),
                (
                    "published",
                    {"status": "published", "decided_at": NOW - timedelta(days=30), "published_at": IN_WEEK},
                ),
            ):
                row = PaperRow(title=f"Bulk {kind} {n:04d}", title_key=f"bulk {kind} {n:04d}")
                session.add(row)
                session.flush()
                session.add(
                    CandidateRow(
                        paper_id=row.id,
                        catalogue_id=cat.id,
                        relevance=0.5,
                        created_at=NOW - timedelta(days=40),
                        **fields,
                    )
                )
            add_listed_upgrade(session, cat, n + 1, f"Bulk upgraded {n:04d}", f"bulk upgraded {n:04d}")
    [cat_digest] = build_digest(engine, WEEK, now=NOW).catalogues
    # The seeded accepted, published and upgraded papers sort before "Bulk" and after it.
    assert len(cat_digest.accepted) == TOP_PER_LIST and cat_digest.accepted_more == many + 1 - TOP_PER_LIST
    assert cat_digest.accepted[0].title == "Accepted Pixel Prompts"
    assert cat_digest.accepted[1].title == "Bulk accepted 0000"
    assert len(cat_digest.published) == TOP_PER_LIST and cat_digest.published_more == many + 1 - TOP_PER_LIST
    assert len(cat_digest.upgrades) == TOP_PER_LIST and cat_digest.upgrades_more == many + 1 - TOP_PER_LIST
    text, html = render(build_digest(engine, WEEK, now=NOW))
    assert text.count("Bulk accepted") == TOP_PER_LIST - 1
    assert text.count(f"... and {many + 1 - TOP_PER_LIST} more") == 3
    assert html.count(f"and {many + 1 - TOP_PER_LIST} more") == 3
    assert f"Accepted this week ({many + 1}):" in text and f"Accepted this week ({many + 1})</h3>" in html


def test_a_week_without_runs_says_so_in_the_subject(engine: Engine) -> None:
    """The digest is where the maintainers notice that the nightly runs stopped (the service
    down, a broken cron line): "0 new candidates" alone reads as a quiet week."""
    seed_week(engine)
    quiet = build_digest(engine, Week(2026, 40), now=NOW)
    assert quiet.subject == "vpt-tracker digest 2026-W40: 0 new candidates, no runs"
    text, html = render(quiet)
    assert "Runs this week: none (no run was recorded: is the scheduler or the cron job running?)" in text
    assert "Runs this week: none (no run was recorded: is the scheduler or the cron job running?)" in html
    # A week with runs says nothing of the kind, and one run is one run.
    busy = build_digest(engine, WEEK, now=NOW)
    assert busy.subject == "vpt-tracker digest 2026-W47: 4 new candidates, 1 unhealthy source"
    text, html = render(busy)
    assert "Runs this week: 1 (1 failed or partial)" in text and "no run was recorded" not in text
    assert "arxiv_api: healthy, 120 records in 1 run\n" in text


def test_a_doi_with_url_characters_links_to_itself(engine: Engine) -> None:
    """Older DOIs (Wiley's SICI ones) hold `<`, `>`, `#` or `?`: as written in a link, `#`
    cut the DOI off as a fragment, `?` as a query, and in the text part `>` ended the link
    that `<...>` encloses. They are percent-encoded, which doi.org reads back."""
    seed_week(engine)
    sici = "10.1002/(sici)1097-4571(199806)49:8<693::aid-asi4>3.0.co;2-o"
    with transaction(engine) as session:
        row = session.scalars(select(PaperRow).where(PaperRow.title == "Accepted Pixel Prompts")).one()
        row.arxiv_id, row.doi = None, sici
        session.scalars(select(PaperRow).where(PaperRow.title == HOSTILE)).one().doi = "10.1000/a#b?c"
    digest = build_digest(engine, WEEK, now=NOW)
    encoded = (
        "https://doi.org/10.1002/%28sici%291097-4571%28199806%2949%3A8%3C693%3A%3Aaid-asi4%3E3.0.co%3B2-o"
    )
    assert digest.catalogues[0].accepted[0].url == encoded
    assert digest.catalogues[0].groups[0].papers[2].url == "https://doi.org/10.1000/a%23b%3Fc"
    text, html = render(digest)
    assert f"Accepted Pixel Prompts <{encoded}> (by ana)" in text
    assert f'<a href="{encoded}">Accepted Pixel Prompts</a>' in html


def test_a_source_without_a_run_in_the_week_is_not_called_healthy(engine: Engine) -> None:
    """A source listed only for its windows queued for refetch (no run of the week fetched
    from it: the runs stopped, or it left the config) has no state to report; it was shown
    'healthy, 0 records in 0 runs', right after failing."""
    seed_week(engine)  # arxiv_rss failed in 2026-W47 and has a window queued
    quiet = build_digest(engine, Week(2026, 48), now=NOW + timedelta(days=7))
    [rss] = quiet.health
    assert (rss.source, rss.runs, rss.pending_refetch) == ("arxiv_rss", 0, 1)
    text, html = render(quiet)
    assert "  - arxiv_rss: no run this week, 1 window queued for refetch\n" in text
    assert "healthy" not in text.split("== Source health ==")[1]
    assert '<tr><td>arxiv_rss</td><td class="muted">no run this week</td>' in html


def test_one_record_in_one_run_is_one_record(engine: Engine) -> None:
    """A source's health line said "1 records in 1 run"."""
    seed_week(engine)  # arxiv_rss has a window queued
    started = Week(2026, 48).start + timedelta(days=1)
    with transaction(engine) as session:
        session.add(
            RunRow(
                kind="nightly",
                outcome="ok",
                started_at=started,
                counts={"records": 1, "sources": {"arxiv_rss": {"records": 1}}},
                errors={},
                health={"arxiv_rss": {"healthy": True}},
            )
        )
    text, _ = render(build_digest(engine, Week(2026, 48), now=NOW + timedelta(days=7)))
    assert "  - arxiv_rss: healthy, 1 record in 1 run, 1 window queued for refetch\n" in text


def test_a_relabel_is_no_accept_of_its_week(engine: Engine) -> None:
    """Relabelling an accepted paper stamps the candidate's decision time and reviewer; the
    week's accepted papers are those whose accept (not undone) fell in the week, by whoever
    accepted them: a paper accepted weeks ago and relabelled by bo was 'accepted this week
    (by bo)', and gone from the digest of the week it was accepted in."""
    seed_week(engine)
    with transaction(engine) as session:
        row = session.scalars(select(CandidateRow).where(CandidateRow.relevance == 0.71)).one()
        earlier = Week(2026, 45)
        row.created_at, second = earlier.start, row.id  # queued before it is accepted
    ReviewQueue(engine, "ana", clock=lambda: earlier.start + timedelta(days=2)).accept(second)
    ReviewQueue(engine, "bo", clock=lambda: IN_WEEK).relabel(second, ["learnable", "pixel"])
    [cat] = build_digest(engine, WEEK, now=NOW).catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [("Accepted Pixel Prompts", "by ana")]
    [cat] = build_digest(engine, earlier, now=NOW).catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [("Token Prompts for ViTs", "by ana")]
    # Rejected since, it was accepted in its week all the same; so too once the reject is undone.
    queue = ReviewQueue(engine, "ana", clock=lambda: IN_WEEK)
    queue.reject(second, "not prompts")
    [cat] = build_digest(engine, earlier, now=NOW).catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [("Token Prompts for ViTs", "by ana")]
    queue.undo()
    [cat] = build_digest(engine, earlier, now=NOW).catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [("Token Prompts for ViTs", "by ana")]
    [cat] = build_digest(engine, WEEK, now=NOW).catalogues
    assert [p.title for p in cat.accepted] == ["Accepted Pixel Prompts"]


def test_the_decisions_of_a_past_week_are_those_it_ended_with(engine: Engine) -> None:
    """A digest built after its week listed the accepted papers and the venue upgrades by
    the candidates' status at the build: a paper accepted in the week and undone or
    rejected the week after was missing from it, and one accepted only the week after, its
    preprint upgraded in the week, was listed as upgraded. They are now the week's as it
    ended, rebuilt from the review log."""
    ids = seed_week(engine)
    with transaction(engine) as session:
        candidates = {row.paper_id: row.id for row in session.scalars(select(CandidateRow))}
        for key in ("top", "gen"):  # their preprints went to CVPR in the week
            upgraded = session.get(PaperRow, ids[key])
            assert upgraded is not None
            upgraded.venue, upgraded.previous_venue, upgraded.venue_upgraded_at = "CVPR", "arXiv", IN_WEEK
    top, second, gen = (candidates[ids[key]] for key in ("top", "second", "gen"))
    ana = ReviewQueue(engine, "ana", clock=lambda: IN_WEEK)
    ana.accept(second, ["learnable", "pixel"])
    ana.accept(top)
    later = NOW + timedelta(hours=1)  # 2026-W48
    ana.clock = lambda: later
    ana.undo()  # the accept of top
    bo = ReviewQueue(engine, "bo", clock=lambda: later)
    bo.reject(second, "not prompts")
    bo.accept(gen)
    bo.accept(top)  # accepted again, by bo: the accept of its week is still ana's
    built = NOW + timedelta(days=2)

    [cat] = build_digest(engine, WEEK, now=built).catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [
        ("Accepted Pixel Prompts", "by ana"),
        ("Token Prompts for ViTs", "by ana"),
        ("Visual Prompt Tuning at Scale", "by ana"),
    ]
    # Its labels as accepted, not the proposed ones the reject left it with.
    assert [label for label, _ in cat.accepted[1].labels] == [label for label, _ in cat.accepted[0].labels]
    assert len(cat.accepted[1].labels) == 2
    assert [p.title for p in cat.upgrades] == ["Upgraded Paper", "Visual Prompt Tuning at Scale"]
    # The week not over: as it is now.
    [cat] = build_digest(engine, Week(2026, 48), now=built).catalogues
    assert [(p.title, p.note) for p in cat.accepted] == [
        ("Generated Visual Prompts", "by bo"),
        ("Visual Prompt Tuning at Scale", "by bo"),
    ]
    # Undone in its own week, an accept was not taken.
    ana.clock = lambda: IN_WEEK + timedelta(hours=1)
    ana.accept(candidates[ids["hostile"]])
    ana.clock = lambda: IN_WEEK + timedelta(hours=2)
    ana.undo()
    [cat] = build_digest(engine, WEEK, now=built).catalogues
    assert len(cat.accepted) == 3 and HOSTILE not in [p.title for p in cat.accepted]


def test_a_bidi_control_in_a_title_stays_inside_its_title_in_html(engine: Engine) -> None:
    """A title with a right-to-left override (U+202E, no closing U+202C) reversed the rest of
    its line in the HTML part: the venue, the flags, the reviewer. Each title is isolated in
    a `<bdi>`, which ends whatever direction it sets."""
    seed_week(engine)
    flipped = "Prompts \u202edesrever"
    with transaction(engine) as session:
        for title in ("Token Prompts for ViTs", "Accepted Pixel Prompts", "Upgraded Paper"):
            session.scalars(
                select(PaperRow).where(PaperRow.title == title)
            ).one().title = f"{flipped} {title}"
    _text, html = render(build_digest(engine, WEEK, now=NOW))
    assert html.count("\u202e") == 3
    isolated = [part.split("</bdi>")[0] for part in html.split("<bdi>")[1:]]
    # In every list, each in its own: the new candidates, the accepted, the upgraded papers.
    assert len([part for part in isolated if "\u202e" in part]) == 3
    assert '<bdi><a href="https://arxiv.org/abs/2611.00001">Visual Prompt Tuning at Scale</a></bdi>' in html
    upgraded = f'<bdi><a href="https://arxiv.org/abs/2501.00005">{flipped} Upgraded Paper</a></bdi>'
    assert upgraded in html


def test_an_upgrade_the_list_already_shows_is_no_news(engine: Engine) -> None:
    """Importing a list whose entries give venues (`CVPR 2026`) upgrades the preprints stored
    before from them, as a CVF record would: the digest listed every such paper of the list
    as a venue upgrade, which the list itself already showed. An entry we rewrote (`updated`)
    or one still a preprint upstream is news, and stays."""
    seed_week(engine)
    with transaction(engine) as session:
        cat = session.scalars(select(CatalogueRow)).one()
        for n, (state, venue) in enumerate(
            (("imported", "CVPR 2026"), ("imported", "arXiv 2025"), ("updated", "CVPR 2026"))
        ):
            add_listed_upgrade(
                session,
                cat,
                n + 1,
                f"Listed {n} {state} {venue}",
                f"listed {n}",
                year=2026,
                venue=venue,
                state=state,
            )
    [cat_digest] = build_digest(engine, WEEK, now=NOW).catalogues
    assert [p.title for p in cat_digest.upgrades] == [
        "Listed 1 imported arXiv 2025",
        "Listed 2 updated CVPR 2026",
        "Upgraded Paper",
    ]


def test_a_send_killed_mid_delivery_is_sent_by_the_next_job(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """SIGKILL (the OOM killer, a host going down) cannot be caught: the killed send left its
    week `built`, which the next job neither retried (only `failed` weeks) nor counted as
    missed (it has a row), so that week's digest was never sent. The next job now sends it:
    a kill after the server took the message sends the week twice, never not at all."""
    seed_week(engine)
    with send_held_mid_delivery(db_url, tmp_path, "2026-W47") as (child, _):
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    row = digest_row(engine)
    assert row is not None and row.status == "built" and row.attempts == 0

    # A week later the job sends the new week and the killed one.
    with smtp_server() as (inbox, port):
        results = send_due(settings_for(port), engine, now=NOW + timedelta(days=7))
    assert sorted(r.week for r in results) == ["2026-W47", "2026-W48"]
    assert len(inbox.messages) == 2
    row = digest_row(engine)
    assert row is not None and row.status == "sent" and row.attempts == 1


def test_the_queue_of_a_past_week_is_the_one_at_its_end(engine: Engine) -> None:
    """The queue size and the oldest pending candidate were those of the moment the digest
    was built: a digest sent late, a retried send or `digest send --week 2026-W40` showed
    today's queue as the week's. They are now rebuilt from the review log as of the week's end:
    a decision undone before the end was not taken, one undone after it still was."""
    ids = seed_week(engine)
    with transaction(engine) as session:
        candidates = {row.paper_id: row.id for row in session.scalars(select(CandidateRow))}
    top, second, hostile, old = (candidates[ids[key]] for key in ("top", "second", "hostile", "old"))
    bo = ReviewQueue(engine, "bo", clock=lambda: IN_WEEK + timedelta(hours=1))
    bo.defer(second)  # deferred in the week, undone the week after: not pending at its end
    bo.clock = lambda: IN_WEEK + timedelta(hours=2)
    bo.reject(hostile, "off topic")  # rejected and undone in the week: pending at its end
    bo.clock = lambda: IN_WEEK + timedelta(hours=3)
    bo.undo()
    later = NOW + timedelta(hours=1)  # in the next week
    bo.clock = lambda: later
    bo.undo()
    ana = ReviewQueue(engine, "ana", clock=lambda: later)
    ana.accept(top)
    ana.reject(old, "off topic")
    queue_at(engine, later, later + timedelta(hours=1))
    built = NOW + timedelta(days=2)

    digest = build_digest(engine, WEEK, now=built)
    [cat] = digest.catalogues
    assert cat.queue_size == 4  # top, hostile, gen, old; not second (deferred then)
    assert cat.oldest_pending_days == 20.7  # old: 2026-11-02 07:00 to 2026-11-23 00:00
    assert cat.queue_unknown == 0
    text, html = render(digest)
    assert "Queue at the week's end: 4 pending, oldest 20.7 days" in text
    # The week not over: the queue now, so said.
    [current] = build_digest(engine, Week(2026, 48), now=built).catalogues
    assert current.queue_size == 5  # second, hostile, gen and the two queued this week
    assert current.oldest_pending_days == 7.1  # second and others: 2026-11-18 07:00 to 11-25 10:00
    text, _ = render(build_digest(engine, Week(2026, 48), now=built))
    assert "Queue now (the week is not over): 5 pending, oldest 7.1 days" in text

    # A candidate decided by hand, with no review-log row and no decision time: its state at
    # the week's end is unknown, and the digest says so rather than guess.
    with transaction(engine) as session:
        session.add(
            CandidateRow(
                paper_id=ids["upgraded"],
                catalogue_id=session.scalar(select(CatalogueRow.id)),
                status="rejected",
                created_at=IN_WEEK,
            )
        )
    digest = build_digest(engine, WEEK, now=built)
    [cat] = digest.catalogues
    assert (cat.queue_size, cat.queue_unknown) == (4, 1)
    text, html = render(digest)
    unknown = "(1 more decided at a time the store does not record: not counted)"
    assert f"4 pending, oldest 20.7 days {unknown}" in text
    assert unknown in html


def test_the_job_skips_a_week_another_process_is_sending_and_sends_the_others(
    engine: Engine, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The job read its weeks to retry outside the digest lock: a `digest send` of one of them
    in progress at that moment (its week `built`, so retried) made the job raise before it
    sent its other weeks. The job now leaves a week another process is sending to it, says
    so, and sends the others."""
    seed_week(engine)
    with pytest.raises(DigestNotSent):  # nothing listens there: 2026-W45 is failed, retried
        send_digest(settings_for(free_port()), engine, Week(2026, 45), now=NOW - timedelta(days=14))
    with send_held_mid_delivery(db_url, tmp_path, "2026-W47"), smtp_server() as (inbox, smtp_port):
        results = send_due(settings_for(smtp_port), engine, now=NOW)
    assert [r.week for r in results] == ["2026-W45"]
    assert [str(message["X-VPT-Tracker-Week"]) for _, message in inbox.messages] == ["2026-W45"]
    assert "digest 2026-W47 skipped: another process is sending it" in caplog.text
    row = digest_row(engine, "2026-W45")
    assert row is not None and row.status == "sent" and row.attempts == 2


def test_the_source_health_of_a_past_week_is_the_one_at_its_end(engine: Engine, db_url: str) -> None:
    """A digest built after its week (sent late, retried, `digest send --week`) showed the
    windows queued for refetch now as the week's: a source that failed in its week and was
    refetched the week after had nothing queued, and one that failed later had windows queued
    in a week it was healthy. The real nightly runs, one a week, against a local feed server:
    arxiv_rss fails in 2026-W34, is healthy in W35 (the missed window is refetched then) and
    fails again in W36; each week's digest, built in W37, is the week as it ended."""
    wednesday = datetime(2026, 8, 19, 6, 30, tzinfo=UTC)  # 2026-W34
    with feed_server() as (routes, base):
        settings = rss_settings(db_url, base, ["cs.CV"])
        routes.fail("/rss/cs.CV")
        assert not nightly(settings, engine, now=wednesday, client=client(settings)).health["arxiv_rss"][
            "healthy"
        ]
        routes.feed("/rss/cs.CV", "2026-08-20-cs-cv.xml")
        assert nightly(settings, engine, now=wednesday + timedelta(days=7), client=client(settings)).health[
            "arxiv_rss"
        ]["healthy"]
        routes.fail("/rss/cs.CV")
        nightly(settings, engine, now=wednesday + timedelta(days=14), client=client(settings))
    built = wednesday + timedelta(days=21)  # 2026-W37

    failing = build_digest(engine, Week(2026, 34), now=built)
    [rss] = failing.health
    assert (rss.last_healthy, rss.runs, rss.unhealthy_runs, rss.pending_refetch) == (False, 1, 1, 1)
    assert failing.subject == "vpt-tracker digest 2026-W34: 0 new candidates, 1 unhealthy source"
    text, html = render(failing)
    assert (
        "  - arxiv_rss: UNHEALTHY, 0 records in 1 run, 1 unhealthy, 1 window queued for refetch (error:"
        in text
    )
    assert "<td>0</td><td>1 (1 unhealthy)</td><td>1</td></tr>" in html

    healthy = build_digest(engine, Week(2026, 35), now=built)
    [rss] = healthy.health
    assert (rss.last_healthy, rss.runs, rss.unhealthy_runs, rss.pending_refetch) == (True, 1, 0, 0)
    assert healthy.subject == "vpt-tracker digest 2026-W35: 0 new candidates"
    assert "  - arxiv_rss: healthy, 171 records in 1 run\n" in render(healthy)[0]

    # The week not over: its windows queued now, as the queue.
    [rss] = build_digest(engine, Week(2026, 36), now=wednesday + timedelta(days=15)).health
    assert (rss.last_healthy, rss.pending_refetch) == (False, 1)


def test_papers_owed_a_score_after_the_week_are_not_the_weeks(engine: Engine) -> None:
    """The papers waiting to be scored were counted as the digest was built: a late or retried
    digest of a week whose scoring worked said papers waited, for a failure of a later week."""
    seed_week(engine)
    later = NOW + timedelta(days=2)  # 2026-W48
    with transaction(engine) as session:
        first, second = session.scalars(select(PaperRow.id).order_by(PaperRow.id).limit(2)).all()
        session.add(ScoringBacklogRow(catalogue="awesome-vpt", paper_id=first, created_at=IN_WEEK))
        session.add(ScoringBacklogRow(catalogue="awesome-vpt", paper_id=second, created_at=later))
    built = later + timedelta(hours=1)
    [past] = build_digest(engine, WEEK, now=built).catalogues
    assert past.unscored == 1
    assert "1 paper waits to be scored for awesome-vpt" in render(build_digest(engine, WEEK, now=built))[0]
    [current] = build_digest(engine, Week(2026, 48), now=built).catalogues
    assert current.unscored == 2


def test_papers_owed_at_the_weeks_end_and_scored_since_are_the_weeks(engine: Engine) -> None:
    """A scored paper's row was deleted, so a late or retried digest did not count a paper
    owed at the week's end and scored since. The row stays, stamped `scored_at`: counted for
    the week it was owed in, not for one it was scored before the end of; owed again later,
    it is one paper of the week still, and owed now."""
    seed_week(engine)
    with transaction(engine) as session:
        first, second = session.scalars(select(PaperRow.id).order_by(PaperRow.id).limit(2)).all()
        session.add(ScoringBacklogRow(catalogue="awesome-vpt", paper_id=first, created_at=IN_WEEK))
        session.add(  # owed and scored within the week: not owed at its end
            ScoringBacklogRow(
                catalogue="awesome-vpt",
                paper_id=second,
                created_at=IN_WEEK,
                scored_at=IN_WEEK + timedelta(hours=1),
            )
        )
    with transaction(engine) as session:  # the next run scores it, as the pipeline does
        clear_backlog(session, ["awesome-vpt"])
    assert scoring_backlog(engine, ["awesome-vpt"]) == {"awesome-vpt": set()}
    built = datetime.now(UTC) + timedelta(hours=1)
    [past] = build_digest(engine, WEEK, now=built).catalogues
    assert past.unscored == 1
    assert [c.unscored for c in build_digest(engine, Week.of(built, UTC), now=built).catalogues] == [0]

    with transaction(engine) as session:  # its scoring fails again: owed anew, beside the scored row
        owe_to_catalogues(session, ["awesome-vpt"], [first])
    assert scoring_backlog(engine, ["awesome-vpt"]) == {"awesome-vpt": {first}}
    assert [c.unscored for c in build_digest(engine, WEEK, now=built).catalogues] == [1]
    assert [c.unscored for c in build_digest(engine, Week.of(built, UTC), now=built).catalogues] == [1]


def test_scored_rows_are_kept_a_year(engine: Engine) -> None:
    """The scoring that stamps a catalogue's rows deletes those it scored more than
    `SCORED_KEPT` ago (the digests of older weeks no longer count them); others' stay."""
    seed_week(engine)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        paper = session.scalars(select(PaperRow.id).order_by(PaperRow.id).limit(1)).one()
        for catalogue, scored in (
            ("awesome-vpt", SCORED_KEPT + timedelta(days=1)),
            ("awesome-vpt", SCORED_KEPT - timedelta(days=1)),
            ("other", SCORED_KEPT + timedelta(days=1)),
        ):
            session.add(
                ScoringBacklogRow(
                    catalogue=catalogue, paper_id=paper, created_at=now - scored, scored_at=now - scored
                )
            )
    with transaction(engine) as session:
        clear_backlog(session, ["awesome-vpt"])
        left = session.execute(
            select(ScoringBacklogRow.catalogue, ScoringBacklogRow.scored_at).order_by(ScoringBacklogRow.id)
        ).all()
    assert [(name, scored and (now - scored).days) for name, scored in left] == [
        ("awesome-vpt", SCORED_KEPT.days - 1),
        ("other", SCORED_KEPT.days + 1),
    ]


def test_a_week_label_is_refused_for_what_is_wrong_with_it() -> None:
    """`2026-w47` was "2026 has no week 47 (it has 53)": the 'no such week' message is for a
    number past the year's last week only. As `--week`, a small w is the week."""
    with pytest.raises(ValueError) as caught:
        Week.parse("2026-w47")
    assert str(caught.value) == "'2026-w47' is not an ISO week like 2026-W47"
    assert parse_week("2026-w47", NOW) == WEEK
    with pytest.raises(UserError, match=r"^--week '2026-x47' is not an ISO week like 2026-W47 \(or"):
        parse_week("2026-x47", NOW)
    with pytest.raises(UserError, match=r"^--week '2025-w53': 2025 has 52 ISO weeks; its last is 2025-W52$"):
        parse_week("2025-w53", NOW)
    with pytest.raises(UserError, match=r"^--week '2026-w60': 2026 has 53 ISO weeks; its last is 2026-W53$"):
        parse_week("2026-w60", NOW)


def test_a_digest_with_non_ascii_text_reaches_a_server_without_8bitmime(engine: Engine) -> None:
    """A text part of short lines with a non-ASCII character (a title in German, the `→` of a
    venue upgrade) went as 8-bit bytes, also to a server that does not offer 8BITMIME, which
    may refuse it (RFC 6152). Both parts go in 7-bit encodings now, readable by any server."""
    with transaction(engine) as session:
        cat = CatalogueRow(name="awesome-vpt", preset="awesome-vpt", source_text="", source_sha256="0")
        paper = PaperRow(title="Prompts für ViTs", title_key="prompts fur vits", arxiv_id="2611.00001")
        session.add_all([cat, paper])
        session.flush()
        session.add(CandidateRow(paper_id=paper.id, catalogue_id=cat.id, relevance=0.9, created_at=IN_WEEK))
        session.add(
            RunRow(
                kind="nightly",
                started_at=IN_WEEK,
                outcome="ok",
                counts={"sources": {"arxiv_rss": {"records": 1}}},
                health={"arxiv_rss": {"healthy": True, "reason": None}},
            )
        )
    with smtp_server(eight_bit=False) as (inbox, port):
        send_digest(settings_for(port), engine, WEEK, now=NOW)
        [(_rcpts, message)] = inbox.messages
    plain = message.get_body(("plain",))
    assert plain is not None and "  - 0.90  Prompts für ViTs\n" in plain.get_content().replace("\r\n", "\n")


def test_implicit_tls_to_a_port_that_speaks_plain_smtp_says_so(engine: Engine) -> None:
    """`security = 'ssl'` (TLS from the first byte, port 465) against a server that speaks
    plain SMTP first (587, 25) was "cannot reach the SMTP server ...: [SSL:
    WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", for a server that answered."""
    with smtp_server() as (inbox, port), pytest.raises(DigestNotSent) as caught:
        send_digest(settings_for(port, security="ssl"), engine, WEEK, now=NOW)
    assert inbox.messages == []
    assert str(caught.value).startswith(
        f"digest 2026-W47 not sent: TLS with the SMTP server 127.0.0.1:{port} failed: the server does not"
        " speak TLS at once (smtp.security = 'ssl' is for a port such as 465; for 587 or 25 use 'starttls');"
    )


def test_an_ingest_is_no_run_of_the_sources(engine: Engine) -> None:
    """A week whose only run was an `ingest` (local dump files: no source is fetched, no health
    is judged) read "Runs this week: 1 (0 failed or partial)" above "(no runs recorded)", and its
    subject lost the ", no runs" that tells the maintainers the nightly runs stopped."""
    seed_week(engine)
    with transaction(engine) as session:
        session.add(RunRow(kind="ingest", started_at=IN_WEEK - timedelta(days=21), outcome="ok", counts={}))
    quiet = build_digest(engine, Week(2026, 44), now=NOW)
    assert (quiet.runs, quiet.failed_runs, quiet.health) == (0, 0, [])
    assert quiet.subject == "vpt-tracker digest 2026-W44: 0 new candidates, no runs"
    text, html = render(quiet)
    assert text.endswith(
        "== Source health ==\n"
        "Runs this week: none (no run was recorded: is the scheduler or the cron job running?)\n"
    )
    # Not also "no run of the week judged it" below it, nor an empty table: there was no run.
    assert "no source health recorded" not in text + html and "<table>" not in html.split("Source health")[1]


def test_runs_that_judged_no_source_health_are_not_called_no_runs(engine: Engine) -> None:
    """A week whose runs all died before judging their sources (a crash, a kill) read "Runs
    this week: 1 (1 failed or partial)" and, below it, "(no runs recorded)"."""
    with transaction(engine) as session:
        session.add(RunRow(kind="nightly", started_at=IN_WEEK, outcome="failed", counts={}, health={}))
    text, html = render(build_digest(engine, WEEK, now=NOW))
    none = "(no source health recorded: no run of the week judged it)"
    assert f"Runs this week: 1 (1 failed or partial)\n  {none}\n" in text
    assert (
        '<td colspan="5" class="muted">no source health recorded: no run of the week judged it</td>' in html
    )
    assert "no runs recorded" not in text + html
