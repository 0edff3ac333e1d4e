"""The Store on a real embedded ClickHouse (chDB): schema, migrations, dedupe, exact reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from canarytrace import attributes as A
from canarytrace.collector.metrics import CollectorMetrics
from canarytrace.collector.rows import Limits, RowBuilder
from canarytrace.collector.spool import Spool
from canarytrace.collector.writer import Writer
from canarytrace.store import schema, span_columns
from canarytrace.store.client import Store
from canarytrace.store.errors import Fault, classify
from canarytrace.store.queries import BadQuery, EvalFilter, PageRequest, SpanFilter
from tests.collector import otlp_payloads as P

EXPORTER_COLUMNS = {  # the OpenTelemetry Collector ClickHouse exporter's otel_traces
    "Timestamp": "DateTime64(9)", "TraceId": "String", "SpanId": "String",
    "ParentSpanId": "String", "TraceState": "String", "SpanName": "LowCardinality(String)",
    "SpanKind": "LowCardinality(String)", "ServiceName": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)", "ScopeName": "String",
    "ScopeVersion": "String", "SpanAttributes": "Map(LowCardinality(String), String)",
    "Duration": "UInt64", "StatusCode": "LowCardinality(String)", "StatusMessage": "String",
    "Events.Timestamp": "Array(DateTime64(9))", "Events.Name": "Array(LowCardinality(String))",
    "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    "Links.TraceId": "Array(String)", "Links.SpanId": "Array(String)",
    "Links.TraceState": "Array(String)",
    "Links.Attributes": "Array(Map(LowCardinality(String), String))",
}
MATERIALIZED = {"Model": "LowCardinality(String)", "Variant": "LowCardinality(String)",
                "Role": "LowCardinality(String)", "PairId": "String",
                "Route": "LowCardinality(String)", "Cohort": "LowCardinality(String)",
                "InputTokens": "UInt32", "OutputTokens": "UInt32", "ParserErrors": "UInt16",
                "ParserRetries": "UInt16", "Fallback": "UInt8",
                "Project": "LowCardinality(String)"}
BUILDER = RowBuilder(Limits())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One embedded store for the module (chDB opens one directory per process at a time)."""
    opened = Store.from_url(f"chdb://{tmp_path_factory.mktemp('store')}/db")
    opened.migrate()
    yield opened
    opened.close()


def rows_for(project: str, spans: list[dict]) -> list[dict]:
    return BUILDER.convert(P.request(spans), project).rows


def raw_count(store: Store, project: str) -> int:
    return store.query(f"SELECT count() AS n FROM {store.table('otel_traces')} "
                       "WHERE Project = {p:String}", {"p": project})[0]["n"]


def test_otel_traces_has_the_exporter_schema_plus_materialized_columns(store):
    described = store.query(f"DESCRIBE TABLE {store.table('otel_traces')}")
    types = {row["name"]: row["type"] for row in described}
    kinds = {row["name"]: row["default_type"] for row in described}
    for column, expected in {**EXPORTER_COLUMNS, **MATERIALIZED}.items():
        assert types[column] == expected, column
    assert all(kinds[c] == "MATERIALIZED" for c in MATERIALIZED)
    create = store.query(f"SHOW CREATE TABLE {store.table('otel_traces')}")[0]["statement"]
    assert "ReplacingMergeTree" in create and "PARTITION BY toDate(Timestamp)" in create
    assert "idx_trace_id TraceId TYPE bloom_filter" in create
    assert "non_replicated_deduplication_window" in create


