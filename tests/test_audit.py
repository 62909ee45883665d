"""Issue 15: the tamper-evident audit record (unsubscribe/audit/).

A STOP reply, its request's pipeline, a staff member's configuration change and views: the record
verifies. Then rows are edited, deleted, inserted and reordered with raw SQL (the audit entries,
history tables, suppression events and steps), and `audit_verify` exits non-zero naming the entry.
A retention purge keeps the record checkable; checkpoints verify with the published key, also
after the key is rotated; the checkpoints API is tenant-scoped; the daily task raises
needs-attention on a break.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from lanzuan import signing_keys
from tenants.models import Tenant
from unsubscribe import tasks
from unsubscribe.audit.canonical import canonical
from unsubscribe.audit.services import checkpoint_message
from unsubscribe.inbound.models import InboundCredential
from unsubscribe.inbound.services import inbound_credential_set
from unsubscribe.models import (
    AuditCheckpoint,
    AuditEntry,
    AuditHead,
    Service,
    Step,
    SuppressionEvent,
    UnsubscribeRequest,
)

from .pipeline_helpers import subscriber
from .test_inbound import PUBLIC, TWILIO_TOKEN, post_twilio, twilio_params
from .workers import ROOT, worker_env

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import Settings

    from .pipeline_helpers import Pipeline

STOPPER = "+8613800138000"


def verify(slug: str | None = None) -> tuple[int, str]:
    """`manage.py audit_verify` in-process: its exit status and what it printed."""
    out = StringIO()
    try:
        call_command("audit_verify", *(["--tenant", slug] if slug else []), stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def execute(sql: str, params: list[Any] | None = None) -> None:
    """Raw SQL, as someone with database access would run it (the test's thread acts as the
    system, so row-level security lets it reach every tenant's rows)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def entry(kind_prefix: str, *, tenant: Tenant, last: bool = False) -> AuditEntry:
    rows = AuditEntry.objects.for_tenant(tenant).filter(kind__startswith=kind_prefix).order_by("seq")
    found = rows.last() if last else rows.first()
    assert found is not None, kind_prefix
    return found


@pytest.fixture
def twilio_a(tenant_a: Tenant, settings: Settings) -> InboundCredential:
    settings.PUBLIC_BASE_URL = PUBLIC
    return inbound_credential_set(tenant=tenant_a, provider="twilio", secret=TWILIO_TOKEN)


@pytest.fixture
def stopped(
    client: Client, tenant_a: Tenant, twilio_a: InboundCredential, pipeline: Pipeline
) -> UnsubscribeRequest:
    """A person replied STOP; the request ran to completion; the chain head was signed."""
    subscriber(tenant_a, STOPPER)
    with pipeline():
        response = post_twilio(client, tenant_a, twilio_params("STOP", sender=STOPPER))
    assert response.status_code == 200
    request = UnsubscribeRequest.objects.for_tenant(tenant_a).get()
    assert request.state == UnsubscribeRequest.State.COMPLETED
    tasks.audit_checkpoints()
    return request


# --- what is recorded ---------------------------------------------------------------------------


def test_a_stop_its_pipeline_and_a_config_change_are_recorded_and_verify(
    stopped: UnsubscribeRequest, tenant_a: Tenant, alice: User, client: Client
) -> None:
    # given: staff change a service's name in the admin
    service = Service.objects.for_tenant(tenant_a).get(code="offers")
    client.force_login(alice)
    response = client.post(
        reverse("admin:unsubscribe_service_change", args=[service.pk]),
        {
            "tenant": tenant_a.pk,
            "name": "Offers (new)",
            "name_en": "",
            "code": "offers",
            "description": "",
            "channels": "[]",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    # then: every kind of record is in the chain, and it verifies
    kinds = set(AuditEntry.objects.for_tenant(tenant_a).values_list("kind", flat=True))
    assert {
        "audit.genesis",
        "request.filed",
        "request.changed",
        "step.planned",
        "step.changed",
        "suppression.added",
        "config.changed",
    } <= kinds
    change = entry("config.changed", tenant=tenant_a, last=True)
    assert change.actor == f"user:{alice.pk}"
    assert change.payload["model"] == "unsubscribe.service" and change.payload["changed"] == ["name"]
    assert change.payload["before_digest"] != change.payload["after_digest"]
    steps = AuditEntry.objects.for_tenant(tenant_a).filter(kind="step.changed", payload__status="succeeded")
    assert steps.count() == Step.objects.for_tenant(tenant_a).count()
    assert all(e.reference == stopped.reference for e in steps)
    assert entry("suppression.added", tenant=tenant_a).actor == "channel:sms"
    assert verify() == (0, verify()[1])
    code, out = verify("tenant-a")
    assert code == 0 and "tenant-a: OK" in out


def test_no_entry_holds_the_number(
    stopped: UnsubscribeRequest, tenant_a: Tenant, alice: User, client: Client
) -> None:
    client.force_login(alice)
    client.get(reverse("admin:unsubscribe_unsubscriberequest_change", args=[stopped.pk]))
    client.post(reverse("admin:unsubscribe_case"), {"number": STOPPER})
    stored = "".join(
        canonical(row).decode()
        for row in AuditEntry.objects.for_tenant(tenant_a).values("payload", "actor", "reference", "kind")
    )
    for form in (STOPPER, STOPPER[1:], STOPPER[3:]):
        assert form not in stored


def test_staff_views_and_exports_are_recorded(
    stopped: UnsubscribeRequest, tenant_a: Tenant, alice: User, client: Client
) -> None:
    client.force_login(alice)
    assert (
        client.get(reverse("admin:unsubscribe_unsubscriberequest_change", args=[stopped.pk])).status_code
        == 200
    )
    assert client.post(reverse("admin:unsubscribe_case"), {"number": STOPPER}).status_code == 200
    assert client.get(reverse("admin:unsubscribe_export")).status_code == 200

    viewed = entry("access.request_viewed", tenant=tenant_a)
    assert (viewed.actor, viewed.reference) == (f"user:{alice.pk}", stopped.reference)
    case = entry("access.case_viewed", tenant=tenant_a)
    assert case.actor == f"user:{alice.pk}"
    assert case.payload == {"phone_masked": stopped.phone_masked, "phone_hash": stopped.phone_hash}
    export = entry("access.export", tenant=tenant_a)
    assert export.actor == f"user:{alice.pk}" and export.payload["row_count"] == 1
    assert verify("tenant-a")[0] == 0


# --- tampering with raw SQL ---------------------------------------------------------------------


def _history_step(request: UnsubscribeRequest) -> int:
    return int(
        Step.history.filter(request_id=request.pk)
        .order_by("history_id")
        .values_list("history_id", flat=True)[3]
    )


def _swap_entries_5_and_6(request: UnsubscribeRequest) -> None:
    for sql in (
        "UPDATE unsubscribe_auditentry SET seq = 1000000 WHERE tenant_id = %s AND seq = 5",
        "UPDATE unsubscribe_auditentry SET seq = 5 WHERE tenant_id = %s AND seq = 6",
        "UPDATE unsubscribe_auditentry SET seq = 6 WHERE tenant_id = %s AND seq = 1000000",
    ):
        execute(sql, [request.tenant_id])


TAMPERING: dict[str, tuple[Callable[[UnsubscribeRequest], None], str, str]] = {
    # what is done: (the SQL, the kind of the entry named, what is said)
    "edit a step's history row": (
        lambda r: execute(
            "UPDATE unsubscribe_historicalstep SET status = 'failed' WHERE history_id = %s",
            [_history_step(r)],
        ),
        "step.",
        "it was edited",
    ),
    "delete a request's history row": (
        lambda r: execute(
            "DELETE FROM unsubscribe_historicalunsubscriberequest WHERE history_id = "
            "(SELECT MIN(history_id) FROM unsubscribe_historicalunsubscriberequest WHERE id = %s)",
            [r.pk],
        ),
        "request.filed",
        "it was deleted",
    ),
    "insert a step history row": (
        lambda r: execute(
            "INSERT INTO unsubscribe_historicalstep (id, kind, source, target_name, status, attempts, max_attempts,"
            " last_error, receipt, receipt_lines, history_date, history_type, request_id, target_id, tenant_id,"
            " started_at, finished_at, next_attempt_at, lease_until, history_change_reason, history_user_id)"
            " SELECT id, kind, source, target_name, 'failed', attempts, max_attempts, last_error, receipt,"
            " receipt_lines, history_date, history_type, request_id, target_id, tenant_id, started_at, finished_at,"
            " next_attempt_at, lease_until, history_change_reason, history_user_id"
            " FROM unsubscribe_historicalstep WHERE history_id = %s",
            [_history_step(r)],
        ),
        "",
        "inserted outside the application",
    ),
    "edit a suppression event": (
        lambda r: execute(
            "UPDATE unsubscribe_suppressionevent SET scope = 'club' WHERE request_id = %s", [r.pk]
        ),
        "suppression.added",
        "it was edited",
    ),
    "delete a suppression event": (
        lambda r: execute("DELETE FROM unsubscribe_suppressionevent WHERE request_id = %s", [r.pk]),
        "suppression.added",
        "it was deleted",
    ),
    "insert a suppression event": (
        lambda r: execute(
            "INSERT INTO unsubscribe_suppressionevent (tenant_id, phone_hash, phone_masked, scope, action, channel,"
            " request_id, evidence, created_at)"
            " SELECT tenant_id, phone_hash, phone_masked, scope, 'lifted', channel, NULL, evidence, created_at"
            " FROM unsubscribe_suppressionevent WHERE request_id = %s",
            [r.pk],
        ),
        "",
        "inserted outside the application",
    ),
    "edit a step": (
        lambda r: execute(
            "UPDATE unsubscribe_step SET receipt = 'nothing done' WHERE id = "
            "(SELECT MIN(id) FROM unsubscribe_step WHERE request_id = %s)",
            [r.pk],
        ),
        "",
        "it was edited",
    ),
    "delete a step": (
        lambda r: execute(
            "DELETE FROM unsubscribe_step WHERE id = (SELECT MAX(id) FROM unsubscribe_step WHERE request_id = %s)",
            [r.pk],
        ),
        "",
        "it was deleted",
    ),
    "edit an audit entry": (
        lambda r: execute(
            'UPDATE unsubscribe_auditentry SET payload = \'{"state": "suppressed"}\'::jsonb'
            " WHERE tenant_id = %s AND seq = 5",
            [r.tenant_id],
        ),
        "",
        "the entry was edited",
    ),
    "delete an audit entry": (
        lambda r: execute(
            "DELETE FROM unsubscribe_auditentry WHERE tenant_id = %s AND seq = 5", [r.tenant_id]
        ),
        "",
        "an entry was deleted, inserted or moved",
    ),
    "reorder two audit entries": (
        _swap_entries_5_and_6,
        "",
        "entries were reordered or replaced",
    ),
    "remove the last audit entries": (
        lambda r: execute(
            "DELETE FROM unsubscribe_auditentry WHERE tenant_id = %s AND seq > "
            "(SELECT MAX(seq) - 3 FROM unsubscribe_auditentry WHERE tenant_id = %s)",
            [r.tenant_id, r.tenant_id],
        ),
        "",
        "",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING), ids=list(TAMPERING))
def test_tampering_with_raw_sql_is_caught_and_named(
    stopped: UnsubscribeRequest, tenant_a: Tenant, tenant_b: Tenant, tampering: str
) -> None:
    # given: an intact record (and another tenant's, which stays intact)
    assert verify()[0] == 0
    tamper, kind, what = TAMPERING[tampering]

    # when
    tamper(stopped)

    # then: non-zero, naming the tenant, the entry and what is wrong
    code, out = verify()
    assert code == 1, out
    line = next(line for line in out.splitlines() if line.startswith("tenant-a:"))
    assert "BROKEN at " in line, out
    if kind:
        assert f" {kind}" in line, out
        assert stopped.reference in line, out
    assert what in line, out
    assert "tenant-b: OK" in out
    assert verify("tenant-b")[0] == 0


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(
    stopped: UnsubscribeRequest, tenant_a: Tenant
) -> None:
    # given: someone edits an entry and recomputes every hash after it, and the head
    from unsubscribe.audit.canonical import entry_content, entry_hash  # noqa: PLC0415

    forged = entry("request.filed", tenant=tenant_a)
    prev = forged.prev_hash
    for row in AuditEntry.objects.for_tenant(tenant_a).filter(seq__gte=forged.seq).order_by("seq"):
        if row.pk == forged.pk:
            row.payload = {**row.payload, "state": "completed"}
        content = entry_content(
            tenant_id=row.tenant_id,
            seq=row.seq,
            kind=row.kind,
            object_model=row.object_model,
            object_id=row.object_id,
            reference=row.reference,
            actor=row.actor,
            payload=row.payload,
            record_digest=row.record_digest,
            created_at=row.created_at,
        )
        row.prev_hash, row.hash = prev, entry_hash(content, prev)
        execute(
            "UPDATE unsubscribe_auditentry SET payload = %s::jsonb, prev_hash = %s, hash = %s WHERE id = %s",
            [canonical(row.payload).decode(), row.prev_hash, row.hash, row.pk],
        )
        prev = row.hash
    execute("UPDATE unsubscribe_audithead SET hash = %s WHERE tenant_id = %s", [prev, tenant_a.pk])

    # then: the chain holds together, but not with what was signed
    code, out = verify("tenant-a")
    assert code == 1
    assert "differs from what the checkpoint signed" in out, out


def test_manage_py_audit_verify_exits_with_its_status(transactional_db: None, tmp_path: Any) -> None:
    # given: a committed tenant with a record, then a tampered suppression event
    tenant = Tenant.objects.create(slug="acme", name="Acme")
    from unsubscribe.suppressions.services import suppressions_add  # noqa: PLC0415

    suppressions_add(
        tenant=tenant, phone_hash="d" * 64, phone_masked="138****8000", scopes=["*"], channel="web"
    )

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "audit_verify", "--tenant", "acme"],
            check=False,
            cwd=ROOT,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    intact = run()
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "acme: OK" in intact.stdout
    execute("UPDATE unsubscribe_suppressionevent SET channel = 'app' WHERE tenant_id = %s", [tenant.pk])
    broken = run()
    assert broken.returncode == 1
    assert "acme: BROKEN at #3 suppression.added" in broken.stdout, broken.stdout


# --- retention ----------------------------------------------------------------------------------


def test_a_retention_purge_keeps_the_record_checkable(stopped: UnsubscribeRequest, tenant_a: Tenant) -> None:
    # given: the request is past its tenant's record retention
    history_rows = Step.history.filter(request_id=stopped.pk).count()
    assert history_rows > 10
    later = timezone.now() + timedelta(days=tenant_a.record_retention_days + 1)

    # when: the hourly purge runs
    with time_machine.travel(later, tick=True):
        assert tasks.purge_expired_records()["purged"] == 1

    # then: the rows are gone, one entry lists them with their digests, a checkpoint was signed
    assert not UnsubscribeRequest.objects.for_tenant(tenant_a).exists()
    assert not Step.history.filter(request_id=stopped.pk).exists()
    purge = entry("records.purged", tenant=tenant_a)
    assert purge.payload["references"] == [stopped.reference]
    assert len(purge.payload["removed"]["unsubscribe.historicalstep"]) >= history_rows
    checkpoint = AuditCheckpoint.objects.for_tenant(tenant_a).order_by("-created_at").first()
    assert checkpoint is not None and checkpoint.reason == "purge" and checkpoint.seq == purge.seq
    code, out = verify("tenant-a")
    assert code == 0, out

    # and tampering after the purge is still caught
    execute(
        "UPDATE unsubscribe_suppressionevent SET phone_masked = '139****0000' WHERE tenant_id = %s",
        [tenant_a.pk],
    )
    code, out = verify("tenant-a")
    assert code == 1 and "it was edited" in out, out


# --- checkpoints and keys -----------------------------------------------------------------------


def test_checkpoints_verify_with_the_published_key_and_after_rotation(
    stopped: UnsubscribeRequest, tenant_a: Tenant, client: Client, settings: Settings
) -> None:
    # given: a checkpoint signed with the configured key
    old = AuditCheckpoint.objects.for_tenant(tenant_a).get()
    published = client.get("/.well-known/lanzuan-keys.json").json()["keys"]
    key = next(k for k in published if k["kid"] == old.key_id)

    # then: anyone checks it offline with the published key
    message = checkpoint_message(
        tenant_slug="tenant-a", seq=old.seq, hash_=old.hash, created_at=old.created_at
    )
    Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"])).verify(
        base64.b64decode(old.signature), message
    )

    # when: the key is rotated (a new one first, the old one after it) and a new checkpoint signed
    new_key = signing_keys.new_private_key()
    settings.LANZUAN_SIGNING_KEYS = [new_key, *settings.LANZUAN_SIGNING_KEYS]
    entry_count = AuditEntry.objects.for_tenant(tenant_a).count()
    client.get("/")  # nothing recorded; force a new head
    assert AuditEntry.objects.for_tenant(tenant_a).count() == entry_count
    Service.objects.create(tenant=tenant_a, name="Club 2", code="club2")
    tasks.audit_checkpoints()
    new = AuditCheckpoint.objects.for_tenant(tenant_a).order_by("-created_at").first()
    assert new is not None and new.key_id != old.key_id
    assert verify("tenant-a")[0] == 0

    # and: the old private key retired, only its public key kept, both still verify
    old_private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(settings.LANZUAN_SIGNING_KEYS[1]))
    settings.LANZUAN_SIGNING_KEYS = [new_key]
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = [
        base64.b64encode(old_private.public_key().public_bytes_raw()).decode()
    ]
    assert verify("tenant-a")[0] == 0

    # but a checkpoint whose key is not published any more is named
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = []
    code, out = verify("tenant-a")
    assert code == 1 and f"does not verify with published key {old.key_id}" in out, out


