"""A throwaway LANZUAN_VAR_DIR for every test session (a pytest plugin).

The tests' worker once shared the demo's `var/`: a `make run` next to `make test` lost
a queued code to the tests' worker, and a test SMS landed in the demo's outbox. So a
session never uses a `var/` it did not create, not even one set in the environment
(CI sets `var/ci`, which a demo may use too).

It has to run before Django settings are imported, and pytest-django imports them in
`pytest_load_initial_conftests`, before any conftest.py: a conftest is too late. So
this is a plugin loaded with `-p tests.sandbox` (see `addopts` and `pythonpath` in
pyproject.toml; pytest ≥ 8.4 puts `pythonpath` on sys.path before `-p` plugins load).
Under xdist every worker process gets its own directory, and its own prefix for the keys
it keeps in a Redis broker or cache (LANZUAN_REDIS_KEY_PREFIX): workers share CI's one
Redis database for each, and must neither take each other's tasks nor purge each other's
queues or clear each other's rate-limit counters. The real Celery workers a test starts
inherit both (tests/workers.py passes the environment on).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import redis

if "lanzuan.settings" in sys.modules:  # fail closed: settings would already point at the old dir
    raise RuntimeError("tests.sandbox must be loaded before Django settings (-p tests.sandbox)")

VAR_DIR = Path(tempfile.mkdtemp(prefix="lanzuan-test-var-")).resolve()
os.environ["LANZUAN_VAR_DIR"] = str(VAR_DIR)
REDIS_KEY_PREFIX = VAR_DIR.name
os.environ["LANZUAN_REDIS_KEY_PREFIX"] = REDIS_KEY_PREFIX
# Paths otherwise derived from LANZUAN_VAR_DIR that the environment may pin elsewhere.
os.environ.pop("LANZUAN_OUTBOX_PATH", None)
os.environ.pop("LANZUAN_SUPPRESSION_INDEX_DIR", None)
# Tests speak plain HTTP to the test client and local servers; production may redirect to
# https (SECURE_SSL_REDIRECT=1, README), tests/test_production.py checks that part.
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
# Tests read what was sent from the file gateway's outbox; with DEBUG off (the default)
# it is allowed only with this flag (lanzuan/settings.py, LANZUAN_FILE_GATEWAY).
os.environ["LANZUAN_FILE_GATEWAY"] = "1"
# Stored secrets are encrypted (lanzuan/fields.py); with DEBUG off a key is required. A fixed
# test-only key, so the real workers and subprocesses a test starts read the same rows.
os.environ.setdefault("LANZUAN_FIELD_KEYS", "dGVzdC1vbmx5LWZpZWxkLWtleS0wMTIzNDU2Nzg5YWI=")
# Checkpoints and receipts are signed (lanzuan/signing_keys.py); with DEBUG off a key is required.
# A fixed test-only Ed25519 key, for the same reason.
os.environ.setdefault("LANZUAN_SIGNING_KEYS", "dGVzdC1vbmx5LXNpZ25pbmcta2V5LTAxMjM0NTY3ODk=")
if os.environ.get("CACHE_URL", "") in ("", "file"):
    os.environ["CACHE_URL"] = "file"  # under VAR_DIR/cache, this session's own

_failed = False


def pytest_report_header() -> str:
    return f"LANZUAN_VAR_DIR: {VAR_DIR} (this session's own)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _failed  # noqa: PLW0603 — read by the atexit hook below, which has no session to carry it on
    _failed = exitstatus not in (0, 5)
    _forget_redis_keys()
    if _failed:  # kept: worker logs and screenshots are what one looks at next
        print(f"\nTest files kept in {VAR_DIR}", file=sys.stderr)


@atexit.register
def _remove() -> None:
    # At exit rather than in pytest_unconfigure: that also covers a session that
    # never started (settings refused) and xdist workers.
    if not _failed:
        shutil.rmtree(VAR_DIR, ignore_errors=True)


def _forget_redis_keys() -> None:
    """Delete this session's keys from a Redis broker or cache: leftover queues and bindings
    would otherwise pile up in a database that outlives the session."""
    urls = {os.environ.get("CELERY_BROKER_URL", ""), os.environ.get("CACHE_URL", "")}
    for url in urls:
        if not url.startswith(("redis://", "rediss://")):
            continue
        try:
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{REDIS_KEY_PREFIX}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        except redis.RedisError:  # unreachable now: nothing of ours to tidy there
            continue
