"""The package as a user installs it: a light SDK import and a CLI that explains itself."""

import subprocess
import sys

HEAVY = ("fastapi", "clickhouse_connect", "chdb", "torch", "transformers", "uvicorn")


def test_import_canarytrace_loads_no_heavy_dependency():
    code = (
        "import sys, canarytrace; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "canarytrace.cli", "--help"],
                         capture_output=True, text=True, check=True)
    for command in ("serve", "evaluate", "compare", "score", "replay", "demo"):
        assert f"  {command} " in out.stdout


def test_cli_unknown_command_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "canarytrace.cli", "frobnicate"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "unknown command" in out.stderr
