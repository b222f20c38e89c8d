"""`manage.py webhook_receiver`: prints verified deliveries, refuses forged ones."""

import io
import json
import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer

import pytest
import requests
from django.core.management import CommandError, call_command
from standardwebhooks import Webhook

from jobs.management.commands.webhook_receiver import _handler
from jobs.models import new_webhook_secret
from jobs.webhooks.signing import signature_headers


@pytest.fixture
def run_receiver():
    servers = []

    def run(secret, fail=0):
        out = io.StringIO()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Webhook(secret), fail, 0, out))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", out

    yield run
    for server in servers:
        server.shutdown()
        server.server_close()


def signed(secret, body, message_id="msg-1"):
    return signature_headers(message_id, body, [secret], datetime.now(UTC))


def test_a_signed_delivery_is_printed_and_answered_200(run_receiver):
    secret = new_webhook_secret()
    url, out = run_receiver(secret)
    body = json.dumps({"id": "job-1", "status": "succeeded"})
    response = requests.post(url, data=body, headers=signed(secret, body), timeout=5)
    assert response.status_code == 200
    line = json.loads(out.getvalue())
    assert (
        line["webhook_id"] == "msg-1" and line["answered"] == 200 and line["payload"]["status"] == "succeeded"
    )


def test_a_forged_or_unsigned_delivery_is_refused_with_401_and_not_printed(run_receiver):
    url, out = run_receiver(new_webhook_secret())
    body = json.dumps({"id": "job-1"})
    forged = requests.post(url, data=body, headers=signed(new_webhook_secret(), body), timeout=5)
    unsigned = requests.post(url, data=body, timeout=5)
    assert forged.status_code == 401 and unsigned.status_code == 401
    assert out.getvalue() == ""


def test_it_fails_the_first_deliveries_on_request(run_receiver):
    secret = new_webhook_secret()
    url, out = run_receiver(secret, fail=1)
    body = "{}"
    statuses = [
        requests.post(url, data=body, headers=signed(secret, body), timeout=5).status_code for _ in range(2)
    ]
    assert statuses == [500, 200]


def test_a_bad_secret_is_a_command_error():
    with pytest.raises(CommandError, match="not a webhook secret"):
        call_command("webhook_receiver", "--secret", "whsec_", "--port", "0")
