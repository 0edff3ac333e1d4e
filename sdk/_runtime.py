"""SDK state: the settings ``init()`` chose and the tracer and meter every span and counter uses.

Without ``init()`` the SDK follows the global OpenTelemetry providers, so an application's own
OpenTelemetry setup receives canarytrace's spans. ``init()`` either adopts a TracerProvider or
builds one that exports OTLP/HTTP to the canarytrace collector (plus a MeterProvider for
``/v1/metrics`` and a LoggerProvider for ``/v1/logs``). When the application set no global
provider, ``init()`` makes canarytrace's the global ones (``global_providers``), so that
other instrumentations export to canarytrace too; when it set an SDK TracerProvider, ``init()``
adds canarytrace's processors to it. ``set_global=False`` leaves the globals alone.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased

from canarytrace import attributes as A
from canarytrace import context
from canarytrace._safety import log_once
from canarytrace.global_providers import Detachable, installed
from canarytrace.sampling import PairRatioSampler
from canarytrace.stamping import stamp_spans_of

_INSTRUMENTATION = "canarytrace"
DEFAULT_ENDPOINT = "http://localhost:4318"
SHUTDOWN_TIMEOUT_S = 5.0
"""How long ``shutdown()`` (and interpreter exit) waits for the last export: a collector that
is down makes every batch retry for up to its export timeout, which would hang the exit."""
Redactor = Callable[[str], str]


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _env_rate() -> float:
    raw = os.environ.get("CANARYTRACE_SAMPLE_RATE", "1.0")
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"CANARYTRACE_SAMPLE_RATE must be a number, got {raw!r}") from None


DEFAULT_REQUEST_ID_HEADER = "x-request-id"
_LABEL_VALUES = {"CANARYTRACE_VARIANT": (A.VARIANT_BASE, A.VARIANT_CANDIDATE),
                 "CANARYTRACE_ROLE": (A.ROLE_PRIMARY, A.ROLE_SHADOW)}


def _env_label(name: str) -> str | None:
    """A mesh label from the environment (``CANARYTRACE_VARIANT``/``_ROLE``); None when unset."""
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw not in _LABEL_VALUES[name]:
        allowed = " or ".join(_LABEL_VALUES[name])
        raise ValueError(f"{name} must be {allowed}, got {raw!r}")
    return raw


def _env_request_id_header() -> str:
    return (os.environ.get("CANARYTRACE_REQUEST_ID_HEADER") or "").strip().lower() \
        or DEFAULT_REQUEST_ID_HEADER


def process_labels(variant: str | None, role: str | None) -> dict[str, str]:
    """The span attributes a labelled process stamps on every LLM span: its variant, and its
    role (``primary`` unless told ``shadow``) once it has a variant."""
    if variant is None:
        return {A.CANARY_ROLE: role} if role else {}
    return {A.CANARY_VARIANT: variant, A.CANARY_ROLE: role or A.ROLE_PRIMARY}


def _apply_env_labels() -> None:
    """At import: label the process from its environment, so that code that never calls
    ``init()`` is labelled too; a bad value is logged, never raised."""
    try:
        labels = process_labels(_env_label("CANARYTRACE_VARIANT"), _env_label("CANARYTRACE_ROLE"))
    except ValueError as exc:
        log_once("ignoring the mesh labels", exc)
        labels = {}
    context.set_process_attributes(labels)


@dataclass(frozen=True)
class Settings:
    """What ``init()`` configured; unset arguments fall back to ``CANARYTRACE_*`` env vars."""

    service_name: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = None
    sample_rate: float = 1.0
    capture_content: bool = True
    redact: Redactor | None = None
    variant: str | None = None
    """``CANARYTRACE_VARIANT``: ``base`` or ``candidate``, stamped on every LLM span."""
    role: str | None = None
    """``CANARYTRACE_ROLE``: ``primary`` (default) or ``shadow`` (a mirror target)."""
    request_id_header: str = field(default_factory=_env_request_id_header)
    """``CANARYTRACE_REQUEST_ID_HEADER``: the header the request-id middlewares read."""

    @classmethod
    def resolve(cls, service_name: str | None = None, endpoint: str | None = None,
                api_key: str | None = None, sample_rate: float | None = None,
                capture_content: bool | None = None, redact: Redactor | None = None) -> Settings:
        env = os.environ
        rate = sample_rate if sample_rate is not None else _env_rate()
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {rate}")
        if redact is not None and not callable(redact):
            raise TypeError("redact must be a callable taking and returning a str")
        return cls(
            service_name=service_name or env.get("CANARYTRACE_SERVICE_NAME"),
            endpoint=_base_url(endpoint or env.get("CANARYTRACE_ENDPOINT") or DEFAULT_ENDPOINT),
            api_key=api_key or env.get("CANARYTRACE_API_KEY") or None,
            sample_rate=rate,
            capture_content=(capture_content if capture_content is not None
                             else _env_bool("CANARYTRACE_CAPTURE_CONTENT", True)),
            redact=redact,
            variant=_env_label("CANARYTRACE_VARIANT"),
            role=_env_label("CANARYTRACE_ROLE"),
        )

    def labels(self) -> dict[str, str]:
        """The mesh labels this process stamps on its LLM spans."""
        return process_labels(self.variant, self.role)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _base_url(endpoint: str) -> str:
    """``http://host:4318`` from any of ``http://host:4318/``, ``.../v1/traces``."""
    endpoint = endpoint.rstrip("/")
    for suffix in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        if endpoint.endswith(suffix):
            endpoint = endpoint[: -len(suffix)]
    return endpoint


