"""Outbound calls to tenants' URLs reach only public https addresses (no SSRF)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
import requests
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lanzuan import outbound
from lanzuan.outbound import UnsafeURL, check_url, is_public
from unsubscribe.models import Step, Target
from unsubscribe.requests.services import unsubscribe_request_create

from ..httpserver import http_endpoint
from ..pipeline_helpers import NUMBER
from ..test_core import run_pipeline

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import Settings

    from tenants.models import Tenant

    from .ledger import Ledger


@pytest.fixture
def production_network(settings: Settings) -> None:
    settings.LANZUAN_OUTBOUND_ALLOW = []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/optout",
        "https://127.0.0.1/optout",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://93.184.216.34/plain-http",
        "ftp://example.com/x",
        "not a url",
    ],
)
def test_private_addresses_and_plain_http_are_refused(url: str, production_network: None) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url)


def test_public_https_passes_and_loopback_passes_where_allowed(settings: Settings) -> None:
    settings.LANZUAN_OUTBOUND_ALLOW = []
    check_url("https://93.184.216.34/optout")
    check_url(
        "https://crm.provider.example/optout"
    )  # unresolvable here: the scheme is all we can check at save
    with pytest.raises(UnsafeURL):
        check_url("https://crm.provider.example/optout", resolve_required=True)  # but not at call time
    settings.LANZUAN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    check_url("http://127.0.0.1:8080/optout")


@pytest.mark.django_db
def test_admin_refuses_an_internal_target_url(
    production_network: None, tenant_a: Tenant, alice: User, client: Client
) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_target_add"),
        {
            "tenant": tenant_a.pk,
            "name": "CRM",
            "purpose": "terminate",
            "kind": "http",
            "url": "https://169.254.169.254/latest/",
            "signing_secret": "s3cret",
            "timeout_seconds": 5,
            "max_attempts": 3,
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "private or internal address" in str(response.context["adminform"].form.errors["url"])
    assert not Target.objects.unscoped(reason="test").exists()


@pytest.mark.django_db
def test_a_target_that_became_internal_is_not_called(
    production_network: None, tenant_a: Tenant, outbox: Path, fault_ledger: Ledger
) -> None:
    # saved when the network allowed it (or DNS pointed elsewhere), internal now
    Target.objects.create(
        tenant=tenant_a,
        name="CRM",
        purpose="terminate",
        kind="http",
        url="http://127.0.0.1:9/optout",
        signing_secret="s3cret",
        max_attempts=3,
    )
    request = unsubscribe_request_create(
        tenant=tenant_a, phone=NUMBER, channel="app", verification_method="partner_assertion"
    ).request
    request = run_pipeline(request)
    fault_ledger.count(faults=1, filed=1)
    step = Step.objects.unscoped(reason="test").get(request=request, kind="terminate", target__isnull=False)
    assert step.status == "failed" and step.attempts == 1  # permanent: no retries against it
    assert "https" in step.last_error
    assert request.state == "needs_attention"


@pytest.mark.django_db
def test_an_smtp_gateway_on_an_internal_host_is_refused(
    production_network: None, tenant_a: Tenant, alice: User, client: Client
) -> None:
    from notifications.models import GatewayConfig

    client.force_login(alice)
    response = client.post(
        reverse("admin:notifications_gatewayconfig_add"),
        {
            "tenant": tenant_a.pk,
            "channel": "email",
            "kind": "smtp",
            "endpoint": "smtp://10.0.0.5:25",
            "sender_id": "noreply@provider.example",
            "is_active": "on",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "private or internal address" in str(response.context["adminform"].form.errors)
    assert not GatewayConfig.objects.unscoped(reason="test").exists()


# --- issue 19 item 14: transition forms of private addresses, pinning, dev ports -----------------

PRIVATE_V4 = st.ip_addresses(v=4).filter(lambda a: not a.is_global)
PUBLIC_V4 = st.ip_addresses(v=4).filter(lambda a: a.is_global and not a.is_multicast)


def transition_forms(v4: ipaddress.IPv4Address) -> dict[str, str]:
    n = int(v4)
    return {
        "nat64": str(ipaddress.IPv6Address((0x64FF9B << 96) | n)),
        "nat64-local": str(ipaddress.IPv6Address((0x64FF9B0001 << 80) | n)),
        "6to4": str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)),
        "teredo": str(ipaddress.IPv6Address((0x20010000 << 96) | (n << 64) | (~n & 0xFFFFFFFF))),
        "mapped": f"::ffff:{v4}",
        "compatible": str(ipaddress.IPv6Address(n)) if n > 0xFFFF else f"::{v4}",
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
        "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "https://[64:ff9b:1::a9fe:a9fe]/",
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
        "https://[2002:0a00:0001::]/",  # 6to4 of 10.0.0.1
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "https://[::ffff:169.254.169.254]/",
        "https://[::ffff:93.184.216.34]/",  # mapped: refused even when public
        "https://[::a9fe:a9fe]/",  # IPv4-compatible
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://100.64.0.1/",  # carrier-grade NAT
        "https://0.0.0.0/",
    ],
)
def test_transition_forms_of_internal_addresses_are_refused(url: str, production_network: None) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url)


@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150, deadline=None)
@given(v4=PRIVATE_V4)
def test_no_embedding_of_a_non_public_ipv4_address_passes(
    production_network: None, v4: ipaddress.IPv4Address
) -> None:
    for form, address in transition_forms(v4).items():
        with pytest.raises(UnsafeURL):
            check_url(f"https://[{address}]/hook")
        assert not is_public(ipaddress.ip_address(address)), form


@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100, deadline=None)
@given(v4=PUBLIC_V4)
def test_nat64_and_6to4_of_a_public_address_pass_teredo_and_mapped_never(
    production_network: None, v4: ipaddress.IPv4Address
) -> None:
    forms = transition_forms(v4)
    check_url(f"https://[{forms['nat64']}]/hook")  # DNS64 networks resolve public hosts so
    check_url(f"https://[{forms['6to4']}]/hook")
    for refused in ("teredo", "mapped", "nat64-local"):
        with pytest.raises(UnsafeURL):
            check_url(f"https://[{forms[refused]}]/hook")


def test_the_development_allowance_can_limit_ports(settings: Settings) -> None:
    settings.LANZUAN_OUTBOUND_ALLOW = ["127.0.0.0/8@32768-65535", "::1/128@32768-65535"]
    check_url("http://127.0.0.1:40000/optout")
    check_url("http://[::1]:65535/optout")
    for url in (
        "http://127.0.0.1:6379/",
        "http://127.0.0.1:5432/",
        "http://[::1]:8000/",
        "http://127.0.0.1/",
    ):
        with pytest.raises(UnsafeURL):
            check_url(url)


class Rebinding:
    """A resolver that gives `first` for NAME once (the check), then `then` (a re-resolve)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, first: str, then: str) -> None:
        self.answers = [first]
        self.then = then
        self.real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: str, port: int | str | None, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        address = self.answers.pop(0) if self.answers else self.then
        return self.real(address, port, *args, **kwargs)


