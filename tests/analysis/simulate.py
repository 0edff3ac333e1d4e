"""Seeded canary simulations written to the real store in bulk (column-oriented inserts).

One simulated request is mirrored: a base call (primary) and a candidate call (shadow) with
one ``canary.pair_id``, in one trace, ``spacing_s`` after the previous request. Evaluations
of both arms are correlated the way two models are on the same input: the candidate's
uniform draw equals the base's with probability ``correlation`` (same difficulty), else it
is fresh. Many simulations share one store, separated by project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from canarytrace import attributes as A

BASE_MODEL = "llama-3-8b"
CANDIDATE_MODEL = "llama-3-8b-lora-r16"
START = datetime(2025, 3, 1, tzinfo=UTC)
COHORTS = ("free", "pro", "enterprise", "edu", "internal")
ROUTES = ("billing", "support")


@dataclass(frozen=True)
class Scenario:
    pairs: int = 2000
    base_pass: float = 0.9
    candidate_pass: dict[str, float] = field(default_factory=dict)
    """Per cohort; cohorts not named pass at ``base_pass``."""
    correlation: float = 0.8
    evaluator: str = "json_validation"
    spacing_s: float = 1.0

    def candidate_rate(self, cohorts: np.ndarray) -> np.ndarray:
        rates = np.full(cohorts.size, self.base_pass)
        for index, name in enumerate(COHORTS):
            rates[cohorts == index] = self.candidate_pass.get(name, self.base_pass)
        return rates


@dataclass
class Requests:
    """The simulated requests of one project, arm by arm (index 0 base, 1 candidate)."""

    project: str
    scenario: Scenario
    cohort: np.ndarray
    route: np.ndarray
    passed: tuple[np.ndarray, np.ndarray]
    start_s: np.ndarray

    def time(self, request: int) -> datetime:
        """When request ``request`` (0-based) started."""
        return START + timedelta(seconds=float(self.start_s[request]))


def simulate(project: str, scenario: Scenario, seed: int) -> Requests:
    rng = np.random.default_rng(seed)
    n = scenario.pairs
    cohort = rng.integers(0, len(COHORTS), n)
    route = rng.integers(0, len(ROUTES), n)
    base_draw = rng.random(n)
    candidate_draw = np.where(rng.random(n) < scenario.correlation, base_draw, rng.random(n))
    passed = (base_draw < scenario.base_pass,
              candidate_draw < scenario.candidate_rate(cohort))
    return Requests(project, scenario, cohort, route, passed,
                    np.arange(n) * scenario.spacing_s)


def _ids(project: str, n: int, kind: str, width: int) -> list[str]:
    salt = abs(hash((project, kind))) % (16 ** 6)
    return [f"{salt:06x}{i:0{width - 6}x}" for i in range(n)]


def _arm_ids(requests: Requests) -> dict[str, list[str]]:
    n = requests.scenario.pairs
    return {"trace": _ids(requests.project, n, "trace", 32),
            "pair": _ids(requests.project, n, "pair", 32),
            "base_span": _ids(requests.project, n, "base", 16),
            "candidate_span": _ids(requests.project, n, "candidate", 16)}


def _arm_ticks(requests: Requests, arm: int, digits: int) -> list[int]:
    """Start times as DateTime64(digits) ticks (clickhouse-connect inserts ints as is); the
    candidate's shadow call starts 1 ms after the base call."""
    start_ns = int(START.timestamp()) * 10**9
    ns = start_ns + (requests.start_s * 1e9).astype(np.int64) + arm * 1_000_000
    return (ns // 10 ** (9 - digits)).tolist()


def eval_columns(requests: Requests) -> dict[str, list]:
    """eval_results columns for both arms of every request."""
    ids = _arm_ids(requests)
    columns: dict[str, list] = {name: [] for name in (
        "Timestamp", "SpanTimestamp", "Project", "ServiceName", "TraceId", "SpanId",
        "Evaluator", "EvaluatorVersion", "Score", "Passed", "Label", "Model", "Variant",
        "Role", "PairId", "Route", "Cohort")}
    for arm, (model, variant, role, span_key) in enumerate((
            (BASE_MODEL, A.VARIANT_BASE, A.ROLE_PRIMARY, "base_span"),
            (CANDIDATE_MODEL, A.VARIANT_CANDIDATE, A.ROLE_SHADOW, "candidate_span"))):
        passed = requests.passed[arm].tolist()
        n = len(passed)
        columns["Timestamp"] += _arm_ticks(requests, arm, 3)
        columns["SpanTimestamp"] += _arm_ticks(requests, arm, 9)
        columns["Project"] += [requests.project] * n
        columns["ServiceName"] += ["chat-api"] * n
        columns["TraceId"] += ids["trace"]
        columns["SpanId"] += ids[span_key]
        columns["Evaluator"] += [requests.scenario.evaluator] * n
        columns["EvaluatorVersion"] += ["1"] * n
        columns["Score"] += [float(p) for p in passed]
        columns["Passed"] += passed
        columns["Label"] += ["valid" if p else "schema_error" for p in passed]
        columns["Model"] += [model] * n
        columns["Variant"] += [variant] * n
        columns["Role"] += [role] * n
        columns["PairId"] += ids["pair"]
        columns["Route"] += [ROUTES[r] for r in requests.route]
        columns["Cohort"] += [COHORTS[c] for c in requests.cohort]
    return columns


def span_columns(requests: Requests, seed: int, latency_ms: tuple[float, float] = (800, 800),
                 output_tokens: tuple[float, float] = (200, 200)) -> dict[str, list]:
    """otel_traces columns: one LLM span per arm, lognormal latency and token counts."""
    rng = np.random.default_rng(seed)
    ids = _arm_ids(requests)
    n = requests.scenario.pairs
    columns: dict[str, list] = {name: [] for name in (
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
        "ResourceAttributes", "SpanAttributes", "Duration", "StatusCode")}
    for arm, (model, variant, role, span_key) in enumerate((
            (BASE_MODEL, A.VARIANT_BASE, A.ROLE_PRIMARY, "base_span"),
            (CANDIDATE_MODEL, A.VARIANT_CANDIDATE, A.ROLE_SHADOW, "candidate_span"))):
        durations = rng.lognormal(np.log(latency_ms[arm] * 1e6), 0.3, n).astype(np.uint64)
        tokens = rng.poisson(output_tokens[arm], n)
        columns["Timestamp"] += _arm_ticks(requests, arm, 9)
        columns["TraceId"] += ids["trace"]
        columns["SpanId"] += ids[span_key]
        columns["ParentSpanId"] += [""] * n
        columns["SpanName"] += [f"chat {model}"] * n
        columns["SpanKind"] += ["Client"] * n
        columns["ServiceName"] += ["chat-api"] * n
        columns["ResourceAttributes"] += [{A.SERVICE_NAME: "chat-api",
                                           A.CANARY_PROJECT: requests.project}] * n
        columns["SpanAttributes"] += [
            {A.GEN_AI_REQUEST_MODEL: model, A.CANARY_VARIANT: variant, A.CANARY_ROLE: role,
             A.CANARY_PAIR_ID: ids["pair"][i], A.CANARY_COHORT: COHORTS[requests.cohort[i]],
             A.CANARY_ROUTE: ROUTES[requests.route[i]],
             A.GEN_AI_USAGE_OUTPUT_TOKENS: str(int(tokens[i]))} for i in range(n)]
        columns["Duration"] += durations.tolist()
        columns["StatusCode"] += ["Ok"] * n
    return columns


def pairwise_columns(requests: Requests, win_rate: float, tie_rate: float,
                     seed: int) -> dict[str, list]:
    """eval_results rows of the pairwise judge on every candidate span."""
    rng = np.random.default_rng(seed)
    ids = _arm_ids(requests)
    draw = rng.random(requests.scenario.pairs)
    labels = np.where(draw < win_rate, "win", np.where(draw < win_rate + tie_rate, "tie", "loss"))
    base = eval_columns(requests)
    n = requests.scenario.pairs
    columns = {name: values[n:] for name, values in base.items()}  # the candidate arm's rows
    columns["Evaluator"] = ["pairwise"] * n
    columns["Label"] = labels.tolist()
    columns["Score"] = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[x] for x in columns["Label"]]
    columns["Passed"] = [{"win": True, "tie": None, "loss": False}[x] for x in columns["Label"]]
    columns["SpanId"] = ids["candidate_span"]
    return columns


