"""Deadlines by regime (issue 16): due times on real working-day calendars, met and
breached, shown to staff, the person and partners."""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import chinese_calendar
import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanzuan import phones
from tenants.models import Tenant
from tenants.readiness import tenant_warnings
from unsubscribe import tasks
from unsubscribe.deadlines.calendars import DayBook, add_working_days, library_covers
from unsubscribe.deadlines.regimes import BUILT_IN, Rule
from unsubscribe.deadlines.services import due_time
from unsubscribe.links import status_url
from unsubscribe.models import CalendarDay, CalendarYear, DeadlineRegime, RequestDeadline, UnsubscribeRequest
from unsubscribe.partner.models import WebhookDelivery
from unsubscribe.partner.webhooks import webhook_endpoint_create

from .pipeline_helpers import file

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client

    from .pipeline_helpers import Pipeline

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
US_NUMBER = "+16502530000"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en"}


def _rule(regime: str, rule: str) -> Rule:
    return next(r for r in BUILT_IN if (r.regime, r.rule) == (regime, rule))


def deadlines_of(request: UnsubscribeRequest) -> dict[tuple[str, str], RequestDeadline]:
    return {
        (d.regime, d.rule): d
        for d in RequestDeadline.objects.for_tenant(request.tenant_id).filter(request=request)
    }


def end_of(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone)


def _new_york_tenant() -> Tenant:
    return Tenant.objects.create(slug="ny", name="New York Co", time_zone="America/New_York")


# --- due-time arithmetic on the calendars ----------------------------------------------------


