"""The service under measurement: gunicorn and Celery workers as the Procfile runs them, on a
private PostgreSQL cluster and a private Redis (tests/stack/servers.py), so a benchmark
never touches the machine's own servers or another run's data."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from celery.utils.nodenames import host_format

from core.redis_keys import SERVING
from tests.processes import REPO, WebProcess, WorkerProcess
from tests.stack.servers import PrivatePostgres, PrivateRedis, free_port

DATABASE = "segment_bench"
MAKE_USER = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
print("token", Token.objects.create(user=User.objects.create_user("bench")).key)
"""


class Service:
    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="segment-bench-"))
        self.postgres = PrivatePostgres().initialise()
        self.redis = PrivateRedis().start()
        self.postgres.execute(f"CREATE DATABASE {DATABASE}")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DJANGO_SETTINGS_MODULE": "segsite.settings",
            "DATABASE_URL": self.postgres.url(DATABASE),
            "CELERY_BROKER_URL": self.redis.url,
            "REDIS_URL": self.redis.url,
            "MEDIA_ROOT": str(self.folder / "media"),
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            # Measure the service, not its limits: no rate limit, no queue cap in the way.
            "THROTTLE_USER_RATE": "1000000/min",
            "MAX_QUEUED_JOBS_PER_USER": "100000",
            "MAX_WAITING_REQUESTS": "64",
        }
        self.manage("migrate", "--noinput")
        made = self.manage("shell", "-c", MAKE_USER).splitlines()
        self.token = next(line.split()[1] for line in made if line.startswith("token "))
        self.processes = []

    def manage(self, *args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def start_web(self, workers=2, threads=8, env=None):
        port = free_port()
        env = {**self.env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **(env or {})}
        web = WebProcess(self.folder / "web.log", env, port, workers, threads)
        self.processes.append(web.start())
        return web

    def start_worker(self, name, env=None, pool_args=()):
        worker = WorkerProcess(
            name, self.folder / f"{name}.log", {**self.env, **(env or {})}, pool_args=pool_args
        )
        self.processes.append(worker.start())
        wait_until_announced(worker, self.redis.url, time.monotonic() + 60)
        return worker

    def stop_consuming(self, worker, queue="light"):
        """`worker` stays up and announced, but takes no more jobs from `queue` (Celery's
        cancel_consumer): the web process accepts submissions, and they only queue."""
        node = host_format(f"{worker.name}@%h")  # as WorkerProcess names it
        done = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "segsite", "control", "cancel_consumer", queue]
            + ["--destination", node, "--timeout", "10"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if "no longer consuming" not in done.stdout:
            raise AssertionError(f"{node} did not stop consuming {queue}:\n{done.stdout}{done.stderr}")

    def stop(self, process):
        process.stop()
        self.processes.remove(process)

    def close(self, keep_folder=False):
        """Stop everything; the folder (logs, media) is kept only when asked, after a failure."""
        for process in reversed(self.processes):
            process.stop()
        self.redis.stop()
        self.postgres.remove()
        if not keep_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def wait_until_announced(worker, redis_url, deadline):
    """Until a pool process of `worker` has loaded, warmed up and announced its models
    (core/serving.py): the web process takes a job only for a model a live worker announces.

    Keys are SERVING + "<name>@<host>:<pid>". Only this worker's own processes count (its
    pool processes, or itself with a threads pool): a stopped worker of the same name may
    have renewed its key once more as it went.
    """
    client = redis.Redis.from_url(redis_url)
    while True:
        pids = {int(key.rsplit(b":", 1)[1]) for key in client.keys(f"{SERVING}{worker.name}@*")}
        if pids & {worker.pid, *worker.children()}:
            return
        if not worker.alive() or time.monotonic() > deadline:
            raise AssertionError(f"{worker.name} never announced its models:\n{worker.log()[-5000:]}")
        time.sleep(0.2)
