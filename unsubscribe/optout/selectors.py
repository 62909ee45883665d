"""Reads for the public pages: the ways a tenant offers, a request's timeline, the hub's providers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.deadlines.selectors import person_label, request_deadlines
from unsubscribe.models import (
    SCOPE_ALL,
    Measure,
    RequestDeadline,
    Service,
    Step,
    SubscriberProfile,
    Subscription,
    Suppression,
    UnsubscribeRequest,
)
from unsubscribe.pipeline import datasources
from unsubscribe.pipeline.selectors import step_public_label
from unsubscribe.sendlogs.selectors import service_send_summary, tenants_sending_to

from .models import Alternative, PhoneVerification


def active_services(*, tenant: Tenant) -> list[Service]:
    return list(Service.objects.for_tenant(tenant).filter(is_active=True).order_by("name"))


def verification_for_page(*, tenant: Tenant, verification_id: object) -> PhoneVerification | None:
    """The person's pending code on this tenant's page (ids come from their session)."""
    if not isinstance(verification_id, int):
        return None
    rows = PhoneVerification.objects.for_tenant(tenant).filter(purpose=PhoneVerification.Purpose.WEB)
    return rows.filter(pk=verification_id).first()


def verification_for_hub(*, verification_id: object) -> PhoneVerification | None:
    """The person's pending hub code, whichever tenant's gateway sent it (the hub is cross-tenant)."""
    if not isinstance(verification_id, int):
        return None
    rows = PhoneVerification.objects.unscoped(reason="the hub's code may be any tenant's row").filter(
        purpose=PhoneVerification.Purpose.HUB
    )
    return rows.select_related("tenant").filter(pk=verification_id).first()


# --- the status page -------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    status: str  # "done", "pending", "failed"
    title: str
    when: datetime | None = None
    detail: str = ""
    testid: str = ""


def _fmt(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def request_timeline(request: UnsubscribeRequest) -> list[TimelineEntry]:
    """Each step a person can follow, in order, with what is still pending and why."""
    steps = list(request.steps.select_related("target").order_by("id"))
    phase1 = [s for s in steps if s.kind != Step.Kind.ERASE]
    phase1_done = all(s.status == Step.Status.SUCCEEDED for s in phase1)
    scope = (
        _("all marketing")
        if request.scope_all
        else ", ".join(s.name for s in request.services.all().order_by("name"))
    )
    entries = [
        TimelineEntry(
            "done",
            _("Marketing stopped: %(scope)s") % {"scope": scope},
            request.suppressed_at or request.received_at,
            _("Nothing more is sent to this number from this moment."),
            "step-suppressed",
        )
    ]
    order = {Step.Kind.TERMINATE: 0, Step.Kind.CONFIRM: 1, Step.Kind.ERASE: 2}
    for step in sorted(steps, key=lambda s: (order.get(Step.Kind(s.kind), 3), s.pk)):
        entries.append(_step_entry(request, step, phase1_done))
    if request.completed_at:
        still_subscribed = (
            Subscription.objects.for_tenant(request.tenant_id)
            .filter(phone_hash=request.phone_hash, status=Subscription.Status.ACTIVE)
            .exists()
        )
        kept = (
            _(
                "The number is kept only for the services you still receive; for what you stopped, only a keyed hash remains, so that nothing is sent to it again."
            )
            if still_subscribed
            else _("Only a keyed hash of the number is kept, so that nothing is sent to it again.")
        )
        entries.append(TimelineEntry("done", _("Completed"), request.completed_at, kept, "step-completed"))
    return entries


def _step_entry(request: UnsubscribeRequest, step: Step, phase1_done: bool) -> TimelineEntry:
    # Public labels only (a source's, or the one the tenant set on its target): the
    # staff name of a target never reaches a page.
    where = step_public_label(step)
    titles: dict[str, str] = {
        Step.Kind.TERMINATE: _("Services ended: %(target)s"),
        Step.Kind.CONFIRM: _("Confirmation sent"),
        Step.Kind.ERASE: _("Personal data cleaned: %(target)s"),
    }
    title = titles[step.kind] % {"target": where}
    testid = f"step-{step.kind}"
    if step.kind == Step.Kind.ERASE and step.status == Step.Status.SUCCEEDED:
        if datasources.receipt_kept_data(step.receipt_lines):
            title = _("Kept for the services you still receive: %(target)s") % {"target": where}
        return TimelineEntry("done", title, step.finished_at, _erased_detail(request, step), testid)
    if step.status == Step.Status.SUCCEEDED:
        detail = datasources.receipt_text(step.receipt_lines) if step.receipt_lines else ""
        return TimelineEntry("done", title, step.finished_at, detail, testid)
    if step.status == Step.Status.FAILED:
        detail = _(
            "Could not be completed automatically. The provider has been alerted and must finish it "
            "by %(due)s."
        ) % {"due": _fmt(request.sla_due_at)}
        return TimelineEntry("failed", title, None, detail, testid)
    if step.status == Step.Status.RETRYING:
        detail = _(
            "The provider's system did not answer; it is tried again automatically (attempt %(n)s)."
        ) % {"n": step.attempts}
        return TimelineEntry("pending", title, None, detail, testid)
    if step.status == Step.Status.RUNNING:
        return TimelineEntry("pending", title, None, _("In progress."), testid)
    if step.kind == Step.Kind.ERASE:
        planned = _planned_erasure(request, step)
        if not phase1_done:
            detail = _("Waits until the services are ended and the confirmation is sent.")
        elif request.erasure_due_at and request.erasure_due_at > timezone.now():
            detail = _("Scheduled for %(when)s, as the provider's terms say.") % {
                "when": _fmt(request.erasure_due_at)
            }
        else:
            detail = _("Queued; it runs within minutes.")
        return TimelineEntry("pending", title, None, f"{planned} {detail}".strip(), testid)
    return TimelineEntry("pending", title, None, _("Queued; it runs within minutes."), testid)


def _erased_detail(request: UnsubscribeRequest, step: Step) -> str:
    """What was erased, from the receipt (counts and words, never the number)."""
    if step.receipt_lines:
        return datasources.receipt_text(step.receipt_lines)
    return _planned_erasure(request, step)


def _planned_erasure(request: UnsubscribeRequest, step: Step) -> str:
    """What this step erases for the request's scope, as its data source says."""
    if not step.source:
        return ""
    try:
        source = datasources.get_source(step.source)
    except KeyError:
        return ""
    return str(source.erases_for(scope_all=request.scope_all))