def test_spring_festival_2026_counts_the_adjusted_working_saturdays(tenant_a: Tenant) -> None:
    # 2026: the holiday runs 15–23 February; Saturday 14 and Saturday 28 February are working days.
    assert chinese_calendar.is_workday(date(2026, 2, 14)) and chinese_calendar.is_workday(date(2026, 2, 28))
    with time_machine.travel(datetime(2026, 2, 13, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
    found = deadlines_of(request)
    assert set(found) == {("cn", "termination"), ("cn", "erasure"), ("tenant", "sla")}
    # 1 working day after Friday the 13th is the adjusted working Saturday, not Tuesday 24th.
    assert found["cn", "termination"].due_at == end_of(date(2026, 2, 14), SHANGHAI)
    # 15 working days: 14 Feb, then 24–28 Feb (Saturday 28 included), then 2–12 March.
    assert found["cn", "erasure"].due_at == end_of(date(2026, 3, 12), SHANGHAI)
    assert found["tenant", "sla"].due_at == request.sla_due_at
    assert not any(d.provisional for d in found.values())


def test_us_revocation_skips_thanksgiving(tenant_a: Tenant) -> None:
    tenant = _new_york_tenant()
    with time_machine.travel(datetime(2026, 11, 19, 10, 0, tzinfo=NEW_YORK), tick=False):
        request = file(tenant, US_NUMBER)
    found = deadlines_of(request)
    assert set(found) == {("us", "revocation"), ("us", "confirmation"), ("tenant", "sla")}
    # 10 business days from Thursday 19 November; Thanksgiving (26th) is not one.
    assert found["us", "revocation"].due_at == end_of(date(2026, 12, 4), NEW_YORK)
    assert found["us", "confirmation"].due_at == request.received_at + timedelta(minutes=5)


def test_working_days_are_counted_from_the_tenants_date_not_utcs() -> None:
    tenant = _new_york_tenant()
    # 23:30 on Monday 15 June in New York is already Tuesday in UTC.
    filed = datetime(2026, 6, 15, 23, 30, tzinfo=NEW_YORK)
    assert filed.astimezone(UTC).date() == date(2026, 6, 16)
    with time_machine.travel(filed, tick=False):
        request = file(tenant, US_NUMBER)
    # Tue 16 … Thu 18, Juneteenth (Fri 19) off, Mon 22 … Tue 30: the 10th business day.
    assert deadlines_of(request)["us", "revocation"].due_at == end_of(date(2026, 6, 30), NEW_YORK)
    # Counted from the UTC date it would have been a day later.
    utc_based, _ = due_time(
        rule=_rule("us", "revocation"), filed_at=filed, zone=zoneinfo.ZoneInfo("UTC"), book=DayBook("US")
    )
    assert utc_based.date() == date(2026, 7, 1)


def test_shanghai_just_after_midnight_is_the_next_day(tenant_a: Tenant) -> None:
    filed = datetime(2026, 6, 15, 16, 30, tzinfo=UTC)  # 00:30 on Tuesday 16 June in Shanghai
    with time_machine.travel(filed, tick=False):
        request = file(tenant_a)
    assert deadlines_of(request)["cn", "termination"].due_at == end_of(date(2026, 6, 17), SHANGHAI)


def test_email_one_click_is_48_hours_and_met_when_services_end(tenant_a: Tenant, pipeline: Pipeline) -> None:
    with time_machine.travel(datetime(2026, 3, 6, 9, 0, tzinfo=SHANGHAI), tick=True), pipeline():
        request = file(tenant_a, channel="email")
    request.refresh_from_db()
    found = deadlines_of(request)
    mailbox = found["mailbox", "one_click"]
    assert mailbox.due_at == request.received_at + timedelta(hours=48)
    assert request.state == "completed"
    assert mailbox.met_at == request.confirming_at
    assert found["cn", "erasure"].met_at == request.completed_at
    assert all(
        d.met_at is not None and d.met_at <= d.due_at and d.breached_at is None for d in found.values()
    )


def test_a_tenant_sets_its_own_chinese_working_days_and_adds_a_regime(tenant_a: Tenant) -> None:
    DeadlineRegime.objects.create(
        tenant=tenant_a, regime="cn", rule="termination", name="Ours", measure="terminated",
        unit="working_days", amount=3, calendar="CN", countries="CN",
    )  # fmt: skip
    DeadlineRegime.objects.create(
        tenant=tenant_a, regime="contract", rule="ack", name="Partner contract", measure="suppressed",
        unit="hours", amount=1, channels="hotline, sms",
    )  # fmt: skip
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
    found = deadlines_of(request)
    assert found["cn", "termination"].due_at == end_of(date(2026, 3, 5), SHANGHAI)  # Mon + 3 working days
    assert found["contract", "ack"].due_at == request.received_at + timedelta(hours=1)
    assert found["contract", "ack"].met_at is None  # met when the pipeline next looks


# --- a year the library does not cover -------------------------------------------------------


FAR = 2040  # far past chinese_calendar's data: it raises NotImplementedError


def test_an_uncovered_year_is_warned_about_and_staff_days_are_used(
    tenant_a: Tenant, alice: User, client: Client
) -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(FAR, 1, 2))
    assert not library_covers("CN", FAR) and library_covers("CN", 2026) and library_covers("US", FAR)
    with time_machine.travel(datetime(FAR, 12, 20, 10, 0, tzinfo=SHANGHAI), tick=False):
        warnings = tenant_warnings(tenant_a)
        assert any(f"CN {FAR}" in w and f"CN {FAR + 1}" in w for w in warnings), warnings
        request = file(tenant_a)  # Thursday 20 December
        erasure = deadlines_of(request)["cn", "erasure"]
        # Guessed Monday to Friday, and said so: 21, 24–28, 31 Dec, 1–4, 7–10 Jan.
        assert erasure.provisional
        assert erasure.due_at == end_of(date(FAR + 1, 1, 10), SHANGHAI)
        client.force_login(alice)
        page = client.get(reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]))
        assert b'data-testid="deadline-provisional"' in page.content
        # Staff enter the days: Christmas is no holiday there, but 31 Dec to 2 Jan are, say.
        for day in (date(FAR, 12, 31), date(FAR + 1, 1, 1), date(FAR + 1, 1, 2)):
            response = client.post(
                reverse("admin:unsubscribe_calendarday_add"),
                {"tenant": tenant_a.pk, "calendar": "CN", "date": day.isoformat(), "note": "元旦"},
            )
            assert response.status_code == 302, response.content[:2000]
        # days entered, but the years not marked done: still provisional, still warned about
        erasure.refresh_from_db()
        assert erasure.provisional
        assert any(f"CN {FAR}" in w for w in tenant_warnings(tenant_a))
        for year in (FAR, FAR + 1):
            response = client.post(
                reverse("admin:unsubscribe_calendaryear_add"),
                {"tenant": tenant_a.pk, "calendar": "CN", "year": year, "note": "国务院办公厅通知"},
            )
            assert response.status_code == 302, response.content[:2000]
        assert not any("2040" in w for w in tenant_warnings(tenant_a))
    erasure.refresh_from_db()
    assert not erasure.provisional
    # 21, 24–28 Dec, then 3–4, 7–11 Jan, 14 Jan: the three holidays push it by three working days.
    assert erasure.due_at == end_of(date(FAR + 1, 1, 15), SHANGHAI)


