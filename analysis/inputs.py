"""What a comparison reads from the store: per-request outcomes of the base and the candidate.

A *request* is one unit of comparison. Mirrored traffic shares ``canary.pair_id`` between the
base call and the candidate's shadow call (``ct.Canary`` in one process, or the request id a
mesh keeps on its mirrored copy, in two services with two traces: the key is the PairId
alone, whatever the service or trace), so a request is a PairId; canary-split traffic has
no PairId, so a request is its trace (ct.Canary starts one trace per request). Within a
request each arm's call is its earliest-starting span of that model (the outermost, when an
arm has nested LLM spans). A request is *paired* when it has a PairId and both arms.

ClickHouse does the heavy lifting: one GROUP BY per source turns raw rows into one row per
request, and numpy gets the columns. Span rows need no FINAL: a duplicate of a span (a
retried batch not merged yet) cannot change min/max/argMin. Eval results and feedback are
read with FINAL because re-scoring replaces a row by a newer one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from canarytrace import attributes as A
from canarytrace.evaluators.pairwise import LOSS, TIE, WIN, PairwiseJudge

RATE, MEAN, SHIFT, QUANTILE, WIN_RATE = "rate", "mean", "shift", "quantile", "win_rate"
"""Metric kinds: a per-request 0/1 outcome, a per-request score, a distribution compared by
its median shift or by a high quantile, and the pairwise judge's win/tie/loss."""

LATENCY_P50 = "latency_p50"
LATENCY_P99 = "latency_p99"
OUTPUT_TOKENS = "output_tokens"
ERROR_RATE = "error_rate"
PARSER_ERROR_RATE = "parser_error_rate"
FALLBACK_RATE = "fallback_rate"
THUMBS_DOWN_RATE = "thumbs_down_rate"
PAIRWISE_WIN_RATE = "pairwise_win_rate"

SLICE_COLUMNS = {"route": "Route", "cohort": "Cohort", "service": "ServiceName"}
"""Slice dimensions users name in ``--by`` and the canonical columns they read."""

PAIRWISE = PairwiseJudge.name
_WIN_VALUES = {WIN: 1.0, TIE: 0.5, LOSS: 0.0}


class Tables(Protocol):
    """What is used of the collector's ``Store``: its one client and its table names."""

    client: Any

    def table(self, name: str) -> str: ...


@dataclass(frozen=True)
class ComparisonQuery:
    """Which models, which window, which project, and how to slice."""

    base_model: str
    candidate_model: str
    since: datetime
    until: datetime
    project: str = "default"
    slicings: tuple[tuple[str, ...], ...] = (("cohort",),)

    @property
    def dimensions(self) -> list[str]:
        """Every dimension some slicing uses, in first-use order."""
        return list(dict.fromkeys(dim for slicing in self.slicings for dim in slicing))


@dataclass(frozen=True)
class Dimension:
    """A slice dimension as integer codes into ``labels`` (one code per row)."""

    codes: np.ndarray
    labels: tuple[str, ...]

    def take(self, mask: np.ndarray) -> Dimension:
        return Dimension(self.codes[mask], self.labels)


@dataclass(frozen=True)
class MetricSamples:
    """One metric's per-request values. ``base``/``candidate`` are NaN where an arm is absent."""

    name: str
    kind: str
    time: np.ndarray
    base: np.ndarray
    candidate: np.ndarray
    paired: np.ndarray
    dims: dict[str, Dimension] = field(default_factory=dict)
    evaluator_kind: str | None = None
    """"pass_rate" or "score" for an evaluator's metric, None for built-in metrics."""
    cluster: np.ndarray | None = None
    """Per request, a code of its cluster of correlated requests (``CLUSTER_KEY``)."""

    def take(self, mask: np.ndarray) -> MetricSamples:
        return replace(self, time=self.time[mask], base=self.base[mask],
                       candidate=self.candidate[mask], paired=self.paired[mask],
                       dims={name: dim.take(mask) for name, dim in self.dims.items()},
                       cluster=None if self.cluster is None else self.cluster[mask])


