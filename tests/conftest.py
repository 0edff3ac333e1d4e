"""Session set-up shared by every test directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_ingest_fast_path() -> None:
    """Compile the ingest fast path once, before any collector starts: their workers then
    load it from numba's cache instead of each compiling it (~20 s of CPU) at once."""
    from canarytrace.collector import wire

    wire.warm_up()
