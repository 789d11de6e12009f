"""Run by tests/test_specialization.py in a fresh process: ``python -m tests._specialization_probe
SIDE BOOTSTRAP TOPIC`` produces, consumes with ``getmany`` and with ``async for``, then prints (as
JSON) which instructions CPython specialized in aiokafka's own per-record and per-request code.

A process of its own per side: specialization lives in the code objects, which a bare and a
wrapped client in one process would share.
"""

from __future__ import annotations

import asyncio
import dis
import io
import json
import sys
from typing import Any

RECORDS = 20_000


def hot_functions() -> list[Any]:
    """aiokafka's code on the path of every record (and of every request) a client moves."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.cluster import ClusterMetadata
    from aiokafka.conn import AIOKafkaConnection
    from aiokafka.consumer import consumer, fetcher
    from aiokafka.producer import message_accumulator, producer, sender

    return [
        producer.AIOKafkaProducer.send,
        producer.AIOKafkaProducer._partition,
        producer.AIOKafkaProducer._serialize,
        AIOKafkaClient._wait_on_metadata,
        ClusterMetadata.partitions_for_topic,
        ClusterMetadata.available_partitions_for_topic,
        message_accumulator.MessageAccumulator.add_message,
        message_accumulator.MessageBatch.append,
        message_accumulator.BatchBuilder.append,
        message_accumulator.BatchBuilder._serialize,
        message_accumulator.MessageBatch.done,
        message_accumulator.MessageAccumulator.drain_by_nodes,
        message_accumulator.MessageAccumulator._pop_batch,
        sender.Sender._sender_routine,
        sender.Sender._send_produce_req,
        sender.SendProduceReqHandler.create_request,
        sender.SendProduceReqHandler.do,
        sender.SendProduceReqHandler.handle_response,
        AIOKafkaClient.send,
        AIOKafkaConnection.send,
        AIOKafkaConnection._handle_frame,
        fetcher.PartitionRecords._unpack_records,
        fetcher.PartitionRecords._consumer_record,
        fetcher.PartitionRecords.__next__,
        fetcher.FetchResult.getone,
        fetcher.FetchResult.getall,
        fetcher.FetchResult._update_position,
        fetcher.Fetcher.next_record,
        fetcher.Fetcher.fetched_records,
        consumer.AIOKafkaConsumer.getone,
        consumer.AIOKafkaConsumer.getmany,
    ]


def specialized(function: Any) -> list[str]:
    """``offset opname argument`` of each instruction of ``function`` that CPython specialized."""
    out = io.StringIO()
    dis.dis(function, adaptive=True, file=out)
    found = []
    for line in out.getvalue().splitlines():
        parts = line.split()
        # The opname follows the instruction offset (a line may start with a line number or ">>").
        for i, part in enumerate(parts[:-1]):
            if part.isdigit() and parts[i + 1].isupper() and "_" in parts[i + 1]:
                name = parts[i + 1]
                if name not in dis.opmap and not name.endswith("_ADAPTIVE"):
                    found.append(f"{part} {name} {' '.join(parts[i + 2 :])}")
                break
    return found


async def workload(side: str, bootstrap: str, topic: str) -> None:
    import aiokafka
    from aiokafka.structs import TopicPartition

    if side == "bare":
        producer_cls: Any = aiokafka.AIOKafkaProducer
        consumer_cls: Any = aiokafka.AIOKafkaConsumer
        extra: dict[str, Any] = {}
    else:
        from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        producer_cls, consumer_cls = AIOKafkaProducer, AIOKafkaConsumer
        extra = {"tracing": "hooks"}
    producer = producer_cls(bootstrap_servers=bootstrap, linger_ms=5, **extra)
    await producer.start()
    try:
        for _ in range(RECORDS):
            await producer.send(topic, b"x" * 100)
        await producer.flush()
    finally:
        await producer.stop()
    for iterate in (False, True):
        consumer = consumer_cls(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **extra)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            got = 0
            if iterate:
                async for _ in consumer:
                    got += 1
                    if got >= RECORDS:
                        break
            else:
                while got < RECORDS:
                    batch = await consumer.getmany(timeout_ms=2000, max_records=2000)
                    got += sum(len(records) for records in batch.values())
        finally:
            await consumer.stop()


def main() -> None:
    side, bootstrap, topic = sys.argv[1:4]
    asyncio.run(workload(side, bootstrap, topic))
    print(json.dumps({f.__qualname__: specialized(f) for f in hot_functions()}))


if __name__ == "__main__":
    main()
