"""A model's spec: the `model.toml` in its folder, read and checked field by field.

The spec is all the web process needs to know about a model (task, labels, queue, licence)
and all a worker needs to run it (runtime, weights, how to fit a photo to the input, how
to decode the output). Pure data: no inference runtime, no Django. A worker announces the
specs it serves as dicts (`to_dict`), and the web process reads them back with
`parse_spec`, so both sides share one definition. See docs/custom-models.md.
"""

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPEC_FILE = "model.toml"

SEMANTIC = "semantic"
INSTANCE = "instance"
MATTE = "matte"
TASKS = (SEMANTIC, INSTANCE, MATTE)  # what a model does
# What a job does: a model's own output, or a cutout (the background removed, blurred or
# replaced), which any of the three kinds of model can drive.
CUTOUT = "cutout"
JOB_TASKS = (*TASKS, CUTOUT)

# runtime -> the weight file's suffix it loads
RUNTIMES = {"litert": ".tflite", "onnx": ".onnx", "pixellib": ".h5"}
PIXELLIB_ARCHITECTURES = ("deeplabv3plus_xception", "mask_rcnn")

# decoder -> the task whose result it makes. Dense decoders give one value per pixel.
DECODERS = {
    "class_ids": SEMANTIC,  # the output holds class ids already (an ArgMax in the graph)
    "argmax": SEMANTIC,  # the output holds per-class scores: the class is their argmax
    "probability": MATTE,  # the output holds the foreground probability, 0..1
    "logit": MATTE,  # the output holds the foreground logit: sigmoid gives the probability
    "yolov8_seg": INSTANCE,  # Ultralytics' boxes, scores and mask coefficients, plus prototypes
    "mask_rcnn": INSTANCE,  # pixellib's detect(): rois, class ids, scores, masks
}
DENSE_DECODERS = ("class_ids", "argmax", "probability", "logit")

# How a photo is fitted to the network's input:
# - letterbox: scaled to fit whole, keeping its aspect; the rest padded;
# - stretch: scaled to the input size, aspect ignored (what MediaPipe's models expect);
# - tiles: letterbox, but a photo longer than 1.5 times its width (or the reverse) runs as
#   overlapping square tiles, so that small objects in a panorama survive;
# - native: the runtime takes the photo as it is and fits it itself (pixellib's Mask R-CNN).
FITS = ("letterbox", "stretch", "tiles", "native")
ANCHORS = ("top-left", "centre")
DTYPES = ("uint8", "float32")
CHANNELS = ("rgb", "bgr")
LAYOUTS = ("nhwc", "nchw")


class SpecError(Exception):
    """A spec that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Weights:
    file: str
    sha256: str | None  # None only where no checksum is published (checked layer by layer)
    size: int | None
    url: str
    licence: str
    # Not installed by `fetch_models` unless asked (`--all`): large, and the service runs without.
    optional: bool = False


@dataclass(frozen=True)
class InputSpec:
    width: int
    height: int
    dtype: str = "float32"
    channels: str = "rgb"
    # The value range 0..255 pixels are scaled to: (0, 255) leaves them as they are.
    range: tuple = (0.0, 255.0)
    fit: str = "letterbox"
    # The padding's pixel value, before scaling (Ultralytics pads with 114, DeepLab with 128).
    pad: float = 0.0
    anchor: str = "top-left"
    layout: str = "nhwc"

    def shape(self):
        """The input tensor's shape for one image, as the spec declares it."""
        if self.layout == "nchw":
            return [1, 3, self.height, self.width]
        return [1, self.height, self.width, 3]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    description: str
    runtime: str
    queue: str
    labels: tuple
    weights: Weights
    input: InputSpec
    decoder: str
    # pixellib only: which of its Keras networks to build.
    architecture: str | None = None
    # Of the models a live worker serves, a job naming none gets the task's highest.
    priority: int = 0
    # Where the spec was read from; None for a spec announced by a worker.
    folder: Path | None = field(default=None, compare=False)

    @property
    def licence(self):
        return self.weights.licence

    def weights_path(self):
        return self.folder / self.weights.file

    def to_dict(self):
        """The spec in its model.toml's shape, labels inline: what a worker announces, and
        what parse_spec reads back into an equal spec."""
        data = asdict(self)
        for derived in ("folder", "input", "decoder", "architecture"):
            data.pop(derived)
        if self.architecture:
            data["architecture"] = self.architecture
        data["labels"] = list(self.labels)
        data["input"] = asdict(self.input)
        data["input"]["size"] = [data["input"].pop("width"), data["input"].pop("height")]
        data["input"]["range"] = list(self.input.range)
        data["output"] = {"decoder": self.decoder}
        data["weights"] = {key: value for key, value in data["weights"].items() if value is not None}
        return data


def load_spec(folder):
    """The spec in `folder`/model.toml; raises SpecError naming the file and the field."""
    folder = Path(folder)
    path = folder / SPEC_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file; every model folder holds its {SPEC_FILE}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", folder.name)
    if data["name"] != folder.name:
        raise SpecError(
            f"{path}: name is {data['name']!r}, but the folder is {folder.name!r}; they must match"
        )
    if isinstance(data.get("labels"), str):
        data["labels"] = _read_labels(folder / data["labels"], path)
    return parse_spec(data, where=str(path), folder=folder)


