"""The heavy (pixellib) models: residency against PixelLib's tutorial, a heavy worker's memory.

    python -m bench.heavy [--rounds N] [--worker MODEL] [--no-memory]

The weights are the real files where `fetch_models --all` installed them; otherwise the
real architectures with random weights (tests/fixtures/heavy_weights.py), written once
into a cache folder and reused. Either way the probe and the heavy worker load them from
a model repository of their own (SEGMENT_MODELS_DIR): the shipped folders, copied, with
the weights linked. Random weights time the real computation: a network's latency does
not depend on its weight values. The one exception is Mask R-CNN's post-processing,
which grows with the number of detections, so that number is reported.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import REPO, WorkerProcess

HEAVY = ["deeplabv3plus_xception_pascal", "mask_rcnn_coco"]
FIXTURE = REPO / "tests" / "fixtures" / "heavy_weights.py"
PHOTOS = REPO.parent / "shared" / "eval" / "photos"
RANDOM_NOTE = "random weights, real architectures: latency does not depend on weight values"

# Run by `manage.py shell` in the service's environment: one job for a heavy model,
# resolved and created as the API does it (no web process is started for one job), once
# the worker announces the model, then waited for.
RUN_JOB = """
import io, json, os, time
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from core.imageio import decode_image
from core.repository import local_specs
from jobs.lifecycle.resolver import resolve
from jobs.lifecycle.services import create_job
from jobs.models import Job

data = open(os.environ["BENCH_IMAGE"], "rb").read()
model = os.environ["BENCH_MODEL"]
decoded = decode_image(io.BytesIO(data), settings.MAX_IMAGE_PIXELS)
spec = resolve(local_specs()[model].task, model)  # the spec the live worker announced
job = create_job(
    User.objects.get(username="bench"), SimpleUploadedFile("photo.jpg", data), decoded, spec, {}
)
deadline = time.monotonic() + 120
while job.status not in Job.TERMINAL and time.monotonic() < deadline:
    time.sleep(0.2)
    job.refresh_from_db()
