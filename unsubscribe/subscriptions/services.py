"""Subscriptions: the upsert that skips numbers that opted out (shared by the CSV import
here and the partner API's import), and the bulk import of a CSV file, in the background
with progress.

Columns (header row required): phone, service, consent_source, consent_at
(ISO 8601, optional; a time without an offset, or a bare date, is read in the
tenant's time zone). Rows are upserted in batches, so 10^5 rows take seconds,
not a request's lifetime.

Optional columns of the consent-evidence ledger (CONSENT_COLUMNS): consent_method (form,
sms_keyword, contract or import), consent_wording (the exact words shown), consent_order_id,
consent_page_version, consent_ip, consent_captured_by. A row with a consent_at or any of them
also records a ConsentRecord (unsubscribe.consents); files without them import as before.

Every row ends up as exactly one of: created, updated, skipped because the
number opted out, invalid (with its line in `errors`), or a duplicate of an
earlier row (the later one wins).

The uploaded file is the tenant's list of numbers: it is deleted as soon as the import
ends (done or failed; the counts and errors stay on the row), and the hourly file
expiry (unsubscribe/retention/files.py) deletes what an abandoned import left behind
after UPLOAD_MAX_AGE, marking the import failed.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.db import DatabaseError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe import tasks  # by module: tasks imports this one
from unsubscribe.audit.canonical import sha256
from unsubscribe.audit.services import audit_append
from unsubscribe.consents.services import MAX_WORDING, ConsentEvidence, consents_record
from unsubscribe.instants import InstantError, instant_parse
from unsubscribe.models import (
    SCOPE_ALL,
    ConsentRecord,
    Service,
    Subscription,
    SubscriptionImport,
    Suppression,
)

logger = logging.getLogger(__name__)

BATCH = 2000
MAX_ERRORS_KEPT = 100
# A batch the database refused is reported and the next one tried; this many in a
# row means the database itself is the problem, and the import stops.
MAX_FAILED_BATCHES = 3
# An upload still on disk this long after it arrived belongs to an import that never
# ran or never finished (the broker lost it, a worker died): the file expiry deletes it.
UPLOAD_MAX_AGE = timedelta(hours=24)

Outcome = Literal["created", "updated", "opted_out"]
Key = tuple[int, str]  # (service id, phone hash)


# --- parsing ---------------------------------------------------------------------------------


def consent_time_parse(value: str, *, tz: tzinfo) -> datetime | None:
    """A consent time: an ISO 8601 date and time (or a bare date: its midnight); without
    an offset it is read in `tz`, the tenant's zone, not the server's. Empty → None;
    anything else raises InstantError (a ValueError) with a message to show: a consent
    time is evidence, never silently "now", never in the future, never a wall time that
    did not exist. The rules are unsubscribe.instants', shared with the API's filters."""
    return instant_parse(value, tz=tz, consent=True)


def tenant_zone(tenant: Tenant) -> tzinfo:
    return ZoneInfo(tenant.time_zone)


# The ledger's optional columns (API fields), with their longest value.
CONSENT_COLUMNS = {
    "consent_method": 20,
    "consent_wording": MAX_WORDING,
    "consent_order_id": 100,
    "consent_page_version": 100,
    "consent_ip": 45,
    "consent_captured_by": 200,
}


@dataclass(frozen=True)
class ConsentFields:
    """The ledger's fields of one import row; `given` when the row says anything about its consent."""

    given: bool
    method: str = ConsentRecord.Source.IMPORT
    wording: str = ""
    order_id: str = ""
    page_version: str = ""
    ip: str | None = None
    captured_by: str = ""


def consent_fields_parse(row: dict[str, Any]) -> tuple[ConsentFields, list[tuple[str, str]]]:
    """The ledger's optional fields of a row (CSV or API item), and the problems found."""
    values: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for column, longest in CONSENT_COLUMNS.items():
        value = row.get(column)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > longest or "\x00" in value:
            problems.append((column, _("Must be text of at most %(n)s characters.") % {"n": longest}))
            continue
        values[column] = value.strip()
    method = values.get("consent_method", "") or ConsentRecord.Source.IMPORT
    if method not in ConsentRecord.Source.values:
        problems.append(("consent_method", _("Use form, sms_keyword, contract or import.")))
    ip = values.get("consent_ip") or None
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            problems.append(("consent_ip", _("Not an IP address.")))
    given = bool(values) or row.get("consent_at") not in (None, "")
    fields = ConsentFields(
        given=given,
        method=method,
        wording=values.get("consent_wording", ""),
        order_id=values.get("consent_order_id", ""),
        page_version=values.get("consent_page_version", ""),
        ip=ip,
        captured_by=values.get("consent_captured_by", ""),
    )
    return fields, problems


