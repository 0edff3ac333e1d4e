"""Rollout gates as Argo Rollouts and Flagger use them, against a real ``canarytrace serve``.

Three canaries go through the SDK (ct.Canary, every request mirrored): one as good as its base
(PROMOTE), one whose JSON breaks in cohort "a" (ROLLBACK) and one with too few requests
(HOLD). The shipped manifests are read, their URLs, headers and payloads sent as the tools
send them, and the answers judged by the tools' own rules (``tests/support/rollout_tools``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import canarytrace as ct
from tests.collector.conftest import spans_of, wait_for
from tests.support import rollout_tools as tools
from tests.support.collector import running_collector

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
POLICY = """
evaluator_pass_rate: {min_effect: 0.2, min_samples: 50}
metrics:
  error_rate: {min_effect: 0.2, min_samples: 50}
  parser_error_rate: {min_effect: 0.2, min_samples: 50}
  fallback_rate: {min_effect: 0.2, min_samples: 50}
  latency_p50: {enabled: false}
  latency_p99: {enabled: false}
  output_tokens: {enabled: false}
"""
"""A policy that decides on a few hundred pairs (the default one needs thousands)."""
CANARY_HASH = "6b7f9c8d5"
CHECKSUM = "85d557f47b"
NAMESPACE = "prod"
SCENARIOS = {  # scenario -> (base model, candidate model, requests, expected verdict)
    "promote": ("support-7b", "support-7b-lora-good", 300, "PROMOTE"),
    "rollback": ("support-7b", "support-7b-lora-bad", 300, "ROLLBACK"),
    "hold": ("support-7b", "support-7b-lora-new", 20, "HOLD"),
}
GATE: dict[str, dict] = {}
"""The gates' first answers for the hold canaries, given before their traffic."""


def docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / path).read_text()) if d]


def argo_name(scenario: str) -> str:
    return f"{scenario}-{CANARY_HASH}"


def flagger_name(scenario: str) -> str:
    return f"flagger/{NAMESPACE}/{scenario}@{CHECKSUM}"


def send_traffic(url: str, key: str) -> None:
    ct.init(service_name="support", endpoint=url, api_key=key)
    try:
        for base, candidate, requests, _ in SCENARIOS.values():
            canary = ct.Canary(base=lambda r: '{"answer": "ok"}',
                               candidate=lambda r: '{"answer": "ok"}', base_model=base,
                               candidate_model=candidate, mirror_rate=1.0,
                               cohort=lambda r: ("a", "b")[r % 2], shadow_queue_size=requests)
            for request in range(requests):
                canary(request)
            canary.close(30)
    finally:
        ct.shutdown()


def post_results(url: str, auth: dict) -> None:
    """json_validation results: every call passes, but the bad candidate's in cohort "a"."""
    total = sum(2 * n for _, _, n, _ in SCENARIOS.values())
    models = {m for base, candidate, _, _ in SCENARIOS.values() for m in (base, candidate)}
    spans = wait_for(lambda: (found := [s for s in spans_of(url, auth) if s["Model"] in models
                                        and s["PairId"]]) and len(found) >= total and found,
                     what="the canaries' spans")
    bad = SCENARIOS["rollback"][1]
    results = [{"span_id": s["SpanId"], "evaluator": "json_validation",
                "passed": not (s["Model"] == bad and s["Cohort"] == "a")} for s in spans]
    answer = httpx.post(f"{url}/api/eval_results", json=results, headers=auth, timeout=60)
    assert answer.json() == {"inserted": total}


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gates")
    with running_collector(directory) as collector:
        key = collector.create_key("support")
        auth = {"Authorization": f"Bearer {key}"}
        for scenario in ("promote", "rollback"):  # started ahead, with the quick policy
            base, candidate, _, _ = SCENARIOS[scenario]
            for name in (argo_name(scenario), flagger_name(scenario)):
                body = {"base_model": base, "candidate_model": candidate, "name": name,
                        "policy": POLICY, "evaluators": ["json_validation"]}
                assert httpx.post(f"{collector.url}/api/rollouts", json=body,
                                  headers=auth).status_code == 201
        # the hold canaries' rollouts are started by the gates' first calls, before traffic
        url, headers, _ = argo_request("hold", collector.url, key)
        first_looks = {"argo": httpx.get(url, headers=headers).json()}
        (canary,) = docs("flagger/canary.yaml")
        pre = next(w for w in canary["spec"]["analysis"]["webhooks"] if w["type"] == "pre-rollout")
        first_looks["flagger"] = flagger_call(pre, "hold", collector.url, key).json()
        send_traffic(collector.url, key)
        post_results(collector.url, auth)
        GATE.update(first_looks)
        yield collector, key


