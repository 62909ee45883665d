"""Start-up check: the API rate settings must parse, so a typo stops the process
instead of throttling every partner call with a 500."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from .throttling import DEFAULT_RATES, configured_rate

PERIODS = {"s", "m", "h", "d"}


@register()
def check_api_rates(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for scope in DEFAULT_RATES:
        rate = configured_rate(scope)
        count, _sep, period = rate.partition("/")
        if not count.isdigit() or not period or period[0] not in PERIODS:
            errors.append(
                Error(
                    f"LANZUAN_API_RATES[{scope!r}] = {rate!r} is not a rate like '600/min'",
                    id="partner.E001",
                )
            )
    return errors
