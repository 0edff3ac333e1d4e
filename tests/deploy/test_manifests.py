"""The shipped Argo Rollouts, Flagger and Prometheus manifests: they parse, name only fields
their CRDs (or rule format) have, and agree with each other and with the collector's routes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from canarytrace.collector.app import create_app
from canarytrace.collector.settings import Settings
from tests.deploy.crd import load_fields, unknown_fields
from tests.support.rollout_tools import eval_condition, expr_to_python

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FIELD_LISTS = {("argoproj.io/v1alpha1", "AnalysisTemplate"): "argo-analysistemplate",
               ("argoproj.io/v1alpha1", "Rollout"): "argo-rollout",
               ("flagger.app/v1beta1", "Canary"): "flagger-canary",
               ("flagger.app/v1beta1", "MetricTemplate"): "flagger-metrictemplate",
               ("v1", "Namespace"): "kubernetes-namespace",
               ("v1", "Service"): "kubernetes-service",
               ("apps/v1", "StatefulSet"): "kubernetes-statefulset"}
RULE_FIELDS = {"groups", "groups[]", "groups[].name", "groups[].interval", "groups[].limit",
               "groups[].rules", "groups[].rules[]"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
"""Prometheus rule files (prometheus.io/docs/prometheus/latest/configuration/alerting_rules)."""


def documents(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / path).read_text()) if d]


def kubernetes_documents() -> list[tuple[str, dict]]:
    return [(str(path.relative_to(DEPLOY)), document)
            for path in sorted(DEPLOY.glob("*/*.yaml")) if path.parent.name != "prometheus"
            for document in documents(str(path.relative_to(DEPLOY)))]


@pytest.mark.parametrize(("path", "document"), kubernetes_documents(),
                         ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_every_field_is_one_the_crd_defines(path, document):
    key = (document["apiVersion"], document["kind"])
    assert key in FIELD_LISTS, f"{path}: no field list for {key}"
    assert unknown_fields(document, load_fields(FIELD_LISTS[key])) == []


def test_the_field_check_catches_a_misspelled_field():
    (template,) = documents("argo/analysis-template.yaml")
    template["spec"]["metrics"][0]["successCondtion"] = template["spec"]["metrics"][0].pop(
        "successCondition")
    template["spec"]["metrics"][0]["provider"]["web"]["header"] = []
    assert sorted(unknown_fields(template, load_fields("argo-analysistemplate"))) == [
        "spec.metrics[].provider.web.header", "spec.metrics[].successCondtion"]


def test_the_analysis_template_decides_on_the_verdict_field():
    (template,) = documents("argo/analysis-template.yaml")
    (metric,) = template["spec"]["metrics"]
    assert metric["successCondition"] == 'result.verdict == "PROMOTE"'
    assert metric["failureCondition"] == 'result.verdict == "ROLLBACK"'
    for verdict, success, failure in (("PROMOTE", True, False), ("HOLD", False, False),
                                      ("ROLLBACK", False, True)):
        result = {"verdict": verdict}
        assert eval_condition(result, metric["successCondition"]) is success
        assert eval_condition(result, metric["failureCondition"]) is failure
    # the evaluator on Argo's own documented examples
    assert eval_condition({"ok": True, "successPercent": 0.95},
                          "result.ok && result.successPercent >= 0.90") is True
    assert eval_condition({"verdict": "HOLD"}, '!(result.verdict == "HOLD") || false') is False
    with pytest.raises(ValueError):
        expr_to_python("result.verdict matches '^P'")
    secret = next(a for a in template["spec"]["args"] if a["name"] == "api-key")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "canarytrace-api-key", "key": "api-key"}
    web = metric["provider"]["web"]
    assert web["headers"] == [{"key": "Authorization", "value": "Bearer {{args.api-key}}"}]
    assert metric["consecutiveSuccessLimit"] == 1 and metric["failureLimit"] == 0
    assert metric["inconclusiveLimit"] >= metric["count"]


def test_the_rollout_supplies_every_argument_the_template_needs():
    (template,) = documents("argo/analysis-template.yaml")
    (rollout,) = documents("argo/rollout.yaml")
    declared = {a["name"]: a for a in template["spec"]["args"]}
    used = set(re.findall(r"\{\{args\.([\w-]+)\}\}", yaml.safe_dump(template["spec"]["metrics"])))
    assert used <= declared.keys()
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    (analysis,) = [s["analysis"] for s in steps if "analysis" in s]
    assert [t["templateName"] for t in analysis["templates"]] == [template["metadata"]["name"]]
    given = {a["name"] for a in analysis["args"]}
    needed = {n for n, a in declared.items() if "value" not in a and "valueFrom" not in a}
    assert needed <= given <= declared.keys()
    canary_hash = next(a for a in analysis["args"] if a["name"] == "canary-hash")
    assert canary_hash["valueFrom"] == {"podTemplateHashValue": "Latest"}
    # the variant label the pods read is the one Argo's ephemeral metadata sets
    env = {e["name"]: e for e in rollout["spec"]["template"]["spec"]["containers"][0]["env"]}
    path = env["CANARYTRACE_VARIANT"]["valueFrom"]["fieldRef"]["fieldPath"]
    (label,) = re.findall(r"metadata\.labels\['([^']+)'\]", path)
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["stableMetadata"]["labels"][label] == "base"
    assert canary["canaryMetadata"]["labels"][label] == "candidate"
    models = {a["name"]: a.get("value") for a in analysis["args"]}
    assert env["MODEL_NAME"]["value"] == models["candidate-model"]


def test_flagger_hooks_name_their_own_type_and_a_route_that_exists():
    (canary,) = documents("flagger/canary.yaml")
    paths = create_app(Settings()).openapi()["paths"]
    assert "post" in paths["/api/flagger"]
    assert "get" in paths["/api/rollouts/{ref}/verdict"]
    webhooks = canary["spec"]["analysis"]["webhooks"]
    assert {w["type"] for w in webhooks} >= {"rollout", "confirm-promotion", "rollback"}
    for webhook in webhooks:
        assert webhook["metadata"]["hook"] == webhook["type"]
        assert webhook["url"].endswith("/api/flagger")
        assert set(webhook["metadata"]) == {"hook", "base", "candidate", "api_key"}
        assert all(isinstance(v, str) for v in webhook["metadata"].values())  # map[string]string


def test_prometheus_rules_use_only_rule_file_fields():
    (rules,) = documents("prometheus/canarytrace-alerts.yaml")
    paths = set()
    for group in rules["groups"]:
        paths |= {f"groups[].{k}" for k in group} | {"groups", "groups[]"}
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule
            assert "alert" in rule and "expr" in rule
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s"))
    assert paths <= RULE_FIELDS


def test_the_gates_point_at_the_collector_the_cluster_manifest_runs():
    namespace, service, statefulset = documents("kubernetes/canarytrace.yaml")
    address = (f"http://{service['metadata']['name']}.{service['metadata']['namespace']}"
               f".svc.cluster.local:{service['spec']['ports'][0]['port']}")
    assert namespace["metadata"]["name"] == service["metadata"]["namespace"]
    (template,) = documents("argo/analysis-template.yaml")
    url = next(a["value"] for a in template["spec"]["args"] if a["name"] == "canarytrace-url")
    (canary,) = documents("flagger/canary.yaml")
    (rollout,) = documents("argo/rollout.yaml")
    env = {e["name"]: e for e in rollout["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert url == address == env["CANARYTRACE_ENDPOINT"]["value"]
    assert all(w["url"] == f"{address}/api/flagger" for w in canary["spec"]["analysis"]["webhooks"])
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert service["spec"]["selector"] == statefulset["spec"]["template"]["metadata"]["labels"]
    assert container["ports"][0]["containerPort"] == service["spec"]["ports"][0]["targetPort"]
    fields = Settings.model_fields
    for variable in container["env"]:
        assert variable["name"].removeprefix("CANARYTRACE_").lower() in fields
