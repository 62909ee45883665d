"""Registry of places that hold personal data keyed by a phone number.

Two kinds:
- *internal sources* a tenant can pick as termination or erasure targets
  (`Target.internal_source`): subscriptions, the demo subscriber profile, …
- *scrubbers* that always run when a request's data is erased, for copies the
  platform itself keeps (messages sent, inbound SMS, one-time codes). Other apps
  register theirs in their AppConfig.ready().
Each function receives the tenant, the request, the raw number and its hash and
returns a short receipt text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

    from .models import UnsubscribeRequest

SourceFunc = Callable[["UnsubscribeRequest"], str]


@dataclass(frozen=True)
class InternalSource:
    key: str
    label: _StrOrPromise
    terminate: SourceFunc | None
    erase: SourceFunc | None


_sources: dict[str, InternalSource] = {}
_scrubbers: dict[str, SourceFunc] = {}


def register_source(source: InternalSource) -> None:
    _sources[source.key] = source


def register_scrubber(key: str, func: SourceFunc) -> None:
    _scrubbers[key] = func


def get_source(key: str) -> InternalSource:
    return _sources[key]


def source_choices(purpose: str) -> list[tuple[str, _StrOrPromise]]:
    attr = "terminate" if purpose == "terminate" else "erase"
    return [(s.key, s.label) for s in _sources.values() if getattr(s, attr) is not None]


def all_source_choices() -> list[tuple[str, _StrOrPromise]]:
    return [(s.key, s.label) for s in _sources.values()]


def scrubbers() -> dict[str, SourceFunc]:
    return dict(_scrubbers)


# --- built-in sources -----------------------------------------------------------


def _subscriptions_in_scope(request: UnsubscribeRequest):  # type: ignore[no-untyped-def]
    from .models import Subscription

    qs = Subscription.objects.for_tenant(request.tenant_id).filter(phone_hash=request.phone_hash)
    if not request.scope_all:
        qs = qs.filter(service__in=request.services.all())
    return qs


def _subscriptions_terminate(request: UnsubscribeRequest) -> str:
    from .models import Subscription

    ended = _subscriptions_in_scope(request).filter(status=Subscription.Status.ACTIVE)
    count = 0
    for subscription in ended:
        subscription.status = Subscription.Status.ENDED
        subscription.ended_at = timezone.now()
        subscription.save(update_fields=["status", "ended_at", "updated_at"])
        count += 1
    return f"ended {count} subscription(s)"


def _subscriptions_erase(request: UnsubscribeRequest) -> str:
    # The ended subscription row stays as the record that consent was withdrawn,
    # but without the number.
    rows = list(_subscriptions_in_scope(request).exclude(phone=""))
    for subscription in rows:
        subscription.phone = ""
        subscription.consent_source = ""
        subscription.save(update_fields=["phone", "consent_source", "updated_at"])
    return f"removed the number from {len(rows)} subscription(s)"


def _profile_erase(request: UnsubscribeRequest) -> str:
    from tenants.models import Tenant

    from .models import SubscriberProfile

    profiles = SubscriberProfile.objects.for_tenant(request.tenant_id).filter(phone_hash=request.phone_hash)
    if request.tenant.erasure_mode == Tenant.ErasureMode.ANONYMISE:
        count = 0
        for profile in profiles:
            profile.phone = ""
            profile.display_name = ""
            profile.interests = ""
            profile.city = ""
            profile.anonymised_at = timezone.now()
            profile.save()
            count += 1
        return f"anonymised {count} profile(s)"
    deleted, _detail = profiles.delete()
    return f"deleted {deleted} profile(s)"


register_source(
    InternalSource(
        key="subscriptions",
        label=_("Subscriptions (Lanzuan)"),
        terminate=_subscriptions_terminate,
        erase=_subscriptions_erase,
    )
)
register_source(
    InternalSource(
        key="subscriber_profile",
        label=_("Subscriber profiles (Lanzuan demo)"),
        terminate=None,
        erase=_profile_erase,
    )
)
