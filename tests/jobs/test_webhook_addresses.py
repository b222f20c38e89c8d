"""Which URLs a webhook may go to: public http(s) hosts on the allowed ports only, unless
an operator exempts a host:port; refused alike whatever the DNS answered."""

import dataclasses
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from jobs.webhooks.addresses import (
    NotPublic,
    RefusedAddress,
    UnresolvableHost,
    WebhookURLError,
    refused_kind,
    resolve,
    resolve_webhook,
    webhook_rules,
)


def refusal(url):
    """The message a client is given for a webhook URL refused as not public."""
    with pytest.raises(NotPublic) as refused:
        resolve_webhook(url)
    return str(refused.value)


def generic(host):
    return (
        f"{host} did not resolve to public addresses; webhooks go to public addresses only "
        "(an operator may exempt a host:port with WEBHOOK_ALLOWED_HOSTS)"
    )


REFUSED = {
    "http://127.0.0.1/hook": "loopback",
    "http://127.0.0.1:8000/admin/": "loopback",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://10.0.0.1/": "private",
    "http://192.168.1.20:8080/x": "private",
    "http://172.16.5.4/": "private",
    "http://100.64.0.1/": "non-public",  # carrier-grade NAT
    "http://0.0.0.0/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://240.0.0.1/": "reserved",
    "http://[::1]/": "loopback",
    "http://[fe80::1]/": "link-local",
    "http://[fd00::1]/": "private",
    "http://[::ffff:10.0.0.1]/": "private",  # IPv4-mapped IPv6
    "http://2130706433/": "loopback",  # 127.0.0.1 written as one number
    "http://0x7f.1/": "loopback",
    "http://localhost/hook": "loopback",  # resolved by the real resolver
    "http://[2002:a9fe:a9fe::]/": "link-local",  # 6to4 wrapping 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/": "private",  # Teredo to 10.0.0.1
    "http://[fec0::1]/": "site-local",
}


@pytest.mark.parametrize("url, kind", REFUSED.items())
def test_addresses_that_are_not_public_are_refused_saying_no_more_than_that(url, kind):
    with pytest.raises(RefusedAddress) as refused:  # any port here: only the address is at stake
        resolve(url, dataclasses.replace(webhook_rules(), ports=None))
    assert refused.value.kind == kind  # for the operator's log
    parts = urlsplit(url)
    if parts.port is None:  # another port than 80 or 443 is refused before any lookup
        assert refusal(url) == generic(parts.hostname)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("ftp://93.184.216.34/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///no-host", "no host"),
        ("https://user:secret@93.184.216.34/", "credentials"),
        ("http://93.184.216.34:99999/", "malformed"),
        ("http://[::1/", "malformed"),
        ("http://93.184.216.34/a b", "spaces or control"),
        ("http://93.184.216.34/" + "a" * 2000, "longer than"),
    ],
)
def test_malformed_and_non_http_urls_are_refused(url, reason):
    with pytest.raises(WebhookURLError) as refused:
        resolve_webhook(url)
    assert reason in str(refused.value)


def test_a_hostname_resolving_to_a_private_address_is_refused(fake_dns):
    fake_dns["intranet.example.com"] = "10.1.2.3"
    message = refusal("https://intranet.example.com/hook")
    assert message == generic("intranet.example.com")
    assert "10.1.2.3" not in message  # the internal DNS is not ours to map for clients


def test_a_name_that_does_not_resolve_gets_the_very_refusal_of_a_private_one(fake_dns):
    """No DNS oracle: "no such name" and "a name of our intranet" must read the same."""
    fake_dns["intranet.example.com"] = "10.1.2.3"
    fake_dns["intranet2.example.com"] = "93.184.216.34"
    private = refusal("https://intranet.example.com/hook")
    missing = refusal("https://intranet2.no-such-zone.invalid/hook")
    assert missing == private.replace("intranet.example.com", "intranet2.no-such-zone.invalid")


