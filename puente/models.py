"""Every table of every domain, imported once so that Alembic and tests see all metadata."""

from consent import models as consent_models
from exchange import models as exchange_models
from exchange.matching import models as matching_models
from puente.audit import models as audit_models
from puente.auth import models as auth_models
from puente.db import Base
from puente.notify import models as notify_models

__all__ = [
    "Base",
    "audit_models",
    "auth_models",
    "consent_models",
    "exchange_models",
    "matching_models",
    "notify_models",
]
