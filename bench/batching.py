"""Batches on the raw engine, in this process: ms per photo at batch sizes 1, 2, 4 and 8.

The service runs one photo per invoke() (a runtime's `run` takes batch 1). LiteRT can
resize deeplabv3_mnv2_pascal's input to a larger batch, so this says whether batching
would pay on this CPU before anyone builds it. Only set_tensor, invoke and get_tensor are
timed, on photos fitted as Model.infer fits them, with the interpreter threads a worker
gets here (INFERENCE_THREADS, else every core).
"""

import time

import numpy as np

from bench.measure import decoded
from core.repository import local_specs
from workers import fitting
from workers.runtimes import inference_threads

SIZES = (1, 2, 4, 8)
# Pixels of each photo's class map that a batch must give as batch 1 does. The int8 graph
# should agree exactly; a kernel chosen for another batch may round a rare pixel otherwise.
MIN_AGREEMENT = 0.999


def per_photo(model, images, sizes=SIZES, rounds=5):
    """{model, threads, measured, rows: [{batch, ms_per_photo, ratio_to_batch_1}], worst_ratio},
    or measured False with the reason where the graph takes no batch larger than 1.

    Each round runs every size over the same max(sizes) photos cut into its batches, the
    sizes taking turns, so that a busy spell of the machine falls on all of them.
    """
    spec = local_specs()[model]
    if spec.runtime != "litert":
        return {
            "model": model,
            "measured": False,
            "why": f"{spec.runtime} runtime: only LiteRT is resized here",
        }
    tensors = [fitting.fit(rgb, spec.input)[0] for rgb in decoded(images)]
    stream = np.concatenate([tensors[index % len(tensors)] for index in range(max(sizes))])
    try:
        interpreters = {size: _Batched(spec, size) for size in sizes}
    except (ValueError, RuntimeError) as exc:  # a graph that bakes batch 1 into its shapes
        return {"model": model, "measured": False, "why": str(exc)}
    # A batch must give each photo what batch 1 gives it, or its time says nothing (a graph
    # can take a larger batch and still mix the photos up). This pass also warms each up.
    alone = _outputs(interpreters[1], stream, 1)
    agreement = {
        size: float(np.mean(_outputs(batched, stream, size) == alone))
        for size, batched in interpreters.items()
    }
    if min(agreement.values()) < MIN_AGREEMENT:
        return {"model": model, "measured": False, "why": f"batches disagree with batch 1: {agreement}"}

    seconds = dict.fromkeys(sizes, 0.0)
    for _ in range(rounds):
        for size, interpreter in interpreters.items():
            for first in range(0, len(stream), size):
                started = time.perf_counter()
                interpreter.run(stream[first : first + size])
                seconds[size] += time.perf_counter() - started
    photos = rounds * len(stream)
    ms = {size: seconds[size] * 1000 / photos for size in sizes}
    rows = [
        {"batch": size, "ms_per_photo": round(ms[size], 1), "ratio_to_batch_1": round(ms[size] / ms[1], 3)}
        for size in sizes
    ]
    return {
        "model": model,
        "threads": inference_threads(),
        "measured": True,
        "photos_per_size": photos,
        "agreement_with_batch_1": min(agreement.values()),
        "rows": rows,
        "worst_ratio": max(row["ratio_to_batch_1"] for row in rows),
    }


def _outputs(batched, stream, size):
    return np.concatenate(
        [batched.run(stream[first : first + size]) for first in range(0, len(stream), size)]
    )


class _Batched:
    """A LiteRT interpreter of the model whose input takes `size` photos at once."""

    def __init__(self, spec, size):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(spec.weights_path()), num_threads=inference_threads())
        self.input = self.interpreter.get_input_details()[0]["index"]
        shape = self.interpreter.get_input_details()[0]["shape"]
        self.interpreter.resize_tensor_input(self.input, [size, *shape[1:]])
        self.interpreter.allocate_tensors()
        self.outputs = [output["index"] for output in self.interpreter.get_output_details()]

    def run(self, batch):
        self.interpreter.set_tensor(self.input, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.outputs[0])
