"""A model loaded from its spec: weights checked, runtime loaded, the same infer() for all.

There is no class per model: the spec names the runtime (LiteRT, ONNX Runtime, pixellib)
and the decoder, and says how a photo is fitted to the input. Loading checks the file
against the spec (checksum, input shape and dtype, output shapes), so a wrong spec is
told apart from a wrong file by a message that names the field.
"""

import time

import numpy as np

from workers import fitting
from workers.decoders import DECODERS, dense
from workers.runtimes import load_runtime
from workers.weights import sha256_of, weights_problem


class ModelLoadError(Exception):
    """The model cannot be served; the message names the spec field or the file at fault."""


class Model:
    def __init__(self, spec):
        """Check the weight file and load it (once per worker process)."""
        self.spec = spec
        problem = weights_problem(spec)
        if problem:
            raise ModelLoadError(f"{spec.name}: {problem}")
        # Announced with the model, so an operator sees which file each worker really runs.
        self.sha256 = spec.weights.sha256 or sha256_of(spec.weights_path())
        started = time.monotonic()
        try:
            self.runtime = load_runtime(spec)
        except Exception as exc:  # each runtime's library raises errors of its own
            raise ModelLoadError(f"{spec.name}: {exc}") from exc
        self.load_ms = int((time.monotonic() - started) * 1000)
        problems = mismatches(spec, self.runtime)
        if problems:
            raise ModelLoadError(f"{spec.name}: " + "; ".join(problems))
        self.decoder = DECODERS[spec.decoder]
        # The runtime call: the runtime itself, or a Batcher shared by a worker's threads.
        self.run = self.runtime.run

    def share(self, batcher):
        """Run through `batcher` from now on (a worker whose jobs run on threads)."""
        self.run = batcher.run

    def infer(self, rgb, options, size=None):
        """One (H, W, 3) uint8 photo in; a result at its own size, or at `size`, out.

        `options`: class_ids (the classes to keep) and score_threshold (instance models).
        `size` (width, height): the photo's own size where `rgb` is a reduced copy of it.
        """
        width, height = size or (rgb.shape[1], rgb.shape[0])
        if self.decoder is dense:
            exact = self.spec.decoder in dense.EXACT
            if self.spec.input.fit == "tiles" and fitting.is_elongated(rgb):
                tiles = fitting.tiled(rgb, lambda tile: self._per_pixel(tile, tile.shape[1], tile.shape[0]))
                photo_values = fitting.resized(tiles, width, height, exact)
            else:
                photo_values = self._per_pixel(rgb, width, height)
            return dense.result(self.spec, photo_values, options)
        if self.spec.input.fit == "native":
            return self.decoder.decode(self.spec, self.run(rgb), None, width, height, options)
        tensor, placement = fitting.fit(rgb, self.spec.input)
        return self.decoder.decode(self.spec, self.run(tensor), placement, width, height, options)

    def _per_pixel(self, rgb, width, height):
        tensor, placement = fitting.fit(rgb, self.spec.input)
        values = dense.values(self.spec, self.run(tensor))
        return fitting.unfit(values, placement, width, height, exact=self.spec.decoder in dense.EXACT)

    def warm_up(self):
        """One inference on a blank image, so the first real job pays no lazy set-up."""
        self.infer(np.zeros((self.spec.input.height, self.spec.input.width, 3), dtype=np.uint8), {})


def mismatches(spec, runtime):
    """Where the loaded file disagrees with its spec, each naming the field to change."""
    problems = []
    file = spec.weights.file
    if runtime.input_shape is not None:
        expected = spec.input.shape()
        fits = len(expected) == len(runtime.input_shape) and all(
            actual is None or actual == wanted or index == 0
            for index, (actual, wanted) in enumerate(zip(runtime.input_shape, expected, strict=False))
        )
        if not fits:
            problems.append(
                f"input.size is [{spec.input.width}, {spec.input.height}] and input.layout {spec.input.layout}, "
                f"so the input would be {expected}; {file} takes {_shape(runtime.input_shape)}"
            )
        if runtime.input_dtype != spec.input.dtype:
            problems.append(f"input.dtype is {spec.input.dtype}; {file} takes {runtime.input_dtype}")
    if runtime.output_shapes is not None:
        problems += DECODERS[spec.decoder].check(spec, runtime.output_shapes)
    return problems


def _shape(shape):
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
