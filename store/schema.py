"""The ClickHouse schema as versioned migrations, for one server or a cluster.

``otel_traces`` has the OpenTelemetry Collector ClickHouse exporter's columns and types,
plus canarytrace columns MATERIALIZED from canonical attributes, so the Go exporter can
write the same table. It leaves out the exporter's four Map bloom-filter indexes: they
cost about a third of the insert CPU, and canarytrace filters on the materialized columns
(add them with ALTER TABLE ... ADD INDEX if you query raw attributes a lot).

In cluster mode every statement runs ``ON CLUSTER``, data lives in ``<name>_local``
tables on Replicated* engines, and ``<name>`` is a Distributed table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from canarytrace import attributes as A

MIGRATIONS_TABLE = "schema_migrations"
DEFAULT_PROJECT = "default"  # spans sent without an API key (or with none configured)
DEDUP_WINDOW = 10_000  # insert_deduplication_token memory for non-replicated tables


def quote(text: str) -> str:
    """A ClickHouse single-quoted string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def span_attr(name: str) -> str:
    return f"SpanAttributes[{quote(name)}]"


def resource_attr(name: str) -> str:
    return f"ResourceAttributes[{quote(name)}]"


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "canarytrace"
    cluster: str | None = None
    ttl_days: int = 0

    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote(self.cluster)}" if self.cluster else ""

    def local(self, table: str) -> str:
        """The name of the table that holds the rows (``<table>_local`` on a cluster)."""
        return f"{table}_local" if self.cluster else table

    def engine(self, table: str, kind: str, args: str = "") -> str:
        """``kind`` (e.g. ReplacingMergeTree) or its Replicated form with shard/replica macros."""
        if not self.cluster:
            return f"{kind}({args})"
        path = quote(f"/clickhouse/tables/{{shard}}/{self.database}/{self.local(table)}")
        replicated_args = ", ".join(a for a in (path, quote("{replica}"), args) if a)
        return f"Replicated{kind}({replicated_args})"

    def settings(self, *extra: str) -> str:
        items = ["index_granularity = 8192", *extra]
        if not self.cluster:
            items.append(f"non_replicated_deduplication_window = {DEDUP_WINDOW}")
        return "SETTINGS " + ", ".join(items)

    def ttl(self, column: str) -> str:
        if not self.ttl_days:
            return ""
        return f"TTL toDateTime({column}) + toIntervalDay({self.ttl_days})\n"


def create_table(opts: SchemaOptions, table: str, body: str, shard_key: str) -> list[str]:
    """CREATE TABLE for ``table``; on a cluster, the local table plus its Distributed twin."""
    statements = [f"CREATE TABLE IF NOT EXISTS {opts.database}.{opts.local(table)}"
                  f"{opts.on_cluster()}\n{body}"]
    if opts.cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {opts.database}.{table}{opts.on_cluster()}\n"
            f"AS {opts.database}.{opts.local(table)}\n"
            f"ENGINE = Distributed({quote(opts.cluster)}, {quote(opts.database)}, "
            f"{quote(opts.local(table))}, {shard_key})")
    return statements


def traces_statements(opts: SchemaOptions) -> list[str]:
    model = (f"if({span_attr(A.GEN_AI_REQUEST_MODEL)} != '', "
             f"{span_attr(A.GEN_AI_REQUEST_MODEL)}, {span_attr(A.GEN_AI_RESPONSE_MODEL)})")
    project = (f"if({resource_attr(A.CANARY_PROJECT)} != '', "
               f"{resource_attr(A.CANARY_PROJECT)}, {quote(DEFAULT_PROJECT)})")
    body = f"""(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Model LowCardinality(String) MATERIALIZED {model},
    Variant LowCardinality(String) MATERIALIZED {span_attr(A.CANARY_VARIANT)},
    Role LowCardinality(String) MATERIALIZED {span_attr(A.CANARY_ROLE)},
    PairId String MATERIALIZED {span_attr(A.CANARY_PAIR_ID)},
    Route LowCardinality(String) MATERIALIZED {span_attr(A.CANARY_ROUTE)},
    Cohort LowCardinality(String) MATERIALIZED {span_attr(A.CANARY_COHORT)},
    InputTokens UInt32 MATERIALIZED toUInt32OrZero({span_attr(A.GEN_AI_USAGE_INPUT_TOKENS)}),
    OutputTokens UInt32 MATERIALIZED toUInt32OrZero({span_attr(A.GEN_AI_USAGE_OUTPUT_TOKENS)}),
    ParserErrors UInt16 MATERIALIZED toUInt16OrZero({span_attr(A.CANARY_PARSER_ERRORS)}),
    ParserRetries UInt16 MATERIALIZED toUInt16OrZero({span_attr(A.CANARY_PARSER_RETRIES)}),
    Fallback UInt8 MATERIALIZED {span_attr(A.CANARY_FALLBACK)} = 'true',
    Project LowCardinality(String) MATERIALIZED {project},
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_span_id SpanId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
)
ENGINE = {opts.engine("otel_traces", "ReplacingMergeTree")}
PARTITION BY toDate(Timestamp)
ORDER BY (Project, ServiceName, SpanName, toDateTime(Timestamp), SpanId)
{opts.ttl("Timestamp")}{opts.settings("ttl_only_drop_parts = 1")}"""
    return create_table(opts, "otel_traces", body, "cityHash64(TraceId)")


