"""`puente system add`, `app add`, `user add`, `token`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app