@dataclass(frozen=True)
class Promise:
    """What the provider must have done by when (the strictest deadline per measure)."""

    title: str
    due_at: datetime
    met_at: datetime | None
    text: str
    testid: str


def request_promises(request: UnsubscribeRequest) -> list[Promise]:
    """ "Services ended: done by …" for the person, one line per thing they wait for: the
    earliest due time among the regimes that apply (the strictest promise)."""
    strictest: dict[str, RequestDeadline] = {}
    for deadline in request_deadlines(request):
        if deadline.measure == Measure.SUPPRESSED:
            continue  # shown above: marketing stops at once
        known = strictest.get(deadline.measure)
        if known is None or deadline.due_at < known.due_at:
            strictest[deadline.measure] = deadline
    promises = []
    for measure in (Measure.CONFIRMED, Measure.TERMINATED, Measure.ERASED):
        first = strictest.get(measure)
        if first is None:
            continue
        deadline = first
        if deadline.met_at is not None:
            text = _("done %(when)s") % {"when": _fmt(deadline.met_at)}
        else:
            text = _("done by %(when)s") % {"when": _fmt(deadline.due_at)}
        promises.append(
            Promise(person_label(measure), deadline.due_at, deadline.met_at, text, f"deadline-{measure}")
        )
    return promises


def state_summary(request: UnsubscribeRequest) -> tuple[str, str]:
    """(css class, text) for the request's overall state, in words a person understands."""
    State = UnsubscribeRequest.State
    if request.state == State.COMPLETED:
        return "ok", _("Done: every step is finished.")
    if request.state == State.NEEDS_ATTENTION:
        if not request.steps.filter(status=Step.Status.FAILED).exists():  # late, not failed
            return "bad", _(
                "Marketing is stopped; the provider is late with the remaining steps and has been alerted."
            )
        return "bad", _("Marketing is stopped; a step needs the provider's attention (see below).")
    return "pending", _("Marketing is stopped; the remaining steps are under way.")


# --- the hub ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    tenant: Tenant
    services: list[str]
    already_stopped: bool
    codes: tuple[str, ...] = ()  # the services subscribed, by code (same order as `services`)


def _hub_digests(e164: str) -> dict[int, str]:
    """The number's digest at every active tenant: each tenant stores its own (the platform
    digest is computed once, then one tenant digest per tenant)."""
    tenant_ids = Tenant.objects.filter(is_active=True).values_list("pk", flat=True)
    return phones.tenant_phone_hashes(e164, tenant_ids)


def _theirs(digests: dict[int, str], rows: Iterable[tuple[int, str]]) -> list[int]:
    """The tenants whose row holds that tenant's own digest of the number."""
    return [tenant_id for tenant_id, digest in rows if digests.get(tenant_id) == digest]


