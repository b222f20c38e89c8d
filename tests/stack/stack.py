"""The whole service, as docker-compose runs it, on private Redis and PostgreSQL servers:
gunicorn, model workers, the io worker, the housekeeping worker and beat, each a real process.

The test plays the operator (it kills, restarts and stops things, like compose's
`restart: always` and a flaky host would) and the mobile client (it speaks HTTP only).
"""

import ast
import collections
import re
import time
import uuid

import psycopg
import redis
import requests

from jobs.ops.broker import MARKER, is_redis
from tests.processes import BeatProcess, WebProcess, WorkerProcess
from tests.stack.servers import free_port, wait_until

TERMINAL = {"succeeded", "failed", "canceled"}


class Stack:
    def __init__(self, env, folder):
        self.env = env
        self.folder = folder
        self.processes = []
        self.web = None

    def _started(self, process, timeout=120):
        self.processes.append(process)
        return process.start(timeout=timeout)

    def start_web(self, **options):
        port = free_port()
        self.env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        self.web = self._started(WebProcess(self.folder / "web.log", self.env, port, **options))
        return self.web

    def start_worker(self, name="worker", **options):
        log_path = self.folder / f"{name}-{len(self.processes)}.log"
        return self._started(WorkerProcess(name, log_path, self.env, **options))

    def start_io(self):
        log_path = self.folder / "io.log"
        return self._started(
            WorkerProcess("io", log_path, self.env, "webhooks", ["--pool", "threads", "--concurrency", "4"])
        )

    def start_housekeeping(self):
        """The worker of everything beat schedules (the reaper, retention, the webhook sweep)."""
        return self._started(
            WorkerProcess(
                "housekeeping",
                self.folder / "housekeeping.log",
                self.env,
                "housekeeping",
                ["--pool", "threads", "--concurrency", "3"],
            )
        )

    def start_beat(self):
        """Beat, once its first reaper pass has run on the housekeeping worker (started here
        unless it runs already: beat's tasks run nowhere else). On a new Redis, that pass
        sends every queued job again, not knowing what Redis held."""
        if not any(process.name == "housekeeping" and process.alive() for process in self.processes):
            self.start_housekeeping()
        beat = self._started(BeatProcess(self.folder / "beat.log", self.env, self.folder / "beat-schedule"))
        if is_redis(self.env["CELERY_BROKER_URL"]):  # RabbitMQ keeps its queues: no marker
            broker = redis.Redis.from_url(self.env["CELERY_BROKER_URL"])
            wait_until(lambda: broker.exists(MARKER), 30, "the reaper has not run")
        return beat

    def job_row(self, job_id):
        """(status, attempts, error_code, worker) straight from the database, as an operator's
        query reads it: no request-rate limit, however fast the test looks."""
        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(
                "SELECT status, attempts, error_code, worker FROM jobs_job WHERE id = %s", (job_id,)
            ).fetchone()

    def restart(self, process):
        """Start a stopped or killed process again, as compose's `restart: always` does."""
        return process.start()

    def client(self, token):
        return ApiClient(self.web.url, token)

    def worker_logs(self):
        return "".join(p.log() for p in self.processes if isinstance(p, WorkerProcess))

    def successes(self):
        """How many times each job was recorded as succeeded, over every worker's life."""
        return collections.Counter(re.findall(r"job ([0-9a-f-]{36}) succeeded", self.worker_logs()))

    def reaped(self):
        """What the reaper did, summed over its passes (its log lines in the housekeeping worker)."""
        totals = collections.Counter()
        for process in self.processes:
            if process.name == "housekeeping":
                for counts in re.findall(r"reaped orphaned jobs: (\{[^}]*\})", process.log()):
                    totals.update(ast.literal_eval(counts))
        return totals

    def stop(self):
        for process in reversed(self.processes):
            process.stop()


class ApiClient:
    """A mobile app: HTTP only, with a short timeout, as a flaky network would want."""

    def __init__(self, base_url, token):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def submit(self, image, key=None, **fields):
        """POST a job. Always with an Idempotency-Key, so that a request whose answer was lost
        (a dropped keep-alive connection, a reset) can be sent again without a second job."""
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        for attempt in range(3):
            try:
                return self.session.post(
                    f"{self.base_url}/api/v1/jobs/",
                    files={"image": ("photo.jpg", image)},
                    data={"task": "semantic", **fields},
                    headers=headers,
                    timeout=30,
                )
            except requests.ConnectionError:
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def submit_until_accepted(self, image, timeout=120, key=None):
        """Submit, retrying the same request (same Idempotency-Key) after any refusal."""
        key = key or str(uuid.uuid4())
        refusals = collections.Counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.submit(image, key)
            if response.status_code in (201, 202):
                return response.json()["id"], refusals
            refusals[(response.status_code, response.json()["error"]["code"])] += 1
            time.sleep(0.5)
        raise AssertionError(f"not accepted after {timeout}s: {dict(refusals)}")

    def job(self, job_id):
        response = self.session.get(f"{self.base_url}/api/v1/jobs/{job_id}/", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def jobs(self, **filters):
        """The user's jobs by id, read a page of 100 at a time, as a dashboard would (one
        request per job would soon meet the request-rate limit)."""
        found = {}
        url = f"{self.base_url}/api/v1/jobs/"
        params = {"page_size": 100, **filters}
        while url:
            response = self.session.get(url, params=params, timeout=30)
            assert response.status_code == 200, response.text
            page = response.json()
            found.update((job["id"], job) for job in page["results"])
            url, params = page["next"], None
        return found

    def wait_all(self, job_ids, timeout=180):
        """Every job's final JSON, once all have ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs()
            if all(jobs[job_id]["status"] in TERMINAL for job_id in job_ids):
                return {job_id: jobs[job_id] for job_id in job_ids}
            time.sleep(0.5)
        left = collections.Counter(jobs[job_id]["status"] for job_id in job_ids)
        raise AssertionError(f"not all {len(job_ids)} jobs ended after {timeout}s: {left}")

    def statuses(self, job_ids):
        jobs = self.jobs()
        return collections.Counter(jobs[job_id]["status"] for job_id in job_ids)

    def wait_succeeded(self, job_ids, count, timeout=180, interval=0.5):
        """The statuses of these jobs once `count` of them have succeeded; AssertionError,
        with the statuses, after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (statuses := self.statuses(job_ids))["succeeded"] < count:
            assert time.monotonic() < deadline, f"not {count} succeeded in {timeout}s: {statuses}"
            time.sleep(interval)
        return statuses
