"""ONNX Runtime, for `.onnx` files, on the CPU (or CUDA where onnxruntime-gpu has it)."""

import numpy as np

from workers.runtimes import RuntimeLoadError, inference_threads, single_input

# ONNX's element types as numpy names; a model here takes uint8 or float32.
_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16"}


class Runtime:
    def __init__(self, spec):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = inference_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(spec.weights_path()), options, providers=onnxruntime.get_available_providers()
            )
        except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            raise RuntimeLoadError(
                f"{spec.weights.file} is not an ONNX model ONNX Runtime can run: {exc}"
            ) from None
        first = single_input(self.session.get_inputs(), spec)
        self.input_name = first.name
        self.input_shape = [_dimension(d) for d in first.shape]
        self.input_dtype = _TYPES.get(first.type, first.type)
        self.output_shapes = [[_dimension(d) for d in output.shape] for output in self.session.get_outputs()]

    def batches(self):
        """Whether the graph's first dimension is left open (`batch`), so it takes several photos."""
        return self.input_shape[0] is None

    def run(self, tensor):
        return self.session.run(None, {self.input_name: tensor})


def _dimension(value):
    """A fixed dimension as an int; a symbolic or open one ('batch', None) as None."""
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else None
