"""CPU outside inference per job: what the service spends around the model, by process.

Each process tree's CPU is read from /proc before and after N jobs submitted through the
API one at a time (a `POST` with `Prefer: wait`, which returns when the job has ended):
web (gunicorn's master and workers), worker (Celery's main and pool processes), database
(the private PostgreSQL's postmaster and backends), redis. Against it, the raw inference
CPU of the same photo: Model.infer in this process at one interpreter thread, as the
worker is started for this (INFERENCE_THREADS=1), timed with time.process_time.

    outside inference per job = (every tree's CPU delta) / N - raw inference CPU per photo

Beside it, the floor of the stack itself (stack_floor): what Django, DRF and Celery cost
in the same trees before any of this service's own work.
"""

import os
import statistics
import time
from pathlib import Path

import httpx

from bench.measure import decoded
from core.repository import local_specs
from workers.model import Model

MODEL = "deeplabv3_mnv2_pascal"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
# After the last answer the worker still acks its message (acks_late) and logs the job.
SETTLE_S = 0.5


def outside_inference(service, web, worker, photos, counts, idle_seconds=3):
    """{model, threads, idle_ms_per_s, sizes: {size: figures}} for each of `photos`
    ({size: JPEG bytes}), `counts[size]` timed jobs each."""
    roots = process_roots(service, web, worker)
    engine = single_thread_model(MODEL)
    # What the service spends doing nothing (timers, heartbeats, polls), so the figures can
    # say how much of a job's share is only the seconds it took.
    before = snapshot(roots)
    time.sleep(idle_seconds)
    idle = {name: ms / idle_seconds for name, ms in _delta(before, snapshot(roots)).items()}
    headers = {"Authorization": f"Token {service.token}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=180) as client:
        sizes = {
            size: _one_size(client, roots, engine, data, counts[size], idle) for size, data in photos.items()
        }
    return {
        "model": MODEL,
        "threads": 1,
        "idle_ms_per_s": {name: round(ms, 1) for name, ms in idle.items()},
        "sizes": sizes,
    }


def _one_size(client, roots, engine, data, count, idle):
    rgb = decoded([data])[0]
    for _ in range(2):  # untimed: the first jobs at a size grow every process's buffers
        _job(client, data)
    # Raw inference before and after the service's jobs, the mean of both: the machine drifts.
    rounds = max(2, count // 2)
    raw = _raw_cpu_ms(engine, rgb, rounds)

    started, client_started, before = time.monotonic(), time.process_time(), snapshot(roots)
    inference_wall = [_job(client, data)["timings"]["inference_ms"] for _ in range(count)]
    time.sleep(SETTLE_S)
    after = snapshot(roots)
    client_cpu, seconds = time.process_time() - client_started, time.monotonic() - started

    raw = statistics.mean(raw + _raw_cpu_ms(engine, rgb, rounds))
    per_job = {name: ms / count for name, ms in _delta(before, after).items()}
    outside = sum(per_job.values()) - raw
    return {
        "jobs": count,
        "photo": [rgb.shape[1], rgb.shape[0]],
        "cpu_ms_per_job": {name: round(ms, 1) for name, ms in per_job.items()},
        "raw_inference_cpu_ms": round(raw, 1),
        "worker_outside_inference_ms": round(per_job["worker"] - raw, 1),
        "outside_inference_ms": round(outside, 1),
        "ratio_to_raw": round(outside / raw, 2),
        # Cross-checks: the worker's own inference time (wall, one thread); how much of the
        # figures above the idle processes would have spent in the seconds the jobs took; and
        # this client's CPU, which no figure above counts.
        "worker_inference_wall_ms": round(statistics.median(inference_wall), 1),
        "idle_background_ms": round(sum(idle.values()) * seconds / count, 1),
        "client_cpu_ms": round(client_cpu * 1000 / count, 1),
    }


def stack_floor(service, web, worker, photo, count=200):
    """CPU ms per request and per task of the cheapest things a job is made of, in the same
    trees as outside_inference: an authenticated status read (a token lookup, one row or
    its cached status, a serializer: a submit is a larger request) and a Celery task that
    does nothing (the built-in `celery.accumulate`, on the light queue: the worker's
    receipt, its task events and the ack; a job's task also claims, decodes, renders and
    records). Their sum is less than any job can cost on this stack. `photo`: JPEG bytes."""
    import celery

    roots = process_roots(service, web, worker)
    headers = {"Authorization": f"Token {service.token}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=60) as client:
        job = _job(client, photo)  # the job whose status is read
        read = _per_call(roots, count, lambda: client.get(f"/api/v1/jobs/{job['id']}/").raise_for_status())
    sender = celery.Celery(broker=service.redis.url)  # the service's broker, not this process's settings'
    with sender.connection_for_write() as connection:
        producer = sender.amqp.Producer(connection)
        task = _per_call(
            roots,
            count,
            lambda: sender.send_task("celery.accumulate", queue="light", producer=producer),
            until=lambda: _drained(connection, "light"),
        )
    return {
        "requests": count,
        "status_read_ms": read,
        "empty_task_ms": task,
        "floor_ms": round(sum(read.values()) + sum(task.values()), 1),
    }


def _per_call(roots, count, call, until=lambda: True):
    """{tree: CPU ms} per call of `call`, made `count` times, once `until()` holds."""
    for _ in range(5):  # untimed: buffers and caches of the first calls
        call()
    time.sleep(SETTLE_S)
    before = snapshot(roots)
    for _ in range(count):
        call()
    deadline = time.monotonic() + 60
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not take the empty tasks within 60 s")
        time.sleep(0.05)
    time.sleep(SETTLE_S)  # the tasks the worker prefetched, and their acks
    return {name: round(ms / count, 2) for name, ms in _delta(before, snapshot(roots)).items()}


def _drained(connection, queue):
    """Whether `queue` holds no message. A declare on Redis only counts them (kombu keeps
    declarations in the client); a passive one would refuse a queue this client never made."""
    return connection.default_channel.queue_declare(queue=queue).message_count == 0


def _job(client, data):
    response = client.post(
        "/api/v1/jobs/",
        files={"image": ("photo.jpg", data)},
        data={"task": "semantic", "model": MODEL},
        headers={"Prefer": "wait=60"},
    )
    assert response.status_code == 201 and response.json()["status"] == "succeeded", response.text
    return response.json()


def single_thread_model(model):
    """The model as a worker at INFERENCE_THREADS=1 holds it, loaded and warmed up here."""
    from django.test import override_settings

    with override_settings(INFERENCE_THREADS=1):  # read once, when the interpreter is made
        engine = Model(local_specs()[model])
    engine.warm_up()
    return engine


def _raw_cpu_ms(engine, rgb, rounds):
    """CPU ms of each Model.infer: the whole process's, so no helper thread goes uncounted."""
    times = []
    for _ in range(rounds):
        started = time.process_time()
        engine.infer(rgb, {})
        times.append((time.process_time() - started) * 1000)
    return times


def process_roots(service, web, worker):
    """{name: pid} of each process tree the figures count."""
    return {
        "web": web.pid,
        "worker": worker.pid,
        "database": postmaster_pid(service.postgres.data),
        "redis": service.redis.process.pid,
    }


def postmaster_pid(data_folder):
    """The PostgreSQL server's pid: the first line of postmaster.pid in its data folder."""
    return int((Path(data_folder) / "postmaster.pid").read_text().split()[0])


def snapshot(roots):
    """{name: CPU ms} of each root's process tree, now.

    A tree is the root and its live descendants, each with utime + stime + cutime + cstime:
    a child that has exited and been waited for (a PostgreSQL backend, a replaced pool
    process) is counted once, in its parent's cutime and cstime; a live one is not in them.
    """
    parents, cpu = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # exited while we looked
            continue
        # The command name is in parentheses and may hold spaces: the fields follow the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(ticks) for ticks in fields[11:15]) * TICK_MS
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    return {name: sum(cpu.get(pid, 0) for pid in _tree(root, children)) for name, root in roots.items()}


def _tree(root, children):
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        frontier.extend(children.get(pid, []))
    return found


def _delta(before, after):
    return {name: after[name] - before[name] for name in before}
