"""The docker/ deployment is consistent with the code it deploys.

Docker is not available where the tests run, so these tests check what a broken deployment
would get wrong: files the compose file mounts, env var names the collector ignores, a
Grafana data source or dashboard that is not there, an OpenTelemetry Collector writing a
table that does not match ours, and a package that would not ship the built-in page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from canarytrace import attributes as A
from canarytrace.collector.settings import Settings
from canarytrace.store.client import Store
from canarytrace.store.schema import quote
from tests.collector.test_store import EXPORTER_COLUMNS  # the exporter's otel_traces

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OTEL = yaml.safe_load((DOCKER / "otel-collector-config.yaml").read_text())
PLUGIN = "grafana-clickhouse-datasource"



def interpolate(value: str) -> str:
    """Compose's ``${NAME:-default}`` / ``${NAME}`` with nothing set in the environment."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", str(value))


def environment(service: str) -> dict[str, str]:
    env = dict(SERVICES[service].get("environment") or {})
    return {key: interpolate(value) for key, value in env.items()}


def bind_mounts(service: str) -> list[tuple[Path, str]]:
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((DOCKER / source).resolve(), target))
    return mounts


# --- compose ----------------------------------------------------------------------------

def test_compose_runs_clickhouse_the_collector_grafana_and_an_otel_collector():
    assert set(SERVICES) == {"clickhouse", "collector", "grafana", "otel-collector"}
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert SERVICES["otel-collector"]["image"].startswith(
        "otel/opentelemetry-collector-contrib:")
    for service in SERVICES.values():
        if "image" in service and "build" not in service:
            assert not service["image"].endswith(":latest"), service["image"]