def test_staff_days_override_the_library() -> None:
    book = DayBook("CN", {date(2026, 2, 14): False})  # the adjusted Saturday off after all
    assert add_working_days(start=date(2026, 2, 13), days=1, book=book) == (date(2026, 2, 24), False)


# --- breach: needs attention and the webhook, through the sweep ------------------------------


def test_a_breach_raises_needs_attention_and_one_webhook(tenant_a: Tenant) -> None:
    endpoint, _ = webhook_endpoint_create(
        tenant=tenant_a, url="http://127.0.0.1:40000/hook", events=["request.deadline_breached"]
    )
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
        # No worker picks it up: nothing is done, nothing is dispatched by the sweep.
        UnsubscribeRequest.objects.for_tenant(tenant_a).filter(pk=request.pk).update(next_run_at=None)
    with time_machine.travel(datetime(2026, 3, 3, 12, 0, tzinfo=SHANGHAI), tick=False), transaction.atomic():
        tasks.pipeline_sweep()  # the SLA (48 h) is not past yet, nor termination (end of the 3rd)
    request.refresh_from_db()
    assert request.state == "suppressed"
    with time_machine.travel(datetime(2026, 3, 4, 0, 30, tzinfo=SHANGHAI), tick=False):
        with transaction.atomic():
            tasks.pipeline_sweep()
        with transaction.atomic():
            tasks.pipeline_sweep()  # once per deadline
    request.refresh_from_db()
    assert request.state == "needs_attention"
    assert "2026-03-03 23:59 +0800" in request.attention_reason  # the due time, in the tenant's zone
    termination = deadlines_of(request)["cn", "termination"]
    assert termination.breached_at is not None and termination.met_at is None
    deliveries = list(WebhookDelivery.objects.for_tenant(tenant_a).filter(endpoint=endpoint))
    assert [d.event for d in deliveries] == ["request.deadline_breached"]
    data = deliveries[0].payload
    assert data["reference"] == request.reference
    assert data["deadline"]["regime"] == "cn" and data["deadline"]["rule"] == "termination"
    assert data["deadline"]["met_at"] is None
    assert datetime.fromisoformat(data["deadline"]["due_at"]) == termination.due_at


def test_attention_for_a_deadline_ends_when_it_is_met(tenant_a: Tenant, pipeline: Pipeline) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
        UnsubscribeRequest.objects.for_tenant(tenant_a).filter(pk=request.pk).update(next_run_at=None)
    with time_machine.travel(datetime(2026, 3, 4, 0, 30, tzinfo=SHANGHAI), tick=True):
        with transaction.atomic():
            tasks.pipeline_sweep()
        request.refresh_from_db()
        assert request.state == "needs_attention"
        UnsubscribeRequest.objects.for_tenant(tenant_a).filter(pk=request.pk).update(
            next_run_at=request.received_at
        )
        with pipeline():
            tasks.pipeline_sweep()  # dispatches it although it needs attention: no step failed
    request.refresh_from_db()
    assert request.state == "completed" and request.attention_reason == ""
    termination = deadlines_of(request)["cn", "termination"]
    assert termination.met_at is not None and termination.met_at > termination.due_at


# --- where they show -------------------------------------------------------------------------


