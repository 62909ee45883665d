"""Real Celery workers for integration tests: separate processes on the configured
broker (Redis in CI, the file-system broker otherwise) and the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

_T = TypeVar("_T")


def test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LANZUAN_OUTBOX_PATH", None)  # derived from LANZUAN_VAR_DIR unless a test sets OUTBOX_PATH
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "PHONE_HASH_KEY": settings.PHONE_HASH_KEY,
            # this session's throwaway dir (tests/sandbox.py): the worker's file broker,
            # outbox and cache are the tests', never a running demo's
            "LANZUAN_VAR_DIR": str(settings.VAR_DIR),
            "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
            # the local HTTP servers tests play providers with are on loopback
            "LANZUAN_OUTBOUND_ALLOW": ",".join(settings.LANZUAN_OUTBOUND_ALLOW),
            "DEBUG": "0",
            # DEBUG off allows the file gateway only with this flag (settings.LANZUAN_FILE_GATEWAY);
            # the tests read what was sent from the outbox. A test may pass "0" to see it refused.
            "LANZUAN_FILE_GATEWAY": "1" if settings.LANZUAN_FILE_GATEWAY else "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "OUTBOX_PATH" in extra:
        env["LANZUAN_OUTBOX_PATH"] = extra.pop("OUTBOX_PATH")
    env.update(extra)
    return env


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def pool_children(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the worker and its pool: as if the machine died mid-task."""
        for pid in self.pool_children():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def suppression_added_by_another_process(tenant_id: int, e164: str) -> None:
    """Another process (manage.py shell, its own database connection) suppresses `e164` at
    the tenant for all marketing, as a web process or worker elsewhere would, and commits."""
    code = (
        "from lanzuan import phones; from tenants.models import Tenant; "
        "from tenants import db_scope; "
        "from unsubscribe.suppressions.services import suppressions_add; "
        f"t = Tenant.objects.get(pk={int(tenant_id)}); n = {e164!r}; "
        "ctx = db_scope.tenants_scope([t.pk]); ctx.__enter__(); "
        "suppressions_add(tenant=t, phone_hash=phones.tenant_phone_hash(t.pk, n), "
        "phone_masked=phones.mask(n), scopes=['*'], channel='api', e164=n)"
    )
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", code],
        check=True,
        cwd=ROOT,
        env=worker_env(),
        timeout=120,
    )


def purge_queue(broker_url: str | None = None) -> None:
    from lanzuan.celery import app

    if broker_url:
        with app.connection_for_write(broker_url) as conn:
            for queue in settings.CELERY_TASK_QUEUES:  # "pipeline" and "webhooks"
                # every transport's channel purges; kombu's stubs type default_channel as the bare base
                conn.default_channel.queue_purge(queue.name)  # type: ignore[attr-defined]
        return
    with suppress(Exception):  # an empty or missing queue is fine
        app.control.purge()


@contextmanager
def celery_worker(
    tmp_path: Path,
    *,
    concurrency: int = 2,
    beat: bool = False,
    queues: str = "",
    flags: Sequence[str] = ("--without-gossip", "--without-mingle"),
    **env: str,
) -> Iterator[Worker]:
    """A worker process; without `queues` it consumes every queue (CELERY_TASK_QUEUES), as
    `celery -A lanzuan worker` does, else only those named (`-Q pipeline`, `-Q webhooks`);
    `flags=()` starts it as the README's command does (Celery's defaults)."""
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "lanzuan",
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        *flags,
        "-n",
        f"test-{os.getpid()}{'-' + queues.replace(',', '-') if queues else ''}@%h",  # one name per worker
    ]
    if beat:
        args.append("-B")
    if queues:
        args += ["-Q", queues]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            args, cwd=ROOT, env=worker_env(**env), stdout=handle, stderr=subprocess.STDOUT
        )  # noqa: S603
    worker = Worker(process, log)
    deadline = time.monotonic() + 60
    while "ready." not in worker.output():
        if process.poll() is not None or time.monotonic() > deadline:
            output = worker.output()
            worker.stop()
            raise RuntimeError(f"Celery worker did not start:\n{output[-3000:]}")
        time.sleep(0.2)
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(
    predicate: Callable[[], _T | None],
    timeout: float = 60,
    interval: float = 0.25,
    message: str = "condition",
) -> _T:
    """Poll `predicate` until it returns something true, and return that (never None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Started(subprocess.Popen[bytes]):
    """A process whose `wait_ready()` waits for the line that says it is up."""

    wait_ready: Callable[[], None]


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, ready: str, timeout: float = 60
) -> Iterator[Started]:
    """Start a process at once; `.wait()` on what this yields waits for its `ready` line
    (so gunicorn, the worker and beat boot side by side)."""
    with log.open("wb") as handle:
        proc = Started(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    proc.wait_ready = wait
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
