"""JSON summaries of results: per-class pixel counts, per-instance boxes, COCO RLE and
polygons."""

import numpy as np
from pycocotools import mask as coco_mask

from workers.polygons import instance_polygons
from workers.rendering import pixel_counts


def semantic_summary(class_map, labels, counts=None):
    """`counts`: pixel_counts(class_map), where the caller has it already."""
    total = class_map.size
    return {
        "image_size": [int(class_map.shape[1]), int(class_map.shape[0])],
        "classes": [
            {"id": class_id, "label": labels[class_id], "pixels": count, "fraction": round(count / total, 6)}
            for class_id, count in (counts or pixel_counts(class_map)).items()
        ],
    }


def instance_summary(instances, height, width, labels):
    outlines, budget = instance_polygons(instances)
    items = []
    for index, (instance, polygons) in enumerate(zip(instances, outlines, strict=True), start=1):
        x0, y0, x1, y1 = instance.box
        rle = coco_mask.encode(np.asfortranarray(instance.full_mask(height, width)))
        items.append(
            {
                "index": index,
                "label": labels[instance.class_id],
                "class_id": instance.class_id,
                "score": round(instance.score, 4),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": int(instance.mask.sum()),
                "rle": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                "polygons": polygons,
            }
        )
    return {"image_size": [width, height], "instances": items, "polygon_budget": budget}


def matte_summary(alpha, labels):
    """`alpha`: the matte's 8-bit levels. The foreground is the pixels above half (127)."""
    height, width = alpha.shape
    return {
        "image_size": [width, height],
        "foreground": labels[0],
        "foreground_fraction": round(float((alpha > 127).mean()), 6),
        "mean_alpha": round(float(alpha.mean()) / 255.0, 6),
    }
