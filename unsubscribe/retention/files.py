"""Files that hold personal data, and how long each kind may stay on disk.

The work that writes such a file deletes it when it ends: an admin import's upload once
imported, a scrub job's list once scrubbed (`unsubscribe.partner.scrub`), a scrub
result after 7 days. This module is the safety net under those deletions (a failed or
abandoned import, a crashed scrub, a file whose row is gone): the hourly beat task
"Lanzuan stored file expiry" (`unsubscribe.tasks.expire_stored_files`) runs
`stored_files_expire`, which for every registered kind first expires the rows that
name such files (an abandoned import is marked failed, saying why) and then deletes any
file of that kind older than its limit, whether a row names it or not. README, "What
files we keep, and for how long", states the limits.

A kind is registered with `stored_files_register` by the app that writes it: the core's
own (subscription imports) below, the partner API's (scrub lists, results and work
files) in its AppConfig.ready().
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.utils import timezone

from unsubscribe.subscriptions.services import UPLOAD_MAX_AGE, subscription_import_files_expire

logger = logging.getLogger(__name__)

# Files are deleted from disk this long after their limit: the rows that name them are
# expired first, at the limit itself, so a file is never taken from under a row in use.
DISK_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class StoredFiles:
    """One kind of file: where it lives (`pattern` under `root()`, read at run time), how long
    it may stay (`max_age`, by the file's modification time), and the rows naming such files
    to expire first (`expire_rows(now)`, returning how many it expired). With `dirs`, the
    pattern names folders, each deleted whole once everything in it is older than the limit."""

    key: str
    root: Callable[[], Path]
    pattern: str
    max_age: timedelta
    expire_rows: Callable[[datetime], int] | None = None
    dirs: bool = False


_kinds: dict[str, StoredFiles] = {}


def stored_files_register(kind: StoredFiles) -> None:
    _kinds[kind.key] = kind


def stored_files() -> list[StoredFiles]:
    return list(_kinds.values())


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def var_dir() -> Path:
    return Path(settings.VAR_DIR)


def stored_files_expire(*, now: datetime | None = None) -> dict[str, int]:
    """Expire every registered kind of file past its limit; the counts of rows and files."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for kind in _kinds.values():
        if kind.expire_rows is not None:
            counts[f"{kind.key}_rows"] = kind.expire_rows(now)
        cutoff = (now - kind.max_age - DISK_GRACE).timestamp()
        counts[f"{kind.key}_files"] = _old_files_delete(kind, cutoff)
    counts["cache_entries"] = _file_cache_expire()
    removed = {key: count for key, count in counts.items() if count}
    if removed:
        logger.info("stored file expiry: %s", removed)
    return counts


def _old_files_delete(kind: StoredFiles, cutoff: float) -> int:
    root = kind.root()
    if not root.is_dir():
        return 0
    deleted = 0
    for path in sorted(root.glob(kind.pattern)):
        try:
            if kind.dirs and path.is_dir() and not path.is_symlink():
                if _newest_mtime(path) < cutoff:
                    shutil.rmtree(path)
                    deleted += 1
            elif path.is_file() and path.lstat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:  # deleted meanwhile (its job ended)
            continue
        except OSError:
            logger.warning("stored file expiry: could not delete %s", path, exc_info=True)
    return deleted


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for parent, dirnames, filenames in os.walk(folder):
        for name in (*dirnames, *filenames):
            newest = max(newest, (Path(parent) / name).lstat().st_mtime)
    return newest


def _file_cache_expire() -> int:
    """The file-based cache (`CACHE_URL=file`, the development default, under var/cache/)
    holds queued one-time-code texts with their number until read or culled, not until
    they expire: entries past their expiry are deleted here. Redis expires its own."""
    backend = caches["default"]
    if not isinstance(backend, FileBasedCache):
        return 0
    expired = 0
    # Django has no public "drop what expired"; these two are what its own get() uses.
    for name in backend._list_cache_files():  # type: ignore[attr-defined]
        try:
            with open(name, "rb") as handle:
                if backend._is_expired(handle):  # type: ignore[attr-defined]  # deletes it when expired
                    expired += 1
        except FileNotFoundError:
            continue
    return expired


stored_files_register(
    StoredFiles(
        key="subscription_imports",
        root=media_root,
        pattern="imports/**/*",
        max_age=UPLOAD_MAX_AGE,
        expire_rows=lambda now: subscription_import_files_expire(now=now),
    )
)
