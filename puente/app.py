"""The application factory: one FastAPI app with every domain's router."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from puente import __version__, middleware
from puente.fhir import handlers
from puente.settings import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Puente",
        version=__version__,
        summary="Cross-border health record exchange (Ciudad Juárez - El Paso), FHIR R4",
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    # Routers register their capabilities on import; import them here, not at module top,
    # so that `import puente` stays cheap for the CLI.
    from exchange.api import router as exchange_router
    from puente.audit.api import router as audit_router
    from puente.auth.api import router as auth_router
    from puente.fhir.api import router as fhir_router
    from puente.health import router as health_router

    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(fhir_router)
    app.include_router(audit_router)
    app.include_router(exchange_router)  # last: its routes are generic over resource types
    handlers.install(app)
    middleware.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Accept",
                "Accept-Language",
                "If-Match",
                "If-None-Exist",
                "Prefer",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "Location", "Content-Location", "X-Request-ID"],
        )
    return app
