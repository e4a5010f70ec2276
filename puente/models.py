"""Every table of every domain, imported once so that Alembic and tests see all metadata."""

from exchange import models as exchange_models
from exchange.matching import models as matching_models
from puente.audit import models as audit_models
from puente.auth import models as auth_models
from puente.db import Base

__all__ = ["Base", "audit_models", "auth_models", "exchange_models", "matching_models"]
