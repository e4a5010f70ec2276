"""`puente system add`, `app add`, `user add` and `token`, run as an operator would."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from exchange.models import StoredResource
from puente.audit.models import AuditEntry
from puente.auth.models import HospitalSystem, SmartApp, UserAccount
from puente.cli import app
from puente.db import session_factory
from puente.settings import get_settings
from tests.factories import private_key, public_jwk

pytestmark = pytest.mark.usefixtures("committed")
runner = CliRunner()


def _system(code: str = "hgcj", *extra: str) -> str:
    result = runner.invoke(
        app, ["system", "add", code, "--country", "MX", "--name", "Hospital General", *extra]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _claims(token: str) -> dict[str, object]:
    settings = get_settings()
    claims: dict[str, object] = jwt.decode(
        token, settings.secret_key, algorithms=["HS256"], audience=settings.fhir_base_url
    )
    return claims


def test_system_add_prints_the_secret_and_creates_the_organization() -> None:
    out = _system()
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["client_id"] == "hgcj-client"
    assert len(lines["client_secret"]) >= 40
    with session_factory()() as session:
        system = session.scalars(select(HospitalSystem)).one()
        organization = session.scalars(
            select(StoredResource).where(
                StoredResource.res_type == "Organization", StoredResource.res_id == "hgcj"
            )
        ).one()
        country = session.scalars(select(StoredResource).where(StoredResource.res_id == "mx")).one()
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "security-admin")
        ).one()
    assert lines["client_secret"] not in system.secret_hash
    assert organization.content is not None
    assert organization.content["partOf"] == {"reference": "Organization/mx"}
    assert organization.owner == "hgcj"
    assert country.content is not None
    assert country.content["name"] == "México"
    assert audited.subtype == "system-add"
    assert (audited.agent or "").startswith("cli")


def test_system_add_with_jwks(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(private_key("ES384"), kid="e1", alg="ES384")]}))
    _system("hgcj", "--jwks", str(path))
    with session_factory()() as session:
        jwks = session.scalars(select(HospitalSystem.jwks)).one()
    assert jwks is not None
    assert jwks["keys"][0]["kid"] == "e1"


def test_system_add_refuses_a_private_jwks(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    path = tmp_path / "jwks.json"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = json.loads(RSAAlgorithm.to_jwk(key))
    path.write_text(json.dumps({"keys": [{**private, "kid": "k1"}]}))
    result = runner.invoke(
        app, ["system", "add", "hgcj", "--country", "MX", "--name", "H", "--jwks", str(path)]
    )
    assert result.exit_code == 1
    assert "private" in result.stderr
    with session_factory()() as session:
        assert session.scalars(select(HospitalSystem)).all() == []


def test_identifier_systems_are_registered_at_add_and_later() -> None:
    curp = "https://www.gob.mx/curp"
    mrn = "urn:puente:hgcj:expediente"
    _system("hgcj", "--identifier-system", mrn, "--identifier-system", curp)
    listed = runner.invoke(app, ["system", "identifiers", "hgcj"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [curp, "urn:puente:hgcj:expediente"]
    added = runner.invoke(app, ["system", "identifiers", "hgcj", "--add", "urn:oid:2.16.840.1"])
    assert added.exit_code == 0, added.output
    assert "urn:oid:2.16.840.1" in added.stdout.splitlines()
    again = runner.invoke(app, ["system", "identifiers", "hgcj", "--add", curp])
    assert again.stdout.splitlines() == [curp, "urn:oid:2.16.840.1", "urn:puente:hgcj:expediente"]
    with session_factory()() as session:
        subtypes = session.scalars(
            select(AuditEntry.subtype).where(AuditEntry.event_type == "security-admin")
        ).all()
    assert sorted(subtypes) == ["system-add", "system-identifiers", "system-identifiers"]


def test_identifier_systems_refuse_a_relative_uri_and_an_unknown_system() -> None:
    _system()
    relative = runner.invoke(app, ["system", "identifiers", "hgcj", "--add", "mrn numbers"])
    assert relative.exit_code == 1
    assert "absolute URI" in relative.stderr
    unknown = runner.invoke(app, ["system", "identifiers", "nope", "--add", "urn:x"])
    assert unknown.exit_code == 1
    assert "nope" in unknown.stderr
    refused = runner.invoke(
        app,
        ["system", "add", "umcep", "--country", "US", "--name", "U", "--identifier-system", "x"],
    )
    assert refused.exit_code == 1
    with session_factory()() as session:
        assert session.scalars(select(HospitalSystem.code)).all() == ["hgcj"]


def test_duplicate_system_exits_1_and_changes_nothing() -> None:
    _system()
    again = runner.invoke(app, ["system", "add", "hgcj", "--country", "US", "--name", "Other"])
    assert again.exit_code == 1
    assert "hgcj" in again.stderr
    assert "already registered" in again.stderr
    assert again.stdout == ""
    with session_factory()() as session:
        assert session.scalars(select(HospitalSystem.country)).all() == ["MX"]


def test_system_add_usage_errors() -> None:
    assert runner.invoke(app, ["system", "add", "hgcj", "--name", "H"]).exit_code == 2
    bad_country = runner.invoke(app, ["system", "add", "hgcj", "--country", "CA", "--name", "H"])
    assert bad_country.exit_code == 2


def test_system_token_prints_only_a_jwt() -> None:
    _system()
    result = runner.invoke(app, ["token", "--role", "system", "--org", "hgcj"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert token.count(".") == 2
    claims = _claims(token)
    assert claims["role"] == "system"
    assert claims["org"] == "hgcj"
    assert claims["country"] == "MX"
    assert claims["sub"] == "hgcj-client"
    assert claims["aud"] == "http://testserver/fhir"
    assert claims["scope"] == "system/*.cruds"
    assert claims["purpose_of_use"] == "TREAT"


def test_clinician_token_with_subject_purpose_and_ttl() -> None:
    _system()
    result = runner.invoke(
        app,
        [
            "token",
            "--role",
            "clinician",
            "--org",
            "hgcj",
            "--subject",
            "Practitioner/dr-1",
            "--purpose",
            "ETREAT",
            "--ttl",
            "7200",
        ],
    )
    assert result.exit_code == 0, result.output
    claims = _claims(result.stdout.strip())
    assert claims["fhirUser"] == "Practitioner/dr-1"
    assert claims["purpose_of_use"] == "ETREAT"
    assert claims["exp"] - claims["iat"] == 7200  # type: ignore[operator]


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--role", "clinician", "--org", "hgcj"],
        ["token", "--role", "patient", "--org", "hgcj"],
        ["token", "--role", "system"],
        ["token", "--role", "nurse", "--org", "hgcj"],
        ["token", "--role", "system", "--org", "hgcj", "--purpose", "MARKETING"],
        ["token", "--role", "system", "--org", "hgcj", "--ttl", "0"],
    ],
)
def test_token_usage_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""


def test_token_for_an_unknown_org_exits_1() -> None:
    result = runner.invoke(app, ["token", "--role", "system", "--org", "nowhere"])
    assert result.exit_code == 1
    assert "nowhere" in result.stderr


def test_long_ttl_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    _system()
    production = get_settings().model_copy(update={"env": "production"})
    monkeypatch.setattr("puente.auth.service.get_settings", lambda: production)
    long = runner.invoke(app, ["token", "--role", "system", "--org", "hgcj", "--ttl", "7200"])
    assert long.exit_code == 1
    assert "3600" in long.stderr
    assert long.stdout == ""
    short = runner.invoke(app, ["token", "--role", "system", "--org", "hgcj", "--ttl", "600"])
    assert short.exit_code == 0


def test_app_add_prints_the_client_id() -> None:
    result = runner.invoke(
        app,
        [
            "app",
            "add",
            "Mi Salud",
            "--redirect-uri",
            "https://app.example/cb",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
        ],
    )
    assert result.exit_code == 0, result.output
    client_id = result.stdout.strip().removeprefix("client_id: ")
    with session_factory()() as session:
        stored = session.scalars(select(SmartApp)).one()
    assert stored.client_id == client_id
    assert stored.redirect_uris == ["https://app.example/cb", "http://127.0.0.1:9000/cb"]
    assert runner.invoke(app, ["app", "add", "X"]).exit_code == 2
    bad = runner.invoke(app, ["app", "add", "X", "--redirect-uri", "http://app.example/cb"])
    assert bad.exit_code == 1


def test_user_add_with_and_without_a_password() -> None:
    _system()
    given = runner.invoke(
        app,
        [
            "user",
            "add",
            "Dr.Garza@hgcj.example",
            "--role",
            "clinician",
            "--org",
            "hgcj",
            "--subject",
            "Practitioner/dr-garza",
            "--password",
            "a long passphrase",
        ],
    )
    assert given.exit_code == 0, given.output
    assert "a long passphrase" not in given.output
    generated = runner.invoke(
        app,
        [
            "user",
            "add",
            "paciente@example.mx",
            "--role",
            "patient",
            "--org",
            "hgcj",
            "--subject",
            "Patient/p-1",
        ],
    )
    assert generated.exit_code == 0, generated.output
    password = next(
        line.removeprefix("password: ")
        for line in generated.stdout.splitlines()
        if line.startswith("password: ")
    )
    assert len(password) >= 12
    assert "development" in generated.stderr
    from puente.auth import service

    with session_factory()() as session:
        emails = sorted(session.scalars(select(UserAccount.email)).all())
        assert (
            service.sign_in(
                session, email="paciente@example.mx", password=password, source_ip="cli"
            ).subject
            == "Patient/p-1"
        )
        session.rollback()
    assert emails == ["dr.garza@hgcj.example", "paciente@example.mx"]


def test_user_add_refusals() -> None:
    _system()
    no_subject = runner.invoke(
        app, ["user", "add", "x@hgcj.example", "--role", "clinician", "--org", "hgcj"]
    )
    assert no_subject.exit_code == 1
    assert "Practitioner/<id>" in no_subject.stderr
    unknown_org = runner.invoke(
        app, ["user", "add", "y@hgcj.example", "--role", "analyst", "--org", "nowhere"]
    )
    assert unknown_org.exit_code == 1
    assert runner.invoke(app, ["user", "add", "z@x.example", "--role", "system"]).exit_code == 2
