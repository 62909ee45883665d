"""A PostgreSQL primary and a real streaming replica of it on this machine, for the replica-read
tests and bench (tests/test_replica.py, bench/bench_replica.py).

The primary is made with `initdb` in a throwaway directory, the replica with `pg_basebackup -R`
(it then streams from the primary), each on a free port. Both run as the `postgres` OS user (the
tests run as root, which PostgreSQL refuses). The application connects as an ordinary role
(NOSUPERUSER NOBYPASSRLS, like CI's `lanzuan_ci`) so that row-level security binds; the
superuser URLs are for what only a superuser may do (pausing replay on the replica).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from .workers import ROOT, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

BIN = Path(os.environ.get("LANZUAN_PG_BIN", "/usr/lib/postgresql/15/bin"))
APP_ROLE = "lanzuan_app"
APP_DB = "lanzuan"


def available() -> str | None:
    """None when a pair can be started here, else why not."""
    if not (BIN / "initdb").exists() or not (BIN / "pg_basebackup").exists():
        return f"no PostgreSQL binaries in {BIN} (LANZUAN_PG_BIN)"
    if os.geteuid() == 0 and _runuser() is None:
        return "running as root without runuser"
    return None


def _runuser() -> str | None:
    # util-linux puts it in /usr/sbin (or /sbin), which a CI's PATH may leave out.
    return shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")


def _as_postgres(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    prefix = [_runuser() or "runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120, **kwargs)  # type: ignore[call-overload,no-any-return]  # noqa: S603


@dataclass(frozen=True)
class Pair:
    directory: Path
    primary_port: int
    replica_port: int

    def url(self, port: int, *, superuser: bool = False) -> str:
        """The application's database as its role; the superuser's to the `postgres` database."""
        if superuser:
            return f"postgres://postgres@127.0.0.1:{port}/postgres"
        return f"postgres://{APP_ROLE}@127.0.0.1:{port}/{APP_DB}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def superuser(self, port: int) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(port, superuser=True), autocommit=True)

    def pg_ctl(self, which: str, action: str) -> None:
        data = self.directory / which
        _as_postgres([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", action])

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has flushed so far (every commit)."""
        with self.superuser(self.primary_port) as primary:
            row = primary.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with self.superuser(self.replica_port) as replica:
            while True:
                done = replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [row[0]]).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError("the replica did not catch up")
                time.sleep(0.05)


def _configure(data: Path, port: int, directory: Path) -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{directory}'\n"
            # A throwaway cluster: durability is not what is tested (commit order and WAL are the same).
            # No autovacuum: WAL the test did not write would only make its timings noisier.
            "fsync = off\nfull_page_writes = off\nautovacuum = off\nshared_buffers = 32MB\nmax_connections = 40\n"
            "wal_level = replica\nhot_standby = on\nlogging_collector = off\n"
        )


@contextmanager
def replica_pair() -> Iterator[Pair]:
    """A running primary and its streaming replica, with the application role and database on both;
    stopped and deleted afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="lanzuan-pg-"))
    pair = Pair(directory, free_port(), free_port())
    started: list[str] = []
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        primary = directory / "primary"
        _as_postgres(
            [str(BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            + ["--locale=C", "--no-sync"]
        )
        _configure(primary, pair.primary_port, directory)
        pair.pg_ctl("primary", "start")
        started.append("primary")
        with pair.superuser(pair.primary_port) as conn:
            conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS")
            conn.execute(f"CREATE DATABASE {APP_DB} OWNER {APP_ROLE}")
        replica = directory / "replica"
        _as_postgres(
            [str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres"]
            + ["-D", str(replica), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]
        )
        with (replica / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {pair.replica_port}\n")
        pair.pg_ctl("replica", "start")
        started.append("replica")
        yield pair
    finally:
        for which in reversed(started):
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test already
                pair.pg_ctl(which, "stop")
        shutil.rmtree(directory, ignore_errors=True)


def migrate(pair: Pair, env: dict[str, str], *, template: tuple[dict[str, Any], str] | None = None) -> None:
    """The schema onto the primary, as the application role (the replica gets it by replaying).
    From `template` (an already migrated database, tests/template_db.py) when one is given and can
    be read: a copy takes a few seconds of the servers' time, `migrate` ~15 s of CPU."""
    if template is not None and _copy(pair, *template):
        return
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": pair.primary_url},
        check=True,
        timeout=300,
    )


def _copy(pair: Pair, server: dict[str, Any], name: str) -> bool:
    """The template's schema restored as the application role (it owns the tables, as after
    `migrate`), then its rows (the migrations' own) as the superuser, past row-level security;
    both read as the server's superuser. False when that cannot be done here."""
    source = [
        "-h",
        server.get("HOST") or "127.0.0.1",
        "-p",
        str(server.get("PORT") or 5432),
        "-U",
        "postgres",
    ]
    steps = [
        (["--schema-only", "--no-owner", "--no-privileges"], pair.primary_url),
        (
            ["--data-only", "--disable-triggers"],
            f"postgres://postgres@127.0.0.1:{pair.primary_port}/{APP_DB}",
        ),
    ]
    for options, target in steps:
        dump = subprocess.run(  # noqa: S603
            ["pg_dump", *source, *options, name], capture_output=True, timeout=120, check=False
        )
        if dump.returncode != 0:
            return False  # no superuser there, say: migrate instead
        subprocess.run(  # noqa: S603
            ["psql", "-v", "ON_ERROR_STOP=1", "-q", target],
            input=dump.stdout,
            capture_output=True,
            timeout=120,
            check=True,
        )
    return True


class Driver:
    """tests/replica_driver.py in its own process: the application with the environment given."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "tests.replica_driver"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )

    def __call__(self, op: str, **fields: object) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the driver stopped: {Path(self.log.name).read_text(errors='replace')[-3000:]}"
            )
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.log.close()


def app_env(
    pair: Pair, *, replica: bool = True, replica_url: str | None = None, **extra: str
) -> dict[str, str]:
    """The application's environment against the pair (the caller's keys and secrets kept);
    `replica_url` in place of the replica's own."""
    env = {
        **os.environ,
        "DATABASE_URL": pair.primary_url,
        "CACHE_URL": "locmem",
        "ALLOWED_HOSTS": "testserver",
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
        # Thousands of checks a minute from one key: the rate limit is not what is measured.
        "LANZUAN_API_RATE": "100000000/min",
        "LANZUAN_API_BULK_RATE": "100000000/min",
        **extra,
    }
    # A run without the test sandbox (bench/): the throwaway keys of tests/sandbox.py.
    env.setdefault("SECRET_KEY", "insecure-key-for-replica-runs-only-0123456789abcdef")
    env.setdefault("LANZUAN_FIELD_KEYS", "dGVzdC1vbmx5LWZpZWxkLWtleS0wMTIzNDU2Nzg5YWI=")
    env.setdefault("LANZUAN_SIGNING_KEYS", "dGVzdC1vbmx5LXNpZ25pbmcta2V5LTAxMjM0NTY3ODk=")
    env.pop("DATABASE_REPLICA_URL", None)
    if replica:
        env["DATABASE_REPLICA_URL"] = replica_url or pair.replica_url
    return env
