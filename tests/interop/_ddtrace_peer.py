"""A service instrumented by ddtrace itself, with data streams on: produces or consumes with
aiokafka, then flushes ddtrace's data-stream stats to the agent in DD_TRACE_AGENT_URL.

Run as ``python _ddtrace_peer.py produce|consume BOOTSTRAP TOPIC COUNT [GROUP]`` in a process of
its own (ddtrace patches aiokafka for the whole process); prints one JSON line of what it did.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from ddtrace import patch

patch(aiokafka=True)

import aiokafka  # noqa: E402  (patched above)
from ddtrace.internal.datastreams import data_streams_processor  # noqa: E402


def ask_for_the_cluster_id(client: Any) -> None:
    """ddtrace's aiokafka patch asks the broker for the cluster id once and, after a failure, not
    again for 300 s of ``time.monotonic()``; a client that never failed reads as having failed at
    0, so on a machine booted less than five minutes ago it never asks, and its checkpoints carry
    no ``kafka_cluster_id`` (seen here in a new machine's first minutes, ddtrace 4.15 and 4.16: the
    interop tests failed until the machine had been up five minutes). Marking the last failure as
    never lets it ask, as it does on any machine up for longer."""
    client._dd_cluster_id_failure_time = float("-inf")


async def produce(bootstrap: str, topic: str, count: int) -> list[dict[str, str]]:
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    ask_for_the_cluster_id(producer.client)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"dd-{i}".encode())
    finally:
        await producer.stop()
    return []


async def consume(bootstrap: str, topic: str, count: int, group: str) -> list[dict[str, str]]:
    consumer = aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,  # the embedded broker forms a group fastest with its shortest session
        heartbeat_interval_ms=1000,
    )
    ask_for_the_cluster_id(consumer._client)
    await consumer.start()
    seen: list[dict[str, str]] = []
    try:
        while len(seen) < count:
            record = await asyncio.wait_for(consumer.getone(), 30)
            seen.append({k: v.decode(errors="replace") for k, v in record.headers})
    finally:
        await consumer.stop()
    return seen


def main() -> None:
    role, bootstrap, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if role == "produce":
        seen = asyncio.run(produce(bootstrap, topic, count))
    else:
        seen = asyncio.run(consume(bootstrap, topic, count, sys.argv[5]))
    processor = data_streams_processor()
    if processor is None:
        raise SystemExit("ddtrace's data streams are off (DD_DATA_STREAMS_ENABLED)")
    processor.periodic()  # send every bucket, the open one included, to the agent now
    print(json.dumps({"headers": seen}))


if __name__ == "__main__":
    main()
