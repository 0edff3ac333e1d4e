"""The collector's FastAPI application: OTLP receiver, query API, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from canarytrace import __version__
from canarytrace.collector import (
    api_routes,
    compare_route,
    dashboard_route,
    ingest_routes,
    rollout_routes,
)
from canarytrace.collector.metrics import CONTENT_TYPE_LATEST
from canarytrace.collector.settings import Settings
from canarytrace.collector.state import Collector, collector_of

SPOOL_READY_BELOW = 0.9


def create_app(settings: Settings, collector: Collector | None = None) -> FastAPI:
    """The app for ``settings``, serving ``collector`` (started with the app when None).

    The app stops the collector (last flush, spool closed, store closed) when it shuts down.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.collector = collector or await run_in_threadpool(Collector.start, settings)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.collector.stop)

    app = FastAPI(title="canarytrace collector", version=__version__, lifespan=lifespan)
    app.include_router(ingest_routes.router)
    app.include_router(api_routes.router)
    app.include_router(compare_route.router)
    app.include_router(rollout_routes.router)
    app.include_router(dashboard_route.router)

    @app.exception_handler(ClickHouseError)
    async def store_unavailable(request: Request, exc: ClickHouseError) -> JSONResponse:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse({"detail": f"store unavailable: {first_line}"}, status_code=503,
                            headers={"Retry-After": str(ingest_routes.RETRY_AFTER_S)})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        """Ready when the store answers, the writer runs and the spool is under 90% full."""
        collector = collector_of(request)
        checks = {"store": collector.store.ping(), "writer": collector.writer.alive,
                  "spool_has_room": collector.spool.usage < SPOOL_READY_BELOW}
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, **checks}, status_code=status)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        return Response(collector_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
