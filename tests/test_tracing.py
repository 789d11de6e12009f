"""Hook-level tracing against the real broker, for both clients, with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

from kafkahooks import export
from kafkahooks.hooks import ApiKey
from kafkahooks.testing import RecordingHook
from kafkahooks.tracing import MAX_LINKS, BrokerSpans, format_traceparent, process_span, record_context
from tests._drivers import CLIENTS, consume, plain_consume, produce


class Tracing:
    def __init__(self, sampler: Any = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("app")

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]:
        export.flush()
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name_prefix)]


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    t = Tracing()
    yield t
    t.provider.shutdown()


def trace_headers(record: Any) -> list[tuple[str, bytes]]:
    """The record's trace-context headers (tracing="hooks" also adds the data-stream pathway header)."""
    return [(k, v) for k, v in record.headers if k in ("traceparent", "tracestate")]


def by_key(recorder: RecordingHook, key: int) -> list[Any]:
    return [e.e2e for e in recorder.of("broker_e2e", key)]


@pytest.mark.parametrize("client", CLIENTS)
def test_one_span_per_request_with_hook_timings(
    client: str, bootstrap: str, make_topic: Callable[..., str], tracing: Tracing
) -> None:
    """A send span per Produce and a poll span per non-empty Fetch, timed exactly by the hooks."""
    topic = make_topic(2)
    started_ns = time.time_ns()
    producer_hooks, consumer_hooks = RecordingHook(), RecordingHook()
    with tracing.tracer.start_as_current_span("app-produce") as app:
        produce(
            client,
            bootstrap,
            topic,
            [(b"v" * 100, None)] * 400,
            tracing="hooks",
            tracer_provider=tracing.provider,
            hooks=[producer_hooks],
            linger_ms=5,
        )
    consume(
        client,
        bootstrap,
        topic,
        400,
        partitions=2,
        tracing="hooks",
        tracer_provider=tracing.provider,
        hooks=[consumer_hooks],
    )
    sends, polls = tracing.spans("send"), tracing.spans("poll")
    produce_e2e = by_key(producer_hooks, ApiKey.PRODUCE)
    fetches_with_data = [e for e in consumer_hooks.of("broker_e2e", ApiKey.FETCH) if e.e2e.bytes_read > 200]

    assert len(sends) == len(produce_e2e) < 400
    assert 0 < len(polls) <= len(consumer_hooks.of("broker_read", ApiKey.FETCH))
    assert 400 == sum(s.attributes.get("messaging.batch.message_count", 1) for s in sends)
    assert 400 == sum(s.attributes.get("messaging.batch.message_count", 1) for s in polls)
    assert sorted(e.time_to_write_ns for e in produce_e2e) == sorted(s.end_time - s.start_time for s in sends)
    assert len(fetches_with_data) >= len(polls)
    now_ns = time.time_ns()
    for span in sends + polls:
        assert started_ns <= span.start_time <= span.end_time <= now_ns
        assert SpanKind.CLIENT == span.kind
        assert span.parent is None
        assert "kafka" == span.attributes["messaging.system"]
        assert topic == span.attributes["messaging.destination.name"]
        assert span.attributes["server.port"] > 0
        assert span.attributes["messaging.client.id"]
    for span in polls:
        assert span.end_time - span.start_time == span.attributes["kafkahooks.time_to_read_ns"]
        assert ("poll", "receive") == (
            span.attributes["messaging.operation.name"],
            span.attributes["messaging.operation.type"],
        )
    assert {f"send {topic}"} == {s.name for s in sends}
    assert {f"poll {topic}"} == {s.name for s in polls}
    app_trace = app.get_span_context().trace_id
    assert all(link.context.trace_id == app_trace for s in sends + polls for link in s.links)
    assert all(s.links for s in sends + polls)