def test_the_checkpoints_api_is_tenant_scoped(
    stopped: UnsubscribeRequest, tenant_a: Tenant, tenant_b: Tenant, api_key_a: str, api_key_b: str
) -> None:
    Service.objects.create(tenant=tenant_b, name="B", code="b")
    tasks.audit_checkpoints()
    mine = list(AuditCheckpoint.objects.for_tenant(tenant_a).order_by("-created_at"))

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    page = api.get("/api/v1/audit/checkpoints").json()
    assert page["next"] is None
    assert [c["seq"] for c in page["results"]] == [c.seq for c in mine]
    shown = page["results"][0]
    assert shown["tenant"] == "tenant-a" and shown["alg"] == "Ed25519" and shown["kid"] == mine[0].key_id
    # what the README says a partner checks: the signature over the fields as given
    signed = canonical({k: shown[k] for k in ("tenant", "seq", "hash", "created_at")})
    assert signing_keys.verify(signed, shown["kid"], shown["signature"])

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_b}")
    theirs = other.get("/api/v1/audit/checkpoints").json()["results"]
    assert theirs and {c["tenant"] for c in theirs} == {"tenant-b"}
    assert not {c.signature for c in mine} & {c["signature"] for c in theirs}
    assert APIClient().get("/api/v1/audit/checkpoints").status_code == 401
    assert api.get("/api/v1/audit/checkpoints", {"page_size": "0"}).status_code == 400


