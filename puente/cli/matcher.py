"""`puente matcher train [--out FILE]`, `puente matcher activate VERSION`, `puente matcher list`.

A trained model is stored inactive: every score keeps using the active one until an
operator activates the new version (after looking at its metrics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

matcher_app = typer.Typer(
    name="matcher", help="The patient matcher's scoring models.", no_args_is_help=True
)


@matcher_app.command("train")
def train_command(
    out: Annotated[
        Path | None, typer.Option(help="Also write the model JSON (Splink layout) here")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the u sampling and EM")] = 0,
) -> None:
    """Train a model on the stored Patients and the stewards' decisions; store it inactive."""
    from exchange.matching import training, versions
    from exchange.matching.train import train
    from puente.audit import service as audit
    from puente.cli.common import actor
    from puente.db import unit_of_work

    with unit_of_work() as session:
        base = versions.active(session)
        patients = training.patients(session)
        decisions = training.decisions(session)
    if len(patients) < 2:
        typer.echo("error: too few stored Patients to train on", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"training on {len(patients)} patients and {len(decisions)} steward decisions "
        f"(base model {base.version})",
        err=True,
    )
    trained = train(patients, base=base, decisions=decisions, seed=seed)
    with unit_of_work() as session:
        row = versions.store(session, trained)
        audit.append(
            session,
            event_type="mpi",
            subtype="model-train",
            action="C",
            agent=actor(),
            entities=[f"MatchModel/{row.version}"],
        )
        metrics = dict(row.metrics)
    if out is not None:
        out.write_text(json.dumps(trained.to_json(), indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"stored model {trained.version} (inactive); metrics: {json.dumps(metrics)}")
    typer.echo(f"use it with: puente matcher activate {trained.version}")


@matcher_app.command("activate")
def activate_command(version: Annotated[str, typer.Argument(help="The model version")]) -> None:
    """Score every match with this model version from now on, and score the existing
    automatic, pending and candidate pairs again with it (stewards' decisions stand; a link
    it no longer finds certain goes to review). Interrupted, run it again to finish."""
    from exchange.matching import versions
    from puente.audit import service as audit
    from puente.cli.common import actor, fail
    from puente.db import unit_of_work
    from puente.errors import PuenteError

    try:
        with unit_of_work() as session:
            versions.active(session)  # the shipped default is stored before any other
            versions.activate(session, version=version)
            audit.append(
                session,
                event_type="mpi",
                subtype="model-activate",
                action="U",
                agent=actor(),
                entities=[f"MatchModel/{version[:64]}"],
            )
    except PuenteError as exc:
        fail(exc)
    typer.echo(f"model {version} is active")
    _rescore(version)


def _rescore(version: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from exchange.matching import service, tasks
    from puente.db import unit_of_work

    console = Console(stderr=True)
    with Progress(
        TextColumn("rescoring"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("rescoring", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        records = tasks.rescore_all(advance)
    with unit_of_work() as session:
        summary = service.rescore_summary(session, version=version)
    changed = ", ".join(f"{status} {count}" for status, count in sorted(summary.items()))
    typer.echo(f"rescored the pairs of {records} records; scored again: {changed or 'none'}")


@matcher_app.command("list")
def list_command() -> None:
    """The stored models: version, created, active, metrics."""
    from rich.console import Console
    from rich.table import Table

    from exchange.matching import versions
    from puente.db import unit_of_work

    with unit_of_work() as session:
        versions.active(session)
        rows = [
            (r.version, r.created_at.isoformat(timespec="seconds"), r.active, dict(r.metrics))
            for r in versions.listed(session)
        ]
    table = Table("version", "created", "active", "metrics")
    for version, created, active, metrics in rows:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(metrics.items()))
        table.add_row(version, created, "yes" if active else "", shown)
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(matcher_app)
