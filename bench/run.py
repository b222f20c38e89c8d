"""`make bench`: every benchmark in one run, side by side, written to bench/results.json and
bench/results.md, and the table copied into the README.

    python -m bench.run [--quick]

Needs what `make test` needs (PostgreSQL and Redis binaries, ../shared/eval photos); it
starts its own private servers and processes (bench/harness.py).
"""

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import django
import httpx

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PHOTOS = REPO.parent / "shared" / "eval" / "photos"
LIGHT = ["deeplabv3_mnv2_pascal", "yolov8n_seg_coco"]


def machine():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), ""
    )
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu or platform.processor(),
        "commit": commit.stdout.strip() or "unknown",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not figures")
    parser.add_argument("--no-heavy", action="store_true", help="skip the heavy models (about 4 minutes)")
    args = parser.parse_args()
    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    from bench import report
    from bench.harness import Service

    images = [(PHOTOS / name).read_bytes() for name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")]
    results = {"machine": machine(), "quick": args.quick}
    started = time.monotonic()
    service = Service()
    finished = False
    try:
        _light_models(service, images, results, args.quick)
        _api_under_load(service, images[1], results, args.quick)
        if not args.no_heavy:
            _heavy_models(service, images, results, args.quick)
        finished = True
    finally:
        service.close(keep_folder=not finished)
        if not finished:
            print(f"the service's logs are in {service.folder}", file=sys.stderr)
    results["seconds"] = round(time.monotonic() - started)
    results["targets"] = report.targets(results)  # judged where the table's are: one place
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    (BENCH / "results.md").write_text(table)
    report.update_readme(REPO / "README.md", table)
    print(table)


def _light_models(service, images, results, quick):
    """Overhead, residency, payload, cutouts, throughput, CPU outside inference and batching,
    with the web process and light workers."""
    from bench import batching, cpu, cutout, measure

    web = service.start_web()
    worker = service.start_worker("bench-1")  # INFERENCE_THREADS: all the cores
    url, token = web.url, service.token
    rounds = 5 if quick else 60
    results["overhead"] = {model: measure.overhead(url, token, model, images, rounds) for model in LIGHT}
    results["residency"] = {
        model: measure.residency(model, images, rounds=5 if quick else 10) for model in LIGHT
    }
    results["payload"] = measure.payload(LIGHT[0], images)
    results["cutout"] = cutout.costs(url, token, images[0], rounds=2 if quick else 5)

    # Raw images/s is measured again after each service figure, and each ratio is taken to
    # the mean of the raw figures on either side of it: the machine's load drifts.
    count, model = (20 if quick else 60), LIGHT[0]
    raw = [measure.raw_throughput(model, images, count)]
    one = measure.throughput(url, token, model, images, count)
    raw.append(measure.raw_throughput(model, images, count))
    results["memory_mb"] = {
        "web": measure.rss_mb([web.pid, *web.children()]),
        "light_worker": measure.rss_mb([worker.pid, *worker.children()]),
        "heavy_worker": None,
    }
    # Two workers share the cores: each interpreter gets half, as the README tells operators
    # to set it, or four threads would fight over two cores.
    service.stop(worker)
    share = {"INFERENCE_THREADS": str(max(1, len(os.sched_getaffinity(0)) // 2))}
    workers = [service.start_worker(name, share) for name in ("bench-1", "bench-2")]
    two = measure.throughput(url, token, model, images, count)
    raw.append(measure.raw_throughput(model, images, count))
    results["throughput"] = {
        "model": model,
        "jobs": count,
        "1_worker": {"jobs_per_second": one, "raw": round((raw[0] + raw[1]) / 2, 2), "threads": 0},
        "2_workers": {
            "jobs_per_second": two,
            "raw": round((raw[1] + raw[2]) / 2, 2),
            "threads": int(share["INFERENCE_THREADS"]),
        },
    }
    for worker in workers:
        service.stop(worker)
    # The batching worker (a GPU worker's pool) on this CPU: jobs on threads, photos batched.
    batching_worker = service.start_worker("bench-batching", BATCHING_ENV, pool_args=BATCHING_POOL)
    batched = measure.throughput(url, token, model, images, count)
    raw.append(measure.raw_throughput(model, images, count))
    results["throughput"]["batching_worker"] = {
        "jobs_per_second": batched,
        "raw": round((raw[2] + raw[3]) / 2, 2),
        "threads": 0,
        "batch_max": int(BATCHING_ENV["BATCH_MAX"]),
        "batches": batched_sizes(batching_worker.log()),
    }
    service.stop(batching_worker)

    # CPU around the model, by process, against raw single-thread inference: one worker at
    # one interpreter thread, so that its inference CPU is what the raw figure measures.
    single = service.start_worker("bench-cpu", {"INFERENCE_THREADS": "1"})
    counts = {"512 px": 5, "12 MP": 2} if quick else {"512 px": 30, "12 MP": 8}
    results["cpu_outside_inference"] = cpu.outside_inference(
        service, web, single, cutout.photos(images[0]), counts, idle_seconds=1 if quick else 3
    )
    results["stack_floor"] = cpu.stack_floor(service, web, single, images[0], count=40 if quick else 200)
    service.stop(single)  # no consuming worker competes with the submissions under load
    service.stop(web)
    # In this process, with nothing of the service running.
    results["batching"] = batching.per_photo(model, images, rounds=1 if quick else 5)


# What docker-compose's GPU worker runs, at this machine's size.
BATCHING_ENV = {"BATCH_MAX": "4", "BATCH_WAIT_MS": "5"}
BATCHING_POOL = ["--pool", "threads", "--concurrency", "8"]


def batched_sizes(log):
    """{batch size: batches} from a batching worker's log; photos not listed ran alone."""
    import collections
    import re

    return dict(
        sorted(collections.Counter(int(n) for n in re.findall(r"ran a batch of (\d+) photos", log)).items())
    )


def _api_under_load(service, image, results, quick):
    """Status reads and submissions by 50 clients; reads again with the status cache off."""
    from bench import load, measure

    seconds = 3 if quick else 10
    # The web process takes a job only while a live worker announces its model. This one
    # announces the light models but consumes nothing: the submissions only queue, and no
    # inference competes with the web process for the cores.
    idle = service.start_worker("bench-idle")
    service.stop_consuming(idle)
    web = service.start_web()
    job_id = _any_job(web.url, service.token)
    results["api_under_load"] = measure.api_under_load(web.url, service.token, job_id, image, seconds=seconds)
    service.stop(web)
    uncached = service.start_web(env={"STATUS_CACHE_SECONDS": "0"})
    results["api_under_load"]["status_reads_uncached"] = load.hammer(
        f"{uncached.url}/api/v1/jobs/{job_id}/", service.token, 50, seconds
    )
    service.stop(uncached)
    service.stop(idle)


def _heavy_models(service, images, results, quick):
    """PixelLib's tutorial against resident heavy models, and a heavy worker's memory."""
    from bench import heavy

    results["residency_heavy"] = heavy.residency_heavy(images, rounds=1 if quick else 2)
    worker = heavy.heavy_worker_memory(service, image=images[0])
    results["memory_mb"]["heavy_worker"] = worker["after_job_mb"]
    results["memory_mb"]["heavy_worker_model"] = worker["model"]


def _any_job(url, token):
    response = httpx.get(
        f"{url}/api/v1/jobs/?page_size=1&status=succeeded", headers={"Authorization": f"Token {token}"}
    )
    return response.json()["results"][0]["id"]


if __name__ == "__main__":
    main()