class _State:
    """The SDK's one mutable state; ``tracer`` is read on every call, so it is cached here."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.tracer_provider: TracerProvider | None = None  # None: the global provider
        self.meter_provider: Any = None  # a MeterProvider, or None: the global one
        self.logger_provider: Any = None  # a LoggerProvider while canarytrace's is global
        self.owns_providers = False
        self.owned: list[Any] = []  # providers init() built (shut down on release)
        self.lent: list[Detachable] = []  # processors init() added to the app's provider
        self.tracer: trace.Tracer = trace.get_tracer(_INSTRUMENTATION, _version())
        self.meter: metrics.Meter | None = None


def _version() -> str:
    from canarytrace import __version__

    return __version__


state = _State()
_apply_env_labels()


def init(service_name: str | None = None, endpoint: str | None = None,
         api_key: str | None = None, sample_rate: float | None = None,
         capture_content: bool | None = None, redact: Redactor | None = None,
         tracer_provider: trace.TracerProvider | None = None,
         set_global: bool = True) -> trace.TracerProvider:
    """Configure the SDK and return the TracerProvider its spans go to.

    With ``tracer_provider`` the SDK adopts it (your processors and exporters, your sampler).
    Otherwise it builds one: service-name resource, parent-based ratio sampling at
    ``sample_rate`` (by pair id when a root span has one, so that both arms of a mirrored
    request are kept or dropped together, even in two processes), batched OTLP/HTTP export
    to ``endpoint``/v1/traces with ``api_key`` as a Bearer token. ``capture_content=False``
    records no message or tool content; ``redact`` is applied to every captured text before it
    is put on a span. ``CANARYTRACE_VARIANT`` and ``CANARYTRACE_ROLE`` label every LLM span.

    ``set_global`` (default True): with no global OpenTelemetry providers set, canarytrace's
    become the global ones, so instrumentations that use the globals (all of them, by
    default) export here too; with a global SDK TracerProvider already set (Phoenix's
    ``register()``, Traceloop's ``init()``), canarytrace's span processors are added to it and
    its resource and sampler apply. Spans of every instrumentation started inside a
    canarytrace scope (``expect``, ``Canary``, ``request``) get the scope's attributes.
    """
    settings = Settings.resolve(service_name, endpoint, api_key, sample_rate,
                                capture_content, redact)
    _release_owned_providers()
    state.settings = settings
    context.set_process_attributes(settings.labels())
    if tracer_provider is not None and not installed.owns(tracer_provider):
        state.tracer_provider, state.meter_provider = tracer_provider, None
        state.owns_providers = False
        stamp_spans_of(tracer_provider)
    else:
        _set_up_providers(settings, set_global)
    if set_global:
        _follow_from_globals(settings, own=tracer_provider is None)
    state.tracer = state.tracer_provider.get_tracer(_INSTRUMENTATION, _version())
    state.meter = None
    return state.tracer_provider


def _set_up_providers(settings: Settings, set_global: bool) -> None:
    """Build the tracer and meter providers, or lend our span export to the app's global
    SDK TracerProvider."""
    foreign = installed.foreign_tracer_provider() if set_global else None
    if foreign is not None:
        from canarytrace.processor import export_processor

        stamp_spans_of(foreign)
        lent = Detachable(export_processor(_span_exporter(settings)))
        foreign.add_span_processor(lent)
        state.tracer_provider, state.lent = foreign, [lent]
    else:
        state.tracer_provider = _build_tracer_provider(settings)
        state.owned.append(state.tracer_provider)
    state.meter_provider = _build_meter_provider(settings)
    state.owned.append(state.meter_provider)
    state.owns_providers = True


def _follow_from_globals(settings: Settings, own: bool) -> None:
    """Install canarytrace's global providers where none is set, following this init()."""
    try:
        if installed.install_tracer(lambda: state.tracer_provider) and installed.tracer:
            installed.tracer.lend_processors(state.tracer_provider)
        if installed.install_meter() and installed.meter:
            installed.meter.follow(state.meter_provider)
        if own and installed.install_logger(lambda: state.logger_provider):
            state.logger_provider = _build_logger_provider(settings)
            state.owned.append(state.logger_provider)
    except Exception as exc:  # noqa: BLE001 - telemetry never breaks the application
        log_once("could not install the global OpenTelemetry providers", exc)


def _span_exporter(settings: Settings) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"{settings.endpoint}/v1/traces",
                            headers=settings.headers())


