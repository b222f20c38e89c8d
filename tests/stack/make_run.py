"""`make run` as a developer runs it, in a test: honcho with web, workers, io and beat (and,
with PROXY=nginx, nginx in front), on the stack's private servers."""

import os
import signal
import socket
import subprocess
import time

import requests

from tests.processes import ServiceProcess


def free_port_pair():
    """A port whose next one is free too: with PROXY=nginx, gunicorn listens on PORT + 1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two consecutive free ports")


class MakeRun(ServiceProcess):
    def __init__(self, env, log_path, workers=1, proxy=None):
        self.port = free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        # Behind the proxy, gunicorn's own port: what a client that skips nginx would reach.
        self.web_url = f"http://127.0.0.1:{self.port + 1}" if proxy else self.url
        command = ["make", "run", f"WORKERS={workers}", f"PORT={self.port}"]
        if proxy:
            command.append(f"PROXY={proxy}")
        super().__init__("make run", command, env, log_path)

    def ready(self):
        try:
            ready = requests.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting
            return False
        self.started_in = time.monotonic() - self.launched
        return ready

    def start(self, **options):
        self.launched = time.monotonic()
        return super().start(**options)

    def tree(self):
        """Every live process the service is made of. honcho starts each of its processes in
        a session of its own, so make's process group is not all of them: walk the tree."""
        found, frontier = [], [self.pid]
        while frontier:
            listed = subprocess.run(
                ["pgrep", "-P", ",".join(map(str, frontier))], capture_output=True, text=True
            )
            frontier = [int(pid) for pid in listed.stdout.split()]
            found.extend(frontier)
        return [self.pid, *found]

    def kill_everything(self):
        """SIGKILL every process of the service at once, as a host losing power would; returns
        how many there were."""
        pids = self.tree()
        _signal(pids, signal.SIGKILL)
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"still running after SIGKILL: {left}"
        return len(pids)

    def stop(self):
        """SIGTERM to every process (not only make's group), then SIGKILL what is left."""
        if not self.alive():
            return
        pids = self.tree()
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        if any(_alive(pid) for pid in pids):
            self.kill_everything()
        self.process.wait(timeout=10)


def _signal(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:  # gone already
            pass


def _alive(pid):
    """Running, and not a zombie waiting for its parent to read its status."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def announced(service, token):
    """The workers announcing models, by process name: an API client's view (/readyz only
    counts them)."""
    models = requests.get(
        f"{service.url}/api/v1/models/", headers={"Authorization": f"Token {token}"}, timeout=5
    ).json()["models"]
    return sorted({worker.split("@")[0] for model in models for worker in model["workers"]})
