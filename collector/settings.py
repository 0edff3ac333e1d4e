"""The collector's settings: one model, read from ``CANARYTRACE_*`` env vars and CLI flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from canarytrace.cli import CommandError
from canarytrace.store.location import DEFAULT_STORE, chdb_path, resolve_store_url

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Everything ``canarytrace serve`` can be told; env ``CANARYTRACE_<FIELD>`` or a CLI flag."""

    model_config = SettingsConfigDict(env_prefix="CANARYTRACE_", extra="ignore")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(4318, ge=0, le=65535, description="port to listen on")
    store: str = Field(DEFAULT_STORE, description="chdb:///dir (embedded) or "
                                                  "http(s)://user:pass@host:8123[/db]")
    database: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="ClickHouse database (default: the server URL's path, else canarytrace)")
    cluster: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-]+$",
                                description="ClickHouse cluster: ON CLUSTER DDL, Replicated "
                                            "tables, Distributed tables")
    ttl_days: int = Field(0, ge=0, description="drop spans older than this many days; 0 keeps all")

    spool_dir: Path | None = Field(None, description="where acknowledged spans wait for the "
                                                     "store (default: the store's state "
                                                     "folder); one collector per spool")
    spool_max_bytes: int = Field(512 * MIB, gt=0,
                                 description="spool size at which requests get 503")
    flush_rows: int = Field(50_000, gt=0, description="rows per ClickHouse insert (at most)")
    flush_interval_s: float = Field(2.0, gt=0, description="longest time a span waits for insert")

    keys_file: Path | None = Field(None, description="API keys file (default: keys.json in "
                                                     "the store's state folder)")
    auth: Literal["auto", "keys", "none"] = Field(
        "auto", description="keys: every request needs an API key; none: no authentication; "
                            "auto: keys once any key was ever created for this store")
    max_body_bytes: int = Field(8 * MIB, gt=0, description="request body limit, checked before "
                                                           "and after gzip")
    max_attribute_length: int = Field(128 * 1024, gt=0, description="longer values are truncated")
    max_attributes_per_span: int = Field(1024, gt=0, description="spans with more are rejected")
    max_attribute_key_length: int = Field(1024, gt=0, description="spans with longer keys rejected")
    max_json_depth: int = Field(64, gt=0, description="spans with attribute JSON nested deeper "
                                                      "are rejected")
    max_connections: int = Field(1000, gt=0, description="open connections at most (also kept "
                                                         "under half the file descriptor limit)")
    header_timeout_s: float = Field(10.0, gt=0, description="a connection must send its request "
                                                            "headers within this time")
    read_timeout_s: float = Field(30.0, gt=0, description="longest pause while a request body "
                                                          "arrives")
    keep_alive_s: int = Field(5, gt=0, description="idle keep-alive connections are closed after")
    max_header_bytes: int = Field(64 * 1024, gt=0, description="request line and headers at most")

    ingest_workers: int | None = Field(
        None, ge=0, description="processes that decode and convert OTLP bodies "
                                "(default: one per spare core, at most 4; 0: in the server)")
    ingest_fast_path: bool = Field(True, description="convert common protobuf requests by the "
                                                     "compiled fast path (numba; about 125 MB "
                                                     "more per ingest worker)")
    eval_enabled: bool = Field(True, description="score sampled spans in the background")
    eval_interval_s: float = Field(30.0, gt=0, description="seconds between evaluation passes")
    eval_grace_s: float = Field(300.0, ge=0, description="re-check this far behind the "
                                                         "watermark for late spans")
    eval_settle_s: float = Field(5.0, ge=0, description="leave younger spans to the next pass")
    eval_lookback_s: float = Field(3600.0, ge=0, description="how far back the first pass looks")
    eval_evaluators: str | None = Field(None, description="comma-separated evaluator names "
                                                          "(default: every configured one)")
    eval_sample_rate: float = Field(1.0, ge=0, le=1, description="share of requests scored")
    eval_sample: str = Field("", description="per route/cohort rates, e.g. "
                                             "'route=billing:0.5 cohort=eu:1'")

    log_level: str = Field("warning", description="debug, info, warning or error")

    @property
    def store_url(self) -> str:
        return resolve_store_url(self.store)

    @property
    def state_dir(self) -> Path:
        """This store's own folder for the spool, keys and auth mode: ``<store>-state`` next to
        an embedded store, ``./.canarytrace/<host>-<port>-<database>-state`` for a server."""
        path = chdb_path(self.store)
        if path is not None:
            return path.with_name(f"{path.name}-state")
        parsed = urlsplit(self.store_url)
        database = self.database or parsed.path.strip("/") or "canarytrace"
        name = re.sub(r"[^A-Za-z0-9_.]+", "_", f"{parsed.hostname}-{parsed.port or ''}-{database}")
        return Path(".canarytrace").absolute() / f"{name}-state"

    @property
    def legacy_state_dir(self) -> Path:
        """Where versions before per-store state kept spool and keys (shared by siblings)."""
        path = chdb_path(self.store)
        return path.parent if path else Path(".canarytrace").absolute()

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.state_dir / "spool"

    @property
    def keys_path(self) -> Path:
        return self.keys_file or self.state_dir / "keys.json"

    @property
    def auth_markers(self) -> tuple[Path, ...]:
        """Written once keys exist for this store: from then on, no keys means no access.

        One beside the keys file, one in the spool (which must persist anyway), so losing
        either folder alone never opens the store."""
        keys = self.keys_path
        return keys.with_name(keys.name + ".configured"), self.spool_path / ".auth-keys"


def load_settings(**given: Any) -> Settings:
    """Settings from ``given`` over ``CANARYTRACE_*`` env; a bad value is one CommandError line."""
    try:
        return Settings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise CommandError(f"invalid {error['loc'][0]}: {error['msg']}") from exc
