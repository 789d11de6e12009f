"""Hostile and heavy traffic: nothing from a header reaches the logs, memory stays bounded, forks
and closes never hang, per-topic state stays bounded."""

from __future__ import annotations

import asyncio
import base64
import http.server
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from kafkahooks import export
from kafkahooks._selfstats import snapshot
from kafkahooks.datastreams import DataStreams, JsonLinesExporter, OtelMetricsExporter, PathwayContext
from kafkahooks.tracing import process_span, record_baggage, record_context
from tests.test_fused import CONSUME_APIS, consume_with

CLIENT_LOGGERS = ("kafka", "aiokafka")
MARK = "EVIL7f3a"
"""In every hostile value: no log line may contain it."""


def hostile_values() -> list[tuple[str, bytes]]:
    forged = f"\n2026-12-01 [error    ] forged_line {MARK}\n\x1b[31m{MARK}\x1b[0m".encode()
    huge = (MARK * 140_000).encode()[:1_000_000]
    return [
        ("b3", forged),
        ("b3", huge),
        ("b3", f"0af7651916cd43dd-b7ad6b7169203331-{MARK}".encode()),
        ("x-b3-traceid", forged),
        ("X-B3-SpanId", huge),
        ("uber-trace-id", forged),
        ("uber-trace-id", f"1:2:0:{MARK}".encode()),
        ("uber-trace-id", huge),
        ("baggage", f"k={MARK}\n,\x1b[2J{MARK}=x".encode()),
        ("baggage", huge),
        (f"uberctx-{MARK}\n", forged),
        ("uberctx-k", f"%FF{MARK}".encode()),
        ("traceparent", forged),
        ("traceparent", (MARK * 140_000).encode()[:1_000_000]),
        ("traceparent", b"00-" + MARK.encode() + b"\n" * 40),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tracestate", f"k={MARK}\n,\x1b[2J{MARK}=x".encode()),
        ("tracestate", (f"a{MARK}=" * 200_000).encode()[:1_000_000]),
        ("dd-pathway-ctx-base64", forged),
        ("dd-pathway-ctx-base64", base64.b64encode(MARK.encode() * 10)),
        ("dd-pathway-ctx", forged),
    ]


def send_each_as_a_batch(bootstrap: str, topic: str, headers_per_record: list[list[tuple[str, bytes]]]) -> None:
    """Each record in a batch of its own, by aiokafka's bare producer (its compiled CRC-32C:
    kafka-python's pure-Python one checksums about 7 MB/s)."""
    from aiokafka import AIOKafkaProducer

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8_000_000)
        await producer.start()
        try:
            for headers in headers_per_record:
                await producer.send_and_wait(topic, b"v", headers=headers)
        finally:
            await producer.stop()

    asyncio.run(produce())


@pytest.mark.parametrize(("client", "api"), CONSUME_APIS)
def test_no_byte_of_a_hostile_header_reaches_any_log(
    client: str,
    api: str,
    bootstrap: str,
    make_topic: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    every_carrier: None,
) -> None:
    """Forged log lines, terminal escapes and 1 MB values in every trace-context carrier (W3C,
    baggage, B3 single and multi, Jaeger and its baggage) and pathway headers, on every consume API
    with tracing="hooks", then through ``record_context``, ``record_baggage`` and ``process_span``:
    every record arrives, and neither structlog nor stdlib logging output outside the clients' own
    loggers holds a byte of any value (only names, lengths, reasons)."""
    topic = make_topic(1)
    cases = [[pair] for pair in hostile_values()]
    cases.append(
        [
            ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("tracestate", b"k=" + MARK.encode() + b"\n"),
        ]
    )
    send_each_as_a_batch(bootstrap, topic, cases)
    caplog.set_level(logging.DEBUG)
    # The clients' own debug logs print raw responses, as they do bare: not ours to judge.
    for client_logger in CLIENT_LOGGERS:
        caplog.set_level(logging.WARNING, logger=client_logger)
    before = snapshot()
    with structlog.testing.capture_logs() as events:
        records = consume_with(client, api, bootstrap, topic, len(cases), tracing="hooks")
        export.flush()
        for record in records:
            record_context(record)
            record_baggage(record)
            with process_span(record, as_child=True):
                pass
    assert len(cases) == len(records)
    ours = [r.getMessage() for r in caplog.records if r.name.split(".")[0] not in CLIENT_LOGGERS]
    assert all(MARK not in line for line in ours), [line[:200] for line in ours if MARK in line][:1]
    assert all(MARK not in repr(event) for event in events), [e for e in events if MARK in repr(e)][:1]
    after = snapshot()
    for refused in ("trace_context_decode_errors", "pathway_decode_errors"):
        assert after.get(refused, 0) > before.get(refused, 0), refused