# --- the daily verification ---------------------------------------------------------------------


def test_the_daily_task_raises_needs_attention_on_a_break(
    stopped: UnsubscribeRequest, tenant_a: Tenant, alice: User, root: User, client: Client
) -> None:
    # given: intact, the task flags nothing
    assert tasks.audit_verify_daily() == {"tenants": 1, "broken": 0}
    head = AuditHead.objects.for_tenant(tenant_a).get()
    assert head.verified_at is not None and head.broken_at is None

    # when: a suppression event is edited, and the task runs
    execute("UPDATE unsubscribe_suppressionevent SET scope = 'club' WHERE tenant_id = %s", [tenant_a.pk])
    assert tasks.audit_verify_daily() == {"tenants": 1, "broken": 1}

    # then: the tenant's staff see it on the admin home, and superusers count it
    head.refresh_from_db()
    assert head.broken_at is not None and "suppression.added" in head.problem
    client.force_login(alice)
    home = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-audit-broken="tenant-a"' in home
    client.force_login(root)
    home = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="lanzuan-audit_breaks"' in home
    assert SuppressionEvent.objects.for_tenant(tenant_a).exists()


def test_an_api_call_is_recorded_under_its_key(tenant_a: Tenant, api_key_a: str) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a}")
    response = api.post(
        "/api/v1/unsubscribe-requests", {"phone": "+8613900139000", "channel": "app"}, format="json"
    )
    assert response.status_code == 201, response.content
    prefix = api_key_a.split(".", maxsplit=1)[0]
    filed = entry("request.filed", tenant=tenant_a)
    assert filed.actor == f"api_key:{prefix}"
    assert entry("suppression.added", tenant=tenant_a).actor == "channel:app"
    assert verify("tenant-a")[0] == 0


