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
import time
from pathlib import Path

import django

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
    args = parser.parse_args()
    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    from bench import measure, report
    from bench.harness import Service

    rounds = 5 if args.quick else 30
    images = [(PHOTOS / name).read_bytes() for name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")]
    results = {"machine": machine(), "quick": args.quick}
    started = time.monotonic()
    service = Service()
    try:
        web = service.start_web()
        worker = service.start_worker("bench-1")
        url, token = web.url, service.token
        results["overhead"] = {model: measure.overhead(url, token, model, images, rounds) for model in LIGHT}
        results["residency"] = {
            model: measure.residency(model, images, rounds=5 if args.quick else 10) for model in LIGHT
        }
        results["payload"] = measure.payload(LIGHT[0], images)

        count = 20 if args.quick else 60
        model = LIGHT[0]
        results["throughput"] = {
            "model": model,
            "jobs": count,
            "raw": measure.raw_throughput(model, images, count),
        }
        results["throughput"]["1_worker"] = measure.throughput(url, token, model, images, count)
        second = service.start_worker("bench-2")
        results["throughput"]["2_workers"] = measure.throughput(url, token, model, images, count)
        results["memory_mb"] = {
            "web": measure.rss_mb([web.pid, *web.children()]),
            "light_worker": measure.rss_mb([worker.pid, *worker.children()]),
            "heavy_worker": None,  # the heavy weights are not installed by `make setup`
        }
        service.stop(second)
        service.stop(worker)  # submissions under load only queue; no worker competes for the cores

        seconds = 3 if args.quick else 10
        results["api_under_load"] = measure.api_under_load(
            url, token, _any_job(url, token), images[1], seconds=seconds
        )
    finally:
        service.close()
    results["seconds"] = round(time.monotonic() - started)
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    (BENCH / "results.md").write_text(table)
    report.update_readme(REPO / "README.md", table)
    print(table)


def _any_job(url, token):
    import httpx

    response = httpx.get(f"{url}/api/v1/jobs/?page_size=1", headers={"Authorization": f"Token {token}"})
    return response.json()["results"][0]["id"]


if __name__ == "__main__":
    main()
