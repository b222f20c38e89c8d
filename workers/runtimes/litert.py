"""LiteRT, TensorFlow's own TFLite runtime, for `.tflite` files."""

import numpy as np

from workers.runtimes import RuntimeLoadError, inference_threads, single_input


class Runtime:
    def __init__(self, spec):
        # Imported here: only a worker that serves a .tflite model needs it.
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(
                model_path=str(spec.weights_path()), num_threads=inference_threads()
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RuntimeLoadError(
                f"{spec.weights.file} is not a TFLite model LiteRT can run: {exc}"
            ) from None
        first = single_input(self.interpreter.get_input_details(), spec)
        self.input_index = first["index"]
        self.input_shape = [int(d) for d in first["shape"]]
        self.input_dtype = np.dtype(first["dtype"]).name
        self.outputs = self.interpreter.get_output_details()
        self.output_shapes = [[int(d) for d in output["shape"]] for output in self.outputs]

    def run(self, tensor):
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        # Copies: the interpreter reuses its buffers on the next invoke().
        return [self.interpreter.get_tensor(output["index"]) for output in self.outputs]
