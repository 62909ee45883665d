"""Issue 19, item 11: uploads are limited, one by one and per API key per day.

A scrub list over LANZUAN_SCRUB_MAX_UPLOAD_BYTES is refused with a 413 problem before a
byte of it is read (its Content-Length), or while it is read when the Content-Length hides
it; a body without a Content-Length (chunked) is refused unread; an API key past its
uploads or bytes of the day gets 413 `upload_quota_exceeded` with Retry-After until
midnight in the tenant's time zone, and the next day it may upload again; other keys, of
the same tenant or another, are not affected. The admin's CSV import has its own size
limit. Through the real API and admin, with small limits; every refused upload leaves no
job or import row, no file (not even a temporary one) and no raw number anywhere.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse
from rest_framework.test import APIClient

from tenants.models import Tenant, TenantAPIKey
from tenants.services import api_key_create
from unsubscribe.models import SubscriptionImport
from unsubscribe.partner import upload_limits
from unsubscribe.partner.models import ScrubJob

from .scan import unique_number

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from pytest_django import Settings
    from rest_framework.response import _MonkeyPatchedResponse as ApiResponse

    from .conftest import RawNumbers
    from .ledger import Ledger

SCRUB_URL = "/api/v1/scrub-jobs"
IMPORT_URL = "/api/v1/subscriptions/import"
PROBLEM = "application/problem+json"
EN: dict[str, Any] = {"HTTP_ACCEPT_LANGUAGE": "en"}
# 23:59:30 in Shanghai (UTC+8), the tenants' zone: 30 s before their day rolls over.
LATE = datetime(2026, 6, 1, 15, 59, 30, tzinfo=UTC)


class CountingInput(io.BytesIO):
    """A request body that counts what the server reads of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.bytes_read += len(line)
        return line