def test_hostile_headers_do_not_grow_memory(bootstrap: str, topic: str, every_carrier: None) -> None:
    """400 batches whose first record carries a 100 KB value in a trace-context carrier (W3C, B3,
    Jaeger) or the pathway header, between batches with valid contexts, read with tracing="hooks":
    the table of contexts read keeps the valid ones and none of the 100 KB values (values that
    long are refused unread, never cached)."""
    from kafkahooks.tracing import carriers

    big = [
        ("traceparent", b"0" * 100_000),
        ("tracestate", b"k=" + b"v" * 100_000),
        ("dd-pathway-ctx-base64", b"A" * 100_000),
        ("b3", b"0" * 100_000),
        ("x-b3-traceid", b"0" * 100_000),
        ("uber-trace-id", b"0" * 100_000),
    ]
    valid = [[("traceparent", b"00-%032x-b7ad6b7169203331-01" % (i + 1))] for i in range(40)]
    send_each_as_a_batch(bootstrap, topic, [*[[big[i % len(big)]] for i in range(400)], *valid])
    streams = DataStreams("hostile", "test", exporters=[])
    records = consume_with("aiokafka", "getmany", bootstrap, topic, 440, tracing="hooks", data_streams=streams)
    export.flush()
    assert 440 == len(records)
    table = carriers()._parsed  # the consumer's: the global propagator's carriers
    assert len(table) >= 40, "the valid contexts are remembered"
    assert max(sum(len(v) for _, v in key) for key in table) <= 1_300
    assert sum(len(v) for key in table for _, v in key) < 5_000_000


HUGE = 100_000
"""A header value far over every limit: kafkahooks must neither copy nor keep it."""