@pytest.mark.parametrize("client", CLIENTS)
def test_trace_context_travels_once_per_batch(client: str, bootstrap: str, topic: str, tracing: Tracing) -> None:
    """The first record of each producer batch carries the producing span's context; no other does."""
    with tracing.tracer.start_as_current_span("app-produce") as app:
        produce(client, bootstrap, topic, [(b"v", None)] * 300, tracing="hooks", tracer_provider=tracing.provider)
    records = plain_consume(bootstrap, topic)
    carrying = [r for r in records if trace_headers(r)]
    expected = format_traceparent(app.get_span_context())
    assert 300 == len(records)
    assert len(tracing.spans("send")) == len(carrying) > 0
    assert all([("traceparent", expected)] == trace_headers(r) for r in carrying)


@pytest.mark.parametrize("client", CLIENTS)
def test_application_context_is_preserved(client: str, bootstrap: str, topic: str, tracing: Tracing) -> None:
    """A traceparent the application set itself is neither replaced nor duplicated."""
    mine = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.tracer.start_as_current_span("app"):
        produce(
            client,
            bootstrap,
            topic,
            [(b"v", [("traceparent", mine)])],
            tracing="hooks",
            tracer_provider=tracing.provider,
        )
    (record,) = plain_consume(bootstrap, topic)
    assert [("traceparent", mine)] == trace_headers(record)
    (send,) = tracing.spans("send")
    assert [0x0AF7651916CD43DD8448EB211C80319C] == [link.context.trace_id for link in send.links]


@pytest.mark.parametrize("client", CLIENTS)
def test_unsampled_means_no_spans_and_no_headers(client: str, bootstrap: str, topic: str) -> None:
    """With a sampler that drops everything, nothing is exported and records carry no trace context."""
    off = Tracing(sampler=ALWAYS_OFF)
    with off.tracer.start_as_current_span("app"):
        produce(client, bootstrap, topic, [(b"v", None)] * 50, tracing="hooks", tracer_provider=off.provider)
    consume(client, bootstrap, topic, 50, tracing="hooks", tracer_provider=off.provider)
    assert [] == off.spans()
    assert all(not trace_headers(r) for r in plain_consume(bootstrap, topic))


@pytest.mark.parametrize("client", CLIENTS)
def test_links_are_capped_and_counted(client: str, bootstrap: str, topic: str, tracing: Tracing) -> None:
    """A fetch that reads more than 128 batches from distinct traces keeps 128 links and counts the rest."""
    distinct = MAX_LINKS + 22
    for i in range(distinct):
        with tracing.tracer.start_as_current_span(f"app-{i}"):
            produce(client, bootstrap, topic, [(b"%d" % i, None)], tracing="hooks", tracer_provider=tracing.provider)
    consume(client, bootstrap, topic, distinct, tracing="hooks", tracer_provider=tracing.provider)
    polls = tracing.spans("poll")
    kept = sum(len(s.links) for s in polls)
    dropped = sum(s.attributes.get("kafkahooks.links_dropped", 0) for s in polls)
    assert all(len(s.links) <= MAX_LINKS for s in polls)
    assert distinct == kept + dropped
    assert dropped > 0, "the test needs one fetch to carry more than 128 batches"


