"""A small OpenAI-compatible chat-completions server on 127.0.0.1, run in a thread.

Its replies depend on the requested ``model``, so one server plays every judge a test
needs: ``grader`` (PASS when the graded answer says "done"; for a pairwise prompt, the
answer containing "CORRECT" wins), ``always-a``, ``always-c``, ``chatty`` (no verdict),
and misbehaving ones: ``broken`` (not JSON), ``empty-choices``, ``null-content``,
``overloaded`` (HTTP 500), ``slow`` (answers after 1.5 s). A request whose bearer token
is not ``secret`` gets HTTP 401.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "secret"


def _pairwise_verdict(prompt: str) -> str:
    a = re.search(r"\[Assistant A's answer\]\n(.*?)\n\[End of A\]", prompt, re.DOTALL)
    b = re.search(r"\[Assistant B's answer\]\n(.*?)\n\[End of B\]", prompt, re.DOTALL)
    a_right, b_right = "CORRECT" in a.group(1), "CORRECT" in b.group(1)
    if a_right == b_right:
        return "Both are equally good. [[C]]"
    return "A is right. [[A]]" if a_right else "B is right. [[B]]"


def _grade(prompt: str) -> str:
    if "[Assistant A's answer]" in prompt:
        return _pairwise_verdict(prompt)
    answer = prompt.split("Answer to grade:", 1)[-1]
    return "It is finished.\nVERDICT: PASS" if "done" in answer else "Not done.\nVERDICT: FAIL"


REPLIES = {
    "always-a": lambda prompt: "Assistant A is better. [[A]]",
    "always-c": lambda prompt: "A tie. [[C]]",
    "chatty": lambda prompt: "Well, it depends on what you mean.",
    "grader": _grade,
}


def completion(content: Any, model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


class _Handler(BaseHTTPRequestHandler):
    server: JudgeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        self.server.requests.append({"path": self.path, "body": body, "authorization": auth})
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if auth is not None and auth != f"Bearer {API_KEY}":
            return self._send(401, {"error": {"message": "invalid api key"}})
        self._reply(body["model"], body["messages"][-1]["content"])

    def _reply(self, model: str, prompt: str) -> None:
        if model == "slow":
            time.sleep(1.5)
        if model == "broken":
            return self._send(200, b"<html>gateway error</html>")
        if model == "empty-choices":
            return self._send(200, {"choices": []})
        if model == "null-content":
            return self._send(200, completion(None, model))
        if model == "overloaded":
            return self._send(500, {"error": {"message": "model overloaded"}})
        self._send(200, completion(REPLIES.get(model, _grade)(prompt), model))


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout test) is expected; anything else is not."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
