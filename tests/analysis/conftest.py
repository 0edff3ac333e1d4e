"""Shared fixtures: one real ``canarytrace demo`` run serves every test that reads its data."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DemoRun:
    """A finished ``canarytrace demo --no-serve``, run as a newcomer would, stdout piped."""

    workdir: Path
    run: subprocess.CompletedProcess[str]

    @property
    def folder(self) -> Path:
        """The demo's folder: its store (``db``), collector log and report."""
        return self.workdir / ".canarytrace" / "demo"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    workdir = tmp_path_factory.mktemp("demo")
    run = subprocess.run([sys.executable, "-m", "canarytrace.cli", "demo", "--no-serve"],
                         cwd=workdir, capture_output=True, text=True, timeout=600)
    return DemoRun(workdir, run)
