"""``canarytrace serve``: run the collector under uvicorn."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from canarytrace.cli import CommandError, CommandParser
from canarytrace.collector.http_limits import (
    ConnectionLimits,
    connection_cap,
    open_descriptors,
    protocol_class,
    raise_descriptor_limit,
)
from canarytrace.collector.settings import Settings, load_settings
from canarytrace.store.location import StoreInUse, StoreURLError

if TYPE_CHECKING:
    from canarytrace.collector.state import Collector

FLAGS = {  # flag -> Settings field; unset flags fall back to CANARYTRACE_* env, then defaults
    "--host": "host", "--port": "port", "--store": "store", "--database": "database",
    "--cluster": "cluster", "--ttl-days": "ttl_days", "--spool-dir": "spool_dir",
    "--spool-max-bytes": "spool_max_bytes", "--flush-rows": "flush_rows",
    "--flush-interval": "flush_interval_s", "--keys-file": "keys_file",
    "--max-body-bytes": "max_body_bytes", "--ingest-workers": "ingest_workers",
    "--log-level": "log_level", "--auth": "auth", "--max-connections": "max_connections",
    "--header-timeout": "header_timeout_s", "--read-timeout": "read_timeout_s",
    "--keep-alive": "keep_alive_s", "--max-header-bytes": "max_header_bytes",
}


def parse_settings(argv: list[str]) -> Settings:
    parser = CommandParser(
        prog="canarytrace serve",
        description="OTLP/HTTP collector and query API. Every flag can also be set as "
                    "CANARYTRACE_<NAME> (e.g. CANARYTRACE_STORE).")
    for flag, field in FLAGS.items():
        info = Settings.model_fields[field]
        default = "" if "default:" in (info.description or "") else f" (default: {info.default})"
        parser.add_argument(flag, dest=field, default=None, metavar=field.upper(),
                            help=f"{info.description or field}{default}")
    args = parser.parse_args(argv)
    return load_settings(**{k: v for k, v in vars(args).items() if v is not None})


def main(argv: list[str]) -> int:
    settings = parse_settings(argv)
    from canarytrace.collector.app import create_app
    from canarytrace.collector.state import Collector

    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "clickhouse_connect"):  # their retries repeat our one-line errors
        logging.getLogger(noisy).setLevel(max(logging.ERROR, logging.getLogger().level))
    try:
        store_url = settings.store_url
    except StoreURLError as exc:
        raise CommandError(str(exc)) from exc
    listener = listen(settings.host, settings.port)
    try:
        collector = Collector.start(settings)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        listener.close()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, (ValueError, StoreInUse)):  # a bad setting, or a store in use
            raise CommandError(message) from exc
        raise CommandError(f"cannot open store {store_url}: {message}") from exc
    config = uvicorn.Config(create_app(settings, collector), log_level=settings.log_level.lower(),
                            access_log=False, timeout_graceful_shutdown=10,
                            http=limited_protocol(settings, collector),
                            timeout_keep_alive=settings.keep_alive_s, backlog=1024)
    print(startup_line(listener, store_url), flush=True)
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def limited_protocol(settings: Settings, collector: Collector) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with timeouts, a connection cap under the descriptor limit and
    bounded headers (``http_limits``)."""
    cap = connection_cap(settings.max_connections, raise_descriptor_limit(), open_descriptors())
    metrics = collector.metrics
    return protocol_class(ConnectionLimits(
        cap, settings.header_timeout_s, settings.read_timeout_s, settings.max_header_bytes,
        on_refused=metrics.connections_refused.inc, on_timed_out=metrics.connections_timed_out.inc))


def startup_line(listener: socket.socket, store_url: str) -> str:
    """What ``serve`` prints once it accepts spans: where to send them, the store, the page."""
    host, port = listener.getsockname()[:2]
    shown = "localhost" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    return (f"canarytrace serve: listening on {url} (OTLP/HTTP {url}/v1/traces), "
            f"store {_without_password(store_url)}, dashboard {url}/")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so a taken port fails before the store is opened."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        raise CommandError(f"could not listen on {host}:{port}: {exc.strerror}") from exc
    return listener