def hub_verification_owner(*, e164: str) -> Tenant | None:
    """The tenant that owns the hub's verification row (the first one that holds the number, or
    else that sent to it lately), so that its erasure of the number clears the row. The code itself goes out through the
    platform's sender, signed by the platform (platform.py), not through this tenant."""
    digests = _hub_digests(e164)
    rows = (
        Subscription.objects.unscoped(reason="the hub is cross-tenant: one number, every provider")
        .filter(phone_hash__in=list(digests.values()), tenant__is_active=True)
        .values_list("tenant_id", "phone_hash")
    )
    owners = _theirs(digests, rows)
    if not owners:  # a provider that only reported sending to it also markets to it
        since = timezone.now() - timedelta(days=SUGGESTION_DAYS)
        owners = [t for t, messages in tenants_sending_to(digests=digests, since=since).items() if messages]
    return Tenant.objects.filter(pk=min(owners), is_active=True).first() if owners else None


def hub_providers(*, e164: str) -> list[Provider]:
    """Every active tenant with an active subscription or a marketing profile for the number,
    or that reported sending to it in the last SUGGESTION_DAYS days (send logs).
    Cross-tenant by design (the hub), hence unscoped(...)."""
    digests = _hub_digests(e164)
    wanted = list(digests.values())
    subscriptions = (
        Subscription.objects.unscoped(reason="the hub is cross-tenant: one number, every provider")
        .filter(phone_hash__in=wanted, status=Subscription.Status.ACTIVE, tenant__is_active=True)
        .select_related("service")
        .order_by("service__name")
    )
    by_tenant: dict[int, dict[str, str]] = {}
    for subscription in subscriptions:
        if digests.get(subscription.tenant_id) == subscription.phone_hash:
            by_tenant.setdefault(subscription.tenant_id, {})[subscription.service.code] = (
                subscription.service.name
            )
    profile_tenants = (
        SubscriberProfile.objects.unscoped(reason="the hub is cross-tenant: one number, every provider")
        .filter(phone_hash__in=wanted, tenant__is_active=True)
        .filter(Q(anonymised_at__isnull=True) & ~Q(phone=""))
        .values_list("tenant_id", "phone_hash")
    )
    for tenant_id in _theirs(digests, profile_tenants):
        by_tenant.setdefault(tenant_id, {})
    since = timezone.now() - timedelta(days=SUGGESTION_DAYS)
    for tenant_id, messages in tenants_sending_to(digests=digests, since=since).items():
        if messages > 0:
            by_tenant.setdefault(tenant_id, {})
    stopped = set(
        _theirs(
            digests,
            Suppression.objects.for_tenants(list(by_tenant))
            .filter(phone_hash__in=[digests[t] for t in by_tenant], scope=SCOPE_ALL, ends_at__isnull=True)
            .values_list("tenant_id", "phone_hash"),
        )
    )
    tenants = Tenant.objects.filter(pk__in=list(by_tenant), is_active=True).order_by("name")
    return [
        Provider(t, list(by_tenant[t.pk].values()), t.pk in stopped, tuple(by_tenant[t.pk])) for t in tenants
    ]


def hub_digests(*, e164: str) -> dict[int, str]:
    """The number's digest at every active tenant (for the hub's per-provider reads)."""
    return _hub_digests(e164)


def hub_past_requests(*, e164: str, limit: int = 100) -> list[UnsubscribeRequest]:
    """Every request for the number at every tenant, newest first: the person sees them all
    after one code, no reference needed. Each tenant's rows hold that tenant's own digest."""
    digests = _hub_digests(e164)
    rows = (
        UnsubscribeRequest.objects.unscoped(reason="the hub is cross-tenant: one number, every provider")
        .filter(phone_hash__in=list(digests.values()))
        .select_related("tenant")
        .order_by("-received_at")[: limit * 2]
    )
    return [r for r in rows if digests.get(r.tenant_id) == r.phone_hash][:limit]


# --- personalised suggestions (issue 17) ---------------------------------------------------------

SUGGESTION_DAYS = 30


@dataclass(frozen=True)
class Suggestion:
    """One service of a provider, as the person experienced it lately."""

    code: str
    name: str
    messages: int  # in the last SUGGESTION_DAYS days, from the provider's send logs
    last_sent_at: datetime | None
    never_engaged: bool  # messages came, and the person never answered or opened one
    stoppable: bool  # an active service of the tenant that is not stopped for the number yet
    stopped: bool
    paused_until: datetime | None