@dataclass(frozen=True)
class ComparisonInputs:
    query: ComparisonQuery
    metrics: list[MetricSamples]

    def up_to(self, until: datetime) -> ComparisonInputs:
        """The inputs as a run with ``--until until`` would have seen them (requests by start)."""
        cutoff = until.timestamp()
        metrics = [m.take(m.time < cutoff) for m in self.metrics]
        return ComparisonInputs(replace(self.query, until=min(until, self.query.until)), metrics)


def load_inputs(store: Tables, query: ComparisonQuery) -> ComparisonInputs:
    """Run the four queries (evaluations, spans, feedback, pairwise) for ``query``."""
    parameters = _parameters(query)
    dims = query.dimensions
    t = store.table

    def columns(sql: str) -> dict[str, Any]:
        return _by_time(_columns(store.client, sql, parameters))

    cluster = CLUSTER_KEY if _has_clusters(store, parameters) else ""
    metrics = (_evaluator_metrics(columns(_evals_sql(t, dims, cluster)), dims)
               + _span_metrics(columns(_spans_sql(t, dims, cluster)), dims)
               + _feedback_metrics(columns(_feedback_sql(t, dims)), dims)
               + _pairwise_metrics(columns(_pairwise_sql(t, dims, cluster)), dims))
    return ComparisonInputs(query, metrics)


def _has_clusters(store: Tables, parameters: Mapping[str, Any]) -> bool:
    """Whether any evaluated request in the window has a clustered PairId (``CLUSTER.REST``);
    only then do the queries compute clusters (a string aggregate per request)."""
    found = store.client.query(
        f"SELECT count() FROM (SELECT 1 FROM {store.table('eval_results')} "
        "WHERE Project = {project:String} AND Model IN ({base:String}, {candidate:String}) "
        "AND SpanTimestamp >= {since:DateTime64(9)} AND SpanTimestamp < {until:DateTime64(9)} "
        "AND position(PairId, '.') > 0 LIMIT 1)", parameters=dict(parameters)).result_rows
    return bool(found and found[0][0])


def _by_time(columns: dict[str, Any]) -> dict[str, Any]:
    """Rows in order of request start, which the engine's confidence sequences follow."""
    if not columns or "time" not in columns:
        return columns
    time = np.asarray(columns["time"])
    if time.size < 2 or bool(np.all(time[1:] >= time[:-1])):
        return columns
    order = np.argsort(time, kind="stable")
    return {name: (Dimension(value.codes[order], value.labels) if isinstance(value, Dimension)
                   else np.asarray(value)[order]) for name, value in columns.items()}


def _parameters(query: ComparisonQuery) -> dict[str, Any]:
    return {"project": query.project, "base": query.base_model,
            "candidate": query.candidate_model, "since": _utc(query.since),
            "until": _utc(query.until), "pairwise": PAIRWISE, "shadow": A.ROLE_SHADOW,
            "win": WIN, "loss": LOSS, "tie": TIE}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _columns(client: Any, sql: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """One query's result as columns: numbers as numpy arrays, strings as ``Dimension``s.

    The result travels as Arrow (pyarrow comes with chDB), which numpy reads without a
    per-value Python object; an empty result is {}.
    """
    table = client.query_arrow(sql, parameters=parameters, settings=_READ_SETTINGS)
    if table.num_rows == 0:
        return {}
    return {name: _column(table.column(name)) for name in table.column_names}


def _column(column: Any) -> np.ndarray | Dimension:
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) \
            or pa.types.is_dictionary(column.type):
        encoded = column.combine_chunks().dictionary_encode()
        return Dimension(encoded.indices.to_numpy().astype(np.int32),
                         tuple(str(v) for v in encoded.dictionary.to_pylist()))
    return column.to_numpy()


# --- SQL ----------------------------------------------------------------------------------------