def _build_tracer_provider(settings: Settings) -> TracerProvider:
    from canarytrace.processor import export_processor

    provider = TracerProvider(
        resource=_resource(settings),
        sampler=ParentBased(PairRatioSampler(settings.sample_rate)),
        shutdown_on_exit=False,  # our atexit hook bounds the wait
    )
    stamp_spans_of(provider)
    provider.add_span_processor(export_processor(_span_exporter(settings)))
    return provider


def _build_logger_provider(settings: Settings) -> Any:
    """A LoggerProvider exporting OTLP/HTTP to ``endpoint``/v1/logs (GenAI content and
    evaluation events of other instrumentations)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=_resource(settings), shutdown_on_exit=False)
    exporter = OTLPLogExporter(endpoint=f"{settings.endpoint}/v1/logs",
                               headers=settings.headers())
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


def _build_meter_provider(settings: Settings) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = OTLPMetricExporter(endpoint=f"{settings.endpoint}/v1/metrics",
                                  headers=settings.headers())
    reader = PeriodicExportingMetricReader(exporter)
    return MeterProvider(resource=_resource(settings), metric_readers=[reader],
                         shutdown_on_exit=False)


def _resource(settings: Settings) -> Resource:
    attributes = {SERVICE_NAME: settings.service_name} if settings.service_name else {}
    return Resource.create(attributes)


def _within(seconds: float, action: Callable[[], Any], what: str) -> bool:
    """Run ``action`` on a daemon thread; True when it finished in time and returned truthy."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once(f"{what} failed", exc)
            outcome.append(False)

    worker = threading.Thread(target=run, name=f"canarytrace-{what}", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # no new threads at interpreter exit (Python >= 3.12): wait inline
        run()
        return outcome[0] is not False
    worker.join(seconds)
    if worker.is_alive():
        log_once(f"{what} did not finish within {seconds:g} s (is the collector down?)")
        return False
    return outcome[0] is not False


def _release_owned_providers(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Shut down the providers a previous ``init()`` built (adopted ones belong to the caller)."""
    if not state.owns_providers:
        return
    providers = [p for p in state.owned if p is not None]
    lent = list(state.lent)
    state.owns_providers = False
    state.owned, state.lent = [], []
    _within(timeout_s, lambda: [p.shutdown() for p in [*lent, *providers]], "shutdown")


atexit.register(_release_owned_providers)


def shutdown(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Export what is queued (waiting at most ``timeout_s``) and stop what ``init()`` built;
    afterwards the SDK follows the global providers."""
    _release_owned_providers(timeout_s)
    state.settings = Settings()
    _apply_env_labels()
    state.tracer_provider = state.meter_provider = state.logger_provider = None
    if installed.meter is not None:
        installed.meter.follow(None)
    state.tracer = trace.get_tracer(_INSTRUMENTATION, _version())
    state.meter = None


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span now, waiting at most ``timeout_millis``; True on success."""
    provider = state.tracer_provider or trace.get_tracer_provider()
    flushes = [f for f in (getattr(provider, "force_flush", None),
                           getattr(state.logger_provider, "force_flush", None)) if f is not None]
    if not flushes:
        return True
    return _within(timeout_millis / 1000, lambda: all([f(timeout_millis) for f in flushes]),
                   "force_flush")


def get_tracer() -> trace.Tracer:
    """The tracer every canarytrace span is started with."""
    return state.tracer


def get_meter() -> metrics.Meter:
    """The meter canarytrace counters are created on (the global one without ``init()``)."""
    if state.meter is None:
        provider = state.meter_provider or metrics.get_meter_provider()
        state.meter = provider.get_meter(_INSTRUMENTATION, _version())
    return state.meter


def settings() -> Settings:
    return state.settings
