"""One comparison run against a store: load, compare, serialize, record the verdict.

Shared by ``canarytrace compare --store`` and the collector's ``GET /api/compare``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from canarytrace.analysis.compare import compare
from canarytrace.analysis.family import Family
from canarytrace.analysis.inputs import ComparisonQuery, load_inputs
from canarytrace.analysis.policy import Policy
from canarytrace.analysis.report_json import report_to_dict

if TYPE_CHECKING:
    from canarytrace.store.client import Store


class StoreError(RuntimeError):
    """The store cannot be opened or has no canarytrace tables."""


@dataclass(frozen=True)
class ComparisonRequest:
    """What a user asks for: two models, a window, slicings (see ``window.parse_*``)."""

    base: str
    candidate: str
    since: datetime
    until: datetime
    slicings: tuple[tuple[str, ...], ...]
    window_kind: str = "anchored"
    """How ``since`` was given: "anchored" (a fixed time) or "sliding" (a duration back)."""

    def window(self) -> str:
        """The window as an ISO-8601 interval, as the verdicts table stores it."""
        return f"{self.since.isoformat()}/{self.until.isoformat()}"


def open_store(url: str) -> Store:
    """Open the store at ``url`` and check that it holds the canarytrace tables."""
    from canarytrace.store.client import Store
    from canarytrace.store.location import chdb_path

    directory = chdb_path(url)
    if directory is not None and not directory.exists():
        raise StoreError(f"no store at {directory} (nothing has been collected there; "
                         "pass --store URL or --collector URL)")
    try:
        store = Store.from_url(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open is reported as one line
        raise StoreError(f"cannot open the store at {url}: {_first_line(exc)} (while "
                         "'canarytrace serve' owns an embedded store, use --collector)") from exc
    try:
        present = store.client.command(f"EXISTS TABLE {store.table('otel_traces')}")
    except Exception as exc:  # noqa: BLE001
        store.close()
        raise StoreError(f"cannot query the store at {url}: {_first_line(exc)}") from exc
    if str(present).strip() != "1":
        store.close()
        raise StoreError(f"the store at {url} has no canarytrace tables yet "
                         "(nothing has been collected there)")
    return store


def run_comparison(store: Store, request: ComparisonRequest, policy: Policy,
                   project: str = "default", record: bool = True,
                   family: Family | None = None) -> dict[str, Any]:
    """Compare ``request`` on ``store`` under ``policy`` (and a rollout's fixed ``family``);
    the JSON report (report_json)."""
    query = ComparisonQuery(request.base, request.candidate, request.since, request.until,
                            project, request.slicings)
    report = report_to_dict(compare(load_inputs(store, query), policy, family),
                            window=request.window_kind)
    if record:
        store.insert_verdict(verdict_row(report, request))
    return report


def verdict_row(report: dict[str, Any], request: ComparisonRequest) -> dict[str, Any]:
    """The ``verdicts`` row of a report (Score 0 when nothing could be judged yet)."""
    return {"Project": report["project"], "BaseModel": report["base_model"],
            "CandidateModel": report["candidate_model"], "Verdict": report["verdict"],
            "Score": report["score"] or 0.0, "Window": request.window(),
            "Reasons": report["reasons"], "Report": report}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
