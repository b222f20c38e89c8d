"""What models exist: names, tasks, labels, weight files. Pure data, safe in the web process.

The engine classes (which import the inference runtime) are named by dotted path and only
imported by workers.registry inside a worker process.
"""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from workers.labels import COCO_80, PASCAL_VOC

SEMANTIC = "semantic"
INSTANCE = "instance"
TASKS = (SEMANTIC, INSTANCE)


@dataclass(frozen=True)
class WeightFile:
    filename: str
    sha256: str | None  # None where no published checksum exists: checked by structure
    size: int | None  # bytes, where known
    url: str
    licence: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    engine: str  # dotted path of the engine class
    labels: tuple
    input_size: tuple  # (width, height) the network sees
    weights: WeightFile
    queue: str  # Celery queue its jobs are routed to
    description: str
    # Optional models' weights are not installed by default (`fetch_models --all` does):
    # they are large, and the service runs without them.
    optional: bool = False

    def weights_path(self):
        return Path(settings.SEGMENT_MODELS_DIR) / self.weights.filename

    def weights_status(self):
        """(present, detail): whether the weight file is installed, and if not, why."""
        path = self.weights_path()
        if not path.is_file():
            return False, f"{path} is missing: run `python manage.py fetch_models` (from {self.weights.url})"
        if self.weights.size is not None and path.stat().st_size != self.weights.size:
            return False, f"{path} has {path.stat().st_size} bytes, expected {self.weights.size}"
        return True, None


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="deeplabv3_mnv2_pascal",
            task=SEMANTIC,
            engine="workers.engines.deeplab_tflite.DeepLabTFLiteEngine",
            labels=PASCAL_VOC,
            input_size=(513, 513),
            weights=WeightFile(
                filename="deeplabv3_mnv2_pascal_quant.tflite",
                sha256="350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398",
                size=2_193_224,
                url="https://github.com/google-coral/test_data/raw/"
                "104342d2d3480b3e66203073dac24f4e2dbb4c41/deeplabv3_mnv2_pascal_quant.tflite",
                licence="Apache-2.0",
            ),
            queue="light",
            description="DeepLabV3, MobileNetV2, PASCAL VOC 2012, int8 TFLite",
        ),
        ModelSpec(
            name="yolov8n_seg_coco",
            task=INSTANCE,
            engine="workers.engines.yolov8_seg.YoloV8SegEngine",
            labels=COCO_80,
            input_size=(640, 640),
            weights=WeightFile(
                filename="yolov8n-seg_int8.tflite",
                sha256="831c989a2012e09783ec3a28438ca3e9523d5bed770fd4f76c107227b0a750f0",
                size=3_597_584,
                url="https://github.com/weilly0912/ATU_Model_Zoo/raw/"
                "16742989779cd175d708afd02c3c748a86494027/Segmentation/yolov8n_seg/"
                "yolov8n-seg_int8.tflite",
                licence="AGPL-3.0 (Ultralytics)",
            ),
            queue="light",
            description="YOLOv8n-seg, COCO 80 classes, int8 TFLite (Ultralytics export)",
        ),
        # The heavy models: pixellib's Keras architectures and the HDF5 files its users
        # download from PixelLib's releases. Each has a queue of its own so that light
        # jobs never wait behind them.
        ModelSpec(
            name="deeplabv3plus_xception_pascal",
            task=SEMANTIC,
            engine="workers.engines.deeplab_xception.DeepLabXceptionEngine",
            labels=PASCAL_VOC,
            input_size=(512, 512),
            weights=WeightFile(
                filename="deeplabv3_xception_tf_dim_ordering_tf_kernels.h5",
                sha256=None,
                size=None,  # about 166 MB; checked layer by layer when a worker loads it
                url="https://github.com/ayoolaolafenwa/PixelLib/releases/download/1.1/"
                "deeplabv3_xception_tf_dim_ordering_tf_kernels.h5",
                licence="MIT (keras-deeplab-v3-plus port of Google's DeepLab weights)",
            ),
            queue="deeplabv3plus_xception_pascal",
            description="DeepLabV3+, Xception-65, PASCAL VOC 2012 (pixellib, Keras HDF5)",
            optional=True,
        ),
        ModelSpec(
            name="mask_rcnn_coco",
            task=INSTANCE,
            engine="workers.engines.mask_rcnn.MaskRCNNEngine",
            labels=COCO_80,
            input_size=(1024, 1024),
            weights=WeightFile(
                filename="mask_rcnn_coco.h5",
                sha256=None,
                size=None,  # the published file has 257,557,808 bytes; checked layer by layer
                url="https://github.com/ayoolaolafenwa/PixelLib/releases/download/0.2/mask_rcnn_coco.h5",
                licence="MIT (matterport Mask_RCNN)",
            ),
            queue="mask_rcnn_coco",
            description="Mask R-CNN, ResNet-101 FPN, COCO 80 classes (pixellib, Keras HDF5)",
            optional=True,
        ),
    )
}

# Per task: the heavy model when its weights are installed, else the light one.
DEFAULT_CHOICES = {
    SEMANTIC: ("deeplabv3plus_xception_pascal", "deeplabv3_mnv2_pascal"),
    INSTANCE: ("mask_rcnn_coco", "yolov8n_seg_coco"),
}


def default_models():
    """The model a job of each task gets when it names none."""
    return {
        task: next((name for name in choices if MODELS[name].weights_status()[0]), choices[-1])
        for task, choices in DEFAULT_CHOICES.items()
    }


def queues_for(names):
    """The Celery queues a worker serving these models must consume."""
    return sorted({MODELS[name].queue for name in names})


def required_model_names():
    return [name for name, spec in MODELS.items() if not spec.optional]


def get_spec(name):
    return MODELS[name]


def worker_model_names(queues):
    """Models a worker consuming `queues` serves.

    WORKER_MODELS when set; otherwise every model routed to one of those queues whose
    weights are present (so `--queues light` loads the light models).
    """
    if settings.WORKER_MODELS:
        return list(settings.WORKER_MODELS)
    return installed_models_of(queues)


def installed_models_of(queues):
    """Models routed to any of `queues` whose weights are installed."""
    return [name for name, spec in MODELS.items() if spec.queue in queues and spec.weights_status()[0]]


def model_problems(names):
    """(name, problem) for each named model that is unknown or has no usable weights."""
    for name in names:
        if name not in MODELS:
            yield name, f"unknown model; known: {', '.join(MODELS)}"
            continue
        present, detail = MODELS[name].weights_status()
        if not present:
            yield name, detail
