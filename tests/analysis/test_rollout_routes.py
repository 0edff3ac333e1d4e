"""The ``/api/rollouts`` routes and ``canarytrace rollout --collector`` against a running
``canarytrace serve`` (a subprocess owning an embedded store seeded beforehand), and the
policy bounds on ``GET /api/compare``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from canarytrace.analysis.compare import ROLLBACK
from canarytrace.analysis.report_json import validate_report
from canarytrace.store.client import Store
from tests.analysis import simulate as sim
from tests.analysis.test_rollouts import DROP, _seed
from tests.support.collector import cli_env, running_collector


def test_the_routes_and_the_cli_through_a_running_collector(tmp_path):
    seeded = Store.from_url(f"chdb://{tmp_path / 'db'}")
    seeded.migrate()
    _seed(seeded, "default", DROP, seed=21)
    seeded.close()
    with running_collector(Path(tmp_path)) as collector:
        api = f"{collector.url}/api/rollouts"
        body = {"base_model": sim.BASE_MODEL, "candidate_model": sim.CANDIDATE_MODEL,
                "by": "cohort", "name": "argo-web", "started_at": sim.START.isoformat()}
        created = httpx.post(api, json=body)
        assert created.status_code == 201, created.text
        rollout = created.json()
        assert rollout["state"] == "active" and len(rollout["family"]["known_slices"]) == 5

        status = httpx.get(f"{api}/{rollout['id']}", timeout=60).json()
        assert status["verdict"] == ROLLBACK and status["final"] and status["exit_code"] == 11
        assert any(r["slice"] == "cohort=pro" for r in status["reasons"])
        validate_report(status["report"])
        short = httpx.get(f"{api}/{rollout['id']}", params={"report": "false"}).json()
        assert "report" not in short and short["verdict"] == ROLLBACK
        listed = httpx.get(api, params={"name": "argo-web"}).json()["rollouts"]
        assert [r["id"] for r in listed] == [rollout["id"]] and listed[0]["verdict"] == ROLLBACK
        looks = httpx.get(f"{api}/{rollout['id']}/looks").json()["looks"]
        assert [look["verdict"] for look in looks] == [ROLLBACK]
        stopped = httpx.post(f"{api}/{rollout['id']}/stop").json()
        assert stopped["state"] == "decided" and stopped["stopped_at"]

        assert httpx.get(f"{api}/nope").status_code == 404
        for bad, code in (({**body, "by": "model"}, 400), ({**body, "policy": "alpha: .nan"},
                                                           400),
                          ({**body, "extra": 1}, 422), ({"base_model": "a"}, 422)):
            answer = httpx.post(api, json=bad)
            assert answer.status_code == code, answer.text
        for policy in ("alpha: .nan", "bootstrap_resamples: 1000000000", "a: &x [1]\nb: *x"):
            answer = httpx.get(f"{collector.url}/api/compare", params={
                "base": "a", "candidate": "b", "policy": policy})
            assert answer.status_code == 400, answer.text

        env = {**cli_env(), "CANARYTRACE_COLLECTOR": collector.url}
        run = subprocess.run([sys.executable, "-m", "canarytrace.cli", "rollout", "start",
                              "--base", sim.BASE_MODEL, "--candidate", sim.CANDIDATE_MODEL,
                              "--start", "2025-03-01T00:00:00Z", "--format", "json"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        started = json.loads(run.stdout)
        run = subprocess.run([sys.executable, "-m", "canarytrace.cli", "rollout", "status",
                              started["id"]], env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 11, run.stderr
        assert "ROLLBACK" in run.stdout and "cohort=pro" in run.stdout
        run = subprocess.run([sys.executable, "-m", "canarytrace.cli", "rollout", "status",
                              "nope"], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and "404" in run.stderr
