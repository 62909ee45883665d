"""Sending through providers, behind one small interface.

Every gateway takes an `OutgoingMessage` and returns the provider's message id,
or raises `TransientGatewayError` (worth retrying: timeouts, 429, 5xx) or
`PermanentGatewayError` (retrying cannot help: bad number, bad credentials,
rejected content). Gateways know nothing about models; `gateway_for()` builds one
from a tenant's `GatewayConfig`.

A message whose worker died while calling the gateway (its claim outlived its lease,
notifications.services) is sent again, and each gateway keeps that from reaching the
person twice as far as its provider allows (`resend_guard`, the README's table):
- "key": the provider drops a repeat of the message's idempotency key (signed HTTP:
  the `Idempotency-Key` header and the body's `id`, both `lanzuan-message-<id>`);
- "lookup": `find_sent()` asks the provider whether it already has the message (Aliyun:
  QuerySendDetails by `OutId`, the message id; the file gateway: its own outbox), and
  only a message it does not have is sent again;
- "none": nothing tells (Twilio's Messages API takes no idempotency key; SMTP servers
  do not dedupe, though the stable `Message-ID` lets mail clients that do show it once):
  the message is sent again, so the person may get it twice, never not at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import smtplib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from lanzuan import outbound
from lanzuan.outbound import UnsafeURL
from lanzuan.signing import signed_headers

from .models import GatewayConfig

logger = logging.getLogger(__name__)

HTTP_TIMEOUT = (5, 15)  # connect, read (seconds)
# For a send made while a person waits on a page (a one-time code the broker could not
# take): a gateway that does not answer in time leaves the message to the sweep.
INLINE_TIMEOUT = (3, 8)
Timeout = tuple[float, float]


def _post(url: str, **kwargs: Any) -> requests.Response:
    """POST to a tenant-configured endpoint: checked to be a public https address and
    connected to the address that was checked (lanzuan.outbound), no redirects."""
    try:
        return outbound.post(url, **kwargs)
    except UnsafeURL as exc:
        raise PermanentGatewayError(str(exc)) from None


class GatewayError(Exception):
    """A gateway could not send; str(exc) is recorded on the message (never holds secrets)."""


class TransientGatewayError(GatewayError):
    """Worth retrying later."""


class PermanentGatewayError(GatewayError):
    """Retrying cannot help."""


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: int
    tenant_slug: str
    channel: str
    event: str
    language: str
    to: str
    body: str
    subject: str = ""
    # The variables the body was rendered from: providers that render approved
    # templates themselves (Aliyun) send these instead of the body.
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"lanzuan-message-{self.message_id}"


@dataclass(frozen=True)
class GatewayResult:
    provider_message_id: str


class Gateway(Protocol):
    kind: str
    # How a re-send after a lost claim is kept from reaching the person twice: "key",
    # "lookup" or "none" (the module docstring).
    resend_guard: str

    def send(self, message: OutgoingMessage) -> GatewayResult: ...

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
        """The provider's record of this message if it took it at or after `since`, else
        None (also when the provider cannot tell). TransientGatewayError: ask again later."""
        ...


def _is_transient_status(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


# --- file (development default) ----------------------------------------------------


class GatewayNotConfigured(PermanentGatewayError):
    """The tenant has no active gateway for the channel, and the file gateway is not
    allowed (DEBUG off, no LANZUAN_FILE_GATEWAY=1)."""


NO_GATEWAY_PREFIX = "no gateway configured"


def file_gateway_allowed() -> bool:
    """The file gateway writes numbers and codes in clear: development, demos and tests only."""
    return bool(settings.LANZUAN_FILE_GATEWAY)


class FileGateway:
    """Appends one JSON line per message to settings.OUTBOX_PATH.

    The line format is a contract other tools read: exactly `to`, `channel`, `body`,
    `tenant` (slug) and `sent_at` (ISO 8601), plus `subject` when there is one.
    The file rotates past LANZUAN_OUTBOX_MAX_BYTES and daily (outbox_expire, in beat);
    rotated files (`outbox.jsonl.<UTC time>`) are deleted after LANZUAN_OUTBOX_KEEP_DAYS.
    """

    kind: str = GatewayConfig.Kind.FILE
    resend_guard: str = "lookup"

    def __init__(self, path: Path | str | None = None) -> None:
        self._path = path

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
        """A line for this very message (recipient, text and tenant) written since `since`,
        in the outbox or a file rotated since."""
        path = Path(self._path or settings.OUTBOX_PATH)
        files = [path, *path.parent.glob(f"{path.name}.*")]
        for candidate in files:
            try:
                # file times come from a coarse clock: only files clearly older are skipped
                if candidate.stat().st_mtime < since.timestamp() - 60:
                    continue
                lines = candidate.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                continue
            for raw in lines:
                try:
                    line = json.loads(raw)
                    sent_at = datetime.fromisoformat(line["sent_at"])
                except (ValueError, KeyError, TypeError):
                    continue
                if (
                    line.get("to") == message.to
                    and line.get("body") == message.body
                    and line.get("tenant") == message.tenant_slug
                    and line.get("channel") == message.channel
                    and sent_at >= since
                ):
                    return GatewayResult(provider_message_id=f"file-{message.idempotency_key}")
        return None

    def send(self, message: OutgoingMessage) -> GatewayResult:
        path = Path(self._path or settings.OUTBOX_PATH)
        line: dict[str, str] = {
            "to": message.to,
            "channel": message.channel,
            "body": message.body,
            "tenant": message.tenant_slug,
            "sent_at": timezone.now().isoformat(),
        }
        if message.subject:
            line["subject"] = message.subject
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.stat().st_size + len(data) > settings.LANZUAN_OUTBOX_MAX_BYTES:
                outbox_rotate(path)
            # One write() on an O_APPEND descriptor: lines from the web process and
            # the worker never interleave.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise TransientGatewayError(f"could not write the outbox: {exc.strerror}") from None
        return GatewayResult(provider_message_id=f"file-{uuid.uuid4().hex}")


def outbox_rotate(path: Path | None = None) -> Path | None:
    """Move the outbox aside (`<name>.<UTC time>`); the next line starts a new file.
    A writer still holding the old file appends there, which is fine: lines stay whole."""
    path = Path(path or settings.OUTBOX_PATH)
    try:
        if path.stat().st_size == 0:
            return None
        rotated = path.with_name(f"{path.name}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
        os.replace(path, rotated)
    except FileNotFoundError:  # nothing written yet, or another process rotated it first
        return None
    return rotated


def outbox_expire(path: Path | None = None, *, keep_days: int | None = None) -> int:
    """Rotate the outbox (so no file grows older than a day of use) and delete rotated
    files older than LANZUAN_OUTBOX_KEEP_DAYS. Returns how many files were deleted."""
    path = Path(path or settings.OUTBOX_PATH)
    keep = settings.LANZUAN_OUTBOX_KEEP_DAYS if keep_days is None else keep_days
    outbox_rotate(path)
    cutoff = datetime.now(UTC).timestamp() - keep * 86400
    deleted = 0
    for old in path.parent.glob(f"{path.name}.*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
                deleted += 1
        except FileNotFoundError:
            pass
    return deleted


# --- SMTP email ---------------------------------------------------------------------


class SmtpGateway:
    """Django's email machinery; with an endpoint, its own SMTP server and credentials."""

    kind: str = GatewayConfig.Kind.SMTP
    resend_guard: str = "none"

    def __init__(
        self,
        *,
        from_email: str,
        endpoint: str = "",
        username: str = "",
        password: str = "",
        timeout: Timeout = HTTP_TIMEOUT,
    ) -> None:
        self.from_email = from_email or settings.DEFAULT_FROM_EMAIL
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.timeout = timeout

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
        return None  # an SMTP server cannot be asked

    def _connection(self) -> Any:
        if not self.endpoint:
            return get_connection(fail_silently=False, timeout=self.timeout[1])
        parts = urlsplit(self.endpoint)
        try:
            # connects to the address that was checked (STARTTLS/SMTPS verify the name)
            return outbound.pinned_smtp_backend(
                host=parts.hostname or "",
                port=parts.port
                or (465 if parts.scheme == "smtps" else 587 if parts.scheme == "smtp+tls" else 25),
                username=self.username or None,
                password=self.password or None,
                use_tls=parts.scheme == "smtp+tls",
                use_ssl=parts.scheme == "smtps",
                timeout=self.timeout[1],
                fail_silently=False,
            )
        except UnsafeURL as exc:
            raise PermanentGatewayError(str(exc)) from None

    def send(self, message: OutgoingMessage) -> GatewayResult:
        # The same Message-ID on every try of this message: mail systems that drop a
        # repeated Message-ID show a re-send once.
        domain = self.from_email.rpartition("@")[2] or "lanzuan.invalid"
        message_id = f"<{message.idempotency_key}.{message.tenant_slug}@{domain}>"
        email = EmailMessage(
            subject=message.subject,
            body=message.body,
            from_email=self.from_email,
            to=[message.to],
            headers={"Message-ID": message_id, "Auto-Submitted": "auto-generated"},
            connection=self._connection(),
        )
        try:
            email.send()
        except (
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
            smtplib.SMTPAuthenticationError,
        ) as exc:
            raise PermanentGatewayError(f"SMTP refused: {type(exc).__name__}") from None
        except smtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.smtp_code}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentGatewayError(text) from None
            raise TransientGatewayError(text) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientGatewayError(f"SMTP unavailable: {type(exc).__name__}") from None
        return GatewayResult(provider_message_id=message_id)


