"""One delivery attempt against real local HTTP servers: what is sent, how it is judged."""

import socket

import pytest

from jobs.webhooks import transport
from tests.jobs.receivers import closed_port_url

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
    outcome = post(closed_port_url())
    assert outcome.retryable and outcome.status_code is None and "refused" in outcome.error.lower()


def test_a_local_address_is_refused_without_a_request_when_not_allowlisted(receiver):
    hooks = receiver([200])
    outcome = post(hooks.url)
    assert not outcome.delivered and not outcome.retryable and "loopback" in outcome.error
    assert hooks.requests == []


def test_a_host_that_turned_private_since_submit_is_refused_at_delivery(fake_dns, receiver):
    fake_dns["hooks.example.com"] = "10.0.0.7"  # DNS rebinding: it was public at submit
    outcome = post("http://hooks.example.com/hook")
    assert not outcome.retryable and "resolves to a private address" in outcome.error


def test_the_request_goes_to_the_checked_address_not_a_second_lookup(
    allow_local, receiver, fake_dns, settings
):
    # The host resolves once, to the receiver; the request must use that very address.
    hooks = receiver([200])
    fake_dns["hooks.test"] = "127.0.0.1"
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.test"]
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
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.test"]
    outcome = post(f"http://hooks.test:{checked.port}/x")
    assert outcome.delivered and len(checked.requests) == 1
    assert elsewhere.requests == []
