"""The case page of a number in the admin (issue 15): staff enter a number and see, for their
tenants only, every request, suppression, reply, message, call, consent record, number event
and subscription of it on one timeline; the number is digested before the look-up, shown
masked, never stored."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanzuan import phones
from notifications.catalogue import Event, MessageChannel
from notifications.models import Message
from tenants.models import Tenant
from unsubscribe.consents.services import ConsentEvidence, consents_record
from unsubscribe.inbound.models import Action, InboundMessage, Intent, Provider
from unsubscribe.models import (
    ConsentRecord,
    NumberEvent,
    RequestChannel,
    Service,
    Subscription,
    SuppressionEvent,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.voice.models import Outcome, VoiceCall, VoiceProvider

from .conftest import PASSWORD
from .faults.scan import database_findings, redis_findings, unique_number
from .test_admin_i18n import english_words

if TYPE_CHECKING:
    from typing import Any

    from django.contrib.auth.models import User
    from django.db.models import Model
    from django.test import Client

CASE_URL = "admin:unsubscribe_case"


def _case_of(tenant: Tenant, number: str) -> dict[str, str]:
    """Every kind of record of `number` at `tenant`; returns their admin change URLs by kind."""
    digest = phones.tenant_phone_hash(tenant.pk, number)
    masked = phones.mask(number)
    service = Service.objects.create(tenant=tenant, name=f"会员优惠{tenant.pk}", code="offers")
    subscription = Subscription.objects.create(
        tenant=tenant, service=service, phone_hash=digest, phone_masked=masked, consent_source="注册"
    )
    consents_record(
        tenant=tenant,
        consents=[
            ConsentEvidence(
                service_id=service.pk,
                phone_hash=digest,
                phone_masked=masked,
                given_at=dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC),
                source=ConsentRecord.Source.FORM,
                wording="我同意接收会员优惠短信",
            )
        ],
        captured_by="tests",
    )
    reply = InboundMessage.objects.create(
        tenant=tenant,
        provider=Provider.GENERIC,
        provider_message_id=f"m-{tenant.slug}",
        reference=f"R{tenant.pk:04d}",
        from_hash=digest,
        from_masked=masked,
        body="TD",
        intent=Intent.UNSUBSCRIBE,
        action=Action.UNSUBSCRIBE,
        received_at=dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.UTC),
    )
    request = unsubscribe_request_create(
        tenant=tenant,
        phone=number,
        channel=RequestChannel.SMS,
        verification_method=VerificationMethod.SMS_ORIGIN,
    ).request
    message = Message.objects.create(
        tenant=tenant,
        channel=MessageChannel.SMS,
        event=Event.UNSUBSCRIBE_RECEIVED,
        language="zh-hans",
        to_hash=digest,
        to_masked=masked,
        body="已收到您的退订",
        status=Message.Status.SENT,
    )
    call = VoiceCall.objects.create(
        tenant=tenant,
        provider=VoiceProvider.GENERIC,
        call_id=f"c-{tenant.slug}",
        caller_hash=digest,
        caller_masked=masked,
        outcome=Outcome.ABANDONED,
    )
    event = NumberEvent.objects.create(
        tenant=tenant,
        phone_hash=digest,
        phone_masked=masked,
        kind=NumberEvent.Kind.REASSIGNED,
        occurred_on=dt.date(2025, 12, 1),
    )
    suppression = SuppressionEvent.objects.for_tenant(tenant).get(request=request)
    consent = ConsentRecord.objects.for_tenant(tenant).get(phone_hash=digest)

    def change(obj: Model) -> str:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])

    return {
        "request": change(request),
        "suppression_added": change(suppression),
        "reply": change(reply),
        "message": change(message),
        "call": change(call),
        "consent_given": change(consent),
        "number_event": change(event),
        "subscription": change(subscription),
    }


def _look_up(client: Client, number: str, language: str = "zh-hans") -> tuple[int, str]:
    response = client.post(reverse(CASE_URL), {"number": number}, HTTP_ACCEPT_LANGUAGE=language)
    return response.status_code, response.content.decode()


def _kinds(page: str, tenant: Tenant) -> set[str]:
    return set(re.findall(rf'data-kind="(\w+)" data-tenant="{tenant.slug}"', page))


def test_staff_see_their_tenants_case_and_nothing_of_another(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, alice: User
) -> None:
    # given the same number with records of every kind at tenant A and at tenant B
    number = unique_number()
    mine, theirs = _case_of(tenant_a, number), _case_of(tenant_b, number)
    # when A's administrator looks it up, in the national form with spaces
    client.force_login(alice)
    digits = number.removeprefix("+86")
    status, page = _look_up(client, f"{digits[:3]} {digits[3:7]} {digits[7:]}")
    # then every record of A's is on the timeline, linked to its admin page
    assert status == 200
    assert _kinds(page, tenant_a) == {
        "request",
        "suppression_added",
        "reply",
        "message",
        "call",
        "consent_given",
        "consent_revoked",
        "number_event",
        "subscription",
    }
    for url in mine.values():
        assert url in page
    # and nothing of B's: no row, no link, not its name
    assert _kinds(page, tenant_b) == set()
    for url in theirs.values():
        assert url not in page
    assert tenant_b.name not in page
    # in Chinese, newest first
    assert "号码档案" in page and "退订请求" in page
    times = re.findall(r'<time datetime="([^"]+)"', page)
    assert times == sorted(times, reverse=True) and len(times) >= 8


def test_a_superuser_sees_every_tenant(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, root: User
) -> None:
    number = unique_number()
    mine, theirs = _case_of(tenant_a, number), _case_of(tenant_b, number)
    client.force_login(root)
    status, page = _look_up(client, number, language="en")
    assert status == 200
    assert "request" in _kinds(page, tenant_a) and "request" in _kinds(page, tenant_b)
    for url in [*mine.values(), *theirs.values()]:
        assert url in page
    assert "Case by number" in page


def test_a_number_with_no_records_says_so(client: Client, tenant_a: Tenant, alice: User) -> None:
    client.force_login(alice)
    status, page = _look_up(client, unique_number())
    assert status == 200 and 'data-testid="case-empty"' in page and "data-kind=" not in page


def test_outsiders_are_refused(client: Client, tenant_a: Tenant) -> None:
    number = unique_number()
    _case_of(tenant_a, number)
    # not logged in: the admin's login page, no look-up
    response = client.post(reverse(CASE_URL), {"number": number})
    assert response.status_code == 302 and "/login/" in response["Location"]
    # logged in but not staff: the same
    person = get_user_model().objects.create_user("person", password=PASSWORD)
    client.force_login(person)
    response = client.post(reverse(CASE_URL), {"number": number})
    assert response.status_code == 302 and "/login/" in response["Location"]
    # staff of no tenant: refused
    stranger = get_user_model().objects.create_user("stranger", password=PASSWORD, is_staff=True)
    client.force_login(stranger)
    assert client.post(reverse(CASE_URL), {"number": number}).status_code == 403
    assert client.get(reverse(CASE_URL)).status_code == 403


def test_the_form_asks_by_post_only(client: Client, tenant_a: Tenant, alice: User) -> None:
    # a number in the query string is ignored: the page shows the empty form
    number = unique_number()
    _case_of(tenant_a, number)
    client.force_login(alice)
    page = client.get(reverse(CASE_URL), {"number": number}, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'method="post"' in page and "data-kind=" not in page


@pytest.mark.parametrize(
    ("typed", "zh", "en"),
    [
        ("", "此字段为必填项", "This field is required"),
        ("12345", "这不是有效的手机号码", "not a valid phone number"),
        ("not a number", "这不是有效的手机号码", "not a valid phone number"),
        ("1" * 40, "不超过 32 字符", "at most 32 characters"),
    ],
)
def test_a_malformed_number_is_a_form_error(
    client: Client, tenant_a: Tenant, alice: User, typed: str, zh: str, en: str
) -> None:
    client.force_login(alice)
    status, page = _look_up(client, typed)
    assert status == 200 and "errorlist" in page and zh in page and "data-kind=" not in page
    status, page = _look_up(client, typed, language="en")
    assert status == 200 and en in page


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=st.text(max_size=40))
def test_any_input_is_a_page_never_a_server_error(
    client: Client, tenant_a: Tenant, alice: User, typed: str
) -> None:
    client.force_login(alice)
    status, _page = _look_up(client, typed)
    assert status == 200


def test_the_number_is_shown_masked_only_and_stored_nowhere(
    client: Client, tenant_a: Tenant, alice: User
) -> None:
    # given a number with records (the request keeps it raw until erasure)
    number = unique_number()
    _case_of(tenant_a, number)
    before_db, before_redis = database_findings(number), redis_findings(number)
    client.force_login(alice)
    # when staff look it up in each form people type
    digits = number.removeprefix("+86")
    pages = [
        _look_up(client, typed)[1]
        for typed in (number, digits, f"0086{digits}", f"+86 {digits[:3]}-{digits[3:]}")
    ]
    # then each answer shows it masked and never in clear
    for page in pages:
        assert phones.mask(number) in page
        assert digits not in page and digits[3:] not in page
    # and the visit left it in no row and no cache key that was not there before
    assert database_findings(number) == before_db
    assert redis_findings(number) == before_redis
    assert UnsubscribeRequest.objects.for_tenant(tenant_a).count() == 1


def test_the_case_page_reads_in_chinese(client: Client, tenant_a: Tenant, alice: User) -> None:
    number = unique_number()
    _case_of(tenant_a, number)
    client.force_login(alice)
    _status, page = _look_up(client, number)
    assert "data-kind=" in page and not english_words(page), english_words(page)
    index = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert reverse(CASE_URL) in index and "号码档案" in index
    changelist = client.get(
        reverse("admin:unsubscribe_unsubscriberequest_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert reverse(CASE_URL) in changelist


def test_the_look_up_takes_a_fixed_number_of_queries(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, root: User, django_assert_max_num_queries: Any
) -> None:
    # one query per kind of record, however many records and tenants there are
    number = unique_number()
    _case_of(tenant_a, number)
    _case_of(tenant_b, number)
    client.force_login(root)
    # + 3 for the visit's audit entries, one per tenant looked at: lock the heads, insert, update
    with django_assert_max_num_queries(19):
        status, _page = _look_up(client, number)
    assert status == 200