# --- Twilio SMS ----------------------------------------------------------------------


class TwilioGateway:
    """Twilio's Programmable Messaging through the official client.

    `base_url` replaces https://api.twilio.com (a regional proxy, or a local
    server in tests); delivery reports come back to `status_callback`.
    """

    kind: str = GatewayConfig.Kind.TWILIO
    resend_guard: str = "none"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        base_url: str = "",
        status_callback: str = "",
        timeout: Timeout = HTTP_TIMEOUT,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender
        self.base_url = base_url
        self.status_callback = status_callback
        self.timeout = timeout

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
        return None  # Twilio's Messages API takes no idempotency key

    def send(self, message: OutgoingMessage) -> GatewayResult:
        # twilio.rest takes a while to import; only this gateway needs it, when it sends.
        from twilio.base.exceptions import TwilioRestException  # noqa: PLC0415
        from twilio.http.http_client import TwilioHttpClient  # noqa: PLC0415
        from twilio.rest import Client  # noqa: PLC0415

        http_client = TwilioHttpClient(timeout=self.timeout[1])
        client = Client(self.account_sid, self.auth_token, http_client=http_client)
        if self.base_url:
            # the tenant's base URL: checked, and every call pinned to the checked address
            # (Twilio's own api.twilio.com is not tenant-controlled and is left as is)
            try:
                outbound.pinned_session(self.base_url, http_client.session)
            except UnsafeURL as exc:
                raise PermanentGatewayError(str(exc)) from None
            client.api.base_url = self.base_url.rstrip("/")
        params: dict[str, Any] = {"to": message.to, "body": message.body}
        if self.sender.startswith("MG"):
            params["messaging_service_sid"] = self.sender
        else:
            params["from_"] = self.sender
        if self.status_callback:
            params["status_callback"] = self.status_callback
        try:
            created = client.messages.create(**params)
        except TwilioRestException as exc:
            text = f"Twilio HTTP {exc.status}" + (f" error {exc.code}" if exc.code else "")
            if _is_transient_status(exc.status):
                raise TransientGatewayError(text) from None
            raise PermanentGatewayError(text) from None
        except requests.RequestException as exc:
            raise TransientGatewayError(f"Twilio unreachable: {type(exc).__name__}") from None
        if not created.sid:
            raise PermanentGatewayError("Twilio accepted the message but returned no sid")
        return GatewayResult(provider_message_id=str(created.sid))


