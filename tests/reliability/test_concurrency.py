"""Concurrency: shared hooks and producers across threads and event loops; every request is either
exported as a span or counted as dropped, and nothing raises."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kafkahooks import export
from kafkahooks.hooks import ApiKey
from kafkahooks.testing import RecordingHook
from kafkahooks.tracing import BrokerSpans


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def accounted(spans: BrokerSpans, exporter: InMemorySpanExporter, recorder: RecordingHook) -> None:
    export.flush()
    requests = len(recorder.of("broker_e2e", ApiKey.PRODUCE))
    exported = len([s for s in exporter.get_finished_spans() if s.name.startswith("send")])
    assert requests == exported + spans.dropped


def test_threads_share_one_producer_and_one_hook(bootstrap: str, topic: str) -> None:
    """Eight threads send through one kafka-python producer with one set of hooks: every record lands."""
    from kafkahooks.kafka import KafkaProducer

    provider, exporter = tracing()
    spans, recorder = BrokerSpans("producer", tracer_provider=provider, capacity=64), RecordingHook()
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[spans, recorder], linger_ms=1)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                producer.send(topic, b"%d-%d" % (n, i)).get(timeout=10) if i % 50 == 0 else producer.send(
                    topic, b"%d-%d" % (n, i)
                )
        except BaseException as exc:  # the test's own bookkeeping
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    producer.flush()
    producer.close()
    assert [] == errors
    assert 2400 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))
    accounted(spans, exporter, recorder)


def test_producers_on_one_loop_and_on_two_loops(bootstrap: str, topic: str) -> None:
    """Several aiokafka producers on one loop, and on two loops in two threads, share one hook set."""
    from kafkahooks.aiokafka import AIOKafkaProducer

    provider, exporter = tracing()
    spans, recorder = BrokerSpans("producer", tracer_provider=provider, capacity=64), RecordingHook()

    async def many(prefix: bytes) -> None:
        producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[spans, recorder]) for _ in range(3)]
        await asyncio.gather(*(p.start() for p in producers))

        async def send(p: Any, n: int) -> None:
            for i in range(200):
                await p.send(topic, prefix + b"%d-%d" % (n, i))

        await asyncio.gather(*(send(p, n) for n, p in enumerate(producers)))
        await asyncio.gather(*(p.stop() for p in producers))

    asyncio.run(many(b"a"))
    errors: list[BaseException] = []

    def loop(prefix: bytes) -> None:
        try:
            asyncio.run(many(prefix))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(p,)) for p in (b"b", b"c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [] == errors
    assert 3 * 3 * 200 == sum(e.metrics.num_records for e in recorder.of("produce_batch_written"))
    accounted(spans, exporter, recorder)
