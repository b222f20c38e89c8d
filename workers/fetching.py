"""Fetch an image a client named by URL, in the worker (never in a web thread).

Under the webhook sender's address rules (jobs/webhooks/addresses.py): public addresses
only, checked again after every redirect and connected to as checked (no second DNS
lookup to rebind), at most IMAGE_URL_MAX_REDIRECTS redirects, IMAGE_URL_MAX_BYTES enforced
while reading (a Content-Length can lie), and one deadline for the whole exchange, redirects
included (a server dripping a byte a second must not hold a worker). The bytes then go
through the same decode checks as an upload.
"""

import time
from urllib.parse import urljoin

import urllib3
from django.conf import settings

from core.imageio import ImageError
from jobs.webhooks import addresses, transport

CHUNK = 64 * 1024
USER_AGENT = "segment-backend image fetcher"


class ImageURLError(ImageError):
    """A URL that gave no image; `code` says which way (image_url_refused, ...)."""

    status = 400

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def fetch_image(url):
    """The bytes at `url`, following redirects; raises ImageURLError."""
    deadline = time.monotonic() + settings.IMAGE_URL_TIMEOUT
    for _ in range(settings.IMAGE_URL_MAX_REDIRECTS + 1):
        target = _checked(url)
        status, location, body = _get(target, deadline)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)  # checked again, from its own DNS answer, above
            continue
        if status != 200:
            raise ImageURLError("image_url_unreachable", f"{_host(url)} answered HTTP {status}")
        return body
    raise ImageURLError(
        "image_url_unreachable", f"more than {settings.IMAGE_URL_MAX_REDIRECTS} redirects from the image URL"
    )


def _checked(url):
    try:
        return addresses.resolve(
            url,
            addresses.Rules(
                exempt=lambda host, port: host in settings.IMAGE_URL_ALLOWED_HOSTS,
                ports=None,
                purpose="images are fetched from",
                hint="an operator may allow a host with IMAGE_URL_ALLOWED_HOSTS",
            ),
        )
    except addresses.UnresolvableHost as exc:
        raise ImageURLError("image_url_unreachable", str(exc)) from None
    except addresses.WebhookURLError as exc:
        raise ImageURLError("image_url_refused", str(exc)) from None


def _get(target, deadline):
    """(status, Location, body) of one GET; the body only for a 200."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _too_slow()
    connection = transport.connect(target, remaining)
    watchdog = transport.Watchdog(connection, remaining)
    try:
        connection.request(
            "GET",
            target.path,
            headers={"Host": target.netloc, "User-Agent": USER_AGENT, "Accept": "image/*"},
            preload_content=False,
        )
        response = connection.getresponse()
        if response.status != 200:
            return response.status, response.headers.get("Location"), b""
        _check_headers(response)
        body = _read_capped(response, deadline)
        if watchdog.fired:  # the watchdog's shutdown reads as an early end of the body
            raise _too_slow()
        return response.status, None, body
    except transport.NETWORK_ERRORS as exc:
        if watchdog.fired:
            raise _too_slow() from None
        raise ImageURLError("image_url_unreachable", f"{target.host}: {transport._describe(exc)}") from None
    finally:
        watchdog.cancel()
        connection.close()


def _check_headers(response):
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    # No type, or a generic one, is common for files on object stores: the decoder decides.
    if (
        kind
        and not kind.startswith("image/")
        and kind not in ("application/octet-stream", "binary/octet-stream")
    ):
        raise ImageURLError("image_url_not_image", f"the URL serves {kind}, not an image")
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > settings.IMAGE_URL_MAX_BYTES:
        raise _too_large()


def _read_capped(response, deadline):
    """The body, refused past IMAGE_URL_MAX_BYTES or the deadline. read1: whatever has
    arrived, so that a server sending a byte at a time meets the deadline between reads
    (read() would wait for a whole chunk)."""
    chunks, size = [], 0
    while chunk := response.read1(CHUNK):
        if time.monotonic() > deadline:
            raise _too_slow()
        size += len(chunk)
        if size > settings.IMAGE_URL_MAX_BYTES:
            raise _too_large()
        chunks.append(chunk)
    if not size:
        raise ImageURLError("image_url_not_image", "the URL serves an empty body")
    return b"".join(chunks)


def _too_large():
    return ImageURLError(
        "image_url_too_large", f"the image at the URL is over {settings.IMAGE_URL_MAX_BYTES} bytes"
    )


def _too_slow():
    return ImageURLError(
        "image_url_unreachable", f"the image URL did not answer within {settings.IMAGE_URL_TIMEOUT} s"
    )


def _host(url):
    return urllib3.util.parse_url(url).host or url
