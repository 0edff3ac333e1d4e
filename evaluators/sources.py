"""Where an evaluation run reads spans and writes results: a Store, or a running collector.

Both backends speak the collector's span filter vocabulary (``llm_only``, ``operation``,
``pair_id``, ``since``, ``until``, ...), so the worker asks for spans the same way from
either. ``StoreSource`` opens ClickHouse directly (``--store``; needs the collector
extra); ``CollectorSource`` goes through the collector's HTTP API (``--collector``), the
only way in while ``canarytrace serve`` owns an embedded store.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from canarytrace.evaluators.base import JUDGE_ERROR, SpanRecord

if TYPE_CHECKING:
    from canarytrace.store.client import Store

EVAL_PAGE_LIMIT = 10_000
SERVER_FILLED = frozenset({"Project", "Timestamp", "SpanTimestamp"})
"""eval_results columns the collector fills in itself (the API refuses Project)."""


class SourceError(RuntimeError):
    """The store or collector could not be read or written; the message says why."""


class TraceNotFound(SourceError):
    """The collector has no span of this trace."""


@dataclass(frozen=True)
class Window:
    """Spans whose start time is in [since, until); ``until`` None is open-ended."""

    since: datetime
    until: datetime | None = None

    def filters(self) -> dict[str, datetime]:
        bounds = {"since": self.since, "until": self.until}
        return {name: value for name, value in bounds.items() if value is not None}


class Source(Protocol):
    """Spans in, eval results out, for one project."""

    project: str

    def span_pages(self, filters: Mapping[str, Any], page_size: int) -> Iterator[list[SpanRecord]]:
        """Pages of the spans matching the collector's span ``filters``, by start time."""
        ...

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of one trace."""
        ...

    def scored_span_ids(self, evaluator: str, version: str, window: Window) -> set[str]:
        """Ids of the spans in ``window`` this evaluator version has already scored."""
        ...

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store eval_results rows (re-writing a (span, evaluator, version) replaces it)."""
        ...

    def close(self) -> None: ...


def span_record(row: Mapping[str, Any]) -> SpanRecord:
    """A span row, as the Store and the API return it, as evaluators see it."""
    return SpanRecord(
        trace_id=row["TraceId"], span_id=row["SpanId"],
        attributes=row.get("SpanAttributes") or {},
        parent_span_id=row.get("ParentSpanId", ""), name=row.get("SpanName", ""),
        timestamp_ns=int(row.get("TimestampNs") or 0), duration_ns=int(row.get("Duration") or 0),
        service_name=row.get("ServiceName", ""), status_code=row.get("StatusCode", ""),
        project=row.get("Project", ""), model=row.get("Model", ""),
        variant=row.get("Variant", ""), role=row.get("Role", ""), pair_id=row.get("PairId", ""),
        route=row.get("Route", ""), cohort=row.get("Cohort", ""))


# --- direct: a Store this process owns ------------------------------------------------------

class StoreSource:
    """Reads and writes one project of a Store in this process (``canarytrace serve`` or
    ``evaluate --store``)."""

    def __init__(self, store: Store, project: str) -> None:
        self.store, self.project = store, project

    @staticmethod
    def projects(store: Store) -> list[str]:
        """Every project that has spans in the store."""
        rows = store.query(f"SELECT DISTINCT Project FROM {store.table('otel_traces')} "
                           "ORDER BY Project")
        return [row["Project"] for row in rows]

    def span_pages(self, filters: Mapping[str, Any], page_size: int) -> Iterator[list[SpanRecord]]:
        from canarytrace.store.queries import PageRequest, SpanFilter

        span_filter, cursor = SpanFilter(**filters), None
        while True:
            page = self.store.query_spans(self.project, span_filter,
                                          PageRequest(limit=page_size, cursor=cursor))
            yield [span_record(row) for row in page.rows]
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def trace(self, trace_id: str) -> list[SpanRecord]:
        return [span_record(row) for row in self.store.get_trace(self.project, trace_id)]

    def scored_span_ids(self, evaluator: str, version: str, window: Window) -> set[str]:
        from canarytrace.store.queries import EvalFilter, eval_conditions

        conditions = eval_conditions(self.project, EvalFilter(
            evaluator=evaluator, evaluator_version=version, **window.filters()))
        conditions.add("Label != {provisional:String}", provisional=JUDGE_ERROR)
        rows = self.store.query(f"SELECT DISTINCT SpanId FROM {self.store.table('eval_results')} "
                                f"WHERE {conditions.sql()}", conditions.parameters)
        return {row["SpanId"] for row in rows}

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.store.insert_eval_results(rows)

    def close(self) -> None:
        """The store belongs to whoever opened it; nothing to release here."""


