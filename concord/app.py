"""create_app(): the web pages, /api and /fhir, with error handlers and security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker

from concord.accounts.routes import router as accounts_router
from concord.appointments.api import router as appointments_api
from concord.appointments.routes import router as appointments_router
from concord.audit.routes import router as audit_router
from concord.careplans.api import router as careplans_api
from concord.careplans.routes import router as careplans_router
from concord.cds.routes import router as cds_router
from concord.consents.api import router as consents_api
from concord.consents.routes import router as consents_router
from concord.db import make_engine, make_sessionmaker
from concord.decisions.aids import all_aids
from concord.decisions.api import router as decisions_api
from concord.decisions.routes import router as decisions_router
from concord.ehr.api import router as ehr_api
from concord.ehr.routes import router as ehr_router
from concord.fhir.bulk import BulkSchedule
from concord.fhir.routes import router as fhir_router
from concord.i18n import SUPPORTED, translations
from concord.measures.api import router as measures_api
from concord.measures.library import library
from concord.measures.routes import router as measures_router
from concord.medications.api import router as medications_api
from concord.medications.routes import router as medications_router
from concord.messaging.api import router as messaging_api
from concord.messaging.routes import router as messaging_router
from concord.notifications.api import router as notifications_api
from concord.notifications.routes import router as notifications_router
from concord.outbox import mailer_from_settings
from concord.patients.api import router as patients_api
from concord.patients.routes import router as patients_router
from concord.quality.routes import api as quality_api
from concord.quality.routes import router as quality_router
from concord.registry.api import router as registry_api
from concord.registry.routes import router as registry_router
from concord.safety.api import router as safety_api
from concord.safety.routes import router as safety_router
from concord.settings import Environment, Settings, get_settings
from concord.smart.routes import router as smart_router
from concord.smart.service import registered_origins
from concord.social.api import router as social_api
from concord.social.routes import router as social_router
from concord.substance.api import router as substance_api
from concord.substance.routes import router as substance_router
from concord.web import errors
from concord.web.errors import API_ERRORS, FHIR_ERRORS, declare_answers
from concord.web.headers import SecurityHeaders
from concord.web.limits import RequestLimits
from concord.web.routes import router as web_router
from concord.worker import AnchorSchedule, Worker

STATIC_DIR = Path(__file__).parent / "web" / "static"
from concord.disclosures import log as _disclosure_log  # noqa: F401 (registers the listener)
from concord.disclosures.api import router as disclosures_api
from concord.disclosures.routes import router as disclosures_router
from concord.part2.api import router as part2_api
from concord.part2.routes import router as part2_router


def create_app(
    settings: Settings | None = None, session_factory: sessionmaker[Session] | None = None
) -> FastAPI:
    settings = settings or get_settings()
    owned_engine = None
    if session_factory is None:
        engine = owned_engine = make_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        session_factory = make_sessionmaker(engine)

    run_worker = settings.worker_in_process
    if run_worker is None:
        run_worker = settings.is_sqlite and settings.env != Environment.test

    freeze = settings.freeze_heap
    if freeze is None:
        freeze = settings.env != Environment.test

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        if freeze:
            _freeze_heap()
        worker = None
        if run_worker:
            worker = Worker(
                session_factory,
                mailer_from_settings(),
                settings.base_url,
                anchor=AnchorSchedule.from_settings(settings),
                bulk=BulkSchedule.from_settings(settings),
            )
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        # Close the pool this app opened, so no connection outlives the process's app.
        if owned_engine is not None:
            owned_engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="Concord API",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        description="Collaborative treatment planning. Authenticate with "
        "`Authorization: Bearer <token>` (create one with `concord token create --email E`).",
    )
    app.state.settings = settings
    app.state.sessionmaker = session_factory
    slots = database_slots(session_factory)
    if settings.request_threads <= slots:
        raise ValueError(
            f"CONCORD_REQUEST_THREADS ({settings.request_threads}) must be more than the "
            f"requests let into the database at once ({slots}, the pool size)"
        )
    app.state.database_slots = anyio.Semaphore(slots)

    errors.install(app)

    # Inside the security headers, so a refused body's answer carries them too.
    app.add_middleware(RequestLimits, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        SecurityHeaders,
        secure_cookies=settings.secure_cookies,
        origins=lambda: registered_origins(app.state.sessionmaker),
    )
    if settings.trusted_proxy_list:
        # The client's address (sign-in throttling, the audit trail, sessions) comes from
        # X-Forwarded-For only when the request came from a configured proxy; the servers
        # Concord starts leave these headers alone (concord.server.run).
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # A request is matched against each route in turn (over 200), and a router's prefix does
    # not let the matcher skip it, so the order is by traffic: the health check and programs
    # (FHIR, /api) before the pages people open. No two routers share a path.
    # The OpenAPI document (/api/docs) describes the API and FHIR, with the error bodies the
    # API really answers; the pages are not part of it.
    apis = (
        fhir_router,
        patients_api,
        careplans_api,
        measures_api,
        safety_api,
        registry_api,
        decisions_api,
        consents_api,
        disclosures_api,
        part2_api,
        medications_api,
        messaging_api,
        ehr_api,
        quality_api,
        social_api,
        substance_api,
        appointments_api,
        notifications_api,
    )
    for router in (
        web_router,
        # Before /fhir: its /fhir/.well-known/smart-configuration would otherwise be read as
        # a resource type and id.
        smart_router,
        fhir_router,
        patients_api,
        careplans_api,
        measures_api,
        safety_api,
        registry_api,
        decisions_api,
        consents_api,
        disclosures_api,
        part2_api,
        cds_router,
        medications_api,
        substance_api,
        messaging_api,
        ehr_api,
        quality_api,
        appointments_api,
        notifications_api,
        accounts_router,
        patients_router,
        careplans_router,
        measures_router,
        safety_router,
        registry_router,
        quality_router,
        decisions_router,
        consents_router,
        disclosures_router,
        part2_router,
        medications_router,
        substance_router,
        messaging_router,
        ehr_router,
        social_router,
        social_api,
        appointments_router,
        notifications_router,
        audit_router,
    ):
        app.include_router(
            router,
            include_in_schema=router in apis,
            responses={"/api/v1": API_ERRORS, "/fhir": FHIR_ERRORS}.get(router.prefix),
        )
    declare_answers(app)
    return app


def database_slots(factory: sessionmaker[Session]) -> int:
    """How many requests of this process may work in the database at once (concord.web.deps.db):
    the pool's size (on PostgreSQL `CONCORD_DB_POOL_SIZE`, on SQLite SQLAlchemy's 5), leaving
    the pool's overflow for what a request opens beside its own session (the audit trail of a
    refused request) and for the worker. It must stay below the request threads."""
    bind = factory.kw["bind"]  # an Engine, or in tests a Connection
    size = getattr(bind.engine.pool, "size", None)
    return max(1, size()) if callable(size) else 10


def _freeze_heap() -> None:
    """Load what every request uses (content libraries, translations), then gc.freeze(): the
    long-lived objects leave the collector's generations, so a full collection scans only
    what requests create. Measured on the caseload page (bench/caseload.py): a full collection
    every few requests took ~110 ms before, ~15 ms after."""
    import gc

    library()
    all_aids()
    for lang in SUPPORTED:
        translations(lang)
    gc.collect()
    gc.freeze()
