"""Wrapping twice, exporters that use Kafka, and old-broker header handling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import kafka
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from kafkahooks import export
from tests._drivers import plain_consume, produce


def test_otel_instrumentation_and_kafkahooks_together_give_one_traceparent(bootstrap: str, topic: str) -> None:
    """Double wrapping: OpenTelemetry's per-record instrumentation plus tracing="hooks" never
    duplicates traceparent; the per-record header (set first) wins."""
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor

    provider = TracerProvider()
    instrumentor = KafkaInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with provider.get_tracer("app").start_as_current_span("app"):
            produce("kafka-python", bootstrap, topic, [(b"v", None)] * 50, tracing="hooks", tracer_provider=provider)
    finally:
        instrumentor.uninstrument()
    records = plain_consume(bootstrap, topic)
    assert 50 == len(records)
    assert all(1 == sum(1 for k, _ in r.headers if k == "traceparent") for r in records)


class KafkaSpanExporter(SpanExporter):
    """Ships span names to a Kafka topic with a plain producer (what some users do)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
        self.topic = topic
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self.producer.send(self.topic, span.name.encode())
            self.exported += 1
        self.producer.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.producer.close()


def test_an_exporter_that_produces_to_kafka_does_not_recurse(bootstrap: str, make_topic: Any) -> None:
    """Spans exported through Kafka from the export worker: no recursion, no deadlock, all delivered."""
    data, spans_topic = make_topic(1), make_topic(1)
    exporter = KafkaSpanExporter(bootstrap, spans_topic)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    produce("aiokafka", bootstrap, data, [(b"v", None)] * 200, tracing="hooks", tracer_provider=provider)
    assert export.flush(timeout_s=10)
    assert exporter.exported > 0
    assert exporter.exported == len(plain_consume(bootstrap, spans_topic))
    provider.shutdown()


def test_old_message_format_never_gets_injected_headers() -> None:
    """With a broker older than 0.11 (message format v1) kafka-python refuses headers: kafkahooks
    must not add any, so every record is still sent (checked at the hook boundary: no broker needed)."""
    from kafkahooks._wire import kafka_python as _kafka_python
    from kafkahooks.hooks import HookDispatcher
    from kafkahooks.tracing import BrokerSpans

    class Producer:
        class _accumulator:
            config: ClassVar[dict[str, Any]] = {"message_version": 1}

            @staticmethod
            def append(*args: Any, **kwargs: Any) -> Any:
                return ("future", False, True, False)

    producer = Producer()
    original = producer._accumulator.append
    _kafka_python.install_batch_headers(producer, HookDispatcher([BrokerSpans("producer")]))
    assert producer._accumulator.append is original


def test_plugins_installed_twice_add_their_headers_once(bootstrap: str, topic: str) -> None:
    """Wrapping twice over: ``tracing="hooks"`` plus the same span and data-stream plugins passed
    again as hooks give each batch one ``traceparent`` and one pathway header."""
    from kafkahooks.datastreams import data_stream_hooks, default
    from kafkahooks.tracing import BrokerSpans

    provider = TracerProvider()
    with provider.get_tracer("app").start_as_current_span("app"):
        produce(
            "kafka-python",
            bootstrap,
            topic,
            [(b"v", None)] * 30,
            tracing="hooks",
            tracer_provider=provider,
            hooks=[BrokerSpans("producer", tracer_provider=provider), data_stream_hooks(default())],
        )
    records = plain_consume(bootstrap, topic, count=30)
    assert 30 == len(records)
    for key in ("traceparent", "dd-pathway-ctx-base64"):
        counts = [sum(1 for k, _ in r.headers if k == key) for r in records]
        assert max(counts) == 1, key
