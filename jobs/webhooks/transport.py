"""One delivery attempt: a POST to a checked address, classified for the retry schedule.

urllib3 is used directly so that the request connects to the address addresses.resolve()
checked (TLS still verifies the URL's host name), follows no redirect and retries nothing
on its own: the outbox decides about retries and records every attempt.
"""

import time
from dataclasses import dataclass

import urllib3

from . import addresses

# The start of the receiver's answer kept with the attempt, for whoever debugs it.
MAX_RESPONSE_CHARS = 1000
# Statuses below 500 that still mean "try again later".
RETRYABLE_STATUSES = {408, 429}


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
    """POST `body` (bytes) to `url`; never raises for anything the network or receiver does."""
    started = time.monotonic()
    outcome = _attempt(url, body, headers, timeout)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


def _attempt(url, body, headers, timeout):
    try:
        target = addresses.resolve(url)
    except addresses.UnresolvableHost as exc:
        return Outcome(error=str(exc)[:500], retryable=True)  # DNS failures pass
    except addresses.WebhookURLError as exc:
        return Outcome(error=str(exc)[:500], retryable=False)
    pool = _pool(target, timeout)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": target.netloc},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            text = response.read(MAX_RESPONSE_CHARS).decode("utf-8", "replace")
        finally:
            response.release_conn()
    except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable (a TimeoutError subclass)
        return Outcome(error=_describe(exc), retryable=True)
    except urllib3.exceptions.TimeoutError:
        return Outcome(error=f"no answer within {timeout} s", retryable=True)
    except urllib3.exceptions.HTTPError as exc:  # reset, TLS, protocol errors
        return Outcome(error=_describe(exc), retryable=True)
    finally:
        pool.close()
    return _classify(response.status, text[:MAX_RESPONSE_CHARS], response.headers.get("Location"))


def _pool(target, timeout):
    options = {"timeout": urllib3.Timeout(total=timeout), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            **options,
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, **options)


def _classify(status, text, location):
    if 200 <= status < 300:
        return Outcome(status_code=status, response_body=text)
    if 300 <= status < 400:
        # Following would leave the checked address; a fixed configuration may stop it.
        error = f"HTTP {status}: redirect to {location or '(no Location)'} not followed"
        return Outcome(status_code=status, response_body=text, error=error[:500], retryable=True)
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    error = f"HTTP {status}" + ("" if retryable else ": the receiver refused the delivery; not retried")
    return Outcome(status_code=status, response_body=text, error=error, retryable=retryable)


def _describe(exc):
    # urllib3 wraps the interesting part (ConnectionRefusedError, an SSL error) in reason.
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"[:500]
