"""Outbound calls to tenants' URLs reach only public https addresses (no SSRF)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lanzuan.outbound import UnsafeURL, check_url
from unsubscribe import services
from unsubscribe.models import Step, Target

from .pipeline_helpers import NUMBER
from .test_core import run_pipeline


@pytest.fixture
def production_network(settings):
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
def test_private_addresses_and_plain_http_are_refused(url, production_network):
    with pytest.raises(UnsafeURL):
        check_url(url)


def test_public_https_passes_and_loopback_passes_where_allowed(settings):
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
def test_admin_refuses_an_internal_target_url(production_network, tenant_a, alice, client):
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
    assert not Target.objects.exists()


@pytest.mark.django_db
def test_a_target_that_became_internal_is_not_called(production_network, tenant_a, outbox):
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
    request = services.unsubscribe_request_create(
        tenant=tenant_a, phone=NUMBER, channel="app", verification_method="partner_assertion"
    ).request
    request = run_pipeline(request)
    step = Step.objects.get(request=request, kind="terminate", target__isnull=False)
    assert step.status == "failed" and step.attempts == 1  # permanent: no retries against it
    assert "https" in step.last_error
    assert request.state == "needs_attention"


@pytest.mark.django_db
def test_an_smtp_gateway_on_an_internal_host_is_refused(production_network, tenant_a, alice, client):
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
    assert not GatewayConfig.objects.exists()
