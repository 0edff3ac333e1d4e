"""docker/otel-collector-config.yaml: the Go collector normalizes like canarytrace's collector.

Docker cannot run here, so the config is parsed and checked against the normalization
table: the transform processor runs every statement generated from it, in the traces
pipeline before the exporter, and logs and metrics reach canarytrace's tables too.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from canarytrace import attributes as A
from canarytrace.collector.normalize import PROVIDER_NAMES, direct_renames, normalize
from canarytrace.collector.ottl import provider_sources, span_statements

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker" /
                         "otel-collector-config.yaml").read_text())
TRANSFORM = CONFIG["processors"]["transform/genai"]
STATEMENTS = [s for group in TRANSFORM["trace_statements"] for s in group["statements"]]


def test_the_transform_runs_the_statements_generated_from_the_mapping_table():
    assert [g["context"] for g in TRANSFORM["trace_statements"]] == ["span"]
    assert span_statements() == STATEMENTS, \
        "stale: paste the output of python -m canarytrace.collector.ottl"
    assert TRANSFORM["error_mode"] == "ignore"  # a span OTTL cannot map is still exported


def test_every_plain_rename_of_the_table_is_a_statement_that_keeps_canonical_values():
    for mapping in direct_renames():
        statement = (f'set(attributes["{mapping.target}"], attributes["{mapping.source}"]) '
                     f'where attributes["{mapping.target}"] == nil')
        assert any(s.startswith(statement) for s in STATEMENTS), mapping


def test_provider_statements_give_the_normalizers_provider_names():
    pattern = re.compile(r'set\(attributes\["gen_ai.provider.name"\], "([^"]+)"\) where .*'
                         r'IsMatch\(attributes\["([^"]+)"\], "(.+)"\)$')
    mapped = {}
    for statement in STATEMENTS:
        match = pattern.match(statement)
        if match:
            name, source, regex = match.groups()
            mapped[(source, name)] = re.compile(regex.encode().decode("unicode_escape"))
    for source in provider_sources():
        for value, name in PROVIDER_NAMES.items():
            for spelled in (value, value.upper(), value.title()):
                matches = {n for (s, n), r in mapped.items() if s == source and r.match(spelled)}
                assert matches == {name}, (source, spelled)
                assert normalize({source: spelled, A.OPENINFERENCE_SPAN_KIND: "LLM"}) is True


def test_traces_are_transformed_before_the_exporter_and_logs_and_metrics_are_stored():
    pipelines = CONFIG["service"]["pipelines"]
    processors = pipelines["traces"]["processors"]
    assert processors.index("transform/genai") < processors.index("batch")
    assert processors[0] == "memory_limiter"
    for signal in ("logs", "metrics"):
        assert pipelines[signal]["exporters"] == ["clickhouse"]
        assert pipelines[signal]["receivers"] == ["otlp"]
    exporter = CONFIG["exporters"]["clickhouse"]
    assert (exporter["logs_table_name"], exporter["metrics_table_name"]) == (
        "otel_logs", "otel_metrics")
    assert exporter["create_schema"] is False
