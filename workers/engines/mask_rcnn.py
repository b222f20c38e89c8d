"""Mask R-CNN (ResNet-101) on COCO, pixellib's Keras model and HDF5 weights."""

import numpy as np

from workers.engines.base import DEFAULT_SCORE_THRESHOLD, MIN_SCORE, Engine, Instance, InstanceResult


class MaskRCNNEngine(Engine):
    def load(self):
        from workers.engines import pixellib_compat
        from workers.engines.keras_weights import check_weight_file

        self.model = pixellib_compat.mask_rcnn_coco(min_confidence=MIN_SCORE)
        check_weight_file(self.model.keras_model, self.spec.weights_path())
        # Not pixellib's MaskRCNN.load_weights: it goes through TensorFlow's private Keras
        # loader, which on TF 2.21 silently skips the nested `rpn_model`, leaving the region
        # proposal network random. tf_keras' own by-name loading reads the same file fully.
        self.model.keras_model.load_weights(str(self.spec.weights_path()), by_name=True)

    def infer(self, rgb, options):
        # detect() resizes (800-1024, padded square), runs, and maps boxes and full-size
        # masks back to the original image itself.
        height, width = rgb.shape[:2]
        found = self.model.detect([np.ascontiguousarray(rgb)], verbose=0)[0]
        threshold = max(options.get("score_threshold", DEFAULT_SCORE_THRESHOLD), MIN_SCORE)
        wanted = set(options.get("class_ids") or [])
        instances = []
        for index, (y0, x0, y1, x1) in enumerate(found["rois"]):
            class_id = int(found["class_ids"][index]) - 1  # 0 is Mask R-CNN's background
            score = float(found["scores"][index])
            if class_id < 0 or score < threshold or (wanted and class_id not in wanted):
                continue
            x0, y0 = int(min(max(x0, 0), width - 1)), int(min(max(y0, 0), height - 1))
            x1, y1 = int(min(max(x1, x0 + 1), width)), int(min(max(y1, y0 + 1), height))
            mask = found["masks"][y0:y1, x0:x1, index].astype(bool)
            instances.append(Instance(class_id=class_id, score=score, box=(x0, y0, x1, y1), mask=mask))
        instances.sort(key=lambda instance: instance.score, reverse=True)
        return InstanceResult(instances=instances)
