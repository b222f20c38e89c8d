"""pixellib's Mask R-CNN detect() answer as instances: rois, class ids, scores, full masks."""

from workers.results import DEFAULT_SCORE_THRESHOLD, MIN_SCORE, Instance, InstanceResult


def check(spec, output_shapes):
    return []  # detect() answers a dict, not tensors: nothing to compare


def decode(spec, outputs, placement, width, height, options):
    found = outputs[0]
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
