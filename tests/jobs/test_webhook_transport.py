"""One delivery attempt against real local HTTP servers: what is sent, how it is judged."""

import socket
import threading

import pytest

from jobs.webhooks import transport
from tests.jobs.receivers import closed_port_url
from tests.tls import write_self_signed

BODY = b'{"id": "x"}'
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg-1"}


def post(url, timeout=5):
    return transport.post(url, BODY, HEADERS, timeout)


def test_a_2xx_is_delivered_with_the_body_headers_path_and_host(allow_local, receiver):
    hooks = receiver([204], body="")
    outcome = post(hooks.url)
    assert outcome.delivered and outcome.status_code == 204 and not outcome.error
    path, headers, body = hooks.requests[0]
    assert path == "/hooks/segment?source=test" and body == BODY
    assert headers["webhook-id"] == "msg-1" and headers["Host"] == f"127.0.0.1:{hooks.port}"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_throttling_and_timeouts_are_retried(allow_local, receiver, status):
    outcome = post(receiver([status]).url)
    assert not outcome.delivered and outcome.retryable and outcome.status_code == status
    assert outcome.error == f"HTTP {status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 410, 422])
def test_other_4xx_mean_refused_and_are_not_retried(allow_local, receiver, status):
    outcome = post(receiver([status]).url)
    assert not outcome.delivered and not outcome.retryable
    assert "not retried" in outcome.error


def test_a_redirect_is_not_followed_and_counts_as_a_failure(allow_local, receiver):
    target = receiver([200])
    redirecting = receiver([302], headers={"Location": target.url})
    outcome = post(redirecting.url)
    assert outcome.status_code == 302 and not outcome.delivered and outcome.retryable
    assert "not followed" in outcome.error and target.url in outcome.error
    assert len(redirecting.requests) == 1 and target.requests == []


def test_the_answer_is_kept_only_up_to_its_limit(allow_local, receiver):
    outcome = post(receiver([500], body="x" * 50_000).url)
    assert outcome.response_body == "x" * transport.MAX_RESPONSE_CHARS


def test_a_receiver_that_never_answers_times_out_and_is_retried(allow_local, silent_receiver):
    outcome = post(silent_receiver.url, timeout=1)
    assert outcome.retryable and outcome.status_code is None
    assert outcome.error == "no answer within 1 s"
    assert 900 <= outcome.duration_ms < 5000


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_timeout(allow_local, dripping_receiver):
    # One header line every 0.3 s: each read is quick, the whole answer is not.
    outcome = post(dripping_receiver, timeout=1)
    assert outcome.error == "no answer within 1 s" and outcome.retryable
    assert outcome.duration_ms < 2500


def test_nul_bytes_in_an_answer_are_dropped(allow_local, receiver):
    outcome = post(receiver([200], body="ok\x00done").url)
    assert outcome.delivered and outcome.response_body == "okdone"


def test_a_closed_port_is_a_retried_network_error(allow_local):
    outcome = post(allow_local(closed_port_url()))
    assert outcome.retryable and outcome.status_code is None and "refused" in outcome.error.lower()


def test_a_local_address_is_refused_without_a_request_when_not_exempted(receiver, settings):
    hooks = receiver([200])
    settings.WEBHOOK_ALLOWED_PORTS = [hooks.port]  # the port passes: the address must not
    outcome = post(hooks.url)
    assert not outcome.delivered and "127.0.0.1 did not resolve to public addresses" in outcome.error
    assert hooks.requests == []


def test_a_port_the_settings_do_not_allow_is_failed_without_a_request(receiver, settings):
    hooks = receiver([200])
    settings.WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hooks.port + 1}"]  # another port of the host
    outcome = post(hooks.url)
    assert not outcome.retryable and outcome.error.startswith(f"port {hooks.port} is not allowed")
    assert hooks.requests == []


