"""Where we may connect on a client's word: http(s) URLs whose host resolves only to
public addresses. Webhook receivers, and image URLs a worker fetches (workers/fetching.py).

Checked when a job is submitted (a clear 400) and again at every attempt, after DNS
resolution, on the very address the request then connects to: a host that resolved to a
public address at submit time may resolve to 169.254.169.254 by delivery time (DNS
rebinding), and a URL naming a public host must never reach the metadata service, the
database or a port on localhost from inside our network.

Webhooks also go to WEBHOOK_ALLOWED_PORTS only, and their refusals never say what our
resolver answered (resolve_webhook): a name that does not resolve, resolves to a private
address or passes its lookup's deadline all get one message, or clients could map the
internal DNS through us (a DNS oracle).
"""

import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000
# Lookups under way at once in one process. A lookup past its deadline keeps its thread
# until the C resolver gives up by itself (resolv.conf's timeout x attempts, per nameserver:
# up to half a minute); past this many stuck, further lookups wait their deadline and fail,
# refused or retried as any slow lookup, instead of each taking a thread of its own.
LOOKUP_THREADS = 32


class WebhookURLError(ValueError):
    """The URL may not be used, whatever the network does; the message says why."""


class UnresolvableHost(WebhookURLError):
    """The host did not resolve, or not within WEBHOOK_DNS_TIMEOUT: maybe a typo, maybe a
    passing DNS failure."""


class RefusedAddress(WebhookURLError):
    """The host resolves to an address that is not public (`kind` says which kind)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


class NotPublic(WebhookURLError):
    """A webhook host that did not resolve (in time) or resolved to a refused address: one
    message for all, which a delivery retries, as the DNS may change."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # the URL's host, IDNA-encoded: for TLS and the Host header
    port: int
    netloc: str  # host[:port], for the Host header
    path: str  # path and query
    address: str  # the checked IP the request connects to


@dataclass(frozen=True)
class Rules:
    """Where one kind of request may go on a client's word."""

    exempt: Callable[[str, int], bool]  # (host, port) an operator allows: no port or address check
    ports: Collection[int] | None  # the ports a URL may name; None: any
    purpose: str  # "webhooks go": words the refusals
    hint: str  # how an operator allows a host, for the refusals


def webhook_rules():
    """The webhooks' rules, from the settings as they are now."""
    allowed = settings.WEBHOOK_ALLOWED_HOSTS
    return Rules(
        exempt=lambda host, port: _entry(host, port) in allowed,
        ports=settings.WEBHOOK_ALLOWED_PORTS,
        purpose="webhooks go",
        hint="an operator may exempt a host:port with WEBHOOK_ALLOWED_HOSTS",
    )


def resolve_webhook(url):
    """resolve() under the webhooks' rules, whose DNS answers a refusal never tells apart:
    NotPublic for every host that did not resolve (in time) or not to public addresses only."""
    rules = webhook_rules()
    try:
        return resolve(url, rules)
    except (UnresolvableHost, RefusedAddress) as exc:
        log.info("webhook URL refused: %s", exc)  # what the resolver said is the operator's to read
        host = _parse(url)[1]
        raise NotPublic(
            f"{host} did not resolve to public addresses; {rules.purpose} to public addresses only ({rules.hint})"
        ) from None


def resolve(url, rules):
    """The URL's target with a checked address to connect to; raises WebhookURLError."""
    scheme, host, port, netloc, path = _parse(url)
    exempt = rules.exempt(host, port)
    if rules.ports is not None and port not in rules.ports and not exempt:
        allowed = ", ".join(map(str, sorted(rules.ports)))
        raise WebhookURLError(
            f"port {port} is not allowed: {rules.purpose} to ports {allowed} only ({rules.hint})"
        )
    addresses = list(dict.fromkeys(info[4][0] for info in _lookup(host, port)))
    if not exempt:
        # Every address, not only the first: the client library may pick any of them.
        for address in addresses:
            kind = refused_kind(address)
            if kind:
                # The address itself is not named: that would let any client map the
                # internal DNS through our resolver.
                named = f"{host} is" if host == address else f"{host} resolves to"
                raise RefusedAddress(
                    f"{named} a {kind} address; {rules.purpose} to public addresses only ({rules.hint})", kind
                )
    return Target(scheme, host, port, netloc, path, addresses[0])


def _lookup(host, port):
    """getaddrinfo within WEBHOOK_DNS_TIMEOUT. The C resolver has no deadline a caller can
    set, and a name whose DNS server never answers would hold a web thread (at submit) or an
    io thread for as long as resolv.conf allows; the lookup runs in a pool thread instead,
    and past the deadline we stop waiting for it."""
    timeout = settings.WEBHOOK_DNS_TIMEOUT
    lookup = _lookups(os.getpid()).submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return lookup.result(timeout=timeout)
    except TimeoutError:
        lookup.cancel()  # still waiting for a thread: it need not run at all
        raise UnresolvableHost(f"the host {host} did not resolve within {timeout} s") from None
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(f"the host {host} does not resolve ({exc})") from None


@functools.cache
def _lookups(pid):
    # One pool per process: a pool's threads do not survive a fork (Celery's prefork pool),
    # and a pool inherited without them would queue every lookup for ever.
    return ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="dns-lookup")


def _entry(host, port):
    """A WEBHOOK_ALLOWED_HOSTS entry as segsite.env.env_host_port_list writes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_syntax(url):
    """What can be refused without a DNS lookup (scheme, host, credentials, length): at
    submit, where a lookup would hold a web thread; resolve() checks the rest later."""
    _parse(url)


def refused_literal(url, exempt_hosts):
    """Why a URL whose host is an IP address (in any spelling the resolver takes: 10.0.0.1,
    [::1], 2130706433, 127.1) is refused ('loopback', 'private', ...), else None: what can be
    told at submit without a DNS lookup. A host name is left to resolve()."""
    host = _parse(url)[1]
    if host in exempt_hosts:
        return None
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None  # a name
    return next(filter(None, (refused_kind(info[4][0]) for info in infos)), None)


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
