"""Dynamic batching: the photos of concurrent jobs of one model run as one batch.

A batching worker runs several jobs at once on threads (`--pool threads`), each claimed,
decoded, rendered and recorded on its own as in any worker. Only the runtime call is
shared: each job's fitted tensor goes to its model's Batcher, whose one thread takes what
has arrived within BATCH_WAIT_MS of the first (at most BATCH_MAX), runs it as one batch
and hands each job its own slice of the outputs. The runtime is only ever used from that
thread, so a runtime that is not thread-safe (LiteRT's interpreter) is safe here, and a
model that takes no batch still gets a Batcher of one.
"""

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

log = logging.getLogger(__name__)


class InferenceTimedOut(SoftTimeLimitExceeded):
    """A job's photo waited longer than its time limit: the job fails with `timeout`, as
    one over Celery's soft limit does (a threads pool enforces no limit of its own)."""


class Batcher:
    def __init__(self, run, max_size, wait_seconds, timeout_seconds, name="model"):
        """`run(batch) -> [outputs, each with the batch first]`: the runtime's own run."""
        self._run = run
        self.name = name
        self.max_size = max_size
        self.wait_seconds = wait_seconds
        self.timeout_seconds = timeout_seconds
        self._requests = queue.Queue()
        self._running_since = None  # when the runtime call under way began (monotonic)
        self._thread = threading.Thread(target=self._serve, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def run(self, tensor):
        """One photo's tensor (a batch of 1) in; its outputs (each a batch of 1) out.

        Raises InferenceTimedOut past timeout_seconds: a thread cannot be stopped, so the
        job fails with `timeout` instead of holding its worker thread for ever.
        """
        future = Future()
        self._requests.put((tensor, future))
        try:
            return future.result(timeout=self.timeout_seconds)
        except FutureTimeout:
            # Still queued: it will not be run for nobody (a backlog must not grow on photos
            # whose jobs have failed). Already running: it finishes and its answer is dropped.
            future.cancel()
            raise InferenceTimedOut(f"inference took longer than {self.timeout_seconds} s") from None

    def stuck(self):
        """Whether the runtime call under way has run longer than any photo may wait for
        it: every job of this model times out until the process is restarted (a thread
        cannot be stopped; workers/watchdog.py restarts it)."""
        started = self._running_since
        return started is not None and time.monotonic() - started > self.timeout_seconds

    def _serve(self):
        while True:
            batch = [self._requests.get()]  # wait for the first, however long
            deadline = time.monotonic() + self.wait_seconds
            while len(batch) < self.max_size:
                left = deadline - time.monotonic()
                try:
                    batch.append(
                        self._requests.get(timeout=left) if left > 0 else self._requests.get_nowait()
                    )
                except queue.Empty:
                    break
            # Those whose jobs gave up waiting (canceled) are dropped; the rest can no longer be.
            batch = [(tensor, future) for tensor, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                self._settle(batch)
            finally:
                self._running_since = None

    def _settle(self, batch):
        """Each future of `batch` given its photo's outputs, or what its run raised."""
        try:
            answers = self._answers([tensor for tensor, _ in batch])
        except Exception as exc:
            # The serving thread lives on whatever happens: every later job needs it.
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # A batch that fails (a GPU out of memory, one photo the runtime refuses) runs
            # again photo by photo: only a photo that fails alone fails its job.
            log.warning("a batch of %d photos failed (%r): running each alone", len(batch), exc)
            for tensor, future in batch:
                self._run_alone(tensor, future)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            future.set_result(answer)

    def _run_alone(self, tensor, future):
        try:
            future.set_result(self._answers([tensor])[0])
        except Exception as exc:
            future.set_exception(exc)

    def _answers(self, tensors):
        """Each photo's outputs. A photo alone gets the runtime's outputs as they are (Mask
        R-CNN's detect() answers a dict, not an array with a batch dimension)."""
        self._running_since = time.monotonic()  # each runtime call: what stuck() times
        if len(tensors) == 1:
            return [self._run(tensors[0])]
        outputs = self._run(np.concatenate(tensors))
        log.info("ran a batch of %d photos", len(tensors))
        return [[output[position : position + 1] for output in outputs] for position in range(len(tensors))]
