"""A soak at full throughput with tracing="hooks": memory flat, buffers bounded, no thread leak."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from kafkahooks.export import buffers, flush

SOAK_S = float(os.environ.get("KAFKAHOOKS_SOAK_SECONDS", "60"))


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Offered:
    """Counts what a client's taps hand its request log: every finished request, connect,
    disconnect and throttle (the built-in plugins together want all of them)."""

    kafkahooks_inline = True

    def __init__(self) -> None:
        self.count = 0

    def on_broker_e2e(self, meta: object, key: int, e2e: object) -> None:
        self.count += 1

    def on_broker_connect(self, meta: object, init_ns: int, err: object) -> None:
        self.count += 1

    def on_broker_disconnect(self, meta: object) -> None:
        self.count += 1

    def on_broker_throttle(self, meta: object, interval_ns: int, after_response: bool) -> None:
        self.count += 1


class StuckExporter(SpanExporter):
    """A span collector that never answers: the outage lasts the whole soak."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(SOAK_S * 2)
        return SpanExportResult.SUCCESS


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S * 3 + 120)
def test_soak_produce_and_consume(bootstrap: str, topic: str) -> None:
    """Produce and consume continuously while the span exporter hangs: every record arrives, RSS
    grows by less than 25 MB after warm-up, threads do not grow, buffers stay within their
    capacity, and every request the producer's taps handed to its log was exported, is waiting,
    or was counted as dropped: exactly, whatever the amount of traffic."""
    from aiokafka.structs import TopicPartition
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    stuck = StuckExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(stuck))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    common = {
        "bootstrap_servers": bootstrap,
        "tracing": "hooks",
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
    }
    samples: list[tuple[float, float, int]] = []

    offered = Offered()
    logs = []

    async def run() -> tuple[int, int]:
        producer = AIOKafkaProducer(linger_ms=5, hooks=[offered], **common)
        logs.append(producer.hook_dispatcher.request_log)
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
    stuck.release.set()
    # The collector is back: the export worker finishes its stuck pass and drains what waited. Read
    # the log's counts once it has (a drain in progress has taken items it has not counted yet).
    deadline = time.monotonic() + 60
    while not flush(timeout_s=5.0):
        assert time.monotonic() < deadline, "the export worker did not recover from the outage"
    print(f"soak {SOAK_S:.0f} s: {sent:,} records; (elapsed s, RSS MB, threads): {samples}")
    assert sent == received
    (log,) = logs
    assert log is not None
    # Requests wait in the log's buffer, connection events in its other one.
    assert offered.count == sum(b.accepted + b.dropped + len(b) for b in (log.buffer, log.others))
    warm = [s for s in samples if s[0] >= SOAK_S / 3]
    assert len(warm) >= 2
    assert warm[-1][1] - warm[0][1] < 25, samples
    assert warm[-1][2] <= warm[0][2], samples
    assert all(len(b) <= b.capacity + 8 for b in buffers())
    tracer_provider.shutdown()
