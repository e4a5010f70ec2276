"""What every `puente` command shares: who ran it, and how a refused request ends."""

from __future__ import annotations

import getpass
from typing import NoReturn

import typer

from puente.errors import Issue, PuenteError
from puente.settings import get_settings
from translation.i18n import gettext


def actor() -> str:
    """Who ran the command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"[:254]
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def describe(issue: Issue) -> str:
    """An issue in the operator's words (PUENTE_DEFAULT_LOCALE)."""
    return gettext(get_settings().default_locale, issue.message_key, **issue.params)


def fail(exc: PuenteError) -> NoReturn:
    typer.echo(f"error: {describe(exc.issues[0])}", err=True)
    raise typer.Exit(1)
