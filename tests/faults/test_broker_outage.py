"""Issue 19, item 6: a broker outage no longer kills the worker (nor beat), and one-time
codes do not depend on the broker.

A throwaway redis-server is the broker of a real worker and a real beat, both started as
the README starts them (Celery's default features: no flags). The broker is stopped for
ten seconds and started again, empty (as a Redis without persistence comes back): both
processes are still running, the worker runs a task sent after the restart and beat's
next sweep. Before the fix the worker logged "Error on restarting Gossip: AttributeError"
on every outage, and exited for good after Celery's 100 reconnection tries.

With CELERY_BROKER_URL at a port where nothing listens, the opt-out page and the hub still
send their codes (gunicorn, the file gateway's outbox under LANZUAN_VAR_DIR), and the
codes work; no code is stored in clear.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import requests
from django.conf import settings
from django.urls import reverse

from lanzuan import phones
from lanzuan.celery import app
from notifications.models import Message
from notifications.services import message_create, message_enqueue
from notifications.tasks import deliver_message
from unsubscribe.models import Service, Subscription

from ..pipeline_helpers import outbox_lines
from ..workers import ROOT, celery_worker, free_port, process, wait_for, worker_env
from .leftovers import baseline, raw_numbers_left
from .scan import tables_holding

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tenants.models import Tenant

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 10


@pytest.fixture
def before() -> set[str]:
    """What held a number before the test (other tests' files and keys)."""
    return baseline()


class ThrowawayRedis:
    """A redis-server of this test's own, on a free port, without persistence."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],  # noqa: S607
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_for(lambda: self._pings(client), 20, message=f"redis-server on port {self.port}")

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


@contextmanager
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    if subprocess.run(["redis-server", "--version"], capture_output=True, check=False).returncode:  # noqa: S607
        pytest.skip("redis-server is not installed")
    server = ThrowawayRedis(tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def transport_options() -> dict[str, object]:
    """The Redis transport options a process started with this environment uses."""
    options: dict[str, object] = {"visibility_timeout": 3600}
    if settings.REDIS_KEY_PREFIX:
        options["global_keyprefix"] = f"{settings.REDIS_KEY_PREFIX}:"
    return options


def publish_deliver(message_id: int, url: str) -> None:
    with app.connection_for_write(url, transport_options=transport_options()) as connection:
        # Celery passes **options (here the connection) on to send_task; its stubs list only some
        deliver_message.apply_async(args=(message_id,), connection=connection)  # type: ignore[call-arg]


def test_the_worker_and_beat_ride_out_a_broker_outage(
    tenant_a: Tenant, tmp_path: Path, before: set[str]
) -> None:
    # the settings that keep them reconnecting for as long as it takes
    assert app.conf.broker_connection_max_retries is None
    assert app.conf.worker_consumer == "lanzuan.celery:Consumer"
    outbox = tmp_path / "outbox.jsonl"
    with throwaway_redis(tmp_path) as broker:
        # beat's sweeps every 3 s, not 30: its next one after the outage comes without a long wait
        env = worker_env(CELERY_BROKER_URL=broker.url, OUTBOX_PATH=str(outbox), LANZUAN_SWEEP_SECONDS="3")
        beat_args = [sys.executable, "-m", "celery", "-A", "lanzuan", "beat", "-l", "info"]
        with (
            process(beat_args, env, tmp_path / "beat.log", "beat: Starting") as beat,
            celery_worker(
                tmp_path, concurrency=1, flags=(), CELERY_BROKER_URL=broker.url, OUTBOX_PATH=str(outbox)
            ) as worker,
        ):
            beat.wait_ready()
            # when the broker goes away for a while, and comes back empty
            broker.stop()
            wait_for(lambda: "Connection to broker lost" in worker.output(), 30, message=worker.output())
            time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for something to happen
            assert worker.process.poll() is None and beat.poll() is None
            broker.start()
            back = (tmp_path / "beat.log").read_text(errors="replace").count("Sending due task")
            wait_for(lambda: worker.output().count("Connected to redis") >= 2, 60, message=worker.output())

            # then the worker runs a task sent after the restart ...
            message = message_enqueue(
                message=message_create(tenant=tenant_a, event="clarify", to="+8613800138000", context={})
            )
            publish_deliver(message.pk, broker.url)
            wait_for(
                lambda: Message.objects.for_tenant(tenant_a).get(pk=message.pk).status == "sent",
                60,
                message=worker.output(),
            )
            # ... and beat's next sweep (every 3 s here), which the worker runs too
            beat_log = tmp_path / "beat.log"
            wait_for(lambda: beat_log.read_text(errors="replace").count("Sending due task") > back, 60)
            wait_for(lambda: "sweep[" in worker.output().rsplit("Connected to redis", 1)[-1], 60)
            assert worker.process.poll() is None and beat.poll() is None
            output = worker.output()
    assert "Unrecoverable error" not in output
    assert "Error on restarting Gossip" not in output and "mingle" not in output
    assert len(outbox_lines(outbox)) == 1
    assert raw_numbers_left(before) == []


# --- one-time codes with the broker down ---------------------------------------------------------


def code_in(body: str) -> str:
    match = re.search(r"\b(\d{6})\b", body)
    assert match is not None, body
    return match.group(1)


def form_post(
    session: requests.Session, base: str, path: str, data: dict[str, str], *, ip: str
) -> requests.Response:
    """GET the page (for its CSRF cookie), then POST the form; the answer is a redirect."""
    headers = {"X-Real-IP": ip, "Accept-Language": "en"}
    session.get(base + path, headers=headers, timeout=30)
    data = {"csrfmiddlewaretoken": session.cookies["csrftoken"], **data}
    return session.post(base + path, data=data, headers=headers, timeout=30, allow_redirects=False)


def test_one_time_codes_are_sent_while_the_broker_is_down(tenant_a: Tenant, tmp_path: Path) -> None:
    page_number, hub_number = "13700137001", "13700137002"
    hub_e164 = phones.normalise(hub_number)
    service = Service.objects.create(tenant=tenant_a, code="offers", name="Offers")
    Subscription.objects.create(
        tenant=tenant_a,
        service=service,
        phone=hub_e164,
        phone_hash=phones.tenant_phone_hash(tenant_a.pk, hub_e164),
        phone_masked=phones.mask(hub_e164),
    )
    outbox = Path(settings.VAR_DIR) / f"outbox-broker-down-{secrets.token_hex(4)}.jsonl"
    dead = free_port()  # nothing listens here: every publish fails
    env = worker_env(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{dead}/0",
        OUTBOX_PATH=str(outbox),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",  # plain http between the test and gunicorn
        LANZUAN_CLIENT_IP_HEADER="HTTP_X_REAL_IP",
        LANZUAN_PLATFORM_SMS_URL="",
    )
    ip = f"198.51.100.{secrets.randbelow(250) + 1}"  # a client of this test's own (the limits count by IP)
    port = free_port()
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")),
        "lanzuan.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    log = tmp_path / "gunicorn.log"
    try:
        with process([*gunicorn, "--workers", "1", "--timeout", "60"], env, log, "Booting worker") as web:
            web.wait_ready()
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _up(base), 30, message=log.read_text(errors="replace"))

            # the tenant's page: "send code" answers at once and the code arrives
            page = requests.Session()
            start = reverse("unsubscribe-start", args=[tenant_a.slug])
            started = time.monotonic()
            sent = form_post(page, base, start, {"phone": page_number}, ip=ip)
            assert sent.status_code == 302, log.read_text(errors="replace")[-3000:]
            assert sent.headers["Location"].endswith(reverse("optout-code", args=[tenant_a.slug]))
            assert time.monotonic() - started < 20
            (sms,) = [line for line in outbox_lines(outbox) if line["to"] == phones.normalise(page_number)]
            page_code = code_in(sms["body"])
            checked = form_post(
                page, base, reverse("optout-code", args=[tenant_a.slug]), {"code": page_code}, ip=ip
            )
            assert checked.status_code == 302 and "/choose/" in checked.headers["Location"]

            # the hub: its code goes through the platform's sender, here too
            hub = requests.Session()
            sent = form_post(hub, base, reverse("optout-hub"), {"phone": hub_number}, ip=ip)
            assert sent.status_code == 302 and sent.headers["Location"].endswith(reverse("optout-hub-code"))
            (sms,) = [line for line in outbox_lines(outbox) if line["to"] == hub_e164]
            assert sms["tenant"] == "platform"
            hub_code = code_in(sms["body"])
            checked = form_post(hub, base, reverse("optout-hub-code"), {"code": hub_code}, ip=ip)
            assert checked.status_code == 302 and checked.headers["Location"].endswith(
                reverse("optout-hub-choose")
            )
        output = log.read_text(errors="replace")
        assert "broker unavailable" in output and "sent in-process" in output
        assert "the hub code" in output and "is sent inline" in output
        # no code is stored in clear, anywhere
        assert tables_holding(page_code, hub_code) == []
        message = Message.objects.for_tenant(tenant_a).get(event="otp")
        assert message.status == "sent" and page_code not in message.body and message.to == ""
    finally:
        outbox.unlink(missing_ok=True)


def _up(base: str) -> bool:
    try:
        return requests.get(base + "/hub/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_the_worker_command_in_the_readme_and_the_units_needs_no_flags() -> None:
    """The documented start-up is the plain command: the consumer switches Gossip and Mingle off."""
    readme = (ROOT / "README.md").read_text()
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "celery -A lanzuan worker" in readme and "docs/deploy.md" in readme
    for unit in ("lanzuan-web.service", "lanzuan-worker.service", "lanzuan-beat.service"):
        assert unit in deploy
    assert deploy.count("Restart=always") >= 3 and "RestartSec=" in deploy