def subscription_consents_record(
    *,
    tenant: Tenant,
    done: Upserted,
    evidence: dict[Key, tuple[Subscription, ConsentFields]],
    captured_by: str,
) -> int:
    """The ledger's records of the imported rows that gave consent evidence (not the ones
    skipped because the number opted out). Call inside the import's transaction."""
    consents = [
        ConsentEvidence(
            service_id=subscription.service_id,
            phone_hash=subscription.phone_hash,
            phone_masked=subscription.phone_masked,
            given_at=subscription.consent_at or timezone.now(),
            source=fields.method,
            source_detail=subscription.consent_source,
            wording=fields.wording,
            order_id=fields.order_id,
            page_version=fields.page_version,
            ip=fields.ip,
            captured_by=fields.captured_by,
        )
        for key, (subscription, fields) in evidence.items()
        if fields.given and done.outcomes.get(key) in ("created", "updated")
    ]
    return len(consents_record(tenant=tenant, consents=consents, captured_by=captured_by))


# --- the upsert shared by the CSV and the API imports ---------------------------------------------


@dataclass(frozen=True)
class Upserted:
    outcomes: dict[Key, Outcome]  # one per distinct (service, number)
    duplicates: int  # items that repeated a (service, number) of this call; the last won

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def subscriptions_upsert(*, tenant: Tenant, subscriptions: list[Subscription]) -> Upserted:
    """Create or update active subscriptions (the last one wins when a (service,
    number) repeats). A number that opted out, of that service or of all marketing
    (a suppression), or whose subscription was ended, is skipped: an import never
    restarts marketing that was stopped nor stores again a number that was erased.
    Call inside a transaction."""
    unique: dict[Key, Subscription] = {}
    for subscription in subscriptions:
        key = (subscription.service_id, subscription.phone_hash)
        unique.pop(key, None)  # re-insert: the last one wins, in its position
        unique[key] = subscription
    duplicates = len(subscriptions) - len(unique)
    if not unique:
        return Upserted({}, duplicates)
    digests = {digest for _service, digest in unique}
    suppressed: dict[str, set[str]] = defaultdict(set)
    for digest, scope in (
        Suppression.objects.for_tenant(tenant)
        .filter(phone_hash__in=digests)
        .values_list("phone_hash", "scope")
    ):
        suppressed[digest].add(scope)
    # Locked (PostgreSQL): an opt-out ending these rows meanwhile waits for this
    # transaction, so an ended row is never written to (nor its number stored again).
    existing = {
        (service, digest): status
        for service, digest, status in Subscription.objects.for_tenant(tenant)
        .filter(service_id__in={service for service, _digest in unique}, phone_hash__in=digests)
        .select_for_update()
        .order_by("pk")
        .values_list("service_id", "phone_hash", "status")
    }
    outcomes: dict[Key, Outcome] = {}
    saved: list[Subscription] = []
    for key, subscription in unique.items():
        status = existing.get(key)
        if suppressed[key[1]] & {SCOPE_ALL, subscription.service.code} or status == Subscription.Status.ENDED:
            outcomes[key] = "opted_out"
            continue
        subscription.status = Subscription.Status.ACTIVE
        saved.append(subscription)
        outcomes[key] = "created" if status is None else "updated"
    Subscription.objects.bulk_create(
        saved,
        update_conflicts=True,
        unique_fields=["service", "phone_hash"],
        update_fields=["phone", "phone_masked", "consent_source", "consent_at", "updated_at"],
        batch_size=BATCH,
    )
    # One audit entry per batch: its counts and a digest of which number went which way (no number).
    counts: Counter[str] = Counter(outcomes.values())
    audit_append(
        tenant_id=tenant.pk,
        kind="subscriptions.imported",
        payload={
            **{outcome: counts[outcome] for outcome in ("created", "updated", "opted_out")},
            "duplicates": duplicates,
            "rows_sha256": sha256(
                "\n".join(
                    sorted(f"{service} {digest} {o}" for (service, digest), o in outcomes.items())
                ).encode()
            ),
        },
    )
    return Upserted(outcomes, duplicates)


# --- the CSV import ------------------------------------------------------------------------------


def _rows(import_: SubscriptionImport) -> Iterator[dict[str, str]]:
    with import_.file.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        yield from csv.DictReader(text)


def _count_rows(import_: SubscriptionImport) -> int:
    with import_.file.open("rb") as raw:
        return max(sum(1 for _line in raw) - 1, 0)