# --- Argo Rollouts ---------------------------------------------------------------------------

def argo_request(scenario: str, url: str, key: str) -> tuple[str, dict, dict]:
    """The web metric's URL and headers, templated as Argo would for ``scenario``."""
    (template,) = docs("argo/analysis-template.yaml")
    (rollout,) = docs("argo/rollout.yaml")
    metric = template["spec"]["metrics"][0]
    step = next(s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"]
                if "analysis" in s)
    args = {a["name"]: a["value"] for a in template["spec"]["args"] if "value" in a}
    args.update({a["name"]: a["value"] for a in step["args"] if "value" in a})
    base, candidate, _, _ = SCENARIOS[scenario]
    args.update({"canarytrace-url": url, "api-key": key, "canary-hash": CANARY_HASH,
                 "service": scenario, "base-model": base, "candidate-model": candidate})
    web = metric["provider"]["web"]
    headers = {h["key"]: tools.substitute_args(h["value"], args) for h in web["headers"]}
    return tools.substitute_args(web["url"], args), headers, metric


@pytest.mark.parametrize(("scenario", "phase"), [("promote", tools.SUCCESSFUL),
                                                  ("rollback", tools.FAILED),
                                                  ("hold", tools.INCONCLUSIVE)])
def test_argo_takes_the_verdict_as_the_analysis_template_says(gate, scenario, phase):
    collector, key = gate
    url, headers, metric = argo_request(scenario, collector.url, key)
    answer = httpx.get(url, headers=headers, timeout=metric["provider"]["web"]["timeoutSeconds"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["verdict"] == SCENARIOS[scenario][3]
    assert {"verdict", "score", "reasons", "pairs", "since"} <= body.keys()
    assert body["name"] == argo_name(scenario) and body["reasons"]
    assert tools.measure(answer.status_code, body, metric) == phase
    if scenario == "rollback":
        assert any(r["slice"] == "cohort=a" for r in body["reasons"])
        assert body["final"] and body["pairs"] >= 100


def test_the_first_look_starts_the_rollout_and_holds_until_decided(gate):
    collector, key = gate
    first = GATE["argo"]
    assert first["started"] and first["verdict"] == "HOLD" and first["pairs"] == 0
    url, headers, metric = argo_request("hold", collector.url, key)
    later = httpx.get(url, headers=headers).json()
    assert later["rollout_id"] == first["rollout_id"] and not later["started"]
    assert later["verdict"] == "HOLD" and later["pairs"] == SCENARIOS["hold"][2]
    assert later["since"] == first["since"] and later["until"] > first["until"]
    # what the template's limits make of a run of looks
    count = int(metric["count"])
    assert tools.assess_metric([tools.INCONCLUSIVE] * 5, metric) == "Running"
    assert tools.assess_metric([tools.INCONCLUSIVE] * 5 + [tools.SUCCESSFUL], metric) \
        == tools.SUCCESSFUL
    assert tools.assess_metric([tools.INCONCLUSIVE] * 5 + [tools.FAILED], metric) == tools.FAILED
    assert tools.assess_metric([tools.INCONCLUSIVE] * count, metric) == tools.INCONCLUSIVE
    assert tools.assess_metric([tools.ERROR] * 5, metric) == tools.ERROR


def test_argo_errors_are_non_2xx(gate):
    collector, key = gate
    url, headers, metric = argo_request("hold", collector.url, key)
    unknown = httpx.get(f"{collector.url}/api/rollouts/nobody-123/verdict", headers=headers)
    assert unknown.status_code == 404 and "no rollout 'nobody-123'" in unknown.json()["detail"]
    assert tools.measure(unknown.status_code, unknown.json(), metric) == tools.ERROR
    wrong_key = httpx.get(url, headers={"Authorization": "Bearer ct_nope_nope"})
    assert wrong_key.status_code == 401
    other = httpx.get(f"{collector.url}/api/rollouts/{argo_name('promote')}/verdict",
                      params={"base": "support-7b", "candidate": "support-8b"}, headers=headers)
    assert other.status_code == 400 and "not 'support-7b' with 'support-8b'" in other.text
    same = httpx.get(f"{collector.url}/api/rollouts/x-1/verdict",
                     params={"base": "m", "candidate": "m"}, headers=headers)
    assert same.status_code == 400 and "same model" in same.json()["detail"]


# --- Flagger ---------------------------------------------------------------------------------

EXPECTED = {  # hook -> verdicts that pass it
    "rollout": {"PROMOTE", "HOLD"}, "confirm-promotion": {"PROMOTE"}, "rollback": {"ROLLBACK"},
}


def flagger_call(webhook: dict, scenario: str, url: str, key: str) -> httpx.Response:
    """POST Flagger's payload for ``webhook`` of canary ``scenario``, as Flagger does."""
    base, candidate, _, _ = SCENARIOS[scenario]
    metadata = {**webhook["metadata"], "base": base, "candidate": candidate, "api_key": key}
    payload = {"name": scenario, "namespace": NAMESPACE, "phase": "Progressing",
               "checksum": CHECKSUM, "metadata": metadata}
    target = webhook["url"].replace("http://canarytrace.canarytrace.svc.cluster.local:4318",
                                    url)
    return httpx.post(target, json=payload, timeout=30)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_flagger_hooks_pass_and_fail_by_the_verdict(gate, scenario):
    collector, key = gate
    (canary,) = docs("flagger/canary.yaml")
    hooks = {w["type"]: w for w in canary["spec"]["analysis"]["webhooks"]}
    verdict = SCENARIOS[scenario][3]
    started = flagger_call(hooks["pre-rollout"], scenario, collector.url, key)
    assert started.status_code == 200 and not started.json()["started"]
    if scenario == "hold":
        assert GATE["flagger"]["started"]
        assert started.json()["rollout_id"] == GATE["flagger"]["rollout_id"]
    for hook, passing in EXPECTED.items():
        answer = flagger_call(hooks[hook], scenario, collector.url, key)
        assert not tools.flagger_retries(answer.status_code)
        assert tools.flagger_passes(answer.status_code) == (verdict in passing), (hook, answer)
        body = answer.json()
        assert body["verdict"] == verdict and body["name"] == flagger_name(scenario)
        if not tools.flagger_passes(answer.status_code):
            assert answer.status_code == 409 and body["reasons"]
            assert body["detail"].startswith(f"canarytrace rollout {flagger_name(scenario)}: ")
    if scenario == "hold":
        stopped = flagger_call(hooks["post-rollout"], scenario, collector.url, key)
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"


def test_flagger_misconfigurations_are_one_clear_4xx(gate):
    collector, key = gate
    payload = {"name": "support", "namespace": NAMESPACE, "phase": "Progressing",
               "checksum": CHECKSUM}
    cases = [
        ({"rollout": "promote-x", "api_key": key}, 400, "metadata.hook must be one of"),
        ({"hook": "rollout", "rollout": "no-such", "api_key": key}, 404, "no rollout 'no-such'"),
        ({"hook": "rollout", "api_key": key}, 400, "metadata must name the rollout"),
        ({"hook": "rollout", "rollout": argo_name("promote"), "api_key": "ct_a_b"}, 401,
         "invalid API key"),
        ({"hook": "rollout", "rollout": argo_name("promote")}, 401, "API key"),
    ]
    for metadata, status, message in cases:
        answer = httpx.post(f"{collector.url}/api/flagger", json={**payload,
                                                                  "metadata": metadata})
        assert answer.status_code == status and message in answer.json()["detail"], answer.text
        assert not tools.flagger_retries(answer.status_code)
    named = httpx.post(f"{collector.url}/api/flagger", json={
        **payload, "metadata": {"hook": "confirm-promotion", "rollout": argo_name("promote")}},
        headers={"Authorization": f"Bearer {key}"})
    assert named.status_code == 200 and named.json()["verdict"] == "PROMOTE"


# --- Prometheus ------------------------------------------------------------------------------

def scrape(url: str, key: str | None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{url}/metrics", headers=headers)
    assert answer.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(answer.text)}


def test_metrics_expose_each_rollouts_verdict_and_eval_fail_ratios(gate):
    collector, key = gate
    families = scrape(collector.url, key)
    verdicts = {(s.labels["name"], s.labels["verdict"]): s.value
                for s in families["canarytrace_rollout_verdict"].samples}
    for scenario in ("promote", "rollback"):
        expected = SCENARIOS[scenario][3]
        for name in (argo_name(scenario), flagger_name(scenario)):
            assert {v: verdicts[(name, v)] for v in ("PROMOTE", "HOLD", "ROLLBACK")} == {
                v: float(v == expected) for v in ("PROMOTE", "HOLD", "ROLLBACK")}
    ratios = {(s.labels["name"], s.labels["variant"], s.labels["cohort"]): s.value
              for s in families["canarytrace_rollout_eval_fail_ratio"].samples
              if s.labels["evaluator"] == "json_validation"}
    samples = {(s.labels["name"], s.labels["variant"], s.labels["cohort"]): s.value
               for s in families["canarytrace_rollout_eval_samples"].samples}
    bad = argo_name("rollback")
    assert ratios[(bad, "candidate", "a")] == 1.0 and ratios[(bad, "candidate", "b")] == 0.0
    assert ratios[(bad, "base", "a")] == 0.0
    assert samples[(bad, "candidate", "a")] == 150.0
    scores = {s.labels["name"]: s.value for s in families["canarytrace_rollout_score"].samples}
    assert scores[argo_name("promote")] >= 95
    assert {s.labels["project"] for s in families["canarytrace_rollout_pairs"].samples} \
        == {"support"}
    assert "canarytrace_spans_received" in families  # the collector's own metrics stay

    anonymous = scrape(collector.url, None)
    assert not [name for name in anonymous if name.startswith("canarytrace_rollout_")]
    assert httpx.get(f"{collector.url}/metrics",
                     headers={"Authorization": "Bearer ct_x_y"}).status_code == 401


def test_alert_rules_and_metric_template_use_metrics_and_labels_that_exist(gate):
    import re

    collector, key = gate
    families = scrape(collector.url, key)
    labels = {name: {k for s in f.samples for k in s.labels} for name, f in families.items()}
    texts = []
    for group in docs("prometheus/canarytrace-alerts.yaml")[0]["groups"]:
        for rule in group["rules"]:
            texts.append(rule["expr"])
            used = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
            names = set(re.findall(r"canarytrace_\w+", rule["expr"]))
            assert names and names <= families.keys(), rule["alert"]
            assert used <= set.union(*(labels[n] for n in names)), rule["alert"]
    (template,) = docs("flagger/metric-template.yaml")
    texts.append(template["spec"]["query"])
    for text in texts:
        for name in re.findall(r"canarytrace_\w+", text):
            assert name in families, name
            for selector in re.findall(rf"{name}\{{([^}}]*)\}}", text):
                keys = set(re.findall(r"(\w+)\s*=~?", selector))
                assert keys <= labels[name], (name, keys)
        for group in re.findall(r"(?:on|ignoring)\(([^)]*)\)", text):
            assert {g.strip() for g in group.split(",") if g.strip()} <= set.union(*labels.values())
