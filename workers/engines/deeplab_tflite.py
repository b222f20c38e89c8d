"""DeepLabV3 (MobileNetV2) on PASCAL VOC, int8 TFLite with the argmax in the graph."""

import math

import numpy as np
from PIL import Image

from workers.engines.base import Engine, SemanticResult
from workers.engines.litert import make_interpreter

# The model normalises internally as (x - 128) / 128, so 128 pads with "zero signal".
PAD_VALUE = 128
# An image longer than this many times its width (or the reverse) is run in tiles.
TILE_ASPECT = 1.5
MAX_TILES = 4
# The most images in one invoke(). Each batch size holds its own interpreter, whose tensors
# grow with it (about 150 MB at 8): without a cap, a long list would get an arena as large.
MAX_BATCH = 8


class DeepLabTFLiteEngine(Engine):
    def load(self):
        self.interpreter = make_interpreter(self.spec.weights_path())
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])
        # By batch size, each made on first use: a worker that never batches holds one. Tensor
        # indices are the model's, the same in all of them.
        self.interpreters = {1: self.interpreter}

    def infer(self, rgb, options):
        return semantic_result(self._infer_tiled(rgb), options)

    def infer_batch(self, rgbs, options):
        """The images that fit one pass share batched passes; an elongated image runs alone.

        An elongated image is already 2 to 4 passes (its tiles). Running it through
        _infer_tiled, as `infer` does, keeps its tiling exactly right; pooling tiles of
        several images would need a map from each tile back to its image, for rare photos.
        """
        whole = iter(self._infer_whole([rgb for rgb in rgbs if not is_elongated(rgb)]))
        class_maps = [self._infer_tiled(rgb) if is_elongated(rgb) else next(whole) for rgb in rgbs]
        return [semantic_result(class_map, options) for class_map in class_maps]

    def _infer_tiled(self, rgb):
        """An elongated image as overlapping tiles along its long side, each run at full
        input size; any other image as it is, in one pass.

        Letterboxed whole, a 2:1 photo fills half the 513x513 input and small objects
        vanish (the monitors of MAX's stc.jpg test image). Tiles are square up to a 4:1
        image and longer past it (at most MAX_TILES). Each pixel takes the class from the
        tile whose centre is nearest, so the overlaps split at their midpoints. Tiles are
        cut from the image as it is, never rotated: the model was trained upright.
        """
        if not is_elongated(rgb):
            return self._infer_once(rgb)
        height, width = rgb.shape[:2]
        along_x = width >= height
        long, short = (width, height) if along_x else (height, width)
        count = min(MAX_TILES, math.ceil(long / short))
        length = max(short, math.ceil(long / count))
        starts = [round(i * (long - length) / (count - 1)) for i in range(count)]
        centres = [start + length / 2 for start in starts]
        bounds = [0] + [math.ceil((a + b) / 2) for a, b in zip(centres, centres[1:], strict=False)] + [long]

        def span(a, b):  # rows or columns a..b of the long side
            return (slice(None), slice(a, b)) if along_x else (slice(a, b),)

        class_map = np.empty((height, width), dtype=np.uint8)
        for start, first, end in zip(starts, bounds, bounds[1:], strict=False):
            tile = self._infer_once(rgb[span(start, start + length)])
            class_map[span(first, end)] = tile[span(first - start, end - start)]
        return class_map

    def _infer_once(self, rgb):
        return self._infer_whole([rgb])[0]

    def _infer_whole(self, rgbs):
        """Each image whole, at the input size: up to MAX_BATCH images per invoke()."""
        class_maps = []
        for first in range(0, len(rgbs), MAX_BATCH):
            chunk = rgbs[first : first + MAX_BATCH]
            # 1. Resize each longest side to the input size and pad bottom/right.
            batch = np.full((len(chunk), self.size, self.size, 3), PAD_VALUE, dtype=np.uint8)
            fitted = [self._fit(rgb, slot) for rgb, slot in zip(chunk, batch, strict=True)]

            # 2. Run; the output is already the argmax class map of each image.
            interpreter = self._interpreter_for(len(chunk))
            interpreter.set_tensor(self.input["index"], batch)
            interpreter.invoke()
            outputs = interpreter.get_tensor(self.output["index"])

            # 3. Back to each original size; nearest keeps ids exact.
            for output, (new_h, new_w), rgb in zip(outputs, fitted, chunk, strict=True):
                height, width = rgb.shape[:2]
                small = Image.fromarray(output[:new_h, :new_w].astype(np.uint8))
                class_maps.append(np.asarray(small.resize((width, height), Image.NEAREST)))
        return class_maps

    def _fit(self, rgb, slot):
        """Resize so the longest side is the input size, into the top-left of `slot`."""
        height, width = rgb.shape[:2]
        scale = self.size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        slot[:new_h, :new_w] = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
        return new_h, new_w

    def _interpreter_for(self, batch_size):
        if batch_size not in self.interpreters:
            self.interpreters[batch_size] = make_interpreter(self.spec.weights_path(), batch_size)
        return self.interpreters[batch_size]


def is_elongated(rgb):
    """Whether one side is more than TILE_ASPECT times the other: run as tiles, not whole."""
    height, width = rgb.shape[:2]
    return max(height, width) > TILE_ASPECT * min(height, width)


def semantic_result(class_map, options):
    return SemanticResult(class_map=keep_classes(class_map, options.get("class_ids")))


def keep_classes(class_map, class_ids):
    """Set pixels of classes the client did not ask for to background (0)."""
    if not class_ids:
        return class_map
    keep = np.zeros(256, dtype=bool)
    keep[list(class_ids)] = True
    return np.where(keep[class_map], class_map, 0).astype(np.uint8)
