"""Runtimes: load a model's weight file once per worker process and run tensors through it.

Each runtime is named by a spec's `runtime` field and exposes the same small interface:
`input_shape` and `input_dtype` (as the file declares them; None for a dimension left
open), `output_shapes`, `run(tensor) -> [output arrays]`, and `batches()`: whether run()
takes a tensor of several photos (workers/batching.py). The runtime's own library
is imported only when a worker loads a model of that runtime: the web process never does.
"""

import importlib

# runtime name -> the module whose `Runtime` class loads it
_MODULES = {
    "litert": "workers.runtimes.litert",
    "onnx": "workers.runtimes.onnx",
    "pixellib": "workers.runtimes.pixellib",
}


def load_runtime(spec):
    """A loaded Runtime for `spec`; raises RuntimeLoadError when the file does not fit."""
    return importlib.import_module(_MODULES[spec.runtime]).Runtime(spec)


class RuntimeLoadError(Exception):
    """The weight file cannot be loaded as the spec says; the message says why."""


def single_input(inputs, spec):
    """The file's one input; a model here takes one image, and a file with more is refused."""
    if len(inputs) != 1:
        raise RuntimeLoadError(
            f"{spec.weights.file} takes {len(inputs)} inputs; a model here takes one image"
        )
    return inputs[0]


def inference_threads():
    """Threads per interpreter: INFERENCE_THREADS, else the cores this process may use.

    One worker process per core is the deployment model (README, "Workers"); more threads
    than the process's share of cores only adds contention.
    """
    import os

    from django.conf import settings

    return settings.INFERENCE_THREADS or max(1, len(os.sched_getaffinity(0)))
