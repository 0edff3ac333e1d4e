"""A canary made by the mesh, end to end: two uvicorn services (base and candidate, labelled by
their environment) behind a mirroring proxy, exporting to ``canarytrace serve``; ``evaluate``
and ``compare`` pair the mirrored copies by request id and reach the verdict that the same
traffic through an in-process ``ct.Canary`` reaches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import canarytrace as ct
from canarytrace import cli
from tests.collector.conftest import spans_of, wait_for
from tests.support import mesh_service as svc
from tests.support.collector import free_port, running_collector

REPO = Path(__file__).resolve().parents[2]
COHORTS = ("edu", "enterprise", "free", "internal", "pro")
REQUESTS = 200
MODELS = ["--base", svc.BASE_MODEL, "--candidate", svc.CANDIDATE_MODEL]


def request_body(i: int) -> dict:
    return {"prompt": f"question {i} about invoices", "cohort": COHORTS[i % len(COHORTS)]}


class UvicornApp:
    """``python -m uvicorn APP`` on a free port, started at once; ``wait()`` until it answers."""

    def __init__(self, app: str, env: dict[str, str], log: Path) -> None:
        self.app, self.log = app, log
        self.url = f"http://127.0.0.1:{free_port()}"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYTRACE_")}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", app, "--port", self.url.rsplit(":", 1)[1],
                 "--log-level", "warning"], env={**base_env, **env}, cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT)

    def wait(self) -> str:
        def up() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False
        wait_for(up, timeout=90, what=f"{self.app} to start")
        return self.url

    def stop(self) -> None:
        """SIGTERM: uvicorn runs the app's shutdown (the SDK's last export) and exits."""
        self.process.terminate()
        self.process.wait(30)


@contextmanager
def mesh(collector_url: str, key: str, logs: Path) -> Iterator[str]:
    """The base and candidate services behind the mirroring proxy; the proxy's URL."""
    base = UvicornApp("tests.support.mesh_service:app",
                      service_env(collector_url, key, svc.BASE_MODEL, "base"), logs / "base.log")
    candidate = UvicornApp("tests.support.mesh_service:app",
                           service_env(collector_url, key, svc.CANDIDATE_MODEL, "candidate",
                                       CANARYTRACE_ROLE="shadow"), logs / "candidate.log")
    proxy = UvicornApp("tests.support.mirror_proxy:app",
                       {"MIRROR_PRIMARY": base.url, "MIRROR_SHADOW": candidate.url},
                       logs / "proxy.log")
    apps = (proxy, base, candidate)  # stopped in this order: no mirror is cut short
    try:
        for app in apps:
            app.wait()
        yield proxy.url
    finally:
        for app in apps:
            app.stop()


def service_env(collector_url: str, key: str, model: str, variant: str, **extra: str) -> dict:
    return {"CANARYTRACE_ENDPOINT": collector_url, "CANARYTRACE_API_KEY": key,
            "CANARYTRACE_SERVICE_NAME": f"support-{variant}", "CANARYTRACE_VARIANT": variant,
            "MESH_MODEL": model, **extra}


def send_mesh_traffic(collector_url: str, key: str, logs: Path) -> list[str]:
    """The traffic through the proxy, 8 clients at a time; returns the request ids the
    clients sent themselves (the proxy makes up the others, as Envoy does)."""
    client_ids = [f"client-{i}" for i in range(1, REQUESTS, 2)]

    def send(client: httpx.Client, i: int) -> None:
        headers = {"x-request-id": f"client-{i}"} if i % 2 else {}
        answer = client.post("/v1/answer", json=request_body(i), headers=headers)
        assert answer.status_code == 200 and answer.json()["model"] == svc.BASE_MODEL

    with mesh(collector_url, key, logs) as proxy, \
            httpx.Client(base_url=proxy, timeout=30) as client, \
            ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: send(client, i), range(REQUESTS)))
    return client_ids  # the services exported their spans at shutdown


