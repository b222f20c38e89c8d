"""Where we may connect on a client's word: http(s) URLs whose host resolves only to
public addresses. Webhook receivers, and image URLs a worker fetches (workers/fetching.py).

Checked when a job is submitted (a clear 400) and again at every attempt, after DNS
resolution, on the very address the request then connects to: a host that resolved to a
public address at submit time may resolve to 169.254.169.254 by delivery time (DNS
rebinding), and a URL naming a public host must never reach the metadata service, the
database or a port on localhost from inside our network.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2000


class WebhookURLError(ValueError):
    """The URL may not be used, whatever the network does; the message says why."""


class UnresolvableHost(WebhookURLError):
    """The host did not resolve: maybe a typo, maybe a passing DNS failure."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # the URL's host, IDNA-encoded: for TLS and the Host header
    port: int
    netloc: str  # host[:port], for the Host header
    path: str  # path and query
    address: str  # the checked IP the request connects to


def resolve(url, allowed_hosts=None, purpose="webhooks go", setting="WEBHOOK_ALLOWED_HOSTS"):
    """The URL's target with a checked address to connect to; raises WebhookURLError.

    `allowed_hosts` (default WEBHOOK_ALLOWED_HOSTS) skip the address check: an operator's
    own hosts, for tests and development; `purpose` and `setting` word the refusal.
    """
    if allowed_hosts is None:
        allowed_hosts = settings.WEBHOOK_ALLOWED_HOSTS
    scheme, host, port, netloc, path = _parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(f"the host {host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if host.lower() not in allowed_hosts:
        # Every address, not only the first: the client library may pick any of them.
        for address in addresses:
            kind = refused_kind(address)
            if kind:
                # The address itself is not named: that would let any client map the
                # internal DNS through our resolver.
                named = f"{host} is" if host == address else f"{host} resolves to"
                raise WebhookURLError(
                    f"{named} a {kind} address; {purpose} to public addresses only "
                    f"(an operator may allow a host with {setting})"
                )
    return Target(scheme, host, port, netloc, path, addresses[0])


def check_syntax(url):
    """What can be refused without a DNS lookup (scheme, host, credentials, length): at
    submit, where a lookup would hold a web thread; resolve() checks the rest later."""
    _parse(url)


def refused_kind(address):
    """Why an address is refused ('loopback', 'private', ...), or None for a public one."""
    return _kind(ipaddress.ip_address(address.split("%", 1)[0]))  # drop an IPv6 zone (fe80::1%eth0)


def _kind(ip):
    if ip.version == 6:
        # IPv6 forms that carry an IPv4 address reach that address.
        if ip.ipv4_mapped:  # ::ffff:10.0.0.1
            return _kind(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)  # 2002:a9fe:a9fe::
        if embedded and _kind(embedded):
            return _kind(embedded)
        if ip.is_site_local:  # fec0::/10, deprecated but still routed in places
            return "site-local"
    # Order matters: 127.0.0.1 and 169.254.169.254 are also "private" to ipaddress.
    checks = [
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),
    ]
    return next((kind for kind, refused in checks if refused), None)


def _parse(url):
    if len(url) > MAX_URL_LENGTH:
        raise WebhookURLError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port or a malformed IPv6 literal
        raise WebhookURLError(f"the URL is malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookURLError("only http and https URLs can be used")
    if not parts.hostname:
        raise WebhookURLError("the URL has no host")
    try:  # international names travel as punycode, in DNS, TLS and the Host header alike
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise WebhookURLError("the URL's host is not a valid domain name") from None
    if parts.username is not None or parts.password is not None:
        # They would travel in clear text in our logs and admin; the signature is the
        # receiver's proof that a delivery comes from us.
        raise WebhookURLError("the URL must not carry credentials (they would be kept in clear text)")
    if any(ord(char) < 33 for char in url):
        raise WebhookURLError("the URL contains spaces or control characters")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    bracketed = f"[{host}]" if ":" in host else host
    netloc = bracketed if port is None else f"{bracketed}:{port}"
    port = port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, host, port, netloc, path
