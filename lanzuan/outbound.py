"""Where Lanzuan may send HTTP on a tenant's behalf.

Tenant administrators configure URLs (termination and erasure endpoints,
webhooks, SMS gateways). Without a check, one of them could make our servers call
internal services (databases' HTTP ports, cloud metadata at 169.254.169.254).
So an outbound URL must be https to a public address, unless its address is in
LANZUAN_OUTBOUND_ALLOW (networks; development and tests allow loopback). Checked
when the URL is saved and again right before each call, since DNS can change.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _


class UnsafeURL(ValueError):
    """str(exc) is a message fit to show the administrator who entered the URL."""


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(net, strict=False) for net in settings.LANZUAN_OUTBOUND_ALLOW]


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_url(url: str, *, resolve_required: bool = False) -> None:
    """Raise UnsafeURL unless `url` may be called. A name that does not resolve
    passes at save time (it may only exist in production DNS) but not at call time
    (`resolve_required=True`)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURL(_("Enter a full https:// URL."))
    check_host(parts.hostname, resolve_required=resolve_required, encrypted=parts.scheme == "https")


def check_host(host: str, *, resolve_required: bool = False, encrypted: bool = True) -> None:
    """The address part of check_url(), also for non-HTTP endpoints (an SMTP server)."""
    addresses = _addresses(host)
    if not addresses:
        if resolve_required:
            raise UnsafeURL(_("The host %(host)s could not be resolved.") % {"host": host})
        if not encrypted:
            raise UnsafeURL(_("Use an https:// URL."))
        return
    allowed = _allowed_networks()
    for address in addresses:
        if any(address in network for network in allowed):
            continue
        if not encrypted:
            raise UnsafeURL(_("Use an https:// URL."))
        if not address.is_global:
            raise UnsafeURL(
                _("%(host)s points to a private or internal address (%(address)s); use a public endpoint.")
                % {"host": host, "address": address}
            )