def parse_spec(data, where, folder=None):
    """A ModelSpec from plain data (a model.toml's tables, or a worker's announcement)."""
    spec = _Reader(data, where)
    task = spec.choice("task", TASKS)
    runtime = spec.choice("runtime", tuple(RUNTIMES))
    weights = _Reader(spec.table("weights"), where, "weights.")
    fitted = _Reader(spec.table("input"), where, "input.")
    output = _Reader(spec.table("output"), where, "output.")
    decoder = output.choice("decoder", tuple(DECODERS))
    if DECODERS[decoder] != task:
        raise SpecError(f"{where}: output.decoder {decoder!r} makes {DECODERS[decoder]} results, not {task}")
    weight_file = weights.text("file")
    if not weight_file.endswith(RUNTIMES[runtime]) or "/" in weight_file or weight_file.startswith("."):
        raise SpecError(
            f"{where}: weights.file is {weight_file!r}; the {runtime} runtime loads a {RUNTIMES[runtime]} "
            "file in the model's own folder"
        )
    architecture = spec.choice("architecture", PIXELLIB_ARCHITECTURES, None)
    if (runtime == "pixellib") != (architecture is not None):
        raise SpecError(
            f"{where}: architecture names pixellib's network, and only the pixellib runtime takes one"
        )

    size = fitted.pair("size")
    value_range = fitted.pair("range", (0, 255), number=float)
    dtype = fitted.choice("dtype", DTYPES, "float32")
    if dtype == "uint8" and tuple(value_range) != (0.0, 255.0):
        raise SpecError(f"{where}: input.range is {list(value_range)}, but a uint8 input takes [0, 255]")
    fit = fitted.choice("fit", FITS, "letterbox")
    if fit == "native" and runtime != "pixellib":
        raise SpecError(f"{where}: input.fit 'native' means the runtime fits the photo itself: pixellib only")
    if fit == "tiles" and decoder not in DENSE_DECODERS:
        raise SpecError(f"{where}: input.fit 'tiles' needs a per-pixel decoder ({', '.join(DENSE_DECODERS)})")

    labels = spec.labels()
    sha256 = weights.text("sha256", None)
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256)):
        raise SpecError(f"{where}: weights.sha256 is {sha256!r}, not 64 lowercase hex digits")
    return ModelSpec(
        name=spec.name(),
        task=task,
        description=spec.text("description", ""),
        runtime=runtime,
        queue=spec.text("queue", "light"),
        labels=labels,
        weights=Weights(
            file=weight_file,
            sha256=sha256,
            size=weights.integer("size", None),
            url=weights.text("url", ""),
            licence=weights.text("licence"),
            optional=weights.flag("optional", False),
        ),
        input=InputSpec(
            width=size[0],
            height=size[1],
            dtype=dtype,
            channels=fitted.choice("channels", CHANNELS, "rgb"),
            range=tuple(value_range),
            fit=fit,
            pad=fitted.number("pad", 0.0),
            anchor=fitted.choice("anchor", ANCHORS, "top-left"),
            layout=fitted.choice("layout", LAYOUTS, "nhwc"),
        ),
        decoder=decoder,
        architecture=architecture,
        priority=spec.integer("priority", 0),
        folder=folder,
    )


_REQUIRED = object()


class _Reader:
    """Typed reads of one TOML table, each failure naming its field and what it found."""

    def __init__(self, table, where, prefix=""):
        self.data, self.where, self.prefix = table, where, prefix

    def _get(self, key, default):
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise SpecError(f"{self.where}: {self.prefix}{key} is missing")
        return default

    def _wrong(self, key, value, expected):
        return SpecError(f"{self.where}: {self.prefix}{key} is {value!r}; expected {expected}")

    def table(self, key, default=_REQUIRED):
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._wrong(key, value, "a table")
        return value

    def text(self, key, default=_REQUIRED):
        value = self._get(key, default)
        if value is not None and (not isinstance(value, str) or (default is _REQUIRED and not value)):
            raise self._wrong(key, value, "a non-empty string")
        return value

    def choice(self, key, choices, default=_REQUIRED):
        value = self._get(key, default)
        if value is not None and value not in choices:
            raise self._wrong(key, value, f"one of {', '.join(choices)}")
        return value

    def integer(self, key, default=_REQUIRED):
        value = self._get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise self._wrong(key, value, "a whole number, 0 or more")
        return value

    def number(self, key, default=_REQUIRED):
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._wrong(key, value, "a number")
        return float(value)

    def flag(self, key, default=_REQUIRED):
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, value, "true or false")
        return value

    def pair(self, key, default=_REQUIRED, number=int):
        value = self._get(key, default)
        kinds = (int, float) if number is float else (int,)
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, kinds) for v in value)
            or (number is int and min(value) < 1)
        ):
            what = "[low, high]" if number is float else "[width, height], each 1 or more"
            raise self._wrong(key, value, what)
        return tuple(number(v) for v in value)

    def name(self):
        value = self.text("name")
        if not value.replace("_", "").replace("-", "").isalnum() or not value.isascii() or len(value) > 64:
            raise self._wrong("name", value, "letters, digits, - and _ (at most 64)")
        return value

    def labels(self):
        value = self._get("labels", _REQUIRED)
        if (
            not isinstance(value, list)
            or not value
            or any(not isinstance(v, str) or not v for v in value)
            or len(set(value)) != len(value)
        ):
            raise self._wrong("labels", value, "a list of distinct names (or a labels file in the folder)")
        return tuple(value)


def _read_labels(path, where):
    """One label a line, the line's index (blank lines skipped) being the class id."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SpecError(f"{where}: labels names {path.name}, which cannot be read: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip()]
