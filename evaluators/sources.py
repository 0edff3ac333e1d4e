"""Where an evaluation run reads spans and writes results: a Store, or a running collector.

A run reads the window's LLM and agent spans in pages that follow the table's key, and for
each page asks once for its context: the base arms of its mirrored candidates, the traces
of its agent runs and which spans its evaluators already scored. ``StoreSource`` opens
ClickHouse directly (``--store``; needs the collector extra); ``CollectorSource`` goes
through the collector's bulk evaluation API (``--collector``), the only way in while
``canarytrace serve`` owns an embedded store. Both read the same rows, in the same compact
form: JSON arrays in ``SPAN_COLUMNS`` order.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from canarytrace.evaluators.base import JUDGE_ERROR, SpanRecord
from canarytrace.store.timestamps import NS_PER_S, to_ns

if TYPE_CHECKING:
    from canarytrace.store.client import Store

SPAN_COLUMNS = ("TimestampNs", "TraceId", "SpanId", "ParentSpanId", "SpanName", "ServiceName",
                "SpanAttributes", "Duration", "StatusCode", "Project", "Model", "Variant",
                "Role", "PairId", "Route", "Cohort")
"""The compact span row (canarytrace.store.scan.COLUMNS, which a test keeps equal)."""
RESULT_COLUMNS = ("SpanTimestamp", "TraceId", "SpanId", "ServiceName", "Evaluator",
                  "EvaluatorVersion", "Score", "Passed", "Label", "Reason", "Details", "Model",
                  "Variant", "Role", "PairId", "Route", "Cohort")
"""The compact eval result row a run writes (the store stamps Project and Timestamp)."""
WRITE_BYTES = 2 * 1024 * 1024
"""Largest results body sent at once (the collector's default body limit is 8 MiB)."""
_AT = {name: i for i, name in enumerate(SPAN_COLUMNS)}
_KEY = tuple(_AT[name] for name in ("ServiceName", "SpanName", "TimestampNs", "SpanId"))


class SourceError(RuntimeError):
    """The store or collector could not be read or written; the message says why."""


@dataclass(frozen=True)
class Window:
    """Spans whose start time is in [since, until); ``until`` None is open-ended."""

    since: datetime
    until: datetime | None = None

    def bounds_ns(self) -> tuple[int, int | None]:
        """[since, until) in nanoseconds since the epoch (naive times are UTC)."""
        return to_ns(self.since), None if self.until is None else to_ns(self.until)


@dataclass
class SpanPage:
    """One page of a window's spans; ``total`` (about how many spans the window holds) is
    set on the first page only."""

    spans: list[SpanRecord]
    total: int | None = None


@dataclass(frozen=True)
class ContextRequest:
    """What one page needs looked up; ``since_ns``/``until_ns`` bound its spans' start times."""

    since_ns: int
    until_ns: int
    pair_ids: tuple[str, ...] = ()
    """Pairs whose base arm is wanted."""
    trace_ids: tuple[str, ...] = ()
    """Traces whose every span is wanted (agent runs)."""
    span_ids: tuple[str, ...] = ()
    evaluators: tuple[tuple[str, str], ...] = ()
    """(name, version) pairs: which of ``span_ids`` each has already scored."""


@dataclass
class PageContext:
    partners: dict[str, list[SpanRecord]] = field(default_factory=dict)
    """Base arms by pair id."""
    traces: dict[str, list[SpanRecord]] = field(default_factory=dict)
    scored: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """Span ids already scored, by (evaluator, version); provisional judge_errors left out."""


class Source(Protocol):
    """Spans in, eval results out, for one project."""

    project: str

    def pages(self, window: Window, page_size: int, count: bool = False) -> Iterator[SpanPage]:
        """The window's LLM and agent spans, ``page_size`` at a time (copies dropped);
        ``count``: the first page says about how many there are."""
        ...

    def context(self, request: ContextRequest) -> PageContext:
        """One page's partners, traces and already-scored spans, in one round trip."""
        ...

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store eval_results rows (re-writing a (span, evaluator, version) replaces it)."""
        ...

    def close(self) -> None: ...


def span_record(row: Sequence[Any]) -> SpanRecord:
    """A compact span row (SPAN_COLUMNS order) as evaluators see it."""
    (timestamp_ns, trace_id, span_id, parent, name, service, attributes, duration, status,
     project, model, variant, role, pair_id, route, cohort) = row
    return SpanRecord(
        trace_id=trace_id, span_id=span_id, attributes=attributes or {}, parent_span_id=parent,
        name=name, timestamp_ns=int(timestamp_ns), duration_ns=int(duration),
        service_name=service, status_code=status, project=project, model=model,
        variant=variant, role=role, pair_id=pair_id, route=route, cohort=cohort)


def unique_records(rows: Sequence[Sequence[Any]]) -> list[SpanRecord]:
    """Rows in key order as records, each span once (copies of a retried insert are
    adjacent: same service, name, second and span id)."""
    service, name, timestamp, span_id = _KEY
    records, last = [], None
    for row in rows:
        key = (row[service], row[name], row[timestamp] // NS_PER_S, row[span_id])
        if key != last:
            records.append(span_record(row))
            last = key
    return records


def _by(rows: Sequence[Sequence[Any]], column: str) -> dict[str, list[SpanRecord]]:
    """Records grouped by one column, each span id once."""
    groups: dict[str, dict[str, SpanRecord]] = {}
    for row in rows:
        groups.setdefault(row[_AT[column]], {})[row[_AT["SpanId"]]] = span_record(row)
    return {key: list(spans.values()) for key, spans in groups.items()}


def page_context(partners: Sequence[Sequence[Any]], traces: Sequence[Sequence[Any]],
                 scored: Sequence[Sequence[str]]) -> PageContext:
    """A PageContext from compact rows and (evaluator, version, span id) triples."""
    done: dict[tuple[str, str], set[str]] = {}
    for evaluator, version, span_id in scored:
        done.setdefault((evaluator, version), set()).add(span_id)
    return PageContext(_by(partners, "PairId"), _by(traces, "TraceId"), done)


def result_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """eval_results rows as compact arrays in RESULT_COLUMNS order."""
    return [[row.get(column) for column in RESULT_COLUMNS] for row in rows]


# --- direct: a Store this process owns ------------------------------------------------------

class StoreSource:
    """Reads and writes one project of a Store in this process (``canarytrace serve`` or
    ``evaluate --store``)."""

    def __init__(self, store: Store, project: str) -> None:
        from canarytrace.store.scan import SpanScan

        self.store, self.project = store, project
        self.scan = SpanScan(store, project)

    @staticmethod
    def projects(store: Store) -> list[str]:
        """Every project that has spans in the store."""
        rows = store.query(f"SELECT DISTINCT Project FROM {store.table('otel_traces')} "
                           "ORDER BY Project")
        return [row["Project"] for row in rows]

    def pages(self, window: Window, page_size: int, count: bool = False) -> Iterator[SpanPage]:
        since_ns, until_ns = window.bounds_ns()
        total, cursor = self.scan.count(since_ns, until_ns) if count else None, None
        while True:
            page = self.scan.page(since_ns, until_ns, cursor, page_size)
            yield SpanPage(unique_records([orjson.loads(line) for line in page.lines]), total)
            if page.next_cursor is None:
                return
            cursor, total = page.next_cursor, None

    def context(self, request: ContextRequest) -> PageContext:
        from canarytrace.store.scan import page_context as read_context

        rows = read_context(self.scan, request.since_ns, request.until_ns,
                            pair_ids=request.pair_ids, trace_ids=request.trace_ids,
                            span_ids=request.span_ids, evaluators=request.evaluators,
                            provisional=JUDGE_ERROR)
        return page_context([orjson.loads(line) for line in rows.partners],
                            [orjson.loads(line) for line in rows.traces], rows.scored)

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

class CollectorSource:
    """Reads spans and writes eval results through a collector's bulk evaluation API
    (``/api/evaluation/...``); the API key (if any) picks the project."""

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 timeout_s: float = 120.0, project: str = "") -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.project = project or "(the API key's project)"
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach the collector at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise SourceError(f"{method} {path} answered {response.status_code}: "
                              f"{_error_text(response)}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"{method} {path} did not answer JSON: is {self.base_url} a "
                              "canarytrace collector?") from exc

    def _checked_columns(self, body: Mapping[str, Any]) -> None:
        if tuple(body.get("columns") or ()) != SPAN_COLUMNS:
            raise SourceError(f"the collector at {self.base_url} sends span columns "
                              f"{body.get('columns')!r}; this canarytrace reads "
                              f"{list(SPAN_COLUMNS)} (upgrade one of them)")

    def pages(self, window: Window, page_size: int, count: bool = False) -> Iterator[SpanPage]:
        since_ns, until_ns = window.bounds_ns()
        params: dict[str, str] = {"since_ns": str(since_ns), "limit": str(page_size),
                                  "count": "true" if count else "false"}
        if until_ns is not None:
            params["until_ns"] = str(until_ns)
        while True:
            body = self._request("GET", "/api/evaluation/spans", params=params)
            self._checked_columns(body)
            yield SpanPage(unique_records(body["spans"]), body.get("total"))
            if not body.get("next_cursor"):
                return
            params = {**params, "cursor": body["next_cursor"], "count": "false"}

    def context(self, request: ContextRequest) -> PageContext:
        payload = {"since_ns": request.since_ns, "until_ns": request.until_ns,
                   "pair_ids": request.pair_ids, "trace_ids": request.trace_ids,
                   "span_ids": request.span_ids, "evaluators": request.evaluators}
        body = self._request("POST", "/api/evaluation/context", content=orjson.dumps(payload),
                             headers={"Content-Type": "application/json"})
        self._checked_columns(body)
        return page_context(body["partners"], body["traces"], body["scored"])

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """POST the rows in compact batches of at most WRITE_BYTES; the collector stamps
        the project (from the key) and the scoring time."""
        head = b'{"columns":' + orjson.dumps(RESULT_COLUMNS) + b',"rows":['
        batch: list[bytes] = []
        size = 0
        for encoded in (orjson.dumps(row) for row in result_rows(rows)):
            if batch and size + len(encoded) > WRITE_BYTES:
                self._post_results(head, batch)
                batch, size = [], 0
            batch.append(encoded)
            size += len(encoded) + 1
        if batch:
            self._post_results(head, batch)

    def _post_results(self, head: bytes, rows: list[bytes]) -> None:
        self._request("POST", "/api/evaluation/results", content=head + b",".join(rows) + b"]}",
                      headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self.client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
