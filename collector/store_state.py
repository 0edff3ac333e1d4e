"""Each store's own state folder (spool, keys, auth marker), and adopting the old shared one.

Versions before per-store state kept ``spool/`` and ``keys.json`` in the store's parent
folder, shared by every store beside it. On the first start after an upgrade, the
collector moves segments still waiting there into its own spool (so nothing acknowledged
is left behind) and copies the keys file (so siblings that shared it keep their keys).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from canarytrace.collector.settings import Settings
from canarytrace.collector.spool import DEAD, LOCK_FILE, SUFFIX, fsync_directory

log = logging.getLogger(__name__)


def adopt_legacy_keys(settings: Settings) -> Path | None:
    """Copy the old shared keys.json into this store's state folder; returns it if copied."""
    legacy = settings.legacy_state_dir / "keys.json"
    target = settings.keys_path
    if settings.keys_file is not None or target.exists() or not legacy.is_file():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(legacy, target)
    os.chmod(target, 0o600)
    log.warning("copied API keys from %s to this store's %s", legacy, target)
    return target


def adopt_legacy_spool(settings: Settings) -> int:
    """Move segments from the old shared spool into this store's; returns how many moved.

    A folder with a lock file belongs to a current collector and is left alone.
    """
    legacy = settings.legacy_state_dir / "spool"
    target = settings.spool_path
    if settings.spool_dir is not None or not legacy.is_dir() or (legacy / LOCK_FILE).exists():
        return 0
    if legacy.resolve() == target.resolve():
        return 0
    moved = 0
    for source_dir, target_dir in ((legacy, target), (legacy / DEAD, target / DEAD)):
        segments = sorted(source_dir.glob(f"*{SUFFIX}")) if source_dir.is_dir() else []
        if not segments:
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        for path in segments:
            with contextlib.suppress(FileNotFoundError):  # a sibling took it first
                shutil.move(path, target_dir / path.name)
                moved += 1
            note = path.with_suffix(".json")
            with contextlib.suppress(FileNotFoundError):
                shutil.move(note, target_dir / note.name)
        fsync_directory(target_dir)
    if moved:
        log.warning("moved %d spool segment(s) from the old shared %s into %s", moved, legacy,
                    target)
    return moved
