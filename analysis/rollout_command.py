"""``canarytrace rollout start|status|list|stop|looks``: canaries with an anytime-valid verdict.

A rollout records its start, policy and slicing once; ``status`` judges [start, now] and is
final once decisive (exit 0 PROMOTE, 10 HOLD, 11 ROLLBACK, like ``compare``). Reaches the data
through a running collector (``--collector URL``, env CANARYTRACE_COLLECTOR: the
``/api/rollouts`` routes) or directly (``--store URL``, env CANARYTRACE_STORE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from canarytrace.analysis.policy import PolicyError, read_policy_text
from canarytrace.cli import CommandError, CommandParser, open_output

DEFAULT_STORE = "chdb://./.canarytrace/db"
ACTIONS = ("start", "status", "list", "stop", "looks")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="canarytrace rollout", description=(
        "Canary rollouts: a start, a policy and a fixed family of slices; the verdict is "
        "anytime-valid in both directions and final once decisive."))
    actions = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser,
                                    metavar="{start,status,list,stop,looks}")
    start = actions.add_parser("start", help="start a rollout and print its id")
    start.add_argument("--base", required=True, help="base model (the Model column)")
    start.add_argument("--candidate", required=True, help="candidate model")
    start.add_argument("--by", default="cohort",
                       help="slicings: route, cohort, service, comma-separated; combine with +")
    start.add_argument("--policy", help="policy YAML file (default: the built-in policy)")
    start.add_argument("--name", default="", help="a name to find it by (e.g. the deployment)")
    start.add_argument("--start", help="when the canary started: ISO-8601 or a duration back "
                                       "(default now)")
    start.add_argument("--slices", help="slice values to fix up front, e.g. "
                                        "cohort=free,cohort=pro (default: those seen in the "
                                        "week before the start)")
    for name, text in (("status", "the verdict over [start, now]; exit 0/10/11"),
                       ("stop", "stop the rollout (later looks judge [start, stop])"),
                       ("looks", "the verdict history")):
        action = actions.add_parser(name, help=text)
        action.add_argument("rollout_id", metavar="ID")
    listing = actions.add_parser("list", help="the project's rollouts")
    listing.add_argument("--state", choices=("active", "stopped", "decided", "all"),
                         default="all")
    listing.add_argument("--name", help="only rollouts with this name")
    for action in actions.choices.values():
        action.add_argument("--format", choices=("table", "json") if action.prog.endswith(
            ("start", "list", "stop", "looks")) else ("table", "json", "html"), default="table")
        action.add_argument("-o", "--output", help="write to this file")
        action.add_argument("--project", default="default",
                            help="project (direct store access; a collector uses the key's)")
        action.add_argument("--store", help="store URL (env CANARYTRACE_STORE)")
        action.add_argument("--collector", help="collector URL (env CANARYTRACE_COLLECTOR)")
        action.add_argument("--api-key", help="collector API key (env CANARYTRACE_API_KEY)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.store and args.collector:
        raise CommandError("give either --store or --collector, not both")
    if getattr(args, "format", None) == "html" and not args.output:
        raise CommandError("--format html needs -o FILE")
    collector = args.collector or (None if args.store else os.environ.get("CANARYTRACE_COLLECTOR"))
    backend = (RemoteRollouts(collector, args.api_key or os.environ.get("CANARYTRACE_API_KEY"))
               if collector else DirectRollouts(args.store or os.environ.get("CANARYTRACE_STORE")
                                         or DEFAULT_STORE, args.project))
    with backend:
        result = _run(backend, args)
    _emit(result, args)
    return _exit_code(result, args.action)


def _run(backend: RolloutBackend, args: argparse.Namespace) -> Any:
    if args.action == "start":
        return backend.start(_start_body(args))
    if args.action == "list":
        return backend.list(args.state, args.name)
    return getattr(backend, args.action)(args.rollout_id)


def _start_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /api/rollouts`` body, validated here where it can be (policy readable)."""
    from canarytrace.analysis.window import parse_slicings
    from canarytrace.times import parse_time

    if args.base == args.candidate:
        raise CommandError("--base and --candidate name the same model")
    body: dict[str, Any] = {"base_model": args.base, "candidate_model": args.candidate,
                            "by": args.by, "name": args.name}
    try:
        parse_slicings(args.by)
        if args.start:
            from datetime import UTC, datetime

            body["started_at"] = parse_time(args.start, datetime.now(UTC)).isoformat()
        if args.policy:
            body["policy"] = read_policy_text(args.policy)
    except (ValueError, PolicyError) as exc:
        raise CommandError(str(exc)) from exc
    if args.slices:
        body["known_slices"] = [s.strip() for s in args.slices.split(",") if s.strip()]
    return body


def _exit_code(result: Any, action: str) -> int:
    if action != "status":
        return 0
    from canarytrace.analysis.rollouts import exit_code_of

    return exit_code_of(result)


# --- backends ---------------------------------------------------------------------------------

