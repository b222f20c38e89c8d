"""DeepLabV3 (MobileNetV2) on PASCAL VOC, int8 TFLite with the argmax in the graph."""

import math

import numpy as np
from PIL import Image

from .base import Engine, SemanticResult
from .litert import make_interpreter

# The model normalises internally as (x - 128) / 128, so 128 pads with "zero signal".
PAD_VALUE = 128
# An image longer than this many times its width (or the reverse) is run in tiles.
TILE_ASPECT = 1.5
MAX_TILES = 4


class DeepLabTFLiteEngine(Engine):
    def load(self):
        self.interpreter = make_interpreter(self.spec.weights_path())
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])

    def infer(self, rgb, options):
        class_map = self._infer_tiled(rgb)
        return SemanticResult(class_map=keep_classes(class_map, options.get("class_ids")))

    def _infer_tiled(self, rgb):
        """An elongated image as overlapping tiles along its long side, each run at full
        input size; any other image as it is, in one pass.

        Letterboxed whole, a 2:1 photo fills half the 513x513 input and small objects
        vanish (the monitors of MAX's stc.jpg test image). Tiles are square up to a 4:1
        image and longer past it (at most MAX_TILES). Each pixel takes the class from the
        tile whose centre is nearest, so the overlaps split at their midpoints. Tiles are
        cut from the image as it is, never rotated: the model was trained upright.
        """
        height, width = rgb.shape[:2]
        along_x = width >= height
        long, short = (width, height) if along_x else (height, width)
        if long <= TILE_ASPECT * short:
            return self._infer_once(rgb)
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
        height, width = rgb.shape[:2]
        scale = self.size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))

        # 1. Resize the longest side to the input size and pad bottom/right.
        resized = Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR)
        batch = np.full((1, self.size, self.size, 3), PAD_VALUE, dtype=np.uint8)
        batch[0, :new_h, :new_w] = np.asarray(resized)

        # 2. Run; the output is already the argmax class map.
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        class_map = self.interpreter.get_tensor(self.output["index"])[0, :new_h, :new_w]

        # 3. Back to the original size; nearest keeps ids exact.
        small = Image.fromarray(class_map.astype(np.uint8))
        return np.asarray(small.resize((width, height), Image.NEAREST))


def keep_classes(class_map, class_ids):
    """Set pixels of classes the client did not ask for to background (0)."""
    if not class_ids:
        return class_map
    keep = np.zeros(256, dtype=bool)
    keep[list(class_ids)] = True
    return np.where(keep[class_map], class_map, 0).astype(np.uint8)
