"""The core's sections of the proof pack (pack.py): the request, how the number was verified,
its suppression, every step with its receipt, the messages sent, the consent records, the
deadlines, the signed receipt and the chain proof. Apps above the core add theirs (reply SMS:
`unsubscribe/inbound/selectors.py` `proof_replies`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from notifications.models import Message
from unsubscribe.models import (
    RequestChannel,
    SuppressionEvent,
    UnsubscribeRequest,
    VerificationMethod,
    scope_label,
)

from ..consents.selectors import consent_records, wordings
from ..deadlines.selectors import regime_label, request_deadlines, rule_label
from ..pipeline.selectors import step_receipt_for_staff, step_staff_label
from ..receipts import receipt_display
from ..sendlogs.selectors import request_violation_evidence
from .canonical import instant
from .chain import request_chain_proof
from .pack import ProofSection, ProofTable, proof_section_register

# Messages that belong to a request: to its number at its tenant, from shortly before it was
# filed (the one-time code of the web page) until shortly after it completed.
MESSAGE_WINDOW = timedelta(hours=1)


def when(moment: datetime | None) -> str:
    """A time as index.html shows it: on the tenant's clock (the pack's active zone), with its offset."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S") + f" {offset[:3]}:{offset[3:]}"


def _parsed(moment: str | None) -> datetime | None:
    """A time as proof.json writes it (UTC, "Z"), back to a datetime for the page."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00")) if moment else None


def _redacted(value: Any) -> Any:
    """Every string inside `value` with phone numbers masked (evidence is free-form JSON)."""
    if isinstance(value, str):
        return phones.redact(value)
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, float):
        return str(value)
    return value


def _scope(request: UnsubscribeRequest) -> str:
    if request.scope_all:
        return scope_label("*")
    return ", ".join(f"{s.name} ({s.code})" for s in request.services.all().order_by("code"))


def request_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    times = [(name, getattr(request, name)) for name in UnsubscribeRequest.TIMELINE]
    field_label = {
        f: str(getattr(UnsubscribeRequest._meta.get_field(f), "verbose_name", f)) for f, _v in times
    }
    return ProofSection(
        key="request",
        title=_("The request"),
        data={
            "reference": request.reference,
            "number": request.phone_masked,
            "tenant": {"slug": request.tenant.slug, "name": request.tenant.name},
            "scope": {
                "all_marketing": request.scope_all,
                "services": [s.code for s in request.services.all().order_by("code")],
            },
            "channel": request.channel,
            "state": request.state,
            "language": request.language,
            "filed_by": phones.redact(request.filed_by),
            "attention_reason": phones.redact(request.attention_reason),
            "times": {name: instant(value) for name, value in times},
        },
        facts=[
            (_("Reference"), request.reference),
            (_("Number"), request.phone_masked),
            (_("Provider"), f"{request.tenant.name} ({request.tenant.slug})"),
            (_("Scope"), _scope(request)),
            (_("Channel"), str(RequestChannel(request.channel).label)),
            (_("State"), request.get_state_display()),
            (_("Filed by"), phones.redact(request.filed_by) or "—"),
            *[(field_label[name], when(value)) for name, value in times if value is not None],
        ],
    )


def verification_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    evidence = _redacted(request.verification_evidence or {})
    method = request.verification_method
    label = str(dict(VerificationMethod.choices).get(method, method))
    return ProofSection(
        key="verification",
        title=_("How the number was verified"),
        data={"method": method, "evidence": evidence},
        facts=[
            (_("Method"), label),
            *[
                (str(key), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                for key, value in sorted(evidence.items())
            ],
        ],
    )


def suppression_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    events = (
        SuppressionEvent.objects.for_tenant(request.tenant_id)
        .filter(request=request)
        .order_by("created_at", "pk")
    )
    rows = [
        {
            "action": event.action,
            "scope": event.scope,
            "channel": event.channel,
            "at": instant(event.created_at),
            "number": event.phone_masked,
        }
        for event in events
    ]
    return ProofSection(
        key="suppression",
        title=_("Suppression"),
        data=rows,
        tables=[
            ProofTable(
                [_("Time"), _("Change"), _("Scope"), _("Number")],
                [
                    [
                        when(event.created_at),
                        event.get_action_display(),
                        scope_label(event.scope),
                        event.phone_masked,
                    ]
                    for event in events
                ],
                testid="suppression",
            )
        ],
    )


def steps_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    steps = list(request.steps.select_related("target").order_by("id"))
    return ProofSection(
        key="steps",
        title=_("Every step, with its receipt"),
        data=[
            {
                "id": step.pk,
                "kind": step.kind,
                "source": step.source,
                "target": step.target_name,
                "status": step.status,
                "attempts": step.attempts,
                "started_at": instant(step.started_at),
                "finished_at": instant(step.finished_at),
                "receipt": phones.redact(step.receipt),
                "receipt_lines": step.receipt_lines,
                "last_error": phones.redact(step.last_error),
            }
            for step in steps
        ],
        tables=[
            ProofTable(
                [_("Step"), _("Where"), _("Status"), _("Started"), _("Finished"), _("Receipt")],
                [
                    [
                        step.get_kind_display(),
                        step_staff_label(step),
                        step.get_status_display(),
                        when(step.started_at),
                        when(step.finished_at),
                        phones.redact(
                            receipt_display(step_receipt_for_staff(step))
                            + (f" · {receipt_display(step.last_error)}" if step.last_error else "")
                        ),
                    ]
                    for step in steps
                ],
                testid="steps",
            )
        ],
    )


def _messages(request: UnsubscribeRequest) -> list[Message]:
    end = (request.completed_at or timezone.now()) + MESSAGE_WINDOW
    return list(
        Message.objects.for_tenant(request.tenant_id)
        .filter(
            to_hash=request.phone_hash,
            created_at__gte=request.received_at - MESSAGE_WINDOW,
            created_at__lte=end,
        )
        .order_by("created_at", "pk")
    )


def messages_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    messages = _messages(request)
    return ProofSection(
        key="messages_sent",
        title=_("Messages sent"),
        data=[
            {
                "id": message.pk,
                "channel": message.channel,
                "event": message.event,
                "language": message.language,
                "to": message.to_masked,
                "status": message.status,
                "created_at": instant(message.created_at),
                "sent_at": instant(message.sent_at),
                "delivered_at": instant(message.delivered_at),
                "subject": phones.redact(message.subject),
                "body": phones.redact(message.body),
            }
            for message in messages
        ],
        note=_(
            "Every message to this number at this provider from an hour before the request was filed "
            "until an hour after it completed, as sent (numbers masked, one-time codes never stored)."
        ),
        tables=[
            ProofTable(
                [_("Time"), _("Message"), _("To"), _("Status"), _("Text")],
                [
                    [
                        when(message.sent_at or message.created_at),
                        f"{message.get_event_display()} · {message.get_channel_display()}",
                        message.to_masked,
                        message.get_status_display(),
                        phones.redact(" — ".join(part for part in (message.subject, message.body) if part)),
                    ]
                    for message in messages
                ],
                testid="messages-sent",
            )
        ],
    )


def consents_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    records = list(consent_records(tenant=request.tenant_id, phone_hash=request.phone_hash))
    texts = wordings(tenant=request.tenant_id, hashes=[r.wording_sha256 for r in records if r.wording_sha256])
    return ProofSection(
        key="consents",
        title=_("Consent record"),
        data=[
            {
                "service": record.service.code,
                "source": record.source,
                "source_detail": phones.redact(record.source_detail),
                "given_at": instant(record.given_at),
                "wording_sha256": record.wording_sha256,
                "wording": phones.redact(texts.get(record.wording_sha256, "")),
                "order_id": phones.redact(record.evidence_order_id),
                "page_version": record.evidence_page_version,
                "ip": record.evidence_ip,
                "captured_by": phones.redact(record.captured_by),
                "recorded_at": instant(record.recorded_at),
                "revoked_at": instant(record.revoked_at),
                "revoked_by_request": record.revoked_by_request.reference
                if record.revoked_by_request
                else None,
                "minimised_at": instant(record.minimised_at),
            }
            for record in records
        ],
        tables=[
            ProofTable(
                [_("Service"), _("Given"), _("How"), _("Wording"), _("Revoked"), _("Minimised")],
                [
                    [
                        record.service.name,
                        when(record.given_at),
                        record.get_source_display(),
                        phones.redact(texts.get(record.wording_sha256, "")) or record.wording_sha256 or "—",
                        when(record.revoked_at)
                        + (f" ({record.revoked_by_request.reference})" if record.revoked_by_request else ""),
                        when(record.minimised_at),
                    ]
                    for record in records
                ],
                testid="consents",
            )
        ],
    )


def deadlines_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    deadlines = request_deadlines(request)
    return ProofSection(
        key="deadlines",
        title=_("Deadlines"),
        data=[
            {
                "regime": d.regime,
                "rule": d.rule,
                "measure": d.measure,
                "due_at": instant(d.due_at),
                "met_at": instant(d.met_at),
                "breached_at": instant(d.breached_at),
                "provisional": d.provisional,
            }
            for d in deadlines
        ],
        tables=[
            ProofTable(
                [_("Regime"), _("Rule"), _("Due"), _("Met"), _("Breached")],
                [
                    [
                        str(regime_label(d.regime)),
                        str(rule_label(d.regime, d.rule)),
                        when(d.due_at),
                        when(d.met_at),
                        when(d.breached_at),
                    ]
                    for d in deadlines
                ],
                testid="deadlines",
            )
        ],
    )


def receipt_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    receipt = context["receipt"]
    return ProofSection(
        key="signed_receipt",
        title=_("Signed receipt"),
        data=receipt,
        note=_(
            "The receipt the person can download, signed with the platform's Ed25519 key (key %(kid)s, "
            "published at /.well-known/lanzuan-keys.json). Check it at /verify/ or offline."
        )
        % {"kid": receipt["signature"]["kid"]},
        facts=[
            (_("Reference"), str(receipt["reference"])),
            (_("Signed at"), when(_parsed(receipt["issued_at"]))),
            (_("Signing key"), f"{receipt['signature']['kid']} ({receipt['signature']['alg']})"),
            (_("Signature"), str(receipt["signature"]["value"])),
        ],
        text=json.dumps(receipt, ensure_ascii=False, indent=2, sort_keys=True),
    )


def chain_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection:
    proof = request_chain_proof(request)
    checkpoint = proof["checkpoint"]
    facts: list[tuple[str, str]] = []
    if checkpoint is not None:
        facts = [
            (_("Signed checkpoint"), f"#{checkpoint['seq']} · {checkpoint['hash']}"),
            (_("Signed at"), when(_parsed(checkpoint["created_at"]))),
            (_("Signing key"), f"{checkpoint['kid']} ({checkpoint['alg']})"),
            (_("Signature"), checkpoint["signature"]),
            (_("Signature valid"), _("yes") if checkpoint["signature_valid"] else _("NO")),
            (
                _("Entries linking the request to the checkpoint"),
                str(proof.get("path_omitted") or len(proof["path"])),
            ),
        ]
    return ProofSection(
        key="chain",
        title=_("Audit chain proof"),
        data=proof,
        note=_(
            "Each entry's hash is SHA-256 of its content (UTF-8) followed by the previous entry's hash; "
            "proof.json holds every entry's content, the entries in between and the checkpoint's signed "
            "message, so the hashes and the signature can be recomputed without Lanzuan."
        ),
        facts=facts,
        tables=[
            ProofTable(
                [_("Seq"), _("Time"), _("What"), _("Previous hash"), _("Hash"), _("Recomputed")],
                [
                    [
                        str(entry["seq"]),
                        when(_parsed(entry["at"])),
                        entry["kind"],
                        entry["prev_hash"],
                        entry["hash"],
                        _("matches") if entry["hash_matches"] else _("DOES NOT MATCH"),
                    ]
                    for entry in proof["entries"]
                ],
                testid="chain",
            )
        ],
    )


def still_receiving_section(request: UnsubscribeRequest, context: dict[str, Any]) -> ProofSection | None:
    """Issue 17: the person's "I still get messages" reports and the messages senders reported
    sending after the opt-out (send logs); nothing when there are none."""
    evidence = request_violation_evidence(request=request)
    if not evidence["reports"] and not evidence["messages_after_opt_out"]:
        return None
    return ProofSection(
        key="still_receiving",
        title=_("Messages after the opt-out"),
        data=evidence,
        tables=[
            ProofTable(
                [_("Reported"), _("How")],
                [[when(_parsed(r["reported_at"])), r["channel"]] for r in evidence["reports"]],
                testid="still-receiving-reports",
                caption=_("The person's reports that messages still arrive"),
            ),
            ProofTable(
                [_("Sent"), _("Service"), _("Opted out"), _("Detected")],
                [
                    [
                        when(_parsed(m["sent_at"])),
                        m["service"] or "—",
                        when(_parsed(m["opted_out_at"])),
                        when(_parsed(m["detected_at"])),
                    ]
                    for m in evidence["messages_after_opt_out"]
                ],
                testid="messages-after-opt-out",
                caption=_("Messages senders reported sending after the opt-out (send logs)"),
            ),
        ],
    )


for _order, _name, _builder in (
    (10, "request", request_section),
    (20, "verification", verification_section),
    (30, "suppression", suppression_section),
    (40, "steps", steps_section),
    (60, "messages_sent", messages_section),
    (70, "consents", consents_section),
    (80, "deadlines", deadlines_section),
    (85, "still_receiving", still_receiving_section),
    (90, "signed_receipt", receipt_section),
    (100, "chain", chain_section),
):
    proof_section_register(_name, _builder, order=_order)
