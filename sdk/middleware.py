"""Request-id middlewares: every LLM span a web request causes gets its ``x-request-id``.

    app.add_middleware(ct.RequestIdMiddleware)               # FastAPI / Starlette (ASGI)
    app = ct.RequestIdMiddleware(app, header="x-trace-id")   # any ASGI app
    flask_app.wsgi_app = ct.WSGIRequestIdMiddleware(flask_app.wsgi_app)   # WSGI

The header is ``x-request-id`` (what Envoy, Istio and Linkerd keep on a mirrored copy) unless
told otherwise here or by ``CANARYTRACE_REQUEST_ID_HEADER``. Both are plain ASGI/WSGI
callables: nothing web-framework-specific is imported. A request without the header, or with
an unusable one, is served unchanged and unpaired.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from canarytrace._runtime import settings
from canarytrace._safety import log_once
from canarytrace.context import scoped_attributes
from canarytrace.request_context import request_attributes

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                   Awaitable[None]]
WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def _header_name(header: str | None) -> str:
    return (header or settings().request_id_header).strip().lower()


class RequestIdMiddleware:
    """ASGI middleware: HTTP and WebSocket requests run in ``ct.request(<header value>)``."""

    def __init__(self, app: ASGIApp, header: str | None = None) -> None:
        self.app = app
        self.header = header

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        attributes = self._attributes(scope)
        if not attributes:
            await self.app(scope, receive, send)
            return
        with scoped_attributes(attributes):
            await self.app(scope, receive, send)

    def _attributes(self, scope: Mapping[str, Any]) -> dict[str, str]:
        if scope.get("type") not in ("http", "websocket"):
            return {}
        try:
            wanted = _header_name(self.header).encode("latin-1")
            for name, value in scope.get("headers") or ():
                if name.lower() == wanted:
                    return request_attributes(value)
        except Exception as exc:  # noqa: BLE001 - telemetry never breaks the application
            log_once("could not read the request id", exc)
        return {}


class WSGIRequestIdMiddleware:
    """WSGI middleware: the app, and the iteration of its response body, run in
    ``ct.request(<header value>)``."""

    def __init__(self, app: WSGIApp, header: str | None = None) -> None:
        self.app = app
        self.header = header

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        attributes = self._attributes(environ)
        if not attributes:
            return self.app(environ, start_response)
        with scoped_attributes(attributes):
            body = self.app(environ, start_response)
        if isinstance(body, (list, tuple)):
            return body
        return _ScopedBody(body, attributes)

    def _attributes(self, environ: Mapping[str, Any]) -> dict[str, str]:
        try:
            key = "HTTP_" + _header_name(self.header).upper().replace("-", "_")
            value = environ.get(key)
            return request_attributes(value) if value is not None else {}
        except Exception as exc:  # noqa: BLE001 - telemetry never breaks the application
            log_once("could not read the request id", exc)
            return {}


class _ScopedBody:
    """A streamed WSGI body whose every chunk is produced inside the request's scope."""

    def __init__(self, body: Iterable[bytes], attributes: Mapping[str, str]) -> None:
        self._body = body
        self._attributes = attributes

    def __iter__(self) -> Iterator[bytes]:
        with scoped_attributes(self._attributes):
            chunks = iter(self._body)
        while True:
            with scoped_attributes(self._attributes):
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
