"""The partner API against its own OpenAPI schema, in-process (schemathesis over WSGI, real
PostgreSQL as every other test), with every check schemathesis has: no server error; every
answer's status, content type, headers and body as documented; schema-valid requests accepted
(positive_data_acceptance) and schema-violating ones refused (negative_data_rejection); the auth
checks; and, in the stateful phase, sequences that follow the schema's links (file a request,
then read it; register a webhook, read it, delete it, find it gone). Every operation under
/api/v1/, /api/v1/me included, in the examples, coverage and fuzzing phases.

Steered, and only that: the API checks some meaning that no static schema can state, because
it depends on the tenant's data: a service code must be one of the tenant's services, a phone
number must be a real number, a webhook URL must resolve to an address the platform may call,
a cursor must be one the API gave out, and an Idempotency-Key must not have been used with
another body. The schema says so in words; `steer` gives each positive (schema-valid) case such
values just before it is sent, so that positive_data_acceptance holds for what a partner can
send. Negative cases are never touched.

Bounded and deterministic: a fixed seed, derandomized, 25 examples per operation and phase
(the coverage phase adds its boundary cases), 30 stateful scenarios of up to 6 calls."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.hooks import HookContext

from tenants.models import Tenant
from tenants.services import api_key_create
from unsubscribe.models import Service

# The codes the schema's own examples use, so the examples phase runs against real services.
SERVICES = ("daily-deals", "push-offers")
MAX_EVIDENCE = 2000
# Every rejection status: schemathesis' default list, 413, the API's answer to a list longer
# than one call takes (a `maxItems` violation is refused as too large), and 411, its answer to an
# upload sent without Content-Length (a body a WSGI server would read as empty; documented).
REJECTIONS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "411",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]


def config(api_key: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 19,
            "generation": {"max-examples": 25, "deterministic": True},
            # The stateful phase follows the schema's own links only: inferred ones would also
            # lead from a new scrub job to its result, which exists once the job is done (404 before).
            "phases": {"stateful": {"inference": {"algorithms": []}}},
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
            # The key as the schema's security scheme, so that the auth checks know it.
            "auth": {"openapi": {"ApiKeyAuth": {"api_key": f"Api-Key {api_key}"}}},
        }
    )


_serial = itertools.count(1)


def _phone() -> str:
    return f"+86138{next(_serial) % 10**8:08d}"


def _steer_request(case: Case[Any]) -> None:
    body = case.body
    if isinstance(body, dict):
        body["phone"] = _phone()
        scope = body.get("scope")
        if isinstance(scope, list):
            body["scope"] = [SERVICES[i % len(SERVICES)] for i in range(len(scope))]
        # Other keys are evidence, stored as JSON: at most 2,000 characters and no NUL, which
        # the schema says in words only (it cannot constrain the names of extra keys).
        verification = body.get("verification")
        if isinstance(verification, dict) and (
            len(repr(verification)) > MAX_EVIDENCE or "\\x00" in repr(verification)
        ):
            body["verification"] = {k: verification[k] for k in ("method", "agent_id") if k in verification}
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = str(uuid.uuid4())


def _steer_query_service(case: Case[Any]) -> None:
    if case.query and case.query.get("service"):
        case.query["service"] = SERVICES[0]


def _steer_body_service(case: Case[Any]) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("service"), str) and case.body["service"]:
        case.body["service"] = SERVICES[0]


def _steer_webhook(case: Case[Any]) -> None:
    if isinstance(case.body, dict):
        case.body["url"] = f"https://127.0.0.1:{40000 + next(_serial) % 20000}/hooks"


def _steer_consent(case: Case[Any]) -> None:
    # A real number, one of the tenant's services, a consent time in the past (the schema says
    # "not in the future" in words) and an address Python reads as one.
    body = case.body
    if isinstance(body, dict):
        body["phone"] = _phone()
        body["service"] = SERVICES[0]
        if "given_at" in body:
            body["given_at"] = "2025-01-31T08:00:00+08:00"
        evidence = body.get("evidence")
        if isinstance(evidence, dict) and "ip" in evidence:
            evidence["ip"] = "203.0.113.7"


def _steer_send_logs(case: Case[Any]) -> None:
    # Each record: a real number (not also a digest: one or the other, as the schema says in
    # words), one of the tenant's services, times in the past.
    if isinstance(case.body, list):
        for item in case.body:
            if not isinstance(item, dict):
                continue
            item.pop("phone_hash", None)
            item["phone"] = _phone()
            if isinstance(item.get("service"), str) and item["service"]:
                item["service"] = SERVICES[0]
            for name in ("sent_at", "engaged_at"):
                if isinstance(item.get(name), str):
                    item[name] = "2025-01-31T08:00:00+08:00"


def _steer_query_phone(case: Case[Any]) -> None:
    if case.query and "phone" in case.query:
        case.query["phone"] = _phone()


def _steer_list(case: Case[Any]) -> None:
    if case.query:
        case.query.pop("cursor", None)


STEERING = {
    ("POST", "/api/v1/unsubscribe-requests"): _steer_request,
    ("GET", "/api/v1/unsubscribe-requests"): _steer_list,
    ("GET", "/api/v1/audit/checkpoints"): _steer_list,
    ("GET", "/api/v1/suppressions/check"): _steer_query_service,
    ("POST", "/api/v1/suppressions/check"): _steer_body_service,
    ("POST", "/api/v1/scrub-jobs"): _steer_body_service,
    ("POST", "/api/v1/webhooks"): _steer_webhook,
    ("POST", "/api/v1/consents"): _steer_consent,
    ("POST", "/api/v1/send-logs"): _steer_send_logs,
    ("GET", "/api/v1/consents"): _steer_query_phone,
    ("GET", "/api/v1/number-events"): _steer_query_phone,
}


def steer(case: Case[Any]) -> None:
    """A positive case with the tenant's real values where the API checks meaning (module
    docstring). Called just before the case is sent rather than as a `map_case` hook, which
    the examples phase does not run."""
    if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE:
        steering = STEERING.get((case.method.upper(), case.path))
        if steering is not None:
            steering(case)


def filter_case(context: HookContext, case: Case[Any]) -> bool:
    """Leave out a negative form case whose violation cannot be sent: a field set to a list of
    at most one value goes out as that one part, or none (the field left out), which is
    schema-valid as the server reads it. Schemathesis sees that for a plain form, not for one
    that also carries a file. (A list of two or more is sent as repeated parts: refused, 400.)"""
    return not (
        case.meta is not None
        and case.meta.generation.mode is GenerationMode.NEGATIVE
        and case.media_type == "multipart/form-data"
        and isinstance(case.body, dict)
        and any(isinstance(value, list) and len(value) <= 1 for value in case.body.values())
    )


@pytest.fixture
def partner_schema(api_key: str, settings: Any) -> Iterator[Any]:
    # A real WSGI handler closes the connection after each request, which would end
    # the test's transaction; Django's test client detaches the same receivers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    settings.LANZUAN_API_RATES = {"partner": "100000/min", "partner_bulk": "100000/min"}
    # Every upload operation's cases share the key's day (scrub lists, imports, send logs).
    settings.LANZUAN_UPLOADS_PER_KEY_PER_DAY = 100_000
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    settings.LANZUAN_OUTBOUND_ALLOW = ["127.0.0.0/8@32768-65535"]
    loaded = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=config(api_key))
    schema = loaded.include(path_regex=r"^/api/v1/")
    schema.hook(filter_case)
    yield schema
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_key(db: None) -> str:
    tenant = Tenant.objects.create(slug="st", name="Schemathesis")
    for code in SERVICES:
        Service.objects.create(tenant=tenant, code=code, name=code)
    return api_key_create(tenant=tenant, name="schemathesis")[1]


schema = schemathesis.pytest.from_fixture("partner_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_each_operation_answers_as_its_schema_says(case: Case[Any]) -> None:
    steer(case)
    case.call_and_validate()


@pytest.mark.slow
def test_sequences_along_the_links_answer_as_the_schema_says(partner_schema: Any) -> None:
    class PartnerAPI(partner_schema.as_state_machine()):  # type: ignore[misc]  # built at run time
        # Each scenario starts from the same data: what one left (webhook endpoints up to the
        # cap, requests) would change which links the next can follow, and Hypothesis needs a
        # scenario to replay the same way.
        def setup(self) -> None:
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)

        def before_call(self, case: Case[Any]) -> None:
            steer(case)

    PartnerAPI.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
        )
    )
