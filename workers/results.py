"""What a model's decoder gives the pipeline: results at the photo's original size.

Rendering never has to know the network's input size: every mask, map and box here is in
the original photo's pixels (EXIF orientation applied).
"""

from dataclasses import dataclass, field

import numpy as np

# Instance models: a job's default score threshold, and the floor below which nothing is
# an object (a threshold of 0 would otherwise keep every candidate, however empty).
DEFAULT_SCORE_THRESHOLD = 0.5
MIN_SCORE = 0.01


@dataclass
class SemanticResult:
    class_map: np.ndarray  # (H, W) uint8, class id per pixel


@dataclass
class MatteResult:
    alpha: np.ndarray  # (H, W) float32, the foreground probability per pixel, 0..1


@dataclass
class Instance:
    class_id: int
    score: float
    box: tuple  # (x0, y0, x1, y1) in original pixels, x1/y1 exclusive
    mask: np.ndarray  # bool (y1 - y0, x1 - x0): the mask inside its box

    def full_mask(self, height, width):
        """The mask pasted into a zero (H, W) uint8 canvas."""
        canvas = np.zeros((height, width), dtype=np.uint8)
        x0, y0, x1, y1 = self.box
        canvas[y0:y1, x0:x1] = self.mask
        return canvas


@dataclass
class InstanceResult:
    instances: list = field(default_factory=list)  # sorted by score, highest first