def test_a_tenant_deleted_takes_its_record_along(tenant_a: Tenant, tenant_b: Tenant) -> None:
    # given: a tenant with a record (its own creation, a service) and nothing that protects it
    Service.objects.create(tenant=tenant_b, name="B", code="b")
    Service.objects.for_tenant(tenant_b).delete()
    assert AuditEntry.objects.for_tenant(tenant_b).count() >= 3

    # when
    tenant_b.delete()
    execute("SET CONSTRAINTS ALL IMMEDIATE")  # what the commit would check: no entry of a deleted tenant

    # then: its record went with it; the other tenant's is intact
    assert not AuditEntry.objects.unscoped(reason="test").filter(tenant_id=tenant_b.pk).exists()
    assert not AuditHead.objects.unscoped(reason="test").filter(tenant_id=tenant_b.pk).exists()
    assert verify()[0] == 0


def test_an_entry_of_a_request_is_proved_up_to_a_signed_checkpoint(stopped: UnsubscribeRequest) -> None:
    from unsubscribe.audit.canonical import sha256  # noqa: PLC0415
    from unsubscribe.audit.selectors import chain_links, entry_proof, request_entries  # noqa: PLC0415

    first = request_entries(tenant_id=stopped.tenant_id, reference=stopped.reference).first()
    assert first is not None and first.kind == "request.filed"
    proof = entry_proof(first)
    assert sha256(proof["content"].encode() + proof["prev_hash"].encode()) == proof["hash"]
    checkpoint = proof["checkpoint"]
    assert checkpoint is not None
    head = proof["hash"]
    for link in chain_links(tenant_id=stopped.tenant_id, after_seq=first.seq, to_seq=checkpoint["seq"]):
        assert link["prev_hash"] == head
        head = sha256(link["content"].encode() + head.encode())
    assert head == checkpoint["hash"]
    message = canonical(
        {k: checkpoint[k] for k in ("tenant", "seq", "hash")} | {"created_at": checkpoint["created_at"]}
    )
    assert signing_keys.verify(message, checkpoint["kid"], checkpoint["signature"])
