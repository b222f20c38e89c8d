"""YOLOv8n-seg on COCO, int8 TFLite (float input and output); NMS and masks done here.

Output 0 is (1, 116, N): per anchor cx, cy, w, h (0..1 of the input), 80 sigmoided class
scores and 32 mask coefficients. Output 1 is (1, 160, 160, 32) mask prototypes at 1/4 of
the 640x640 letterboxed input.
"""

import math

import numpy as np
from PIL import Image

from workers.engines.base import DEFAULT_SCORE_THRESHOLD, MIN_SCORE, Engine, Instance, InstanceResult
from workers.engines.litert import make_interpreter

LETTERBOX_PAD = 114  # Ultralytics' grey, what the model was trained with
IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100
MASK_THRESHOLD = 0.5


class YoloV8SegEngine(Engine):
    # No infer_batch of its own: the base class's loop. This export bakes batch 1 into its
    # graph (RESHAPE to a constant [1, 32, 400] and the like), so an input resized to more
    # images fails at allocate_tensors(); tests/workers/test_batching.py pins that.

    def load(self):
        self.interpreter = make_interpreter(self.spec.weights_path())
        self.input = self.interpreter.get_input_details()[0]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: len(d["shape"]))
        self.pred_output, self.proto_output = outputs  # (1,116,N) has 3 dims, protos 4
        self.size = int(self.input["shape"][1])
        self.num_classes = len(self.spec.labels)

    def infer(self, rgb, options):
        height, width = rgb.shape[:2]
        batch, letterbox = self._letterbox(rgb)

        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        pred = self.interpreter.get_tensor(self.pred_output["index"])[0].T  # (N, 116)
        protos = self.interpreter.get_tensor(self.proto_output["index"])[0]  # (160,160,32)

        threshold = options.get("score_threshold", DEFAULT_SCORE_THRESHOLD)
        boxes, scores, classes, coeffs = self._detections(pred, threshold, options.get("class_ids"))
        instances = []
        for box, score, class_id, coeff in zip(boxes, scores, classes, coeffs, strict=True):
            instance = self._instance(box, score, class_id, coeff, protos, letterbox, width, height)
            if instance is not None:
                instances.append(instance)
        return InstanceResult(instances=instances)

    def _letterbox(self, rgb):
        """Scale to fit the square input keeping aspect, centre, pad with grey."""
        height, width = rgb.shape[:2]
        scale = min(self.size / height, self.size / width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        left, top = (self.size - new_w) // 2, (self.size - new_h) // 2
        canvas = np.full((self.size, self.size, 3), LETTERBOX_PAD, dtype=np.uint8)
        resized = Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR)
        canvas[top : top + new_h, left : left + new_w] = np.asarray(resized)
        batch = (canvas.astype(np.float32) / 255.0)[None]
        return batch, (scale, left, top)

    def _detections(self, pred, threshold, class_ids):
        """Filter by score and class, then per-class NMS; boxes as x0,y0,x1,y1 input pixels."""
        class_scores = pred[:, 4 : 4 + self.num_classes]
        if class_ids:
            allowed = np.zeros(self.num_classes, dtype=bool)
            allowed[list(class_ids)] = True
            class_scores = np.where(allowed, class_scores, 0.0)
        classes = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(classes)), classes]
        keep = scores >= max(threshold, MIN_SCORE)
        pred, scores, classes = pred[keep], scores[keep], classes[keep]

        cx, cy, w, h = (pred[:, :4] * self.size).T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        order = non_max_suppression(boxes, scores, classes, IOU_THRESHOLD)[:MAX_DETECTIONS]
        coeffs = pred[:, 4 + self.num_classes :]
        return boxes[order], scores[order], classes[order], coeffs[order]

    def _instance(self, box, score, class_id, coeff, protos, letterbox, width, height):
        scale, left, top = letterbox
        # 1. The box in original pixels, as whole pixels inside the image.
        x0 = min(max(math.floor((box[0] - left) / scale), 0), width - 1)
        y0 = min(max(math.floor((box[1] - top) / scale), 0), height - 1)
        x1 = min(max(math.ceil((box[2] - left) / scale), x0 + 1), width)
        y1 = min(max(math.ceil((box[3] - top) / scale), y0 + 1), height)

        # 2. The mask at prototype resolution, then only the box's region resampled to
        #    original pixels: never a full-size float mask per instance.
        logits = protos @ coeff
        proto_mask = Image.fromarray((1.0 / (1.0 + np.exp(-logits))).astype(np.float32), "F")
        ratio = self.size / protos.shape[0]
        region = tuple(
            (value * scale + offset) / ratio
            for value, offset in ((x0, left), (y0, top), (x1, left), (y1, top))
        )
        crop = proto_mask.resize((x1 - x0, y1 - y0), Image.BILINEAR, box=region)
        mask = np.asarray(crop) > MASK_THRESHOLD
        return Instance(class_id=int(class_id), score=float(score), box=(x0, y0, x1, y1), mask=mask)


def non_max_suppression(boxes, scores, classes, iou_threshold):
    """Indices of the boxes kept by greedy per-class NMS, highest score first.

    Boxes of different classes never suppress each other: each class is shifted to its own
    region of the plane, the usual trick that turns per-class NMS into one pass.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    shifted = boxes + (classes.astype(np.float64) * (boxes.max() + 1))[:, None]
    x0, y0, x1, y1 = shifted.T
    areas = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    order = scores.argsort()[::-1]
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        inter_w = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        inter_h = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)