def test_materialized_columns_come_from_canonical_attributes(store):
    attributes = {A.GEN_AI_RESPONSE_MODEL: "resp-model", A.CANARY_VARIANT: A.VARIANT_CANDIDATE,
                  A.CANARY_ROLE: A.ROLE_SHADOW, A.CANARY_PAIR_ID: "pair-1",
                  A.CANARY_ROUTE: "billing", A.CANARY_COHORT: "de",
                  A.GEN_AI_USAGE_INPUT_TOKENS: 12, A.GEN_AI_USAGE_OUTPUT_TOKENS: 34,
                  A.CANARY_PARSER_ERRORS: 2, A.CANARY_PARSER_RETRIES: 1, A.CANARY_FALLBACK: True}
    store.insert_spans(rows_for("mat", [P.span(attributes=attributes)]))
    (row,) = store.query_spans("mat").rows
    assert (row["Model"], row["Variant"], row["Role"], row["PairId"]) == (
        "resp-model", "candidate", "shadow", "pair-1")
    assert (row["Route"], row["Cohort"], row["InputTokens"], row["OutputTokens"]) == (
        "billing", "de", 12, 34)
    assert (row["ParserErrors"], row["ParserRetries"], row["Fallback"]) == (2, 1, 1)
    assert row["Project"] == "mat"


def test_a_retried_insert_with_its_dedup_token_is_stored_once(store):
    rows = rows_for("dedup", [P.span() for _ in range(5)])
    store.insert_spans(rows, dedup_token="batch-1")
    store.insert_spans(rows, dedup_token="batch-1")
    assert raw_count(store, "dedup") == 5
    store.insert_spans(rows_for("dedup", [P.span()]), dedup_token="batch-2")
    assert raw_count(store, "dedup") == 6


def test_reads_are_exact_before_duplicates_are_merged(store):
    rows = rows_for("dups", [P.span() for _ in range(3)])
    store.insert_spans(rows, dedup_token="first")
    store.insert_spans(rows, dedup_token="client-retried")  # a second copy, in a new part
    assert raw_count(store, "dups") == 6
    assert len(store.query_spans("dups").rows) == 3
    assert len(store.get_trace("dups", rows[0]["TraceId"])) == 1


def test_query_spans_filters_and_pages_by_cursor(store):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    spans = []
    for i in range(7):
        start = int(base.timestamp() * 1e9) + i * 1_000_000_000
        attrs = {A.GEN_AI_REQUEST_MODEL: "m-a" if i % 2 else "m-b", A.CANARY_ROUTE: "r1",
                 A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT}
        if i == 3:
            attrs[A.CANARY_EXPECT_JSON_SCHEMA] = '{"type": "object"}'
        spans.append(P.span(f"s{i}", attrs, start_time_unix_nano=start,
                            end_time_unix_nano=start + 10))
    store.insert_spans(rows_for("page", spans))
    names = [r["SpanName"] for r in store.query_spans("page", SpanFilter(model="m-a")).rows]
    assert names == ["s1", "s3", "s5"]
    window = SpanFilter(since=base + timedelta(seconds=2), until=base + timedelta(seconds=4))
    assert [r["SpanName"] for r in store.query_spans("page", window).rows] == ["s2", "s3"]
    expecting = store.query_spans("page", SpanFilter(has_expectation=True)).rows
    assert [r["SpanName"] for r in expecting] == ["s3"]
    seen, cursor = [], None
    while True:
        page = store.query_spans("page", SpanFilter(route="r1"),
                                 PageRequest(limit=3, cursor=cursor))
        seen += [r["SpanName"] for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"s{i}" for i in range(7)]
    newest = store.query_spans("page", page=PageRequest(limit=2, order="desc")).rows
    assert [r["SpanName"] for r in newest] == ["s6", "s5"]
    assert store.query_spans("other-project").rows == []
    with pytest.raises(BadQuery):
        store.query_spans("page", page=PageRequest(cursor="not-a-cursor"))


