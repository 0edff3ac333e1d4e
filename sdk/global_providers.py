"""The global OpenTelemetry providers ``init()`` installs when the application set none.

Instrumentations (OpenLLMetry, OpenInference, traceAI, the OTel OpenAI instrumentation, HTTP
clients ...) take their tracer, meter and logger from the *global* providers, once, when
they instrument. OpenTelemetry lets a global provider be set only once per process, so
canarytrace does not set the providers one ``init()`` builds: it sets *following* providers
that hand out tracers, meters and loggers which always use what the latest ``init()`` set
up (and nothing after ``shutdown()``). A later ``init()`` with other settings therefore
reaches every instrumentation, whenever it was instrumented.

``FollowingTracerProvider`` is an SDK ``TracerProvider``, so tools that add their processor
to an existing global SDK provider (Traceloop's ``init()``) add it to canarytrace's; such
processors are kept across ``init()`` calls.

When the application already set a global SDK provider (Phoenix's ``register()``, Traceloop's
``init()``, its own), ``init()`` adds canarytrace's processors to it instead (``attach``):
spans then go to both backends, with that provider's resource and sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from canarytrace._safety import log_once

Current = Callable[[], Any]
"""Returns the provider the latest ``init()`` set up (None when there is none)."""


# --- spans -----------------------------------------------------------------------------------

class Detachable(SpanProcessor):
    """A processor canarytrace lends to a provider it does not own; ``detach`` stops it."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner: SpanProcessor | None = inner

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        inner = self._inner
        if inner is not None:
            inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        inner = self._inner
        if inner is not None:
            inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        inner = self._inner
        return True if inner is None else inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.detach()

    def detach(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.shutdown()


class _Borrowed(SpanProcessor):
    """A processor someone added to the global provider: shutting down one ``init()``'s
    provider only flushes it, since it goes on with the next one."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.force_flush()


class FollowingTracer(trace.Tracer):
    """A tracer that starts each span with the latest ``init()``'s provider."""

    def __init__(self, current: Current, args: tuple[Any, ...]) -> None:
        self._current, self._args = current, args
        self._for: Any = None
        self._real: trace.Tracer = trace.NoOpTracer()

    def _tracer(self) -> trace.Tracer:
        provider = self._current()
        if provider is not self._for:
            self._real = (trace.NoOpTracer() if provider is None
                          else provider.get_tracer(*self._args))
            self._for = provider
        return self._real

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)


class FollowingTracerProvider(TracerProvider):
    """The global TracerProvider canarytrace installs: its tracers follow ``init()``."""

    def __init__(self, current: Current) -> None:
        super().__init__(shutdown_on_exit=False)
        self._current = current
        self._lent: list[_Borrowed] = []

    @property
    def resource(self) -> Any:
        provider = self._current()
        return provider.resource if provider is not None else super().resource

    def get_tracer(self, instrumenting_module_name: str,
                   instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Any = None) -> trace.Tracer:
        return FollowingTracer(self._current, (instrumenting_module_name,
                                               instrumenting_library_version, schema_url,
                                               attributes))

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        """Add a processor to this and every later ``init()``'s provider."""
        borrowed = _Borrowed(span_processor)
        self._lent.append(borrowed)
        provider = self._current()
        if provider is not None:
            provider.add_span_processor(borrowed)

    def lend_processors(self, provider: Any) -> None:
        """Give a new ``init()``'s provider the processors others added to the global one."""
        for borrowed in self._lent:
            provider.add_span_processor(borrowed)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        provider = self._current()
        return True if provider is None else provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        for borrowed in self._lent:
            borrowed.inner.shutdown()


# --- metrics ---------------------------------------------------------------------------------

