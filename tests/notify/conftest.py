"""A real SMTP server (aiosmtpd) on a free port, scripted to refuse when a test says so,
and committed sessions: delivery runs its steps in transactions of its own."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from puente.cli import app as cli_app
from puente.settings import get_settings
from tests.conftest import truncate_all

DROP = "drop"  # a scripted DATA reply: take the message, then close without answering


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class Mailbox:
    """What the server accepted; replies queued per stage are used once each, in order."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[Received] = []
        self.rcpt_replies: deque[str] = deque()
        self.data_replies: deque[str] = deque()
        self.lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            if self.rcpt_replies:
                return self.rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            reply = self.data_replies.popleft() if self.data_replies else "250 2.0.0 OK queued"
        if reply.startswith("250") or reply == DROP:
            parsed = email.message_from_bytes(
                envelope.original_content, policy=email.policy.default
            )
            assert isinstance(parsed, EmailMessage)
            with self.lock:
                self.received.append(
                    Received(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        parsed,
                        envelope.original_content,
                    )
                )
        if reply == DROP:  # the relay took it and died before saying so
            server.transport.close()
            return "250 2.0.0 OK queued"
        return reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def smtp(mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """Puente configured, through its settings, to deliver to the local server."""
    monkeypatch.setenv("PUENTE_NOTIFY_CHANNEL", "smtp")
    monkeypatch.setenv("PUENTE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PUENTE_SMTP_PORT", str(mailbox.port))
    monkeypatch.setenv("PUENTE_SMTP_TLS", "none")
    monkeypatch.setenv("PUENTE_SMTP_TIMEOUT", "5")
    monkeypatch.setenv("PUENTE_MAIL_FROM", "Puente <avisos@puente.example.org>")
    get_settings.cache_clear()
    yield mailbox
    get_settings.cache_clear()


@pytest.fixture
def mail_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The development default: the recording channel, into a directory of the test's."""
    monkeypatch.setenv("PUENTE_NOTIFY_CHANNEL", "log")
    monkeypatch.setenv("PUENTE_MAIL_DIR", str(tmp_path / "mail"))
    get_settings.cache_clear()
    yield tmp_path / "mail"
    get_settings.cache_clear()


@pytest.fixture
def committed(engine: Engine) -> Iterator[Session]:
    """A session whose commits are real; every table is emptied after the test."""
    from puente.db import session_factory

    session = session_factory()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
        truncate_all(engine)


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.output
