"""A webhook receiver for debugging: verifies each delivery and prints it as a JSON line.

    python manage.py webhook_receiver --port 9000 --secret whsec_...

Point a job's webhook_url at it (exempt it with WEBHOOK_ALLOWED_HOSTS=127.0.0.1:9000). --fail and
--delay make it misbehave on purpose, to watch retries and timeouts.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.core.management.base import BaseCommand, CommandError
from standardwebhooks import Webhook, WebhookVerificationError

MAX_BODY = 10 * 1024 * 1024


class Command(BaseCommand):
    help = "Receive webhooks, verify their Standard Webhooks signatures, print each as a JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=9000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--secret", required=True, help="the account's webhook_secret (whsec_...)")
        parser.add_argument(
            "--fail", type=int, default=0, help="answer 500 to the first N verified deliveries"
        )
        parser.add_argument(
            "--delay", type=float, default=0.0, help="wait this many seconds before answering"
        )

    def handle(self, *args, **options):
        try:
            webhook = Webhook(options["secret"])
        except Exception as exc:
            raise CommandError(f"--secret is not a webhook secret: {exc}") from None
        handler = _handler(webhook, options["fail"], options["delay"], self.stdout)
        try:
            server = ThreadingHTTPServer((options["host"], options["port"]), handler)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from None
        server.daemon_threads = True
        host, port = server.server_address[:2]
        self.stderr.write(f"listening on http://{host}:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _handler(webhook, fail_first, delay, out):
    lock = threading.Lock()
    verified = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._answer(413, "too large")
            body = self.rfile.read(length)
            try:
                payload = webhook.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError) as exc:
                sys.stderr.write(f"refused a delivery: {exc}\n")
                return self._answer(401, f"signature not verified: {exc}")
            with lock:
                verified[0] += 1
                status = 500 if verified[0] <= fail_first else 200
                out.write(
                    json.dumps(
                        {
                            "webhook_id": self.headers["webhook-id"],
                            "timestamp": int(self.headers["webhook-timestamp"]),
                            "answered": status,
                            "payload": payload,
                        }
                    )
                    + "\n"
                )
                out.flush()
            if delay:
                threading.Event().wait(delay)
            self._answer(status, "ok" if status == 200 else "failing on purpose")

        def _answer(self, status, text):
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # the JSON lines are the log
            pass

    return Handler
