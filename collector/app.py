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
    evaluation_routes,
    gate_routes,
    ingest_routes,
    pair_routes,
    rollout_metrics,
    rollout_routes,
    telemetry_routes,
)
from canarytrace.collector.metrics import CONTENT_TYPE_LATEST
from canarytrace.collector.settings import Settings
from canarytrace.collector.state import Collector, collector_of
from canarytrace.collector.telemetry_join import Joiner
from canarytrace.store.errors import Fault, classify, first_line

SPOOL_READY_BELOW = 0.9


def create_app(settings: Settings, collector: Collector | None = None) -> FastAPI:
    """The app for ``settings``, serving ``collector`` (started with the app when None).

    The app stops the collector (last flush, spool closed, store closed) when it shuts down.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.collector = collector or await run_in_threadpool(Collector.start, settings)
        app.state.joiner = Joiner(app.state.collector.store)
        app.state.joiner.start()
        try:
            yield
        finally:
            app.state.joiner.stop()
            await run_in_threadpool(app.state.collector.stop)

    app = FastAPI(title="canarytrace collector", version=__version__, lifespan=lifespan)
    app.include_router(ingest_routes.router)
    app.include_router(telemetry_routes.router)
    app.include_router(api_routes.router)
    app.include_router(evaluation_routes.router)
    app.include_router(compare_route.router)
    app.include_router(rollout_routes.router)
    app.include_router(gate_routes.router)
    app.include_router(pair_routes.router)
    app.include_router(dashboard_route.router)

    @app.exception_handler(ClickHouseError)
    async def store_error(request: Request, exc: ClickHouseError) -> JSONResponse:
        """400 when the request's own input made ClickHouse fail (a retry fails the same way),
        503 + Retry-After when the store is out, else 500."""
        fault, line = classify(exc), first_line(exc)
        if fault is Fault.REFUSED:
            return JSONResponse({"detail": f"the store refused this request: {line}"},
                                status_code=400)
        if fault is Fault.OUTAGE:
            return JSONResponse({"detail": f"store unavailable: {line}"}, status_code=503,
                                headers={"Retry-After": str(ingest_routes.RETRY_AFTER_S)})
        return JSONResponse({"detail": f"store error: {line}"}, status_code=500)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        """Ready when the store answers and takes inserts, the writer runs, and the spool is
        writable and under 90% full; ``outage`` says why inserts fail."""
        collector = collector_of(request)
        writer, spool = collector.writer, collector.spool
        checks = {"store": collector.store.ping(), "writer": writer.alive,
                  "store_accepts_inserts": writer.outage is None,
                  "spool_writable": spool.broken is None and spool.seal_error is None,
                  "spool_has_room": spool.usage < SPOOL_READY_BELOW}
        status = 200 if all(checks.values()) else 503
        reasons = {"outage": writer.outage} if writer.outage else {}
        if spool.broken is not None or spool.seal_error is not None:
            reasons["spool_error"] = str(spool.broken or spool.seal_error)
        return JSONResponse({"ready": status == 200, **checks, **reasons}, status_code=status)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        body = collector_of(request).metrics.render() + rollout_metrics.for_request(request)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
