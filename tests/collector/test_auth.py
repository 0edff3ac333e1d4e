"""API keys: created while the collector runs, 401 without one, each key sees its own project."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from google.rpc import status_pb2

import canarytrace as ct
from canarytrace import attributes as A
from tests.collector import otlp_payloads as P
from tests.collector.conftest import spans_of, wait_for_spans
from tests.support.faults import assert_stored_once, stored_copies


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_cli(collector, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canarytrace.cli", "keys", "--keys-file",
                           str(collector.keys_file), *args], env=collector.env,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def keys(collector):
    """Two keys created with the CLI while the collector is already serving."""
    assert httpx.get(f"{collector.url}/api/spans").status_code == 200  # no keys yet: open
    return {"alpha": collector.create_key("alpha"), "beta": collector.create_key("beta")}


def test_keys_are_stored_hashed_and_listed_without_secrets(collector, keys):
    stored = collector.keys_file.read_text()
    secret = keys["alpha"].split("_", 2)[2]  # ct_<id>_<secret>; the secret may contain "_"
    assert keys["alpha"] not in stored and secret not in stored
    entries = json.loads(stored)["keys"]
    assert {e["project"] for e in entries} == {"alpha", "beta"}
    assert all(len(e["hash"]) == 64 and len(e["salt"]) == 32 for e in entries)
    listing = keys_cli(collector, "list").stdout
    assert "alpha" in listing and keys["alpha"] not in listing


def test_requests_without_a_valid_key_get_401_once_keys_exist(collector, keys):
    body = P.protobuf_body([P.span()], service="intruder")
    for headers in ({}, bearer("ct_nope_nope"), {"Authorization": "Basic dXNlcjpwYXNz"},
                    bearer(keys["alpha"] + "x")):
        response = httpx.post(f"{collector.url}/v1/traces", content=body,
                              headers={**P.PROTOBUF, **headers})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in status_pb2.Status.FromString(response.content).message
    assert httpx.get(f"{collector.url}/api/spans").status_code == 401
    assert httpx.post(f"{collector.url}/v1/feedback",
                      json={"trace_id": "a" * 32, "score": 1}).status_code == 401
    assert httpx.get(f"{collector.url}/healthz").status_code == 200


def test_each_key_writes_and_reads_only_its_own_project(collector, keys):
    ct.init(service_name="alpha-app", endpoint=collector.url, api_key=keys["alpha"])
    try:
        with ct.llm_call(model="alpha-model"):
            pass
    finally:
        ct.shutdown()
    claims_beta = P.protobuf_body([P.span("sneaky")], service="alpha-app",
                                  resource={A.CANARY_PROJECT: "beta"})
    assert httpx.post(f"{collector.url}/v1/traces", content=claims_beta,
                      headers={**P.PROTOBUF, **bearer(keys["alpha"])}).status_code == 200
    httpx.post(f"{collector.url}/v1/traces", headers={**P.PROTOBUF, **bearer(keys["beta"])},
               content=P.protobuf_body([P.span("beta-span")], service="beta-app"))

    alpha = wait_for_spans(collector.url, 2, bearer(keys["alpha"]))
    beta = wait_for_spans(collector.url, 1, bearer(keys["beta"]))
    assert sorted(s["SpanName"] for s in alpha) == ["chat alpha-model", "sneaky"]
    assert {s["Project"] for s in alpha} == {"alpha"}
    assert [s["SpanName"] for s in beta] == ["beta-span"]
    trace_id = alpha[0]["TraceId"]
    assert httpx.get(f"{collector.url}/api/traces/{trace_id}",
                     headers=bearer(keys["beta"])).status_code == 404
    assert httpx.get(f"{collector.url}/api/traces/{trace_id}",
                     headers=bearer(keys["alpha"])).status_code == 200

    result = [{"span_id": alpha[0]["SpanId"], "evaluator": "exact", "score": 1.0}]
    posted = httpx.post(f"{collector.url}/api/eval_results", json=result,
                        headers=bearer(keys["beta"]))
    assert posted.json() == {"inserted": 1}
    seen_by_alpha = httpx.get(f"{collector.url}/api/eval_results",
                              headers=bearer(keys["alpha"])).json()["eval_results"]
    assert seen_by_alpha == []
    (seen_by_beta,) = httpx.get(f"{collector.url}/api/eval_results",
                                headers=bearer(keys["beta"])).json()["eval_results"]
    assert (seen_by_beta["Project"], seen_by_beta["Model"]) == ("beta", "")  # alpha's span unread


def test_a_revoked_key_stops_working_without_restart(collector, keys):
    temporary = collector.create_key("gamma")
    key_id = temporary.split("_")[1]
    assert httpx.get(f"{collector.url}/api/spans", headers=bearer(temporary)).status_code == 200
    assert keys_cli(collector, "revoke", key_id).returncode == 0
    assert httpx.get(f"{collector.url}/api/spans", headers=bearer(temporary)).status_code == 401
    missing = keys_cli(collector, "revoke", key_id)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no key with id" in missing.stderr
    assert spans_of(collector.url, bearer(keys["beta"]), service="alpha-app") == []


def test_revoking_the_last_key_or_losing_the_file_refuses_everyone_until_auth_none(
        new_collector):
    """Authentication is a mode: once a key existed, revoking the last one (or deleting
    keys.json) refuses every request instead of opening the store; ``--auth none`` is the
    operator's explicit way back. Spans acknowledged before are all stored, once."""
    collector = new_collector("last-key")
    collector.start()
    key = collector.create_key("solo")
    acked = []
    for _ in range(3):
        spans = [P.span("before-revoke") for _ in range(20)]
        response = httpx.post(f"{collector.url}/v1/traces", headers={**P.PROTOBUF, **bearer(key)},
                              content=P.protobuf_body(spans, service="last-key"))
        assert response.status_code == 200
        acked += [s["span_id"].hex() for s in spans]
    wait_for_spans(collector.url, len(acked), bearer(key), service="last-key")
    revoked = keys_cli(collector, "revoke", key.split("_")[1])
    assert revoked.returncode == 0 and "that was the last key" in revoked.stderr

    def refused() -> None:
        body = P.protobuf_body([P.span("after-revoke")], service="last-key")
        for headers in ({}, bearer(key)):
            response = httpx.post(f"{collector.url}/v1/traces", content=body,
                                  headers={**P.PROTOBUF, **headers})
            assert response.status_code == 401
            assert httpx.get(f"{collector.url}/api/spans", headers=headers).status_code == 401

    refused()
    message = status_pb2.Status.FromString(httpx.post(
        f"{collector.url}/v1/traces", content=P.protobuf_body([P.span()]),
        headers={**P.PROTOBUF, **bearer(key)}).content).message
    assert "no API keys are configured" in message and "--auth none" in message
    collector.keys_file.unlink()  # keys.json lost: still closed
    refused()
    collector.stop()
    assert_stored_once(collector, "last-key", acked)
    assert set(stored_copies(collector, "last-key")) == set(acked)

    collector.args = ("--auth", "none")
    collector.start()
    assert httpx.post(f"{collector.url}/v1/traces", headers=P.PROTOBUF,
                      content=P.protobuf_body([P.span("open")], service="open")).status_code == 200
    assert wait_for_spans(collector.url, 1, service="open")[0]["Project"] == "default"
