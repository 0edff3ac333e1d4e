"""Headless Chromium driven over the DevTools protocol, for tests of the built-in page.

Chromium is started with ``--remote-debugging-pipe``: DevTools messages (JSON, each ended
by a NUL byte) go in on file descriptor 3 and come back on 4, so no WebSocket library
and no debugging port are needed. One page is opened and attached in flat session mode;
console errors, uncaught exceptions and failed loads are collected as they arrive.

    with Browser.launch() as browser:
        page = browser.new_page(width=1440, height=900)
        page.goto("http://127.0.0.1:4318/")
        page.wait_for("document.querySelectorAll('.panel[data-state=ok]').length > 0")
        page.screenshot(Path("artifacts/page.png"))
        assert not page.errors
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
         "--no-default-browser-check", "--remote-debugging-pipe")


def find_chromium() -> str | None:
    """The Chromium executable, or None when none is installed."""
    for candidate in CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


class DevToolsError(RuntimeError):
    """A DevTools command failed, timed out, or the browser went away."""


class _Pipe:
    """The two-pipe DevTools transport: write commands to fd 3, read replies from fd 4."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._out = os.fdopen(to_browser, "wb", buffering=0)
        self._in = os.fdopen(from_browser, "rb", buffering=0)
        self._next_id = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._dispatch(json.loads(raw))
        for waiter in list(self._waiting.values()):
            waiter.put({"error": {"message": "browser closed the DevTools pipe"}})

    def _dispatch(self, message: dict[str, Any]) -> None:
        waiter = self._waiting.pop(message.get("id", -1), None)
        if waiter is not None:
            waiter.put(message)
        elif "method" in message:
            self.events.put(message)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session_id: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
            waiter: queue.Queue = queue.Queue()
            self._waiting[message_id] = waiter
            message = {"id": message_id, "method": method, "params": params or {}}
            if session_id:
                message["sessionId"] = session_id
            self._out.write(json.dumps(message).encode() + b"\0")
        try:
            reply = waiter.get(timeout=timeout)
        except queue.Empty as exc:
            self._waiting.pop(message_id, None)
            raise DevToolsError(f"{method} got no reply in {timeout} s") from exc
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def close(self) -> None:
        for stream in (self._out, self._in):
            with suppress(OSError):
                stream.close()


@dataclass
class ConsoleError:
    source: str
    text: str


class Page:
    """One tab: navigate, evaluate JavaScript, wait for conditions, take screenshots."""

    def __init__(self, pipe: _Pipe, session_id: str) -> None:
        self._pipe = pipe
        self._session = session_id
        self.errors: list[ConsoleError] = []

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        result = self._pipe.call(method, params, self._session, timeout)
        self.collect_events()
        return result

    def collect_events(self) -> None:
        """Move console errors, exceptions and failed loads from the event queue to ``errors``."""
        while True:
            try:
                event = self._pipe.events.get_nowait()
            except queue.Empty:
                return
            if event.get("sessionId") == self._session:
                self._record(event["method"], event.get("params", {}))

    def _record(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.errors.append(ConsoleError("console", text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(ConsoleError("exception", text))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(ConsoleError(entry.get("source", "log"),
                                            f"{entry.get('text', '')} {entry.get('url', '')}"))

    def goto(self, url: str, timeout: float = 30.0) -> None:
        self.call("Page.navigate", {"url": url}, timeout=timeout)
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise DevToolsError(details.get("exception", {}).get("description")
                                or details.get("text", "evaluation failed"))
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; its value, or DevToolsError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise DevToolsError(f"timed out after {timeout} s waiting for {expression}")
            time.sleep(interval)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole scrollable page when ``full_page``)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


class Browser:
    """A headless Chromium process with a fresh profile, controlled over the DevTools pipe."""

    def __init__(self, process: subprocess.Popen, pipe: _Pipe,
                 profile: tempfile.TemporaryDirectory) -> None:
        self.process = process
        self._pipe = pipe
        self._profile = profile

    @classmethod
    @contextmanager
    def launch(cls, executable: str | None = None) -> Iterator[Browser]:
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError("no Chromium executable found")
        profile = tempfile.TemporaryDirectory(prefix="canarytrace-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        # bash puts our pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them
        # (dash cannot redirect from descriptors above 9).
        wiring = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        process = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", wiring, "bash", executable, *FLAGS,
             f"--user-data-dir={profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        browser = cls(process, _Pipe(to_browser_w, from_browser_r), profile)
        try:
            browser._pipe.call("Browser.getVersion", timeout=30)
            yield browser
        finally:
            browser.close()

    def new_page(self, width: int = 1440, height: int = 900) -> Page:
        target = self._pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._pipe.call("Target.attachToTarget",
                                  {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self._pipe, session)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        with suppress(DevToolsError):
            self._pipe.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._pipe.close()
        self._profile.cleanup()
