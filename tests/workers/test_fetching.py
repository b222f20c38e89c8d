"""Image URLs fetched by the worker: redirects checked again, sizes capped while reading,
one deadline, content types, and the webhook address rules, against a local HTTP server.

127.0.0.1 is where the server listens, so tests that want a fetch to succeed allow it
(IMAGE_URL_ALLOWED_HOSTS, as an operator would for development); the others leave it
refused, as in production.
"""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import gradient, image_bytes
from tests.tls import server_context
from workers.fetching import ImageURLError, fetch_image

PNG = image_bytes(gradient())


class ImageServer:
    """Serves `routes`: path -> (status, headers, body); the body may be a callable(wfile)."""

    def __init__(self, routes, tls=None):
        self.routes, self.hits = routes, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits.append(self.path)
                status, headers, body = server.routes[self.path]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if callable(body):
                    body(self.wfile)
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # a server-side ssl.SSLContext: HTTPS, the handshake at accept
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        self.port = self.http.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(routes, tls=None):
        servers.append(ImageServer(routes, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def allow_local(settings):
    settings.IMAGE_URL_ALLOWED_HOSTS = ["127.0.0.1"]
    return settings


def refusal(url):
    with pytest.raises(ImageURLError) as raised:
        fetch_image(url)
    return raised.value


def test_it_fetches_an_image_and_follows_a_redirect(serve, allow_local):
    server = serve(
        {
            "/old": (302, {"Location": "/photo.png"}, b""),
            "/photo.png": (200, {"Content-Type": "image/png", "Content-Length": str(len(PNG))}, PNG),
        }
    )
    assert fetch_image(server.url + "/old") == PNG
    assert server.hits == ["/old", "/photo.png"]


def test_a_loopback_address_is_refused_without_a_request(serve):
    server = serve({"/photo.png": (200, {"Content-Type": "image/png"}, PNG)})
    error = refusal(server.url + "/photo.png")
    assert error.code == "image_url_refused" and "loopback" in error.message
    assert "IMAGE_URL_ALLOWED_HOSTS" in error.message and server.hits == []


def test_a_redirect_to_a_private_address_is_checked_again_and_refused(serve, settings):
    # The first host is allowed (as a public one would be); where it redirects is not.
    settings.IMAGE_URL_ALLOWED_HOSTS = ["127.0.0.1"]
    server = serve({"/go": (302, {"Location": "http://10.0.0.1/secret.png"}, b"")})
    error = refusal(server.url + "/go")
    assert error.code == "image_url_refused" and "private" in error.message
    assert server.hits == ["/go"]


def test_it_stops_after_the_redirect_limit(serve, allow_local):
    allow_local.IMAGE_URL_MAX_REDIRECTS = 2
    server = serve({f"/{i}": (302, {"Location": f"/{i + 1}"}, b"") for i in range(10)})
    error = refusal(server.url + "/0")
    assert error.code == "image_url_unreachable" and "more than 2 redirects" in error.message
    assert server.hits == ["/0", "/1", "/2"]


def test_a_declared_size_over_the_cap_is_refused_before_reading(serve, allow_local):
    allow_local.IMAGE_URL_MAX_BYTES = 1000
    server = serve({"/big.png": (200, {"Content-Type": "image/png", "Content-Length": "5000"}, b"x" * 5000)})
    assert refusal(server.url + "/big.png").code == "image_url_too_large"


def test_a_body_longer_than_it_said_is_cut_at_the_cap(serve, allow_local):
    allow_local.IMAGE_URL_MAX_BYTES = 100_000

    def endless(wfile):
        try:
            for _ in range(100):
                wfile.write(b"y" * 10_000)
        except OSError:
            pass  # the fetcher hung up at the cap

    server = serve({"/lies.png": (200, {"Content-Type": "image/png"}, endless)})  # no Content-Length
    assert refusal(server.url + "/lies.png").code == "image_url_too_large"


def test_a_server_that_drips_is_cut_at_the_deadline(serve, allow_local):
    allow_local.IMAGE_URL_TIMEOUT = 1

    def drip(wfile):
        try:
            for _ in range(30):
                wfile.write(b"z")
                wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    server = serve({"/slow.png": (200, {"Content-Type": "image/png"}, drip)})
    started = time.monotonic()
    error = refusal(server.url + "/slow.png")
    assert error.code == "image_url_unreachable" and "within 1 s" in error.message
    assert time.monotonic() - started < 3


def test_a_page_is_not_an_image(serve, allow_local):
    server = serve({"/page": (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html></html>")})
    error = refusal(server.url + "/page")
    assert error.code == "image_url_not_image" and "text/html" in error.message


def test_an_error_status_is_unreachable_and_says_it(serve, allow_local):
    server = serve({"/gone.png": (404, {}, b"")})
    error = refusal(server.url + "/gone.png")
    assert error.code == "image_url_unreachable" and "HTTP 404" in error.message


def test_a_host_that_does_not_resolve_is_unreachable():
    assert refusal("http://no-such-host.invalid/photo.png").code == "image_url_unreachable"


def test_a_closed_port_is_unreachable(allow_local):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    assert refusal(f"http://127.0.0.1:{port}/photo.png").code == "image_url_unreachable"


PHOTO_ROUTE = {"/photo.png": (200, {"Content-Type": "image/png"}, PNG)}


def test_an_https_image_from_a_host_with_a_trusted_certificate_is_fetched(
    serve, checked_to_localhost, issued
):
    server = serve(PHOTO_ROUTE, server_context(issued("img.test")))
    assert fetch_image(f"https://img.test:{server.port}/photo.png") == PNG


def test_a_certificate_for_another_host_is_unreachable_and_says_it(serve, checked_to_localhost, issued):
    # Trusted, but for another name: refused before the GET, as a client's error, not a crash.
    server = serve(PHOTO_ROUTE, server_context(issued("evil.test")))
    error = refusal(f"https://img.test:{server.port}/photo.png")
    assert error.code == "image_url_unreachable" and "doesn't match" in error.message
    assert server.hits == []