def test_the_api_carries_the_deadlines(tenant_a: Tenant, api_key_a: str, client: Client) -> None:
    with time_machine.travel(datetime(2026, 2, 13, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
    response = client.get(
        f"/api/v1/unsubscribe-requests/{request.reference}", HTTP_AUTHORIZATION=f"Api-Key {api_key_a}"
    )
    assert response.status_code == 200
    deadlines = response.json()["deadlines"]
    assert {tuple(sorted(d)) for d in deadlines} == {("due_at", "met_at", "regime", "rule")}
    by_rule = {(d["regime"], d["rule"]): d for d in deadlines}
    assert datetime.fromisoformat(by_rule["cn", "termination"]["due_at"]) == end_of(
        date(2026, 2, 14), SHANGHAI
    )
    assert by_rule["cn", "erasure"]["met_at"] is None
    dues = [datetime.fromisoformat(d["due_at"]) for d in deadlines]
    assert dues == sorted(dues)  # soonest first


def test_the_admin_list_and_page_show_countdowns(tenant_a: Tenant, alice: User, client: Client) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
        client.force_login(alice)
        listing = client.get(reverse("admin:unsubscribe_unsubscriberequest_changelist"), **EN)
        assert b'data-testid="deadline-countdown"' in listing.content
        assert b"h left" in listing.content
        page = client.get(reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]), **EN)
        text = page.content.decode()
        assert 'data-regime="cn" data-rule="erasure"' in text
        assert "PIPL art. 47" in text
        chinese = client.get(reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]))
        assert "中国（个人信息保护法）：个人信息已删除" in chinese.content.decode()


