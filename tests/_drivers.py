"""Drive either wrapped client through one synchronous interface, so a test can run on both."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

CLIENTS = ["kafka-python", "aiokafka"]

Message = tuple[bytes | None, list[tuple[str, bytes]] | None]


def produce(
    client: str,
    bootstrap: str,
    topic: str,
    messages: list[Message],
    partitions: int = 0,
    before_close: Callable[[Any], None] | None = None,
    timestamp_ms: int | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Send ``(value, headers)`` messages with the wrapped producer of ``client`` (message ``i`` to
    partition ``i % partitions`` when ``partitions`` is given; each stamped ``timestamp_ms`` when
    given); return their metadata (None for ``acks=0``). ``before_close`` is called with the
    producer once everything is flushed."""

    def partition(i: int) -> int | None:
        return i % partitions if partitions else None

    if client == "kafka-python":
        from kafkahooks.kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, **kwargs)
        try:
            futures = [
                producer.send(topic, value, headers=headers, partition=partition(i), timestamp_ms=timestamp_ms)
                for i, (value, headers) in enumerate(messages)
            ]
            producer.flush()
            if before_close is not None:
                before_close(producer)
        except BaseException:
            # A send or flush that raised (strict hooks, say) must not leave the producer to the
            # collector: its __del__ closes with a 1 s timeout and raises in whichever test runs then.
            with contextlib.suppress(Exception):
                producer.close(timeout=5)
            raise
        producer.close()
        return [f.get(timeout=10) for f in futures]

    async def run() -> list[Any]:
        from kafkahooks.aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kwargs)
        await producer.start()
        try:
            futures = [
                await producer.send(topic, value, headers=headers, partition=partition(i), timestamp_ms=timestamp_ms)
                for i, (value, headers) in enumerate(messages)
            ]
            sent = list(await asyncio.gather(*futures))
            if before_close is not None:
                before_close(producer)
            return sent
        finally:
            await producer.stop()

    return asyncio.run(run())


def consume(
    client: str,
    bootstrap: str,
    topic: str,
    count: int,
    partitions: int = 1,
    on_batch: Callable[[dict[Any, list[Any]]], None] | None = None,
    timeout_s: float = 20.0,
    **kwargs: Any,
) -> list[Any]:
    """Read ``count`` records from the start of ``topic`` with the wrapped consumer of ``client``.

    ``on_batch`` is called with every non-empty ``poll()``/``getmany()`` result, as an application would.
    """
    if client == "kafka-python":
        import kafka

        from kafkahooks.kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kwargs)
        consumer.assign([kafka.TopicPartition(topic, p) for p in range(partitions)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(records) < count and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=500)
                if batch:
                    if on_batch is not None:
                        on_batch(batch)
                    records.extend(r for rs in batch.values() for r in rs)
        finally:
            consumer.close()
        return records

    async def run() -> list[Any]:
        from aiokafka.structs import TopicPartition

        from kafkahooks.aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kwargs)
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(out) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                if batch:
                    if on_batch is not None:
                        on_batch(batch)
                    out.extend(r for rs in batch.values() for r in rs)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def plain_consume(bootstrap: str, topic: str, partitions: int = 1, count: int | None = None) -> list[Any]:
    """Every record of ``topic`` as an uninstrumented kafka-python consumer sees it: up to each
    partition's high watermark in its fetch responses (everything acknowledged before the call),
    or, given ``count``, as soon as that many arrived; at most 20 s either way."""
    import kafka

    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    assigned = [kafka.TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assigned)
    records: list[Any] = []

    def done() -> bool:
        if count is not None:
            return len(records) >= count
        return all(_caught_up(consumer, tp, consumer.position(tp)) for tp in assigned)

    deadline = time.monotonic() + 20
    while not done() and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    consumer.close()
    return records


def _caught_up(consumer: Any, tp: Any, next_offset: int) -> bool:
    """Whether ``next_offset`` is at the high watermark of ``tp``'s last fetch response. The high
    watermark, not ``end_offsets()``: Tansu 0.6 answers ListOffsets' latest with the last batch's
    base offset plus one, not the last record's."""
    high_watermark = consumer.highwater(tp)
    return high_watermark is not None and next_offset >= high_watermark


def iterate_to_end(consumer: Any) -> list[Any]:
    """What iterating ``consumer`` (kafka-python's, bare or wrapped, its partitions assigned)
    yields up to each partition's high watermark: everything acknowledged before the call. The
    consumer's ``consumer_timeout_ms`` stays the backstop should a record never come; it is not
    waited out when they all do."""
    import kafka

    assigned = list(consumer.assignment())
    next_offsets = {tp: consumer.position(tp) for tp in assigned}
    records: list[Any] = []
    for record in consumer:
        records.append(record)
        next_offsets[kafka.TopicPartition(record.topic, record.partition)] = record.offset + 1
        if all(_caught_up(consumer, tp, next_offset) for tp, next_offset in next_offsets.items()):
            break
    return records
