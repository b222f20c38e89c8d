import socket

import pytest

from .receivers import ScriptedReceiver, SilentReceiver


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
