"""Stored scoring models: the shipped default seeded when none is stored, trained ones
added by `puente matcher train`, and the one active model every score uses."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from exchange.matching import model as model_module
from exchange.matching.errors import ModelNotFound
from exchange.matching.models import MatchModel
from puente.db import utcnow

_cache: dict[str, model_module.Model] = {}
_lock = threading.Lock()


def _metrics_of(document: dict[str, Any]) -> dict[str, Any]:
    puente = document.get("puente") or {}
    metrics = puente.get("metrics") or puente.get("training_metrics") or {}
    return dict(metrics) if isinstance(metrics, dict) else {}


def store(session: Session, found: model_module.Model, *, active: bool = False) -> MatchModel:
    """Keep `found` (a new version); it scores nothing until activated."""
    document = found.to_json()
    row = session.get(MatchModel, found.version)
    if row is None:
        row = MatchModel(
            version=found.version,
            document=document,
            created_at=utcnow(),
            active=False,
            metrics=_metrics_of(document),
        )
        session.add(row)
        session.flush()
    if active:
        activate(session, version=found.version)
    return row


def activate(session: Session, *, version: str) -> MatchModel:
    row = session.get(MatchModel, version)
    if row is None:
        raise ModelNotFound(version=version[:64])
    session.execute(update(MatchModel).where(MatchModel.version != version).values(active=False))
    row.active = True
    session.flush()
    return row


def listed(session: Session) -> list[MatchModel]:
    return list(session.scalars(select(MatchModel).order_by(MatchModel.created_at)))


def _parsed(session: Session, version: str) -> model_module.Model | None:
    """The stored model `version`, parsed once per process (its document is large)."""
    with _lock:
        found = _cache.get(version)
    if found is not None:
        return found
    row = session.get(MatchModel, version)
    if row is None:
        return None
    found = model_module.from_json(row.document)
    with _lock:
        _cache[version] = found
    return found


def active(session: Session) -> model_module.Model:
    """The active model; the shipped default, stored and activated, when none is stored."""
    version = session.scalars(select(MatchModel.version).where(MatchModel.active.is_(True))).first()
    found = _parsed(session, version) if version is not None else None
    if found is not None:
        return found
    shipped = model_module.default()
    if session.scalar(select(MatchModel.version).limit(1)) is None:
        # Seeding in a savepoint: two first writers may race; the loser's insert fails
        # and it uses the shipped model, which is the same one.
        try:
            with session.begin_nested():
                store(session, shipped, active=True)
        except IntegrityError:  # a concurrent seed: the default it stored is this one
            pass
    return shipped
