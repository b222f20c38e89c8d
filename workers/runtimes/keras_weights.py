"""Check a Keras HDF5 weight file against the model it is meant for, before loading it.

Keras' load_weights(by_name=True), which Mask R-CNN uses, silently skips layers it does
not find: a wrong file (another model, a truncated download) would load "fine" and
produce garbage. This check names what is wrong instead.
"""

import h5py


class WeightFileError(Exception):
    pass


def check_weight_file(model, path, max_listed=5):
    """Raise WeightFileError unless every weighted layer of `model` is in the file with the same shapes."""
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightFileError(f"{path} is not an HDF5 weight file: {exc}") from None
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        problems = []
        for layer in model.layers:
            expected = [tuple(w.shape) for w in layer.weights]
            if not expected:
                continue
            if layer.name not in group:
                problems.append(f"layer {layer.name} is missing")
                continue
            names = [
                n.decode() if isinstance(n, bytes) else n
                for n in group[layer.name].attrs.get("weight_names", [])
            ]
            found = [tuple(group[layer.name][n].shape) for n in names]
            if found != expected:
                problems.append(f"layer {layer.name} has shapes {found}, expected {expected}")
    if problems:
        listed = "; ".join(problems[:max_listed])
        more = f" (and {len(problems) - max_listed} more)" if len(problems) > max_listed else ""
        raise WeightFileError(f"{path} does not fit {model.name}: {listed}{more}")
