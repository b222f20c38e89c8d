"""Shared LiteRT (TFLite) interpreter set-up for the light engines."""

import os

from django.conf import settings


def make_interpreter(model_path, batch=1):
    """An interpreter with its tensors allocated; its input takes `batch` images at once.

    A batch other than the model's own 1 fails at allocate_tensors() where the graph bakes
    batch 1 into its shapes (YOLOv8-seg's reshapes do): the caller then runs images one by one.
    """
    # Imported here, not at module level: the web process imports the catalog, never this.
    from ai_edge_litert.interpreter import Interpreter

    # One worker process per core is the deployment model (see README, "Workers"); more
    # interpreter threads than the process's share of cores only adds contention.
    threads = settings.INFERENCE_THREADS or max(1, len(os.sched_getaffinity(0)))
    interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
    if batch != 1:
        input_details = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(input_details["index"], [batch, *input_details["shape"][1:]])
    interpreter.allocate_tensors()
    return interpreter