def eval_results_statements(opts: SchemaOptions) -> list[str]:
    body = f"""(
    Timestamp DateTime64(3) CODEC(Delta, ZSTD(1)),
    SpanTimestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    Project LowCardinality(String),
    ServiceName LowCardinality(String),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Evaluator LowCardinality(String),
    EvaluatorVersion LowCardinality(String),
    Score Nullable(Float64),
    Passed Nullable(Bool),
    Label LowCardinality(String),
    Reason String CODEC(ZSTD(1)),
    Details String CODEC(ZSTD(1)),
    Model LowCardinality(String),
    Variant LowCardinality(String),
    Role LowCardinality(String),
    PairId String CODEC(ZSTD(1)),
    Route LowCardinality(String),
    Cohort LowCardinality(String),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = {opts.engine("eval_results", "ReplacingMergeTree", "Timestamp")}
PARTITION BY toDate(SpanTimestamp)
ORDER BY (Project, Evaluator, EvaluatorVersion, SpanId)
{opts.ttl("SpanTimestamp")}{opts.settings()}"""
    return create_table(opts, "eval_results", body, "cityHash64(SpanId)")


def feedback_statements(opts: SchemaOptions) -> list[str]:
    body = f"""(
    Timestamp DateTime64(3),
    Project LowCardinality(String),
    TraceId String,
    SpanId String,
    FeedbackId String,
    Score Float64,
    Comment String CODEC(ZSTD(1)),
    Source LowCardinality(String)
)
ENGINE = {opts.engine("feedback", "ReplacingMergeTree", "Timestamp")}
ORDER BY (Project, TraceId, FeedbackId)
{opts.ttl("Timestamp")}{opts.settings()}"""
    return create_table(opts, "feedback", body, "cityHash64(TraceId)")


def verdicts_statements(opts: SchemaOptions) -> list[str]:
    body = f"""(
    Timestamp DateTime64(3),
    Project LowCardinality(String),
    BaseModel LowCardinality(String),
    CandidateModel LowCardinality(String),
    Verdict LowCardinality(String),
    Score Float64,
    Window String,
    Reasons String CODEC(ZSTD(1)),
    Report String CODEC(ZSTD(1))
)
ENGINE = {opts.engine("verdicts", "MergeTree")}
ORDER BY (Project, Timestamp)
{opts.settings()}"""
    return create_table(opts, "verdicts", body, "cityHash64(Project)")


def rollouts_statements(opts: SchemaOptions) -> list[str]:
    """A rollout: its models, start, policy text, slicing and fixed family; a new row version
    (UpdatedAt) records a stop or the decisive verdict (store/rollouts.py)."""
    body = f"""(
    RolloutId String,
    Project LowCardinality(String),
    Name String,
    BaseModel String,
    CandidateModel String,
    Slicings String,
    PolicyText String CODEC(ZSTD(1)),
    PolicySource String,
    Family String CODEC(ZSTD(1)),
    CreatedAt DateTime64(3),
    StartedAt DateTime64(3),
    StoppedAt Nullable(DateTime64(3)),
    Verdict LowCardinality(String),
    DecidedAt Nullable(DateTime64(3)),
    Decision String CODEC(ZSTD(1)),
    UpdatedAt DateTime64(3)
)
ENGINE = {opts.engine("rollouts", "ReplacingMergeTree", "UpdatedAt")}
ORDER BY (Project, RolloutId)
{opts.settings()}"""
    return create_table(opts, "rollouts", body, "cityHash64(RolloutId)")


def rollout_looks_statements(opts: SchemaOptions) -> list[str]:
    """Every look at a rollout's verdict (its history), one row per look."""
    body = f"""(
    Timestamp DateTime64(3),
    Project LowCardinality(String),
    RolloutId String,
    Until DateTime64(3),
    Verdict LowCardinality(String),
    Final UInt8,
    Score Float64,
    Pairs UInt64,
    Reasons String CODEC(ZSTD(1))
)
ENGINE = {opts.engine("rollout_looks", "MergeTree")}
ORDER BY (Project, RolloutId, Timestamp)
{opts.settings()}"""
    return create_table(opts, "rollout_looks", body, "cityHash64(RolloutId)")


def _project_column(attributes: str = "ResourceAttributes") -> str:
    """The Project column of the OTel signal tables, from the stamped resource attribute."""
    value = f"{attributes}[{quote(A.CANARY_PROJECT)}]"
    return (f"Project LowCardinality(String) MATERIALIZED "
            f"if({value} != '', {value}, {quote(DEFAULT_PROJECT)})")