print("job", json.dumps({"status": job.status, "inference_ms": job.inference_ms, "error": job.error_code}))
"""


@dataclass(frozen=True)
class HeavyWeights:
    folder: Path  # a model repository: every shipped model, both heavy ones with weights
    real: bool
    generated_s: float | None = None  # seconds spent writing random weights, if this call did


def cache_folder():
    """Where random weights are kept between runs.

    Under the user's cache folder rather than the temp folder: 424 MB that take a minute
    to write should survive a reboot and a temp cleaner, and ~/.cache is where tools keep
    what they can always make again (delete it freely).
    """
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    # Named after the fixture's source, so that changing the fixture writes new files.
    digest = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()[:12]
    return root / "segment-bench" / f"heavy-weights-{digest}"


def heavy_weights_dir(folder):
    """`folder` (new) made a model repository of every shipped model, both heavy ones with
    weight files: the installed ones, else random ones from the cache folder.

    Specs and labels are copied and weights linked, so the repository costs nothing to
    make and always matches this checkout's specs; only the random weights are kept.
    """
    from core.repository import local_specs
    from tests.fixtures.repository import copy_models
    from workers.weights import weights_problem

    folder = copy_models(Path(folder))
    specs = [local_specs()[name] for name in HEAVY]
    if all(weights_problem(spec) is None for spec in specs):
        return HeavyWeights(folder, real=True)
    cache, generated_s = random_weights()
    for spec in specs:
        link = folder / spec.name / spec.weights.file
        link.unlink(missing_ok=True)  # the other one installed: both random, not a mix
        link.symlink_to(cache / spec.name / spec.weights.file)
    return HeavyWeights(folder, real=False, generated_s=generated_s)


def random_weights():
    """The cache folder, a repository of the heavy models' folders with random weights,
    written first if need be; and the seconds that took (None when already there)."""
    from core.repository import local_specs
    from tests.fixtures.repository import copy_models

    folder = cache_folder()
    if all((folder / name / local_specs()[name].weights.file).is_file() for name in HEAVY):
        return folder, None
    started = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder someone tampered with
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written beside it and renamed into place, so that an interrupted run leaves no folder
    # that looks complete.
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.partial-", dir=folder.parent))
    try:
        # The fixture writes each file into its model's folder, where it reads the spec.
        copy_models(partial, names=HEAVY, weights=False)
        _run_module("tests.fixtures.heavy_weights", str(partial))
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder, round(time.monotonic() - started, 1)


def residency_heavy(images, rounds=2):
    """Per heavy model: PixelLib's tutorial way (load both models, segment, discard, per
    request) against a resident model, as medians in ms and their ratio.

    `images` are encoded images (bytes), as for bench.measure.residency.
    """
    with tempfile.TemporaryDirectory(prefix="segment-bench-heavy-") as folder:
        weights = heavy_weights_dir(Path(folder) / "models")
        started = time.monotonic()
        paths = []
        for index, data in enumerate(images):
            paths.append(Path(folder) / f"image-{index}")
            paths[-1].write_bytes(data)
        output = _run_module(
            "bench.heavy_probe", "--rounds", str(rounds), *map(str, paths), models_dir=weights.folder
        )
    return {
        "weights": "real" if weights.real else RANDOM_NOTE,
        "models": json.loads(output.splitlines()[-1]),
        "rounds": rounds,
        "seconds": round(time.monotonic() - started),
    }


def heavy_worker_memory(service, model="mask_rcnn_coco", image=None, timeout=240):
    """Resident memory (MB) of a heavy worker, main process and pool process together,
    once its model is loaded and, given an image (bytes), after one job on it.

    `service` is a bench.harness.Service: the worker runs on its Redis and PostgreSQL.
    """
    from bench.harness import wait_until_announced
    from bench.measure import rss_mb
    from core.repository import local_specs

    name = f"heavy-{model}"  # one name per model: a stopped worker's announcement lingers 15 s
    weights = heavy_weights_dir(service.folder / f"{name}-models")
    env = {**service.env, "SEGMENT_MODELS_DIR": str(weights.folder), "WORKER_MODELS": model}
    worker = WorkerProcess(name, service.folder / f"{name}.log", env, queues=local_specs()[model].queue)
    service.processes.append(worker)  # service.close() stops it if anything below fails
    started = time.monotonic()
    worker.start(timeout=timeout)
    wait_until_announced(worker, service.env["REDIS_URL"], started + timeout)
    figures = {
        "model": model,
        "weights": "real" if weights.real else "random",
        "ready_s": round(time.monotonic() - started, 1),
        "loaded_mb": rss_mb([worker.pid, *worker.children()]),
    }
    if image is not None:
        figures["job"] = _run_job(service, model, image)
        figures["after_job_mb"] = rss_mb([worker.pid, *worker.children()])
    service.stop(worker)
    figures["seconds"] = round(time.monotonic() - started)
    return figures


def _run_job(service, model, image):
    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(image)
        file.flush()
        env = {**service.env, "BENCH_IMAGE": file.name, "BENCH_MODEL": model}
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", RUN_JOB],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
    line = next(line for line in done.stdout.splitlines() if line.startswith("job "))
    return json.loads(line.split(" ", 1)[1])


def _run_module(module, *args, models_dir=None):
    """`python -m module args` in a fresh process (pixellib's graph mode stays there)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "segsite.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-key-not-for-production"),
    }
    if models_dir is not None:
        env["SEGMENT_MODELS_DIR"] = str(models_dir)
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m {module} failed ({done.returncode}):\n{done.stderr[-5000:]}")
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="requests timed per model and way")
    parser.add_argument(
        "--worker",
        choices=HEAVY,
        action="append",
        help="a heavy worker to measure (repeatable; default mask_rcnn_coco)",
    )
    parser.add_argument("--no-memory", action="store_true", help="measure no heavy worker")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production")
    import django

    django.setup()
    images = [(PHOTOS / name).read_bytes() for name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")]

    started = time.monotonic()
    # Random weights are written (or found) first, so that no figure below includes writing them.
    with tempfile.TemporaryDirectory(prefix="segment-bench-models-") as folder:
        weights = heavy_weights_dir(Path(folder) / "models")
    made = f"written in {weights.generated_s} s" if weights.generated_s else "already there"
    where = "installed" if weights.real else f"random, in {cache_folder()}, {made}"
    print(f"heavy weights: {where}", flush=True)

    residency = residency_heavy(images, args.rounds)
    print(f"residency ({residency['weights']}), {args.rounds} rounds, {residency['seconds']} s:")
    for model, r in residency["models"].items():
        found = f", instances found {r['instances']}" if "instances" in r else ""
        print(
            f"  {model}: {r['per_request']['p50']} ms per request vs {r['resident']['p50']} ms resident: "
            f"{r['ratio']} x{found}",
            flush=True,
        )
    if not args.no_memory:
        from bench.harness import Service

        service = Service()
        try:
            for model in args.worker or ["mask_rcnn_coco"]:
                memory = heavy_worker_memory(service, model, image=images[0])
                print(f"heavy worker: {json.dumps(memory)}", flush=True)
        finally:
            service.close()
    print(f"in all {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