@pytest.mark.parametrize("client", CLIENTS)
def test_process_span_links_and_parents_under_asyncio_and_threads(
    client: str, bootstrap: str, make_topic: Callable[..., str], tracing: Tracing
) -> None:
    """process_span links to the batch's creation context and is the parent of work done inside,
    in concurrent asyncio tasks and in threads alike."""
    topic = make_topic(1)
    with tracing.tracer.start_as_current_span("app-produce") as app:
        produce(client, bootstrap, topic, [(b"v", None)] * 20, tracing="hooks", tracer_provider=tracing.provider)
    records = consume(client, bootstrap, topic, 20, tracing="hooks", tracer_provider=tracing.provider)
    assert all(record_context(r) is not None for r in records), "every record maps to its batch's context"
    app_trace = app.get_span_context().trace_id

    def work(name: str) -> None:
        with (
            process_span(records[:10], tracer_provider=tracing.provider, name=f"process-{name}"),
            tracing.tracer.start_as_current_span(f"inner-{name}"),
        ):
            time.sleep(0.01)

    async def awork(name: str) -> None:
        async with process_span(records[10:], tracer_provider=tracing.provider, name=f"process-{name}"):
            await asyncio.sleep(0.01)
            with tracing.tracer.start_as_current_span(f"inner-{name}"):
                await asyncio.sleep(0.01)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def both() -> None:
        await asyncio.gather(*(awork(f"a{i}") for i in range(3)))

    asyncio.run(both())
    spans = {s.name: s for s in tracing.spans()}
    for name in ("t0", "t1", "t2", "a0", "a1", "a2"):
        outer, inner = spans[f"process-{name}"], spans[f"inner-{name}"]
        assert inner.parent is not None
        assert outer.context.span_id == inner.parent.span_id
        assert SpanKind.CONSUMER == outer.kind
        assert [app_trace] == [link.context.trace_id for link in outer.links]


def produce_batches_under_spans(
    client: str, bootstrap: str, topic: str, tracing: Tracing, batches: int, records: int = 3
) -> list[int]:
    """``batches`` producer batches of ``records`` records each (values ``b"i-j"``), batch ``i``
    opened under the application's span ``i`` and flushed before the next; the spans' ids, by ``i``."""
    span_ids: list[int] = []
    kwargs = {"bootstrap_servers": bootstrap, "tracing": "hooks", "tracer_provider": tracing.provider}
    if client == "kafka-python":
        from kafkahooks.kafka import KafkaProducer

        producer = KafkaProducer(linger_ms=1000, **kwargs)
        try:
            for i in range(batches):
                with tracing.tracer.start_as_current_span(f"app-{i}") as span:
                    for j in range(records):
                        producer.send(topic, b"%d-%d" % (i, j), partition=0)
                span_ids.append(span.get_span_context().span_id)
                producer.flush()
        finally:
            producer.close()
        return span_ids

    async def run() -> None:
        from kafkahooks.aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**kwargs)  # its flush() waits for linger_ms: the three sends
        await producer.start()  # go in one batch as they are appended before its sender runs
        try:
            for i in range(batches):
                with tracing.tracer.start_as_current_span(f"app-{i}") as span:
                    sent = [producer.send(topic, b"%d-%d" % (i, j), partition=0) for j in range(records)]
                    await asyncio.gather(*await asyncio.gather(*sent))
                span_ids.append(span.get_span_context().span_id)
        finally:
            await producer.stop()

    asyncio.run(run())
    return span_ids


@pytest.mark.parametrize("client", CLIENTS)
def test_record_context_maps_every_record_of_a_long_fetch(
    client: str, bootstrap: str, topic: str, tracing: Tracing
) -> None:
    """Every record of 300 small batches, each from its own trace, maps to its batch's context
    once they have all been handed out: the table remembers more batches per partition than a
    fetch of small batches holds (it once kept 64, so records of all but the last 64 batches
    that were not a batch's first came back None)."""
    span_ids = produce_batches_under_spans(client, bootstrap, topic, tracing, 300)
    records = consume(client, bootstrap, topic, 900, tracing="hooks", tracer_provider=tracing.provider)
    assert 900 == len(records)
    carrying = [r for r in records if trace_headers(r)]
    assert 300 <= len(carrying) < 900, "one context per batch, on its first record; batches of several"
    found = [record_context(r) for r in records]
    assert [span_ids[int(r.value.split(b"-")[0])] for r in records] == [c.span_id if c else None for c in found]
    from kafkahooks.tracing._process import batch_contexts  # what process_span links to, uncapped

    assert set(span_ids) == {c.span_id for c in batch_contexts(records)}


