"""Residency of the heavy models, measured in a process of its own.

    SEGMENT_MODELS_DIR=FOLDER python -m bench.heavy_probe [--rounds N] IMAGE [IMAGE ...]

PixelLib's tutorial (Flask) built and loaded both of its models on every request, segmented
with the one asked for and dropped both. Against that, the model a heavy worker keeps
resident. FOLDER is a model repository with both heavy models' weights (bench/heavy.py
builds one). Prints one JSON line: per model, the latencies of each way (ms) and their ratio.
Run by bench/heavy.py: importing pixellib switches TensorFlow to graph mode for the whole
process, which the bench's own process must not inherit.
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")

from bench.heavy import HEAVY  # noqa: E402  (after the settings module is chosen)


def per_request(model, rgb):
    """One tutorial request: build and load both models, segment with one, drop both."""
    from core.repository import local_specs
    from workers.model import Model

    started = time.perf_counter()
    # Built and loaded, not warmed up. Model() also hashes each file (no published checksum),
    # which the tutorial did not: a fraction of a second against tens of seconds.
    models = [Model(local_specs()[name]) for name in HEAVY]
    models[HEAVY.index(model)].infer(rgb, {})
    elapsed = (time.perf_counter() - started) * 1000
    del models
    discard_graph()
    return elapsed


def discard_graph():
    """Free every model built so far: a fresh graph and session, as pixellib allows.

    Without this each request's models would stay in memory, in an ever larger graph, and
    slow the next build: this is the tutorial's way at its best, not as it leaked.
    """
    from workers.runtimes import pixellib_compat

    # pixellib's DeepLab module opens an InteractiveSession on the graph of the first build
    # and leaves it as the process's default session: the next build's weights would be
    # fed to it, a session of the discarded graph ("not an element of this graph").
    deeplab = sys.modules.get("pixellib.semantic.deeplab")
    if deeplab is not None:
        deeplab.session.close()
    pixellib_compat.tf_keras.backend.clear_session()
    gc.collect()


def resident(model, arrays, rounds):
    """The model as a worker keeps it: loaded and warmed up once, then only inference."""
    from core.repository import local_specs
    from workers import registry

    registry.load_models([local_specs()[model]])
    loaded = registry.get_model(model)
    latencies, found = [], []
    for index in range(rounds):
        started = time.perf_counter()
        result = loaded.infer(arrays[index % len(arrays)], {})
        latencies.append((time.perf_counter() - started) * 1000)
        found.append(len(getattr(result, "instances", [])))
    return latencies, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    django.setup()
    from bench.measure import decoded, summary
    from workers.runtimes import pixellib_compat  # noqa: F401  (graph mode before any model is built)

    arrays = decoded([path.read_bytes() for path in args.images])
    figures = {}
    # Every tutorial request first: they clear the Keras session, which resident models
    # loaded earlier would not survive.
    tutorial = {
        model: [per_request(model, arrays[index % len(arrays)]) for index in range(args.rounds)]
        for model in HEAVY
    }
    for model in HEAVY:
        latencies, found = resident(model, arrays, args.rounds)
        ratio = statistics.median(tutorial[model]) / statistics.median(latencies)
        figures[model] = {
            "per_request": summary(tutorial[model]),
            "resident": summary(latencies),
            "ratio": round(ratio, 1),
        }
        if any(found):
            figures[model]["instances"] = found  # Mask R-CNN's post-processing grows with them
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