_READ_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}
"""A re-scored span keeps its SpanTimestamp, so its rows share a partition."""

REQUEST_KEY = "cityHash64(if(PairId != '', PairId, TraceId))"
"""One request: its mirroring PairId, else its trace (hashed: grouping by a UInt64 is faster
than by a string; a collision among a million requests has odds of about 1 in 10^7)."""

CLUSTER_KEY = ("cityHash64(if(any(PairId) != '', splitByChar('.', any(PairId))[1], "
               "any(TraceId)))")
"""A request's cluster: a PairId written ``CLUSTER.REST`` (replay: the prompt, shared by its
trials and sweep values) puts every request with that CLUSTER in one cluster of correlated
requests; any other request is a cluster of its own."""


def _dimension_columns(dims: Iterable[str], indent: str = "    ") -> str:
    """``any(Cohort) AS cohort,`` lines: a request's arms share route, cohort and service."""
    return "".join(f"{indent}any({SLICE_COLUMNS[dim]}) AS {dim},\n" for dim in dims)


def _arm_first(expr: str, arm: str, time: str = "Timestamp") -> str:
    """``expr`` on the arm's earliest span, NaN when the request has no span of that arm."""
    model = f"Model = {{{arm}:String}}"
    return f"if(countIf({model}) > 0, toFloat64(argMinIf({expr}, {time}, {model})), nan)"


def _arm_max(expr: str, arm: str) -> str:
    model = f"Model = {{{arm}:String}}"
    return f"if(countIf({model}) > 0, toFloat64(maxIf({expr}, {model})), nan)"


def _cluster_column(cluster: str) -> str:
    return f"    {cluster} AS cluster,\n" if cluster else ""


def _evals_sql(table: Callable[[str], str], dims: list[str], cluster: str = "") -> str:
    def first(column: str, arm: str) -> str:
        """The arm's earliest non-null result, NaN when it has none."""
        scored = f"Model = {{{arm}:String}} AND {column} IS NOT NULL"
        return (f"if(countIf({scored}) > 0, "
                f"toFloat64(argMinIf(assumeNotNull({column}), SpanTimestamp, {scored})), nan)")

    return f"""
SELECT
    Evaluator                           AS evaluator,
    toFloat64(min(SpanTimestamp))       AS time,
{_dimension_columns(dims) + _cluster_column(cluster)}    max(PairId != '') AS has_pair_id,
    {first("Passed", "base")}      AS base_passed,
    {first("Passed", "candidate")} AS candidate_passed,
    {first("Score", "base")}       AS base_score,
    {first("Score", "candidate")}  AS candidate_score
FROM {table('eval_results')} FINAL
WHERE Project = {{project:String}}
  AND Model IN ({{base:String}}, {{candidate:String}})
  AND SpanTimestamp >= {{since:DateTime64(9)}} AND SpanTimestamp < {{until:DateTime64(9)}}
  AND Evaluator != {{pairwise:String}}
  -- one version per evaluator: the one that scored last (a new version re-scores spans)
  AND (Evaluator, EvaluatorVersion) IN (
        SELECT Evaluator, argMax(EvaluatorVersion, Timestamp)
        FROM {table('eval_results')}
        WHERE Project = {{project:String}}
          AND SpanTimestamp >= {{since:DateTime64(9)}} AND SpanTimestamp < {{until:DateTime64(9)}}
        GROUP BY Evaluator)
GROUP BY Evaluator, {REQUEST_KEY}
"""


