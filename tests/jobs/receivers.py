"""In-process HTTP(S) receivers with a script of answers, for the webhook unit tests."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedReceiver:
    """Answers each POST with the next status of `statuses` (the last one repeats).

    With `tls` (a server-side ssl.SSLContext holding a certificate) it speaks HTTPS. The
    handshake happens at accept, in the server's thread: a client that refuses the
    certificate never gets as far as a request, and `requests` stays empty.
    """

    def __init__(self, statuses=(200,), body="ok", headers=None, address="127.0.0.1", port=0, tls=None):
        self.statuses = list(statuses)
        self.body = body
        self.headers = headers or {}
        self.requests = []  # (path, headers dict, body bytes)
        self.server = ThreadingHTTPServer((address, port), self._handler())
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{address}:{self.port}/hooks/segment?source=test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                index = min(len(receiver.requests), len(receiver.statuses)) - 1
                data = receiver.body.encode()
                self.send_response(receiver.statuses[index])
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                pass

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SilentReceiver:
    """A port that accepts connections (the kernel does) but never answers: a hung receiver."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def close(self):
        self.socket.close()


def closed_port_url():
    """A URL on a local port nobody listens on: connection refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
