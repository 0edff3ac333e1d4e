"""A small OpenAI-compatible chat-completions server on 127.0.0.1, run in a thread.

Its replies depend on the requested ``model``, so one server plays every judge a test
needs: ``grader`` (PASS when the graded answer says "done"; for a pairwise prompt, the
answer containing "CORRECT" wins), ``always-a``, ``always-c``, ``chatty`` (no verdict),
and misbehaving ones: ``broken`` (not JSON), ``empty-choices``, ``null-content``,
``overloaded`` (HTTP 500), ``unavailable`` (HTTP 503 with Retry-After, for good), ``slow``
(answers after 1.5 s). A request whose bearer token is not ``secret`` gets HTTP 401.

Like a real endpoint it can take ``latency_s`` per call and enforce ``rate_limit``
requests per second (fixed one-second windows; over the limit: HTTP 429 with
``Retry-After`` and ``retry-after-ms``); it records the most requests it held at once
(``max_in_flight``) and when each accepted one arrived. ``python -m
tests.evaluators.judge_server --port P --latency-s 0.2 --rate-limit 20`` runs it on its
own (``GET /stats`` says what it saw), for ``benchmarks/judge_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import math
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
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of a real endpoint expect

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/stats":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        self._send(200, self.server.stats())

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        if self.server.keep_requests:
            self.server.requests.append({"path": self.path, "body": body,
                                         "authorization": auth})
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if auth is not None and auth != f"Bearer {API_KEY}":
            return self._send(401, {"error": {"message": "invalid api key"}})
        wait_s = self.server.admit()
        if wait_s is not None:
            return self._send(429, {"error": {"message": "rate limit reached"}},
                              {"Retry-After": str(math.ceil(wait_s)),
                               "retry-after-ms": str(round(wait_s * 1000))})
        with self.server.holding():
            time.sleep(self.server.latency_s)
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
        if model == "unavailable":
            return self._send(503, {"error": {"message": "loading the model"}},
                              {"Retry-After": "0"})
        self._send(200, completion(REPLIES.get(model, _grade)(prompt), model))


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int = 0, *, latency_s: float = 0.0, rate_limit: float | None = None,
                 keep_requests: bool = True) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.latency_s, self.rate_limit, self.keep_requests = latency_s, rate_limit, keep_requests
        self.requests: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = self.rejected = 0
        self.accepted_at: list[float] = []
        self.answered_at: list[float] = []
        self._window, self._window_count = 0, 0
        self._lock = threading.Lock()

    def admit(self) -> float | None:
        """None to serve this request now; else the seconds until the rate limit allows one."""
        with self._lock:
            now = time.monotonic()
            if self.rate_limit is not None:
                window = int(now)
                if window != self._window:
                    self._window, self._window_count = window, 0
                if self._window_count >= self.rate_limit:
                    self.rejected += 1
                    return window + 1 - now
                self._window_count += 1
            self.accepted_at.append(now)
            return None

    @contextmanager
    def holding(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
                self.answered_at.append(time.monotonic())

    def stats(self) -> dict[str, Any]:
        """What the server saw: accepted and rejected requests, the busiest moment, the
        accepted requests' first arrival and last answer (monotonic seconds)."""
        with self._lock:
            return {"accepted": len(self.accepted_at), "rejected": self.rejected,
                    "max_in_flight": self.max_in_flight,
                    "first_accepted": min(self.accepted_at, default=None),
                    "last_answered": max(self.answered_at, default=None),
                    "busiest_second": max(_per_second(self.accepted_at).values(), default=0)}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout test) is expected; anything else is not."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def _per_second(times: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for moment in times:
        counts[int(moment)] = counts.get(int(moment), 0) + 1
    return counts


@contextmanager
def judge_server(**options: Any) -> Iterator[JudgeServer]:
    """A JudgeServer (``latency_s``, ``rate_limit``, ...) serving in a thread."""
    server = JudgeServer(**options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description="a fake OpenAI-compatible judge endpoint")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second; more get HTTP 429")
    args = parser.parse_args()
    server = JudgeServer(args.port, latency_s=args.latency_s, rate_limit=args.rate_limit,
                         keep_requests=False)
    print(f"judge server on {server.base_url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
