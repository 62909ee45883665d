"""Where Lanzuan may send HTTP (and SMTP) on a tenant's behalf, and how.

Tenant administrators configure URLs (termination and erasure endpoints,
webhooks, SMS gateways, SMTP servers). Without a check, one of them could make our
servers call internal services (databases' HTTP ports, cloud metadata at
169.254.169.254). So an outbound URL must be https to a public address, unless its
address (and port) is in LANZUAN_OUTBOUND_ALLOW.

"Public" is judged on the address and on any IPv4 address embedded in it: the NAT64
(64:ff9b::/96), 6to4 (2002::/16) and IPv4-compatible (::/96) forms of a private
address are as private as the address itself; Teredo (2001::/32), IPv4-mapped
(::ffff:0:0/96) and local-use NAT64 (64:ff9b:1::/48) addresses are refused outright
(nothing legitimate publishes them, and they reach IPv4 hosts behind the check's back).

Checked when the URL is saved and again right before each call. The call then
connects to the very address that was checked (`post()`, `pinned_session()`,
`pinned_smtp_backend()`): a name that resolves to a public address at check time and
to 127.0.0.1 a moment later (DNS rebinding) cannot reach the local service, because
the name is not resolved a second time. The Host header, TLS SNI and certificate
verification still use the name. Proxies from the environment are ignored for these
calls: a proxy would resolve the name again.

LANZUAN_OUTBOUND_ALLOW entries are networks, optionally limited to ports:
`127.0.0.0/8@32768-65535` allows loopback on the ephemeral ports test servers bind
(not PostgreSQL's 5432 or Redis's 6379); `127.0.0.0/8` allows every port.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend
from django.utils.translation import gettext as _
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address: (network, how to get the IPv4 address out).
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Refused whatever they embed: Teredo, IPv4-mapped, and the local-use NAT64 prefix
# (its embedding depends on a prefix length we cannot know; RFC 8215).
REFUSED = (
    ipaddress.ip_network("2001::/32"),
    ipaddress.ip_network("::ffff:0:0/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)


class UnsafeURL(ValueError):
    """str(exc) is a message fit to show the administrator who entered the URL."""


@dataclass(frozen=True)
class Allowance:
    network: Network
    ports: tuple[int, int] | None  # inclusive range; None: every port

    def covers(self, address: Address, port: int | None) -> bool:
        if address not in self.network:
            return False
        if self.ports is None:
            return True
        return port is not None and self.ports[0] <= port <= self.ports[1]


def parse_allowance(entry: str) -> Allowance:
    """ "NET" or "NET@PORT" or "NET@LOW-HIGH" (see the module docstring)."""
    network, _sep, ports = entry.strip().partition("@")
    if not ports:
        return Allowance(ipaddress.ip_network(network, strict=False), None)
    low, _sep, high = ports.partition("-")
    return Allowance(ipaddress.ip_network(network, strict=False), (int(low), int(high or low)))


def _allowances() -> list[Allowance]:
    return [parse_allowance(entry) for entry in settings.LANZUAN_OUTBOUND_ALLOW if entry.strip()]


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address reaches, if it is one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Global, and not a transition form of an address that is not."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in net for net in REFUSED):
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            # a DNS64 network answers 64:ff9b::<IPv4> for a public IPv4-only host;
            # what matters is the host it reaches
            return inner.is_global and not inner.is_multicast
        return address.is_global and not address.is_multicast
    return address.is_global and not address.is_multicast


def _addresses(host: str, port: int | None = None) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def check_url(url: str, *, resolve_required: bool = False) -> None:
    """Raise UnsafeURL unless `url` may be called. A name that does not resolve
    passes at save time (it may only exist in production DNS) but not at call time
    (`resolve_required=True`)."""
    checked_url(url, resolve_required=resolve_required)


def _default_port(scheme: str) -> int:
    return {"https": 443, "http": 80, "smtps": 465, "smtp+tls": 587, "smtp": 25}.get(scheme, 443)


def checked_url(url: str, *, resolve_required: bool = True) -> Address | None:
    """check_url(), answering the address the call must connect to (None when the
    name did not resolve and that was allowed)."""
    parts = urlsplit(url or "")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeURL(_("Enter a full https:// URL.")) from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURL(_("Enter a full https:// URL."))
    return check_host(
        parts.hostname,
        resolve_required=resolve_required,
        encrypted=parts.scheme == "https",
        port=port or _default_port(parts.scheme),
    )


def check_host(
    host: str, *, resolve_required: bool = False, encrypted: bool = True, port: int | None = None
) -> Address | None:
    """The address part of check_url(), also for non-HTTP endpoints (an SMTP server).
    Every address the name has must pass; the first is the one to connect to."""
    addresses = _addresses(host, port)
    if not addresses:
        if resolve_required:
            raise UnsafeURL(_("The host %(host)s could not be resolved.") % {"host": host})
        if not encrypted:
            raise UnsafeURL(_("Use an https:// URL."))
        return None
    allowed = _allowances()
    for address in addresses:
        if any(allowance.covers(address, port) for allowance in allowed):
            continue
        if not encrypted:
            raise UnsafeURL(_("Use an https:// URL."))
        if not is_public(address):
            raise UnsafeURL(
                _("%(host)s points to a private or internal address (%(address)s); use a public endpoint.")
                % {"host": host, "address": address}
            )
    return addresses[0]


# --- connecting to the checked address ------------------------------------------------


@dataclass(frozen=True)
class Pin:
    host: str  # the name, lower-case, as in the URL
    address: str  # the checked address the connection goes to


def _pinned_socket(conn: HTTPConnection, pin: Pin) -> socket.socket:
    if conn.host.rstrip(".").lower() != pin.host:
        # a redirect or a second URL: only the checked name may be called
        raise NewConnectionError(conn, f"{conn.host} was not checked for this call")
    address = ipaddress.ip_address(pin.address)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        for option in conn.socket_options or []:
            sock.setsockopt(*option)
        if conn.timeout is not None:
            sock.settimeout(conn.timeout)
        sock.connect((pin.address, conn.port))
    except TimeoutError as exc:
        sock.close()
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out") from exc
    except OSError as exc:
        sock.close()
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    return sock


def _pool_classes(pin: Pin) -> dict[str, type]:
    class PinnedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, pin)

    class PinnedHTTPSConnection(HTTPSConnection):
        # SNI and the certificate check use self.host (the name), not the address.
        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, pin)

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    return {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}


class PinnedAdapter(HTTPAdapter):
    """A requests transport that connects only to `pin.address`, for `pin.host`."""

    def __init__(self, pin: Pin) -> None:
        self.pin = pin
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.pin)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise requests.ConnectionError("outbound calls to tenants' endpoints do not use a proxy")


def pin_url(url: str) -> Pin:
    """Check `url` at call time (raises UnsafeURL) and say where to connect."""
    address = checked_url(url, resolve_required=True)
    assert address is not None  # resolve_required
    return Pin(host=(urlsplit(url).hostname or "").lower(), address=str(address))


def pinned_session(url: str, session: requests.Session | None = None) -> requests.Session:
    """A session (a new one, or `session` re-equipped) whose every request goes to the
    address checked for `url`'s host. Raises UnsafeURL."""
    pin = pin_url(url)
    session = session or requests.Session()
    session.trust_env = False  # an environment proxy would resolve the name again
    adapter = PinnedAdapter(pin)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def post(url: str, **kwargs: Any) -> requests.Response:
    """requests.post() to a checked, pinned address, never following redirects.
    Raises UnsafeURL before sending anything if the URL may not be called."""
    with pinned_session(url) as session:
        return session.post(url, allow_redirects=False, **kwargs)


# --- SMTP ------------------------------------------------------------------------------


def pinned_smtp_backend(*, host: str, port: int, **kwargs: Any) -> EmailBackend:
    """Django's SMTP backend connecting to the checked address of `host` (STARTTLS and
    SMTPS still verify the certificate for `host`). Raises UnsafeURL."""
    address = check_host(host, resolve_required=True, port=port)
    assert address is not None
    return _PinnedSmtpBackend(host=host, port=port, pinned_address=str(address), **kwargs)


class _PinnedSmtpBackend(EmailBackend):
    def __init__(self, *, pinned_address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pinned_address = pinned_address

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        pinned = self.pinned_address

        class PinnedSMTP(smtplib.SMTP):
            def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
                return socket.create_connection((pinned, port), timeout, self.source_address)

        class PinnedSMTPSSL(smtplib.SMTP_SSL):
            def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
                sock = socket.create_connection((pinned, port), timeout, self.source_address)
                context: ssl.SSLContext = self.context
                return context.wrap_socket(sock, server_hostname=self._host)  # type: ignore[attr-defined]  # set by SMTP.connect(), not in typeshed

        return PinnedSMTPSSL if self.use_ssl else PinnedSMTP