def _spans_sql(table: Callable[[str], str], dims: list[str], cluster: str = "") -> str:
    return f"""
SELECT
    toFloat64(min(Timestamp))           AS time,
{_dimension_columns(dims) + _cluster_column(cluster)}    max(PairId != '') AS has_pair_id,
    {_arm_first("Duration", "base")} / 1e6      AS base_latency_ms,
    {_arm_first("Duration", "candidate")} / 1e6 AS candidate_latency_ms,
    {_arm_max("OutputTokens", "base")}      AS base_output_tokens,
    {_arm_max("OutputTokens", "candidate")} AS candidate_output_tokens,
    {_arm_first("StatusCode = 'Error'", "base")}      AS base_error,
    {_arm_first("StatusCode = 'Error'", "candidate")} AS candidate_error,
    {_arm_max("ParserErrors > 0", "base")}      AS base_parser_error,
    {_arm_max("ParserErrors > 0", "candidate")} AS candidate_parser_error,
    -- a fallback is recorded on the base call that answered for a failed candidate, in the
    -- same trace: it counts against the candidate's served (non-shadow) requests
    if(countIf(Model = {{base:String}}) > 0, 0., nan) AS base_fallback,
    if(countIf(Model = {{candidate:String}} AND Role != {{shadow:String}}) > 0,
       toFloat64(max(Fallback)), nan)   AS candidate_fallback
FROM {table('otel_traces')}
WHERE Project = {{project:String}}
  AND Model IN ({{base:String}}, {{candidate:String}})
  AND Timestamp >= {{since:DateTime64(9)}} AND Timestamp < {{until:DateTime64(9)}}
GROUP BY {REQUEST_KEY}
"""


def _feedback_sql(table: Callable[[str], str], dims: list[str]) -> str:
    served_dims = "".join(f"served.{dim} AS {dim},\n    " for dim in dims)
    inner_dims = _dimension_columns(dims, indent="        ")
    return f"""
SELECT
    served.time                         AS time,
    {served_dims}served.is_candidate           AS is_candidate,
    feedback.Score < 0                  AS negative
FROM (SELECT TraceId, Score FROM {table('feedback')} FINAL
      WHERE Project = {{project:String}}) AS feedback
INNER JOIN (
    -- the call a user saw: the trace's latest-starting served (non-shadow) call, which is
    -- the base's answer when the candidate failed and the base was served as fallback
    SELECT
        TraceId,
        toFloat64(min(Timestamp))       AS time,
{inner_dims}        argMax(Model, Timestamp) = {{candidate:String}} AS is_candidate
    FROM {table('otel_traces')}
    WHERE Project = {{project:String}}
      AND Model IN ({{base:String}}, {{candidate:String}})
      AND Role != {{shadow:String}}
      AND Timestamp >= {{since:DateTime64(9)}} AND Timestamp < {{until:DateTime64(9)}}
      AND TraceId IN (SELECT TraceId FROM {table('feedback')} WHERE Project = {{project:String}})
    GROUP BY TraceId
) AS served ON feedback.TraceId = served.TraceId
"""


def _pairwise_sql(table: Callable[[str], str], dims: list[str], cluster: str = "") -> str:
    return f"""
SELECT
    toFloat64(min(SpanTimestamp))       AS time,
{_dimension_columns(dims)}{_cluster_column(cluster)}    argMin(Label, SpanTimestamp)        AS label
FROM {table('eval_results')} FINAL
WHERE Project = {{project:String}}
  AND Evaluator = {{pairwise:String}}
  AND Model = {{candidate:String}}
  AND Label IN ({{win:String}}, {{loss:String}}, {{tie:String}})
  AND SpanTimestamp >= {{since:DateTime64(9)}} AND SpanTimestamp < {{until:DateTime64(9)}}
GROUP BY {REQUEST_KEY}
"""


# --- columns -> samples -------------------------------------------------------------------------

def _floats(column: np.ndarray) -> np.ndarray:
    return np.asarray(column, dtype=float)


def _flags(column: np.ndarray) -> np.ndarray:
    return np.asarray(column).astype(bool)


def _clusters(codes: np.ndarray | None, rows: np.ndarray | None = None) -> np.ndarray | None:
    """The cluster codes (of ``rows``), or None when every request is a cluster of its own
    (the usual case: the engine then skips the per-cluster work)."""
    if codes is None:
        return None
    codes = np.asarray(codes) if rows is None else np.asarray(codes)[rows]
    return codes if np.unique(codes).size < codes.size else None


