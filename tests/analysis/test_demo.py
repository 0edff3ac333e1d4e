"""`canarytrace demo` as a newcomer runs it, and every dashboard panel on the demo's traffic.

The demo runs once per session (tests/analysis/conftest.py), with stdout piped as in a CI log.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from canarytrace import cli
from canarytrace.analysis.demo_command import _fresh_directory
from canarytrace.store import panel_sql
from canarytrace.store.client import Store
from tests.analysis.test_dashboards import GRAFANA_INTERVAL_S, GRAFANA_PANELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(demo_run):
    return demo_run.workdir, demo_run.run


@pytest.fixture(scope="module")
def demo_store(demo_run):
    store = Store.from_url(f"chdb://{demo_run.folder / 'db'}")
    yield store
    store.close()


def test_demo_ends_with_rollback_naming_billing_and_json_validity(demo):
    workdir, run = demo
    assert run.returncode == 0, run.stderr
    assert "ROLLBACK" in run.stdout
    assert "json_validation regressed in route=billing" in run.stdout  # on one line
    report = (workdir / ".canarytrace" / "demo" / "report.html").read_text()
    assert "ROLLBACK" in report and "json_validation" in report
    assert not (workdir / "report.html").exists(), "the report belongs in the demo's folder"
    assert f"Report: {workdir / '.canarytrace' / 'demo' / 'report.html'}" in run.stdout


def test_piped_output_cuts_no_cell_and_keeps_the_hint_line_whole(demo):
    """Not a terminal (CI logs, | tee): no cell ends in an ellipsis, no line is broken."""
    workdir, run = demo
    assert "…" not in run.stdout
    lines = run.stdout.splitlines()
    hint = [line for line in lines if line.startswith("Dashboard: ")]
    store = workdir / ".canarytrace" / "demo" / "db"
    assert hint == [f"Dashboard: canarytrace serve --store chdb://{store} "
                    "and open http://127.0.0.1:4318/"]
    # the verdict is sliced by route and by cohort, every slice name and result in full
    rows = [line.split() for line in lines
            if re.search(r"\s(all|route=\S+|cohort=\S+)\s+\d+\s", line)]
    slices = {cell for row in rows for cell in row if re.match(r"^(route|cohort)=", cell)}
    assert {"route=billing", "route=search", "route=support"} <= slices
    assert {"cohort=free", "cohort=pro", "cohort=enterprise", "cohort=eu", "cohort=us"} <= slices
    results = {row[-1] for row in rows}
    assert "regression" in results and results <= {"regression", "improvement", "pass",
                                                   "inconclusive", "insufficient", "nodata"}
    served = next(line for line in lines if line.startswith("Served "))
    assert served.endswith("dropped).")


def test_the_demos_traffic_spreads_over_the_last_hour(demo, demo_store):
    first, last = demo_store.query(
        "SELECT toUnixTimestamp(min(Timestamp)) AS first, toUnixTimestamp(max(Timestamp)) AS last "
        "FROM canarytrace.otel_traces")[0].values()
    minutes = (last - first) / 60
    assert 50 <= minutes <= 60, f"the demo's spans cover {minutes:.1f} minutes"
    per_minute = demo_store.query(
        "SELECT toStartOfMinute(Timestamp) AS minute, count() AS spans "
        "FROM canarytrace.otel_traces GROUP BY minute")
    assert len(per_minute) >= 50  # a line on the dashboard, not a column of dots


@pytest.mark.parametrize("title", list(GRAFANA_PANELS))
def test_every_grafana_panel_has_rows_on_the_demo_traffic(demo, demo_store, title):
    now = datetime.now(UTC)
    context = panel_sql.QueryContext(now - timedelta(hours=1), now + timedelta(minutes=1),
                                  GRAFANA_INTERVAL_S, dict.fromkeys(("project", "service",
                                                                     "route", "cohort", "model")))
    sql = panel_sql.expand(GRAFANA_PANELS[title]["targets"][0]["rawSql"], context)
    assert demo_store.query(sql), f"panel {title!r} returned no rows on the demo's traffic"


def test_a_demo_usage_error_is_one_line_and_exit_2(capsys):
    assert cli.main(["demo", "--requests", "many"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --requests: invalid int value" in err


def test_a_demo_interrupted_while_wiping_its_folder_does_not_block_the_next(tmp_path):
    """Ctrl+C while an earlier demo's folder is being deleted; the next run starts cleanly."""
    folder = tmp_path / "demo"
    (folder / "db" / "store").mkdir(parents=True)
    (folder / "collector.log").write_text("an earlier demo\n")
    for i in range(150):
        part = folder / "db" / "store" / f"part{i}"
        part.mkdir()
        for j in range(80):
            (part / f"column{j}.bin").write_bytes(b"x")
    code = ("import sys; from pathlib import Path; "
            "from canarytrace.analysis.demo_command import _fresh_directory; "
            "print('wiping', flush=True); _fresh_directory(Path(sys.argv[1]))")
    wiping = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert wiping.stdout.readline().strip() == "wiping"
    deadline = time.monotonic() + 20
    while folder.exists() and time.monotonic() < deadline:  # renamed first, then deleted
        time.sleep(0.001)
    wiping.send_signal(signal.SIGINT)
    assert wiping.wait(20) != 0, "the wipe finished before it could be interrupted"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "demo"]
    assert leftovers and not folder.exists()  # half-deleted, under another name

    _fresh_directory(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    assert list(tmp_path.iterdir()) == [folder]


def test_a_half_wiped_folder_of_an_earlier_demo_is_still_recognized(tmp_path):
    """What an interrupted in-place wipe leaves (its collector.log already gone) is wiped."""
    (tmp_path / "db" / "store").mkdir(parents=True)
    (tmp_path / "spool").mkdir()
    _fresh_directory(tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_demo_never_wipes_a_folder_that_is_not_an_earlier_demo(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert cli.main(["demo", "--dir", str(tmp_path), "--no-serve"]) == 2
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty and holds no earlier demo" in err
