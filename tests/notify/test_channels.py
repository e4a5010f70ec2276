"""Channels on their own: the recording channel of development, and the SMTP channel's
sign-in and TLS against a real server (puente.notify.channels)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import logging
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from puente.logs import JSONFormatter
from puente.notify import service
from puente.notify.channels import DeliveryFailure, Envelope, SmtpChannel
from puente.notify.models import OutboxMessage, Status
from tests.notify.conftest import Mailbox, free_port

ADDRESS = "maria.lopez@example.org"
ENVELOPE = Envelope(
    message_id="0b5e",
    kind="puente.test",
    medium="email",
    recipient=ADDRESS,
    locale="es_MX",
    subject="Aviso",
    body="Texto del aviso",
    provider_message_id="<abc@puente.example.org>",
)


def test_development_records_each_message_as_an_eml_file(
    committed: Session, mail_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="puente.notify")
    message = service.queue(
        committed, idempotency_key="k", kind="puente.test", recipient=ADDRESS, locale="es-MX",
        subject_key="notify.test.subject", body_key="notify.test.body",
    )  # fmt: skip
    message_id = message.id
    committed.commit()
    recorded = mail_dir / f"{message_id}.eml"
    assert stat.S_IMODE(recorded.stat().st_mode) == 0o600
    mail = email.message_from_bytes(recorded.read_bytes(), policy=email.policy.default)
    assert mail["Subject"] == "Mensaje de prueba de Puente"
    assert mail["To"] == ADDRESS
    committed.rollback()
    stored = committed.get(OutboxMessage, message_id, populate_existing=True)
    assert stored is not None
    assert stored.status == Status.SENT
    lines = [JSONFormatter().format(record) for record in caplog.records]
    assert any(json.loads(line)["event"] == "notification_recorded" for line in lines)
    for line in lines:
        assert ADDRESS not in line
        assert "Mensaje de prueba" not in line


def _login(mailbox: Mailbox, *, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    def authenticate(server: object, session: object, envelope: object, mechanism: str,
                     auth_data: object) -> AuthResult:  # fmt: skip
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"correct horse"
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
        auth_required=True, auth_require_tls=tls is not None, tls_context=tls,
        require_starttls=tls is not None,
    )  # fmt: skip
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


# The test server takes a password without TLS; Puente refuses that in production.
SIGN_IN_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def auth_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    for port in _login(mailbox):
        yield mailbox, port


def _channel(
    port: int, *, tls: str = "none", password: str | None = "correct horse"
) -> SmtpChannel:
    return SmtpChannel(
        host="127.0.0.1", port=port, tls=tls, username="puente", password=password, timeout=5,
        sender="Puente <avisos@puente.example.org>",
    )  # fmt: skip


@SIGN_IN_WITHOUT_TLS
def test_the_smtp_channel_signs_in(auth_server: tuple[Mailbox, int]) -> None:
    mailbox, port = auth_server
    handed: list[bool] = []
    assert (
        _channel(port).send(ENVELOPE, handover=lambda: handed.append(True))
        == ENVELOPE.provider_message_id
    )
    assert handed == [True]
    assert len(mailbox.received) == 1


@SIGN_IN_WITHOUT_TLS
def test_a_refused_sign_in_is_the_deployments_problem_and_retried(
    auth_server: tuple[Mailbox, int],
) -> None:
    mailbox, port = auth_server
    handed: list[bool] = []
    with pytest.raises(DeliveryFailure) as failure:
        _channel(port, password="wrong").send(ENVELOPE, handover=lambda: handed.append(True))
    assert failure.value.permanent is False
    assert failure.value.reason.startswith("smtp session 535")
    assert handed == []  # refused before anything was handed over
    assert mailbox.received == []


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_starttls_checks_the_relays_certificate(tmp_path: Path) -> None:
    """A relay whose certificate nobody vouches for gets neither the password nor the
    message: a man in the middle would see both."""
    mailbox = Mailbox()
    for port in _login(mailbox, tls=_self_signed(tmp_path)):
        with pytest.raises(DeliveryFailure) as failure:
            _channel(port, tls="starttls").send(ENVELOPE, handover=lambda: None)
        assert failure.value.permanent is False
        assert failure.value.reason == "session SSLCertVerificationError"
    assert mailbox.received == []


def test_starttls_required_but_not_offered_is_refused(mailbox: Mailbox) -> None:
    with pytest.raises(DeliveryFailure) as failure:
        _channel(mailbox.port, tls="starttls", password=None).send(ENVELOPE, handover=lambda: None)
    assert failure.value.reason == "session SMTPNotSupportedError"
    assert mailbox.received == []
