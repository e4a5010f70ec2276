"""`puente system add`, `app add`, `user add`, `token`.

Exit codes: 0 done, 1 the work was refused or failed (a duplicate code, an unknown org),
2 usage (a missing or malformed option).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from puente.auth.scopes import PEOPLE_ROLES, ROLES_WITH_SUBJECT, Role
from puente.auth.tokens import PURPOSES
from puente.cli.common import actor, fail
from puente.errors import PuenteError

systems = typer.Typer(help="Hospital systems: API clients that own the data they write.")
apps = typer.Typer(help="SMART apps people sign in through (authorization code + PKCE).")
users = typer.Typer(help="People's accounts.")

# Roles that act for the whole consortium and may hold no hospital (ARCHITECTURE "Roles").
CONSORTIUM_ROLES = frozenset({Role.ANALYST, Role.ADMIN})


def _country(value: str) -> str:
    if value not in ("MX", "US"):
        raise typer.BadParameter("must be MX or US")
    return value


def _role(value: str) -> str:
    try:
        Role(value)
    except ValueError as exc:
        raise typer.BadParameter(f"one of {', '.join(r.value for r in Role)}") from exc
    return value


def _read_jwks(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        typer.echo(f"error: {path} is not a readable JSON file", err=True)
        raise typer.Exit(1) from None


@systems.command("add")
def system_add(
    code: Annotated[str, typer.Argument(help="Short code, e.g. hgcj: lowercase, 2-32 chars")],
    country: Annotated[str, typer.Option(help="MX or US", callback=_country)],
    name: Annotated[str, typer.Option(help="The hospital's name")],
    jwks: Annotated[
        Path | None,
        typer.Option(help="Public JWK Set (JSON file) for private_key_jwt", dir_okay=False),
    ] = None,
    identifier_system: Annotated[
        list[str] | None,
        typer.Option(
            help="An identifier system its Patients carry, e.g. its MRN namespace or "
            "https://www.gob.mx/curp (repeat for several); $ihe-pix recognizes these"
        ),
    ] = None,
) -> None:
    """Register a hospital system and its Organization; print its client id and secret."""
    from exchange import service as exchange
    from puente.auth import service
    from puente.db import unit_of_work

    jwks_document = _read_jwks(jwks) if jwks is not None else None
    try:
        with unit_of_work() as session:
            system, secret = service.add_system(
                session,
                code=code,
                name=name,
                country=country,
                jwks=jwks_document,
                identifier_systems=identifier_system or (),
                actor=actor(),
            )
            exchange.register_hospital_organization(session, code=code, name=name, country=country)
            client_id = system.client_id
    except PuenteError as exc:
        fail(exc)
    typer.echo(f"client_id: {client_id}")
    typer.echo(f"client_secret: {secret}")
    typer.echo("The secret is shown only now: Puente keeps just its hash.", err=True)


@systems.command("identifiers")
def system_identifiers(
    code: Annotated[str, typer.Argument(help="The hospital system's code")],
    add: Annotated[
        list[str] | None,
        typer.Option(help="Register this identifier system to it (repeat for several)"),
    ] = None,
) -> None:
    """Print the identifier systems registered to a hospital system, after registering any
    given with --add (IHE PIXm's $ihe-pix answers only for registered ones)."""
    from puente.auth import service
    from puente.db import unit_of_work

    try:
        with unit_of_work() as session:
            registered = service.add_identifier_systems(
                session, code=code, uris=add or (), actor=actor()
            )
    except PuenteError as exc:
        fail(exc)
    for uri in registered:
        typer.echo(uri)


@apps.command("add")
def app_add(
    name: Annotated[str, typer.Argument(help="The app's name, shown on the sign-in page")],
    redirect_uri: Annotated[
        list[str], typer.Option(help="A redirect URI (repeat the option for several)")
    ],
) -> None:
    """Register a SMART app (a public client); print its client id."""
    from puente.auth import service
    from puente.db import unit_of_work

    try:
        with unit_of_work() as session:
            app = service.add_app(session, name=name, redirect_uris=redirect_uri, actor=actor())
            client_id = app.client_id
    except PuenteError as exc:
        fail(exc)
    typer.echo(f"client_id: {client_id}")


@users.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="Sign-in e-mail address")],
    role: Annotated[str, typer.Option(help="A person's role", callback=_role)],
    org: Annotated[str | None, typer.Option(help="Hospital system code")] = None,
    subject: Annotated[str | None, typer.Option(help="Practitioner/<id> or Patient/<id>")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (else one is generated and printed)")
    ] = None,
) -> None:
    """Create a person's account."""
    from puente.auth import service
    from puente.db import unit_of_work

    if Role(role) not in PEOPLE_ROLES:
        raise typer.BadParameter(
            "systems are registered with `puente system add`", param_hint="--role"
        )
    chosen = password if password is not None else secrets.token_urlsafe(15)
    try:
        with unit_of_work() as session:
            account = service.add_user(
                session,
                email=email,
                password=chosen,
                role=role,
                org_code=org,
                subject=subject,
                actor=actor(),
            )
            address = account.email
    except PuenteError as exc:
        fail(exc)
    typer.echo(f"user: {address} ({role})")
    if password is None:
        typer.echo(f"password: {chosen}")
        typer.echo(
            "The password was generated as a development convenience; "
            "give a real account its own with --password.",
            err=True,
        )


def token(
    role: Annotated[str, typer.Option(help="system or a person's role", callback=_role)],
    org: Annotated[
        str | None, typer.Option(help="Hospital system code (its country is read from it)")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Practitioner/<id> or Patient/<id> (clinician, patient)")
    ] = None,
    purpose: Annotated[str, typer.Option(help="Purpose of use")] = "TREAT",
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds", min=1)] = None,
) -> None:
    """Print only a bearer token: for operators, tests and the demo."""
    from puente.auth import service
    from puente.db import unit_of_work

    chosen = Role(role)
    if chosen is Role.SYSTEM and subject:
        raise typer.BadParameter(
            "a system token's subject is its client id", param_hint="--subject"
        )
    if chosen in ROLES_WITH_SUBJECT and not subject:
        raise typer.BadParameter(f"required for --role {role}", param_hint="--subject")
    if chosen not in CONSORTIUM_ROLES and not org:
        raise typer.BadParameter(f"required for --role {role}", param_hint="--org")
    if purpose not in PURPOSES:
        raise typer.BadParameter(f"one of {', '.join(sorted(PURPOSES))}", param_hint="--purpose")
    try:
        with unit_of_work() as session:
            issued = service.token_for(
                session,
                role=chosen,
                org_code=org,
                subject=subject,
                purpose_of_use=purpose,
                ttl=ttl,
                actor=actor(),
            )
    except PuenteError as exc:
        fail(exc)
    typer.echo(issued.access_token)


def register(app: typer.Typer) -> None:
    app.add_typer(systems, name="system", no_args_is_help=True)
    app.add_typer(apps, name="app", no_args_is_help=True)
    app.add_typer(users, name="user", no_args_is_help=True)
    app.command()(token)
