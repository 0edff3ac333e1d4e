"""Where a replay's spans go and where its scores come back from.

``--store URL``: the run starts ``canarytrace serve`` on that store as a subprocess on a free
loopback port (``LocalCollector``), so spans take the same path as production spans (SDK ->
OTLP/HTTP -> collector -> spool -> ClickHouse). When generation is done the collector is
stopped (its last flush drains the spool) and the store is opened here directly to evaluate,
compare and report (``StoreBackend``). ``--collector URL``: spans go to that collector and
everything after goes through its HTTP API (``CollectorBackend``), the only way in while a
``serve`` process owns an embedded store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx

from canarytrace import attributes as A
from canarytrace.analysis.policy import Policy
from canarytrace.analysis.replay import REPLAY_SERVICE
from canarytrace.analysis.replay_models import ReplayError
from canarytrace.analysis.service import ComparisonRequest, run_comparison
from canarytrace.evaluators.sources import CollectorSource, Source, StoreSource

VISIBLE_TIMEOUT_S = 60.0
PAGE_LIMIT = 1000


class Backend(Protocol):
    """What a replay needs after generation: the spans it sent, a Source, scores, a verdict."""

    write_delay_s: float
    """How long a span may take to become readable after its export was acknowledged."""

    def stored_span_ids(self, route: str, since: datetime, until: datetime) -> set[str]:
        """Ids of the replay's answer spans of dataset ``route`` started in [since, until)."""
        ...

    def source(self) -> Source:
        """Where the evaluation worker reads spans and writes eval results."""
        ...

    def eval_rows(self, span_ids: Iterable[str], since: datetime,
                  until: datetime) -> list[dict[str, Any]]:
        """The latest eval result per (span, evaluator) for ``span_ids``."""
        ...

    def compare(self, request: ComparisonRequest, policy: Policy,
                policy_text: str | None) -> dict[str, Any]:
        """The comparison report (``report_json`` shape), recorded in the verdict history."""
        ...

    def close(self) -> None: ...


def check_endpoint(url: str, api_key: str | None) -> None:
    """Send an empty OTLP export: fails early on a wrong URL or a missing/invalid API key."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        response = httpx.post(f"{url.rstrip('/')}/v1/traces", content=b"{}", headers=headers,
                              timeout=10)
    except httpx.HTTPError as exc:
        raise ReplayError(f"cannot reach the collector at {url}: {exc}") from exc
    if response.status_code == 401:
        raise ReplayError(f"the collector at {url} needs an API key (--api-key or "
                          "CANARYTRACE_API_KEY)")
    if response.status_code >= 400:
        raise ReplayError(f"the collector at {url} refused an OTLP export: "
                          f"{response.status_code} {response.text[:200]}")


# --- reading back: the store directly ------------------------------------------------------

def _latest(rows: Iterable[Mapping[str, Any]], span_ids: set[str]) -> list[dict[str, Any]]:
    """The newest row per (SpanId, Evaluator) among ``span_ids``."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row["SpanId"] not in span_ids:
            continue
        key = (row["SpanId"], row["Evaluator"])
        if key not in latest or str(row["Timestamp"]) >= str(latest[key]["Timestamp"]):
            latest[key] = dict(row)
    return list(latest.values())


class StoreBackend:
    """The store opened in this process (no collector may hold an embedded store now)."""

    write_delay_s = 0.0

    def __init__(self, store_url: str, project: str = "default") -> None:
        from canarytrace.store.client import Store

        try:
            self.store = Store.from_url(store_url)
        except Exception as exc:  # noqa: BLE001 - reported as one line
            raise ReplayError(f"cannot open the store at {store_url}: "
                              f"{str(exc).strip().splitlines()[0]}") from exc
        self.project = project

    def stored_span_ids(self, route: str, since: datetime, until: datetime) -> set[str]:
        rows = self.store.query(
            f"SELECT DISTINCT SpanId FROM {self.store.table('otel_traces')} "
            "WHERE Project = {project:String} AND ServiceName = {service:String} "
            "AND Route = {route:String} AND PairId != '' "
            "AND Timestamp >= {since:DateTime64(9)} AND Timestamp < {until:DateTime64(9)}",
            {"project": self.project, "service": REPLAY_SERVICE, "route": route,
             "since": since, "until": until})
        return {row["SpanId"] for row in rows}

    def source(self) -> Source:
        return StoreSource(self.store, self.project)

    def eval_rows(self, span_ids: Iterable[str], since: datetime,
                  until: datetime) -> list[dict[str, Any]]:
        ids = sorted(set(span_ids))
        rows = self.store.query(
            "SELECT SpanId, Evaluator, EvaluatorVersion, Score, Passed, Label, Details, "
            f"Timestamp FROM {self.store.table('eval_results')} FINAL "
            "WHERE Project = {project:String} AND SpanId IN {ids:Array(String)}",
            {"project": self.project, "ids": ids})
        return _latest(rows, set(ids))

    def compare(self, request: ComparisonRequest, policy: Policy,
                policy_text: str | None) -> dict[str, Any]:
        return run_comparison(self.store, request, policy, project=self.project)

    def close(self) -> None:
        self.store.close()


