"""Shared fixtures: two tenants (A and B) and the three actors of every isolation test.

Alice administers tenant A, Bob is a viewer on A, Charlie administers tenant B.
A superuser sees both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management.color import Style
from django.db import connection
from django.db.backends.postgresql.operations import DatabaseOperations
from django.test import override_settings
from django.utils import translation
from model_bakery import generators as baker_generators
from pytest_django.plugin import blocking_manager_key

from lanzuan.memo import forget_all
from tenants import db_scope
from tenants.models import Membership, Role, Tenant
from tenants.services import api_key_create

from . import template_db

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path

    from celery import Celery
    from django.contrib.auth.models import User
    from pytest_django import DjangoCaptureOnCommitCallbacks, DjangoDbBlocker, Settings

    from .pipeline_helpers import Pipeline

PASSWORD = "correct-horse-battery-staple"

# The test process's own thread sets up and inspects every tenant's rows, as a management
# command would (row-level security, tenants/db_scope.py). Requests made through the test
# client, the live server and Celery tasks set their own scope, so the wall binds there.
db_scope.enter_system(reason="a test sets up and inspects every tenant's rows")

# model_bakery fills a stored secret (lanzuan.fields.EncryptedTextField) like any text.
baker_generators.add("lanzuan.fields.EncryptedTextField", "model_bakery.random_gen.gen_string")


class OneRoundPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's hasher and hash format at one round: a million rounds cost half a second per
    user and per login, which is the point in production and dead time in a test. Hashes
    carry their round count, so any process (a real worker, gunicorn) still checks them."""

    iterations = 1


@pytest.fixture(autouse=True)
def _fresh_process_memory() -> None:
    """What a web process remembers between calls (verified API keys, configuration rows,
    rate-limit leases) starts empty in every test, as in a new process."""
    from unsubscribe.partner.throttling import forget_leases  # noqa: PLC0415 (a layer above tenants)

    forget_all()
    forget_leases()


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller of an xdist run builds the migrated template while its workers start."""
    config = session.config
    if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", None):
        config.stash[_template_built] = template_db.build_ahead(config.stash[blocking_manager_key])


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash.get(_template_built, lambda: None)()


_template_built = pytest.StashKey["Callable[[], None]"]()


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["tests.conftest.OneRoundPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def default_language() -> Iterator[None]:
    """Each test starts in the site's default language, as a new request thread does: a request
    through the test client leaves its language active in this thread (LocaleMiddleware activates
    it and nothing deactivates it), and a later test in the same process would read that one."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True, scope="session")
def static_files_looked_up_per_request() -> Iterator[None]:
    """WhiteNoise indexes every static file when its middleware is built: once per process in
    production, but once per test client here (~40 ms each, a tenth of the quick tests' time).
    Looking a file up when it is asked for serves the same files."""
    with override_settings(WHITENOISE_AUTOREFRESH=True):
        yield


