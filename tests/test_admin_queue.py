"""The admin home shows what needs attention, per tenant and only the user's tenants;
the request list shows SLA time left; staff without an email address are told
(issue 11 item 16)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker

from unsubscribe.inbound.models import InboundMessage
from unsubscribe.models import UnsubscribeRequest

if TYPE_CHECKING:
    from typing import Any

    from django.contrib.auth.models import User
    from django.test import Client

    from tenants.models import Tenant

State = UnsubscribeRequest.State
NOW = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # late evening UTC, the next morning in Shanghai


def a_request(
    tenant: Tenant, *, state: str = State.SUPPRESSED, due_in: timedelta = timedelta(hours=5), **extra: Any
) -> UnsubscribeRequest:
    made: UnsubscribeRequest = baker.make(
        UnsubscribeRequest,
        tenant=tenant,
        state=state,
        received_at=timezone.now() - timedelta(hours=1),
        sla_due_at=timezone.now() + due_in,
        sla_breached_at=None,
        **extra,
    )
    return made


def queue_counts(page: str, slug: str) -> dict[str, int]:
    row = re.search(rf'<tr class="lanzuan-queue-row" data-tenant="{slug}">(.*?)</tr>', page, re.S)
    assert row, f"no queue row for {slug}"
    cells = re.findall(r'data-queue="(\w+)">\s*<a href="([^"]+)"[^>]*>(?:<strong[^>]*>)?(\d+)', row.group(1))
    return {key: int(count) for key, _url, count in cells}


def queue_links(page: str, slug: str) -> dict[str, str]:
    row = re.search(rf'<tr class="lanzuan-queue-row" data-tenant="{slug}">(.*?)</tr>', page, re.S)
    assert row
    cells = re.findall(r'data-queue="(\w+)">\s*<a href="([^"]+)"', row.group(1))
    return {key: url.replace("&amp;", "&") for key, url in cells}


@pytest.fixture
def busy_tenants(tenant_a: Tenant, tenant_b: Tenant) -> None:
    """Tenant A: 2 needing attention (one past its SLA), 1 more open past its SLA,
    1 flagged reply; tenant B: 1 needing attention, 3 flagged replies."""
    with time_machine.travel(NOW, tick=False):
        a_request(tenant_a, state=State.NEEDS_ATTENTION)
        a_request(tenant_a, state=State.NEEDS_ATTENTION, due_in=-timedelta(hours=3))
        a_request(tenant_a, state=State.TERMINATING, due_in=-timedelta(minutes=30))
        a_request(tenant_a, state=State.COMPLETED, due_in=-timedelta(hours=9))  # finished: not in the queue
        a_request(tenant_b, state=State.NEEDS_ATTENTION)
        baker.make(InboundMessage, tenant=tenant_a, flagged_for_attention=True)
        baker.make(InboundMessage, tenant=tenant_a, flagged_for_attention=False)
        baker.make(InboundMessage, tenant=tenant_b, flagged_for_attention=True, _quantity=3)


def test_the_admin_home_shows_the_queue_with_counts(client: Client, alice: User, busy_tenants: None) -> None:
    client.force_login(alice)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert 'id="lanzuan-attention-queue"' in page
    assert queue_counts(page, "tenant-a") == {
        "needs_attention": 2,
        "sla_breached": 2,
        "still_receiving": 0,
        "flagged_replies": 1,
    }
    with time_machine.travel(NOW, tick=False):
        chinese = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert queue_counts(chinese, "tenant-a") == {
        "needs_attention": 2,
        "sla_breached": 2,
        "still_receiving": 0,
        "flagged_replies": 1,
    }


def test_tenant_b_never_sees_tenant_a_counts(
    client: Client, charlie: User, busy_tenants: None, tenant_a: Tenant
) -> None:
    client.force_login(charlie)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert queue_counts(page, "tenant-b") == {
        "needs_attention": 1,
        "sla_breached": 0,
        "still_receiving": 0,
        "flagged_replies": 3,
    }
    assert 'data-tenant="tenant-a"' not in page and tenant_a.name not in page


def test_a_superuser_sees_every_tenants_queue(client: Client, root: User, busy_tenants: None) -> None:
    client.force_login(root)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert queue_counts(page, "tenant-a")["needs_attention"] == 2
    assert queue_counts(page, "tenant-b")["flagged_replies"] == 3


def test_the_queue_links_open_lists_filtered_to_the_same_rows(
    client: Client, alice: User, busy_tenants: None
) -> None:
    client.force_login(alice)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
        links = queue_links(page, "tenant-a")
        for key, expected in {"needs_attention": 2, "sla_breached": 2, "flagged_replies": 1}.items():
            response = client.get(links[key], HTTP_ACCEPT_LANGUAGE="en")
            assert response.status_code == 200, (key, links[key])
            assert response.context["cl"].result_count == expected, key


def test_the_sla_column_shows_time_left_and_overdue_in_red(
    client: Client, alice: User, tenant_a: Tenant
) -> None:
    with time_machine.travel(NOW, tick=False):
        a_request(tenant_a, due_in=timedelta(hours=5, minutes=20), reference="AAAA-1111")
        a_request(tenant_a, state=State.NEEDS_ATTENTION, due_in=-timedelta(hours=3), reference="BBBB-2222")
        client.force_login(alice)
        page = client.get(
            reverse("admin:unsubscribe_unsubscriberequest_changelist"), HTTP_ACCEPT_LANGUAGE="en"
        ).content.decode()

    assert "5 h left" in page
    overdue = re.search(r'<span class="lanzuan-sla lanzuan-sla-overdue"[^>]*>([^<]+)</span>', page)
    assert overdue and overdue.group(1) == "3 h overdue"
    assert "color:#cf222e" in overdue.group(0)


def test_staff_without_an_email_address_are_warned(
    client: Client, alice: User, bob: User, tenant_a: Tenant
) -> None:
    # alice (an administrator, alerted by email) has no address; bob is a viewer (never alerted)
    client.force_login(alice)
    page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="lanzuan-no-email"' in page
    assert "no email address" in page
    assert re.search(r'data-staff-without-email="tenant-a">\s*alice has no email address', page)

    alice.email = "alice@example.com"
    alice.save()
    page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="lanzuan-no-email"' not in page
    client.force_login(bob)
    assert 'id="lanzuan-no-email"' not in client.get(reverse("admin:index")).content.decode()
