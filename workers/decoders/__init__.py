"""Decoders: a model's raw outputs as results at the photo's size, named by a spec's
`output.decoder`. Each module has `check(spec, output_shapes) -> [problems]`; the dense
one is driven per pixel by workers.model, the others by `decode(...)`."""

from workers.decoders import dense, mask_rcnn, yolov8_seg

DECODERS = {
    "class_ids": dense,
    "argmax": dense,
    "probability": dense,
    "logit": dense,
    "yolov8_seg": yolov8_seg,
    "mask_rcnn": mask_rcnn,
}
