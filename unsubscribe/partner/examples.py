"""Descriptions and examples of the partner API for the OpenAPI schema (/api/docs/)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample

from .problems import PROBLEM_CONTENT_TYPE, TYPE_PREFIX

REQUEST_EXAMPLE_VALUE: dict[str, Any] = {
    "reference": "K7M2-9QXP",
    "url": "https://lanzuan.example.com/api/v1/unsubscribe-requests/K7M2-9QXP",
    "state": "suppressed",
    "channel": "hotline",
    "scope": "all",
    "phone_masked": "138****8000",
    "phone_hash": "5f2b0c1e9a7d4c3b8e6f1a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3",
    "verification_method": "agent_assertion",
    "language": "zh-hans",
    "attention_reason": "",
    "received_at": "2025-01-31T08:00:00+08:00",
    "suppressed_at": "2025-01-31T08:00:00+08:00",
    "terminating_at": None,
    "confirming_at": None,
    "erasing_at": None,
    "erasure_due_at": None,
    "completed_at": None,
    "needs_attention_at": None,
    "sla_due_at": "2025-02-02T08:00:00+08:00",
    "sla_breached_at": None,
    "steps": [
        {
            "kind": "terminate",
            "target": "CRM",
            "status": "succeeded",
            "attempts": 1,
            "started_at": "2025-01-31T08:00:01+08:00",
            "finished_at": "2025-01-31T08:00:02+08:00",
            "last_error": "",
            "receipt": 'HTTP 200: {"ended": 2}',
        },
        {
            "kind": "confirm",
            "target": "sms",
            "status": "pending",
            "attempts": 0,
            "started_at": None,
            "finished_at": None,
            "last_error": "",
            "receipt": "",
        },
    ],
    "deadlines": [
        {"regime": "tenant", "rule": "sla", "due_at": "2025-02-02T08:00:00+08:00", "met_at": None},
        {"regime": "cn", "rule": "termination", "due_at": "2025-02-05T23:59:59+08:00", "met_at": None},
        {"regime": "cn", "rule": "erasure", "due_at": "2025-02-24T23:59:59+08:00", "met_at": None},
    ],
}

REQUEST_EXAMPLE = OpenApiExample("A request being processed", value=REQUEST_EXAMPLE_VALUE, response_only=True)

CREATE_REQUEST_DESCRIPTION = """
File a request for a person who asked you (in your app, or on a hotline call) to stop the marketing.
The number is suppressed before this call answers: a check right after it says `suppressed: true`.
Then the services are ended at the provider's targets, one confirmation is sent, and the data is erased;
follow the progress with `GET /api/v1/unsubscribe-requests/{reference}` or the webhooks.

