"""One migrated PostgreSQL database per run, cloned for each xdist worker.

Migrating the schema costs ~14 s of CPU. Every xdist worker used to pay it for its own
test database, all at once at the start, on the same cores. Now the first worker to get
the lock migrates a template database once (in a subprocess, `manage.py migrate`),
and every worker copies it with `CREATE DATABASE … TEMPLATE …`, which takes a second.

The template's name carries a digest of every installed app's migration files and
Django's version, so a changed migration makes a new template and an unchanged one is
reused by the next run. It is built under a temporary name and renamed when complete,
so a run that died half-way never leaves a half-migrated template behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django
from django.apps import apps
from django.db import connection

from .workers import ROOT, test_database_url, worker_env

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pytest_django import DjangoDbBlocker


def applies() -> bool:
    """Only for PostgreSQL, and only where more than one process would migrate (xdist)."""
    return connection.vendor == "postgresql" and "PYTEST_XDIST_WORKER" in os.environ


def _migrations_digest() -> str:
    digest = hashlib.sha256(django.get_version().encode())
    for app in sorted(apps.get_app_configs(), key=lambda a: a.label):
        folder = Path(app.path) / "migrations"
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    # The row-level security policies are made after migrate (post_migrate), not by a migration.
    digest.update((ROOT / "tenants" / "row_security.py").read_bytes())
    return digest.hexdigest()[:10]


def _execute(sql: str) -> None:
    with connection._nodb_cursor() as cursor:
        cursor.execute(sql)


def _exists(name: str) -> bool:
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


@contextmanager
def _lock(name: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"lanzuan-{name}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_template(template: str) -> None:
    building = f"{template}_building"
    quote = connection.ops.quote_name
    _execute(f"DROP DATABASE IF EXISTS {quote(building)} WITH (FORCE)")
    _execute(f"CREATE DATABASE {quote(building)}")
    url = test_database_url().rsplit("/", 1)[0] + f"/{building}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=worker_env(DATABASE_URL=url),
        check=True,
    )
    _execute(f"ALTER DATABASE {quote(building)} RENAME TO {quote(template)}")


def _template_name(base: str) -> str:
    # PostgreSQL names are at most 63 bytes: keep the digest, trim the base.
    return f"{base[: 63 - 16]}_tpl_{_migrations_digest()}"


def build_ahead(blocker: DjangoDbBlocker) -> Callable[[], None]:
    """In the controller of an xdist run, before it starts the workers: build the template in a
    thread while they start and collect (~5 s each), instead of one worker building it while the
    others wait. The lock is taken here, before any worker asks for it. Returns a function that
    waits for the build."""
    if connection.vendor != "postgresql":
        return lambda: None
    db = connection.settings_dict  # the test database's name as Django makes it, before xdist's suffix
    template = _template_name(db["TEST"]["NAME"] or f"test_{db['NAME']}")
    lock = _lock(template)
    lock.__enter__()

    def build() -> None:
        try:
            with blocker.unblock():  # pytest-django blocks the database outside tests
                if not _exists(template):
                    _build_template(template)
        finally:
            lock.__exit__(None, None, None)
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=build, name="template-db", daemon=True)
    thread.start()
    return thread.join


def clone_for_this_worker(test_name: str) -> None:
    """Make `test_name` a fresh copy of the migrated template (building it if needed)."""
    template = _template_name(test_name.rsplit("_gw", 1)[0])
    quote = connection.ops.quote_name
    with _lock(template):
        if not _exists(template):
            _build_template(template)
        _execute(f"DROP DATABASE IF EXISTS {quote(test_name)} WITH (FORCE)")
        _execute(f"CREATE DATABASE {quote(test_name)} TEMPLATE {quote(template)}")


def migrated_template() -> tuple[dict[str, Any], str] | None:
    """This xdist run's migrated template (the server's settings and the database's name), waiting
    while the controller builds it; None without xdist or PostgreSQL. For a test that needs the
    schema on a server of its own (tests/pg_replica.py copies it rather than migrating again)."""
    if not applies():
        return None
    db = connection.settings_dict
    template = _template_name(re.sub(r"_gw\d+$", "", db["TEST"]["NAME"] or f"test_{db['NAME']}"))
    with _lock(template):  # held by the controller while it builds
        pass
    return db, template


def drop(test_name: str) -> None:
    connection.close()
    _execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(test_name)} WITH (FORCE)")