def insert(store: Any, table: str, columns: dict[str, list]) -> None:
    """One column-oriented insert through the store's clickhouse-connect client."""
    names = list(columns)
    store.client.insert(store.table(table), [columns[name] for name in names],
                        column_names=names, column_oriented=True)


def merge(parts: list[dict[str, list]]) -> dict[str, list]:
    """Concatenate the columns of several simulations, for one insert."""
    merged: dict[str, list] = {name: [] for name in parts[0]}
    for part in parts:
        for name, values in part.items():
            merged[name] += values
    return merged


@dataclass(frozen=True)
class Split:
    """Canary-split traffic: each request is served by one arm, in its own trace, no PairId."""

    requests: int = 3000
    candidate_share: float = 0.5
    fallback_rate: float = 0.0
    """Share of candidate-served requests where the candidate fails and the base answers."""
    thumbs_down: tuple[float, float] = (0.1, 0.1)
    """Share of each arm's answers that get a thumbs-down (the rest get a thumbs-up)."""
    feedback_share: float = 0.5


def split_columns(project: str, split: Split, seed: int) -> dict[str, dict[str, list]]:
    """otel_traces and feedback columns of canary-split traffic, keyed by table."""
    rng = np.random.default_rng(seed)
    start_ns = int(START.timestamp()) * 10**9
    spans: dict[str, list] = {name: [] for name in (
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
        "ResourceAttributes", "SpanAttributes", "Duration", "StatusCode")}
    feedback: dict[str, list] = {name: [] for name in (
        "Timestamp", "Project", "TraceId", "SpanId", "FeedbackId", "Score", "Source")}

    def add_span(trace: str, span: str, ns: int, model: str, variant: str, error: bool,
                 extra: dict[str, str]) -> None:
        spans["Timestamp"].append(ns)
        spans["TraceId"].append(trace)
        spans["SpanId"].append(span)
        spans["ParentSpanId"].append("")
        spans["SpanName"].append(f"chat {model}")
        spans["SpanKind"].append("Client")
        spans["ServiceName"].append("chat-api")
        spans["ResourceAttributes"].append({A.CANARY_PROJECT: project})
        spans["SpanAttributes"].append({A.GEN_AI_REQUEST_MODEL: model, A.CANARY_VARIANT: variant,
                                        A.CANARY_ROLE: A.ROLE_PRIMARY,
                                        A.CANARY_COHORT: COHORTS[int(rng.integers(5))],
                                        **extra})
        spans["Duration"].append(int(rng.lognormal(np.log(8e8), 0.3)))
        spans["StatusCode"].append("Error" if error else "Ok")

    for i in range(split.requests):
        trace = f"{abs(hash((project, 'split'))) % 16**6:06x}{i:026x}"
        ns = start_ns + i * 1_000_000_000
        served_by_candidate = rng.random() < split.candidate_share
        answered_by = BASE_MODEL
        if served_by_candidate:
            failed = rng.random() < split.fallback_rate
            add_span(trace, f"c{i:015x}", ns, CANDIDATE_MODEL, A.VARIANT_CANDIDATE, failed, {})
            if failed:  # the base answers in the candidate's place, in the same trace
                add_span(trace, f"f{i:015x}", ns + 5_000_000, BASE_MODEL, A.VARIANT_BASE, False,
                         {A.CANARY_FALLBACK: "true"})
            else:
                answered_by = CANDIDATE_MODEL
        else:
            add_span(trace, f"b{i:015x}", ns, BASE_MODEL, A.VARIANT_BASE, False, {})
        if rng.random() < split.feedback_share:
            down = split.thumbs_down[answered_by == CANDIDATE_MODEL]
            feedback["Timestamp"].append(ns // 1_000_000 + 60_000)
            feedback["Project"].append(project)
            feedback["TraceId"].append(trace)
            feedback["SpanId"].append("")
            feedback["FeedbackId"].append(f"fb{i}")
            feedback["Score"].append(-1.0 if rng.random() < down else 1.0)
            feedback["Source"].append("thumbs")
    return {"otel_traces": spans, "feedback": feedback}
