"""The `puente` command: one console script for operators, CI and the demo.

Exit codes: 0 success, 1 the work failed, 2 usage (typer/click's own).
"""

from __future__ import annotations

import typer

from puente.cli import accounts, audit, consent, exchange, matcher, matching, outbox, server

app = typer.Typer(
    name="puente",
    help="Puente: cross-border health record exchange (Ciudad Juárez - El Paso).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
server.register(app)
accounts.register(app)
audit.register(app)
exchange.register(app)
outbox.register(app)
matching.register(app)
matcher.register(app)
consent.register(app)


def main() -> None:
    app()