def test_the_status_page_says_done_by(tenant_a: Tenant, client: Client) -> None:
    with time_machine.travel(datetime(2026, 2, 13, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
        link = status_url(request)
        english = client.get(link, **EN).content.decode()
        chinese = client.get(link, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert 'data-testid="deadlines"' in english
    assert "Services ended" in english and "done by 2026-02-14 23:59" in english
    # The strictest promise for each: the provider's 48-hour SLA comes before PIPL's 15 working days.
    assert "done by 2026-02-15 10:00" in english
    assert "完成时限 2026-02-14 23:59" in chinese


def test_the_dashboard_charts_on_time_per_regime(tenant_a: Tenant, alice: User, client: Client) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        late = file(tenant_a)
        UnsubscribeRequest.objects.for_tenant(tenant_a).filter(pk=late.pk).update(next_run_at=None)
    with time_machine.travel(datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI), tick=False):
        with transaction.atomic():
            tasks.pipeline_sweep()
        client.force_login(alice)
        page = client.get(reverse("admin:unsubscribe_dashboard"), **EN).content.decode()
    assert 'data-testid="on-time-chart"' in page
    assert 'data-regime="cn"' in page and "0.0% (0/1)" in page


# --- properties over filing times ------------------------------------------------------------

WORKING_RULES = [r for r in BUILT_IN if r.unit == "working_days"]
# hypothesis takes naive bounds and makes aware values in the zones it is given
filing_times = st.datetimes(
    min_value=datetime(2005, 1, 1),  # noqa: DTZ001
    max_value=datetime(2026, 11, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=filing_times,
    gap=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
    rule=st.sampled_from([*WORKING_RULES, *(r for r in BUILT_IN if r.unit != "working_days")]),
    zone=st.sampled_from([SHANGHAI, NEW_YORK]),
)
def test_due_times_never_precede_filing_land_on_working_days_and_are_monotonic(
    first: datetime, gap: timedelta, rule: Rule, zone: zoneinfo.ZoneInfo
) -> None:
    book = DayBook(rule.calendar)
    later = first + gap
    due_first, provisional = due_time(rule=rule, filed_at=first, zone=zone, book=book)
    due_later, _ = due_time(rule=rule, filed_at=later, zone=zone, book=book)
    assert due_first > first and not provisional
    assert due_first <= due_later
    if rule.unit == "working_days":
        local = due_first.astimezone(zone).date()
        assert book.is_working(local) == (True, False)
        assert local > first.astimezone(zone).date()


def test_the_confirmation_rule_is_met_by_the_sent_confirmation(pipeline: Pipeline) -> None:
    tenant = _new_york_tenant()
    with time_machine.travel(datetime(2026, 3, 6, 9, 0, tzinfo=NEW_YORK), tick=True), pipeline():
        request = file(tenant, US_NUMBER)
    confirmation = deadlines_of(request)["us", "confirmation"]
    step = request.steps.get(kind="confirm")
    assert confirmation.met_at == step.finished_at
    assert confirmation.met_at is not None and confirmation.met_at <= confirmation.due_at
    assert phones.mask(US_NUMBER) == request.phone_masked


def test_staff_and_the_person_see_a_late_request(tenant_a: Tenant, alice: User, client: Client) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        late = file(tenant_a)
        on_time = file(tenant_a, "13900139000")
        UnsubscribeRequest.objects.for_tenant(tenant_a).filter(pk=late.pk).update(next_run_at=None)
    with time_machine.travel(datetime(2026, 3, 4, 0, 30, tzinfo=SHANGHAI), tick=False):
        for deadline in RequestDeadline.objects.for_tenant(tenant_a).filter(request=on_time):
            deadline.met_at = deadline.due_at - timedelta(hours=1)
            deadline.save()
        with transaction.atomic():
            tasks.pipeline_sweep()
        client.force_login(alice)
        listing = client.get(
            reverse("admin:unsubscribe_unsubscriberequest_changelist") + "?deadline=overdue", **EN
        )
        assert late.reference in listing.content.decode()
        assert on_time.reference not in listing.content.decode()
        assert "overdue" in listing.content.decode()
        status = client.get(status_url(late), **EN).content.decode()
        assert "the provider is late with the remaining steps" in status


def test_a_working_day_rule_needs_at_least_one_day(tenant_a: Tenant, alice: User, client: Client) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_deadlineregime_add"),
        {
            "tenant": tenant_a.pk, "regime": "cn", "rule": "termination", "name": "Zero",
            "measure": "terminated", "amount": 0, "unit": "working_days", "calendar": "CN",
        },
        **EN,
    )  # fmt: skip
    assert response.status_code == 200
    assert "A deadline is at least 1" in response.content.decode()
    assert not DeadlineRegime.objects.for_tenant(tenant_a).exists()


def test_a_deadline_is_at_most_a_year_and_an_older_longer_row_never_blocks_filing(
    tenant_a: Tenant, alice: User, client: Client
) -> None:
    client.force_login(alice)
    for unit, amount in (("working_days", 366), ("hours", 24 * 366 + 1), ("minutes", 2_147_483_647)):
        response = client.post(
            reverse("admin:unsubscribe_deadlineregime_add"),
            {
                "tenant": tenant_a.pk, "regime": "contract", "rule": unit, "name": "Long",
                "measure": "terminated", "amount": amount, "unit": unit, "calendar": "",
            },
            **EN,
        )  # fmt: skip
        assert response.status_code == 200, unit
        assert "A deadline is at most a year" in response.content.decode(), unit
    assert not DeadlineRegime.objects.for_tenant(tenant_a).exists()
    # a row written before the limit (or by hand) still files: the rule counts a year at most
    DeadlineRegime.objects.create(
        tenant=tenant_a, regime="contract", rule="huge", name="Huge", measure="terminated",
        unit="hours", amount=2_147_483_647,
    )  # fmt: skip
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
    assert deadlines_of(request)["contract", "huge"].due_at == request.received_at + timedelta(hours=24 * 366)


def test_a_tenants_person_and_staff_read_due_times_on_the_tenants_clock(alice: User, client: Client) -> None:
    tenant = _new_york_tenant()
    tenant.memberships.create(user=alice, role="admin")
    # Monday 21 December 2026, 09:00 in New York is 22:00 in Shanghai
    with time_machine.travel(datetime(2026, 12, 21, 9, 0, tzinfo=NEW_YORK), tick=False):
        request = file(tenant, US_NUMBER)
        page = client.get(status_url(request), **EN).content.decode()
        client.force_login(alice)
        admin_page = client.get(
            reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk]), **EN
        ).content.decode()
        hub = client.get(reverse("optout-hub"), **EN)
    revocation = deadlines_of(request)["us", "revocation"]
    # 10 business days: 22–24, 28–31 December (Christmas Friday off), 4–6 January (New Year's Day off)
    assert revocation.due_at == end_of(date(2027, 1, 6), NEW_YORK)
    assert "done by 2027-01-06 23:59" in page  # in Shanghai it would read 2027-01-07 12:59
    assert (
        "2027年1月6日 23:59 (UTC-05:00)" in admin_page or "Jan. 6, 2027, 11:59 p.m. (UTC-05:00)" in admin_page
    ), admin_page
    # the next request, another page, is back on the platform's zone
    assert hub.status_code == 200
    assert timezone.get_current_timezone_name() == django_settings.TIME_ZONE