@dataclass
class _Run:
    """What one import run carries from batch to batch."""

    import_: SubscriptionImport
    services: dict[str, Service]
    zone: tzinfo
    digest: Callable[[str], str]  # the tenant digest, its keys computed once for the whole file
    row_errors: list[str] = field(default_factory=list)
    batch_errors: list[str] = field(default_factory=list)  # never dropped: rows not saved
    seen: set[Key] = field(default_factory=set)  # keys saved or skipped by earlier batches
    evidence: dict[Key, tuple[Subscription, ConsentFields]] = field(default_factory=dict)  # this batch's
    failed_in_a_row: int = 0

    def errors(self) -> list[str]:
        return self.batch_errors + self.row_errors[: max(MAX_ERRORS_KEPT - len(self.batch_errors), 0)]


def subscription_import_run(import_id: int) -> SubscriptionImport:
    imports = SubscriptionImport.objects.unscoped(reason="a worker runs an import by its id")
    claimed = imports.filter(pk=import_id, status=SubscriptionImport.Status.PENDING).update(
        status=SubscriptionImport.Status.RUNNING
    )
    import_ = imports.select_related("tenant").get(pk=import_id)
    if not claimed:
        return import_
    # The messages are stored, so they are written in the tenant's language.
    with translation.override(import_.tenant.default_language):
        return _import(import_)


def _import(import_: SubscriptionImport) -> SubscriptionImport:
    import_.total_rows = _count_rows(import_)
    import_.save(update_fields=["total_rows"])
    run = _Run(
        import_=import_,
        services={s.code: s for s in Service.objects.for_tenant(import_.tenant)},
        zone=tenant_zone(import_.tenant),
        digest=phones.tenant_phone_hasher(import_.tenant_id),
    )
    batch: list[Subscription] = []
    first_line = last_line = 2
    status = SubscriptionImport.Status.DONE
    try:
        for last_line, row in enumerate(_rows(import_), start=2):
            subscription = _subscription_from_row(run, row, last_line)
            if subscription is not None:
                batch.append(subscription)
            import_.rows_done += 1
            if import_.rows_done % BATCH == 0:
                if not _flush(run, batch, first_line, last_line):
                    status = SubscriptionImport.Status.FAILED
                batch, first_line, run.evidence = [], last_line + 1, {}
        if batch and not _flush(run, batch, first_line, last_line):
            status = SubscriptionImport.Status.FAILED
    except (UnicodeDecodeError, csv.Error) as exc:
        status = SubscriptionImport.Status.FAILED
        run.batch_errors.append(
            _("The file could not be read from line %(line)s on (%(error)s); those rows were not imported.")
            % {"line": first_line, "error": exc}
        )
    except Exception as exc:
        # A bug, the database gone, a time limit: never leave it "running" for good,
        # and say from which line on nothing was saved.
        logger.exception("subscription import %s failed", import_.pk)
        status = SubscriptionImport.Status.FAILED
        run.batch_errors.append(
            _("The import stopped at line %(line)s (%(error)s): that line and the rest were not imported.")
            % {"line": first_line, "error": type(exc).__name__}
        )
        _finish(run, status)
        raise
    _finish(run, status)
    return import_


def _finish(run: _Run, status: str) -> None:
    import_ = run.import_
    import_.status = status
    import_.errors = run.errors()
    import_.finished_at = timezone.now()
    _file_delete(import_)
    import_.save()


def _file_delete(import_: SubscriptionImport) -> None:
    """The upload holds the tenant's numbers: gone once it has been read; the field is cleared."""
    if not import_.file:
        return
    try:
        import_.file.delete(save=False)  # clears the field too
    except OSError:  # the storage refused: the field is cleared anyway, the file expiry deletes it
        logger.warning("subscription import %s: the upload could not be deleted", import_.pk, exc_info=True)
        import_.file.name = None


