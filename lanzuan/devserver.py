"""`make run`: the web server and two Celery workers, together in the foreground;
Ctrl-C stops them all. Prints where to go and how to log in.

One worker (with beat) takes the "confirmations" and "pipeline" queues, everything an opt-out needs; the
other takes "webhooks", partner webhook deliveries (CELERY_TASK_ROUTES in settings). The
development broker (folders under var/broker/) has no queue priorities, so a webhook
backlog would otherwise take turns with opt-outs in one worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import django

HOST = os.environ.get("LANZUAN_HOST", "127.0.0.1")
PORT = os.environ.get("LANZUAN_PORT", "8000")
BASE = f"http://{HOST}:{PORT}"


def banner() -> str:
    # Django is set up by then (main); its apps cannot load at this module's import.
    from unsubscribe.management.commands.seed_demo import DEMO_PASSWORD, TENANTS  # noqa: PLC0415

    lines = [
        "",
        "Lanzuan is running. 蓝钻退订平台已启动。",
        f"  Admin:        {BASE}/admin/",
        f"    superuser:  admin / {DEMO_PASSWORD}",
    ]
    lines += [f"    {t['slug']}: {t['admin']} / {DEMO_PASSWORD}" for t in TENANTS]
    lines += [f"  Opt-out page: {BASE}/t/{t['slug']}/unsubscribe/" for t in TENANTS]
    lines += [
        "  One-stop hub: " + f"{BASE}/hub/",
        f"  API docs:     {BASE}/api/docs/",
        "    an API key: DEBUG=1 .venv/bin/python manage.py create_api_key demo-mobile --name try",
        "  Outgoing SMS/email are appended to var/outbox.jsonl (the file gateway).",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def wait_until_up(url: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310  (our own localhost URL)
                return True
        except Exception:
            time.sleep(0.5)
    return False


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lanzuan.settings")
    django.setup()
    python = sys.executable
    web = subprocess.Popen([python, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"])  # noqa: S603
    celery = [python, "-m", "celery", "-A", "lanzuan", "worker", "--loglevel=INFO"]
    pipeline = subprocess.Popen(  # noqa: S603
        [*celery, "-B", "-Q", "confirmations,pipeline", "-n", "pipeline@%h", "--concurrency=2"]
    )
    webhooks = subprocess.Popen([*celery, "-Q", "webhooks", "-n", "webhooks@%h", "--concurrency=1"])  # noqa: S603
    children = [web, pipeline, webhooks]

    def stop(*_args: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    def on_term(*_args: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        if wait_until_up(f"{BASE}/admin/login/"):
            print(banner(), flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process stopped; shutting down the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
