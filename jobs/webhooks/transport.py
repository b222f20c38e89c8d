"""One delivery attempt: a POST to a checked address, classified for the retry schedule.

urllib3's connection class is used directly so that the request connects to the address
addresses.resolve() checked (TLS still verifies the URL's host name), follows no redirect
and retries nothing on its own: the outbox decides about retries and records each attempt.
"""

import socket
import threading
import time
from dataclasses import dataclass

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

from jobs.webhooks import addresses

# The start of the receiver's answer kept with the attempt, for whoever debugs it.
MAX_RESPONSE_CHARS = 1000
# What the network or the other end can make a request raise. CertificateError is a trusted
# certificate for another host: urllib3 checks the name itself (assert_hostname) and raises
# a ValueError for a mismatch, not an OSError, which would otherwise escape as a crash.
NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError, CertificateError)


@dataclass
class Outcome:
    status_code: int | None = None
    duration_ms: int = 0
    response_body: str = ""
    error: str = ""
    retryable: bool = False

    @property
    def delivered(self):
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url, body, headers, timeout):
    """POST `body` (bytes) to `url` within `timeout` seconds in all; never raises for
    anything the network or the receiver does."""
    started = time.monotonic()
    outcome = _attempt(url, body, headers, timeout)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    # PostgreSQL text cannot hold NUL; a receiver's answer may.
    outcome.response_body = outcome.response_body.replace("\x00", "")
    outcome.error = outcome.error.replace("\x00", "")[:500]
    return outcome


def _attempt(url, body, headers, timeout):
    try:
        target = addresses.resolve_webhook(url)
    except addresses.NotPublic as exc:
        # Retried: a DNS failure passes, and a host re-pointed at a private address may be
        # pointed back. Failing only the second at once would tell the two apart.
        return Outcome(error=str(exc), retryable=True)
    except addresses.WebhookURLError as exc:  # a port the settings no longer allow
        return Outcome(error=str(exc), retryable=False)
    connection = connect(target, timeout)
    # A socket timeout bounds each read, not the whole exchange: a receiver dripping one
    # header line at a time could hold this thread for hours. The watchdog shuts the
    # socket at the deadline, which ends whatever read is under way.
    watchdog = Watchdog(connection, timeout)
    try:
        connection.request(
            "POST", target.path, body=body, headers={**headers, "Host": target.netloc}, preload_content=False
        )
        response = connection.getresponse()
        text = response.read(MAX_RESPONSE_CHARS).decode("utf-8", "replace")
    except NETWORK_ERRORS as exc:
        if (
            watchdog.fired
            or isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError))
            and not _refused(exc)
        ):
            return Outcome(error=f"no answer within {timeout} s", retryable=True)
        return Outcome(error=_describe(exc), retryable=True)  # refused, reset, TLS, protocol
    finally:
        watchdog.cancel()
        connection.close()
    if watchdog.fired:
        return Outcome(error=f"no answer within {timeout} s", retryable=True)
    return _classify(response.status, text, response.headers.get("Location"))


class Watchdog:
    """Shuts the connection's socket at the deadline, whatever read is under way."""

    def __init__(self, connection, timeout):
        self.fired = False
        self._connection = connection
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self):
        self.fired = True
        sock = self._connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self):
        self._timer.cancel()


def connect(target, timeout):
    """An unopened connection to the address resolve() checked; TLS verifies the URL's host."""
    if target.scheme == "https":
        return HTTPSConnection(
            target.address,
            target.port,
            timeout=timeout,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return HTTPConnection(target.address, target.port, timeout=timeout)


def _classify(status, text, location):
    if 200 <= status < 300:
        return Outcome(status_code=status, response_body=text)
    if 300 <= status < 400:
        # Following would leave the checked address; a fixed configuration may stop it.
        error = f"HTTP {status}: redirect to {location or '(no Location)'} not followed"
        return Outcome(status_code=status, response_body=text, error=error, retryable=True)
    retryable = status >= 500 or status == 429
    error = f"HTTP {status}" + ("" if retryable else ": the receiver refused the delivery; not retried")
    return Outcome(status_code=status, response_body=text, error=error, retryable=retryable)


def _refused(exc):
    # urllib3's NewConnectionError (connection refused) is a subclass of its timeout error.
    return isinstance(exc, urllib3.exceptions.NewConnectionError)


def _describe(exc):
    # urllib3 wraps the interesting part (ConnectionRefusedError, an SSL error) in reason.
    # An ssl.SSLError's own reason is a bare code (CERTIFICATE_VERIFY_FAILED): its message
    # says more (which check failed: "self-signed certificate", "certificate has expired").
    reason = getattr(exc, "reason", None)
    if not isinstance(reason, BaseException):
        reason = exc
    return f"{type(reason).__name__}: {reason}"
