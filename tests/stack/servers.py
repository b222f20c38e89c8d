"""Private Redis and PostgreSQL servers that the fault tests stop and restart at will.

The machine's own servers stay untouched: other tests (and anything else on the machine)
keep using them while these come and go. Each listens on a free port on 127.0.0.1.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout, what, interval=0.1):
    """check()'s first true answer, asked every `interval` seconds; AssertionError(what)
    after `timeout` seconds: a service that never gets there fails the test, never hangs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(interval)
    raise AssertionError(f"{what} after {timeout}s")


class PrivateRedis:
    """redis-server as production runs it without persistence: a restart loses every message."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir()]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._answers, 10, "redis did not start")
        return self

    def stop(self):
        """Shut down as `docker compose stop redis` would; what it held is gone."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _answers(self):
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False


class PrivatePostgres:
    """A PostgreSQL cluster of our own, in a temporary folder.

    PostgreSQL refuses to run as root; as root, its commands run as the `postgres` user.
    """

    def __init__(self):
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="segment-stack-pg-"))
        self.data = self.folder / "data"
        self.bin = Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def initialise(self):
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        return self.start()

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def stop(self):
        """A fast shutdown, as a restart or a failover does: every connection is dropped."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def execute(self, sql):
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def remove(self):
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program, *args):
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)
