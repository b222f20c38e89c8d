"""YOLOv8-seg's outputs (Ultralytics' export): NMS and masks, done here.

Output 0 is (1, 4 + C + M, N): per anchor cx, cy, w, h (0..1 of the input), C sigmoided
class scores and M mask coefficients. Output 1 is (1, h, w, M) mask prototypes, at a
quarter of the letterboxed input. Boxes and masks come back in the photo's pixels.
"""

import math

import numpy as np
from PIL import Image

from workers.results import DEFAULT_SCORE_THRESHOLD, MIN_SCORE, Instance, InstanceResult

IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100
MASK_THRESHOLD = 0.5


def check(spec, output_shapes):
    """What is wrong with these outputs for this spec, if anything (a list of sentences)."""
    ranks = sorted(len(shape) for shape in output_shapes)
    if ranks != [3, 4]:
        return [
            f"output.decoder yolov8_seg reads predictions (rank 3) and prototypes (rank 4); the file gives {output_shapes}"
        ]
    pred, protos = sorted(output_shapes, key=len)
    expected = 4 + len(spec.labels) + protos[-1]
    if pred[1] != expected:
        return [
            f"labels has {len(spec.labels)} names, so each prediction would have 4 + {len(spec.labels)} + "
            f"{protos[-1]} mask coefficients = {expected} values; the file gives {pred[1]} "
            f"({pred[1] - 4 - protos[-1]} classes)"
        ]
    return []


def decode(spec, outputs, placement, width, height, options):
    pred, protos = sorted(outputs, key=lambda output: output.ndim)
    pred, protos = pred[0].T, protos[0]  # (N, 4 + C + M), (h, w, M)
    size = placement.input_width
    threshold = options.get("score_threshold", DEFAULT_SCORE_THRESHOLD)
    boxes, scores, classes, coeffs = _detections(
        pred, len(spec.labels), size, threshold, options.get("class_ids")
    )
    scale = placement.width / width
    instances = []
    for box, score, class_id, coeff in zip(boxes, scores, classes, coeffs, strict=True):
        instance = _instance(
            box, score, class_id, coeff, protos, size, (scale, placement.left, placement.top), width, height
        )
        if instance is not None:
            instances.append(instance)
    return InstanceResult(instances=instances)


def _detections(pred, num_classes, size, threshold, class_ids):
    """Filter by score and class, then per-class NMS; boxes as x0,y0,x1,y1 input pixels."""
    class_scores = pred[:, 4 : 4 + num_classes]
    if class_ids:
        allowed = np.zeros(num_classes, dtype=bool)
        allowed[list(class_ids)] = True
        class_scores = np.where(allowed, class_scores, 0.0)
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(classes)), classes]
    keep = scores >= max(threshold, MIN_SCORE)
    pred, scores, classes = pred[keep], scores[keep], classes[keep]

    cx, cy, w, h = (pred[:, :4] * size).T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    order = non_max_suppression(boxes, scores, classes, IOU_THRESHOLD)[:MAX_DETECTIONS]
    coeffs = pred[:, 4 + num_classes :]
    return boxes[order], scores[order], classes[order], coeffs[order]


def _instance(box, score, class_id, coeff, protos, size, letterbox, width, height):
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
    ratio = size / protos.shape[0]
    region = tuple(
        (value * scale + offset) / ratio for value, offset in ((x0, left), (y0, top), (x1, left), (y1, top))
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
