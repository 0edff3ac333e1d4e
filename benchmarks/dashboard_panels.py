"""How long the dashboard's panels take on the embedded store (chDB).

Seeds N canary requests of realistic traffic (about 4 spans, 5 eval rows per request)
over 24 hours, then runs every panel's SQL (expanded as the built-in page does, for
"Last 24 hours" and "Last 6 hours") and prints the latency of each panel and of a full
page refresh (all panels, run one after the other).

    python benchmarks/dashboard_panels.py --requests 50000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canarytrace.dashboards import panels
from canarytrace.store import panel_sql  # noqa: E402
from canarytrace.store.client import Store  # noqa: E402
from tests.analysis.dashboard_seed import make_traffic, seed_store  # noqa: E402


def seed(store: Store, requests: int, now: datetime, batch: int = 5000) -> int:
    """Write ``requests`` requests spread evenly over the 24 hours before ``now``."""
    spans, day = 0, timedelta(hours=24)
    for start in range(0, requests, batch):
        count = min(batch, requests - start)
        slice_end = now - day + day * ((start + count) / requests)
        traffic = make_traffic(requests=count, hours=24 * count / requests, seed=start,
                               now=slice_end)
        seed_store(store, traffic)
        spans += len(traffic.spans)
    return spans


def time_panels(store: Store, hours: int, now: datetime, repeat: int) -> dict[str, float]:
    start = now - timedelta(hours=hours)
    ctx = panel_sql.QueryContext(start, now, panel_sql.choose_interval(start, now, 60),
                              {"project": ["default"], "service": None, "route": None,
                               "model": None})
    timings = {}
    for panel in panels.load_dashboard().panels:
        sql = panel_sql.expand(panel.sql, ctx)
        runs = []
        for _ in range(repeat):
            began = time.perf_counter()
            store.query(sql)
            runs.append(time.perf_counter() - began)
        timings[panel.id] = statistics.median(runs)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as directory:
        store = Store.from_url(f"chdb://{directory}/db")
        store.migrate()
        began = time.perf_counter()
        spans = seed(store, args.requests, now)
        print(f"seeded {args.requests} requests, {spans} spans in "
              f"{time.perf_counter() - began:.1f} s")
        for hours in (24, 6):
            timings = time_panels(store, hours, now, args.repeat)
            print(f"\nlast {hours} h (median of {args.repeat} runs):")
            for panel_id, seconds in timings.items():
                print(f"  {panel_id:<24} {seconds * 1000:8.1f} ms")
            print(f"  {'whole page refresh':<24} {sum(timings.values()) * 1000:8.1f} ms")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
