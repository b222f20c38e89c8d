"""Batched inference on the raw engine, in this process: images per second by batch size.

Latencies are in milliseconds. An image in a batch waits for the whole batch, so its
latency is the batch's time; `ms_per_image` is the batch's time shared out, the cost.
"""

import time

from bench.measure import decoded, summary
from workers import registry


def batch_sizes(model, images, sizes=(1, 2, 4, 8), rounds=3):
    """engine.infer_batch at each batch size on the same images, the photos in turn.

    Each round runs every size over the same max(sizes) images, cut into its batches (the
    last one short where the size does not divide that), so every size does the same work
    and a busy spell on the machine falls on all of them. One untimed batch per size first
    makes its interpreter.
    """
    registry.load_engines([model])
    engine = registry.get_engine(model)
    arrays = decoded(images)
    stream = [arrays[index % len(arrays)] for index in range(max(sizes))]
    latencies = {size: [] for size in sizes}
    for size in sizes:
        engine.infer_batch(stream[:size], {})
    for _ in range(rounds):
        for size in sizes:
            for first in range(0, len(stream), size):
                started = time.perf_counter()
                engine.infer_batch(stream[first : first + size], {})
                latencies[size].append((time.perf_counter() - started) * 1000)
    count = rounds * len(stream)
    rows = [
        {
            "batch": size,
            "images_per_second": round(count * 1000 / sum(latencies[size]), 2),
            "ms_per_image": round(sum(latencies[size]) / count, 1),
            "latency_ms": summary(latencies[size]),
        }
        for size in sizes
    ]
    # The base class's infer_batch is a loop: its rows show what batching costs, not gains.
    return {"model": model, "one_pass": "infer_batch" in vars(type(engine)), "rows": rows}
