"""Headers injected once per producer batch, for both clients, counted on the wire by plain consumers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from kafkahooks.aiokafka import AIOKafkaProducer
from kafkahooks.kafka import KafkaProducer
from kafkahooks.testing import RecordingHook
from tests._drivers import plain_consume

N = 400


class BatchStamp(RecordingHook):
    """Stamps each new batch's first record, unless the application already set the header."""

    batch_header_keys = frozenset({"x-batch"})

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]]
    ) -> list[tuple[str, bytes]] | None:
        if any(k == "x-batch" for k, _ in headers):
            return None
        self.opened += 1
        return [("x-batch", b"%d" % self.opened)]


def produce_kafka_python(bootstrap: str, topic: str, hook: BatchStamp, values: list[tuple[bytes, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[hook], linger_ms=5, batch_size=4096)
    for value, headers in values:
        producer.send(topic, value, headers=headers)
    producer.flush()
    producer.close()


def produce_aiokafka(bootstrap: str, topic: str, hook: BatchStamp, values: list[tuple[bytes, Any]]) -> None:
    import asyncio

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[hook], linger_ms=5, max_batch_size=4096)
        await producer.start()
        for value, headers in values:
            await producer.send(topic, value, headers=headers)
        await producer.stop()

    asyncio.run(run())


@pytest.mark.parametrize("produce", [produce_kafka_python, produce_aiokafka], ids=["kafka-python", "aiokafka"])
def test_one_header_per_producer_batch(
    bootstrap: str, make_topic: Callable[..., str], produce: Callable[..., None]
) -> None:
    """Exactly the first record of every producer batch carries the header; nothing else changes."""
    topic = make_topic(2)
    hook = BatchStamp()
    values = [(b"%05d" % i + b"." * 100, None) for i in range(N)]
    produce(bootstrap, topic, hook, values)

    records = plain_consume(bootstrap, topic, 2)
    assert sorted(v for v, _ in values) == sorted(r.value for r in records)
    stamped = [r for r in records if r.headers]
    batches = hook.of("produce_batch_written")
    assert 1 < len(batches) == len(stamped) == hook.opened
    assert sum(b.metrics.num_records for b in batches) == N
    first_offsets = {(b.partition, b.metrics.base_offset) for b in batches}
    assert first_offsets == {(r.partition, r.offset) for r in stamped}
    assert all(b.metrics.headers and b.metrics.headers[0][0] == "x-batch" for b in batches)


@pytest.mark.parametrize("produce", [produce_kafka_python, produce_aiokafka], ids=["kafka-python", "aiokafka"])
def test_application_header_is_left_alone(bootstrap: str, topic: str, produce: Callable[..., None]) -> None:
    """When the application set the header itself, the injector leaves its value and adds none."""
    hook = BatchStamp()
    produce(bootstrap, topic, hook, [(b"v", [("x-batch", b"mine")])])
    (record,) = plain_consume(bootstrap, topic, 1)
    assert [("x-batch", b"mine")] == list(record.headers)


@pytest.mark.parametrize("produce", [produce_kafka_python, produce_aiokafka], ids=["kafka-python", "aiokafka"])
def test_injected_batches_leave_no_reference_cycles(
    bootstrap: str, make_topic: Callable[..., str], produce: Callable[..., None]
) -> None:
    """An injected batch is freed by reference counting, as the client's own batches are: no
    cycle through the per-batch overrides (each would keep a batch and its per-record futures
    alive until a garbage collection, which cost aiokafka ~10% of its produce throughput)."""
    import gc

    class NoStamp(BatchStamp):
        def inject_batch_headers(self, *args: Any) -> None:
            return None

    values = [(b"%05d" % i + b"." * 100, None) for i in range(2000)]

    def garbage(hook: BatchStamp) -> int:
        gc.collect()
        gc.disable()
        try:
            produce(bootstrap, make_topic(2), hook, values)
            return gc.collect()
        finally:
            gc.enable()

    stamp = BatchStamp()
    without = garbage(NoStamp())  # the same hooked client, nothing injected
    with_headers = garbage(stamp)
    assert stamp.opened > 20
    assert with_headers < without + stamp.opened, (without, with_headers)
