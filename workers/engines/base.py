"""The engine interface: one class per model, loaded once per worker process.

`infer(rgb)` takes an (H, W, 3) uint8 array at the image's original size and returns
results at that same size, so rendering never has to know the network's input size.
`infer_batch(rgbs)` does the same for a list of images, one result each.
"""

from dataclasses import dataclass, field

import numpy as np

# Instance engines: a job's default score threshold, and the floor below which nothing is
# an object (a threshold of 0 would otherwise keep every candidate, however empty).
DEFAULT_SCORE_THRESHOLD = 0.5
MIN_SCORE = 0.01


@dataclass
class SemanticResult:
    class_map: np.ndarray  # (H, W) uint8, class id per pixel, original size


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


class Engine:
    """Subclasses set nothing at class level; the catalog's ModelSpec describes them."""

    def __init__(self, spec):
        self.spec = spec

    def load(self):
        """Read weights and build the runtime. Called once per worker process."""
        raise NotImplementedError

    def infer(self, rgb, options):
        """Run the model on one RGB image; `options` are the job's validated options."""
        raise NotImplementedError

    def infer_batch(self, rgbs, options):
        """Run the model on several RGB images (sizes may differ): one result each, in order.

        This default runs them one by one (the heavy Keras engines keep it); an engine whose
        runtime takes several images in one pass overrides it.
        """
        return [self.infer(rgb, options) for rgb in rgbs]

    def warm_up(self):
        """One inference on a blank image, so the first real job pays no lazy set-up."""
        width, height = self.spec.input_size
        self.infer(np.zeros((height, width, 3), dtype=np.uint8), {})
