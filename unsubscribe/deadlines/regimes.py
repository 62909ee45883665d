"""The regimes as data: each rule with its source, what it measures and when it applies.

A regime is a body of rules (a country's law, the mailbox providers' requirements, the
tenant's own SLA); a rule is one due time within it. Which rules apply to a request
follows from the region of its number (phonenumbers, from the E.164) and its channel.
A tenant changes a built-in rule by adding a DeadlineRegime row with the same regime and
rule (the Chinese working days are the tenant's to set), and adds its own rules the same way.

What "met" means, per measure (Measure in unsubscribe/models.py):
- suppressed: the number is on the suppression list (`suppressed_at`, at filing);
- terminated: every termination step is done (`confirming_at`, State.SERVICES_ENDED);
- confirmed: the confirmation step succeeded (the message was handed to the gateway);
- erased: the request completed, the raw number and the data in scope erased (`completed_at`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import phonenumbers
from django.utils.translation import gettext_lazy as _

from unsubscribe.models import DeadlineRegime, DeadlineUnit, Measure, RequestChannel, WorkCalendar

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

TENANT_SLA = ("tenant", "sla")


@dataclass(frozen=True)
class Rule:
    regime: str
    rule: str
    name: str
    measure: str  # a Measure value
    unit: str  # a DeadlineUnit value
    amount: int
    calendar: str = ""  # a WorkCalendar value; "" is Monday to Friday
    countries: frozenset[str] = frozenset()  # regions of the number; empty: any
    channels: frozenset[str] = frozenset()  # request channels; empty: any
    source: _StrOrPromise = ""  # the built-in ones translated; a tenant's as written

    @property
    def key(self) -> tuple[str, str]:
        return (self.regime, self.rule)

    def applies(self, *, region: str, channel: str) -> bool:
        return (not self.countries or region in self.countries) and (
            not self.channels or channel in self.channels
        )


BUILT_IN: tuple[Rule, ...] = (
    Rule(
        "cn",
        "termination",
        "China: stop marketing and end the services",
        Measure.TERMINATED,
        DeadlineUnit.WORKING_DAYS,
        1,
        calendar=WorkCalendar.CN,
        countries=frozenset({"CN"}),
        source=_(
            "PIPL art. 15 (consent may be withdrawn; 《个人信息保护法》第十五条) and MIIT "
            "《通信短信息服务管理规定》 (Order No. 31, 2015) art. 18 (stop sending commercial SMS once the "
            "user refuses). Neither sets a number of days: 1 working day is Lanzuan's strict default, "
            "the tenant's to set."
        ),
    ),
    Rule(
        "cn",
        "erasure",
        "China: erase the personal data",
        Measure.ERASED,
        DeadlineUnit.WORKING_DAYS,
        15,
        calendar=WorkCalendar.CN,
        countries=frozenset({"CN"}),
        source=_(
            "PIPL art. 47 (delete once consent is withdrawn; 第四十七条) and art. 50 (handle requests "
            "promptly); 15 working days as the CAC's 《App违法违规收集使用个人信息行为认定方法》 (2019) "
            "sets for deletion and cancellation requests. The tenant's to set."
        ),
    ),
    Rule(
        "us",
        "revocation",
        "US: honour the revocation",
        Measure.TERMINATED,
        DeadlineUnit.WORKING_DAYS,
        10,
        calendar=WorkCalendar.US,
        countries=frozenset({"US"}),
        source=_(
            "FCC Report and Order FCC 24-24 (TCPA consent revocation, CG Docket No. 02-278, 2024), "
            "47 CFR 64.1200(a)(10): within a reasonable time not exceeding 10 business days."
        ),
    ),
    Rule(
        "us",
        "confirmation",
        "US: the one confirmation text",
        Measure.CONFIRMED,
        DeadlineUnit.MINUTES,
        5,
        countries=frozenset({"US"}),
        source=_(
            "FCC 24-24, 47 CFR 64.1200(a)(12): one text confirming the opt-out, sent within 5 minutes, "
            "with no marketing in it."
        ),
    ),
    Rule(
        "mailbox",
        "one_click",
        "Mailbox providers: one-click unsubscribe honoured",
        Measure.TERMINATED,
        DeadlineUnit.HOURS,
        48,
        channels=frozenset({RequestChannel.EMAIL}),
        source=_(
            "Gmail and Yahoo bulk sender requirements (February 2024) for RFC 8058 one-click "
            "unsubscribe: honoured within 2 days (48 hours)."
        ),
    ),
)

SLA_SOURCE = _("The tenant's own SLA (Tenant.sla_hours).")


def number_region(e164: str) -> str:
    """The region of an E.164 number (CN, US, …), or "" when phonenumbers cannot tell."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or ""
    except phonenumbers.NumberParseException:
        return ""


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.replace("，", ",").split(",") if part.strip())


def rule_from_row(row: DeadlineRegime) -> Rule:
    return Rule(
        row.regime,
        row.rule,
        row.name,
        row.measure,
        row.unit,
        row.amount,
        calendar=row.calendar,
        countries=frozenset(c.upper() for c in _split(row.countries)),
        channels=frozenset(c.lower() for c in _split(row.channels)),
        source=row.source,
    )


def tenant_rules(rows: Iterable[DeadlineRegime], *, sla_hours: int) -> list[Rule]:
    """Every rule a tenant has: the built-in ones (a row with the same regime and rule
    replaces one; an inactive row switches it off), its own rows, and its SLA."""
    by_key = {rule.key: rule for rule in BUILT_IN}
    for row in rows:
        if row.is_active:
            by_key[(row.regime, row.rule)] = rule_from_row(row)
        else:
            by_key.pop((row.regime, row.rule), None)
    sla = Rule(*TENANT_SLA, str(_("The provider's SLA")), Measure.ERASED, DeadlineUnit.HOURS, sla_hours)
    by_key[TENANT_SLA] = replace(sla, source=SLA_SOURCE)
    return list(by_key.values())


def rules_for(rules: Iterable[Rule], *, e164: str, channel: str) -> list[Rule]:
    region = number_region(e164)
    return [rule for rule in rules if rule.applies(region=region, channel=channel)]
