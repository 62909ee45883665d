"""Issue 19 item 18: production settings and the README's production start-up.

`manage.py check --deploy` is clean with the production values the README documents,
and the README's commands (migrate, gunicorn, a Celery worker per queue, beat) start as written
against the test database and serve a real request that completes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.error import HTTPError

import pytest
from django.conf import settings

from unsubscribe.partner.webhooks import webhook_endpoint_create

from .httpserver import http_endpoint
from .workers import ROOT, celery_worker, free_port, process, purge_queue, wait_for, worker_env

if TYPE_CHECKING:
    from http.client import HTTPMessage

    from tenants.models import Tenant

# The production values README.md documents ("Production settings"); the rest are defaults.
PRODUCTION_ENV = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "unsubscribe.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://unsubscribe.example.com",
    "PUBLIC_BASE_URL": "https://unsubscribe.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "LANZUAN_CLIENT_IP_HEADER": "HTTP_X_REAL_IP",
    "SECURE_SSL_REDIRECT": "1",
}
# Settings a test session sets for itself that production leaves at their defaults.
TEST_ONLY = (
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "LANZUAN_CSP",
    "DJANGO_SETTINGS_MODULE",
)


def production_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in TEST_ONLY}
    env.update(PRODUCTION_ENV)
    env["SECRET_KEY"] = "production-like-key-" + "q8Zr3vK1xN7mWp2Ls9Tb4Yc6Hd0Jf5Ge" * 2
    env.update(extra)
    return env


def test_check_deploy_is_clean_with_the_documented_production_values(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        check=False,
        cwd=ROOT,
        env=production_env(LANZUAN_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNINGS" not in output


def test_production_defaults_are_safe_when_debug_is_off(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; import json; print(json.dumps(["
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER,"
        " s.LANZUAN_CLIENT_IP_HEADER, s.LANZUAN_CSP, s.LANZUAN_OUTBOUND_ALLOW]))"
    )
    env = production_env(LANZUAN_VAR_DIR=str(tmp_path), LANZUAN_CSP="default-src 'none'")
    for name in (
        "SECURE_PROXY_SSL_HEADER",
        "LANZUAN_CLIENT_IP_HEADER",
        "LANZUAN_OUTBOUND_ALLOW",
        "SECURE_SSL_REDIRECT",
    ):
        env.pop(name, None)
    out = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    values = json.loads(out.strip().splitlines()[-1])
    # the redirect is opt-in (README sets it): a plain-http start must still answer
    assert values == [False, 31536000, True, True, True, None, "", "default-src 'none'", []]


def call(
    url: str, *, key: str = "", body: dict[str, Any] | None = None, proto: str = "https"
) -> tuple[int, dict[str, str], bytes]:
    """A request as the TLS-terminating proxy forwards it."""
    headers = {"Host": "127.0.0.1", "X-Forwarded-Proto": proto, "Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Api-Key {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> None:
        return None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_readme_production_start_up_serves_a_request_that_completes(
    tenant_a: Tenant, api_key_a: str, tmp_path: Path
) -> None:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    assert gunicorn.exists() or shutil.which("gunicorn"), "gunicorn is in requirements/base.txt"
    purge_queue()
    env = worker_env(
        **{
            **{k: v for k, v in PRODUCTION_ENV.items() if k != "ALLOWED_HOSTS"},
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "1",
            "LANZUAN_FILE_GATEWAY": "1",  # the tenant has no gateway: its confirmation goes to the file
        }
    )
    # the README's commands, in order: migrate, gunicorn, the workers of both queues, beat
    migrate = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "--noinput"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    port = free_port()
    web = [str(gunicorn), "lanzuan.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    beat = [sys.executable, "-m", "celery", "-A", "lanzuan", "beat", "-l", "info"]
    webhooks = [sys.executable, "-m", "celery", "-A", "lanzuan", "worker", "-Q", "webhooks", "-l", "info"]
    webhooks += [
        "-n",
        f"webhooks-{os.getpid()}@%h",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
    ]
    with (
        http_endpoint() as receiver,
        process(web, env, tmp_path / "gunicorn.log", "Booting worker") as web_process,
        process(beat, env, tmp_path / "beat.log", "beat: Starting") as beat_process,
        process(webhooks, env, tmp_path / "webhooks.log", "ready.") as webhooks_process,
        celery_worker(tmp_path, concurrency=1, queues="confirmations,pipeline") as worker,
    ):
        web_process.wait_ready()
        beat_process.wait_ready()
        webhooks_process.wait_ready()
        webhook_endpoint_create(tenant=tenant_a, url=receiver.url, events=["request.completed"])
        base = f"http://127.0.0.1:{port}"
        # plain http is sent to https; through the proxy the answer carries the production headers
        status, headers, _ = wait_for(lambda: _up(f"{base}/api/v1/me", api_key_a, "http"), 20)
        assert status == 301 and headers["Location"].startswith("https://")
        status, headers, body = call(f"{base}/api/v1/me", key=api_key_a)
        assert status == 200, body
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]

        # a request filed through gunicorn is completed by the worker
        status, _, body = call(
            f"{base}/api/v1/unsubscribe-requests",
            key=api_key_a,
            body={
                "phone": "13800138000",
                "channel": "hotline",
                "scope": "all",
                "verification": {"method": "agent_assertion", "agent_id": "A1"},
            },
        )
        assert status == 201, body
        detail = json.loads(body)["url"].split("://", 1)[-1].split("/", 1)[1]

        def completed() -> bool:
            _status, _headers, current = call(f"{base}/{detail}", key=api_key_a)
            state: str = json.loads(current)["state"]
            return state == "completed"

        wait_for(completed, 30, message=worker.output())
        # and its webhook is sent by the other worker
        wait_for(lambda: len(receiver.received) == 1, 30, message=(tmp_path / "webhooks.log").read_text())
        assert receiver.received[0].json()["event"] == "request.completed"
    assert settings.VAR_DIR.exists()


def _up(url: str, key: str, proto: str) -> tuple[int, dict[str, str], bytes] | None:
    try:
        return call(url, key=key, proto=proto)
    except OSError:
        return None
