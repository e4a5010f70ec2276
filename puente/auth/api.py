"""OAuth2 endpoints: token (client credentials, authorization code), authorize, login."""

from __future__ import annotations

from fastapi import APIRouter

from puente.web import TransactionalRoute

router = APIRouter(prefix="/auth", route_class=TransactionalRoute, tags=["Authorization"])
