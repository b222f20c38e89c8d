"""Shared LiteRT (TFLite) interpreter set-up for the light engines."""

import os

from django.conf import settings


def make_interpreter(model_path):
    # Imported here, not at module level: the web process imports the catalog, never this.
    from ai_edge_litert.interpreter import Interpreter

    # One worker process per core is the deployment model (see README, "Workers"); more
    # interpreter threads than the process's share of cores only adds contention.
    threads = settings.INFERENCE_THREADS or max(1, len(os.sched_getaffinity(0)))
    interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter
