"""Which URLs a webhook may go to: public http(s) hosts only, unless allowlisted."""

import pytest

from jobs.webhooks.addresses import UnresolvableHost, WebhookURLError, refused_kind, resolve

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
def test_addresses_that_are_not_public_are_refused(url, kind):
    with pytest.raises(WebhookURLError) as refused:
        resolve(url)
    assert f"a {kind} address" in str(refused.value)


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
        resolve(url)
    assert reason in str(refused.value)


def test_a_hostname_resolving_to_a_private_address_is_refused(fake_dns):
    fake_dns["intranet.example.com"] = "10.1.2.3"
    with pytest.raises(
        WebhookURLError, match="intranet.example.com resolves to a private address"
    ) as refused:
        resolve("https://intranet.example.com/hook")
    assert "10.1.2.3" not in str(refused.value)  # the internal DNS is not ours to map for clients


def test_a_host_is_refused_if_any_of_its_addresses_is_private(monkeypatch):
    import socket

    def two_addresses(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.0.9", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    with pytest.raises(WebhookURLError, match="resolves to a private address"):
        resolve("https://mixed.example.com/")


def test_an_unresolvable_host_is_its_own_error(fake_dns):
    with pytest.raises(UnresolvableHost, match="does not resolve"):
        resolve("https://no-such-host.invalid/hook")


def test_a_public_url_resolves_to_the_address_to_connect_to(fake_dns):
    fake_dns["hooks.example.com"] = "93.184.216.34"
    target = resolve("https://hooks.example.com:8443/segment/done?app=ios#frag")
    assert target.address == "93.184.216.34" and target.port == 8443 and target.scheme == "https"
    assert target.host == "hooks.example.com" and target.netloc == "hooks.example.com:8443"
    assert target.path == "/segment/done?app=ios"
    assert resolve("http://93.184.216.34").port == 80 and resolve("http://93.184.216.34").path == "/"


def test_an_international_host_travels_as_punycode(fake_dns):
    fake_dns["xn--bcher-kva.de"] = "93.184.216.34"
    target = resolve("https://bücher.de/hook")
    assert target.host == "xn--bcher-kva.de" and target.netloc == "xn--bcher-kva.de"
    with pytest.raises(WebhookURLError, match="not a valid domain name"):
        resolve("https://" + "a" * 64 + ".example.com/")


def test_an_allowlisted_host_may_be_local(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    assert resolve("http://127.0.0.1:9000/hook").address == "127.0.0.1"
    assert resolve("http://LOCALHOST:9000/hook").address in ("127.0.0.1", "::1")
    with pytest.raises(WebhookURLError):
        resolve("http://10.0.0.1/")  # only the hosts named


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_not_refused(address):
    assert refused_kind(address) is None
