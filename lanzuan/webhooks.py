"""What every incoming gateway webhook (reply SMS, the voice menu) shares: how a request
proves who sent it, and the error for a payload that cannot be read.

- Twilio: X-Twilio-Signature, checked with the twilio package's RequestValidator over
  the public URL of the endpoint.
- generic: signed like every Lanzuan webhook (lanzuan.signing: X-Lanzuan-Timestamp,
  X-Lanzuan-Signature).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm

from lanzuan import signing


class Malformed(ValueError):
    """The payload cannot be read; str(exc) says why."""


# --- twilio -------------------------------------------------------------------------------


def twilio_url(request: HttpRequest) -> str:
    """The URL Twilio signed: behind a proxy our public base URL, else what we were called at."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + request.get_full_path()
    return request.build_absolute_uri()


def twilio_signature_ok(request: HttpRequest, auth_token: str) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not auth_token:
        return False
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
    # The QueryDict itself, so repeated fields are signed the way Twilio signs them.
    return bool(
        RequestValidator(auth_token).validate(twilio_url(request), request.POST, signature, algorithm)
    )


# --- generic ------------------------------------------------------------------------------


class SignatureRefused(Exception):
    """The generic signature is missing (status 401) or wrong or stale (403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify_generic(request: HttpRequest, secret: str) -> None:
    timestamp = request.headers.get(signing.TIMESTAMP_HEADER, "")
    received = request.headers.get(signing.SIGNATURE_HEADER, "")
    if not timestamp or not received:
        raise SignatureRefused(
            401,
            _("Sign the request: %(ts)s and %(sig)s headers are required.")
            % {"ts": signing.TIMESTAMP_HEADER, "sig": signing.SIGNATURE_HEADER},
        )
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise SignatureRefused(403, _("The timestamp is not a Unix time in seconds.")) from None
    if age > signing.MAX_AGE_SECONDS:
        raise SignatureRefused(
            403,
            _("The timestamp is more than %(seconds)d seconds away from our clock (replay refused).")
            % {"seconds": signing.MAX_AGE_SECONDS},
        )
    if not signing.verify(secret, timestamp, request.body, received):
        raise SignatureRefused(403, _("The signature does not match."))
