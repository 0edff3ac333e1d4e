"""The SQL behind the per-rollout Prometheus metrics: eval-fail counts by evaluator, arm and
cohort over a rollout's window.

One GROUP BY over ``eval_results`` (FINAL: a re-scored span counts once), keeping, as the
comparison does, only each evaluator's latest version. Cohorts are ranked by how many results
they have, so that the caller can keep the largest ones and fold the rest.
"""

from __future__ import annotations

from typing import Any

EVAL_COUNTS_SQL = """
SELECT
    Evaluator                               AS evaluator,
    Model = {{candidate:String}}            AS is_candidate,
    Cohort                                  AS cohort,
    countIf(Passed = false)                 AS failed,
    countIf(Passed IS NOT NULL)             AS judged
FROM {table} FINAL
WHERE Project = {{project:String}}
  AND Model IN ({{base:String}}, {{candidate:String}})
  AND SpanTimestamp >= fromUnixTimestamp64Nano({{since_ns:Int64}})
  AND SpanTimestamp < fromUnixTimestamp64Nano({{until_ns:Int64}})
  AND (Evaluator, EvaluatorVersion) IN (
        SELECT Evaluator, argMax(EvaluatorVersion, Timestamp)
        FROM {table}
        WHERE Project = {{project:String}}
          AND SpanTimestamp >= fromUnixTimestamp64Nano({{since_ns:Int64}})
          AND SpanTimestamp < fromUnixTimestamp64Nano({{until_ns:Int64}})
        GROUP BY Evaluator)
GROUP BY evaluator, is_candidate, cohort
HAVING judged > 0
ORDER BY judged DESC, evaluator, cohort
"""


def eval_counts(store: Any, project: str, base: str, candidate: str, since_ns: int,
                until_ns: int) -> list[dict[str, Any]]:
    """Rows ``{evaluator, is_candidate, cohort, failed, judged}``, the largest first."""
    sql = EVAL_COUNTS_SQL.format(table=store.table("eval_results"))
    return store.query(sql, {"project": project, "base": base, "candidate": candidate,
                             "since_ns": int(since_ns), "until_ns": int(until_ns)})