def test_a_host_is_refused_if_any_of_its_addresses_is_private(monkeypatch):
    import socket

    def two_addresses(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.0.9", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    with pytest.raises(RefusedAddress, match="resolves to a private address"):
        resolve("https://mixed.example.com/", webhook_rules())
    assert refusal("https://mixed.example.com/") == generic("mixed.example.com")


def test_an_unresolvable_host_is_its_own_error_below_the_webhooks_refusal(fake_dns):
    # Image URLs tell the two apart (image_url_unreachable, workers/fetching.py).
    with pytest.raises(UnresolvableHost, match="does not resolve"):
        resolve("https://no-such-host.invalid/hook", webhook_rules())


@pytest.fixture
def hanging_dns(monkeypatch, settings):
    """A resolver whose answer for slow.example.com never comes (until the test ends), and a
    one-second deadline."""
    settings.WEBHOOK_DNS_TIMEOUT = 1
    released = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "slow.example.com":
            released.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    released.set()


def test_a_lookup_past_its_deadline_is_refused_in_time_like_any_other(hanging_dns):
    started = time.monotonic()
    message = refusal("https://slow.example.com/hook")
    assert 0.9 < time.monotonic() - started < 2.5  # the web thread is back after the deadline
    assert message == generic("slow.example.com")
    with pytest.raises(UnresolvableHost, match="did not resolve within 1 s"):
        resolve("https://slow.example.com/hook", webhook_rules())


def test_lookups_stuck_past_their_deadline_leave_the_others_answering(hanging_dns, fake_dns):
    fake_dns["hooks.example.com"] = "93.184.216.34"
    stuck = [threading.Thread(target=refusal, args=("https://slow.example.com/",)) for _ in range(4)]
    for thread in stuck:
        thread.start()
    for thread in stuck:
        thread.join()
    started = time.monotonic()
    assert resolve_webhook("https://hooks.example.com/").address == "93.184.216.34"
    assert time.monotonic() - started < 0.5


def test_a_public_url_resolves_to_the_address_to_connect_to(fake_dns, settings):
    settings.WEBHOOK_ALLOWED_PORTS = [80, 443, 8443]
    fake_dns["hooks.example.com"] = "93.184.216.34"
    target = resolve_webhook("https://hooks.example.com:8443/segment/done?app=ios#frag")
    assert target.address == "93.184.216.34" and target.port == 8443 and target.scheme == "https"
    assert target.host == "hooks.example.com" and target.netloc == "hooks.example.com:8443"
    assert target.path == "/segment/done?app=ios"
    bare = resolve_webhook("http://93.184.216.34")
    assert bare.port == 80 and bare.path == "/"


def test_an_international_host_travels_as_punycode(fake_dns):
    fake_dns["xn--bcher-kva.de"] = "93.184.216.34"
    target = resolve_webhook("https://bücher.de/hook")
    assert target.host == "xn--bcher-kva.de" and target.netloc == "xn--bcher-kva.de"
    with pytest.raises(WebhookURLError, match="not a valid domain name"):
        resolve_webhook("https://" + "a" * 64 + ".example.com/")


@pytest.mark.parametrize("port", [22, 5432, 6379, 8000, 8443])
def test_a_public_host_on_another_port_is_refused_before_any_lookup(fake_dns, monkeypatch, port):
    looked_up = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: looked_up.append(args))
    with pytest.raises(WebhookURLError) as refused:
        resolve_webhook(f"https://hooks.example.com:{port}/hook")
    assert not isinstance(refused.value, NotPublic)  # not retried: the URL is wrong, not the DNS
    assert str(refused.value).startswith(f"port {port} is not allowed: webhooks go to ports 80, 443 only")
    assert looked_up == []


def test_the_allowed_ports_are_the_operators_to_choose(fake_dns, settings):
    fake_dns["hooks.example.com"] = "93.184.216.34"
    settings.WEBHOOK_ALLOWED_PORTS = [8443]
    assert resolve_webhook("https://hooks.example.com:8443/").port == 8443
    with pytest.raises(WebhookURLError, match="port 443 is not allowed: webhooks go to ports 8443 only"):
        resolve_webhook("https://hooks.example.com/")


def test_an_exempted_host_port_may_be_local_on_that_port_only(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9000", "localhost:9000", "[::1]:9000"]
    assert resolve_webhook("http://127.0.0.1:9000/hook").address == "127.0.0.1"
    assert resolve_webhook("http://LOCALHOST:9000/hook").address in ("127.0.0.1", "::1")
    assert resolve_webhook("http://[::1]:9000/hook").address == "::1"
    with pytest.raises(WebhookURLError, match="port 9001 is not allowed"):
        resolve_webhook("http://127.0.0.1:9001/hook")  # the host's other ports are not exempt
    settings.WEBHOOK_ALLOWED_PORTS = [80, 443, 9001]
    assert refusal("http://127.0.0.1:9001/hook") == generic("127.0.0.1")  # nor its address
    assert refusal("http://127.0.0.1/hook") == generic("127.0.0.1")
    assert refusal("http://10.0.0.1/") == generic("10.0.0.1")  # only the hosts named


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_not_refused(address):
    assert refused_kind(address) is None