def subscription_import_files_expire(*, now: datetime | None = None) -> int:
    """The file expiry's part for imports: an import whose upload is still there after
    UPLOAD_MAX_AGE was abandoned (never ran, or its worker died mid-way): it is marked
    failed, saying so, and the upload deleted. A finished import that still names a
    file (one finished before uploads were deleted) loses it too. Returns the count."""
    now = now or timezone.now()
    imports = SubscriptionImport.objects.unscoped(reason="the file expiry covers every tenant's imports")
    expired = 0
    for import_ in (
        imports.select_related("tenant").filter(created_at__lt=now - UPLOAD_MAX_AGE).exclude(file="")[:500]
    ):
        if import_.status in (SubscriptionImport.Status.PENDING, SubscriptionImport.Status.RUNNING):
            with translation.override(import_.tenant.default_language):
                import_.errors = [
                    *import_.errors,
                    _(
                        "The import did not finish within %(hours)d hours; its file was deleted. "
                        "Rows not counted above were not imported: upload the file again."
                    )
                    % {"hours": UPLOAD_MAX_AGE // timedelta(hours=1)},
                ]
            import_.status = SubscriptionImport.Status.FAILED
            import_.finished_at = now
        _file_delete(import_)
        import_.save()
        expired += 1
    return expired


def subscription_import_deleted(sender: type, instance: SubscriptionImport, **kwargs: Any) -> None:
    """post_delete of an import (connected in apps.py): its upload goes with it."""
    if instance.file:
        instance.file.delete(save=False)


def _row_error(run: _Run, line_no: int, message: str) -> None:
    run.import_.invalid += 1
    run.row_errors.append(_("line %(line)s: %(problem)s") % {"line": line_no, "problem": message})


def _subscription_from_row(run: _Run, row: dict[str, Any], line_no: int) -> Subscription | None:
    code = (row.get("service") or "").strip()
    service = run.services.get(code)
    if service is None:
        _row_error(run, line_no, _("unknown service %(code)r") % {"code": code})
        return None
    try:
        e164 = phones.normalise_fast(row.get("phone") or "")
    except phones.InvalidPhoneNumber:
        _row_error(run, line_no, _("invalid number"))
        return None
    try:
        consent_at = consent_time_parse(row.get("consent_at") or "", tz=run.zone)
    except InstantError as exc:
        _row_error(run, line_no, _("consent_at: %(problem)s") % {"problem": exc.message})
        return None
    fields, problems = consent_fields_parse(row)
    if problems:
        column, problem = problems[0]
        _row_error(run, line_no, f"{column}: {problem}")
        return None
    subscription = Subscription(
        tenant_id=run.import_.tenant_id,
        service=service,
        phone=e164,
        phone_hash=run.digest(e164),
        phone_masked=phones.mask(e164),
        status=Subscription.Status.ACTIVE,
        consent_source=((row.get("consent_source") or "").strip() or source_text(row, fields))[:200],
        consent_at=consent_at or timezone.now(),
    )
    key = (service.pk, subscription.phone_hash)
    run.evidence.pop(key, None)  # the last row of a number and service wins, as in the upsert
    run.evidence[key] = (subscription, fields)
    return subscription


def source_text(row: dict[str, Any], fields: ConsentFields) -> str:
    """Subscription.consent_source, kept for compatibility: the ledger's source when the row names one."""
    return fields.method if row.get("consent_method") else ""


def _flush(run: _Run, batch: list[Subscription], first_line: int, last_line: int) -> bool:
    """Save one batch and its counts together; False if the database refused it
    (then nothing of it is saved, and `errors` says which lines to import again)."""
    import_ = run.import_
    counted = ["rows_done", "created", "updated", "invalid", "skipped_opted_out", "duplicates"]
    try:
        with transaction.atomic():
            done = subscriptions_upsert(tenant=import_.tenant, subscriptions=batch)
            subscription_consents_record(
                tenant=import_.tenant,
                done=done,
                evidence=run.evidence,
                captured_by=f"CSV import {import_.pk}",
            )
            tally = _tally(run, done)
            for name, value in tally.items():
                setattr(import_, name, getattr(import_, name) + value)
            import_.save(update_fields=counted)
    except DatabaseError as exc:
        logger.exception("subscription import %s: lines %s-%s failed", import_.pk, first_line, last_line)
        run.failed_in_a_row += 1
        run.batch_errors.append(
            _("Lines %(first)s–%(last)s were not imported (%(error)s); import them again.")
            % {"first": first_line, "last": last_line, "error": type(exc).__name__}
        )
        if run.failed_in_a_row >= MAX_FAILED_BATCHES:
            raise
        SubscriptionImport.objects.for_tenant(import_.tenant_id).filter(pk=import_.pk).update(
            rows_done=import_.rows_done
        )
        return False
    run.failed_in_a_row = 0
    run.seen.update(done.outcomes)
    return True


def _tally(run: _Run, done: Upserted) -> Counter[str]:
    tally: Counter[str] = Counter(duplicates=done.duplicates)
    names = {"created": "created", "updated": "updated", "opted_out": "skipped_opted_out"}
    for key, outcome in done.outcomes.items():
        # A row repeating one of an earlier batch won (it was written last) but
        # was counted there already.
        tally["duplicates" if key in run.seen else names[outcome]] += 1
    return tally


def subscription_import_start(*, import_: SubscriptionImport) -> None:
    transaction.on_commit(lambda: tasks.import_subscriptions.delay(import_.pk))
