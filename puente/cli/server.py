"""`puente migrate`, `serve`, `worker`, `beat`, `demo`."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import typer
from pydantic import ValidationError

from puente.settings import Settings, get_settings


def _settings() -> Settings:
    """The settings, or one JSON log line naming what is wrong with them and exit 1 (a
    container that will not start says why in the same format as everything else)."""
    try:
        return get_settings()
    except ValidationError as exc:
        from puente.logs import configure

        configure()
        problems = [_problem(error["loc"], error["msg"]) for error in exc.errors()]
        logging.getLogger("puente.settings").error("settings_refused", extra={"problems": problems})
        raise typer.Exit(1) from None


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    text = msg.removeprefix("Value error, ")
    return f"PUENTE_{str(loc[0]).upper()}: {text}" if loc else text


def migrate() -> None:
    """Upgrade the database to the newest schema."""
    from puente.migrate import upgrade

    upgrade(_settings().database_url)
    typer.echo("database at head")


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    """Uvicorn drains in-flight requests on SIGTERM/SIGINT, then restores this handler and
    raises the signal again: a stop that was asked for ends with exit 0, not "killed by
    SIGTERM" (143) or a KeyboardInterrupt traceback. Before uvicorn runs, it stops at once."""
    del signum, frame
    raise SystemExit(0)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
    workers: int = typer.Option(1, help="Worker processes"),
) -> None:
    """Serve the API (uvicorn; SIGTERM drains in-flight requests, then exits 0)."""
    import uvicorn

    from puente.logs import configure, logging_config

    settings = _settings()
    configure(settings.log_level)
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stop_requested)
    uvicorn.run(
        "puente.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=logging_config(settings.log_level),
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


def _celery_logs_as_json(level: str) -> None:
    """Celery sets up plain-text logging of its own unless a receiver answers its
    `setup_logging` signal; answer it with Puente's JSON lines."""
    from celery.signals import setup_logging

    from puente.logs import configure

    def _configure(**_: object) -> None:
        configure(level)

    setup_logging.connect(_configure, weak=False)
    configure(level)


def worker(
    concurrency: int = typer.Option(2, help="Worker processes"),
    pool: str = typer.Option("prefork", help="prefork, threads or solo"),
) -> None:
    """Run a Celery worker (needs PUENTE_BROKER_URL)."""
    from puente.tasks import celery_app

    settings = _settings()
    if not settings.broker_url:
        typer.echo("PUENTE_BROKER_URL is not set: tasks already run in-process", err=True)
        raise typer.Exit(1)
    _celery_logs_as_json(settings.log_level)
    celery_app.worker_main(
        [
            "--quiet",  # no banner: every line on stderr is JSON
            "worker",
            "--loglevel",
            settings.log_level,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def beat() -> None:
    """Run Celery beat: the audit sealer and housekeeping on their schedules."""
    from puente.tasks import celery_app

    settings = _settings()
    if not settings.broker_url:
        typer.echo("PUENTE_BROKER_URL is not set: nothing to schedule onto", err=True)
        raise typer.Exit(1)
    _celery_logs_as_json(settings.log_level)
    Path("var").mkdir(exist_ok=True)
    celery_app.start(
        [
            "--quiet",
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            "var/celerybeat-schedule",
        ]
    )


def demo(
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve after loading"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Migrate, load the demo scenario once, print accounts and calls, serve."""
    from demo.scenario import run

    settings = _settings()
    if not settings.is_development:
        typer.echo("the demo runs in development mode only", err=True)
        raise typer.Exit(1)
    migrate()
    run()
    if serve_after:
        serve(host=host, port=port, workers=1)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
    app.command()(serve)
    app.command()(worker)
    app.command()(beat)
    app.command()(demo)
