"""`puente consent relabel|part2 add`: security labels of stored resources for operators.

Nothing printed names a patient: counts and references to programs only.
"""

from __future__ import annotations

import re

import typer

from puente.cli.common import actor

consent_app = typer.Typer(
    name="consent", help="Security labels and Part 2 programs.", no_args_is_help=True
)
part2_app = typer.Typer(
    name="part2", help="42 CFR Part 2 programs of hospital systems.", no_args_is_help=True
)
consent_app.add_typer(part2_app)
_PROGRAM = re.compile(r"^(Organization|HealthcareService)/[A-Za-z0-9\-.]{1,64}$")


@consent_app.command("relabel")
def relabel_command(
    batch: int = typer.Option(500, min=1, max=10000, help="Resources per transaction"),
) -> None:
    """Recompute the security labels of stored resources labelled under other code lists
    (or whose system's Part 2 programs changed). Writes no resource version."""
    from consent.labels import lists_version
    from consent.tasks import relabel_stale

    done = relabel_stale(batch=batch)
    typer.echo(f"relabelled {done} resources (lists {lists_version()})")


@part2_app.command("add")
def part2_add_command(
    reference: str = typer.Argument(
        ..., help="The program as the system references it: Organization/ID or HealthcareService/ID"
    ),
    system: str = typer.Option(..., "--system", help="Code of the hospital system that sends it"),
) -> None:
    """Mark an Organization or HealthcareService of a hospital system as a Part 2 program:
    what it sends carries 42CFRPart2 and NORDSCLCD. Its stored records are relabelled now."""
    from consent import service
    from consent.tasks import relabel_stale
    from puente.auth.service import find_system
    from puente.db import unit_of_work, utcnow

    if not _PROGRAM.match(reference):
        raise typer.BadParameter("Organization/ID or HealthcareService/ID", param_hint="ORG_REF")
    with unit_of_work() as session:
        if find_system(session, system) is None:
            raise typer.BadParameter(f"no hospital system {system!r}", param_hint="--system")
        added = service.add_part2_program(
            session, owner=system, reference=reference, actor=actor(), now=utcnow()
        )
    if not added:
        typer.echo(f"{reference} of {system} is already a Part 2 program")
        return
    done = relabel_stale()
    typer.echo(f"{reference} of {system} is a Part 2 program; relabelled {done} resources")


def register(app: typer.Typer) -> None:
    app.add_typer(consent_app)