@pytest.fixture(scope="session")
def django_db_keepdb(request: pytest.FixtureRequest) -> bool:
    # A worker's database is already there, cloned from the migrated template
    # (django_db_modify_db_settings below): Django uses it instead of migrating its own.
    return template_db.applies() or bool(request.config.getvalue("reuse_db"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, django_db_blocker: DjangoDbBlocker
) -> Iterator[None]:
    """pytest-django's (the per-worker name suffix), then the worker's copy of the template."""
    if not template_db.applies():
        yield
        return
    name = connection.settings_dict["TEST"]["NAME"]  # with the worker suffix, set just before
    with django_db_blocker.unblock():
        template_db.clone_for_this_worker(name)
    yield
    with django_db_blocker.unblock():
        template_db.drop(name)


@pytest.fixture(autouse=True, scope="session")
def flush_by_delete() -> Iterator[None]:
    """A transactional test (a real worker, a live server, threads) ends by emptying every
    table. PostgreSQL's TRUNCATE of all of them takes a second or two (new files, synced at
    commit); DELETE of the few rows a test leaves takes milliseconds. Django's foreign keys
    are deferred to the commit, so the order of the tables does not matter."""
    original = DatabaseOperations.sql_flush

    def sql_flush(
        self: DatabaseOperations,
        style: Style,
        tables: Sequence[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or allow_cascade:
            return original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        delete = style.SQL_KEYWORD("DELETE FROM")
        return [f"{delete} {style.SQL_FIELD(self.quote_name(table))};" for table in tables]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


# Instants a date-dependent test runs at, so the suite passes at any hour: where UTC,
# Shanghai and New York disagree on the date, and on New York's two DST changes.
CLOCKS = {
    "16:30Z=00:30-shanghai": datetime(2026, 6, 15, 16, 30, tzinfo=UTC),
    "17:00Z": datetime(2026, 1, 20, 17, 0, tzinfo=UTC),
    "23:30Z": datetime(2026, 1, 20, 23, 30, tzinfo=UTC),
    "03:00Z=23:00-new-york": datetime(2026, 6, 16, 3, 0, tzinfo=UTC),
    "new-york-spring-forward": datetime(2026, 3, 8, 16, 30, tzinfo=UTC),  # a 23-hour day there
    "new-york-fall-back": datetime(2026, 11, 1, 17, 0, tzinfo=UTC),  # a 25-hour day there
}


@pytest.fixture(params=list(CLOCKS.values()), ids=list(CLOCKS))
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """The clock stands at each of CLOCKS in turn (ticking, so time still passes)."""
    with time_machine.travel(request.param, tick=True):
        yield request.param


@pytest.fixture
def tenant_a(db: None) -> Tenant:
    return Tenant.objects.create(slug="tenant-a", name="运营商 A", kind=Tenant.Kind.OPERATOR)


@pytest.fixture
def tenant_b(db: None) -> Tenant:
    return Tenant.objects.create(slug="tenant-b", name="Platform B", kind=Tenant.Kind.PLATFORM)


def make_member(username: str, tenant: Tenant, role: str) -> User:
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def alice(tenant_a: Tenant) -> User:
    return make_member("alice", tenant_a, Role.ADMIN)


@pytest.fixture
def bob(tenant_a: Tenant) -> User:
    return make_member("bob", tenant_a, Role.VIEWER)


@pytest.fixture
def agent_amy(tenant_a: Tenant) -> User:
    return make_member("amy", tenant_a, Role.AGENT)


@pytest.fixture
def charlie(tenant_b: Tenant) -> User:
    return make_member("charlie", tenant_b, Role.ADMIN)


@pytest.fixture
def root(db: None) -> User:
    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def api_key_a(tenant_a: Tenant) -> str:
    return api_key_create(tenant=tenant_a, name="tests")[1]


@pytest.fixture
def api_key_b(tenant_b: Tenant) -> str:
    return api_key_create(tenant=tenant_b, name="tests")[1]


@pytest.fixture
def outbox(settings: Settings, tmp_path: Path) -> Path:
    """The file gateway's outbox, isolated per test; returns its path."""
    path = tmp_path / "outbox.jsonl"
    settings.OUTBOX_PATH = path
    return path


@pytest.fixture
def eager_celery() -> Iterator[Celery]:
    """Celery tasks run in-process when dispatched (retries too, without waiting), for
    flows whose effect a test checks right away; integration tests use a real worker."""
    from lanzuan.celery import app

    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def pipeline(
    eager_celery: Celery,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    settings: Settings,
    outbox: Path,
) -> Pipeline:
    """`with pipeline():` everything a request causes runs before the block ends: the
    callbacks after commit that dispatch the workers' tasks, and the tasks, eagerly (retries
    without waiting). Only what only a worker process can show needs a real one
    (tests/workers.py): a worker killed mid-task, the broker, concurrency across processes."""
    settings.LANZUAN_RETRY_BASE_SECONDS = 0

    def run() -> AbstractContextManager[list[Callable[[], Any]]]:
        return django_capture_on_commit_callbacks(execute=True)

    return run
