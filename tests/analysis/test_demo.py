"""`canarytrace demo` as a newcomer runs it, and every dashboard panel on the demo's traffic."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from canarytrace import cli
from canarytrace.store import panel_sql
from canarytrace.store.client import Store
from tests.analysis.test_dashboards import GRAFANA_INTERVAL_S, GRAFANA_PANELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the real command once, in a fresh folder, without keeping the dashboard up."""
    workdir = tmp_path_factory.mktemp("demo")
    run = subprocess.run([sys.executable, "-m", "canarytrace.cli", "demo", "--no-serve"],
                         cwd=workdir, capture_output=True, text=True, timeout=600)
    return workdir, run


@pytest.fixture(scope="module")
def demo_store(demo):
    workdir, _ = demo
    store = Store.from_url(f"chdb://{workdir / '.canarytrace' / 'demo' / 'db'}")
    yield store
    store.close()


def test_demo_ends_with_rollback_naming_billing_and_json_validity(demo):
    workdir, run = demo
    assert run.returncode == 0, run.stderr
    assert "ROLLBACK" in run.stdout
    assert "json_validation regressed in route=billing" in " ".join(run.stdout.split())
    report = (workdir / "report.html").read_text()
    assert "ROLLBACK" in report and "json_validation" in report


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


def test_the_demo_never_wipes_a_folder_that_is_not_an_earlier_demo(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert cli.main(["demo", "--dir", str(tmp_path), "--no-serve"]) == 2
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty and holds no earlier demo" in err