def _following_meter_class() -> type:
    """A proxy meter whose instruments are re-bound to each new MeterProvider."""
    from opentelemetry.metrics._internal import _ProxyMeter

    class FollowingMeter(_ProxyMeter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._bound_to: Any = None

        def on_set_meter_provider(self, meter_provider: Any) -> None:
            meter = meter_provider.get_meter(self._name, self._version, self._schema_url)
            with self._lock:
                self._bound_to = meter
                for instrument in self._instruments:
                    instrument.on_meter_set(meter)

    def bound(create: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            instrument = create(self, *args, **kwargs)  # a proxy: the real meter is never set
            meter = self._bound_to
            if meter is not None and hasattr(instrument, "on_meter_set"):
                instrument.on_meter_set(meter)
            return instrument
        return method

    for name in ("create_counter", "create_up_down_counter", "create_observable_counter",
                 "create_histogram", "create_gauge", "create_observable_gauge",
                 "create_observable_up_down_counter"):
        if hasattr(_ProxyMeter, name):
            setattr(FollowingMeter, name, bound(getattr(_ProxyMeter, name)))
    return FollowingMeter


class FollowingMeterProvider(metrics.MeterProvider):
    """The global MeterProvider canarytrace installs: instruments follow ``init()``."""

    def __init__(self) -> None:
        self._meter_class = _following_meter_class()
        self._meters: list[Any] = []
        self._provider: Any = None
        self._lock = threading.Lock()

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Any = None) -> metrics.Meter:
        meter = self._meter_class(name, version=version, schema_url=schema_url)
        with self._lock:
            self._meters.append(meter)
            if self._provider is not None:
                meter.on_set_meter_provider(self._provider)
        return meter

    def follow(self, provider: Any) -> None:
        """Bind every instrument handed out so far (and later) to ``provider`` (None: no-op)."""
        with self._lock:
            self._provider = provider
            target = provider if provider is not None else metrics.NoOpMeterProvider()
            for meter in self._meters:
                meter.on_set_meter_provider(target)


# --- logs ------------------------------------------------------------------------------------

def _following_logger_provider_class() -> type:
    from opentelemetry._logs import Logger, NoOpLogger
    from opentelemetry.sdk._logs import LoggerProvider

    class FollowingLogger(Logger):
        """Emits each record with the latest ``init()``'s LoggerProvider."""

        def __init__(self, current: Current, args: tuple[Any, ...]) -> None:
            super().__init__(args[0])
            self._current, self._args = current, args
            self._for: Any = None
            self._real: Any = NoOpLogger(args[0])

        def _logger(self) -> Any:
            provider = self._current()
            if provider is not self._for:
                self._real = (NoOpLogger(self._args[0]) if provider is None
                              else provider.get_logger(*self._args))
                self._for = provider
            return self._real

        def emit(self, *args: Any, **kwargs: Any) -> None:
            self._logger().emit(*args, **kwargs)

        def enabled(self, *args: Any, **kwargs: Any) -> bool:
            enabled = getattr(self._logger(), "enabled", None)
            return True if enabled is None else bool(enabled(*args, **kwargs))

    class FollowingLoggerProvider(LoggerProvider):
        """The global LoggerProvider canarytrace installs: its loggers follow ``init()``."""

        def __init__(self, current: Current) -> None:
            super().__init__(shutdown_on_exit=False)
            self._current = current

        def get_logger(self, name: str, version: str | None = None,
                       schema_url: str | None = None, attributes: Any = None) -> Any:
            return FollowingLogger(self._current, (name, version, schema_url, attributes))

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            provider = self._current()
            return True if provider is None else provider.force_flush(timeout_millis)

    return FollowingLoggerProvider


# --- installing them -------------------------------------------------------------------------

class GlobalProviders:
    """Which global providers canarytrace installed, and the ones the application set."""

    def __init__(self) -> None:
        self.tracer: FollowingTracerProvider | None = None
        self.meter: FollowingMeterProvider | None = None
        self.logger: Any = None

    def owns(self, provider: Any) -> bool:
        return provider is not None and provider in (self.tracer, self.meter, self.logger)

    def foreign_tracer_provider(self) -> Any:
        """The global TracerProvider the application set, when it is an SDK one (else None)."""
        provider = trace.get_tracer_provider()
        if self.owns(provider) or not isinstance(provider, TracerProvider):
            return None
        return provider

    def foreign_logger_provider(self) -> Any:
        from opentelemetry._logs import get_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider

        provider = get_logger_provider()
        if self.owns(provider) or not isinstance(provider, LoggerProvider):
            return None
        return provider

    def install_tracer(self, current: Current) -> bool:
        """Make a FollowingTracerProvider global when no provider is set; True when it is."""
        if self.tracer is None and isinstance(trace.get_tracer_provider(),
                                              trace.ProxyTracerProvider):
            provider = FollowingTracerProvider(current)
            trace.set_tracer_provider(provider)
            if trace.get_tracer_provider() is provider:
                self.tracer = provider
        return self.tracer is not None

    def install_meter(self) -> bool:
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        if self.meter is None and isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
            provider = FollowingMeterProvider()
            metrics.set_meter_provider(provider)
            if metrics.get_meter_provider() is provider:
                self.meter = provider
        return self.meter is not None

    def install_logger(self, current: Current) -> bool:
        from opentelemetry._logs import get_logger_provider, set_logger_provider
        from opentelemetry._logs._internal import ProxyLoggerProvider

        if self.logger is None and isinstance(get_logger_provider(), ProxyLoggerProvider):
            try:
                provider = _following_logger_provider_class()(current)
                set_logger_provider(provider)
            except Exception as exc:  # noqa: BLE001 - logs are optional
                log_once("could not install the global LoggerProvider", exc)
                return False
            if get_logger_provider() is provider:
                self.logger = provider
        return self.logger is not None


installed = GlobalProviders()