# --- Aliyun SMS (dysmsapi RPC) -------------------------------------------------------

ALIYUN_DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
# Error codes worth retrying: throttling and Aliyun's own failures. Everything else
# (bad number, unapproved sign name or template, bad key) needs a person.
ALIYUN_TRANSIENT_CODES = frozenset({"isp.SYSTEM_ERROR", "isv.BUSINESS_LIMIT_CONTROL", "ServiceUnavailable"})


def aliyun_percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun's POP signature wants it: space → %20, * → %2A, ~ kept."""
    return quote(value, safe="~")


def aliyun_rpc_signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    """Aliyun RPC signature v1: base64(HMAC-SHA1(secret + "&", METHOD&%2F&encode(canonical query)))."""
    canonical = "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    string_to_sign = f"{method}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_phone(e164: str) -> str:
    """Mainland numbers without +86; other countries with their code and no '+'."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


# QuerySendDetails answers by the day the SMS was sent, in China's time.
ALIYUN_ZONE = ZoneInfo("Asia/Shanghai")
ALIYUN_LOOKUP_PAGES = 10  # of 50 records: more SMS to one number in a day is not a confirmation's case
# SendStatus of a record: 1 waiting for the carrier's report, 2 failed, 3 delivered.
ALIYUN_TAKEN_STATUSES = frozenset({1, 3})


class AliyunSmsGateway:
    """Aliyun SMS `SendSms`: Aliyun renders its approved template from TemplateParam.

    SendSms is not idempotent (Aliyun's documentation says so and asks callers to look at
    the delivery records before retrying after a timeout): every message carries its id as
    `OutId`, and a re-send after a lost claim first asks QuerySendDetails for it."""

    kind: str = GatewayConfig.Kind.ALIYUN
    resend_guard: str = "lookup"

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_codes: Mapping[str, str],
        endpoint: str = "",
        timeout: Timeout = HTTP_TIMEOUT,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_codes = template_codes
        self.endpoint = endpoint or ALIYUN_DEFAULT_ENDPOINT
        self.timeout = timeout

    def _signed(self, action: str, params: Mapping[str, str]) -> dict[str, str]:
        signed = {
            "AccessKeyId": self.access_key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            **params,
        }
        signed["Signature"] = aliyun_rpc_signature(signed, self.access_key_secret, "POST")
        return signed

    def signed_params(self, message: OutgoingMessage) -> dict[str, str]:
        template_code = self.template_codes.get(message.event) or self.template_codes.get("*", "")
        if not template_code:
            raise PermanentGatewayError(f"no Aliyun template code for the event {message.event}")
        return self._signed(
            "SendSms",
            {
                "OutId": str(message.message_id),
                "PhoneNumbers": aliyun_phone(message.to),
                "SignName": self.sign_name,
                "TemplateCode": template_code,
                "TemplateParam": json.dumps(
                    dict(message.variables), ensure_ascii=False, separators=(",", ":")
                ),
            },
        )

    def _call(self, params: Mapping[str, str]) -> tuple[requests.Response, dict[str, Any], str]:
        try:
            response = _post(self.endpoint, data=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientGatewayError(f"Aliyun unreachable: {type(exc).__name__}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        return response, payload, str(payload.get("Code", ""))

    def _raise_for(self, response: requests.Response, code: str) -> None:
        text = f"Aliyun HTTP {response.status_code} {code}".strip()
        if code in ALIYUN_TRANSIENT_CODES or code.startswith(("Throttling", "isp.")):
            raise TransientGatewayError(text)
        if not code and _is_transient_status(response.status_code):
            raise TransientGatewayError(text)
        raise PermanentGatewayError(text)

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
        """QuerySendDetails for the number, day by day since `since` (China time): a record
        whose OutId is this message's id, waiting for its report or delivered."""
        day = since.astimezone(ALIYUN_ZONE).date()
        today = datetime.now(ALIYUN_ZONE).date()
        while day <= today:
            for page in range(1, ALIYUN_LOOKUP_PAGES + 1):
                params = self._signed(
                    "QuerySendDetails",
                    {
                        "PhoneNumber": aliyun_phone(message.to),
                        "SendDate": day.strftime("%Y%m%d"),
                        "PageSize": "50",
                        "CurrentPage": str(page),
                    },
                )
                response, payload, code = self._call(params)
                if response.status_code != 200 or code != "OK":
                    self._raise_for(response, code)
                found = payload.get("SmsSendDetailDTOs") or {}
                records = found.get("SmsSendDetailDTO") or [] if isinstance(found, dict) else []
                for record in records if isinstance(records, list) else []:
                    if (
                        isinstance(record, dict)
                        and str(record.get("OutId", "")) == str(message.message_id)
                        and record.get("SendStatus") in ALIYUN_TAKEN_STATUSES
                    ):
                        return GatewayResult(provider_message_id=f"aliyun-outid-{message.message_id}")
                if len(records) < 50:
                    break
            day += timedelta(days=1)
        return None

    def send(self, message: OutgoingMessage) -> GatewayResult:
        response, payload, code = self._call(self.signed_params(message))
        if response.status_code == 200 and code == "OK":
            return GatewayResult(
                provider_message_id=str(payload.get("BizId") or payload.get("RequestId", ""))
            )
        self._raise_for(response, code)
        raise AssertionError("unreachable")  # _raise_for always raises


