"""The models resident in this worker process, loaded once and kept.

Only worker processes (and `manage.py segment` / `check_model`) load models; the web
process never does, so it never imports an inference runtime.
"""

import logging
import time

import numpy as np

from workers.batching import Batcher
from workers.model import Model

log = logging.getLogger(__name__)

_models = {}
# The Batchers through which this process's threads share its models (a batching worker),
# by model name.
_batchers = {}


class ModelNotLoaded(Exception):
    pass


def load_models(specs, warm_up=True, batching=None):
    """Load (and warm up) each spec's model; raises ModelLoadError on a missing or bad file.

    `batching` (max_size, wait_seconds, timeout_seconds), for a worker whose jobs run on
    threads: each model's runtime calls go through a Batcher of its own (workers/batching.py).
    """
    for spec in specs:
        resident = _models.get(spec.name)
        if resident is not None and resident.spec == spec and resident.spec.folder == spec.folder:
            continue  # the same model: loaded once per process
        # A new or changed spec of that name (`check_model` on an edited copy) loads afresh.
        started = time.monotonic()
        model = Model(spec)
        if warm_up:
            model.warm_up()
        if batching:
            _share(model, *batching, warm_up=warm_up)
        _models[spec.name] = model
        log.info("loaded model %s in %.0f ms", spec.name, (time.monotonic() - started) * 1000)


def _share(model, max_size, wait_seconds, timeout_seconds, warm_up):
    # A model whose graph takes one photo still gets a Batcher, of one: its runtime is then
    # only used from one thread.
    size = max_size if max_size > 1 and model.runtime.batches() else 1
    batcher = Batcher(model.runtime.run, size, wait_seconds, timeout_seconds, name=model.spec.name)
    model.share(batcher)
    _batchers[model.spec.name] = batcher
    log.info("model %s: batches of up to %d within %.0f ms", model.spec.name, size, wait_seconds * 1000)
    if warm_up and size > 1 and model.spec.input.fit != "native":
        # Each batch size the runtime may make, made now rather than in a first job.
        photo = np.zeros(model.spec.input.shape(), dtype=model.spec.input.dtype)
        batch = 2
        while batch <= size:
            model.runtime.run(np.concatenate([photo] * batch))
            batch *= 2


def get_model(name):
    try:
        return _models[name]
    except KeyError:
        raise ModelNotLoaded(f"model {name} is not loaded in this worker") from None


def shared():
    """Whether jobs here run on threads sharing the models: several at once under one name."""
    return bool(_batchers)


def batchers():
    return list(_batchers.values())


def loaded():
    """The loaded models, by name."""
    return [_models[name] for name in sorted(_models)]
