import socket
import threading
import time

import pytest

from tests.jobs.receivers import ScriptedReceiver, SilentReceiver


@pytest.fixture(autouse=True)
def light_worker_announced(served_models):
    """Every test here talks to the API as if a light worker were up (see served_models)."""
    return served_models


@pytest.fixture
def allow_local(settings):
    """Let webhooks go to 127.0.0.1, where the test receivers listen."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def receiver():
    receivers = []

    def start(statuses=(200,), **kwargs):
        receivers.append(ScriptedReceiver(statuses, **kwargs))
        return receivers[-1]

    yield start
    for started in receivers:
        started.close()


@pytest.fixture
def silent_receiver():
    silent = SilentReceiver()
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
def dripping_receiver():
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
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    time.sleep(0.01)
    server.close()
