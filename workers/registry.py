"""The engines resident in this worker process, loaded once and kept.

Only worker processes call load_engines(); the web process never does, so it never
imports an inference runtime.
"""

import importlib
import logging
import time

from workers.catalog import get_spec

log = logging.getLogger(__name__)

_engines = {}


class ModelNotLoaded(Exception):
    pass


def load_engines(names, warm_up=True):
    """Load (and warm up) each named engine; raises on a missing or bad weight file."""
    for name in names:
        if name in _engines:
            continue
        spec = get_spec(name)
        present, detail = spec.weights_status()
        if not present:
            raise RuntimeError(f"cannot load model {name}: {detail}")
        started = time.monotonic()
        engine = create_engine(spec)
        engine.load()
        if warm_up:
            engine.warm_up()
        _engines[name] = engine
        log.info("loaded model %s in %.0f ms", name, (time.monotonic() - started) * 1000)


def create_engine(spec):
    """A new, unloaded engine of the spec's class (one class per model)."""
    module_name, class_name = spec.engine.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)(spec)


def get_engine(name):
    try:
        return _engines[name]
    except KeyError:
        raise ModelNotLoaded(f"model {name} is not loaded in this worker") from None


def loaded_names():
    return sorted(_engines)
