"""workers/batching.py: concurrent photos of one model run as one batch, each answered alone."""

import threading
import time

import numpy as np
import pytest

from core.repository import local_specs
from workers.batching import Batcher, InferenceTimedOut
from workers.fitting import fit
from workers.runtimes.litert import Runtime as LiteRT


class Recorder:
    """A runtime's run(): doubles each photo and notes each batch's size."""

    def __init__(self, delay=0.0):
        self.sizes, self.delay = [], delay

    def __call__(self, batch):
        self.sizes.append(len(batch))
        time.sleep(self.delay)
        return [batch * 2, batch.sum(axis=(1, 2))]


def photo(value):
    return np.full((1, 4, 4), value, dtype=np.float32)


def run_together(batcher, count):
    """`count` threads, each running one photo at once; their answers (or what each raised)
    by photo value."""
    answers, start = {}, threading.Barrier(count)

    def one(value):
        start.wait()
        try:
            answers[value] = batcher.run(photo(value))
        except Exception as exc:
            answers[value] = exc

    threads = [threading.Thread(target=one, args=(value,)) for value in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_photos_that_arrive_together_run_as_one_batch_and_each_gets_its_own_outputs():
    run = Recorder()
    answers = run_together(Batcher(run, max_size=4, wait_seconds=0.5, timeout_seconds=30), 4)
    assert run.sizes == [4]
    for value, (doubled, total) in answers.items():
        assert doubled.shape == (1, 4, 4) and (doubled == 2 * value).all()
        assert total.tolist() == [16 * value]


def test_a_batch_never_holds_more_than_max_size_photos():
    run = Recorder(delay=0.05)
    answers = run_together(Batcher(run, max_size=3, wait_seconds=0.2, timeout_seconds=30), 10)
    assert len(answers) == 10 and sum(run.sizes) == 10
    assert max(run.sizes) == 3


def test_a_photo_alone_waits_only_batch_wait_before_it_runs():
    run = Recorder()
    batcher = Batcher(run, max_size=8, wait_seconds=0.05, timeout_seconds=30)
    started = time.monotonic()
    batcher.run(photo(1))
    assert time.monotonic() - started < 1.0 and run.sizes == [1]


def test_a_failing_batch_runs_again_photo_by_photo_and_only_the_photo_that_fails_alone_fails():
    sizes = []

    def run(batch):
        sizes.append(len(batch))
        if (batch == 1).any():  # the runtime refuses photo 1, and any batch holding it
            raise RuntimeError("the runtime broke")
        return [batch]

    batcher = Batcher(run, max_size=2, wait_seconds=0.5, timeout_seconds=30)
    answers = run_together(batcher, 2)
    assert sizes == [2, 1, 1]
    assert (answers[0][0] == 0).all()
    assert str(answers[1]) == "the runtime broke"
    assert (batcher.run(photo(3))[0] == 3).all()  # the thread lives on


def test_a_photo_that_fails_alone_fails_once_and_the_thread_lives_on():
    sizes = []

    def run(batch):
        sizes.append(len(batch))
        if len(sizes) == 1:
            raise RuntimeError("the runtime broke")
        return [batch]

    batcher = Batcher(run, max_size=1, wait_seconds=0.0, timeout_seconds=30)
    with pytest.raises(RuntimeError, match="the runtime broke"):
        batcher.run(photo(1))
    assert (batcher.run(photo(2))[0] == 2).all()
    assert sizes == [1, 1]


def test_a_photo_that_waits_past_its_time_limit_times_out():
    release = threading.Event()
    batcher = Batcher(lambda batch: release.wait(30) and [batch], 1, 0.0, timeout_seconds=0.2)
    with pytest.raises(InferenceTimedOut):
        batcher.run(photo(1))
    release.set()


def test_litert_runs_a_batch_of_three_as_two_and_one_with_the_same_outputs(engines):
    runtime = LiteRT(local_specs()["deeplabv3_mnv2_pascal"])
    rng = np.random.default_rng(3)
    photos = [(rng.random((300, 400, 3)) * 255).astype(np.uint8) for _ in range(3)]
    tensors = np.concatenate([fit(rgb, runtime.spec.input)[0] for rgb in photos])
    assert runtime.batches()
    together = runtime.run(tensors)[0]
    alone = np.concatenate([runtime.run(tensors[i : i + 1])[0] for i in range(3)])
    assert together.shape[0] == 3
    assert (together.argmax(-1) == alone.argmax(-1)).mean() > 0.999
    assert sorted(runtime._batched) == [1, 2]  # powers of two only: 3 ran as 2 + 1


def test_a_photo_alone_gets_the_runtimes_outputs_as_they_are():
    # Mask R-CNN's detect() answers a dict per photo: nothing to slice, and nothing may kill
    # the batcher's thread (every later job of the model would wait for ever).
    batcher = Batcher(lambda photo: [{"rois": photo}], 1, 0.0, timeout_seconds=30)
    assert batcher.run(photo(1))[0]["rois"].shape == (1, 4, 4)
    assert batcher.run(photo(2))[0]["rois"].shape == (1, 4, 4)


def test_outputs_that_cannot_be_split_are_taken_photo_by_photo():
    def run(batch):
        return [{"not": "sliceable"}] if len(batch) > 1 else [batch]

    batcher = Batcher(run, max_size=2, wait_seconds=0.5, timeout_seconds=30)
    answers = run_together(batcher, 2)
    assert all((answers[value][0] == value).all() for value in (0, 1)), answers
    assert (batcher.run(photo(5))[0] == 5).all()


def test_a_photo_whose_job_gave_up_waiting_is_not_run():
    release, calls = threading.Event(), []

    def run(batch):
        calls.append(float(batch[0, 0, 0]))
        release.wait(30)
        return [batch]

    batcher = Batcher(run, max_size=1, wait_seconds=0.0, timeout_seconds=0.3)
    first = threading.Thread(target=_quiet, args=(batcher, photo(1)))
    first.start()
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(InferenceTimedOut):
        batcher.run(photo(2))  # queued behind the first, which holds the runtime
    release.set()
    first.join(timeout=30)
    assert (batcher.run(photo(3))[0] == 3).all()
    assert calls == [1.0, 3.0]  # photo 2's job had failed: nobody was left to answer


def _quiet(batcher, tensor):
    try:
        batcher.run(tensor)
    except InferenceTimedOut:
        pass  # the first photo waits longer than the limit too; only the runtime's calls count


def test_a_batcher_is_stuck_while_one_call_runs_past_its_time_limit():
    release = threading.Event()
    batcher = Batcher(lambda batch: release.wait(30) and [batch], 1, 0.0, timeout_seconds=0.2)
    assert not batcher.stuck()
    with pytest.raises(InferenceTimedOut):
        batcher.run(photo(1))  # its job gave up after 0.2 s; the call goes on
    assert batcher.stuck()
    release.set()
    deadline = time.monotonic() + 10
    while batcher.stuck():
        assert time.monotonic() < deadline, "still stuck after its call returned"
        time.sleep(0.01)
    assert (batcher.run(photo(2))[0] == 2).all()