def logs_statements(opts: SchemaOptions) -> list[str]:
    """``otel_logs`` with the ClickHouse exporter's columns and key, plus ``EventName`` (the
    OTLP event name; from the ``event.name`` attribute when a writer leaves it out), the
    materialized ``Project`` and a span-id index (GenAI events are joined to their spans)."""
    body = f"""(
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName LowCardinality(String) DEFAULT LogAttributes[{quote(A.EVENT_NAME)}] CODEC(ZSTD(1)),
    {_project_column()},
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_span_id SpanId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_event_name EventName TYPE set(100) GRANULARITY 4
)
ENGINE = {opts.engine("otel_logs", "MergeTree")}
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
{opts.ttl("TimestampTime")}{opts.settings("ttl_only_drop_parts = 1")}"""
    return create_table(opts, "otel_logs", body, "cityHash64(TraceId)")


_METRIC_HEAD = """    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),"""
_EXEMPLARS = """    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),"""
METRIC_TABLES: dict[str, str] = {
    "otel_metrics_gauge": f"""
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
{_EXEMPLARS}""",
    "otel_metrics_sum": f"""
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
{_EXEMPLARS}
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),""",
    "otel_metrics_histogram": f"""
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),
{_EXEMPLARS}
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    "otel_metrics_exponential_histogram": f"""
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),
{_EXEMPLARS}
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    "otel_metrics_summary": """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested(
        Quantile Float64,
        Value Float64
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),""",
}
"""The ClickHouse exporter's metric tables: the columns after its common head."""


def metrics_statements(opts: SchemaOptions) -> list[str]:
    """The exporter's ``otel_metrics_{gauge,sum,histogram,exponential_histogram,summary}``,
    plus the materialized ``Project``."""
    statements = []
    for table, columns in METRIC_TABLES.items():
        body = f"""(
{_METRIC_HEAD}{columns}
    {_project_column()},
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {opts.engine(table, "MergeTree")}
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))
{opts.ttl("TimeUnix")}{opts.settings("ttl_only_drop_parts = 1")}"""
        statements += create_table(opts, table, body, "cityHash64(ServiceName, MetricName)")
    return statements


def trace_id_ts_statements(opts: SchemaOptions) -> list[str]:
    """``otel_traces_trace_id_ts`` and its materialized view (the exporter's trace-id lookup,
    which Grafana's ClickHouse plugin uses to find a trace fast), backfilled from otel_traces."""
    table, db = "otel_traces_trace_id_ts", opts.database
    body = f"""(
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {opts.engine(table, "MergeTree")}
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
{opts.ttl("Start")}{opts.settings("ttl_only_drop_parts = 1")}"""
    select = ("SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End "
              "FROM {source} WHERE TraceId != '' GROUP BY TraceId")
    statements = [
        *create_table(opts, table, body, "cityHash64(TraceId)"),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{table}_mv{opts.on_cluster()}\n"
        f"TO {db}.{opts.local(table)}\nAS "
        + select.format(source=f"{db}.{opts.local('otel_traces')}"),
    ]
    if not opts.cluster:  # DDL only on a cluster: backfill there with this INSERT by hand
        statements.append(f"INSERT INTO {db}.{table} " + select.format(source=f"{db}.otel_traces"))
    return statements


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[SchemaOptions], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create otel_traces", traces_statements),
    Migration(2, "create eval_results", eval_results_statements),
    Migration(3, "create feedback", feedback_statements),
    Migration(4, "create verdicts", verdicts_statements),
    Migration(5, "create rollouts", rollouts_statements),
    Migration(6, "create rollout_looks", rollout_looks_statements),
    Migration(7, "create otel_logs", logs_statements),
    Migration(8, "create otel_metrics_* tables", metrics_statements),
    Migration(9, "create otel_traces_trace_id_ts and its view", trace_id_ts_statements),
)


def bootstrap_statements(opts: SchemaOptions) -> list[str]:
    """The database and the table that records which migrations ran (safe to re-run)."""
    body = f"""(
    Version UInt32,
    Name String,
    AppliedAt DateTime64(3) DEFAULT now64(3)
)
ENGINE = {opts.engine(MIGRATIONS_TABLE, "ReplacingMergeTree", "AppliedAt")}
ORDER BY Version"""
    return [f"CREATE DATABASE IF NOT EXISTS {opts.database}{opts.on_cluster()}",
            *create_table(opts, MIGRATIONS_TABLE, body, "Version")]


def all_statements(opts: SchemaOptions) -> list[str]:
    """Every DDL statement a fresh database needs, in order (what ``migrate`` runs)."""
    statements = bootstrap_statements(opts)
    for migration in MIGRATIONS:
        statements += migration.statements(opts)
    return statements