def key_client(tenant: Tenant, name: str = "uploads") -> tuple[APIClient, TenantAPIKey]:
    key, secret = api_key_create(tenant=tenant, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client, key


def numbers_file(*numbers: str, size: int = 0) -> bytes:
    """A scrub list: a header and the numbers, padded with other valid numbers to `size` bytes."""
    lines = ["phone", *numbers]
    body = "\n".join(lines) + "\n"
    filler = 0
    while len(body) < size:
        body += f"+8613700{filler % 1_000_000:06d}\n"
        filler += 1
    return body.encode()


def scrub_upload(client: APIClient, data: bytes, **extra: Any) -> ApiResponse:
    upload = SimpleUploadedFile("list.csv", data, content_type="text/csv")
    response: ApiResponse = client.post(SCRUB_URL, {"file": upload}, format="multipart", **EN, **extra)
    return response


def raw_post(
    client: APIClient | Client, url: str, body: bytes, content_type: str, content_length: str | None
) -> tuple[Any, CountingInput]:
    """POST with a body the test controls: its declared length (None: no header, as a chunked
    request has none) and a counter of what the server read of it."""
    stream = CountingInput(body)
    extra: dict[str, Any] = {"wsgi.input": stream, "CONTENT_LENGTH": content_length or ""}
    if content_length is None:
        extra["HTTP_TRANSFER_ENCODING"] = "chunked"
    # (the body as text only types the call: wsgi.input replaces what the client would send)
    response = client.generic("POST", url, body.decode("ascii"), content_type=content_type, **EN, **extra)
    return response, stream


def multipart(data: bytes, field: str = "file") -> bytes:
    return encode_multipart(BOUNDARY, {field: SimpleUploadedFile("list.csv", data, content_type="text/csv")})


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


def stored_files() -> set[Path]:
    roots = {Path(django_settings.VAR_DIR), Path(django_settings.MEDIA_ROOT)}
    return {path for root in roots if root.exists() for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def upload_tmp(settings: Settings, tmp_path: Path) -> Path:
    """Every upload goes through a temporary file in a folder of the test's own."""
    folder = tmp_path / "upload-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    return folder


# --- one upload too large -------------------------------------------------------------------


def test_an_oversized_scrub_list_is_refused_before_it_is_read_and_nothing_is_kept(
    tenant_a: Tenant,
    settings: Settings,
    upload_tmp: Path,
    raw_numbers: RawNumbers,
    fault_ledger: Ledger,
) -> None:
    settings.LANZUAN_SCRUB_MAX_UPLOAD_BYTES = 100 * 1024
    client, key = key_client(tenant_a)
    number = unique_number()
    before = stored_files()

    # a list of 200 MB, as its Content-Length says: refused on the header, unread
    body = multipart(numbers_file(number, size=4096))
    response, stream = raw_post(client, SCRUB_URL, body, MULTIPART_CONTENT, str(200 * 2**20))
    detail = problem(response, 413, "upload_too_large")["detail"]
    assert detail == "The file is larger than 100 KB, the most one upload may be; split the list."
    assert stream.bytes_read == 0
    # one honestly a little over the limit plus the multipart framing: refused unread too
    body = multipart(numbers_file(number, size=170 * 1024))
    response, stream = raw_post(client, SCRUB_URL, body, MULTIPART_CONTENT, str(len(body)))
    problem(response, 413, "upload_too_large")
    assert stream.bytes_read == 0
    # a list whose Content-Length is within the framing's allowance is stopped as it is read,
    # after a first chunk went into a temporary file: that file is deleted
    response = scrub_upload(client, numbers_file(number, size=150 * 1024))
    body_json = problem(response, 413, "upload_too_large")
    assert [e["field"] for e in body_json["errors"]] == ["file"]
    fault_ledger.count(faults=3)

    assert not ScrubJob.objects.for_tenant(tenant_a).exists()
    assert stored_files() - before == set()
    assert list(upload_tmp.iterdir()) == []
    assert upload_limits.uploads_used(api_key=key, tenant=tenant_a) == (0, 0)  # refused: not counted
    assert raw_numbers(number) == []
    # the limit is the file's: a list just under it is taken
    accepted = scrub_upload(client, numbers_file(size=100 * 1024 - 100))
    assert accepted.status_code == 202, accepted.content[:300]
    ScrubJob.objects.for_tenant(tenant_a).get().delete()  # its list goes with it
    assert stored_files() - before == set()


@pytest.mark.parametrize("url", [SCRUB_URL, IMPORT_URL])
def test_a_chunked_upload_without_content_length_is_refused_unread(
    url: str, tenant_a: Tenant, settings: Settings, raw_numbers: RawNumbers, fault_ledger: Ledger
) -> None:
    settings.LANZUAN_SCRUB_MAX_UPLOAD_BYTES = 1024
    client, key = key_client(tenant_a)
    number = unique_number()
    if url == SCRUB_URL:
        body, content_type = multipart(numbers_file(number, size=64 * 1024)), MULTIPART_CONTENT
    else:
        body = json.dumps([{"phone": number, "service": "offers"}] * 2000).encode()
        content_type = "application/json"
    response, stream = raw_post(client, url, body, content_type, None)
    assert problem(response, 411, "length_required")["detail"] == (
        "Send the upload with a Content-Length header; a chunked body cannot be read."
    )
    assert stream.bytes_read == 0
    fault_ledger.count(faults=1)
    assert not ScrubJob.objects.for_tenant(tenant_a).exists()
    assert upload_limits.uploads_used(api_key=key, tenant=tenant_a) == (0, 0)
    assert raw_numbers(number) == []


def test_an_import_body_over_the_json_limit_is_refused_unread_and_not_counted(
    tenant_a: Tenant, settings: Settings
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client, key = key_client(tenant_a)
    body = json.dumps([{"phone": unique_number(), "service": "offers"}] * 1000).encode()
    response, stream = raw_post(client, IMPORT_URL, body, "application/json", str(len(body)))
    problem(response, 413, "too_large")
    assert stream.bytes_read == 0
    assert upload_limits.uploads_used(api_key=key, tenant=tenant_a) == (0, 0)


# --- a key's day ---------------------------------------------------------------------------


@time_machine.travel(LATE, tick=False)
def test_a_key_past_its_uploads_of_the_day_gets_413_until_midnight_in_the_tenants_zone(
    tenant_a: Tenant,
    tenant_b: Tenant,
    settings: Settings,
    raw_numbers: RawNumbers,
    fault_ledger: Ledger,
) -> None:
    settings.LANZUAN_UPLOADS_PER_KEY_PER_DAY = 2
    busy, busy_key = key_client(tenant_a, "busy")
    colleague, _colleague_key = key_client(tenant_a, "colleague")
    other, _other_key = key_client(tenant_b, "other tenant")

    # scrub uploads and imports count alike
    assert scrub_upload(busy, numbers_file(unique_number())).status_code == 202
    imported = busy.post(IMPORT_URL, [{"phone": unique_number(), "service": "nope"}], format="json", **EN)
    assert imported.status_code == 200, imported.content[:300]
    assert upload_limits.uploads_used(api_key=busy_key, tenant=tenant_a)[0] == 2

    refused_number = unique_number()
    response = scrub_upload(busy, numbers_file(refused_number))
    body = problem(response, 413, "upload_quota_exceeded")
    assert body["detail"] == (
        "This API key has made 2 uploads today, the most one key may make a day; "
        "try again after midnight (Asia/Shanghai)."
    )
    assert response["Retry-After"] == "30"  # 23:59:30 in Shanghai
    refused_import = busy.post(IMPORT_URL, [{"phone": refused_number, "service": "offers"}], format="json")
    assert problem(refused_import, 413, "upload_quota_exceeded")["title"]
    assert refused_import["Retry-After"] == "30"
    fault_ledger.count(faults=2)
    assert ScrubJob.objects.for_tenant(tenant_a).count() == 1  # the refused list made no job
    assert upload_limits.uploads_used(api_key=busy_key, tenant=tenant_a)[0] == 2

    # another key of the same tenant, and another tenant's key, upload as before
    assert scrub_upload(colleague, numbers_file(unique_number())).status_code == 202
    assert scrub_upload(other, numbers_file(unique_number())).status_code == 202

    # the tenant's day rolls over at midnight in Shanghai (16:00 UTC), not at UTC's
    with time_machine.travel(LATE + timedelta(seconds=31), tick=False):
        assert scrub_upload(busy, numbers_file(unique_number())).status_code == 202
    for job in ScrubJob.objects.unscoped(reason="test clean-up"):
        job.delete()
    assert raw_numbers(refused_number) == []


def test_the_day_follows_the_tenants_time_zone_across_a_clock_change(tenant_a: Tenant) -> None:
    tenant_a.time_zone = "America/New_York"
    # 2026-03-08 is 23 hours long in New York: from 01:00 EST (06:00 UTC) to its end is 22 h
    day, left = upload_limits.upload_day(tenant_a, now=datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    assert (day.isoformat(), left) == ("2026-03-08", 22 * 3600)


@time_machine.travel(LATE, tick=False)
def test_a_key_past_its_bytes_of_the_day_gets_413_and_a_smaller_upload_still_fits(
    tenant_a: Tenant, settings: Settings, raw_numbers: RawNumbers, fault_ledger: Ledger
) -> None:
    settings.LANZUAN_UPLOAD_BYTES_PER_KEY_PER_DAY = 6000
    client, key = key_client(tenant_a)
    assert scrub_upload(client, numbers_file(size=2000)).status_code == 202
    assert scrub_upload(client, numbers_file(size=2000)).status_code == 202
    used_count, used_bytes = upload_limits.uploads_used(api_key=key, tenant=tenant_a)
    assert used_count == 2 and 4000 < used_bytes < 5000  # request bodies, framing included

    refused_number = unique_number()
    response = scrub_upload(client, numbers_file(refused_number, size=2000))
    body = problem(response, 413, "upload_quota_exceeded")
    assert body["detail"] == (
        "This upload would take this API key past 5.9 KB of uploads today, the most one key may send a "
        "day; try again after midnight (Asia/Shanghai)."
    )
    assert response["Retry-After"] == "30"
    fault_ledger.count(faults=1)
    assert upload_limits.uploads_used(api_key=key, tenant=tenant_a) == (used_count, used_bytes)
    assert ScrubJob.objects.for_tenant(tenant_a).count() == 2
    # what is left of the day still takes a small list
    assert scrub_upload(client, numbers_file(unique_number())).status_code == 202
    for job in ScrubJob.objects.for_tenant(tenant_a):
        job.delete()
    assert raw_numbers(refused_number) == []


# --- the admin's CSV import -------------------------------------------------------------------


def import_csv(*numbers: str, size: int = 0) -> bytes:
    body = "phone,service,consent_source,consent_at\n" + "".join(f"{n},offers,,\n" for n in numbers)
    filler = 0
    while len(body) < size:
        body += f"+8613700{filler % 1_000_000:06d},offers,,\n"
        filler += 1
    return body.encode()


def test_the_admins_import_refuses_a_file_over_its_limit_and_keeps_nothing(
    tenant_a: Tenant,
    root: User,
    settings: Settings,
    upload_tmp: Path,
    raw_numbers: RawNumbers,
    fault_ledger: Ledger,
) -> None:
    settings.LANZUAN_IMPORT_MAX_UPLOAD_BYTES = 100 * 1024
    url = reverse("admin:unsubscribe_subscription_import")
    client = Client()
    client.force_login(root)
    number = unique_number()
    before = stored_files()

    fields = {"tenant": str(tenant_a.pk)}
    body = encode_multipart(
        BOUNDARY,
        {**fields, "file": SimpleUploadedFile("subs.csv", import_csv(number, size=4096))},
    )
    response, stream = raw_post(client, url, body, MULTIPART_CONTENT, str(200 * 2**20))
    assert response.status_code == 413
    assert stream.bytes_read == 0
    assert "The file is larger than 100 KB" in response.content.decode()
    # stopped while read, after a first chunk reached a temporary file
    big = SimpleUploadedFile("subs.csv", import_csv(number, size=150 * 1024))
    response = client.post(url, {**fields, "file": big}, **EN)
    assert response.status_code == 413
    assert "split it into several files" in response.content.decode()
    fault_ledger.count(faults=2)

    assert not SubscriptionImport.objects.for_tenant(tenant_a).exists()
    assert stored_files() - before == set()
    assert list(upload_tmp.iterdir()) == []
    assert raw_numbers(number) == []
    # a file within the limit is taken as before, and the CSRF check still holds
    small = SimpleUploadedFile("subs.csv", import_csv(unique_number()))
    assert client.post(url, {**fields, "file": small}).status_code == 302
    SubscriptionImport.objects.for_tenant(tenant_a).get().delete()
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(root)
    small = SimpleUploadedFile("subs.csv", import_csv(unique_number()))
    assert guarded.post(url, {**fields, "file": small}).status_code == 403


# --- documented -----------------------------------------------------------------------------


def test_the_schema_documents_the_411_and_413_of_both_upload_endpoints(db: None) -> None:
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    for path, codes in (
        ("/api/v1/scrub-jobs", {"upload_too_large", "too_many_numbers", "upload_quota_exceeded"}),
        ("/api/v1/subscriptions/import", {"too_large", "too_many_numbers", "upload_quota_exceeded"}),
    ):
        responses = schema["paths"][path]["post"]["responses"]
        examples = responses["413"]["content"][PROBLEM]["examples"]
        assert {example["value"]["code"] for example in examples.values()} == codes
        assert "Retry-After" in responses["413"]["headers"]
        assert "Retry-After" in responses["429"]["headers"]
        assert PROBLEM in responses["411"]["content"]
