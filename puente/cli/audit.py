"""`puente audit verify` and `puente audit seal`.

`verify` exits 0 with a summary line, or 1 naming the first bad row by position and audit
id with the reason; it never prints an entry's content (it may carry PHI).
"""

from __future__ import annotations

import typer

audit_app = typer.Typer(name="audit", help="The tamper-evident audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def verify_command() -> None:
    """Re-walk the hash chain; exit 1 naming the first bad row."""
    from puente.audit.verify import verify
    from puente.db import unit_of_work

    with unit_of_work() as session:
        report = verify(session)
    if report.problem is not None:
        typer.echo(f"audit chain BROKEN at {report.problem.describe()}", err=True)
        typer.echo(f"{report.checked} rows verified before it", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"audit chain intact: {report.checked} rows checked; head position "
        f"{report.head_position} hash {report.head_hash}; {report.pending} recent rows "
        "not sealed yet"
    )


@audit_app.command("seal")
def seal_command() -> None:
    """Chain every unsealed row inside the sealing window now; print how many."""
    from puente.audit.tasks import seal_backlog

    typer.echo(f"sealed {seal_backlog(max_batches=None)} audit rows")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app)