def _paired(has_pair_id: np.ndarray, base: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    return has_pair_id & ~np.isnan(base) & ~np.isnan(candidate)


def _dims(columns: Mapping[str, Any], dims: list[str]) -> dict[str, Dimension]:
    return {dim: columns[dim] for dim in dims}


def _evaluator_metrics(columns: Mapping[str, Any], dims: list[str]) -> list[MetricSamples]:
    if not columns:
        return []
    evaluators: Dimension = columns["evaluator"]
    time = _floats(columns["time"])
    has_pair_id = _flags(columns["has_pair_id"])
    passed = _floats(columns["base_passed"]), _floats(columns["candidate_passed"])
    scores = _floats(columns["base_score"]), _floats(columns["candidate_score"])
    metrics = []
    for code, name in enumerate(evaluators.labels):
        rows = evaluators.codes == code
        is_rate = not np.all(np.isnan(passed[0][rows]) & np.isnan(passed[1][rows]))
        base, candidate = (passed if is_rate else scores)
        base, candidate = base[rows], candidate[rows]
        metrics.append(MetricSamples(
            name, RATE if is_rate else MEAN, time[rows], base, candidate,
            _paired(has_pair_id[rows], base, candidate),
            {dim: d.take(rows) for dim, d in _dims(columns, dims).items()},
            evaluator_kind="pass_rate" if is_rate else "score",
            cluster=_clusters(columns.get("cluster"), rows)))
    return sorted(metrics, key=lambda m: m.name)


_SPAN_METRICS = (
    (LATENCY_P50, SHIFT, "latency_ms"),
    (LATENCY_P99, QUANTILE, "latency_ms"),
    (OUTPUT_TOKENS, SHIFT, "output_tokens"),
    (ERROR_RATE, RATE, "error"),
    (PARSER_ERROR_RATE, RATE, "parser_error"),
    (FALLBACK_RATE, RATE, "fallback"),
)


def _span_metrics(columns: Mapping[str, Any], dims: list[str]) -> list[MetricSamples]:
    if not columns:
        return []
    time = _floats(columns["time"])
    # fallbacks happen on canary-split traffic only: never analysed as mirrored pairs
    has_pair_id = _flags(columns["has_pair_id"])
    unpaired = np.zeros(time.size, dtype=bool)
    clusters = _clusters(columns.get("cluster"))
    metrics = []
    for name, kind, column in _SPAN_METRICS:
        base = _floats(columns[f"base_{column}"])
        candidate = _floats(columns[f"candidate_{column}"])
        pair_ids = unpaired if name == FALLBACK_RATE else has_pair_id
        metrics.append(MetricSamples(name, kind, time, base, candidate,
                                     _paired(pair_ids, base, candidate), _dims(columns, dims),
                                     cluster=clusters))
    return metrics


def _feedback_metrics(columns: Mapping[str, Any], dims: list[str]) -> list[MetricSamples]:
    if not columns:
        return []
    is_candidate = _flags(columns["is_candidate"])
    negative = _floats(columns["negative"])
    base = np.where(is_candidate, np.nan, negative)
    candidate = np.where(is_candidate, negative, np.nan)
    return [MetricSamples(THUMBS_DOWN_RATE, RATE, _floats(columns["time"]), base, candidate,
                          np.zeros(negative.size, dtype=bool), _dims(columns, dims))]


def _pairwise_metrics(columns: Mapping[str, Any], dims: list[str]) -> list[MetricSamples]:
    if not columns:
        return []
    labels: Dimension = columns["label"]
    values = np.array([_WIN_VALUES[label] for label in labels.labels])
    outcome = values[labels.codes]
    return [MetricSamples(PAIRWISE_WIN_RATE, WIN_RATE, _floats(columns["time"]),
                          np.full(outcome.size, np.nan), outcome,
                          np.zeros(outcome.size, dtype=bool), _dims(columns, dims),
                          cluster=_clusters(columns.get("cluster")))]
