"""The models resident in this worker process, loaded once and kept.

Only worker processes (and `manage.py segment` / `check_model`) load models; the web
process never does, so it never imports an inference runtime.
"""

import logging
import time

from workers.model import Model

log = logging.getLogger(__name__)

_models = {}


class ModelNotLoaded(Exception):
    pass


def load_models(specs, warm_up=True):
    """Load (and warm up) each spec's model; raises ModelLoadError on a missing or bad file."""
    for spec in specs:
        resident = _models.get(spec.name)
        if resident is not None and resident.spec == spec and resident.spec.folder == spec.folder:
            continue  # the same model: loaded once per process
        # A new or changed spec of that name (`check_model` on an edited copy) loads afresh.
        started = time.monotonic()
        model = Model(spec)
        if warm_up:
            model.warm_up()
        _models[spec.name] = model
        log.info("loaded model %s in %.0f ms", spec.name, (time.monotonic() - started) * 1000)


def get_model(name):
    try:
        return _models[name]
    except KeyError:
        raise ModelNotLoaded(f"model {name} is not loaded in this worker") from None


def loaded():
    """The loaded models, by name."""
    return [_models[name] for name in sorted(_models)]
