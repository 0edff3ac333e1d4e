"""An OpenAI-compatible chat-completions server for instrumentation tests (stdlib only).

``POST /v1/chat/completions`` answers deterministically from the request, so a test decides
what the "model" says:

- the reply text is what follows ``say:`` in the last user message (else ``ok``);
- with ``tools`` given and a last user message containing ``call:NAME {json}``, the answer is
  that tool call (``finish_reason`` ``tool_calls``);
- ``stream: true`` answers with server-sent events, split into several chunks, and a final
  usage chunk when ``stream_options.include_usage`` is set, as the real API does.

The response model is the request model plus ``-2024-01-01`` (a dated snapshot, as OpenAI
answers), so tests can tell the request model from the response model. Token counts are
the number of whitespace-separated words in the prompt and in the answer.

    python -m tests.instrumentation.fake_openai PORT      # serve until killed
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SNAPSHOT_SUFFIX = "-2024-01-01"
CREATED = 1_700_000_000
_CALL = re.compile(r"call:(\w+)\s*(\{.*\})?", re.S)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The assistant message and finish reason for a chat-completions request."""
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    last = _text(users[-1].get("content")) if users else ""
    call = _CALL.search(last) if request.get("tools") else None
    if call:
        arguments = call.group(2) or "{}"
        tool_call = {"id": "call_0001", "type": "function",
                     "function": {"name": call.group(1), "arguments": arguments}}
        return {"message": {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                "finish_reason": "tool_calls"}
    text = last.split("say:", 1)[1].strip() if "say:" in last else "ok"
    return {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}


def usage(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(_text(m.get("content")).split()) for m in request.get("messages", []))
    message = reply["message"]
    completion = len((message.get("content") or "").split()) + sum(
        len(c["function"]["arguments"].split()) + 1 for c in message.get("tool_calls") or [])
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def completion(request: dict[str, Any]) -> dict[str, Any]:
    reply = answer(request)
    return {"id": "chatcmpl-fake0001", "object": "chat.completion", "created": CREATED,
            "model": request["model"] + SNAPSHOT_SUFFIX, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": reply["message"], "logprobs": None,
                         "finish_reason": reply["finish_reason"]}],
            "usage": usage(request, reply)}


def chunks(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream of ``chat.completion.chunk`` objects for a streamed request."""
    reply, model = answer(request), request["model"] + SNAPSHOT_SUFFIX
    base = {"id": "chatcmpl-fake0001", "object": "chat.completion.chunk", "created": CREATED,
            "model": model, "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]}

    message = reply["message"]
    out = [chunk({"role": "assistant", "content": ""})]
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        out.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"],
                                                       "arguments": ""}}]}))
        arguments = call["function"]["arguments"]
        middle = len(arguments) // 2
        for piece in (arguments[:middle], arguments[middle:]):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        words = message["content"].split(" ")
        out += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    out.append(chunk({}, reply["finish_reason"]))
    if (request.get("stream_options") or {}).get("include_usage"):
        out.append({**base, "choices": [], "usage": usage(request, reply)})
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        try:
            request = json.loads(body)
        except ValueError:
            return self._json(400, {"error": {"message": "body is not JSON"}})
        if not request.get("stream"):
            return self._json(200, completion(request))
        data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks(request))
        data += b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI:
    """The server on a free loopback port, in a background thread: ``url`` ends in ``/v1``."""

    def __init__(self, port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    server = FakeOpenAI(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(server.url, flush=True)
    server.server.serve_forever()
