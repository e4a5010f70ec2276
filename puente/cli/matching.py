"""`puente link MX.ndjson US.ndjson --out links.csv`: offline linkage with the `$match` scorer."""

from __future__ import annotations

import csv
import time
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
from puente.errors import InvalidRequest
from translation.i18n import N_


def _existing(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise typer.BadParameter("no such file", param_hint=hint)
    return path


def link_command(
    mx_file: Annotated[
        Path, typer.Argument(metavar="MX.ndjson", help="Mexican Patients, one per line")
    ],
    us_file: Annotated[Path, typer.Argument(metavar="US.ndjson", help="US Patients, one per line")],
    out: Annotated[Path, typer.Option(help="The CSV of links to write")],
    explain: Annotated[
        bool, typer.Option(help="Add each field's weight and the contradictions")
    ] = False,
    all_grades: Annotated[bool, typer.Option("--all", help="Add the possible pairs")] = False,
    model_file: Annotated[
        Path | None, typer.Option("--model", help="A model file (default: the shipped model)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes (default: CPU count, at most 2)")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
) -> None:
    """Link two files of FHIR Patients: writes mx_id,us_id,score,grade for certain and
    probable pairs (score: the match probability, as $match reports it); exit 1 if a line
    could not be read (the others are linked)."""
    from exchange.matching import linkage
    from exchange.matching import model as matching_model

    _existing(mx_file, "MX.ndjson")
    _existing(us_file, "US.ndjson")
    if model_file is None:
        model = matching_model.default()
    else:
        try:
            model = matching_model.loads(_existing(model_file, "--model").read_text("utf-8"))
        except matching_model.ModelError as exc:
            typer.echo(f"{model_file.name}: {exc}", err=True)
            fail(InvalidRequest(N_("matching.model_file_invalid")))
        except (OSError, UnicodeDecodeError):
            fail(InvalidRequest(N_("matching.model_file_invalid")))
    workers = workers or linkage.default_workers()
    started = time.perf_counter()
    total = linkage.count_lines(mx_file) + linkage.count_lines(us_file)
    with Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    ) as progress:
        reading = progress.add_task("normalising", total=total)
        (mx, us), errors = linkage.normalise(
            [mx_file, us_file], workers=workers, advance=lambda n: progress.advance(reading, n)
        )
        scoring = progress.add_task("scoring", total=len(mx))
        result = linkage.link(
            mx, us, model, include_possible=all_grades, workers=workers,
            advance=lambda n: progress.advance(scoring, n),
        )  # fmt: skip
    try:
        with out.open("w", encoding="utf-8", newline="") as sink:
            writer = csv.writer(sink)
            writer.writerow(linkage.header(explain=explain))
            writer.writerows(linkage.row(found, explain=explain) for found in result.links)
    except OSError:
        fail(InvalidRequest(N_("matching.link_output_unwritable")))
    counts = dict.fromkeys(("certain", "probable", "possible"), 0)
    for found in result.links:
        counts[found.grade] += 1
    written = ", ".join(f"{n} {grade}" for grade, n in counts.items() if n or grade != "possible")
    typer.echo(
        f"linked {len(mx)} x {len(us)} patients with model {model.version}: "
        f"{result.candidate_pairs} candidate pairs, {written} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    for error in errors[:50]:
        typer.echo(f"{error.source}:{error.line}: {describe(error.issue)}", err=True)
    if len(errors) > 50:
        typer.echo(f"... and {len(errors) - 50} more lines not read", err=True)
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("link")(link_command)
