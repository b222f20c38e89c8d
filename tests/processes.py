"""The service's own processes, started by the end-to-end and fault tests as operators run
them (see the Procfile): Celery workers, beat, gunicorn.

Each runs in its own process group, so a SIGKILL takes its children with it, and logs to a
file the test can read. The caller passes the whole environment: which database, broker
and media folder the process uses.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from core import serving

REPO = Path(__file__).resolve().parent.parent
CELERY = [sys.executable, "-m", "celery", "-A", "segsite"]


class ServiceProcess:
    """One long-running command; `ready()` says when it can do its work."""

    def __init__(self, name, command, env, log_path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = Path(log_path)
        self.process = None

    def start(self, timeout=120, expect_ready=True):
        # A restarted process appends to the same log; readiness is judged on this life's part.
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if not expect_ready:
                    return self
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            if self.ready():
                return self
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log()[-5000:]}")

    def ready(self):
        return True

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def this_life_log(self):
        return self.log()[self.log_offset :]

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL the whole process group: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def children(self):
        found = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def stop(self):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerProcess(ServiceProcess):
    """A `celery worker`. With the default prefork pool, the job runs in a child process."""

    def __init__(self, name, log_path, env, queues="light", pool_args=()):
        command = [
            *CELERY,
            "worker",
            "--queues",
            queues,
            *(list(pool_args) or ["--concurrency", "1"]),
            "--hostname",
            f"{name}@%h",
            "--loglevel",
            "INFO",
        ]
        super().__init__(name, command, env, log_path)

    def ready(self):
        # Celery's " ready." comes from the main process; jobs can be submitted once a pool
        # process has loaded its models and announced them (or, for the io and housekeeping
        # workers, at once).
        log = self.this_life_log()
        started = ("worker process ready with models", "io worker:", "housekeeping worker:")
        return " ready." in log and any(line in log for line in started)

    def start(self, timeout=120, expect_ready=True):
        started = super().start(timeout=timeout, expect_ready=expect_ready)
        serving.forget()  # the live server in this process must not answer from before it
        return started


class BeatProcess(ServiceProcess):
    def __init__(self, log_path, env, schedule_path):
        command = [*CELERY, "beat", "--schedule", str(schedule_path), "--loglevel", "INFO"]
        super().__init__("beat", command, env, log_path)

    def ready(self):
        return "beat: Starting..." in self.this_life_log()


class WebProcess(ServiceProcess):
    """gunicorn with the Procfile's options, on a port of its own."""

    def __init__(self, log_path, env, port, workers=1, threads=8):
        self.url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "segsite.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--graceful-timeout",
            "5",
            # gunicorn's control socket has one path per user: two servers would share it.
            "--no-control-socket",
        ]
        super().__init__("web", command, env, log_path)

    def ready(self):
        try:
            return requests.get(f"{self.url}/api/v1/models/", timeout=5).status_code == 401
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still importing
            return False
