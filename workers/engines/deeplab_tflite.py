"""DeepLabV3 (MobileNetV2) on PASCAL VOC, int8 TFLite with the argmax in the graph."""

import numpy as np
from PIL import Image

from .base import Engine, SemanticResult
from .litert import make_interpreter

# The model normalises internally as (x - 128) / 128, so 128 pads with "zero signal".
PAD_VALUE = 128


class DeepLabTFLiteEngine(Engine):
    def load(self):
        self.interpreter = make_interpreter(self.spec.weights_path())
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])

    def infer(self, rgb, options):
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
        full = np.asarray(small.resize((width, height), Image.NEAREST))
        return SemanticResult(class_map=keep_classes(full, options.get("class_ids")))


def keep_classes(class_map, class_ids):
    """Set pixels of classes the client did not ask for to background (0)."""
    if not class_ids:
        return class_map
    keep = np.zeros(256, dtype=bool)
    keep[list(class_ids)] = True
    return np.where(keep[class_map], class_map, 0).astype(np.uint8)
