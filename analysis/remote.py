"""``canarytrace compare --collector``: the same comparison, computed by a running collector."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

from canarytrace.analysis.report_json import GUARANTEES, validate_report
from canarytrace.analysis.service import ComparisonRequest, verdict_row
from canarytrace.cli import CommandError

TIMEOUT_S = 300.0


def fetch_report(url: str, request: ComparisonRequest, policy_text: str | None, by: str,
                 api_key: str | None) -> dict[str, Any]:
    """``GET {url}/api/compare`` with the request's parameters; the validated JSON report."""
    params = {"base": request.base, "candidate": request.candidate,
              "since": request.since.isoformat(), "until": request.until.isoformat(), "by": by}
    if policy_text is not None:
        params["policy"] = policy_text
    response = _call("GET", url, "/api/compare", api_key, params=params)
    try:
        report = response.json()
        validate_report(report)
    except (ValueError, jsonschema.ValidationError) as exc:
        raise CommandError(f"the collector at {url} sent an unexpected report: "
                           f"{str(exc).splitlines()[0]}", exit_code=1) from exc
    if request.window_kind == "sliding":  # the collector saw the resolved, absolute since
        report["guarantee"] = {"anytime": False, "window": "sliding",
                               "message": GUARANTEES["sliding"]}
    return report


def record_verdict(url: str, report: dict[str, Any], request: ComparisonRequest,
                   api_key: str | None) -> None:
    """``POST {url}/api/verdicts``: append the run to the collector's verdict history."""
    row = verdict_row(report, request)
    body = {"base_model": row["BaseModel"], "candidate_model": row["CandidateModel"],
            "verdict": row["Verdict"], "score": row["Score"], "window": row["Window"],
            "reasons": row["Reasons"], "report": row["Report"]}
    _call("POST", url, "/api/verdicts", api_key, json=body)


def call(method: str, url: str, path: str, api_key: str | None,
         accept: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
    """One request to the collector; CommandError (exit 1) unless it answers in ``accept``."""
    return _call(method, url, path, api_key, accept=accept, **kwargs)


def _call(method: str, url: str, path: str, api_key: str | None,
          accept: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers=headers,
                                 timeout=TIMEOUT_S, **kwargs)
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach the collector at {url}: {exc}", exit_code=1) from exc
    if response.status_code not in accept:
        code = 2 if response.status_code in (400, 404, 422) else 1
        raise CommandError(f"the collector at {url} answered {response.status_code} to "
                           f"{method} {path}: {_detail(response)}", exit_code=code)
    return response


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return " ".join(str(detail).split())[:500]