NAME = "crm.rebinding.example"


@contextmanager
def tcp_listener() -> Iterator[tuple[int, list[int]]]:
    """A local TCP port that counts the connections it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_a_name_rebound_to_loopback_after_the_check_is_not_called(
    production_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a name that is public when checked and 127.0.0.1 when resolved again
    with tcp_listener() as (port, accepted):
        Rebinding(monkeypatch, first="93.184.216.34", then="127.0.0.1")
        # when Lanzuan posts to it, then the connection goes to the checked address, not the local one
        with pytest.raises(requests.RequestException):
            outbound.post(f"https://{NAME}:{port}/optout", data=b"{}", timeout=(0.5, 0.5))
        assert accepted == []


@pytest.mark.django_db
def test_a_target_rebound_after_the_check_does_not_reach_the_local_server(
    settings: Settings, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, fault_ledger: Ledger
) -> None:
    # given an allowed loopback alias at check time; the real server answers on 127.0.0.1 only
    settings.LANZUAN_OUTBOUND_ALLOW = ["127.0.0.2/32"]
    with http_endpoint() as endpoint:
        port = endpoint.url.split(":")[2].split("/")[0]
        Target.objects.create(
            tenant=tenant_a,
            name="CRM",
            purpose="terminate",
            kind="http",
            url=f"http://{NAME}:{port}/optout",
            signing_secret="s3cret",
            max_attempts=1,
        )
        Rebinding(monkeypatch, first="127.0.0.2", then="127.0.0.1")
        request = unsubscribe_request_create(
            tenant=tenant_a, phone=NUMBER, channel="app", verification_method="partner_assertion"
        ).request
        request = run_pipeline(request)

        # then the request never reached the server behind the rebound name
        fault_ledger.count(faults=1, filed=1)
        assert endpoint.received == []
    step = Step.objects.unscoped(reason="test").get(request=request, kind="terminate", target__isnull=False)
    assert step.status != "done"
    assert "could not connect" in step.last_error


def test_a_pinned_call_keeps_the_host_header_and_refuses_other_hosts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LANZUAN_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    with http_endpoint() as endpoint:
        port = endpoint.url.split(":")[2].split("/")[0]
        Rebinding(monkeypatch, first="127.0.0.1", then="10.9.9.9")
        response = outbound.post(f"http://{NAME}:{port}/hook", data=b"{}", timeout=2)
        assert response.status_code == 200
        assert endpoint.received[0].headers["Host"] == f"{NAME}:{port}"
        session = outbound.pinned_session(f"http://127.0.0.1:{port}/hook")
        with pytest.raises(requests.ConnectionError):
            session.post(f"http://localhost:{port}/hook", data=b"{}", timeout=2)  # not the checked name


def test_an_smtp_server_rebound_after_the_check_is_not_reached(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notifications.gateways import (
        OutgoingMessage,
        PermanentGatewayError,
        SmtpGateway,
        TransientGatewayError,
    )

    settings.LANZUAN_OUTBOUND_ALLOW = ["127.0.0.2/32"]
    with tcp_listener() as (port, accepted):
        Rebinding(monkeypatch, first="127.0.0.2", then="127.0.0.1")
        gateway = SmtpGateway(from_email="noreply@a.example", endpoint=f"smtp://{NAME}:{port}")
        message = OutgoingMessage(
            message_id=1,
            tenant_slug="a",
            channel="email",
            event="confirm",
            language="en",
            to="person@example.com",
            subject="s",
            body="b",
        )
        with pytest.raises((TransientGatewayError, PermanentGatewayError)):
            gateway.send(message)
        assert accepted == []
