"""Each benchmark: a function that measures one thing side by side and returns its figures.

Raw figures come from this process (engines loaded here, the same images); service figures
from the real web and worker processes over HTTP. Latencies are in milliseconds.
"""

import asyncio
import io
import json
import statistics
import time

import httpx
import numpy as np
from PIL import Image

from workers import registry, rendering
from workers.catalog import get_spec
from workers.imageio import decode_image


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


def raw_latencies(model, images, rounds):
    """engine.infer alone, in this process, on the decoded images."""
    registry.load_engines([model])
    engine = registry.get_engine(model)
    arrays = decoded(images)
    latencies = []
    for index in range(rounds):
        started = time.perf_counter()
        engine.infer(arrays[index % len(arrays)], {})
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def overhead(base_url, token, model, images, rounds=30):
    """Per job on an idle system: raw inference against upload, queue, worker, render,
    store and answer (one request with `Prefer: wait`, which returns when the job ends)."""
    raw = raw_latencies(model, images, rounds)
    task = get_spec(model).task
    full = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=120) as client:
        for index in range(rounds + 3):
            started = time.perf_counter()
            response = client.post(
                "/api/v1/jobs/",
                files={"image": ("photo.jpg", images[index % len(images)])},
                data={"task": task, "model": model},
                headers={"Prefer": "wait=60"},
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 201, response.text
            if index >= 3:  # the first requests warm the web process's imports and connections
                full.append(elapsed)
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
    """Jobs per second through the API: submit `count` at once, time until the last ends."""
    started = time.perf_counter()
    ids = asyncio.run(_submit_all(base_url, token, images, get_spec(model).task, model, count, 8))
    pending = set(ids)
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=60) as client:
        while pending:
            for job_id in list(pending):
                if client.get(f"/api/v1/jobs/{job_id}/").json()["status"] in ("succeeded", "failed"):
                    pending.discard(job_id)
            time.sleep(0.1)
    return round(count / (time.perf_counter() - started), 2)


def raw_throughput(model, images, count=60):
    latencies = raw_latencies(model, images, count)
    return round(count / (sum(latencies) / 1000), 2)


def residency(model, images, rounds=10):
    """The tutorial's way (build and load the model, segment, discard, for every request)
    against a resident engine: median latency of each, and the ratio."""
    spec = get_spec(model)
    arrays = decoded(images)
    per_request = []
    for index in range(rounds):
        started = time.perf_counter()
        engine = registry.create_engine(spec)
        engine.load()
        engine.infer(arrays[index % len(arrays)], {})
        per_request.append((time.perf_counter() - started) * 1000)
        del engine
    resident = raw_latencies(model, images, rounds)
    ratio = statistics.median(per_request) / statistics.median(resident)
    return {"per_request": summary(per_request), "resident": summary(resident), "ratio": round(ratio, 1)}


async def _hammer(base_url, token, clients, seconds, request):
    """`clients` concurrent clients, each sending its next request as the last one ends."""
    latencies, errors = [], 0
    headers = {"Authorization": f"Token {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def one_client():
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await request(client)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "errors": errors,
        "requests": len(latencies),
    }


def api_under_load(base_url, token, job_id, image, clients=50, seconds=10):
    reads = asyncio.run(
        _hammer(base_url, token, clients, seconds, lambda client: client.get(f"/api/v1/jobs/{job_id}/"))
    )
    submits = asyncio.run(
        _hammer(
            base_url,
            token,
            clients,
            seconds,
            lambda client: client.post(
                "/api/v1/jobs/", files={"image": ("photo.jpg", image)}, data={"task": "semantic"}
            ),
        )
    )
    return {"status_reads": reads, "submissions": submits}


def payload(model, images):
    """Bytes of MAX's JSON seg_map (at its 513 px and at the original size) against our mask.png."""
    registry.load_engines([model])
    engine = registry.get_engine(model)
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
