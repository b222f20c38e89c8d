"""Make pixellib 0.7.1 importable on TensorFlow 2.21 / Python 3.11, in one place.

pixellib was written for TensorFlow 2.4-2.5. What breaks, and what this module does:
- Keras 3 replaced tf.keras in TF 2.16; pixellib needs Keras 2, which lives on as the
  `tf-keras` package and is selected by TF_USE_LEGACY_KERAS=1 *before* TensorFlow is
  first imported.
- pixellib.semantic imports from `tensorflow.python.keras`, a private copy of Keras that
  in current TF lacks layers such as BatchNormalization: those imports are redirected to
  `tf_keras` by aliasing the modules before pixellib is imported.
- importing pixellib.instance disables eager execution for the whole process, and a model
  built before that (in eager mode) is unusable after it. So this module imports it first,
  always: every heavy model in a process is built in graph mode, whichever loads first.
Import pixellib only through this module.
"""

import importlib
import os
import sys

# Must precede the first `import tensorflow` anywhere in the process.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tf_keras  # noqa: E402

_ALIASES = {
    "tensorflow.python.keras": "tf_keras",
    "tensorflow.python.keras.models": "tf_keras.models",
    "tensorflow.python.keras.layers": "tf_keras.layers",
    "tensorflow.python.keras.utils": "tf_keras.utils",
    "tensorflow.python.keras.utils.layer_utils": "tf_keras.src.utils.layer_utils",
}
for alias, target in _ALIASES.items():
    sys.modules[alias] = importlib.import_module(target)

import pixellib.instance  # noqa: E402,F401  (switches the process to graph mode, see above)


def deeplab_xception_pascal():
    """pixellib's DeepLabV3+ Xception for PASCAL VOC, built without weights.

    Built directly: pixellib's semantic_segmentation() would also build an ADE20k model
    of 41M parameters that we never use.
    """
    from pixellib.semantic.deeplab import Deeplab_xcep_pascal

    return Deeplab_xcep_pascal()


def mask_rcnn_coco(min_confidence):
    """pixellib's Mask R-CNN (ResNet-101, COCO) in inference mode, built without weights.

    The same network and config that pixellib's instance_segmentation().load_model builds,
    with the detection threshold lowered so that each job's own threshold applies.
    """
    from pixellib.instance import coco_config
    from pixellib.instance.mask_rcnn import MaskRCNN

    coco_config.DETECTION_MIN_CONFIDENCE = min_confidence
    return MaskRCNN(mode="inference", model_dir=os.getcwd(), config=coco_config)


__all__ = ["tf_keras", "deeplab_xception_pascal", "mask_rcnn_coco"]
