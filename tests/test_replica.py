"""Checks read from a real streaming replica (`DATABASE_REPLICA_URL`, lanzuan/replica.py) and never
miss a suppression committed before the check began.

One PostgreSQL primary and a replica made with `pg_basebackup -R` are started on this machine
(tests/pg_replica.py); the schema is migrated onto the primary as an ordinary role, so row-level
security binds on both. The application runs in its own process with both URLs, as deployed
(tests/replica_driver.py), and says which database served each check. The replica is made to lag by
pausing its replay (`pg_wal_replay_pause()`), made to fail in the middle of a read, then promoted
(no longer a replica), then stopped.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanzuan import replica

from . import pg_replica, template_db
from .workers import ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NOT_HERE = pg_replica.available()


def _phone(n: int) -> str:
    return f"+86138{n:08d}"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[pg_replica.Pair, pg_replica.Driver, pg_replica.Driver]]:
    """The pair; the application with the replica; and the application with a "replica" whose
    reads fail once the wait has succeeded (the replica's server, a database without the schema)."""
    if NOT_HERE:
        pytest.skip(NOT_HERE)
    logs = tmp_path_factory.mktemp("replica")
    with pg_replica.replica_pair() as pair:
        env = pg_replica.app_env(pair)
        pg_replica.migrate(pair, env, template=template_db.migrated_template())
        driver = pg_replica.Driver(env, logs / "driver.log")
        failing_url = pair.replica_url.rsplit("/", 1)[0] + "/postgres"
        failing = pg_replica.Driver(pg_replica.app_env(pair, replica_url=failing_url), logs / "failing.log")
        try:
            key = driver("setup")["key"]
            failing("login", key=key)
            pair.wait_replayed()  # the tenant and its key are on the replica too
            yield pair, driver, failing
        finally:
            driver.close()
            failing.close()


def _served(driver: pg_replica.Driver, before: dict[str, int]) -> dict[str, int]:
    """Checks served since `before`, by where (and why the primary)."""
    now: dict[str, int] = driver("counts")
    return {k: now.get(k, 0) - before.get(k, 0) for k in now if now.get(k, 0) != before.get(k, 0)}


def _suppressed(answer: Any) -> bool:
    assert answer["status"] == 200, answer
    return bool(answer["suppressed"])


@pytest.mark.integration
@pytest.mark.slow
def test_checks_read_from_the_replica_and_never_miss_a_committed_suppression(
    cluster: tuple[pg_replica.Pair, pg_replica.Driver, pg_replica.Driver],
) -> None:
    pair, driver, failing = cluster
    # Generous where the replica is expected to serve (it is normally there in a millisecond, but
    # the machine may be loaded); short where it is paused, so that the fallbacks come quickly.
    driver("wait_ms", ms=5000)

    # (a) A caught-up replica serves the checks, single and bulk (with consent details: the
    # per-number path), and sees what the primary
    # committed just before: the tenant scope is bound on its connection (without it, row-level
    # security would show no rows and the answer would be "not suppressed").
    before = driver("counts")
    assert not _suppressed(driver("check", phone=_phone(1)))
    driver("suppress", phone=_phone(1))
    assert _suppressed(driver("check", phone=_phone(1)))
    driver("do_not_market", phone=_phone(2))
    bulk = driver("bulk", phones=[_phone(1), _phone(2), _phone(3)])
    assert [r["suppressed"] for r in bulk["results"]] == [True, True, False]
    assert _served(driver, before) == {"replica": 3}
    # A bare list is answered from the suppression index and the rows changed since its mark, on
    # the primary (the index keeps its mark there): right, and not a replica read.
    plain = driver("bulk_plain", phones=[_phone(1), _phone(2), _phone(3)])
    assert [r["suppressed"] for r in plain["results"]] == [True, True, False]
    assert _served(driver, before) == {"replica": 3}

    # (b) Replay paused: the replica lags. Every suppression committed on the primary is still in
    # the next check's answer (it falls back to the primary); checks of what the replica already
    # has wait for nothing it lacks either way.
    driver("wait_ms", ms=20)
    with pair.superuser(pair.replica_port) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        before = driver("counts")
        for n in range(10, 20):
            driver("suppress", phone=_phone(n))
            assert _suppressed(driver("check", phone=_phone(n)))
        driver("do_not_market", phone=_phone(20))
        bulk = driver("bulk", phones=[_phone(15), _phone(20), _phone(21)])
        assert [r["suppressed"] for r in bulk["results"]] == [True, True, False]
        lagging = _served(driver, before)
        assert lagging.get("replica", 0) == 0 and lagging["lag"] == 11, lagging
        # Resumed: the replica catches up and serves again, with everything.
        standby.execute("SELECT pg_wal_replay_resume()")
    pair.wait_replayed()
    driver("wait_ms", ms=5000)
    before = driver("counts")
    assert all(_suppressed(driver("check", phone=_phone(n))) for n in (1, 10, 19, 20))
    assert _served(driver, before) == {"replica": 4}

    # A replica that fails in the middle of the read itself (after the wait succeeded): the check
    # reads again on the primary.
    before = failing("counts")
    assert _suppressed(failing("check", phone=_phone(10)))
    assert not _suppressed(failing("check", phone=_phone(3)))
    assert [r["suppressed"] for r in failing("bulk", phones=[_phone(20), _phone(3)])["results"]] == [
        True,
        False,
    ]
    broken = _served(failing, before)
    assert broken.get("replica", 0) == 0 and broken["error"] >= 1 and sum(broken.values()) == 3, broken

    # (d) Promoted, the old replica is no replica: it no longer follows the primary, so checks
    # read from the primary, and see what was committed after the promotion.
    pair.pg_ctl("replica", "promote")
    driver("suppress", phone=_phone(30))
    before = driver("counts")
    assert _suppressed(driver("check", phone=_phone(30)))
    assert _served(driver, before) == {"not_replica": 1}

    # (c) Stopped: the failing connection is a fallback, never an error, and the answers are right.
    pair.pg_ctl("replica", "stop")
    driver("suppress", phone=_phone(40))
    before = driver("counts")
    assert _suppressed(driver("check", phone=_phone(40)))
    assert not _suppressed(driver("check", phone=_phone(41)))
    assert [r["suppressed"] for r in driver("bulk", phones=[_phone(40), _phone(1)])["results"]] == [
        True,
        True,
    ]
    down = _served(driver, before)
    assert down.get("replica", 0) == 0 and sum(down.values()) == 3, down
    assert down.get("error", 0) >= 1, down


@given(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
def test_wal_positions_order_as_postgresql_writes_them(a: tuple[int, int], b: tuple[int, int]) -> None:
    text = [f"{high:X}/{low:X}" for high, low in (a, b)]  # pg_lsn's text form: no leading zeros
    assert (replica.lsn_value(text[0]) < replica.lsn_value(text[1])) is (a < b)
    assert (replica.lsn_value(text[0]) == replica.lsn_value(text[1])) is (a == b)


def test_a_replica_needs_postgresql_for_both(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": "k" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DATABASE_REPLICA_URL": "postgres://u@127.0.0.1:1/db",
        "LANZUAN_VAR_DIR": str(tmp_path),
    }
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import lanzuan.settings"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "DATABASE_REPLICA_URL needs PostgreSQL" in run.stderr
    env["DATABASE_URL"] = "postgres://u@127.0.0.1:1/db"
    run = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            "from lanzuan import settings as s; d = s.DATABASES; "
            "print(d['replica']['ENGINE'], d['replica']['TEST'], d['replica']['PORT'], s.DATABASE_ROUTERS)",
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "tenants.postgresql",
        "{'MIRROR':",
        "'default'}",
        "1",
        "['lanzuan.replica.ReplicaRouter']",
    ]
