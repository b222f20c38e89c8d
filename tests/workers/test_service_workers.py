"""Workers that load no model (workers/signals.py): the io worker (`webhooks`) and the
housekeeping worker (`housekeeping`) each consume their queue alone."""

from types import SimpleNamespace

import pytest

from workers import signals


def start(queues):
    """choose_models as Celery calls it at a worker's start with these --queues."""
    consumer = SimpleNamespace(consume_from={queue: None for queue in queues})
    sender = SimpleNamespace(hostname="test@host", app=SimpleNamespace(amqp=SimpleNamespace(queues=consumer)))
    signals.choose_models(sender)


@pytest.mark.parametrize(
    "queues, said",
    [
        (["webhooks"], "io worker: webhook deliveries, no models"),
        (["housekeeping"], "housekeeping worker: the reaper, retention and the webhook sweep, no models"),
    ],
)
def test_a_service_queue_alone_starts_a_worker_without_models(queues, said, caplog):
    with caplog.at_level("INFO", logger="workers.signals"):
        start(queues)
    assert said in caplog.text and signals._served == []


@pytest.mark.parametrize(
    "queues, said",
    [
        (
            ["housekeeping", "webhooks"],
            "start one worker with --queues housekeeping and another with --queues webhooks",
        ),
        (
            ["housekeeping", "light"],
            "start one worker with --queues housekeeping and another with --queues light",
        ),
        (["light", "webhooks"], "never run in a model worker: start one worker with --queues webhooks"),
    ],
)
def test_a_service_queue_beside_another_refuses_to_start_saying_how(queues, said):
    with pytest.raises(SystemExit) as refused:
        start(queues)
    assert said in str(refused.value)
