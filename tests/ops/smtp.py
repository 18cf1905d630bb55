"""A real SMTP server on 127.0.0.1 (aiosmtpd), for the digest tests."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Inbox:
    """Collects what arrived; `refuse` makes the server answer RCPT with 550, to every
    recipient or to the addresses in `refuse_only`."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: bool = False
    refuse_only: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse or address in self.refuse_only:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


class PasswordCheck:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (self.username, self.password)
        return AuthResult(success=ok, handled=False)


class SevenBitInbox(Inbox):
    """A server that does not offer 8BITMIME and, as RFC 6152 lets it, refuses a message with
    8-bit bytes (a client may send those only to a server that offers it)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [line for line in responses if line != "250-8BITMIME"]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if any(byte > 127 for byte in envelope.original_content):
            return "554 5.6.0 8-bit data refused: this server does not offer 8BITMIME"
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def smtp_server(
    *,
    tls_context: ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
    smtputf8: bool = True,
    eight_bit: bool = True,
) -> Iterator[tuple[Inbox, int]]:
    """`smtputf8=False`: a server that does not offer SMTPUTF8 (plain ASCII addresses only);
    `eight_bit=False`: one that does not offer 8BITMIME (7-bit messages only)."""
    inbox = Inbox() if eight_bit else SevenBitInbox()
    port = free_port()
    kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    if credentials is not None:
        kwargs.update(authenticator=PasswordCheck(*credentials), auth_required=True)
        if tls_context is None:
            kwargs["auth_require_tls"] = False
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl command line."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# The CLI as a maintainer runs it at a terminal, where Ctrl-C (SIGINT) is delivered: a test
# run started in the background (`cmd &`, nohup) passes SIGINT on as ignored, and a child
# would then never see the Ctrl-C these tests send.
AS_AT_A_TERMINAL = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from vpt_tracker.cli import main; main()"
)


@contextmanager
def send_held_mid_delivery(
    db_url: str, folder: Path, week: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real `digest send --week WEEK` process, held mid-delivery: its SMTP server accepts the
    connection and never greets. Yields the process, once it is connected, and the server's
    port; kills the process after."""
    import sys

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)
        port = silent.getsockname()[1]
        config = folder / "vpt-tracker.toml"
        config.write_text(
            f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\n"
            "recipients = ['a@example.org']\ntimeout = 60\n"
        )
        command = ["--config", str(config), "--database", db_url, "digest", "send", "--week", week]
        child = subprocess.Popen([sys.executable, "-c", AS_AT_A_TERMINAL, *command])
        try:
            connection, _ = silent.accept()
            with connection:
                yield child, port
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=60)
