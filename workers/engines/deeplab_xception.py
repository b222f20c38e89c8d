"""DeepLabV3+ (Xception) on PASCAL VOC, pixellib's Keras model and HDF5 weights."""

import numpy as np
from PIL import Image

from workers.engines.base import Engine, SemanticResult
from workers.engines.deeplab_tflite import keep_classes

# pixellib's preprocessing, which the weights were trained with: longest side to 512,
# scale to [-1, 1], pad bottom/right with zeros.
TRAINED_SIZE = 512


class DeepLabXceptionEngine(Engine):
    def load(self):
        from workers.engines import pixellib_compat
        from workers.engines.keras_weights import check_weight_file

        self.model = pixellib_compat.deeplab_xception_pascal()
        check_weight_file(self.model, self.spec.weights_path())
        self.model.load_weights(str(self.spec.weights_path()))

    def infer(self, rgb, options):
        height, width = rgb.shape[:2]
        scale = TRAINED_SIZE / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR), dtype=np.float32)
        batch = np.zeros((1, TRAINED_SIZE, TRAINED_SIZE, 3), dtype=np.float32)
        batch[0, :new_h, :new_w] = resized / 127.5 - 1.0

        logits = self.model.predict(batch, verbose=0)[0, :new_h, :new_w]
        small = Image.fromarray(logits.argmax(axis=-1).astype(np.uint8))
        class_map = np.asarray(small.resize((width, height), Image.NEAREST))
        return SemanticResult(class_map=keep_classes(class_map, options.get("class_ids")))
