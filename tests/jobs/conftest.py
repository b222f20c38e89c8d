import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.jobs.receivers import ScriptedReceiver, SilentReceiver
from tests.tls import server_context


@pytest.fixture(autouse=True)
def light_worker_announced(served_models):
    """Every test here talks to the API as if a light worker were up (see served_models)."""
    return served_models


@pytest.fixture
def allow_local(settings):
    """allow(url) exempts the URL's host:port (WEBHOOK_ALLOWED_HOSTS), as an operator lists
    a local receiver, and returns the URL. A test that asks for this fixture gets every
    receiver the fixtures here start exempted that way, each on its own port."""
    settings.WEBHOOK_ALLOWED_HOSTS = []

    def allow(url):
        parts = urlsplit(url)
        settings.WEBHOOK_ALLOWED_HOSTS = [*settings.WEBHOOK_ALLOWED_HOSTS, f"{parts.hostname}:{parts.port}"]
        return url

    return allow


def exempted_if_allowed(request, url):
    """The URL, exempted if the test asked for allow_local; else it stays refused."""
    if "allow_local" in request.fixturenames:
        request.getfixturevalue("allow_local")(url)
    return url


@pytest.fixture
def receiver(request):
    receivers = []

    def start(statuses=(200,), **kwargs):
        receivers.append(ScriptedReceiver(statuses, **kwargs))
        exempted_if_allowed(request, receivers[-1].url)
        return receivers[-1]

    yield start
    for started in receivers:
        started.close()


@pytest.fixture
def https_receiver(receiver):
    """start(pem, statuses): a scripted receiver speaking TLS with the key and certificate
    in that PEM file."""

    def start(pem, statuses=(200,)):
        return receiver(statuses, tls=server_context(pem))

    return start


@pytest.fixture
def silent_receiver(request):
    silent = SilentReceiver()
    exempted_if_allowed(request, silent.url)
    yield silent
    silent.close()


@pytest.fixture
def fake_dns(monkeypatch):
    """Resolve chosen host names to chosen addresses: the network's lowest seam (DNS)."""
    names = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def dripping_receiver(request):
    """A receiver that answers one header line every 0.3 s, for ever: a slowloris."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def drip():
        connection, _ = server.accept()
        connection.recv(65536)
        try:
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.3):
                connection.sendall(b"X-Drip: 1\r\n")
        except OSError:
            pass
        finally:
            connection.close()

    threading.Thread(target=drip, daemon=True).start()
    yield exempted_if_allowed(request, f"http://127.0.0.1:{server.getsockname()[1]}/hook")
    stop.set()
    time.sleep(0.01)
    server.close()
