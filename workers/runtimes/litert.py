"""LiteRT, TensorFlow's own TFLite runtime, for `.tflite` files."""

import numpy as np

from workers.runtimes import RuntimeLoadError, inference_threads, single_input


class Runtime:
    def __init__(self, spec):
        self.spec = spec
        try:
            self.interpreter = self._interpreter()
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
        # Batch size -> an interpreter resized to it (made on first use; batch_sizes() says
        # which are possible). Each has its own tensor arena, so only powers of two are made.
        self._batched = {1: self.interpreter}

    def _interpreter(self, batch=1):
        # Imported here: only a worker that serves a .tflite model needs it.
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.spec.weights_path()), num_threads=inference_threads())
        if batch > 1:
            first = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(first["index"], [batch, *first["shape"][1:]])
        interpreter.allocate_tensors()
        return interpreter

    def batches(self):
        """Whether the graph takes more than one photo at once (most do; some bake in 1)."""
        try:
            self._sized(2)
        except (ValueError, RuntimeError):
            return False
        return True

    def run(self, tensor):
        """Outputs for a batch of any size: run as batches of powers of two (3 = 2 + 1)."""
        count, first, parts = len(tensor), 0, []
        while first < count:
            size = 1 << ((count - first).bit_length() - 1)
            parts.append(self._invoke(self._sized(size), tensor[first : first + size]))
            first += size
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]

    def _sized(self, batch):
        if batch not in self._batched:
            self._batched[batch] = self._interpreter(batch)
        return self._batched[batch]

    def _invoke(self, interpreter, tensor):
        interpreter.set_tensor(self.input_index, tensor)
        interpreter.invoke()
        # Copies: the interpreter reuses its buffers on the next invoke().
        return [interpreter.get_tensor(output["index"]) for output in self.outputs]
