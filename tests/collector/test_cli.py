"""``canarytrace serve`` / ``keys`` refuse bad settings with one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.collector import running_collector


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canarytrace.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, message", [
    (("serve", "--port", "http"), {}, "invalid port: Input should be a valid integer"),
    (("serve", "--port", "70000"), {}, "invalid port: Input should be less than or equal"),
    (("serve",), {"CANARYTRACE_SPOOL_MAX_BYTES": "-1"}, "invalid spool_max_bytes"),
    (("serve", "--database", "x; DROP TABLE y"), {}, "invalid database"),
    (("keys", "create", "--project", " "), {}, "--project must not be empty"),
    (("keys", "list"), {"CANARYTRACE_SPOOL_MAX_BYTES": "-1"}, "invalid spool_max_bytes"),
    (("spool", "list"), {}, "canarytrace spool: no spool at "),
    (("serve", "--auth", "open"), {}, "invalid auth: Input should be 'auto', 'keys' or 'none'"),
])
def test_bad_settings_are_one_line_on_stderr(tmp_path, args, env, message):
    result = cli(*args, env={"CANARYTRACE_STORE": f"chdb://{tmp_path}/db", **env})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_a_second_serve_on_the_same_port_fails_cleanly(tmp_path):
    with running_collector(tmp_path / "first") as first:
        result = cli("serve", "--port", str(first.port),
                     env={"CANARYTRACE_STORE": f"chdb://{tmp_path}/second/db"})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"canarytrace serve: could not listen on 127.0.0.1:{first.port}: Address already in use")


def test_a_bad_evaluation_setting_is_not_reported_as_a_store_failure(tmp_path):
    result = cli("serve", "--port", "0", env={"CANARYTRACE_STORE": f"chdb://{tmp_path}/db",
                                              "CANARYTRACE_EVAL_EVALUATORS": "no-such-eval"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "canarytrace serve: background evaluation: unknown evaluator 'no-such-eval'")
    assert not list(tmp_path.glob("db-state/spool/*.seg"))  # what was opened was closed again
