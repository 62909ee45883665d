"""Registry of Lanzuan's own places that hold personal data keyed by a phone number.

Every registered source runs for every request of every tenant, as a built-in
pipeline step with a receipt (no configuration: a tenant made yesterday ends and
erases its records like any other). Targets are for the provider's *other* systems.

A source may end services (`terminate`) and/or erase data (`erase`); each follows
the request's scope and says in words what it erases for a service-only opt-out and
for all marketing (`erases_for`). Other apps register the copies of the number they
keep for their own work (messages sent, inbound SMS, one-time codes, voice calls) in
their AppConfig.ready(), the same way: `register_source(DataSource.platform_copy(...))`.

This is the one erasure mechanism: every eraser is a source's function, run as a
pipeline step, and returns a `Receipt`, which becomes the step's receipt. Receipts
hold counts and words, never a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from tenants.models import Tenant
from unsubscribe.consents.services import consents_minimise
from unsubscribe.models import SubscriberProfile, Subscription, UnsubscribeRequest

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


# --- receipts ---------------------------------------------------------------------------

# What a receipt line may say, by key; "%(n)d" is the count. Stored as keys and counts
# (Step.receipt_lines) so staff and the person each read them in their own language.
RECEIPT_TEXTS: dict[str, Any] = {
    "subscriptions_ended": ngettext_lazy("Ended %(n)d subscription.", "Ended %(n)d subscriptions.", "n"),
    "subscriptions_resubscribed_kept": ngettext_lazy(
        "Left %(n)d subscription active: it was renewed after the request.",
        "Left %(n)d subscriptions active: they were renewed after the request.",
        "n",
    ),
    "subscriptions_number_removed": ngettext_lazy(
        "Removed the number from %(n)d ended subscription.",
        "Removed the number from %(n)d ended subscriptions.",
        "n",
    ),
    "profile_deleted": ngettext_lazy(
        "Deleted the marketing profile.", "Deleted %(n)d marketing profiles.", "n"
    ),
    "profile_anonymised": ngettext_lazy(
        "Anonymised the marketing profile.", "Anonymised %(n)d marketing profiles.", "n"
    ),
    "profile_kept": ngettext_lazy(
        "Kept the marketing profile: %(n)d other subscription is still active.",
        "Kept the marketing profile: %(n)d other subscriptions are still active.",
        "n",
    ),
    "copies_cleared": ngettext_lazy(
        "Removed the number from %(n)d record.", "Removed the number from %(n)d records.", "n"
    ),
    "consents_minimised": ngettext_lazy(
        "Kept %(n)d consent record minimised: the evidence that could identify the person was removed.",
        "Kept %(n)d consent records minimised: the evidence that could identify the person was removed.",
        "n",
    ),
    "nothing_held": ngettext_lazy("No data held for this number.", "No data held for this number.", "n"),
}


@dataclass(frozen=True)
class Receipt:
    """What one step did: (key, count) lines from RECEIPT_TEXTS, and an optional note
    that is not translated (a remote system's answer)."""

    lines: tuple[tuple[str, int], ...] = ()
    note: str = ""

    @classmethod
    def of(cls, *lines: tuple[str, int], note: str = "") -> Receipt:
        kept = tuple(line for line in lines if line[1])
        if not kept and not note:
            kept = (("nothing_held", 1),)
        return cls(kept, note)

    def stored_lines(self) -> list[list[Any]]:
        return [[key, count] for key, count in self.lines]


# Lines that say data was kept on purpose (it still serves what the person receives).
KEPT_LINES = frozenset({"profile_kept", "subscriptions_resubscribed_kept"})


def receipt_kept_data(lines: Sequence[Sequence[Any]]) -> bool:
    """True when a receipt kept data and erased none."""
    keys = {key for key, _count in lines}
    return bool(keys) and keys <= KEPT_LINES


def receipt_text(lines: Sequence[Sequence[Any]], note: str = "", *, language: str | None = None) -> str:
    """The receipt in words, in `language` (default: the active one)."""
    with translation.override(language or translation.get_language()):
        parts = [str(RECEIPT_TEXTS[key] % {"n": count}) for key, count in lines if key in RECEIPT_TEXTS]
    if note:
        parts.append(note)
    return " ".join(parts)


SourceFunc = Callable[["UnsubscribeRequest"], Receipt]


@dataclass(frozen=True)
class DataSource:
    key: str
    label: _StrOrPromise  # for staff
    public_label: _StrOrPromise  # what a person reads: never an internal name
    terminate: SourceFunc | None = None
    erase: SourceFunc | None = None
    erases_for_services: _StrOrPromise = ""  # what a service-only opt-out erases here
    erases_for_all: _StrOrPromise = ""  # what an all-marketing opt-out erases here
    order: int = field(default=100, compare=False)

    def erases_for(self, *, scope_all: bool) -> _StrOrPromise:
        return self.erases_for_all if scope_all else self.erases_for_services

    @classmethod
    def platform_copy(
        cls,
        key: str,
        clear: Callable[[UnsubscribeRequest], int],
        *,
        label: _StrOrPromise,
        public_label: _StrOrPromise,
    ) -> DataSource:
        """A copy of the number the platform keeps for its own work: cleared whatever the
        scope (it is not needed for marketing), after the built-in sources. `clear`
        returns how many records it cleared; the receipt says so in each reader's language."""

        def erase(request: UnsubscribeRequest) -> Receipt:
            return Receipt.of(("copies_cleared", clear(request)))

        return cls(
            key=key,
            label=label,
            public_label=public_label,
            erase=erase,
            erases_for_services=_("The number in these records."),
            erases_for_all=_("The number in these records."),
            order=200,
        )


_sources: dict[str, DataSource] = {}


def register_source(source: DataSource) -> None:
    _sources[source.key] = source


def get_source(key: str) -> DataSource:
    return _sources[key]


def sources(purpose: str | None = None) -> list[DataSource]:
    """Registered sources in the order their steps run (and show); only those able to
    `purpose` ("terminate" or "erase") when given."""
    found = sorted(_sources.values(), key=lambda s: s.order)
    if purpose is None:
        return found
    return [s for s in found if getattr(s, purpose) is not None]


# --- built-in sources -------------------------------------------------------------------


def subscriptions_in_scope(request: UnsubscribeRequest) -> QuerySet[Subscription]:
    qs = Subscription.objects.for_tenant(request.tenant_id).filter(phone_hash=request.phone_hash)
    if not request.scope_all:
        qs = qs.filter(service__in=request.services.all())
    return qs


def _renewed_after(request: UnsubscribeRequest) -> Q:
    # Re-subscribed (or newly consented) after the request was received: that consent
    # is newer than the opt-out, so a pipeline still running must not end it.
    return Q(consent_at__gt=request.received_at)


def _subscriptions_terminate(request: UnsubscribeRequest) -> Receipt:
    active = subscriptions_in_scope(request).filter(status=Subscription.Status.ACTIVE)
    renewed = active.filter(_renewed_after(request)).count()
    count = 0
    for subscription in active.exclude(_renewed_after(request)):
        subscription.status = Subscription.Status.ENDED
        subscription.ended_at = timezone.now()
        subscription.save(update_fields=["status", "ended_at", "updated_at"])
        count += 1
    return Receipt.of(("subscriptions_ended", count), ("subscriptions_resubscribed_kept", renewed))


def _subscriptions_erase(request: UnsubscribeRequest) -> Receipt:
    # The ended subscription row stays as the record that consent was withdrawn,
    # but without the number. An active one (renewed meanwhile) keeps it: it is in use.
    rows = list(subscriptions_in_scope(request).exclude(status=Subscription.Status.ACTIVE).exclude(phone=""))
    for subscription in rows:
        subscription.phone = ""
        subscription.consent_source = ""
        subscription.save(update_fields=["phone", "consent_source", "updated_at"])
    return Receipt.of(("subscriptions_number_removed", len(rows)))


def _profile_erase(request: UnsubscribeRequest) -> Receipt:
    """The profile serves every service: it goes with an all-marketing opt-out, or when
    the last active subscription of the number at this tenant has ended."""
    profiles = SubscriberProfile.objects.for_tenant(request.tenant_id).filter(phone_hash=request.phone_hash)
    if not profiles.exists():
        return Receipt.of()
    if not request.scope_all:
        still_active = (
            Subscription.objects.for_tenant(request.tenant_id)
            .filter(phone_hash=request.phone_hash, status=Subscription.Status.ACTIVE)
            .count()
        )
        if still_active:
            return Receipt.of(("profile_kept", still_active))
    if request.tenant.erasure_mode == Tenant.ErasureMode.ANONYMISE:
        count = 0
        for profile in profiles.exclude(phone="", anonymised_at__isnull=False):
            profile.phone = ""
            profile.display_name = ""
            profile.interests = ""
            profile.city = ""
            profile.anonymised_at = timezone.now()
            profile.save()
            count += 1
        return Receipt.of(("profile_anonymised", count))
    deleted, _detail = profiles.delete()
    return Receipt.of(("profile_deleted", deleted))


register_source(
    DataSource(
        key="subscriptions",
        label=_("Subscriptions (Lanzuan)"),
        public_label=_("your subscriptions"),
        terminate=_subscriptions_terminate,
        erase=_subscriptions_erase,
        erases_for_services=_("The number in the subscriptions you stopped."),
        erases_for_all=_("The number in all your subscriptions."),
        order=10,
    )
)
register_source(
    DataSource(
        key="subscriber_profile",
        label=_("Subscriber profiles (Lanzuan)"),
        public_label=_("your marketing profile"),
        erase=_profile_erase,
        erases_for_services=_(
            "Your marketing profile (name, interests, city), once no other subscription is active."
        ),
        erases_for_all=_("Your marketing profile (name, interests, city)."),
        order=20,
    )
)


def _consents_erase(request: UnsubscribeRequest) -> Receipt:
    """The consent evidence stays, minimised (digest, masked number, times, wording hash,
    source), for the tenant's consent retention; the rest goes."""
    return Receipt.of(("consents_minimised", consents_minimise(request=request)))


register_source(
    DataSource(
        key="consents",
        label=_("Consent records (Lanzuan)"),
        public_label=_("the record of your consent"),
        erase=_consents_erase,
        erases_for_services=_(
            "The evidence of your consent to the services you stopped that could identify you (order "
            "number, IP address); a minimised record that you consented and withdrew stays for the "
            "retention period."
        ),
        erases_for_all=_(
            "The evidence of your consents that could identify you (order number, IP address); a "
            "minimised record that you consented and withdrew stays for the retention period."
        ),
        order=30,
    )
)