def open_store(url: str) -> Store:
    """Open (and migrate) the store at ``url``; raises SourceError with one clear line."""
    try:
        from canarytrace.store.client import Store
        from canarytrace.store.location import chdb_path, resolve_store_url
    except ModuleNotFoundError as exc:
        raise SourceError(f"--store needs the 'collector' extra (missing module {exc.name!r}): "
                          "pip install 'canarytrace[collector]', or use --collector URL") from None
    url = resolve_store_url(url)
    path = chdb_path(url)
    if path is not None and not path.is_dir():
        raise SourceError(f"no store at {path} (give --store chdb:///path/to/db, or "
                          "--collector URL)")
    failure = None
    with _native_stderr() as native:
        try:
            store = Store.from_url(url)
            store.migrate()
        except Exception as exc:  # noqa: BLE001 - reported as one line
            failure = exc
    if failure is None:
        sys.stderr.write(native.text)
        return store
    if path is not None and "Cannot lock file" in native.text:
        raise SourceError(f"store {path} is in use by another process (chDB lets one process "
                          "open a directory): while 'canarytrace serve' runs on it, use "
                          "--collector URL")
    raise SourceError(f"cannot open store {url}: {_first_line(failure)}")


class _Captured:
    text = ""


@contextmanager
def _native_stderr() -> Iterator[_Captured]:
    """Capture what native code (chDB) writes to file descriptor 2 during the block, so a
    failure to open a store can be reported as one line."""
    captured, saved = _Captured(), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- through a running collector's HTTP API ------------------------------------------------

def _query_value(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CollectorSource:
    """Reads spans and writes eval results through a collector's API; the API key (if any)
    picks the project."""

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 timeout_s: float = 60.0, project: str = "") -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.project = project or "(the API key's project)"
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach the collector at {self.base_url}: {exc}") from exc
        if response.status_code == 404 and path.startswith("/api/traces/"):
            raise TraceNotFound(path)
        if response.status_code >= 400:
            raise SourceError(f"{method} {path} answered {response.status_code}: "
                              f"{_error_text(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise SourceError(f"{method} {path} did not answer JSON: is {self.base_url} a "
                              "canarytrace collector?") from exc

    def _pages(self, path: str, key: str,
               params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
        while True:
            body = self._request("GET", path, params=params)
            yield body[key]
            if not body.get("next_cursor"):
                return
            params = {**params, "cursor": body["next_cursor"]}

    def span_pages(self, filters: Mapping[str, Any], page_size: int) -> Iterator[list[SpanRecord]]:
        params = {name: _query_value(value) for name, value in filters.items()}
        for rows in self._pages("/api/spans", "spans", {**params, "limit": str(page_size)}):
            yield [span_record(row) for row in rows]

    def trace(self, trace_id: str) -> list[SpanRecord]:
        try:
            body = self._request("GET", f"/api/traces/{trace_id}")
        except TraceNotFound:
            return []
        return [span_record(row) for row in body["spans"]]

    def scored_span_ids(self, evaluator: str, version: str, window: Window) -> set[str]:
        params = {"evaluator": evaluator, "evaluator_version": version,
                  "limit": str(EVAL_PAGE_LIMIT),
                  **{name: _query_value(value) for name, value in window.filters().items()}}
        return {row["SpanId"] for rows in self._pages("/api/eval_results", "eval_results", params)
                for row in rows if row.get("Label") != JUDGE_ERROR}

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """POST the rows; the collector stamps the project (from the key) and the scoring
        time, and copies the span's exact start time."""
        payload = [{k: v for k, v in row.items() if k not in SERVER_FILLED} for row in rows]
        if payload:
            self._request("POST", "/api/eval_results", json=payload)

    def close(self) -> None:
        self.client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