def test_a_host_turned_private_since_submit_is_refused_and_retried_as_a_lookup_that_failed(fake_dns):
    """DNS rebinding (public at submit, 10.0.0.7 now) and a lookup that fails read the
    same in the attempt the client sees, and both are retried: an answer that told them apart
    would map the internal DNS for whoever submits."""
    fake_dns["hooks.example.com"] = "10.0.0.7"
    rebound = post("http://hooks.example.com/hook")
    failed = post("http://hooks.no-such-zone.invalid/hook")
    assert rebound.retryable and failed.retryable and rebound.status_code is failed.status_code is None
    assert failed.error == rebound.error.replace("hooks.example.com", "hooks.no-such-zone.invalid")
    assert "private" not in rebound.error and "10.0.0.7" not in rebound.error


def test_a_lookup_past_its_deadline_is_retried_later(monkeypatch, settings):
    settings.WEBHOOK_DNS_TIMEOUT = 1
    released = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: released.wait(30))
    try:
        outcome = post("http://slow.example.com/hook")
    finally:
        released.set()
    assert outcome.retryable and outcome.status_code is None
    assert outcome.error.startswith("slow.example.com did not resolve to public addresses")
    assert 900 <= outcome.duration_ms < 2500


def test_the_request_goes_to_the_checked_address_not_a_second_lookup(
    allow_local, receiver, fake_dns, settings
):
    # The host resolves once, to the receiver; the request must use that very address.
    hooks = receiver([200])
    fake_dns["hooks.test"] = "127.0.0.1"
    settings.WEBHOOK_ALLOWED_HOSTS = [f"hooks.test:{hooks.port}"]
    outcome = post(f"http://hooks.test:{hooks.port}/x")
    assert outcome.delivered and hooks.requests[0][1]["Host"] == f"hooks.test:{hooks.port}"


def test_a_dns_answer_that_changes_after_the_check_reaches_nobody_else(
    allow_local, receiver, monkeypatch, settings
):
    """DNS rebinding: the first answer (checked) is the receiver; every later one points at
    another address, where a second receiver listens on the same port and must hear nothing."""
    checked = receiver([200])
    elsewhere = receiver([200], address="127.0.0.2", port=checked.port)
    answers = iter(["127.0.0.1"])
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.2"), port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.WEBHOOK_ALLOWED_HOSTS = [f"hooks.test:{checked.port}"]
    outcome = post(f"http://hooks.test:{checked.port}/x")
    assert outcome.delivered and len(checked.requests) == 1
    assert elsewhere.requests == []


# HTTPS: the receiver must prove it is the URL's host with a certificate a trusted CA issued
# for that name. Without these, CERT_NONE (or no host name check) in transport.connect would
# send signed job results to whoever answers on the address.


def test_an_https_receiver_with_a_certificate_from_a_trusted_ca_gets_the_request(
    checked_to_localhost, issued, https_receiver
):
    hooks = https_receiver(issued("hooks.test"), [204])
    outcome = post(f"https://hooks.test:{hooks.port}/hooks/segment?source=test")
    assert outcome.delivered and outcome.status_code == 204 and not outcome.error
    path, headers, body = hooks.requests[0]
    assert path == "/hooks/segment?source=test" and body == BODY
    assert headers["webhook-id"] == "msg-1" and headers["Host"] == f"hooks.test:{hooks.port}"


def test_a_self_signed_certificate_is_refused_before_any_request(
    checked_to_localhost, test_ca, https_receiver, tmp_path
):
    # The right name, but nobody vouches for it: anyone can make one.
    hooks = https_receiver(write_self_signed("hooks.test", tmp_path))
    outcome = post(f"https://hooks.test:{hooks.port}/hook")
    assert not outcome.delivered and outcome.status_code is None and outcome.retryable
    assert "certificate verify failed" in outcome.error and "self-signed" in outcome.error
    assert hooks.requests == []


def test_a_trusted_certificate_for_another_host_is_refused_before_any_request(
    checked_to_localhost, issued, https_receiver
):
    # A real certificate, for a host the attacker controls, on the address the URL's host
    # resolves to: only the host name check tells them apart.
    hooks = https_receiver(issued("elsewhere.test"))
    outcome = post(f"https://hooks.test:{hooks.port}/hook")
    assert not outcome.delivered and outcome.status_code is None and outcome.retryable
    assert "hooks.test" in outcome.error and "doesn't match" in outcome.error
    assert hooks.requests == []