class RolloutBackend:
    def __enter__(self) -> RolloutBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class DirectRollouts(RolloutBackend):
    """The store opened in this process (``--store``)."""

    def __init__(self, url: str, project: str) -> None:
        from canarytrace.analysis.service import StoreError, open_store

        try:
            self.store = open_store(url)
        except StoreError as exc:
            raise CommandError(str(exc), exit_code=1) from exc
        self.url, self.project = url, project

    def __exit__(self, *exc: object) -> None:
        self.store.close()

    def _call(self, function: Any, *args: Any) -> Any:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        from canarytrace.analysis import rollouts

        try:
            return function(self.store, self.project, *args)
        except (rollouts.RolloutError, rollouts.RolloutNotFound) as exc:
            raise CommandError(str(exc).strip("'\""), exit_code=2) from exc
        except ClickHouseError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(f"the store at {self.url} failed: {first}", exit_code=1) from exc

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        from datetime import datetime

        from canarytrace.analysis import rollouts

        spec = rollouts.RolloutSpec(
            body["base_model"], body["candidate_model"], body["by"], body.get("policy"),
            "policy file", body["name"],
            datetime.fromisoformat(body["started_at"]) if "started_at" in body else None,
            tuple(body["known_slices"]) if "known_slices" in body else None)
        return self._call(lambda store, project: rollouts.start_rollout(store, spec, project))

    def status(self, rollout_id: str) -> dict[str, Any]:
        from canarytrace.analysis import rollouts

        return self._call(rollouts.rollout_status, rollout_id)

    def stop(self, rollout_id: str) -> dict[str, Any]:
        from canarytrace.analysis import rollouts

        return self._call(rollouts.stop_rollout, rollout_id)

    def looks(self, rollout_id: str) -> dict[str, Any]:
        from canarytrace.analysis import rollouts

        return {"rollout_id": rollout_id,
                "looks": self._call(rollouts.rollout_looks, rollout_id)}

    def list(self, state: str, name: str | None) -> dict[str, Any]:
        from canarytrace.analysis import rollouts

        return {"rollouts": self._call(
            lambda store, project: rollouts.list_rollouts(store, project, name, state))}


class RemoteRollouts(RolloutBackend):
    """A running collector's ``/api/rollouts`` routes (``--collector``)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url, self.api_key = url, api_key

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        from canarytrace.analysis.remote import call

        response = call(method, self.url, path, self.api_key, accept=(200, 201), **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise CommandError(f"the collector at {self.url} sent no JSON for {path}",
                               exit_code=1) from exc

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/rollouts", json=body)

    def status(self, rollout_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/rollouts/{rollout_id}")

    def stop(self, rollout_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/rollouts/{rollout_id}/stop")

    def looks(self, rollout_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/rollouts/{rollout_id}/looks")

    def list(self, state: str, name: str | None) -> dict[str, Any]:
        params = {"state": state, **({"name": name} if name else {})}
        return self._json("GET", "/api/rollouts", params=params)


# --- output -----------------------------------------------------------------------------------

def _emit(result: dict[str, Any], args: argparse.Namespace) -> None:
    if args.format == "json":
        _write(json.dumps(result, indent=2) + "\n", args.output)
        return
    if args.format == "html":
        from canarytrace.analysis.report_html import render_html

        _write(render_html(result["report"]), args.output)
        return
    from rich.console import Console

    if args.output:
        with open_output(args.output) as handle:
            _table(result, args.action, Console(file=handle, width=140, force_terminal=False))
    else:
        _table(result, args.action, Console())


def _table(result: dict[str, Any], action: str, console: Any) -> None:
    from rich.table import Table

    if action == "list":
        table = Table("id", "name", "candidate vs base", "by", "started", "state", "verdict")
        for r in result["rollouts"]:
            table.add_row(r["id"], r["name"] or "-", f"{r['candidate_model']} vs "
                          f"{r['base_model']}", r["by"], r["started_at"], r["state"],
                          r["verdict"] or "-")
        console.print(table)
    elif action == "looks":
        table = Table("looked at", "until", "verdict", "final", "pairs", "score")
        for look in result["looks"]:
            table.add_row(look["at"], look["until"], look["verdict"], "yes" if look["final"]
                          else "", str(look["pairs"]), f"{look['score']:.0f}")
        console.print(table)
    elif action == "status":
        from canarytrace.analysis.report_table import render_table

        final = "final, reached " + result["decided_at"] if result["final"] else "not final"
        console.print(f"rollout {result['id']} {result['name']} ({result['state']}, {final}); "
                      f"started {result['started_at']}")
        render_table(result["report"], console)
    else:
        console.print(f"rollout {result['id']} {result['state']}: {result['candidate_model']} "
                      f"vs {result['base_model']}, by {result['by']}, started "
                      f"{result['started_at']}" + (f", stopped {result['stopped_at']}"
                                                   if result["stopped_at"] else ""))


def _write(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    with open_output(path) as handle:
        handle.write(text)