`verification` records how you know the person owns the number: `{"method": "partner_assertion"}`
(the default: your app's logged-in user), `{"method": "agent_assertion", "agent_id": "A123"}` for a hotline
agent, or `{"method": "otp"}` when you checked a one-time code yourself. Other keys are kept as evidence.

**Idempotency.** Send an `Idempotency-Key` header (a UUID) and repeat the call safely after a timeout:
the same key with the same body returns the original request with 200 instead of 201; the same key with a
different body is refused with 422; while the first call with that key is still running, 409 (retry in a
moment). Keys are stored on the request itself and never expire.
"""

CREATE_REQUEST_EXAMPLES = [
    OpenApiExample(
        "Hotline call, all marketing",
        value={
            "phone": "+8613800138000",
            "channel": "hotline",
            "scope": "all",
            "verification": {"method": "agent_assertion", "agent_id": "A123"},
        },
        request_only=True,
    ),
    OpenApiExample(
        "App, two services",
        value={"phone": "13800138000", "channel": "app", "scope": ["daily-deals", "push-offers"]},
        request_only=True,
    ),
    OpenApiExample("Filed", value=REQUEST_EXAMPLE_VALUE, response_only=True, status_codes=["201", "200"]),
]

REQUEST_PAGE_EXAMPLE = OpenApiExample(
    "A page",
    value={
        "next": "https://lanzuan.example.com/api/v1/unsubscribe-requests?cursor=cD0yMDI1LTAxLTMx",
        "previous": None,
        "results": [REQUEST_EXAMPLE_VALUE],
    },
    response_only=True,
)

CHECK_DESCRIPTION = """
Whether you may send marketing to a number. `suppressed: true` means do not send: the person opted out of
all your marketing or, when you name a `service`, of that service. The answer is correct from the moment
a request is filed on any channel. An invalid number is answered with `valid: false` and an `error`.
"""

CHECK_ONE_EXAMPLES = [
    OpenApiExample(
        "Suppressed",
        value={
            "phone": "13800138000",
            "valid": True,
            "e164": "+8613800138000",
            "suppressed": True,
            "since": "2025-01-31T08:00:00+08:00",
            "scopes": ["all"],
        },
        response_only=True,
    ),
    OpenApiExample(
        "Invalid",
        value={"phone": "12345", "valid": False, "error": "That is not a valid phone number."},
        response_only=True,
    ),
]

CHECK_MANY_DESCRIPTION = (
    CHECK_DESCRIPTION
    + """
Up to 10,000 numbers per call, answered in the order sent; invalid numbers are reported item by item and do
not fail the call. More than 10,000 is refused with 413. For longer lists use a scrub job. The answer may
hold insignificant whitespace between tokens (answers of one width are written without per-number work):
read it with a JSON parser, not by comparing bytes.
"""
)

CHECK_MANY_EXAMPLES = [
    OpenApiExample(
        "Three numbers",
        value={"phones": ["+8613800138000", "13912345678", "not a number"], "service": "daily-deals"},
        request_only=True,
    ),
    OpenApiExample(
        "Answer",
        value={
            "service": "daily-deals",
            "count": 3,
            "suppressed": 1,
            "invalid": 1,
            "results": [
                {
                    "phone": "+8613800138000",
                    "valid": True,
                    "e164": "+8613800138000",
                    "suppressed": True,
                    "since": "2025-01-31T08:00:00+08:00",
                    "scopes": ["daily-deals"],
                },
                {
                    "phone": "13912345678",
                    "valid": True,
                    "e164": "+8613912345678",
                    "suppressed": False,
                    "since": None,
                    "scopes": [],
                },
                {"phone": "not a number", "valid": False, "error": "That is not a valid phone number."},
            ],
        },
        response_only=True,
    ),
]

SCRUB_DESCRIPTION = """
Upload a list (multipart field `file`): one number per line, or a CSV whose header row names the number's
column (`phone`, `mobile`, `msisdn`, `number`, `手机号`…). UTF-8, up to 10,000,000 rows. The job runs in the
background: poll `GET /api/v1/scrub-jobs/{id}` for `state`, `percent` and the counts (every row is exactly
one of `invalid`, `duplicate`, `suppressed`, `sendable`; they grow while the job runs), then download
`result_url`: the sendable numbers in E.164, in upload order, each once. With `reasons=true` the result lists
every row instead, as `row,phone,result` (`sendable`, `suppressed`, `platform_do_not_market`, `duplicate`,
`invalid`; an invalid row's `phone` as written). The uploaded list is deleted when the job ends; the result
after 7 days.
"""

SCRUB_JOB_VALUE: dict[str, Any] = {
    "id": 42,
    "url": "https://lanzuan.example.com/api/v1/scrub-jobs/42",
    "state": "pending",
    "phase": "waiting",
    "service": "",
    "original_name": "march-campaign.csv",
    "total_rows": 1000001,
    "rows_done": 0,
    "percent": 0,
    "invalid": 0,
    "duplicate": 0,
    "suppressed": 0,
    "sendable": 0,
    "reasons": False,
    "error": "",
    "created_at": "2025-01-31T08:00:00+08:00",
    "started_at": None,
    "finished_at": None,
    "result_url": None,
}

SCRUB_JOB_EXAMPLE = OpenApiExample("Queued", value=SCRUB_JOB_VALUE, response_only=True, status_codes=["202"])

SCRUB_JOB_DONE_EXAMPLE = OpenApiExample(
    "Done",
    value={
        **SCRUB_JOB_VALUE,
        "state": "done",
        "phase": "finished",
        "total_rows": 1000000,
        "rows_done": 1000000,
        "percent": 100,
        "invalid": 1200,
        "duplicate": 5300,
        "suppressed": 20500,
        "sendable": 973000,
        "started_at": "2025-01-31T08:00:01+08:00",
        "finished_at": "2025-01-31T08:00:09+08:00",
        "result_url": "https://lanzuan.example.com/api/v1/scrub-jobs/42/result",
    },
    response_only=True,
)

IMPORT_DESCRIPTION = """
A JSON list of up to 10,000 subscriptions, each `{phone, service, consent_source?, consent_at?}`, created or
updated by (service, number). Every item is counted once: `received` = `created` + `updated` +
`skipped_opted_out` + `duplicates` + `invalid`.

- **Invalid** items (a bad number, an unknown service, a `consent_at` that is not ISO 8601) are skipped and
  listed in `errors` with their index and field; the valid ones are saved. The call still answers 200.
- **Opted out**: importing never lifts an opt-out. An item for a number that opted out of that service or of
  all marketing, or whose subscription was ended, is not imported and is counted in `skipped_opted_out`.
- **Duplicates**: when items repeat a number and service, the last one is used; the others are counted in
  `duplicates`.
- `consent_at` without an offset (e.g. `2025-01-02T10:00:00`, or a bare date for its midnight) is read in your
  tenant's time zone; omitted, it is the time of the import.
- **Consent evidence** (optional): `consent_method` (`form`, `sms_keyword`, `contract`, `import`),
  `consent_wording` (the exact words shown), `consent_order_id`, `consent_page_version`, `consent_ip`,
  `consent_captured_by` (default: this API key). An item with a `consent_at` or any of them is also recorded in
  the consent ledger (`GET /api/v1/consents`); an invalid one makes the item invalid.
"""

IMPORT_EXAMPLES = [
    OpenApiExample(
        "Three subscriptions: one invalid, one for a number that opted out",
        value=[
            {
                "phone": "+8613800138000",
                "service": "daily-deals",
                "consent_source": "app sign-up",
                "consent_at": "2025-01-02T10:00:00+08:00",
            },
            {"phone": "12345", "service": "daily-deals"},
            {"phone": "13912345678", "service": "daily-deals", "consent_at": "2025-01-03"},
        ],
        request_only=True,
    ),
    OpenApiExample(
        "Answer",
        value={
            "received": 3,
            "created": 1,
            "updated": 0,
            "skipped_opted_out": 1,
            "duplicates": 0,
            "invalid": 1,
            "errors": [{"index": 1, "field": "phone", "message": "That is not a valid phone number."}],
        },
        response_only=True,
    ),
]

CHANNEL_EXAMPLES = [  # items of a list answer, each wrapped in the list by drf-spectacular
    OpenApiExample(
        "Reply SMS, in Chinese",
        response_only=True,
        value={
            "channel": "sms",
            "enabled": True,
            "title": "短信退订",
            "instruction": "回复 TD / 退订 到 10690001。",
            "url": "",
            "keywords": ["TD", "退订"],
            "numbers": ["10690001"],
            "app_path": "",
            "hotline_number": "",
            "hotline_hours": "",
            "hotline_menu_key": "",
        },
    ),
    OpenApiExample(
        "Hotline, in Chinese",
        response_only=True,
        value={
            "channel": "hotline",
            "enabled": True,
            "title": "电话退订",
            "instruction": "拨打 400-800-1234，按 3（服务时间 9:00–21:00）。",
            "url": "",
            "keywords": [],
            "numbers": [],
            "app_path": "",
            "hotline_number": "400-800-1234",
            "hotline_hours": "9:00–21:00",
            "hotline_menu_key": "3",
        },
    ),
]

WEBHOOK_DESCRIPTION = """
Register a URL to receive events as signed JSON POSTs: `request.created`, `request.completed`,
`request.needs_attention`, `suppression.added`, `suppression.lifted` (the person re-subscribed, verified:
`scopes` lifted, `still_suppressed`, `channel`, `verification_method`, `evidence`), `request.deadline_breached`
(a regime's due time passed unmet, once per deadline: the request's fields plus `deadline` with `regime`, `rule`,
`due_at`, `met_at`, `breached_at`), `suppression.violated` (messages you reported in send logs went to a number
after its opt-out: `phone_hash`, `reference` of the opt-out's request, `scopes`, `suppressed_at`, `messages`,
`services`, `first_sent_at`, `last_sent_at`, `detected_at`; one event per number and batch). Bodies carry `phone_hash`
(your digest of the number: digests are per tenant, another tenant's differs) and `phone_masked`, never the number.
Answer 2xx within 10 s; anything else is retried with exponential backoff for 24 hours.
A tenant may have 10 endpoints unless the platform set another limit (409 `too_many_webhook_endpoints`
past it), and only a few of its deliveries are in flight at once: a burst arrives oldest first, spread out.

Each POST carries `X-Lanzuan-Timestamp` (Unix seconds) and
`X-Lanzuan-Signature: v1=<hex HMAC-SHA256 of "<timestamp>." + raw body, keyed with your secret>`,
plus `X-Lanzuan-Event` and `X-Lanzuan-Delivery` (the event id: the same on retries, use it to de-duplicate).
Omit `secret` to have one generated; it is shown only in this answer. Verify in Python:

```python
import hashlib, hmac, time
def verify(secret: str, body: bytes, timestamp: str, signature: str) -> bool:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(timestamp)) <= 300
    return fresh and hmac.compare_digest("v1=" + mac.hexdigest(), signature)
```
"""

WEBHOOK_VALUE: dict[str, Any] = {
    "id": 7,
    "url": "https://crm.example.com/hooks/lanzuan",
    "description": "CRM opt-out sync",
    "events": ["request.created", "suppression.added"],
    "is_active": True,
    "created_at": "2025-01-31T08:00:00+08:00",
}

WEBHOOK_EXAMPLE = OpenApiExample("An endpoint", value=WEBHOOK_VALUE, response_only=True)
# The value of an example of a list answer is one item: drf-spectacular wraps it in the list.
WEBHOOK_LIST_EXAMPLE = OpenApiExample("Endpoints", value=WEBHOOK_VALUE, response_only=True)
WEBHOOK_CREATE_EXAMPLES = [
    OpenApiExample(
        "Register",
        value={
            "url": "https://crm.example.com/hooks/lanzuan",
            "description": "CRM opt-out sync",
            "events": ["request.created", "suppression.added"],
        },
        request_only=True,
    ),
    OpenApiExample(
        "Registered",
        value={**WEBHOOK_VALUE, "secret": "whsec_3q2-7wVnqRZ0i9Q2Hn1s3kXy5bC8dF0gJ4mN6pR8tU"},
        response_only=True,
        status_codes=["201"],
    ),
]

WEBHOOK_LIMIT_DESCRIPTION = (
    "The tenant already has the most webhook endpoints allowed (10 unless the platform set "
    "LANZUAN_MAX_WEBHOOK_ENDPOINTS otherwise; switched-off endpoints count). Remove one first, "
    "or subscribe one endpoint to several events."
)

WEBHOOK_LIMIT_EXAMPLE = OpenApiExample(
    "too_many_webhook_endpoints",
    value={
        "type": TYPE_PREFIX + "too_many_webhook_endpoints",
        "title": "Too many webhook endpoints",
        "status": 409,
        "detail": "This tenant already has 10 webhook endpoints, the most allowed. "
        "Remove one, or send several events to the same endpoint.",
        "code": "too_many_webhook_endpoints",
        "errors": [],
    },
    media_type=PROBLEM_CONTENT_TYPE,
    status_codes=["409"],
    response_only=True,
)

PROBLEM_DESCRIPTIONS = {
    400: "Invalid input (problem details; `errors` names the fields).",
    401: "No API key, or an unknown, revoked or expired one.",
    403: "Not allowed, e.g. the channel is switched off for this tenant.",
    404: "No such object for this API key's tenant.",
    409: "A call with the same Idempotency-Key is still running.",
    413: "Too large: more items than one call takes, or a body over the size limit.",
    415: "The body is not in a media type this operation takes (see its Content-Type).",
    422: "The Idempotency-Key was used before with a different body.",
    429: "Rate limit of this API key exceeded; wait for Retry-After seconds.",
}

_PROBLEM_EXAMPLES: dict[int, tuple[str, str, str, list[dict[str, Any]]]] = {
    400: (
        "invalid_phone",
        "Invalid phone number",
        "That is not a valid phone number.",
        [{"field": "phone", "message": "That is not a valid phone number."}],
    ),
    401: ("not_authenticated", "Not authenticated", "Authentication credentials were not provided.", []),
    403: (
        "channel_disabled",
        "Channel disabled",
        "Acme Mobile does not offer unsubscribing by Hotline / IVR.",
        [{"field": "channel", "message": "Acme Mobile does not offer unsubscribing by Hotline / IVR."}],
    ),
    404: ("not_found", "Not found", "No request with this reference.", []),
    409: (
        "idempotency_in_progress",
        "Conflict",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        [{"field": "Idempotency-Key", "message": "In use by a call that has not finished."}],
    ),
    413: (
        "too_many_numbers",
        "Too large",
        "At most 10,000 numbers per call; this one has 10,001. Split the list, or use a scrub job.",
        [{"field": "phones", "message": "At most 10,000 numbers per call; this one has 10,001."}],
    ),
    415: (
        "unsupported_media_type",
        "Unsupported media type",
        'Unsupported media type "text/plain" in request.',
        [],
    ),
    422: (
        "idempotency_conflict",
        "Idempotency-Key reused",
        "This Idempotency-Key was already used for a different request.",
        [
            {
                "field": "Idempotency-Key",
                "message": "This Idempotency-Key was already used for a different request.",
            }
        ],
    ),
    429: ("throttled", "Too many requests", "Request was throttled. Expected available in 12 seconds.", []),
}


def problem_example(status: int) -> OpenApiExample:
    code, title, detail, errors = _PROBLEM_EXAMPLES[status]
    return problem_document_example(status, code, title, detail, errors)


def problem_document_example(
    status: int, code: str, title: str, detail: str, errors: list[dict[str, Any]]
) -> OpenApiExample:
    """An example problem document (RFC 9457) for the schema, named by its code."""
    return OpenApiExample(
        code,
        value={
            "type": TYPE_PREFIX + code,
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
            "errors": errors,
        },
        media_type=PROBLEM_CONTENT_TYPE,
        status_codes=[str(status)],
        response_only=True,
    )


SEND_LOGS_DESCRIPTION = """
Report what you sent, so that a message sent after a person's opt-out is caught (a **violation**: shown on
the request, sent to you as the `suppression.violated` webhook and shown to the person) and people's
suggestions can say how much each service sends. Each record: `phone` (the number; it is digested at once
and never stored) or `phone_hash` (your digest of it), `sent_at`, and optionally `service` (one of your
service codes), `category`, `template`, `message_id` and `engaged_at` (when the person opened, clicked or
replied). Records are kept for your tenant's send log retention (30 days unless you set another).

- A JSON list of up to 10,000 records is stored at once: 201 with the counts (every record is exactly one of
  `accepted`, `duplicates` or `invalid`; `errors` names each invalid record's position and field: a number
  that is not valid, an unknown service, a time to come). A list with a record not in the shape below (a wrong
  type, an unknown field, a time that is not ISO 8601), or in which no record is valid, is refused and nothing
  is stored: 400, `errors` naming `[position].field`.
- A CSV (`Content-Type: text/csv`, or a multipart `file`), with a header row naming the columns, is read in
  the background: 202 with the import; poll `GET /api/v1/send-logs/imports/{id}` for its progress.

The same record again (the same `message_id`; without one, the same number, time, service, category and
template) is a duplicate, never a second row: re-sending a batch is safe.
"""

SEND_LOGS_EXAMPLES = [
    OpenApiExample(
        "Two messages",
        request_only=True,
        media_type="application/json",
        value=[
            {
                "phone": "+8613800138000",
                "sent_at": "2025-01-31T08:00:00+08:00",
                "service": "daily-deals",
                "category": "promotion",
                "template": "spring-sale-1",
                "message_id": "msg-000123",
            },
            {
                "phone_hash": "3f1c0b6a5e2d4f7c8b9a0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b",
                "sent_at": "2025-01-31T09:30:00+08:00",
                "engaged_at": "2025-01-31T09:41:00+08:00",
            },
        ],
    ),
    OpenApiExample(
        "Stored",
        response_only=True,
        status_codes=["201"],
        value={
            "received": 3,
            "accepted": 1,
            "duplicates": 1,
            "invalid": 1,
            "violations": 1,
            "errors": [{"row": 2, "field": "sent_at", "message": "This field is required."}],
        },
    ),
    OpenApiExample(
        "Import queued",
        response_only=True,
        status_codes=["202"],
        value={
            "id": 7,
            "url": "https://lanzuan.example.com/api/v1/send-logs/imports/7",
            "state": "pending",
            "original_name": "sent-2025-01-31.csv",
            "total_rows": 1000000,
            "rows_done": 0,
            "percent": 0,
            "accepted": 0,
            "duplicates": 0,
            "invalid": 0,
            "violations": 0,
            "errors": [],
            "error": "",
            "created_at": "2025-01-31T23:00:00+08:00",
            "started_at": None,
            "finished_at": None,
        },
    ),
]

SEND_LOG_IMPORT_DONE_EXAMPLE = OpenApiExample(
    "Done",
    response_only=True,
    value={
        "id": 7,
        "url": "https://lanzuan.example.com/api/v1/send-logs/imports/7",
        "state": "done",
        "original_name": "sent-2025-01-31.csv",
        "total_rows": 1000000,
        "rows_done": 1000000,
        "percent": 100,
        "accepted": 998000,
        "duplicates": 1500,
        "invalid": 500,
        "violations": 12,
        "errors": [{"row": 17, "field": "phone", "message": "That is not a valid phone number."}],
        "error": "",
        "created_at": "2025-01-31T23:00:00+08:00",
        "started_at": "2025-01-31T23:00:01+08:00",
        "finished_at": "2025-01-31T23:01:05+08:00",
    },
)

SUPPRESSION_VIOLATED_PAYLOAD: dict[str, Any] = {
    "phone_hash": "3f1c0b6a5e2d4f7c8b9a0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b",
    "reference": "K7M2-9QXP",
    "scopes": ["*"],
    "suppressed_at": "2025-01-30T10:00:00+08:00",
    "messages": 2,
    "services": ["daily-deals"],
    "first_sent_at": "2025-01-31T08:00:00+08:00",
    "last_sent_at": "2025-01-31T12:00:00+08:00",
    "detected_at": "2025-01-31T23:00:04+08:00",
}