def test_eval_results_copy_span_columns_and_rescoring_replaces(store):
    (row,) = rows_for("evals", [P.span(attributes={A.GEN_AI_REQUEST_MODEL: "cand",
                                                    A.CANARY_VARIANT: A.VARIANT_CANDIDATE,
                                                    A.CANARY_COHORT: "fr"})])
    store.insert_spans([row])
    result = {"Project": "evals", "SpanId": row["SpanId"], "Evaluator": "json_schema",
              "Score": 0.0, "Passed": False, "Details": {"errors": 1}}
    store.insert_eval_results([result])
    store.insert_eval_results([{**result, "Score": 1.0, "Passed": True,
                                "Timestamp": time.time_ns() + 1_000_000}])
    (stored,) = store.query_eval_results("evals", EvalFilter(evaluator="json_schema")).rows
    assert (stored["Score"], stored["Passed"]) == (1.0, True)
    assert (stored["Model"], stored["Variant"], stored["Cohort"]) == ("cand", "candidate", "fr")
    assert stored["TraceId"] == row["TraceId"] and stored["ServiceName"] == "test-svc"
    assert stored["SpanTimestamp"].startswith(
        datetime.fromtimestamp(row["Timestamp"] // 10**9, UTC).strftime("%Y-%m-%dT"))


def test_feedback_and_verdicts_round_trip(store):
    store.insert_feedback([{"Project": "fb", "TraceId": "a" * 32, "Score": -1.0,
                            "Comment": "wrong", "FeedbackId": "f1"},
                           {"Project": "fb", "TraceId": "a" * 32, "Score": 1.0,
                            "Comment": "fixed", "FeedbackId": "f1",
                            "Timestamp": time.time_ns() + 1_000_000}])
    (feedback,) = store.query_feedback("fb", trace_id="a" * 32)
    assert (feedback["Score"], feedback["Comment"]) == (1.0, "fixed")
    store.insert_verdict({"Project": "fb", "BaseModel": "b", "CandidateModel": "c",
                          "Verdict": "ROLLBACK", "Score": -0.3, "Reasons": ["json fails"]})
    (verdict,) = store.query_verdicts("fb")
    assert verdict["Verdict"] == "ROLLBACK" and verdict["Reasons"] == '["json fails"]'


def test_a_segment_replayed_after_a_crash_is_not_stored_twice(store, tmp_path):
    """Crash after the insert but before the segment was deleted: the replay is deduplicated."""
    spool = Spool(tmp_path / "spool", max_bytes=10_000_000)
    store_rows = rows_for("replay", [P.span() for _ in range(4)])
    spool.wait_durable_sync(spool.append(span_columns.to_ipc(span_columns.table(store_rows)), 4))
    segment = spool.seal()
    (record,) = spool.contents(segment).records
    assert record.rows == 4
    store.insert_span_table(span_columns.from_ipc(record.payload), dedup_token=segment.token)
    spool.close()  # "crash": the stored segment is still on disk

    reopened = Spool(tmp_path / "spool", max_bytes=10_000_000)
    assert reopened.sealed() == [segment]
    drain(reopened, store)
    reopened.close()
    assert reopened.sealed() == []
    assert raw_count(store, "replay") == 4


def test_migrations_rerun_is_a_no_op(store):
    fresh = Store(store.client, database="ct_migrate", ttl_days=7)  # a new, empty database
    assert fresh.migrate() == [m.version for m in schema.MIGRATIONS]
    before = fresh.query(f"SHOW CREATE TABLE {fresh.table('otel_traces')}")
    assert fresh.migrate() == []
    assert fresh.migrate() == []
    applied = fresh.query(f"SELECT Version, count() AS n FROM "
                          f"{fresh.table('schema_migrations')} GROUP BY Version")
    assert sorted((r["Version"], r["n"]) for r in applied) == [
        (m.version, 1) for m in schema.MIGRATIONS]
    assert fresh.query(f"SHOW CREATE TABLE {fresh.table('otel_traces')}") == before
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in before[0]["statement"]


def test_cluster_ddl_uses_on_cluster_replicated_engines_and_distributed_tables():
    opts = schema.SchemaOptions(database="obs", cluster="prod", ttl_days=30)
    statements = schema.all_statements(opts)
    assert all(" ON CLUSTER 'prod'" in s for s in statements)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS obs ON CLUSTER 'prod'"
    for table in ("otel_traces", "eval_results", "feedback", "verdicts", "schema_migrations"):
        local = next(s for s in statements if s.startswith(
            f"CREATE TABLE IF NOT EXISTS obs.{table}_local ON CLUSTER"))
        assert "Replicated" in local and "'{replica}'" in local
        assert f"'/clickhouse/tables/{{shard}}/obs/{table}_local'" in local
        assert "non_replicated_deduplication_window" not in local
        distributed = next(s for s in statements if s.startswith(
            f"CREATE TABLE IF NOT EXISTS obs.{table} ON CLUSTER"))
        assert f"AS obs.{table}_local" in distributed
        assert f"ENGINE = Distributed('prod', 'obs', '{table}_local'," in distributed
    traces = next(s for s in statements if "obs.otel_traces_local" in s)
    assert "ReplicatedReplacingMergeTree(" in traces
    assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in traces
    evals = next(s for s in statements if "obs.eval_results_local" in s)
    assert "'{replica}', Timestamp)" in evals  # the version column survives replication
    assert any("cityHash64(TraceId)" in s for s in statements if "obs.otel_traces " in s)
    single = schema.all_statements(schema.SchemaOptions(database="obs"))
    assert not any("ON CLUSTER" in s or "Distributed" in s or "Replicated" in s for s in single)


def test_store_errors_are_told_apart_refused_outage_or_unknown(store):
    """What the writer and the API do with a failure rests on this: refused input is not
    retried (4xx, or quarantine after splitting), an outage is (503, the spool keeps it)."""
    def failure(sql: str) -> Exception:
        with pytest.raises(Exception) as caught:
            store.client.command(sql)
        return caught.value

    assert classify(failure("SELECT toDateTime64('not a time', 9)")) is Fault.REFUSED
    assert classify(failure("SELECT throwIf(1, 'x')")) is Fault.UNKNOWN
    table = store.table("otel_traces")
    store.client.command(f"CREATE TABLE IF NOT EXISTS {store.database}.parts_probe "
                         "(n UInt64) ENGINE = MergeTree PARTITION BY n ORDER BY n")
    many = failure(f"INSERT INTO {store.database}.parts_probe SELECT number FROM numbers(200)")
    assert "Too many partitions" in str(many) and classify(many) is Fault.REFUSED
    assert classify(OSError(24, "Too many open files")) is Fault.OUTAGE
    with pytest.raises(Exception) as down:  # nothing listens there: connection refused
        Store.from_url("http://127.0.0.1:9/").client.command("SELECT 1")
    assert classify(down.value) is Fault.OUTAGE
    assert store.query(f"SELECT count() AS n FROM {table} WHERE Project = 'never'") == [{"n": 0}]


def test_a_spool_segment_deleted_by_hand_does_not_hold_back_the_ones_after_it(store, tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10_000_000)
    segments = []
    for service in ("deleted", "kept"):
        rows = rows_for(service, [P.span() for _ in range(3)])
        spool.wait_durable_sync(spool.append(span_columns.to_ipc(span_columns.table(rows)), 3))
        segments.append(spool.seal())
    segments[0].path.unlink()  # an operator cleaning up the wrong folder
    writer = drain(spool, store)
    spool.close()
    assert spool.sealed() == []
    assert raw_count(store, "kept") == 3
    assert writer.outage is None


def drain(spool: Spool, store: Store) -> Writer:
    """Run a writer until the spool has no sealed segment left (at most 20 s), then stop it."""
    writer = Writer(spool, store, CollectorMetrics(), flush_rows=100, flush_interval_s=0.05)
    writer.start()
    deadline = time.monotonic() + 20
    while spool.sealed() and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()
    return writer
