"""Each benchmark: a function that measures one thing side by side and returns its figures.

Raw figures come from this process (models loaded here, the same images); service figures
from the real web and worker processes over HTTP. Latencies are in milliseconds.
"""

import asyncio
import datetime
import io
import json
import statistics
import time

import httpx
import numpy as np
from PIL import Image

from bench import load
from core.imageio import decode_image
from core.repository import local_specs
from workers import registry, rendering
from workers.model import Model


def percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summary(values):
    return {
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "n": len(values),
    }


def decoded(images):
    return [decode_image(io.BytesIO(data), 10**9).rgb for data in images]


def loaded_model(model):
    """The named model as a worker keeps it: loaded and warmed up once in this process."""
    registry.load_models([local_specs()[model]])
    return registry.get_model(model)


def raw_latencies(model, images, rounds):
    """Model.infer alone, in this process, on the decoded images."""
    engine = loaded_model(model)
    arrays = decoded(images)
    latencies = []
    for index in range(rounds):
        started = time.perf_counter()
        engine.infer(arrays[index % len(arrays)], {})
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def overhead(base_url, token, model, images, rounds=30):
    """Per job on an idle system: raw inference against upload, queue, worker, render,
    store and answer (one request with `Prefer: wait`, which returns when the job ends).

    The two take turns on the same image, so that a busy spell of this shared machine
    falls on both alike; the first rounds only warm the web process up.
    """
    engine = loaded_model(model)
    arrays = decoded(images)
    task = engine.spec.task
    raw, full = [], []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=120) as client:
        for index in range(rounds + 3):
            image = index % len(images)
            started = time.perf_counter()
            engine.infer(arrays[image], {})
            raw_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            response = client.post(
                "/api/v1/jobs/",
                files={"image": ("photo.jpg", images[image])},
                data={"task": task, "model": model},
                headers={"Prefer": "wait=60"},
            )
            full_ms = (time.perf_counter() - started) * 1000
            assert response.status_code == 201, response.text
            if index >= 3:
                raw.append(raw_ms)
                full.append(full_ms)
    raw_s, full_s = summary(raw), summary(full)
    return {"raw": raw_s, "full": full_s, "overhead_p50_ms": round(full_s["p50"] - raw_s["p50"], 1)}


async def _submit_all(base_url, token, images, task, model, count, concurrency):
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Token {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def submit(index):
            async with gate:
                response = await client.post(
                    "/api/v1/jobs/",
                    files={"image": ("photo.jpg", images[index % len(images)])},
                    data={"task": task, "model": model},
                )
                assert response.status_code == 202, response.text
                return response.json()["id"]

        return await asyncio.gather(*(submit(i) for i in range(count)))


def throughput(base_url, token, model, images, count=60):
    """Jobs per second through the API: `count` jobs submitted by 8 clients at once, from
    the first submit until the last job's `finished_at` (the server's clock: this machine's).
    A few untimed jobs first bring freshly started workers to their steady state."""
    _jobs_through(base_url, token, model, images, 6)
    started = time.time()
    jobs = _jobs_through(base_url, token, model, images, count)
    last = max(datetime.datetime.fromisoformat(job["finished_at"]).timestamp() for job in jobs)
    return round(count / (last - started), 2)


def _jobs_through(base_url, token, model, images, count):
    """Submit `count` jobs by 8 clients at once; their JSON once all have ended."""
    ids = asyncio.run(_submit_all(base_url, token, images, local_specs()[model].task, model, count, 8))
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=60) as client:
        # Two list reads a second, not a read per job: the poller must not take the
        # workers' cores. The figure comes from `finished_at`, not from when polling saw it.
        while any(_count(client, status) for status in ("queued", "running")):
            time.sleep(1)
        jobs = [client.get(f"/api/v1/jobs/{job_id}/").json() for job_id in ids]
    assert all(job["status"] == "succeeded" for job in jobs), [job["status"] for job in jobs]
    return jobs


def _count(client, status):
    return client.get("/api/v1/jobs/", params={"status": status, "page_size": 1}).json()["count"]


def raw_throughput(model, images, count=60):
    latencies = raw_latencies(model, images, count)
    return round(count / (sum(latencies) / 1000), 2)


def residency(model, images, rounds=10):
    """The tutorial's way (build and load the model, segment, discard, for every request)
    against a resident model: median latency of each, and the ratio."""
    spec = local_specs()[model]
    arrays = decoded(images)
    per_request = []
    for index in range(rounds):
        started = time.perf_counter()
        # Built and loaded, not warmed up. Model() also checks the file's sha256, which the
        # tutorial did not: a few ms for these few MB, so the ratio errs a little high.
        engine = Model(spec)
        engine.infer(arrays[index % len(arrays)], {})
        per_request.append((time.perf_counter() - started) * 1000)
        del engine
    resident = raw_latencies(model, images, rounds)
    ratio = statistics.median(per_request) / statistics.median(resident)
    return {"per_request": summary(per_request), "resident": summary(resident), "ratio": round(ratio, 1)}


def api_under_load(base_url, token, job_id, image, clients=50, seconds=10):
    """Status reads of one finished job, then submissions, by `clients` at once."""
    reads = load.hammer(f"{base_url}/api/v1/jobs/{job_id}/", token, clients, seconds)
    upload = ("photo.jpg", image, {"task": "semantic"})
    submits = load.hammer(f"{base_url}/api/v1/jobs/", token, clients, seconds, upload=upload)
    return {"status_reads": reads, "submissions": submits}


def payload(model, images):
    """Bytes of MAX's JSON seg_map (at its 513 px and at the original size) against our mask.png."""
    engine = loaded_model(model)
    rows = []
    for data, rgb in zip(images, decoded(images), strict=True):
        class_map = engine.infer(rgb, {}).class_map
        height, width = class_map.shape
        scale = 513 / max(height, width)
        small = np.asarray(
            Image.fromarray(class_map).resize(
                (max(1, int(width * scale)), max(1, int(height * scale))), Image.NEAREST
            )
        )
        png = rendering.palette_png(class_map, rendering.voc_palette())
        rows.append(
            {
                "size": [width, height],
                "upload_bytes": len(data),
                "max_json_513_bytes": len(json.dumps({"seg_map": small.tolist()})),
                "max_json_full_bytes": len(json.dumps({"seg_map": class_map.tolist()})),
                "mask_png_bytes": len(png),
            }
        )
    return rows


def rss_mb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return round(total / 1024)