def service_suggestions(
    *, tenant: Tenant, phone_hash: str, subscribed: Iterable[str] = ()
) -> list[Suggestion]:
    """Per service: the messages of the last 30 days and the last one's time, and whether the
    person ever engaged; ranked: never engaged first, then most messages. Services the number
    is subscribed to but got nothing from come last."""
    since = timezone.now() - timedelta(days=SUGGESTION_DAYS)
    summaries = service_send_summary(tenant=tenant, phone_hash=phone_hash, since=since)
    services = {s.code: s for s in Service.objects.for_tenant(tenant).filter(is_active=True)}
    entries = dict(
        Suppression.objects.for_tenant(tenant).filter(phone_hash=phone_hash).values_list("scope", "ends_at")
    )
    everything_stopped = SCOPE_ALL in entries and entries[SCOPE_ALL] is None

    def build(code: str, messages: int, last: datetime | None, engaged: bool) -> Suggestion:
        service = services.get(code)
        stopped = everything_stopped or (code in entries and entries[code] is None)
        paused = entries.get(code) or entries.get(SCOPE_ALL)
        return Suggestion(
            code=code or "other",
            name=service.name if service is not None else (code or _("Other messages")),
            messages=messages,
            last_sent_at=last,
            never_engaged=messages > 0 and not engaged,
            stoppable=service is not None and not stopped,
            stopped=stopped,
            paused_until=None if stopped else paused,
        )

    found = [
        build(s.service_code, s.messages, s.last_sent_at, s.last_engaged_at is not None) for s in summaries
    ]
    seen = {s.code for s in found}
    found.sort(key=lambda s: (not s.never_engaged, -s.messages, s.name))
    rest = [build(code, 0, None, False) for code in subscribed if code not in seen]
    return found + sorted(rest, key=lambda s: s.name)


def subscribed_codes(*, tenant: Tenant, phone_hash: str) -> list[str]:
    """The services the number is actively subscribed to at the tenant."""
    return list(
        Subscription.objects.for_tenant(tenant)
        .filter(phone_hash=phone_hash, status=Subscription.Status.ACTIVE)
        .values_list("service__code", flat=True)
    )


def alternatives_offered(*, tenant: Tenant) -> list[Alternative]:
    order = {kind: i for i, kind in enumerate(Alternative.Kind.values)}
    rows = Alternative.objects.for_tenant(tenant).filter(is_active=True)
    return sorted(rows, key=lambda a: order.get(a.kind, 9))


def hub_terms_facts(*, provider: Provider) -> list[tuple[str, str]]:
    """What the hub's "stop all" means at this provider, by its own policy, before the
    person confirms: the hub always stops all of its marketing."""
    tenant = provider.tenant
    if provider.services:
        stops = _("All marketing from %(tenant)s, including: %(services)s.") % {
            "tenant": tenant.name,
            "services": ", ".join(provider.services),
        }
    else:
        stops = _("All marketing from %(tenant)s.") % {"tenant": tenant.name}
    # "From when" (at once) is the same everywhere and said once under the list.
    _what, _from_when, *rest = terms_facts(tenant=tenant)
    return [(_("What stops"), stops), *rest]


# --- terms, in plain words ---------------------------------------------------------------------


def terms_facts(*, tenant: Tenant) -> list[tuple[str, str]]:
    """(question, answer) pairs from the tenant's policy: what stops, from when,
    whether it can be undone, what data is deleted and when, how long it takes."""
    anonymise = tenant.erasure_mode == Tenant.ErasureMode.ANONYMISE
    hours = tenant.erasure_delay_hours
    if anonymise and hours:
        data = _(
            "Your personal data used for marketing is anonymised %(hours)s hours after the confirmation is sent."
        ) % {"hours": hours}
    elif anonymise:
        data = _("Your personal data used for marketing is anonymised right after the confirmation is sent.")
    elif hours:
        data = _(
            "Your personal data used for marketing is deleted %(hours)s hours after the confirmation is sent."
        ) % {"hours": hours}
    else:
        data = _("Your personal data used for marketing is deleted right after the confirmation is sent.")
    undo = (
        _("Yes. You can subscribe again later if you wish.")
        if tenant.allow_resubscribe
        else _("No. This opt-out is final and cannot be undone.")
    )
    return [
        (
            _("What stops"),
            _("The marketing you choose: SMS, app pushes and personalised offers tied to this number."),
        ),
        (_("From when"), _("At once: nothing more is sent from the moment you confirm.")),
        (_("Can it be undone?"), undo),
        (_("Your data"), data),
        (
            _("How long it takes"),
            _("Every step is finished within %(hours)s hours; a confirmation SMS is sent.")
            % {"hours": tenant.sla_hours},
        ),
    ]