def send_in_process_traffic(collector_url: str, key: str) -> None:
    """The same requests through ct.Canary, mirroring every one to the candidate."""
    ct.init(service_name="support-inproc", endpoint=collector_url, api_key=key)
    try:
        canary = ct.Canary(base=lambda r: svc.reply(svc.BASE_MODEL, r),
                           candidate=lambda r: svc.reply(svc.CANDIDATE_MODEL, r),
                           base_model=svc.BASE_MODEL, candidate_model=svc.CANDIDATE_MODEL,
                           mirror_rate=1.0, cohort=lambda r: r["cohort"],
                           shadow_queue_size=REQUESTS)
        for i in range(REQUESTS):
            with ct.expect(json_schema=svc.ANSWER_SCHEMA):
                canary(request_body(i))
        canary.close(30)
    finally:
        ct.shutdown()


def evaluate_and_compare(url: str, key: str, output: Path) -> dict:
    auth = ["--collector", url, "--api-key", key]
    assert cli.main(["evaluate", "--since", "1h", "--evaluators", "json_validation", *auth]) == 0
    code = cli.main(["compare", *MODELS, "--since", "1h", *auth, "--format", "json",
                     "-o", str(output), "--no-record"])
    report = json.loads(output.read_text())
    assert code == {"PROMOTE": 0, "HOLD": 10, "ROLLBACK": 11}[report["verdict"]]
    return report


def test_mirrored_requests_pair_across_services_like_an_in_process_canary(tmp_path):
    with running_collector(tmp_path / "collector") as collector:
        mesh_key, inproc_key = collector.create_key("mesh"), collector.create_key("inproc")
        client_ids = send_mesh_traffic(collector.url, mesh_key, tmp_path)
        send_in_process_traffic(collector.url, inproc_key)

        auth = {"Authorization": f"Bearer {mesh_key}"}
        models = (svc.BASE_MODEL, svc.CANDIDATE_MODEL)
        spans = wait_for(lambda: (found := [s for s in spans_of(collector.url, auth)
                                            if s["Model"] in models])
                         and len(found) >= 2 * REQUESTS and found, what="the mesh's spans")
        by_variant: dict[str, dict[str, dict]] = {"base": {}, "candidate": {}}
        for span in spans:
            by_variant[span["Variant"]][span["PairId"]] = span
        base, candidate = by_variant["base"], by_variant["candidate"]
        assert len(base) == len(candidate) == REQUESTS and base.keys() == candidate.keys()
        assert set(client_ids) <= base.keys()
        for pair_id, shadow in candidate.items():
            primary = base[pair_id]
            assert (primary["Role"], shadow["Role"]) == ("primary", "shadow")
            assert primary["Model"] == svc.BASE_MODEL and shadow["Model"] == svc.CANDIDATE_MODEL
            assert primary["TraceId"] != shadow["TraceId"]
            assert primary["ServiceName"] != shadow["ServiceName"]
            assert primary["Cohort"] == shadow["Cohort"]

        wait_for(lambda: len(spans_of(collector.url, {"Authorization": f"Bearer {inproc_key}"}))
                 >= 2 * REQUESTS, what="the in-process canary's spans")
        mesh = evaluate_and_compare(collector.url, mesh_key, tmp_path / "mesh.json")
        inproc = evaluate_and_compare(collector.url, inproc_key, tmp_path / "inproc.json")

    assert mesh["verdict"] == inproc["verdict"] == "ROLLBACK"
    rows = {name: {(m["metric"], m["slice"]): m for m in report["metrics"]}
            for name, report in (("mesh", mesh), ("inproc", inproc))}
    for slice_ in ("all", *(f"cohort={c}" for c in COHORTS)):
        mesh_row, inproc_row = (rows[name][("json_validation", slice_)]
                                for name in ("mesh", "inproc"))
        assert mesh_row["mode"] == inproc_row["mode"] == "paired"
        assert mesh_row["n"] == inproc_row["n"]
        assert mesh_row["difference"] == inproc_row["difference"]
    assert rows["mesh"][("json_validation", "all")]["n"] == REQUESTS
    assert rows["mesh"][("json_validation", "all")]["difference"] == pytest.approx(-0.2)

    def evaluator_reasons(report: dict) -> set:
        return {(r["metric"], r["slice"]) for r in report["reasons"]
                if r["metric"] == "json_validation"}
    assert evaluator_reasons(mesh) == evaluator_reasons(inproc) != set()
