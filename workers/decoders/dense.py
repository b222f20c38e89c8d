"""Per-pixel outputs: class ids, class scores (argmax), or a foreground probability or logit.

The first output holds one value (or one score per class) per pixel, at any resolution:
(1, H, W), (1, H, W, C) for an NHWC model or (1, C, H, W) for an NCHW one.
"""

import numpy as np

from workers.results import MatteResult, SemanticResult

# Class ids must come back exactly: resampled by nearest neighbour, never blended.
EXACT = ("class_ids", "argmax")


def _planes(spec, shape):
    """(height, width, channels) of an output of this shape, or None if it is none of the forms."""
    if len(shape) == 3:
        return shape[1], shape[2], 1
    if len(shape) == 4:
        return (
            (shape[2], shape[3], shape[1]) if spec.input.layout == "nchw" else (shape[1], shape[2], shape[3])
        )
    return None


def check(spec, output_shapes):
    shape = output_shapes[0]
    planes = _planes(spec, shape)
    if planes is None:
        return [
            f"output.decoder {spec.decoder} reads one value per pixel; the first output's shape is {shape}"
        ]
    channels = planes[2]
    if spec.decoder == "argmax" and channels != len(spec.labels):
        return [
            f"labels has {len(spec.labels)} names, but the first output {shape} scores {channels} classes "
            "per pixel: list one label per class"
        ]
    if spec.decoder != "argmax" and channels != 1:
        hint = ' (use output.decoder = "argmax" for per-class scores)' if spec.task == "semantic" else ""
        return [
            f"output.decoder {spec.decoder} reads one value per pixel; the first output {shape} has {channels}{hint}"
        ]
    return []


def values(spec, outputs):
    """The first output as an (H, W) map: uint8 class ids, or float32 probabilities."""
    output = np.asarray(outputs[0])[0]
    if output.ndim == 3 and spec.input.layout == "nchw":
        output = output.transpose(1, 2, 0)
    if spec.decoder == "argmax":
        return output.argmax(axis=-1).astype(np.uint8)
    if output.ndim == 3:
        output = output[..., 0]
    if spec.decoder == "class_ids":
        return output.astype(np.uint8)
    output = output.astype(np.float32)
    if spec.decoder == "logit":
        output = 1.0 / (1.0 + np.exp(-output))
    return np.clip(output, 0.0, 1.0)


def result(spec, photo_values, options):
    if spec.task == "matte":
        return MatteResult(alpha=photo_values)
    return SemanticResult(class_map=keep_classes(photo_values, options.get("class_ids")))


def keep_classes(class_map, class_ids):
    """Set pixels of classes the client did not ask for to background (0)."""
    if not class_ids:
        return class_map
    keep = np.zeros(256, dtype=bool)
    keep[list(class_ids)] = True
    return np.where(keep[class_map], class_map, 0).astype(np.uint8)