@pytest.mark.parametrize("client", CLIENTS)
def test_one_record_batches_map_by_their_own_headers(client: str, bootstrap: str, topic: str, tracing: Tracing) -> None:
    """A one-record batch takes no room in record_context's table: its record carries the batch's
    headers itself, and record_context and process_span read them there."""
    from kafkahooks.tracing._context import batch_contexts  # the table (the package's is a function)

    span_ids = produce_batches_under_spans(client, bootstrap, topic, tracing, 20, records=1)
    held = batch_contexts.size
    records = consume(client, bootstrap, topic, 20, tracing="hooks", tracer_provider=tracing.provider)
    assert held == batch_contexts.size
    assert span_ids == [ctx.span_id if (ctx := record_context(r)) else None for r in records]
    with process_span(records, tracer_provider=tracing.provider):
        pass
    (span,) = tracing.spans("process")
    assert set(span_ids) == {link.context.span_id for link in span.links}


def test_process_span_marks_errors_and_propagates(tracing: Tracing) -> None:
    """An exception in the block sets error.type on the process span and still reaches the caller."""

    class Record:
        topic, partition, offset, headers = "t", 0, 5, [("traceparent", b"garbage")]

    with pytest.raises(KeyError), process_span(Record(), tracer_provider=tracing.provider):
        raise KeyError("x")
    (span,) = tracing.spans("process")
    assert "KeyError" == span.attributes["error.type"]
    assert [] == list(span.links)


@pytest.mark.parametrize("client", CLIENTS)
def test_records_mode_makes_a_span_per_record(client: str, bootstrap: str, topic: str, tracing: Tracing) -> None:
    """tracing="records" creates a send and a poll span per record and a traceparent on every record."""
    with tracing.tracer.start_as_current_span("app"):
        produce(client, bootstrap, topic, [(b"v", None)] * 30, tracing="records", tracer_provider=tracing.provider)
    consume(client, bootstrap, topic, 30, tracing="records", tracer_provider=tracing.provider)
    assert 30 == len(tracing.spans("send"))
    assert 30 == len(tracing.spans("poll"))
    assert all(SpanKind.PRODUCER == s.kind for s in tracing.spans("send"))
    assert all(len(trace_headers(r)) == 1 for r in plain_consume(bootstrap, topic))


def test_tracing_env_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """KAFKAHOOKS_TRACING picks the mode when tracing= is not given; a typo is an error."""
    from kafkahooks import tracing_mode

    monkeypatch.setenv("KAFKAHOOKS_TRACING", "hooks")
    assert "hooks" == tracing_mode(None)
    assert "off" == tracing_mode("off")
    monkeypatch.setenv("KAFKAHOOKS_TRACING", "hook")
    with pytest.raises(ValueError, match="KAFKAHOOKS_TRACING"):
        tracing_mode(None)


class CountingProcessor(SpanProcessor):
    """A custom processor: its presence must send spans through the full API path."""

    def __init__(self) -> None:
        self.started = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1