@pytest.mark.parametrize(("client", "api"), [("aiokafka", "getmany"), ("kafka-python", "poll")])
def test_huge_headers_add_nothing_to_the_consumers_peak_heap(
    client: str, api: str, bootstrap: str, topic: str, every_carrier: None
) -> None:
    """1 200 records, each its own batch, each with a 100 KB value under a key kafkahooks reads
    (traceparent, tracestate, b3, uber-trace-id, the pathway): read with tracing="hooks" and data
    streams, the consumer's peak traced heap stays within 10 MB of the same read with nothing
    installed, and every refused value is counted (values that long are never copied, so none
    waits in a buffer for the export worker)."""
    import tracemalloc

    keys = ("traceparent", "tracestate", "b3", "uber-trace-id", "dd-pathway-ctx-base64", "dd-pathway-ctx")
    from aiokafka import AIOKafkaProducer

    async def produce() -> None:
        # aiokafka's producer, for its compiled CRC-32C: kafka-python's pure-Python one took 18 s
        # to checksum these 120 MB, most of this test's time.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1_000_000)
        await producer.start()
        try:
            sent = [
                await producer.send(topic, b"v", headers=[(keys[i % len(keys)], b"0" * HUGE)])
                for i in range(1_200)  # each record over batch_size (16 KB): a batch of its own
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(produce())

    def peak(**kwargs: Any) -> int:
        if client == "kafka-python":
            kwargs["check_crcs"] = False  # its pure-Python CRC-32C reads 1 MB/s under tracemalloc
        tracemalloc.start()
        try:
            got = consume_with(client, api, bootstrap, topic, 1_200, **kwargs)
            export.flush()
            assert 1_200 == len(got)
            del got
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    bare = peak(tracing="off")
    refused = snapshot().get("header_values_too_long", 0)
    streams = DataStreams("huge", "test", exporters=[])
    wrapped = peak(tracing="hooks", data_streams=streams)
    assert wrapped - bare < 10_000_000, (wrapped >> 20, bare >> 20)
    assert snapshot()["header_values_too_long"] - refused >= 1_200


def test_invented_pathways_fold_into_bounded_metric_series(bootstrap: str, topic: str) -> None:
    """600 batches, each with a distinct valid pathway: the data-stream metrics keep at most
    max_series pathways, the rest fold into an overflow series, and every record is counted."""
    headers = [
        [("dd-pathway-ctx-base64", PathwayContext(i + 1, 1_700_000_000_000, 1_700_000_000_000).encode_b64())]
        for i in range(600)
    ]
    send_each_as_a_batch(bootstrap, topic, headers)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    folded = snapshot().get("datastreams_series_folded", 0)
    streams = DataStreams("fold", "test", exporters=[OtelMetricsExporter(provider, max_series=100)])
    consume_with("kafka-python", "poll", bootstrap, topic, 600, data_streams=streams)
    streams.flush(final=True)
    data = reader.get_metrics_data()
    assert data is not None
    hashes: set[str] = set()
    total = 0
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "kafkahooks.datastreams.messages":
                    for point in metric.data.data_points:
                        hashes.add(str(point.attributes["kafkahooks.pathway.hash"]))
                        total += point.value
    assert 600 == total
    assert len(hashes) <= 101
    assert "overflow" in hashes
    assert snapshot()["datastreams_series_folded"] > folded
    provider.shutdown()


def test_per_topic_state_is_bounded(bootstrap: str, make_topic: Callable[..., str]) -> None:
    """A producer writing to more topics than the caps: the client metrics label the first
    MetricLabels.max_topics topics and fold the rest into the topic-less series; the data-stream
    metrics keep max_series edges and fold the rest into one series whose topic reads "overflow"
    (not one overflow series per topic). Every record is counted either way."""
    from kafkahooks.kafka import KafkaProducer
    from kafkahooks.metrics import MetricLabels, MetricsHooks

    topics = [make_topic(1) for _ in range(60)]
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    plugin = MetricsHooks(meter_provider=provider, labels=MetricLabels(max_topics=20))
    streams = DataStreams("topics", "test", exporters=[OtelMetricsExporter(provider, max_series=20)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[plugin], data_streams=streams)
    for name in topics:
        producer.send(name, b"v").get(timeout=10)
    producer.close()
    streams.flush(final=True)
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: metric.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    sent = points["messaging.client.sent.messages"]
    assert 60 == sum(p.value for p in sent)
    assert 20 == len({p.attributes.get("messaging.destination.name") for p in sent} - {None})
    edges = points["kafkahooks.datastreams.messages"]
    assert 60 == sum(p.value for p in edges)
    assert 21 == len(edges)
    assert 40 == sum(p.value for p in edges if p.attributes["kafkahooks.edge.topic"] == "overflow")
    provider.shutdown()


class Discard(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def test_memory_per_new_topic_past_the_caps_stays_under_1_kb() -> None:
    """What ``tracing="hooks"`` keeps for each further topic a producer writes to, once the label
    and series caps are reached (the worst case: while its caches fill, before they start over),
    through the plugins and export path a wrapped producer uses, measured by tracemalloc: under
    1 KB per topic (it was ~1.8 KB: span attributes and tags cached per topic, hashes cached
    twice, each topic's last header value kept). ``benchmarks/topics_broker.py`` measures the
    same against the broker."""
    import gc
    import tracemalloc

    from kafkahooks import _clock
    from kafkahooks._instrument import Instrumentation
    from kafkahooks.datastreams._current import _current
    from kafkahooks.hooks import ApiKey, BrokerMeta, Compression
    from kafkahooks.hooks._records import BatchInfo, Request

    meta = BrokerMeta(1, "127.0.0.1", 9092)
    reader = InMemoryMetricReader()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(Discard()))
    meter = MeterProvider(metric_readers=[reader])
    streams = DataStreams("topics", "test", exporters=[OtelMetricsExporter(meter)])
    kwargs: dict[str, Any] = {
        "tracing": "hooks",
        "tracer_provider": tracer,
        "meter_provider": meter,
        "data_streams": streams,
    }
    dispatch = Instrumentation.from_kwargs("producer", kwargs).dispatch
    log = dispatch.request_log
    assert log is not None

    def produce(topics: range) -> None:
        for i in topics:
            topic = f"topic-{i}"
            headers = tuple(dispatch.inject_batch_headers(topic, 0, ()) or ())
            r = Request(meta, int(ApiKey.PRODUCE), _clock.monotonic_ns(), 200, True)
            r.write_end_ns, r.time_to_write_ns, r.bytes_written, r.bytes_read = _clock.monotonic_ns(), 1000, 200, 50
            r.batches = {(topic, 0): BatchInfo(1, 100, 100, Compression.NONE, 0, 0, 1_700_000_000_000, headers)}
            r.acks = [(topic, 0, i, 0)]
            log.offer(r)
            if i % 250 == 0:
                log.process()
                streams.process()
                reader.get_metrics_data()
        log.process()
        streams.process()
        reader.get_metrics_data()
        gc.collect()

    produce(range(1_500))  # past the caps: 1 000 labelled topics, 1 000 data-stream series
    token = _current.set(None)
    try:  # batches in flight: the last 4 096 checkpoints' values wait for their acknowledgements
        for parent in range(4_200):
            _current.set(PathwayContext(parent + 1, 1_700_000_000_000, 1_700_000_000_000))
            dispatch.inject_batch_headers("warm", 0, ())
    finally:
        _current.reset(token)
    tracemalloc.start()
    try:
        produce(range(1_500, 2_000))  # whatever a collection reallocates is traced from here on
        before = tracemalloc.get_traced_memory()[0]
        produce(range(2_000, 3_500))
        per_topic = (tracemalloc.get_traced_memory()[0] - before) / 1_500
    finally:
        tracemalloc.stop()
        tracer.shutdown()
        meter.shutdown()
    assert per_topic < 1_024, f"{per_topic:.0f} bytes per topic"


def test_clients_share_their_providers_instruments() -> None:
    """However many clients are built, kafkahooks makes one set of instruments per meter provider
    (OpenTelemetry's proxy provider keeps every instrument it is asked for, for ever)."""
    from kafkahooks.metrics import MetricsHooks

    first, second = MetricsHooks(), MetricsHooks()
    assert first._m is second._m


class SlowExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        time.sleep(0.01)
        return SpanExportResult.SUCCESS


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_forks_during_produce_never_hang_the_child(bootstrap: str, topic: str, tmp_path: Path) -> None:
    """50 forks while a producer with tracing="hooks" and a slow exporter keeps the parent's export
    worker busy (holding kafkahooks' locks at random moments): every child exports its own
    checkpoint and closes within seconds."""
    from kafkahooks.kafka import KafkaProducer

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SlowExporter()))
    stop = threading.Event()

    def keep_producing() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, tracing="hooks", tracer_provider=provider, linger_ms=0)
        while not stop.is_set():
            producer.send(topic, b"v")
        producer.close()

    worker = threading.Thread(target=keep_producing)
    worker.start()
    time.sleep(1)
    slow = []
    try:
        for i in range(50):
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    child = DataStreams("child", "test", exporters=[JsonLinesExporter(tmp_path / f"{i}.jsonl")])
                    child.checkpoint(["direction:out", "topic:t", "type:kafka"])
                    code = 0 if export.flush(timeout_s=5) else 3
                    child.flush(final=True)
                finally:
                    os._exit(code)
            deadline = started + 15
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                assert time.monotonic() < deadline, f"fork {i} hung"
                time.sleep(0.02)
            assert 0 == os.waitstatus_to_exitcode(status), f"fork {i}"
            assert (tmp_path / f"{i}.jsonl").read_text().strip()
            slow.append(time.monotonic() - started)
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join()
        provider.shutdown()
    assert max(slow) < 10, slow


