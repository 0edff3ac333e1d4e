"""The ``canarytrace`` command: dispatches to subcommands that are imported lazily.

Each subcommand lives in its own module with ``main(argv) -> int``; this module
only knows their names, so ``canarytrace --help`` works with the SDK alone and a
subcommand whose extra is missing says which ``pip install`` to run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import NoReturn, TextIO


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def open_output(path: str) -> TextIO:
    """``path`` opened for writing text; CommandError (one line) when it cannot be."""
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - returned to a with block
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc


class CommandParser(argparse.ArgumentParser):
    """argparse for subcommands: a usage error is one line on stderr and exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(message, exit_code=2)


@dataclass(frozen=True)
class Subcommand:
    module: str
    extra: str
    summary: str


SUBCOMMANDS: dict[str, Subcommand] = {
    "serve": Subcommand(
        "canarytrace.collector.serve_command", "collector",
        "OTLP/HTTP collector, query API and dashboard on :4318"),
    "keys": Subcommand(
        "canarytrace.collector.keys_command", "collector", "create and list API keys"),
    "spool": Subcommand("canarytrace.collector.spool_command", "collector", "list/replay spool"),
    "evaluate": Subcommand(
        "canarytrace.evaluators.evaluate_command", "evaluators",
        "score sampled spans in a time window into eval_results"),
    "score": Subcommand(
        "canarytrace.evaluators.score_command", "evaluators",
        "score a dataset and responses offline (IFEval format), JSONL out"),
    "compare": Subcommand(
        "canarytrace.analysis.compare_command", "evaluators",
        "compare base and candidate per evaluator and cohort; PROMOTE/HOLD/ROLLBACK"),
    "rollout": Subcommand(
        "canarytrace.analysis.rollout_command", "evaluators",
        "start, look at, list and stop canary rollouts (anytime-valid, final verdicts)"),
    "replay": Subcommand(
        "canarytrace.analysis.replay_command", "all",
        "run a held-out dataset through two local models, traced, and compare"),
    "demo": Subcommand(
        "canarytrace.analysis.demo_command", "all",
        "the whole loop on the embedded store with a simulated base and candidate"),
}


def _usage() -> str:
    lines = ["usage: canarytrace <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {cmd.summary}" for name, cmd in SUBCOMMANDS.items()]
    lines += ["", "Run 'canarytrace <command> --help' for a command's options."]
    return "\n".join(lines)


def _load(name: str):
    """Import a subcommand's module, or raise CommandError naming what to install."""
    command = SUBCOMMANDS[name]
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.startswith("canarytrace"):
            raise  # a broken install, not a missing extra
        raise CommandError(
            f"canarytrace {name} needs the '{command.extra}' extra "
            f"(missing module {missing!r}): pip install 'canarytrace[{command.extra}]'"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"canarytrace: unknown command {name!r} (see 'canarytrace --help')", file=sys.stderr)
        return 2
    try:
        return int(_load(name).main(rest) or 0)
    except CommandError as exc:
        print(f"canarytrace {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"canarytrace {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI contract is one line, never a traceback
        print(f"canarytrace {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # Run the imported module's main, so CommandError raised by subcommands is the same class.
    from canarytrace.cli import main as _main

    sys.exit(_main())
