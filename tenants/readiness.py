"""What a tenant still lacks before it can serve people, as warnings on its admin page.

The apps that know (notifications: an SMS gateway) sit above this one, so they register
their checks at start-up (AppConfig.ready) instead of being imported here.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import Tenant

ReadinessCheck = Callable[[Tenant], "str | None"]  # a warning, or None when ready

_checks: list[ReadinessCheck] = []


def readiness_check_register(check: ReadinessCheck) -> None:
    if check not in _checks:
        _checks.append(check)


def tenant_warnings(tenant: Tenant) -> list[str]:
    """Every registered check's warning for this tenant, in the order they were registered."""
    return [warning for check in _checks if (warning := check(tenant))]
