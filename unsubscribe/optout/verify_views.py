"""/verify/: anyone checks a signed receipt (unsubscribe/proofs/signed_receipt.py), pasted or
uploaded, and reads what it says. A public page of the platform: no tenant, no login.

The POST shows its answer directly rather than redirecting (prg.py): checking changes nothing,
so a reload that posts again is harmless, and the receipt never has to be parked in the session.
Its size is refused before the body is read (Content-Length, then lanzuan/uploads.py while it is
read): the CSRF check reads the body, so it runs after the guard is in place, as the admin's
import does. Each network may check `LANZUAN_VERIFY_CHECKS_PER_IP_HOUR` receipts an hour.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from lanzuan import uploads
from unsubscribe.deadlines.selectors import rule_label
from unsubscribe.models import Measure, RequestChannel, Step, UnsubscribeRequest, VerificationMethod
from unsubscribe.pipeline.datasources import receipt_text
from unsubscribe.proofs.signed_receipt import (
    ALTERED,
    GENUINE,
    MAX_RECEIPT_BYTES,
    UNKNOWN_KEY,
    ReceiptCheck,
    receipt_check,
)
from unsubscribe.receipts import receipt_display

from . import limits
from .forms import VerifyForm
from .views import page_language, render_page


@dataclass(frozen=True)
class Line:
    title: str
    when: datetime | None
    detail: str = ""
    status: str = "done"


def _zone(document: dict[str, Any]) -> tzinfo:
    name = (document.get("tenant") or {}).get("time_zone")
    if isinstance(name, str) and name in zoneinfo.available_timezones():
        return zoneinfo.ZoneInfo(name)
    return zoneinfo.ZoneInfo("UTC")


def _time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _label(choices: Any, value: Any) -> str:
    return str(dict(choices).get(value, value or "—"))


def _steps(document: dict[str, Any]) -> list[Line]:
    language = page_language()
    titles: dict[str, str] = {
        Step.Kind.TERMINATE: _("Services ended: %(target)s"),
        Step.Kind.CONFIRM: _("Confirmation sent"),
        Step.Kind.ERASE: _("Personal data cleaned: %(target)s"),
    }
    lines = []
    for step in document.get("steps") or []:
        if not isinstance(step, dict):
            continue
        label = step.get("label") or {}
        where = str(label.get(language) or label.get("en") or "") if isinstance(label, dict) else ""
        title = titles.get(str(step.get("kind")), str(step.get("kind", ""))) % {"target": where}
        receipt_lines = step.get("receipt_lines") or []
        detail = (
            receipt_text(receipt_lines) if receipt_lines else receipt_display(str(step.get("receipt") or ""))
        )
        done = step.get("status") == Step.Status.SUCCEEDED
        lines.append(
            Line(
                title,
                _time(step.get("completed_at")),
                detail if done else _label(Step.Status.choices, step.get("status")),
                "done" if done else "pending",
            )
        )
    return lines


def receipt_summary(document: dict[str, Any]) -> dict[str, Any]:
    """What a genuine receipt says, in the page's language."""
    tenant = document.get("tenant") or {}
    scope = document.get("scope") or {}
    times = document.get("times") or {}
    if scope.get("all_marketing"):
        scope_text = _("All marketing from %(name)s") % {"name": tenant.get("name", "")}
    else:
        scope_text = ", ".join(str(s.get("name") or s.get("code")) for s in scope.get("services") or [])
    moments = [
        (_("Request received"), times.get("filed")),
        (_("Number verified"), times.get("verified")),
        (_("Marketing stopped"), times.get("suppressed")),
        (_("Services ended"), times.get("services_ended")),
        (_("Erasing data since"), times.get("erasing")),
        (_("Completed"), times.get("completed")),
    ]
    deadlines = [
        Line(
            str(rule_label(str(d.get("regime")), str(d.get("rule")))),
            _time(d.get("met_at")) or _time(d.get("due_at")),
            _("met") if d.get("met_at") else (_("missed") if d.get("breached_at") else _("due")),
            "done" if d.get("met_at") else "pending",
        )
        for d in document.get("deadlines") or []
        if isinstance(d, dict)
    ]
    chain = document.get("chain") if isinstance(document.get("chain"), dict) else None
    return {
        "reference": document.get("reference"),
        "number": document.get("number"),
        "tenant_name": tenant.get("name"),
        "tenant_slug": tenant.get("slug"),
        "scope": scope_text,
        "channel": _label(RequestChannel.choices, document.get("channel")),
        "verification": _label(
            VerificationMethod.choices, (document.get("verification") or {}).get("method")
        ),
        "state": _label(UnsubscribeRequest.State.choices, document.get("state")),
        "moments": [Line(title, _time(raw)) for title, raw in moments if _time(raw) is not None],
        "steps": _steps(document),
        "deadlines": deadlines,
        "measures": dict(Measure.choices),
        "chain": chain,
        "issued_at": _time(document.get("issued_at")),
    }


def _verdict(check: ReceiptCheck) -> str:
    if check.outcome == ALTERED:
        return _(
            "Not genuine: this receipt was changed after it was signed, or it was never signed by Lanzuan. "
            "Do not rely on what it says."
        )
    if check.outcome == UNKNOWN_KEY:
        return _("Not genuine: it is signed with a key Lanzuan never published. Do not rely on what it says.")
    return _(
        "This is not a Lanzuan receipt, or not all of it: paste the whole text, or upload the file "
        "as it was downloaded."
    )


def _page(request: HttpRequest, form: VerifyForm, status: int = 200, **context: Any) -> HttpResponse:
    return render_page(request, "verify.html", None, {"form": form, **context}, status=status)


@csrf_exempt  # checked by _verify_post once the size guard is in place: the check reads the body
def verify(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request, VerifyForm())
    length = uploads.declared_length(request)
    if length is None or length > MAX_RECEIPT_BYTES * 2 + uploads.ENVELOPE:
        return _too_large(request)
    uploads.limit_uploads(request, MAX_RECEIPT_BYTES * 2)
    try:
        return _verify_post(request)
    except uploads.UploadTooLarge:
        uploads.discard_partial_uploads(request)
        return _too_large(request)


def _too_large(request: HttpRequest) -> HttpResponse:
    error = _("This is far larger than any receipt. Paste the receipt itself or upload its file.")
    return _page(request, VerifyForm(), status=413, error=error)


@csrf_protect
def _verify_post(request: HttpRequest) -> HttpResponse:
    form = VerifyForm(request.POST, request.FILES)
    if not limits.verify_check_allowed(limits.client_ip(request)):
        error = _("Too many receipts were checked from your network. Try again in an hour.")
        return _page(request, VerifyForm(), status=429, error=error)
    if not form.is_valid():
        return _page(request, form, status=400)
    check = receipt_check(form.cleaned_data["text"])
    if check.outcome == GENUINE:
        with timezone.override(_zone(check.document)):
            return _page(
                request,
                VerifyForm(),
                check=check,
                summary=receipt_summary(check.document),
                key=check.key,
                zone_name=str(_zone(check.document)),
            )
    return _page(request, form, status=400, check=check, error=_verdict(check))
