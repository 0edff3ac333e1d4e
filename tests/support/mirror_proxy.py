"""A mirroring proxy for tests, doing what Envoy's ``request_mirror_policies`` does:

    MIRROR_PRIMARY=http://127.0.0.1:8001 MIRROR_SHADOW=http://127.0.0.1:8002 \\
        python -m uvicorn tests.support.mirror_proxy:app --port 8000

Every request goes to the primary, whose response is returned; a copy, with the same headers
and ``x-request-id`` (generated when the client sent none, as Envoy does) and ``-shadow``
appended to the Host, goes to the shadow in the background; its response is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import httpx

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"host",
              b"content-length"}


class MirroringProxy:
    def __init__(self, primary: str, shadow: str) -> None:
        self.primary, self.shadow = primary.rstrip("/"), shadow.rstrip("/")
        self.client: httpx.AsyncClient | None = None
        self.mirrors: set[asyncio.Task] = set()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._proxy(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(timeout=30)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.gather(*self.mirrors, return_exceptions=True)
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in HOP_BY_HOP}
        headers.setdefault("x-request-id", str(uuid.uuid4()))
        host = dict(scope["headers"]).get(b"host", b"service").decode()
        target = scope["path"] + (f"?{scope['query_string'].decode()}"
                                  if scope["query_string"] else "")
        mirror = asyncio.create_task(self._mirror(scope["method"], target, body,
                                                  {**headers, "host": f"{host}-shadow"}))
        self.mirrors.add(mirror)
        mirror.add_done_callback(self.mirrors.discard)
        response = await self.client.request(scope["method"], self.primary + target,
                                             headers=headers, content=body)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()
                                if k.encode() not in HOP_BY_HOP | {b"content-encoding"}]})
        await send({"type": "http.response.body", "body": response.content})

    async def _mirror(self, method: str, target: str, body: bytes, headers: dict) -> None:
        with contextlib.suppress(httpx.HTTPError):  # a mirror's failure never reaches the client
            await self.client.request(method, self.shadow + target, headers=headers,
                                      content=body)


app = MirroringProxy(os.environ.get("MIRROR_PRIMARY", "http://127.0.0.1:8001"),
                     os.environ.get("MIRROR_SHADOW", "http://127.0.0.1:8002"))
