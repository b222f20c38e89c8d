"""Batch sizes 1 to 16 on a GPU: ms per photo for the model the GPU worker batches.

    bench/gpu.sh                      on a machine with an NVIDIA GPU (see that script)
    python -m bench.gpu --cpu 1,2     the same measurement on this machine's CPU: a dry run

The model is DeepLabV3+ Xception as pixellib builds it (TensorFlow, the GPU worker's
`deeplabv3plus_xception_pascal`) at its 512x512 input, with random weights: the time of a
network does not depend on its weight values, and the real file is not needed. Each batch
size runs `rounds` batches after two untimed ones (TensorFlow builds its kernels for each
new shape). Writes bench/gpu-results.json and prints a table; exits 2 where TensorFlow
sees no GPU and --cpu was not given, so that a script never takes CPU figures for GPU ones.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
SIZES = (1, 2, 4, 8, 16)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", metavar="SIZES", help="measure on the CPU, at these batch sizes (1,2)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=BENCH / "gpu-results.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")
    import django

    django.setup()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.cpu:
        print(
            "no GPU: TensorFlow sees none here; nothing measured (--cpu SIZES for a dry run)", file=sys.stderr
        )
        sys.exit(2)
    sizes = tuple(int(size) for size in args.cpu.split(",")) if args.cpu else SIZES
    results = {
        "device": "cpu" if args.cpu else ", ".join(_gpu_name(tf, gpu) for gpu in gpus),
        "host": platform.node(),
        "tensorflow": tf.__version__,
        "model": "deeplabv3plus_xception_pascal (random weights, the real architecture)",
        "rounds": args.rounds,
        "rows": per_photo(sizes, args.rounds),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['model']} on {results['device']}, {args.rounds} batches per size")
    print("| batch | ms per batch | ms per photo | photos/s | × batch 1 per photo |")
    print("|---|---|---|---|---|")
    for row in results["rows"]:
        print(
            f"| {row['batch']} | {row['ms_per_batch']} | {row['ms_per_photo']} | {row['photos_per_second']} "
            f"| {row['ratio_to_batch_1']} |"
        )


def per_photo(sizes, rounds):
    from workers.runtimes import pixellib_compat

    model = pixellib_compat.deeplab_xception_pascal()
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        batch = rng.uniform(-1, 1, (size, 512, 512, 3)).astype(np.float32)  # the spec's range
        for _ in range(2):
            model.predict_on_batch(batch)
        started = time.perf_counter()
        for _ in range(rounds):
            np.asarray(model.predict_on_batch(batch))  # back on the host, as the worker needs it
        ms = (time.perf_counter() - started) * 1000 / rounds
        rows.append({"batch": size, "ms_per_batch": round(ms, 1), "ms_per_photo": round(ms / size, 2)})
    for row in rows:
        row["photos_per_second"] = round(1000 / row["ms_per_photo"], 1)
        row["ratio_to_batch_1"] = round(row["ms_per_photo"] / rows[0]["ms_per_photo"], 3)
    return rows


def _gpu_name(tf, gpu):
    return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)


if __name__ == "__main__":
    main()
