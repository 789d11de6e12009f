"""A soak at full throughput with tracing="hooks": memory flat, buffers bounded, no thread leak."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from kafkahooks.export import buffers

SOAK_S = float(os.environ.get("KAFKAHOOKS_SOAK_SECONDS", "60"))


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S * 3 + 120)
def test_soak_produce_and_consume(bootstrap: str, topic: str) -> None:
    """Produce and consume continuously; after warm-up, RSS grows by less than 25 MB and the number
    of threads does not grow; every buffer stays within its capacity."""
    from aiokafka.structs import TopicPartition
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    common = {
        "bootstrap_servers": bootstrap,
        "tracing": "hooks",
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
    }
    samples: list[tuple[float, float, int]] = []

    async def run() -> tuple[int, int]:
        producer = AIOKafkaProducer(linger_ms=5, **common)
        consumer = AIOKafkaConsumer(auto_offset_reset="earliest", group_id="soak", **common)
        await asyncio.gather(producer.start(), consumer.start())
        consumer.assign([TopicPartition(topic, 0)])
        sent = received = 0
        started = last = time.monotonic()
        while time.monotonic() - started < SOAK_S:
            for _ in range(2000):
                await producer.send(topic, b"x" * 100)
            sent += 2000
            for records in (await consumer.getmany(timeout_ms=0)).values():
                received += len(records)
            exporter.clear()  # the in-memory exporter itself would grow; a real one would not
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                samples.append((last - started, rss_mb(), threading.active_count()))
        await producer.flush()
        while received < sent:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            received += sum(len(r) for r in batch.values())
        await asyncio.gather(producer.stop(), consumer.stop())
        return sent, received

    sent, received = asyncio.run(run())
    assert sent == received
    warm = [s for s in samples if s[0] >= SOAK_S / 3]
    assert len(warm) >= 2
    assert warm[-1][1] - warm[0][1] < 25, samples
    assert warm[-1][2] <= warm[0][2], samples
    assert all(len(b) <= b.capacity + 8 for b in buffers())
    tracer_provider.shutdown()
