"""The ASGI application: routes, error handlers, and the database for the app's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from fhir_server.api.auth_routes import auth_router, oidc_root_router
from fhir_server.api.bulk_routes import bulk_router
from fhir_server.api.conformance_routes import conformance_router
from fhir_server.api.http import error_response, json_response
from fhir_server.api.middleware import AccessLog
from fhir_server.api.operation_routes import operation_router
from fhir_server.api.routes import Services, router
from fhir_server.auth.access import Access
from fhir_server.auth.audit import MINOR_FAILURE, AuditTrail
from fhir_server.auth.labels import POLICY_INDEXES
from fhir_server.auth.matrix import load_matrix
from fhir_server.auth.setup import build_auth
from fhir_server.auth.store import purge_loop
from fhir_server.bulk.jobs import Jobs
from fhir_server.bulk.worker import ExportWorker, worker_pool
from fhir_server.config import Settings
from fhir_server.dmp.staging import ensure_staging_indexes
from fhir_server.fhir.bundle import BundleProcessor
from fhir_server.fhir.errors import BadRequest, FhirError, MethodNotAllowed, NotFound
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.rest import ResourceService
from fhir_server.fhir.searchset import SearchOptions
from fhir_server.search.engine import SearchEngine
from fhir_server.search.index import index_specs
from fhir_server.storage.client import Mongo
from fhir_server.storage.launcher import database
from fhir_server.storage.repository import Repository

log = logging.getLogger("fhir_server")


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route accepts at this path (for the ``Allow`` header of a 405)."""
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    ]


_INTERACTION_OF = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _patient_in(path: str) -> list[str]:
    """The patient a refused URL names (``…/Patient/<id>…``), for the refusal's trace."""
    parts = path.split("/")
    if "Patient" in parts:
        i = parts.index("Patient")
        if i + 1 < len(parts) and parts[i + 1] and not parts[i + 1].startswith(("$", "_")):
            return [parts[i + 1]]
    return []


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the database is reached (or started) when the app starts."""
    settings = settings or Settings()
    # Before anything starts: a bad habilitation matrix stops the server with the entry at fault.
    matrix = load_matrix(settings.terminology_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database(settings) as db:
            mongo = Mongo(db.uri, settings.mongo_db)
            try:
                indexes = index_specs(SERVED_TYPES)
                for rtype, extra in POLICY_INDEXES.items():
                    indexes[rtype] = [*indexes.get(rtype, []), *extra]
                await mongo.open(indexes)
                await ensure_staging_indexes(mongo)
                repo = Repository(mongo)
                app.state.audit_trail = AuditTrail(repo)
                engine = SearchEngine(
                    repo, settings.fhir_base, settings.page_link_ttl, settings.max_chain_matches
                )
                resources = ResourceService(
                    repo,
                    engine,
                    allow_invisible_and_masked=matrix.allow_invisible_and_masked,
                    retention_years=settings.dmp_retention_years,
                    history_months=settings.reimbursement_history_months,
                )
                options = SearchOptions(settings.default_page_size, settings.max_page_size)
                bundles = BundleProcessor(resources, settings.fhir_base, options, settings.max_bundle_entries)
                app.state.services = Services(settings, repo, engine, resources, bundles)
                app.state.mongo = mongo
                app.state.auth = await build_auth(settings, mongo.db)
                if not settings.auth:
                    log.warning("authorization is OFF (--insecure-no-auth): every request has full access")
                jobs = Jobs(mongo, settings.export_path, settings.export_lease)
                await jobs.ensure_indexes()
                app.state.export_jobs = jobs
                workers = [
                    ExportWorker(repo, engine, matrix, settings, jobs) for _ in range(settings.export_workers)
                ]
                purger = asyncio.create_task(purge_loop(mongo.db, settings.purge_interval))
                try:
                    async with worker_pool(workers):
                        yield
                finally:
                    purger.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await purger
            finally:
                await mongo.close()

    app = FastAPI(title="dmp-fhir", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.matrix = matrix
    # The authorization server's paths and the $operations first: the FHIR router's /{rtype}/{rid}
    # would catch them.
    app.include_router(auth_router, prefix="/fhir")
    app.include_router(oidc_root_router)
    app.include_router(operation_router, prefix="/fhir")
    app.include_router(conformance_router, prefix="/fhir")
    app.include_router(bulk_router, prefix="/fhir")
    app.include_router(router, prefix="/fhir")

    @app.get("/health")
    async def health(request: Request) -> Response:
        ok = await request.app.state.mongo.ping()
        return json_response(request, {"status": "ok" if ok else "database unreachable"}, 200 if ok else 503)

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        access = getattr(request.state, "access", None)
        if exc.status == 403 and isinstance(access, Access) and access.audit is not None:
            # Refusals are traced too (a blocked professional's attempt is the patient's business).
            try:
                await access.audit.record(
                    _INTERACTION_OF.get(request.method, "operation"),
                    _patient_in(request.url.path),
                    outcome=MINOR_FAILURE,
                    description=f"refused {request.method} {request.url.path}: {exc}",
                )
            except Exception:
                log.exception("could not trace a refusal of %s %s", request.method, request.url.path)
                return error_response(request, FhirError("internal error; the request changed nothing"))
        return error_response(request, exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            allowed = ", ".join(allowed_methods(request.app, request.scope))
            error = MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}", headers={"Allow": allowed}
            )
            return error_response(request, error)
        return error_response(request, NotFound(f"no FHIR endpoint at {request.url.path}"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, BadRequest(str(exc)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request, FhirError("internal error; the request changed nothing"))

    app.add_middleware(AccessLog, enabled=settings.access_log)
    return app
