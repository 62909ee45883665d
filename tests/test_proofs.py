"""Signed receipts, /verify/ and the proof pack (issue 15).

A person's receipt is a signed document anyone can check at /verify/ or offline with the
published key; an altered or forged one is refused. The proof pack of a request is a ZIP for a
regulator, from the admin and the API, scoped to the tenant, with no raw number anywhere in it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import re
import zipfile
from contextlib import nullcontext
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lanzuan import phones, signing_keys
from tenants.models import Tenant
from unsubscribe import links
from unsubscribe.consents.services import ConsentEvidence, consents_record
from unsubscribe.inbound.services import inbound_message_receive
from unsubscribe.models import AuditEntry, Service, UnsubscribeRequest
from unsubscribe.proofs import signed_receipt as receipts
from unsubscribe.proofs.canonical import canonical_bytes

from .conftest import PASSWORD
from .pipeline_helpers import E164, Language, subscriber

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django import Settings

    from .pipeline_helpers import Pipeline

KEY_OLD = signing_keys.new_private_key()
KEY_NEW = signing_keys.new_private_key()
EN: Language = {"HTTP_ACCEPT_LANGUAGE": "en"}
# The README's offline check, exactly as printed there (test_readme_snippet_is_this_one keeps them equal).
README_SNIPPET_START = "<!-- offline-verify -->"


def completed_request(tenant: Tenant, pipeline: Pipeline | None, number: str = E164) -> UnsubscribeRequest:
    """A request filed by a reply SMS whose text quotes the number, run to completion, with a
    consent on record and the confirmation sent. Without `pipeline`, the caller runs the work
    (real transactions and eager Celery: the browser tests)."""
    services = subscriber(tenant, number)
    digest = phones.tenant_phone_hash(tenant.pk, number)
    consents_record(
        tenant=tenant,
        consents=[
            ConsentEvidence(
                service_id=services[0].pk,
                phone_hash=digest,
                phone_masked=phones.mask(number),
                given_at=timezone.now() - timedelta(days=30),
                source="form",
                wording="我同意接收优惠短信",
                order_id="ORDER-1",
            )
        ],
        captured_by="signup form",
    )
    with pipeline() if pipeline is not None else nullcontext():
        inbound_message_receive(
            tenant=tenant,
            provider="generic",
            message_id="mo-1",
            from_number=number,
            to="106900001234",
            body=f"TD 退订，别再发到 {number.removeprefix('+86')} 了",
        )
    request = UnsubscribeRequest.objects.for_tenant(tenant).get()
    assert request.state == UnsubscribeRequest.State.COMPLETED, (request.state, request.attention_reason)
    return request


@pytest.fixture
def signing(settings: Settings) -> Settings:
    settings.LANZUAN_SIGNING_KEYS = [KEY_OLD]
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = []
    # Every check counts against the network's hourly budget; only the test of that budget spends it.
    settings.LANZUAN_VERIFY_CHECKS_PER_IP_HOUR = 10**6
    return settings


def published_key(client: Client, kid: str) -> dict[str, str]:
    keys = client.get("/.well-known/lanzuan-keys.json").json()["keys"]
    return next(key for key in keys if key["kid"] == kid)


# --- the signed receipt --------------------------------------------------------------------------


def test_a_completed_requests_receipt_says_what_happened_and_verifies(
    tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    # given
    request = completed_request(tenant_a, pipeline)

    # when
    receipt = receipts.signed_receipt(request)

    # then it names the request, masked, and every step with its time and receipt
    assert receipt["format"] == "lanzuan-receipt/1"
    assert receipt["reference"] == request.reference
    assert receipt["number"] == "138****8000"
    assert receipt["tenant"]["slug"] == tenant_a.slug
    assert receipt["scope"] == {"all_marketing": True, "services": []}
    assert receipt["channel"] == "sms"
    assert receipt["times"]["completed"] and receipt["times"]["suppressed"] and receipt["times"]["filed"]
    kinds = {step["kind"] for step in receipt["steps"]}
    assert kinds == {"terminate", "confirm", "erase"}
    assert all(step["completed_at"] and step["status"] == "succeeded" for step in receipt["steps"])
    assert receipt["deadlines"] and all(d["met_at"] for d in receipt["deadlines"])
    assert receipt["signature"]["alg"] == "Ed25519"
    assert E164 not in json.dumps(receipt) and "13800138000" not in json.dumps(receipt)
    assert receipts.receipt_check(receipts.receipt_file(receipt).decode()).genuine
    assert receipts.receipt_check(receipts.compact(receipt)).genuine


# --- the person's pages --------------------------------------------------------------------------


def test_the_status_page_offers_the_signed_receipt_as_a_file_and_as_text(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    # given the confirmation's signed status link
    request = completed_request(tenant_a, pipeline)
    status = client.get(links.status_url(request, absolute=False), **EN)
    page = status.content.decode()
    assert 'data-testid="signed-receipt"' in page

    # when the person downloads the receipt
    download = re.search(r'href="([^"]+)" download data-testid="receipt-download"', page)
    assert download
    response = client.get(download.group(1).replace("&amp;", "&"))

    # then it is a JSON file that verifies, and the page's text form is the same receipt
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert f'filename="lanzuan-receipt-{request.reference}.json"' in response["Content-Disposition"]
    assert receipts.receipt_check(response.content.decode()).genuine
    compact = re.search(r'data-testid="receipt-compact">([^<]+)<', page)
    assert compact and compact.group(1).startswith("LZR1.")
    assert receipts.receipt_check(compact.group(1)).document["reference"] == request.reference


def test_a_receipt_download_with_a_bad_token_shows_the_status_form(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)
    url_a = reverse("optout-signed-receipt", args=[tenant_a.slug])
    url_b = reverse("optout-signed-receipt", args=[tenant_b.slug])
    token = links.status_token(request)

    assert client.get(url_a + "?token=forged").status_code == 302
    # another tenant's page never hands out A's receipt
    assert client.get(url_b + "?token=" + token).status_code == 302
    assert client.get(url_a + "?token=" + token).status_code == 200


# --- /verify/ --------------------------------------------------------------------------------------


def _verify(client: Client, language: str = "en", remote: str = "127.0.0.1", **data: Any) -> Any:
    return client.post("/verify/", data, HTTP_ACCEPT_LANGUAGE=language, REMOTE_ADDR=remote)


def test_verify_shows_a_genuine_receipt_and_what_it_says(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)
    receipt = receipts.signed_receipt(request)

    pasted = _verify(client, receipt=receipts.compact(receipt))
    uploaded = _verify(
        client,
        file=SimpleUploadedFile("r.json", receipts.receipt_file(receipt), content_type="application/json"),
    )

    for response in (pasted, uploaded):
        page = response.content.decode()
        assert response.status_code == 200
        assert 'data-testid="verify-genuine"' in page
        assert request.reference in page and "138****8000" in page and tenant_a.name in page
        assert page.count('data-testid="verify-step"') == len(receipt["steps"])


def test_verify_reads_in_chinese(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)
    receipt = receipts.signed_receipt(request)

    genuine = _verify(client, "zh-hans", receipt=receipts.compact(receipt)).content.decode()
    empty = _verify(client, "zh-hans", receipt="").content.decode()

    assert "真实" in genuine
    assert "粘贴" in empty


def _altered(receipt: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(receipt))
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("reference",), "AAAA-BBBB"),
        (("number",), "139****0000"),
        (("times", "completed"), "2020-01-01T00:00:00Z"),
        (("steps", 0, "status"), "failed"),
        (("scope", "all_marketing"), False),
        (("tenant", "name"), "Someone else"),
    ],
)
def test_verify_refuses_an_altered_receipt(
    client: Client,
    tenant_a: Tenant,
    pipeline: Pipeline,
    signing: Settings,
    path: tuple[Any, ...],
    value: Any,
) -> None:
    receipt = receipts.signed_receipt(completed_request(tenant_a, pipeline))
    altered = _altered(receipt, path, value)

    response = _verify(client, receipt=json.dumps(altered))

    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="verify-genuine"' not in page
    assert "changed after it was signed" in page
    assert receipts.receipt_check(json.dumps(altered)).outcome == receipts.ALTERED


def test_verify_refuses_a_receipt_signed_with_an_unpublished_key(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, settings: Settings
) -> None:
    # given a receipt signed by a key that was never published (a forger's own key)
    settings.LANZUAN_SIGNING_KEYS = [signing_keys.new_private_key()]
    forged = receipts.signed_receipt(completed_request(tenant_a, pipeline))
    settings.LANZUAN_SIGNING_KEYS = [KEY_OLD]

    response = _verify(client, receipt=json.dumps(forged))

    assert response.status_code == 400
    assert "never published" in response.content.decode()


def test_verify_refuses_a_receipt_whose_signature_was_swapped_for_another_keys(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, settings: Settings
) -> None:
    # given a published kid on a signature made by another key
    settings.LANZUAN_SIGNING_KEYS = [signing_keys.new_private_key()]
    forged = receipts.signed_receipt(completed_request(tenant_a, pipeline))
    settings.LANZUAN_SIGNING_KEYS = [KEY_OLD]
    forged["signature"]["kid"] = signing_keys.public_keys()[0]["kid"]

    assert _verify(client, receipt=json.dumps(forged)).status_code == 400
    assert receipts.receipt_check(json.dumps(forged)).outcome == receipts.ALTERED


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "LZR1.@@@@",
        "LZR1." + base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "[1, 2, 3]",
        '{"format": "lanzuan-receipt/1"}',
        '{"format": "lanzuan-receipt/1", "signature": {"kid": "x", "alg": "RSA", "value": "x"}}',
        '{"format": "lanzuan-receipt/1", "n": 1.5, "signature": {"kid": "x", "alg": "Ed25519", "value": "x"}}',
        "[" * 5000,
    ],
)
def test_verify_says_why_a_malformed_text_is_not_a_receipt(
    client: Client, signing: Settings, text: str
) -> None:
    response = _verify(client, receipt=text)

    assert response.status_code == 400
    assert "not a Lanzuan receipt" in response.content.decode()


def test_verify_asks_for_a_receipt_when_given_nothing(client: Client, signing: Settings) -> None:
    response = _verify(client, receipt="   ")

    assert response.status_code == 400
    assert "Paste the receipt" in response.content.decode()


def test_verify_refuses_a_huge_upload_before_reading_it(client: Client, signing: Settings) -> None:
    big = SimpleUploadedFile("r.json", b"{" + b" " * (1024 * 1024) + b"}", content_type="application/json")

    response = _verify(client, file=big)
    pasted = _verify(client, receipt="x" * 300_000)

    for refused in (response, pasted):
        assert refused.status_code == 413
        assert "far larger than any receipt" in refused.content.decode()


def test_verify_refuses_a_binary_file(client: Client, signing: Settings) -> None:
    response = _verify(
        client, file=SimpleUploadedFile("r.png", b"\x89PNG\xff\xfe\x00", content_type="image/png")
    )

    assert response.status_code == 400
    assert "not text" in response.content.decode()


def test_verify_limits_checks_per_network(client: Client, signing: Settings) -> None:
    signing.LANZUAN_VERIFY_CHECKS_PER_IP_HOUR = 2
    network = f"198.51.100.{timezone.now().microsecond % 250}"
    statuses = [_verify(client, remote=network, receipt="garbage").status_code for _ in range(3)]

    assert statuses == [400, 400, 429]


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300))
def test_verify_answers_any_text_with_a_page_never_an_error(
    client: Client, signing: Settings, text: str
) -> None:
    assert _verify(client, receipt=text).status_code == 400


def test_a_receipt_signed_before_a_key_rotation_still_verifies(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, settings: Settings
) -> None:
    # given a receipt signed with the old key
    settings.LANZUAN_SIGNING_KEYS = [KEY_OLD]
    receipt = receipts.signed_receipt(completed_request(tenant_a, pipeline))
    old_kid = receipt["signature"]["kid"]

    # when the key is rotated: a new key signs, the old one is retired (its public key only)
    old_public = published_key(client, old_kid)["public_key"]
    settings.LANZUAN_SIGNING_KEYS = [KEY_NEW]
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = [old_public]

    # then the old receipt still verifies, offline with the published retired key and at /verify/
    published = published_key(client, old_kid)
    assert published["status"] == "retired"
    assert offline_verify(receipts.receipt_file(receipt), published)
    response = _verify(client, receipt=receipts.compact(receipt))
    assert 'data-testid="verify-genuine"' in response.content.decode()
    assert (
        receipts.signed_receipt(UnsubscribeRequest.objects.for_tenant(tenant_a).get())["signature"]["kid"]
        != old_kid
    )


# --- offline, as the README shows --------------------------------------------------------------------


def readme_snippet() -> str:
    from pathlib import Path  # noqa: PLC0415

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index(README_SNIPPET_START)
    block = re.search(r"```python\n(.*?)```", readme[start:], re.S)
    assert block
    return block.group(1)


def offline_verify(receipt_bytes: bytes, published: dict[str, str]) -> bool:
    """Runs the README's snippet with the file's bytes and the published key list; True when it
    prints that the receipt is genuine."""
    namespace: dict[str, Any] = {
        "receipt_text": receipt_bytes.decode("utf-8"),
        "published_keys": {"keys": [published]},
    }
    output = io.StringIO()
    from contextlib import redirect_stdout  # noqa: PLC0415

    with redirect_stdout(output):
        exec(readme_snippet(), namespace)  # noqa: S102 — the README's own lines, run as a reader would
    return output.getvalue().strip().startswith("genuine")


def test_the_readme_snippet_verifies_a_real_receipt_and_refuses_an_altered_one(
    client: Client, tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    receipt = receipts.signed_receipt(completed_request(tenant_a, pipeline))
    published = published_key(client, receipt["signature"]["kid"])

    assert offline_verify(receipts.receipt_file(receipt), published)
    assert not offline_verify(receipts.receipt_file(_altered(receipt, ("number",), "139****0000")), published)
    other = {**published, "public_key": base64.b64encode(b"\x01" * 32).decode()}
    assert not offline_verify(receipts.receipt_file(receipt), other)


def test_canonical_form_is_what_the_readme_says() -> None:
    document = {"b": [1, "二"], "a": {"z": None, "y": True}}
    assert (
        canonical_bytes(document)
        == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


# --- the proof pack ----------------------------------------------------------------------------------


def _zip(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _raw_forms(number: str) -> list[str]:
    national = number.removeprefix("+86")
    return [number, national, number.lstrip("+"), f"{national[:3]} {national[3:7]} {national[7:]}"]


def test_the_api_proof_pack_of_a_completed_request_holds_everything_and_no_number(
    client: Client, tenant_a: Tenant, api_key_a: str, pipeline: Pipeline, signing: Settings
) -> None:
    # given
    request = completed_request(tenant_a, pipeline)

    # when
    response = client.get(
        f"/api/v1/unsubscribe-requests/{request.reference}/proof",
        HTTP_AUTHORIZATION=f"Api-Key {api_key_a}",
        **EN,
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    files = _zip(response.content)
    assert set(files) == {"index.html", "proof.json", f"lanzuan-receipt-{request.reference}.json"}
    proof = json.loads(files["proof.json"])
    sections = proof["sections"]
    assert {
        "request",
        "verification",
        "suppression",
        "steps",
        "texts_received",
        "messages_sent",
        "consents",
        "deadlines",
        "signed_receipt",
        "chain",
    } <= set(sections)
    assert {step["kind"] for step in sections["steps"]} == {"terminate", "confirm", "erase"}
    assert all(step["finished_at"] for step in sections["steps"])
    assert sections["verification"]["method"] == "sms_origin"
    assert sections["texts_received"][0]["body"].startswith("TD 退订")
    assert "*******" in sections["texts_received"][0]["body"]
    assert any(message["event"] == "unsubscribe_completed" for message in sections["messages_sent"])
    assert sections["consents"][0]["revoked_by_request"] == request.reference
    assert receipts.receipt_check(files[f"lanzuan-receipt-{request.reference}.json"].decode()).genuine
    html = files["index.html"].decode()
    assert request.reference in html and 'data-testid="steps"' in html
    for content in files.values():
        text = content.decode("utf-8")
        for form in _raw_forms(E164):
            assert form not in text


def test_the_proof_pack_of_an_open_request_holds_no_number_either(
    client: Client, tenant_a: Tenant, api_key_a: str, signing: Settings
) -> None:
    # given a request filed on the hotline whose work has not run: it still holds the number
    subscriber(tenant_a)
    from .pipeline_helpers import file  # noqa: PLC0415

    request = file(tenant_a)
    assert request.phone == E164

    # when
    response = client.get(
        f"/api/v1/unsubscribe-requests/{request.reference}/proof", HTTP_AUTHORIZATION=f"Api-Key {api_key_a}"
    )

    # then the pack shows the pending steps, masked
    files = _zip(response.content)
    steps = json.loads(files["proof.json"])["sections"]["steps"]
    assert steps and all(step["status"] == "pending" for step in steps)
    for content in files.values():
        for form in _raw_forms(E164):
            assert form not in content.decode("utf-8")


def test_the_proof_pack_of_another_tenants_request_is_a_404(
    client: Client, tenant_a: Tenant, tenant_b: Tenant, api_key_b: str, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)

    response = client.get(
        f"/api/v1/unsubscribe-requests/{request.reference}/proof", HTTP_AUTHORIZATION=f"Api-Key {api_key_b}"
    )
    unknown = client.get(
        "/api/v1/unsubscribe-requests/AAAA-BBBB/proof", HTTP_AUTHORIZATION=f"Api-Key {api_key_b}"
    )
    anonymous = client.get(f"/api/v1/unsubscribe-requests/{request.reference}/proof")

    assert response.status_code == 404 and unknown.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
    assert anonymous.status_code == 401


def test_the_admin_proof_pack_is_scoped_to_the_staffs_tenants(
    client: Client, tenant_a: Tenant, alice: User, charlie: User, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)
    url = reverse("admin:unsubscribe_unsubscriberequest_proof", args=[request.pk])
    change = reverse("admin:unsubscribe_unsubscriberequest_change", args=[request.pk])

    client.login(username=charlie.username, password=PASSWORD)
    assert client.get(url).status_code == 404

    client.login(username=alice.username, password=PASSWORD)
    assert url in client.get(change).content.decode()
    response = client.get(url)
    assert response.status_code == 200
    files = _zip(response.content)
    html = files["index.html"].decode()
    assert "的证据包" in html  # the staff's language: zh-Hans by default
    for content in files.values():
        for form in _raw_forms(E164):
            assert form not in content.decode("utf-8")


def test_a_proof_pack_section_can_be_added_by_another_package(
    tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    from unsubscribe.proofs import pack  # noqa: PLC0415

    request = completed_request(tenant_a, pipeline)
    pack.proof_section_register(
        "test_extra",
        lambda req, ctx: pack.ProofSection(key="test_extra", title="Extra", data={"ref": req.reference}),
        order=999,
    )
    try:
        built = pack.proof_pack_build(request=request)
    finally:
        pack._sections.pop("test_extra")

    proof = json.loads(_zip(built.content)["proof.json"])
    assert proof["sections"]["test_extra"] == {"ref": request.reference}
    assert list(proof["sections"])[-1] == "test_extra" or "test_extra" in proof["sections"]


def test_no_service_scope_is_listed_by_name_in_the_receipt(
    tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    subscriber(tenant_a)
    service = Service.objects.for_tenant(tenant_a).get(code="offers")
    from .pipeline_helpers import file  # noqa: PLC0415

    with pipeline():
        request = file(tenant_a, services=["offers"])
    receipt = receipts.signed_receipt(request)
    assert receipt["scope"] == {
        "all_marketing": False,
        "services": [{"code": "offers", "name": service.name}],
    }
    assert receipts.receipt_check(receipts.compact(receipt)).genuine


# --- the chain proof (the audit record, unsubscribe/audit/) ------------------------------------------


def test_the_receipt_names_the_requests_latest_audit_entry(
    tenant_a: Tenant, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)

    receipt = receipts.signed_receipt(request)

    latest = (
        AuditEntry.objects.for_tenant(tenant_a)
        .filter(Q(reference=request.reference) | Q(payload__request_id=request.pk))
        .order_by("-seq")
        .first()
    )
    assert latest is not None
    assert receipt["chain"] == {"seq": latest.seq, "hash": latest.hash}


def test_the_proof_packs_chain_proof_recomputes_without_lanzuan(
    client: Client, tenant_a: Tenant, api_key_a: str, pipeline: Pipeline, signing: Settings
) -> None:
    # given a completed request whose pack a partner downloads
    request = completed_request(tenant_a, pipeline)
    response = client.get(
        f"/api/v1/unsubscribe-requests/{request.reference}/proof", HTTP_AUTHORIZATION=f"Api-Key {api_key_a}"
    )
    chain = json.loads(_zip(response.content)["proof.json"])["sections"]["chain"]

    # then every entry's hash is SHA-256(content || prev_hash), recomputed here from the pack alone
    entries = sorted(chain["entries"] + chain["path"], key=lambda entry: entry["seq"])
    assert [entry["kind"] for entry in chain["entries"]][-1] == "export.proof_pack"
    assert {"request.filed", "step.planned", "request.changed"} <= {
        entry["kind"] for entry in chain["entries"]
    }
    for entry in entries:
        recomputed = hashlib.sha256(entry["content"].encode() + entry["prev_hash"].encode()).hexdigest()
        assert recomputed == entry["hash"], entry["seq"]
        assert json.loads(entry["content"])["seq"] == entry["seq"]
    # the entries link, one after another, up to the signed checkpoint
    assert [entry["seq"] for entry in entries] == list(range(entries[0]["seq"], entries[-1]["seq"] + 1))
    for before, after in itertools.pairwise(entries):
        assert after["prev_hash"] == before["hash"]
    checkpoint = chain["checkpoint"]
    assert checkpoint["seq"] == entries[-1]["seq"] and checkpoint["hash"] == entries[-1]["hash"]
    published = published_key(client, checkpoint["kid"])
    Ed25519PublicKey.from_public_bytes(base64.b64decode(published["public_key"])).verify(
        base64.b64decode(checkpoint["signature"]), checkpoint["message"].encode()
    )
    assert json.loads(checkpoint["message"])["hash"] == checkpoint["hash"]
    # and the download is on record, and the record still verifies
    export = AuditEntry.objects.for_tenant(tenant_a).filter(kind="export.proof_pack").get()
    assert export.reference == request.reference and export.actor.startswith("api_key:")
    call_command("audit_verify", "--tenant", tenant_a.slug, stdout=io.StringIO())


def test_an_admin_download_is_recorded_with_who_took_it(
    client: Client, tenant_a: Tenant, alice: User, pipeline: Pipeline, signing: Settings
) -> None:
    request = completed_request(tenant_a, pipeline)
    client.login(username=alice.username, password=PASSWORD)

    client.get(reverse("admin:unsubscribe_unsubscriberequest_proof", args=[request.pk]))
    client.get(reverse("admin:unsubscribe_unsubscriberequest_proof", args=[request.pk]))

    exports = AuditEntry.objects.for_tenant(tenant_a).filter(kind="export.proof_pack")
    assert exports.count() == 2
    assert {entry.actor for entry in exports} == {f"user:{alice.pk}"}
    assert {entry.payload["via"] for entry in exports} == {"admin"}