# --- reading back: a running collector ----------------------------------------------------

class CollectorBackend:
    """A running collector's HTTP API; the API key (if any) picks the project."""

    write_delay_s = VISIBLE_TIMEOUT_S

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url, self.api_key = url.rstrip("/"), api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def _rows(self, path: str, key: str, params: dict[str, str]) -> Iterable[dict[str, Any]]:
        """Every row of a paged listing (``{key: [...], "next_cursor": ...}``)."""
        while True:
            try:
                response = self.client.get(path, params=params)
            except httpx.HTTPError as exc:
                raise ReplayError(f"cannot reach the collector at {self.url}: {exc}") from exc
            if response.status_code != 200:
                raise ReplayError(f"GET {path} answered {response.status_code}: "
                                  f"{response.text[:200]}")
            body = response.json()
            yield from body[key]
            if not body.get("next_cursor"):
                return
            params = {**params, "cursor": body["next_cursor"]}

    def stored_span_ids(self, route: str, since: datetime, until: datetime) -> set[str]:
        params = {"service": REPLAY_SERVICE, "route": route, "llm_only": "true",
                  "since": since.isoformat(), "until": until.isoformat(),
                  "limit": str(PAGE_LIMIT)}
        return {row["SpanId"] for row in self._rows("/api/spans", "spans", params)
                if row.get("SpanAttributes", {}).get(A.CANARY_PAIR_ID)}

    def source(self) -> Source:
        return CollectorSource(self.url, self.api_key)

    def eval_rows(self, span_ids: Iterable[str], since: datetime,
                  until: datetime) -> list[dict[str, Any]]:
        params = {"since": since.isoformat(), "until": until.isoformat(),
                  "limit": str(PAGE_LIMIT * 10)}
        return _latest(self._rows("/api/eval_results", "eval_results", params), set(span_ids))

    def compare(self, request: ComparisonRequest, policy: Policy,
                policy_text: str | None) -> dict[str, Any]:
        from canarytrace.analysis.remote import fetch_report, record_verdict

        by = "+".join(request.slicings[0]) if request.slicings else "cohort"
        report = fetch_report(self.url, request, policy_text, by, self.api_key)
        record_verdict(self.url, report, request, self.api_key)
        return report

    def close(self) -> None:
        self.client.close()


def wait_until_stored(backend: Backend, expected: set[str], route: str, since: datetime,
                      until: datetime) -> set[str]:
    """Poll until every expected span id is readable (a collector writes in the background);
    returns the ids still missing after ``backend.write_delay_s``."""
    deadline = time.monotonic() + backend.write_delay_s
    while True:
        missing = expected - backend.stored_span_ids(route, since, until)
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.5)


class _ReplaySpans:
    """A Source that reads only the spans of replays of one dataset."""

    def __init__(self, source: Source, route: str) -> None:
        self.source, self.route = source, route
        self.project = source.project

    def pages(self, window: Any, page_size: int, count: bool = False) -> Any:
        for page in self.source.pages(window, page_size, count):
            page.spans = [span for span in page.spans if self._replayed(span)]
            yield page

    def context(self, request: Any) -> Any:
        return self.source.context(request)

    def _replayed(self, span: Any) -> bool:
        return span.service_name == REPLAY_SERVICE and span.route == self.route

    def write(self, rows: Any) -> None:
        self.source.write(rows)

    def close(self) -> None:
        self.source.close()


def replay_spans_only(source: Source, route: str) -> Source:
    """``source``, narrowed to the spans replays of dataset ``route`` write, for the worker."""
    return _ReplaySpans(source, route)
