"""`puente import PATH --system CODE`: NDJSON or Bundle files into the store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from puente.cli.common import describe, fail
from puente.errors import InvalidRequest, PuenteError
from translation.i18n import N_

# Lines written per transaction: a crash loses at most one batch, which a re-run rewrites.
BATCH = 500


class RateColumn(TextColumn):
    """Resources per second so far."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: object) -> object:  # type: ignore[override]
        from rich.text import Text

        elapsed = getattr(task, "elapsed", None) or 0.0
        completed = getattr(task, "completed", 0)
        rate = completed / elapsed if elapsed else 0.0
        return Text(f"{rate:,.0f} resources/s")


def import_command(
    path: Annotated[Path, typer.Argument(help="An NDJSON or Bundle file, or a folder of them")],
    system: Annotated[str, typer.Option(help="The hospital system the data belongs to")],
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes writing at once (default: CPU count; SQLite: 1)"),
    ] = None,
) -> None:
    """Import FHIR resources as a hospital system; exit 1 if any line was rejected (the
    good ones are stored)."""
    from exchange import bulk
    from puente.auth import service as auth
    from puente.cli import parallel_import
    from puente.db import unit_of_work
    from puente.settings import get_settings

    if not path.exists():
        raise typer.BadParameter("no such file or folder", param_hint="PATH")
    files = bulk.files_in(path)
    if not files:
        raise typer.BadParameter("no .ndjson or .json files there", param_hint="PATH")
    try:
        with unit_of_work() as session:
            registered = auth.find_system(session, system)
            if registered is None:
                raise InvalidRequest(N_("account.org_unknown"), code=system[:32])
            caller = auth.system_caller(registered)
    except PuenteError as exc:
        fail(exc)
    lines = [line for file in files for line in bulk.read_file(file)]
    if get_settings().database_url.startswith("sqlite"):
        workers = 1  # SQLite takes one writer at a time: more processes would only wait
    report = bulk.ImportReport()
    console = Console(stderr=True)
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    ) as progress:
        task = progress.add_task("import", total=len(lines))
        parallel_import.run(
            caller,
            lines,
            report,
            workers=workers or os.cpu_count() or 1,
            batch=BATCH,
            advance=lambda done: progress.advance(task, done),
        )
    bulk.after_load(report.created + report.updated)
    typer.echo(
        f"read {report.read}: created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}, rejected {len(report.errors)}"
    )
    for error in report.errors[:50]:
        typer.echo(f"{error.source}:{error.line}: {describe(error.issues[0])}", err=True)
    if len(report.errors) > 50:
        typer.echo(f"... and {len(report.errors) - 50} more rejected lines", err=True)
    if report.errors:
        raise typer.Exit(1)


jobs_app = typer.Typer(name="import-jobs", help="Asynchronous $import jobs.", no_args_is_help=True)


@jobs_app.command("resume")
def resume_command(job_id: str = typer.Argument(..., help="The job's id")) -> None:
    """Queue a failed $import job (or one whose worker died) again: it goes on after its
    last committed batch. With no broker it runs here and now. Prints the job's id,
    status and progress; exit 1 unless it completed (or, with a broker, was queued)."""
    from exchange import import_jobs
    from exchange.models import ImportJob
    from puente.audit import service as audit
    from puente.cli.common import actor
    from puente.db import unit_of_work

    try:
        with unit_of_work() as session:
            job = import_jobs.resume(session, None, job_id=job_id)
            audit.append(
                session,
                event_type="rest",
                subtype="operation",
                action="U",
                agent=actor(),
                entities=[f"$import/{job.id}"],
            )
            resumed = job.id
    except PuenteError as exc:
        fail(exc)
    with unit_of_work() as session:
        found = session.get(ImportJob, resumed)
        assert found is not None
        status, done, total = found.status, found.lines_done, found.lines_total
    typer.echo(f"{resumed}\t{status}\t{done} of {total} lines")
    if status not in (import_jobs.COMPLETED, import_jobs.QUEUED, import_jobs.RUNNING):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.add_typer(jobs_app)