# --- generic signed HTTP -------------------------------------------------------------


class HttpGateway:
    """POSTs the message as JSON to the tenant's own sender, signed with a shared secret.

    Signed with the project's one scheme (lanzuan.signing: X-Lanzuan-Timestamp and
    X-Lanzuan-Signature = "v1=" + hex HMAC-SHA256 over f"{timestamp}.{body}"); the
    receiver verifies it with lanzuan.signing.verify(). Idempotency-Key lets it
    drop a message it has already accepted.
    The message id comes back as `id` in a JSON response (optional).
    """

    kind: str = GatewayConfig.Kind.HTTP
    resend_guard: str = "key"

    def __init__(self, *, url: str, secret: str, key_id: str = "", timeout: Timeout = HTTP_TIMEOUT) -> None:
        self.url = url
        self.secret = secret
        self.key_id = key_id
        self.timeout = timeout

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
        return None  # the receiver drops a repeated Idempotency-Key itself

    def send(self, message: OutgoingMessage) -> GatewayResult:
        body = json.dumps(
            {
                "id": message.idempotency_key,
                "tenant": message.tenant_slug,
                "channel": message.channel,
                "event": message.event,
                "language": message.language,
                "to": message.to,
                "subject": message.subject,
                "body": message.body,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Lanzuan/1.0",
            "Idempotency-Key": message.idempotency_key,
            **signed_headers(self.secret, body),
        }
        if self.key_id:
            headers["X-Lanzuan-Key-Id"] = self.key_id
        try:
            response = _post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientGatewayError(f"could not reach the gateway: {type(exc).__name__}") from None
        if 200 <= response.status_code < 300:
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            provider_id = payload.get("id") if isinstance(payload, dict) else None
            return GatewayResult(provider_message_id=str(provider_id or message.idempotency_key))
        text = f"HTTP {response.status_code}: {response.text[:200]}"
        if _is_transient_status(response.status_code):
            raise TransientGatewayError(text)
        raise PermanentGatewayError(text)


# --- choosing one --------------------------------------------------------------------


def gateway_for(
    config: GatewayConfig | None, *, status_callback: str = "", timeout: Timeout = HTTP_TIMEOUT
) -> Gateway:
    """The gateway a tenant configured for a channel. None (or inactive): the file
    gateway where it is allowed (file_gateway_allowed), else GatewayNotConfigured:
    in production a message without a gateway fails, it is never silently filed away."""
    if config is None or not config.is_active or config.kind == GatewayConfig.Kind.FILE:
        if file_gateway_allowed():
            return FileGateway()
        raise GatewayNotConfigured(
            f"{NO_GATEWAY_PREFIX} for this channel: set one up in the admin (Gateways);"
            " the file gateway is for development only (LANZUAN_FILE_GATEWAY=1)"
        )
    kind = config.kind
    if kind == GatewayConfig.Kind.SMTP:
        return SmtpGateway(
            from_email=config.sender_id,
            endpoint=config.endpoint,
            username=config.account_id,
            password=config.secret,
            timeout=timeout,
        )
    if kind == GatewayConfig.Kind.TWILIO:
        return TwilioGateway(
            account_sid=config.account_id,
            auth_token=config.secret,
            sender=config.sender_id,
            base_url=config.endpoint,
            status_callback=status_callback,
            timeout=timeout,
        )
    if kind == GatewayConfig.Kind.ALIYUN:
        codes = {key: str(value) for key, value in (config.template_codes or {}).items()}
        if config.template_code:
            codes.setdefault("*", config.template_code)
        return AliyunSmsGateway(
            access_key_id=config.account_id,
            access_key_secret=config.secret,
            sign_name=config.sender_id,
            template_codes=codes,
            endpoint=config.endpoint,
            timeout=timeout,
        )
    if kind == GatewayConfig.Kind.HTTP:
        return HttpGateway(
            url=config.endpoint, secret=config.secret, key_id=config.account_id, timeout=timeout
        )
    if file_gateway_allowed():
        return FileGateway()
    raise GatewayNotConfigured(f"{NO_GATEWAY_PREFIX}: unknown gateway kind {kind!r}")
