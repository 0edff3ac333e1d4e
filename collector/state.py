"""The running collector's parts, built from Settings and shared by the HTTP routes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from fastapi import HTTPException, Request

from canarytrace.collector.evaluation_loop import EvaluationLoop, loop_from_settings
from canarytrace.collector.keys import KeyRing, Unauthorized
from canarytrace.collector.metrics import CollectorMetrics
from canarytrace.collector.prepare import Preparer, default_workers
from canarytrace.collector.rows import Limits
from canarytrace.collector.settings import Settings
from canarytrace.collector.spool import Spool
from canarytrace.collector.store_state import adopt_legacy_keys, adopt_legacy_spool
from canarytrace.collector.writer import Writer
from canarytrace.store.client import Store


@dataclass
class Collector:
    settings: Settings
    store: Store
    spool: Spool
    writer: Writer
    keys: KeyRing
    metrics: CollectorMetrics
    preparer: Preparer
    evaluation: EvaluationLoop | None = None

    @classmethod
    def start(cls, settings: Settings) -> Collector:
        """Open the store (migrating it), replay the spool, start the writer and the evaluation.

        A failure part way (a bad evaluation setting, an unwritable spool) closes what was
        opened and raises; ValueError means a bad setting.
        """
        with contextlib.ExitStack() as opened:
            store = Store.from_url(settings.store_url, settings.database, settings.cluster,
                                   settings.ttl_days)
            opened.callback(store.close)
            store.migrate()
            evaluation = loop_from_settings(store, settings)
            adopt_legacy_spool(settings)
            spool = Spool(settings.spool_path, settings.spool_max_bytes)  # or SpoolLocked
            opened.callback(spool.close)
            metrics = CollectorMetrics()
            metrics.watch_spool(lambda: spool.size_bytes, lambda: spool.pending_segments)
            writer = Writer(spool, store, metrics, settings.flush_rows, settings.flush_interval_s)
            limits = Limits(settings.max_attribute_length, settings.max_attributes_per_span,
                            settings.max_attribute_key_length, settings.max_json_depth)
            workers = default_workers() if settings.ingest_workers is None \
                else settings.ingest_workers
            adopt_legacy_keys(settings)
            keys = KeyRing(settings.keys_path, settings.auth, settings.auth_markers)
            collector = cls(settings, store, spool, writer, keys, metrics,
                            Preparer(limits, workers, settings.ingest_fast_path), evaluation)
            opened.pop_all()
        writer.start()
        if evaluation is not None:
            evaluation.start()
        return collector

    def stop(self) -> None:
        if self.evaluation is not None:
            self.evaluation.stop()
        self.preparer.close()
        self.writer.stop(drain=True)
        self.spool.close()
        self.store.close()


def collector_of(request: Request) -> Collector:
    return request.app.state.collector


def project_of(request: Request) -> str:
    """The project the request's API key grants (FastAPI dependency; 401 without a valid key)."""
    try:
        return collector_of(request).keys.project_for(request.headers.get("authorization"))
    except Unauthorized as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
