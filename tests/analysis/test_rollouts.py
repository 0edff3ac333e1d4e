"""Rollouts as users drive them: the Python API and ``canarytrace rollout`` on a store (the
routes through a running collector are in test_rollout_routes.py).

Data: seeded mirrored traffic (``tests/analysis/simulate.py``) written to the real embedded
store; the traffic of the week before a rollout's start names its fixed family.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from canarytrace import cli
from canarytrace.analysis import rollouts as R
from canarytrace.analysis.compare import HOLD, ROLLBACK
from canarytrace.analysis.report_json import validate_report
from canarytrace.store.client import Store
from tests.analysis import simulate as sim

DROP = sim.Scenario(pairs=1500, candidate_pass={"pro": 0.75})
BEFORE = sim.START - timedelta(days=2)


def _shifted(requests: sim.Requests, seconds: float) -> sim.Requests:
    """The same requests, ``seconds`` earlier or later."""
    requests.start_s = requests.start_s + seconds
    return requests


def _seed(store: Store, project: str, scenario: sim.Scenario, seed: int,
          before: bool = True) -> None:
    """The scenario from sim.START, and (``before``) 50 pairs with spans two days earlier."""
    requests = sim.simulate(project, scenario, seed)
    sim.insert(store, "eval_results", sim.eval_columns(requests))
    if before:  # ids of their own (another project's), then moved into ``project``
        earlier = _shifted(sim.simulate(project + "-before", sim.Scenario(pairs=50), seed + 1),
                           (BEFORE - sim.START).total_seconds())
        spans = sim.span_columns(earlier, seed + 2)
        spans["ResourceAttributes"] = [{**r, sim.A.CANARY_PROJECT: project}
                                       for r in spans["ResourceAttributes"]]
        evals = sim.eval_columns(earlier)
        evals["Project"] = [project] * len(evals["Project"])
        sim.insert(store, "otel_traces", spans)
        sim.insert(store, "eval_results", evals)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("rollouts") / "db"
    store = Store.from_url(f"chdb://{path}")
    store.migrate()
    _seed(store, "drop", DROP, seed=3)
    store.url = f"chdb://{path}"
    yield store
    store.close()


def _start(store: Store, project: str, **fields) -> dict:
    spec = R.RolloutSpec(sim.BASE_MODEL, sim.CANDIDATE_MODEL, started_at=sim.START, **fields)
    return R.start_rollout(store, spec, project, now=sim.START + timedelta(seconds=1))


def test_a_rollout_fixes_its_family_from_the_week_before_and_its_first_decision(store):
    rollout = _start(store, "drop", name="web-canary")
    assert rollout["state"] == R.ACTIVE and not rollout["final"] and rollout["verdict"] is None
    family = rollout["family"]
    assert sorted(family["known_slices"]) == sorted(f"cohort={c}" for c in sim.COHORTS)
    assert family["known_evaluators"] == ["json_validation"]
    assert family["known_metrics"] == ["error_rate", "parser_error_rate", "fallback_rate"]
    assert "min_effect" in rollout["policy"]["text"]  # the default's text, fixed at the start

    early = R.rollout_status(store, "drop", rollout["id"], now=sim.START + timedelta(seconds=90))
    assert early["verdict"] == HOLD and not early["final"] and early["pairs"] == 90
    assert early["report"]["rollout_id"] == rollout["id"]
    validate_report(early["report"])
    assert early["report"]["guarantee"]["window"] == "rollout"

    decided = next(look for look in (
        R.rollout_status(store, "drop", rollout["id"], now=sim.START + timedelta(seconds=s))
        for s in range(200, 1600, 100)) if look["verdict"] != HOLD)
    assert decided["verdict"] == ROLLBACK and decided["final"] and decided["state"] == R.DECIDED
    assert any(r["slice"] == "cohort=pro" and r["kind"] == "critical_regression"
               for r in decided["reasons"])

    later = R.rollout_status(store, "drop", rollout["id"], now=sim.START + timedelta(days=1))
    assert later["verdict"] == ROLLBACK and later["final"]
    assert later["report"] == decided["report"] and later["decided_at"] == decided["decided_at"]
    history = R.rollout_looks(store, "drop", rollout["id"])
    assert history[0]["verdict"] == HOLD and history[-1]["verdict"] == ROLLBACK
    assert history[-1]["final"] and len(history) == 1 + [
        h["verdict"] for h in history].index(ROLLBACK)


def test_a_slice_value_first_seen_later_keeps_the_rank_it_got(store):
    rollout = _start(store, "drop", known_slices=("cohort=free",), evaluators=())
    first = R.rollout_status(store, "drop", rollout["id"], now=sim.START + timedelta(seconds=60))
    late = first["family"]["late_slices"]
    assert "cohort=free" not in late and set(late) <= {f"cohort={c}" for c in sim.COHORTS}
    assert first["family"]["late_metrics"] == ["json_validation"]
    again = R.rollout_status(store, "drop", rollout["id"], now=sim.START + timedelta(seconds=90))
    assert again["family"]["late_slices"][:len(late)] == late
    stored = R.get_rollout(store, "drop", rollout["id"])
    assert stored["family"]["late_slices"] == again["family"]["late_slices"]


def test_stop_list_and_bad_requests(store):
    rollout = _start(store, "drop", name="stopped-one")
    stopped = R.stop_rollout(store, "drop", rollout["id"], now=sim.START + timedelta(seconds=50))
    assert stopped["state"] == R.STOPPED and stopped["stopped_at"].startswith("2025-03-01T00:00:50")
    look = R.rollout_status(store, "drop", rollout["id"], now=sim.START + timedelta(days=1))
    assert look["window"]["until"].startswith("2025-03-01T00:00:50") and look["pairs"] == 50
    named = R.list_rollouts(store, "drop", name="stopped-one")
    assert [r["id"] for r in named] == [rollout["id"]] and named[0]["state"] == R.STOPPED
    assert rollout["id"] in {r["id"] for r in R.list_rollouts(store, "drop", state="stopped")}
    assert R.list_rollouts(store, "nobody") == []
    with pytest.raises(R.RolloutNotFound):
        R.rollout_status(store, "drop", "nope")
    with pytest.raises(R.RolloutNotFound):
        R.rollout_status(store, "other-project", rollout["id"])
    for fields, message in ((dict(by="model"), "cannot slice by 'model'"),
                            (dict(policy_text="alpha: .nan"), "alpha: nan is not a finite"),
                            (dict(policy_text="bootstrap_resamples: 100000000"), "maximum")):
        with pytest.raises(R.RolloutError, match=message):
            _start(store, "drop", **fields)
    with pytest.raises(R.RolloutError, match="same model"):
        R.start_rollout(store, R.RolloutSpec("a", "a"), "drop")


def test_the_rollout_command_on_a_store(store, tmp_path, capsys):
    # chDB opens one directory per process: the commands share the fixture's, project "cli"
    _seed(store, "cli", DROP, seed=11, before=False)
    url = store.url
    argv = ["rollout", "start", "--base", sim.BASE_MODEL, "--candidate", sim.CANDIDATE_MODEL,
            "--store", url, "--project", "cli", "--start", sim.START.isoformat(), "--name",
            "cli", "--format", "json"]
    assert cli.main(argv) == 0
    rollout = json.loads(capsys.readouterr().out)
    assert rollout["name"] == "cli" and rollout["started_at"].startswith("2025-03-01T00:00:00")
    assert cli.main(["rollout", "status", rollout["id"], "--store", url, "--project", "cli"]) == 11
    table = capsys.readouterr().out
    assert "ROLLBACK" in table and "cohort=pro" in table and "final" in table
    assert cli.main(["compare", "--base", sim.BASE_MODEL, "--candidate", sim.CANDIDATE_MODEL,
                     "--rollout", rollout["id"], "--store", url, "--project", "cli",
                     "--format", "json"]) == 11
    assert json.loads(capsys.readouterr().out)["rollout_id"] == rollout["id"]
    cli.main(["compare", "--base", sim.BASE_MODEL, "--candidate", sim.CANDIDATE_MODEL,
              "--since", "30d", "--store", url, "--project", "cli", "--format", "json",
              "--no-record"])
    sliding = json.loads(capsys.readouterr().out)["guarantee"]
    assert sliding["window"] == "sliding" and "no anytime guarantee" in sliding["message"]
    assert cli.main(["rollout", "list", "--store", url, "--project", "cli", "--format",
                     "json"]) == 0
    assert [r["state"] for r in json.loads(capsys.readouterr().out)["rollouts"]] == ["decided"]
    assert cli.main(["rollout", "status", "nope", "--store", url]) == 2
    assert "no rollout 'nope'" in capsys.readouterr().err
    assert cli.main(["rollout", "start", "--base", "a", "--candidate", "b", "--store", url,
                     "--by", "model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot slice by 'model'" in err


def test_pairs_in_clusters_count_once_per_cluster():
    """A replay prompt's trials share a PairId prefix: the engine judges one observation per
    prompt, so five copies of 200 outcomes are no more convincing than 200."""
    from canarytrace.analysis import inputs as I
    from canarytrace.analysis.compare import compare
    from canarytrace.analysis.policy import default_policy

    rng = np.random.default_rng(4)
    prompts = 200
    base = (rng.random(prompts) < 0.9).astype(float)
    candidate = np.where(rng.random(prompts) < 0.85, base, (rng.random(prompts) < 0.84))
    copies = 5
    cluster = np.repeat(np.arange(prompts, dtype=np.uint64), copies)
    n = prompts * copies
    query = I.ComparisonQuery("b", "c", sim.START, sim.START + timedelta(days=1),
                              slicings=())

    def run(clusters):
        metric = I.MetricSamples("json_validation", I.RATE, np.arange(n, dtype=float),
                                 np.repeat(base, copies), np.repeat(candidate, copies),
                                 np.ones(n, bool), {}, "pass_rate", clusters)
        return compare(I.ComparisonInputs(query, [metric]), default_policy()).results[0]

    independent, clustered = run(None), run(cluster)
    assert clustered.details["clusters"] == prompts and clustered.details["largest_cluster"] == 5
    assert clustered.difference == pytest.approx(independent.difference)
    low, high = clustered.anytime_interval
    assert high - low > 1.5 * (independent.anytime_interval[1] - independent.anytime_interval[0])
    assert clustered.p_anytime >= independent.p_anytime


def test_replay_style_pair_ids_are_clustered_by_the_store_query(store):
    """PairIds ``PROMPT.TRIAL`` (what replay writes) reach the engine as clusters."""
    from canarytrace.analysis.compare import compare
    from canarytrace.analysis.inputs import ComparisonQuery, load_inputs
    from canarytrace.analysis.policy import default_policy

    requests = sim.simulate("clustered", sim.Scenario(pairs=600), seed=31)
    columns = sim.eval_columns(requests)
    prompt_of = [f"{i // 3:012x}.{i % 3}" for i in range(600)]
    columns["PairId"] = prompt_of + prompt_of  # base rows, then candidate rows
    sim.insert(store, "eval_results", columns)
    inputs = load_inputs(store, ComparisonQuery(sim.BASE_MODEL, sim.CANDIDATE_MODEL, sim.START,
                                                sim.START + timedelta(days=1), "clustered",
                                                slicings=()))
    overall = compare(inputs, default_policy()).results[0]
    assert overall.n == 600 and overall.details["clusters"] == 200
    assert overall.details["largest_cluster"] == 3
