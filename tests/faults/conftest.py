"""Fixtures of the fault suite: the ledger every fault test counts in, the every-place scan
counted in it, and HTTP gateways that send nothing to the outbox file.

Each fault test shows three things: nothing lost, no duplicate effect, no raw number left
anywhere (database, files under LANZUAN_VAR_DIR, Redis). It counts what it injected and
what it found in `fault_ledger`; the terminal summary prints the suite's line
(tests/faults/ledger.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from notifications.models import GatewayConfig

from ..httpserver import Endpoint, http_endpoint
from .ledger import LEDGER, Ledger
from .scan import raw_number_findings

if TYPE_CHECKING:
    from pytest_django import Settings

    from tenants.models import Tenant

GATEWAY_SECRET = "faults-gateway-signing-secret"

# raw_numbers(*numbers, skip_outbox=False) -> findings, counted in the ledger
RawNumbers = Callable[..., list[str]]


@pytest.fixture(scope="session")
def fault_ledger() -> Ledger:
    """This process's ledger: `fault_ledger.count(faults=…, filed=…, lost=…, duplicated=…)`."""
    return LEDGER


@pytest.fixture
def raw_numbers(fault_ledger: Ledger) -> RawNumbers:
    """The every-place scan (tests/faults/scan.py), its findings counted in the ledger."""

    def scan(*numbers: str, skip_outbox: bool = False) -> list[str]:
        findings = raw_number_findings(*numbers, skip_outbox=skip_outbox)
        fault_ledger.count(raw_numbers=len(findings))
        return findings

    return scan


@dataclass
class Gateways:
    """Every tenant's SMS and email, and the platform's hub codes, POSTed to one local
    endpoint (lanzuan's signed HTTP gateway): what was sent is read there, and nothing is
    written to the outbox file, so the scan covers the outbox too."""

    endpoint: Endpoint

    def use(self, *tenants: Tenant) -> None:
        for tenant in tenants:
            for channel in ("sms", "email"):
                GatewayConfig.objects.create(
                    tenant=tenant,
                    channel=channel,
                    kind="http",
                    endpoint=self.endpoint.url,
                    secret=GATEWAY_SECRET,
                )

    def sent(self, to: str, event: str | None = None) -> list[dict[str, Any]]:
        """The messages sent to `to` (E.164), oldest first, once per idempotency key."""
        messages: dict[str, dict[str, Any]] = {}
        for received in list(self.endpoint.received):
            message = received.json()
            if message.get("to") == to and event in (None, message.get("event")):
                messages.setdefault(str(message.get("id")), message)
        return list(messages.values())

    def code(self, to: str) -> str:
        """The one-time code in the last code SMS to `to`."""
        codes = [m for m in self.sent(to) if m.get("event") == "otp"]
        assert codes, f"no code was sent ({len(self.endpoint.received)} messages in all)"
        match = re.search(r"\b(\d{6})\b", str(codes[-1]["body"]))
        assert match is not None, json.dumps(codes[-1], ensure_ascii=False)
        return match.group(1)


@pytest.fixture
def gateways(settings: Settings) -> Iterator[Gateways]:
    """An echoing endpoint as the gateway: it answers every message with the message back,
    number and all, as careless providers do (nothing of it may be kept)."""
    with http_endpoint(answer="echo") as endpoint:
        settings.LANZUAN_PLATFORM_SMS_URL = endpoint.url
        settings.LANZUAN_PLATFORM_SMS_SECRET = GATEWAY_SECRET
        yield Gateways(endpoint)
