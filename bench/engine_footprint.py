"""Load time, inference time and resident memory of models, as one worker process sees them.

    python bench/engine_footprint.py MODEL [MODEL ...] [--images N]

Run one invocation per worker kind (the light models together, each heavy model alone):
the memory figure is the whole process, as a worker's pool process would hold it.
"""

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import django
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")
os.environ.setdefault("DEBUG", "true")


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--images", type=int, default=5, help="timed inferences per model")
    parser.add_argument(
        "--photo", default=str(Path(__file__).resolve().parents[2] / "shared/eval/photos/astronaut.jpg")
    )
    args = parser.parse_args()
    django.setup()
    from core.repository import local_specs
    from workers import registry

    print(f"cores {len(os.sched_getaffinity(0))}, process RSS before loading {rss_mb():.0f} MB")
    for name in args.models:
        spec = local_specs()[name]
        started = time.monotonic()
        registry.load_models([spec], warm_up=True)
        load_ms = (time.monotonic() - started) * 1000
        size = (spec.input.width, spec.input.height)
        rgb = np.asarray(Image.open(args.photo).convert("RGB").resize(size))
        model = registry.get_model(name)
        times = []
        for _ in range(args.images):
            started = time.monotonic()
            model.infer(rgb, {})
            times.append((time.monotonic() - started) * 1000)
        print(
            f"{name}: load+warm-up {load_ms:.0f} ms, inference at {size[0]}x{size[1]} "
            f"median {statistics.median(times):.0f} ms (n={len(times)}), process RSS now {rss_mb():.0f} MB"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