def test_recompute_deadlines_after_the_calendar_is_known(tenant_a: Tenant) -> None:
    with time_machine.travel(datetime(FAR, 12, 20, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
    erasure = deadlines_of(request)["cn", "erasure"]
    assert erasure.provisional
    # As a calendar library upgrade would: the years become known (here, by rows loaded directly).
    CalendarDay.objects.create(tenant=tenant_a, calendar="CN", date=date(FAR, 12, 24), working=False)
    CalendarDay.objects.create(tenant=tenant_a, calendar="CN", date=date(FAR + 1, 1, 1), working=False)
    for year in (FAR, FAR + 1):
        CalendarYear.objects.create(tenant=tenant_a, calendar="CN", year=year)
    out = io.StringIO()
    call_command("recompute_deadlines", "--tenant", tenant_a.slug, stdout=out)
    assert "2 deadline(s) changed" in out.getvalue()  # termination (no longer provisional) and erasure
    erasure.refresh_from_db()
    assert not erasure.provisional
    assert erasure.due_at == end_of(date(FAR + 1, 1, 14), SHANGHAI)  # two holidays: two days later


def test_the_compliance_export_carries_the_deadlines(tenant_a: Tenant, alice: User, client: Client) -> None:
    with time_machine.travel(datetime(2026, 2, 13, 10, 0, tzinfo=SHANGHAI), tick=False):
        request = file(tenant_a)
        client.force_login(alice)
        response = client.get(reverse("admin:unsubscribe_export") + "?days=7")
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    (row,) = rows
    assert row["reference"] == request.reference
    assert "cn/termination:2026-02-14T23:59:59+08:00:" in row["deadlines"]
    assert "cn/erasure:2026-03-12T23:59:59+08:00:" in row["deadlines"]


def test_an_erasure_delay_as_long_as_the_sla_is_warned_about(tenant_a: Tenant) -> None:
    with time_machine.travel(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        assert not any("删除延迟" in w for w in tenant_warnings(tenant_a))
        tenant_a.erasure_delay_hours = 72
        tenant_a.save()
        assert any("删除延迟（72 小时）" in w and "SLA（48 小时）" in w for w in tenant_warnings(tenant_a))
        with translation.override("en"):
            assert any("erasure delay (72 h)" in w for w in tenant_warnings(tenant_a))


@settings(max_examples=100, deadline=None)
@given(
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2042, 12, 31)),
    days=st.integers(min_value=1, max_value=30),
    overrides=st.dictionaries(
        st.dates(min_value=date(2025, 1, 1), max_value=date(2043, 3, 31)), st.booleans(), max_size=40
    ),
)
def test_staff_days_and_unknown_years_still_land_on_a_working_day(
    start: date, days: int, overrides: dict[date, bool]
) -> None:
    book = DayBook("CN", overrides)
    due, provisional = add_working_days(start=start, days=days, book=book)
    assert due > start
    assert book.is_working(due)[0]
    counted = sum(book.is_working(start + timedelta(days=i))[0] for i in range(1, (due - start).days + 1))
    assert counted == days
    # provisional exactly when some day counted over lies in a year neither the library nor staff know
    counted_days = [start + timedelta(days=i) for i in range(1, (due - start).days + 1)]
    assert provisional == any(not book.known(day.year) for day in counted_days)
