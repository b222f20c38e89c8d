"""pixellib's Keras networks, for the `.h5` files PixelLib's users download.

`architecture = "deeplabv3plus_xception"` is a tensor-in, tensor-out network like any
other: the spec fits the photo and the argmax decoder reads its logits. `mask_rcnn` fits
the photo itself (`input.fit = "native"`): pixellib's detect() resizes, runs the network
and maps boxes and full-size masks back, and its answer is what the mask_rcnn decoder reads.
"""

import contextlib

import numpy as np

from workers.results import MIN_SCORE
from workers.runtimes import RuntimeLoadError


class Runtime:
    def __init__(self, spec):
        # Imported here: it pulls in TensorFlow and switches the process to graph mode.
        from workers.runtimes import pixellib_compat
        from workers.runtimes.keras_weights import WeightFileError, check_weight_file

        path = str(spec.weights_path())
        try:
            if spec.architecture == "mask_rcnn":
                self.detector = pixellib_compat.mask_rcnn_coco(min_confidence=MIN_SCORE)
                self.model = self.detector.keras_model
                check_weight_file(self.model, path)
                # Not pixellib's MaskRCNN.load_weights: it goes through TensorFlow's private
                # Keras loader, which on TF 2.21 silently skips the nested `rpn_model`, leaving
                # the region proposal network random. tf_keras' by-name loading reads it all.
                self.model.load_weights(path, by_name=True)
            else:
                self.detector = None
                self.model = pixellib_compat.deeplab_xception_pascal()
                check_weight_file(self.model, path)
                self.model.load_weights(path)
        except WeightFileError as exc:
            raise RuntimeLoadError(str(exc)) from None
        if self.detector is None:
            self.input_shape = [None if d is None else int(d) for d in self.model.input_shape]
            self.output_shapes = [[None if d is None else int(d) for d in self.model.output_shape]]
        else:
            self.input_shape, self.output_shapes = None, None  # detect() takes any photo
        self.input_dtype = "float32"
        self._context = _graph_context()

    def batches(self):
        """DeepLab's Keras network takes a batch; Mask R-CNN's detect() is given one photo."""
        return self.detector is None

    def run(self, tensor):
        with self._context():
            if self.detector is not None:  # the photo itself, (H, W, 3) uint8
                return [self.detector.detect([np.ascontiguousarray(tensor)], verbose=0)[0]]
            return [self.model.predict(tensor, verbose=0)]


def _graph_context():
    """What run() needs around it to work from any thread (a batching worker's Batcher).

    In graph mode (pixellib's Mask R-CNN turns eager execution off for the whole process)
    the default graph and Keras' session are per thread: another thread's predict() fails
    with "Tensor ... is not an element of this graph". The loading thread's are kept here.
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        return contextlib.nullcontext
    graph, session = tf.compat.v1.get_default_graph(), tf.compat.v1.keras.backend.get_session()

    @contextlib.contextmanager
    def loaded_graph():
        with graph.as_default(), session.as_default():
            tf.compat.v1.keras.backend.set_session(session)
            yield

    return loaded_graph