class TaggingSampler(Sampler):
    """A sampler of the application's own: samples every span and adds an attribute of its own."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> Any:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampled.by": "tagging"})

    def get_description(self) -> str:
        return "TaggingSampler"


SAMPLERS = {
    "default (parentbased_always_on)": None,
    "always_on": ALWAYS_ON,
    "parentbased_always_on, spelt out": ParentBased(ALWAYS_ON),
    "traceidratio 1.0 (asked per span)": TraceIdRatioBased(1.0),
    "the application's own (asked per span)": TaggingSampler(),
}


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_fast_and_api_span_paths_write_the_same_span(sampler: str) -> None:
    """The direct SDK path and the API path export identical spans, whichever sampler the provider
    has (the fast path skips asking the SDK's static samplers, which answer every root span
    alike, and asks every other one); a custom processor forces the API path."""
    from kafkahooks._otel import ApiSpanWriter, SdkSpanWriter
    from kafkahooks.hooks import BrokerMeta, Compression
    from kafkahooks.hooks._records import BatchInfo, Request

    meta = BrokerMeta(1, "127.0.0.1", 9092)
    header = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    exported = []
    for custom in (False, True):
        t = Tracing(sampler=SAMPLERS[sampler])
        if custom:
            processor = CountingProcessor()
            t.provider.add_span_processor(processor)
        plugin = BrokerSpans("producer", tracer_provider=t.provider)
        assert isinstance(plugin._writer, ApiSpanWriter if custom else SdkSpanWriter)
        request = Request(meta, ApiKey.PRODUCE, 0, 1200, True)
        request.write_end_ns, request.time_to_write_ns = time.monotonic_ns(), 3_000
        request.bytes_written, request.bytes_read = 1200, 80
        for p in (0, 1):  # the application's own context on each batch's first record, noted as it opens
            assert plugin.inject_batch_headers("orders", p, header, 7) is None
        request.batches = {("orders", p): BatchInfo(10, 1000, 1000, Compression.NONE, 0, 9, 7, ()) for p in (0, 1)}
        plugin.on_requests_finished([request])
        (span,) = t.spans("send")
        exported.append(span)
        if custom:
            assert 1 == processor.started
    fast, api = exported
    assert (fast.name, fast.kind, fast.links[0].context, fast.status.status_code) == (
        api.name,
        api.kind,
        api.links[0].context,
        api.status.status_code,
    )
    assert dict(fast.attributes) == dict(api.attributes)
    assert fast.end_time - fast.start_time == api.end_time - api.start_time == 3_000
    assert fast.instrumentation_scope == api.instrumentation_scope
    assert ("orders/0", "orders/1") == fast.attributes["kafkahooks.partitions"]
    assert fast.context.trace_flags.sampled
    assert fast.context.trace_state == api.context.trace_state
    assert fast.context.trace_flags == api.context.trace_flags
    if isinstance(SAMPLERS[sampler], TaggingSampler):
        assert "tagging" == fast.attributes["sampled.by"]


def test_the_fast_span_path_follows_the_providers_sampler_when_it_changes() -> None:
    """ALWAYS_OFF on the fast path writes nothing; a static sampler put in its place is never asked
    per span, yet its answer is used; an application's sampler put in after it is asked for each
    span (the static answer is cached per sampler object, never for good)."""
    from kafkahooks._otel import SdkSpanWriter
    from kafkahooks.hooks import BrokerMeta
    from kafkahooks.hooks._records import Request

    t = Tracing(sampler=ALWAYS_OFF)
    plugin = BrokerSpans("producer", tracer_provider=t.provider)
    assert isinstance(plugin._writer, SdkSpanWriter)

    def one_request() -> None:
        request = Request(BrokerMeta(1, "127.0.0.1", 9092), ApiKey.PRODUCE, 0, 100, True)
        request.write_end_ns, request.time_to_write_ns = time.monotonic_ns(), 1_000
        plugin.on_requests_finished([request])

    one_request()
    assert [] == t.spans("send")
    asked: list[str] = []

    def counted(sampler: Any) -> Any:
        own = sampler.should_sample

        def should_sample(*args: Any, **kwargs: Any) -> Any:
            asked.append(type(sampler).__name__)
            return own(*args, **kwargs)

        sampler.should_sample = should_sample
        return sampler

    t.provider.sampler = counted(StaticSampler(Decision.RECORD_AND_SAMPLE))
    for _ in range(3):
        one_request()
    assert 3 == len(t.spans("send"))
    assert [] == asked, "a static sampler answers every root span alike: never asked per span"
    t.provider.sampler = counted(TaggingSampler())
    one_request()
    spans = t.spans("send")
    assert 4 == len(spans)
    assert ["TaggingSampler"] == asked
    assert "tagging" == spans[-1].attributes["sampled.by"]


@pytest.mark.parametrize("client", CLIENTS)
def test_single_record_operations_carry_no_batch_count(
    client: str, bootstrap: str, topic: str, tracing: Tracing
) -> None:
    """semconv: messaging.batch.message_count is for batch operations; a request or response that
    carried one record has none (and names its partition)."""
    produce(client, bootstrap, topic, [(b"only", None)], tracing="hooks", tracer_provider=tracing.provider)
    consume(client, bootstrap, topic, 1, tracing="hooks", tracer_provider=tracing.provider)
    (send,) = tracing.spans("send")
    polls = tracing.spans("poll")
    assert polls
    for span in [send, *polls]:
        assert "messaging.batch.message_count" not in span.attributes
        assert "0" == span.attributes["messaging.destination.partition.id"]


def test_the_fast_current_span_read_agrees_with_the_api() -> None:
    """kafkahooks reads the current span context per producer batch straight from the API's context
    variable: no span, a recording span, a non-recording one and after detaching, it answers what
    trace.get_current_span() answers, in threads and asyncio tasks alike."""
    from opentelemetry import context, trace

    from kafkahooks._otel import current_span_context

    def both() -> tuple[Any, Any]:
        return current_span_context(), trace.get_current_span().get_span_context()

    tracer = TracerProvider().get_tracer("test")
    seen = [both()]
    with tracer.start_as_current_span("outer"):
        seen.append(both())
        remote = trace.SpanContext(1, 2, True, trace.TraceFlags(trace.TraceFlags.SAMPLED))
        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote)))
        seen.append(both())
        context.detach(token)
        seen.append(both())

        async def in_task() -> tuple[Any, Any]:
            return both()

        seen.append(asyncio.run(in_task()))
        box: list[tuple[Any, Any]] = []
        thread = threading.Thread(target=lambda: box.append(both()))
        thread.start()
        thread.join()
        seen += box
    seen.append(both())
    assert all(fast == public for fast, public in seen), seen
    assert [False, True, True, True, True, False, False] == [fast.is_valid for fast, _ in seen]


def test_a_poll_span_adds_up_batches_across_partitions_and_links_each_context_once() -> None:
    """A Fetch response's batches, partition by partition and back again, two topics: the poll span
    counts each partition's records (names sorted), names no topic, and links each distinct
    creation context once, however many batches carried it; a batch whose value is refused is read
    again each time (each counted)."""
    from kafkahooks.hooks import BrokerMeta, Compression
    from kafkahooks.hooks._records import BatchInfo, Request
    from kafkahooks.tracing import decode_errors

    meta = BrokerMeta(1, "127.0.0.1", 9092)
    first = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    second = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-00000000000000aa-01"),)
    bad = (("traceparent", b"00-bad"),)
    t = Tracing()
    plugin = BrokerSpans("consumer", tracer_provider=t.provider)
    request = Request(meta, ApiKey.FETCH, 0, 100, True)
    request.read_end_ns, request.time_to_read_ns = time.monotonic_ns(), 5_000
    layout = [("t", 0, first), ("t", 0, (*first,)), ("t", 10, second), ("t", 0, bad), ("t", 0, bad), ("u", 2, first)]
    request.fetched = [
        (topic, p, BatchInfo(i + 1, 100, 100, Compression.NONE, i * 10, i * 10 + i, 7, headers))
        for i, (topic, p, headers) in enumerate(layout)
    ]
    before = decode_errors()
    plugin.on_requests_finished([request])
    (span,) = t.spans("poll")
    assert "poll" == span.name
    assert "messaging.destination.name" not in span.attributes
    assert ("t/0", "t/10", "u/2") == span.attributes["kafkahooks.partitions"]
    assert (1 + 2 + 4 + 5, 3, 6) == span.attributes["kafkahooks.partition_records"]
    assert 21 == span.attributes["messaging.batch.message_count"]
    assert [0xB7AD6B7169203331, 0xAA] == [link.context.span_id for link in span.links]
    assert before + 2 == decode_errors()
    t.provider.shutdown()