def test_every_file_the_compose_file_mounts_or_builds_from_exists():
    for service in SERVICES:
        for source, _ in bind_mounts(service):
            assert source.exists(), f"{service} mounts missing {source}"
    build = SERVICES["collector"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()


def test_collector_environment_names_are_settings_the_collector_reads(monkeypatch):
    fields = {f"CANARYTRACE_{name.upper()}" for name in Settings.model_fields}
    env = environment("collector")
    dockerfile_env = set(re.findall(r"\b(CANARYTRACE_\w+)=", (DOCKER / "Dockerfile").read_text()))
    unknown = ({k for k in env if k.startswith("CANARYTRACE_")} | dockerfile_env) - fields
    assert not unknown, f"the collector has no setting for {sorted(unknown)}"
    for key in list(os.environ):
        if key.startswith("CANARYTRACE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 4318)
    assert SERVICES["collector"]["ports"] == [f"{settings.port}:{settings.port}"]
    store = urlparse(settings.store_url)
    assert store.scheme == "http" and store.hostname == "clickhouse" and store.port == 8123
    assert store.path.strip("/") == settings.database == "canarytrace"
    clickhouse = environment("clickhouse")
    assert clickhouse["CLICKHOUSE_DB"] == settings.database
    assert (store.username, store.password) == (clickhouse["CLICKHOUSE_USER"],
                                                clickhouse["CLICKHOUSE_PASSWORD"])


def test_collector_waits_for_clickhouse_and_the_otel_collector_for_the_schema():
    assert SERVICES["collector"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert SERVICES["otel-collector"]["depends_on"]["collector"]["condition"] == "service_healthy"


# --- the image ----------------------------------------------------------------------------

def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    text = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, flags=re.M)
    assert len(stages) >= 2 and stages[0][1] == "builder"
    builder, final = text.split("\nFROM ", 2)[1:3] if text.count("\nFROM ") >= 2 else ("", "")
    assert 'pip install ".[collector,evaluators]"' in builder
    assert "COPY --from=builder" in final
    user = re.findall(r"^USER\s+(\S+)", final, flags=re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.M)
    assert re.search(r"^EXPOSE 4318$", text, flags=re.M)
    for source in re.findall(r"^COPY (?!--)(\S+)", text, flags=re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert (DOCKER / "Dockerfile.dockerignore").is_file()


def test_a_non_editable_install_ships_the_built_in_page(tmp_path):
    """What ``pip install .`` in the image installs must serve the page and its panels."""
    source = tmp_path / "src"  # what the Dockerfile copies into its builder stage
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"].values()
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for name in folders:
        assert re.search(rf"^COPY {name}/ {name}/$", dockerfile, flags=re.M), name
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True, capture_output=True,
                   timeout=300)
    wheel = next(tmp_path.glob("canarytrace-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "collector" / "static"
    for path in static.rglob("*"):
        if path.is_file():
            assert f"canarytrace/collector/static/{path.relative_to(static)}" in names
    for name in ("panels.yaml", "prices.yaml"):
        assert f"canarytrace/dashboards/{name}" in names


# --- Grafana ------------------------------------------------------------------------------

def test_grafana_installs_the_plugin_and_provisions_a_clickhouse_data_source():
    env = environment("grafana")
    assert PLUGIN in env["GF_INSTALL_PLUGINS"].split(",")
    mounts = dict((target, source) for source, target in bind_mounts("grafana"))
    folder = mounts["/etc/grafana/provisioning/datasources"]
    datasources = yaml.safe_load((folder / "clickhouse.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == PLUGIN
    data = source["jsonData"]
    assert data["host"] == "clickhouse" and data["port"] == 8123 and data["protocol"] == "http"
    assert data["defaultDatabase"] == environment("clickhouse")["CLICKHOUSE_DB"]
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}"
    assert "CLICKHOUSE_PASSWORD" in env


def test_grafana_dashboard_provider_points_at_the_canarytrace_dashboard():
    mounts = dict((target, source) for source, target in bind_mounts("grafana"))
    providers = yaml.safe_load((mounts["/etc/grafana/provisioning/dashboards"]
                                / "canarytrace.yaml").read_text())["providers"]
    (provider,) = providers
    folder = provider["options"]["path"]
    assert folder in mounts, f"nothing is mounted at the provider path {folder}"
    dashboards = list(mounts[folder].glob("*.json"))
    assert [d.name for d in dashboards] == ["canarytrace.json"]
    dashboard = json.loads(dashboards[0].read_text())
    assert dashboard["uid"] == "canarytrace"
    assert {p["datasource"]["type"] for p in dashboard["panels"]} == {PLUGIN}
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{folder}/canarytrace.json"


# --- OpenTelemetry Collector ----------------------------------------------------------------

def test_otel_collector_writes_our_table_without_creating_a_schema():
    exporter = OTEL["exporters"]["clickhouse"]
    assert exporter["create_schema"] is False
    assert exporter["traces_table_name"] == "otel_traces"
    assert exporter["database"] == environment("clickhouse")["CLICKHOUSE_DB"]
    assert urlparse(exporter["endpoint"]).hostname == "clickhouse"
    assert OTEL["service"]["pipelines"]["traces"]["exporters"] == ["clickhouse"]
    assert {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} <= set(environment("otel-collector"))


@pytest.fixture
def store(tmp_path):
    store = Store.from_url(f"chdb://{tmp_path}/db")
    store.migrate()
    yield store
    store.close()


def test_otel_traces_has_the_exporters_columns_and_computes_ours(store):
    columns = {r["name"]: r for r in store.query(
        "SELECT name, type, default_kind FROM system.columns "
        "WHERE database = {db:String} AND table = 'otel_traces'", {"db": store.database})}
    for name, type_ in EXPORTER_COLUMNS.items():
        assert name in columns, f"otel_traces has no column {name}"
        assert columns[name]["type"] == type_, name
    ours = set(columns) - set(EXPORTER_COLUMNS)
    assert all(columns[c]["default_kind"] in ("MATERIALIZED", "DEFAULT", "ALIAS") for c in ours)


def test_an_insert_shaped_like_the_exporters_fills_the_canary_columns(store):
    """The Go exporter inserts only its own columns; Model, Variant, ... must follow."""
    attributes = {A.GEN_AI_REQUEST_MODEL: "llama-3-8b-lora-r16", A.CANARY_VARIANT: "candidate",
                  A.CANARY_ROLE: "shadow", A.CANARY_ROUTE: "billing",
                  A.GEN_AI_USAGE_INPUT_TOKENS: "120", A.GEN_AI_USAGE_OUTPUT_TOKENS: "30"}
    names = ", ".join(EXPORTER_COLUMNS)
    as_map = "map(" + ", ".join(f"{quote(k)}, {quote(v)}" for k, v in attributes.items()) + ")"
    store.client.command(
        f"INSERT INTO {store.table('otel_traces')} ({names}) VALUES "
        "(now64(9), 'aa' || repeat('0', 30), '00000000000000bb', '', '', 'chat', 'Client', "
        f"'svc', map({quote(A.SERVICE_NAME)}, 'svc'), 'scope', '1', {as_map}, "
        "1000000, 'Ok', '', [], [], [], [], [], [], [])")
    (row,) = store.query(f"SELECT Model, Variant, Role, Route, InputTokens, OutputTokens, "
                         f"Project FROM {store.table('otel_traces')}")
    assert row == {"Model": "llama-3-8b-lora-r16", "Variant": "candidate", "Role": "shadow",
                   "Route": "billing", "InputTokens": 120, "OutputTokens": 30,
                   "Project": "default"}