class Stuck(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Any) -> SpanExportResult:
        self.release.wait(60)
        return SpanExportResult.SUCCESS


def test_a_stuck_exporter_costs_one_timeout_not_one_per_close(bootstrap: str, topic: str) -> None:
    """Eight aiokafka producers stopping at once while the span exporter hangs: together they wait
    about one flush timeout, the event loop keeps running and its default executor stays free."""
    stuck = Stuck()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(stuck))

    async def run() -> tuple[float, float]:
        from kafkahooks.aiokafka import AIOKafkaProducer

        producers = [
            AIOKafkaProducer(bootstrap_servers=bootstrap, tracing="hooks", tracer_provider=provider) for _ in range(8)
        ]
        await asyncio.gather(*(p.start() for p in producers))
        for p in producers:
            await p.send_and_wait(topic, b"v")
        export.worker().wake()
        await asyncio.sleep(0.5)  # the worker is now stuck in the exporter
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        stopping = asyncio.gather(*(p.stop() for p in producers))
        await asyncio.sleep(0.2)
        probe = time.monotonic()
        await loop.run_in_executor(None, socket.getaddrinfo, "127.0.0.1", 80)
        executor_s = time.monotonic() - probe
        await stopping
        return time.monotonic() - started, executor_s

    try:
        took, executor_s = asyncio.run(run())
    finally:
        stuck.release.set()
        export.flush()
        provider.shutdown()
    assert took < 7.5, took
    assert executor_s < 1.0, executor_s


class Drip(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:  # the client gave up, as it should
                return
            time.sleep(0.2)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_slow_drip_agent_cannot_hold_the_export_worker() -> None:
    """An agent that answers a byte every 200 ms: a post gives up within its timeout in all (each
    byte arriving in time used to keep it going for minutes)."""
    from kafkahooks.datastreams._exporters import post

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            post(f"http://127.0.0.1:{server.server_port}/v0.1/pipeline_stats", b"x", {}, 1.0)
    finally:
        server.shutdown()
    assert time.monotonic() - started < 2.5
