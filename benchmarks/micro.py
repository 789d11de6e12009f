"""Micro-benchmarks (no broker): what ``tracing="hooks"`` costs per Produce request and per
consumed batch, split by where the time goes, next to the OpenTelemetry SDK's own costs.

Run: ``.venv/bin/python benchmarks/micro.py``. A request carries one partition batch of 137
records of 100 bytes (what the throughput benchmark's aiokafka producer sends with linger 5 ms);
the batch bytes are real v2 batches built by kafka-python's own builder. Each figure is the
*minimum* over 9 timed loops (microseconds per operation): on a shared machine the minimum is the
figure least disturbed by other work; the median is printed beside it.
"""

from __future__ import annotations

import functools
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rich.console import Console
from rich.table import Table

from kafkahooks._identity import ClientIdentity
from kafkahooks._otel import recorder
from kafkahooks._wire import aiokafka as _aiokafka
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.datastreams import DataStreams, OtelMetricsExporter, data_stream_hooks, set_pathway
from kafkahooks.export import worker
from kafkahooks.hooks import ApiKey, BrokerMeta, HookDispatcher
from kafkahooks.metrics import MetricsHooks
from kafkahooks.tracing import BrokerSpans

META = BrokerMeta(1, "127.0.0.1", 9092)
RECORDS = 137
VALUE = b"x" * 100
PRODUCE = int(ApiKey.PRODUCE)
FETCH = int(ApiKey.FETCH)


class _Discard:
    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def timed(fn: Callable[[], object], number: int, repeats: int = 9) -> tuple[float, float]:
    """(minimum, median) microseconds per call of ``fn`` over ``repeats`` loops of ``number`` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter_ns() - start) / number / 1000)
    return min(samples), statistics.median(samples)


def batch_bytes(headers: list[tuple[str, bytes]], base_offset: int = 0, records: int = RECORDS) -> bytes:
    """A real v2 record batch: ``records`` records, ``headers`` on the first one only."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    now = int(time.time() * 1000)
    for i in range(records):
        builder.append(i, now, None, VALUE, headers if i == 0 else [])
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")
    return bytes(raw)


class Telemetry:
    """What tracing="hooks" installs (spans at 100%, data streams, default metrics), on real SDK
    pipelines that discard what they export (as the throughput benchmark's modes do)."""

    def __init__(self, role: str) -> None:
        self.tracer = TracerProvider()
        self.tracer.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=1 << 20))  # type: ignore[arg-type]
        self.meter = MeterProvider(metric_readers=[InMemoryMetricReader()])
        identity = ClientIdentity(role=role, client_id="bench", group_id="g" if role == "consumer" else None)
        self.streams = DataStreams("bench", "prod", exporters=[OtelMetricsExporter(self.meter)], capacity=1 << 22)
        self.spans = BrokerSpans(role, tracer_provider=self.tracer, identity=identity, capacity=1 << 22)
        self.metrics = MetricsHooks(identity, meter_provider=self.meter, capacity=1 << 22)
        self.dsm = data_stream_hooks(self.streams, identity)
        self.dispatch = HookDispatcher([self.spans, self.metrics, self.dsm], name=f"micro-{role}")
        assert self.dispatch.request_log is not None
        self.log = self.dispatch.request_log
        # This benchmark runs the export worker's passes itself, on this thread, to time them.
        worker().unregister(self.log)
        worker().unregister(self.streams)

    def close(self) -> None:
        self.log.seal()
        self.tracer.shutdown()
        self.meter.shutdown()


def produce_request(tap: ConnectionTap, records: bytes) -> None:
    """One Produce request's life on the I/O path, as the aiokafka adapter drives the tap."""
    now = time.monotonic_ns()
    sent = tap.new_request(PRODUCE, now, 0, True, [("orders", [(0, records)])])
    tap.written(sent, len(records) + 80, now + 1_000, now + 30_000, None)
    req = tap.frame_read(60, now + 500_000)
    assert req is not None
    tap.produce_acked(req, [("orders", 0, 0, 42)])
    tap.decoded(req, 0)


def fetch_response(tap: ConnectionTap, records: bytes) -> None:
    """One Fetch request's life on the I/O path with one partition's ``records`` in its response."""
    now = time.monotonic_ns()
    sent = tap.new_request(FETCH, now, 100, True)
    tap.written(sent, 100, now, now + 1_000, None)
    req = tap.frame_read(len(records) + 60, now + 2_000_000)
    assert req is not None
    tap.fetched(req, "orders", 0, records)
    tap.decoded(req, 0)


def main() -> None:
    console = Console()
    rows: list[tuple[str, str, tuple[float, float]]] = []

    # -- the SDK's own costs, for scale --------------------------------------------------------------
    t = Telemetry("producer")
    tracer = t.tracer.get_tracer("bench")
    attrs = {"messaging.system": "kafka", "messaging.operation.name": "send", "messaging.destination.name": "t"}
    rows.append(
        (
            "SDK",
            "plain OTel span, started and ended (3 attributes)",
            timed(lambda: tracer.start_span("send t", attributes=attrs).end(), 5_000),
        )
    )
    histogram = t.meter.get_meter("bench").create_histogram("h", unit="s")
    rows.append(
        ("SDK", "histogram point, public API (3 attributes)", timed(lambda: histogram.record(0.01, attrs), 20_000))
    )
    fast = recorder(histogram)
    rows.append(
        ("SDK", "histogram point, kafkahooks' recorder (same attributes)", timed(lambda: fast(0.01, attrs), 20_000))
    )

    # -- producer: per batch in the application's task, per request on the I/O path --------------------
    set_pathway(None)
    inject = t.dispatch.inject_batch_headers
    rows.append(
        (
            "produce",
            "batch opens: headers injected (span context + pathway)",
            timed(lambda: inject("orders", 0, ()), 20_000),
        )
    )
    header = inject("orders", 0, ()) or []
    records = batch_bytes(header)
    tap = ConnectionTap(t.dispatch, META, None, _aiokafka.first_headers)  # as the aiokafka adapter builds it
    rows.append(
        (
            "produce",
            "I/O path per Produce request (tap, batch walk, one log append)",
            timed(lambda: produce_request(tap, records), 5_000),
        )
    )
    t.log.buffer.clear()

    # The export worker: fill the log, then time one pass over it, per request.
    def worker_pass(n: int, plugins: list[Any]) -> float:
        best = float("inf")
        for _ in range(7):
            for _ in range(n):
                produce_request(tap, records)
            items = t.log.buffer.drain()
            start = time.perf_counter_ns()
            for plugin in plugins:
                plugin.on_requests_finished(items)
            t.streams.process()
            best = min(best, (time.perf_counter_ns() - start) / n / 1000)
        return best

    for name, plugins in (
        ("export worker per request: span", [t.spans]),
        ("export worker per request: metrics", [t.metrics]),
        ("export worker per request: data-stream checkpoint", [t.dsm]),
    ):
        us = worker_pass(2_000, plugins)
        rows.append(("produce", name, (us, us)))
    t.close()

    # -- consumer: per batch ---------------------------------------------------------------------------
    c = Telemetry("consumer")
    ctap = ConnectionTap(c.dispatch, META, None, _aiokafka.first_headers)
    assert c.dispatch.handouts is not None
    tracker = c.dispatch.handouts
    state = {"base": 0}
    fetched_batch = batch_bytes(header)

    def fetch_and_hand_out() -> None:
        base = state["base"]
        raw = bytearray(fetched_batch)
        raw[0:8] = base.to_bytes(8, "big")
        fetch_response(ctap, bytes(raw))
        cursor = tracker.cursor("orders", 0, base)
        cursor.entered(base, base + RECORDS, 0)
        cursor.finished()
        state["base"] = base + RECORDS

    rows.append(
        (
            "consume",
            "I/O + hand-out per fetched batch (walk, entry with checkpoint, exit)",
            timed(fetch_and_hand_out, 5_000),
        )
    )
    c.log.buffer.clear()
    best = float("inf")
    for _ in range(7):
        for _ in range(2_000):
            fetch_and_hand_out()
        items = c.log.buffer.drain()
        start = time.perf_counter_ns()
        c.log.buffer._items.extend(items)  # the same pass the worker makes
        c.log.process()
        c.streams.process()
        best = min(best, (time.perf_counter_ns() - start) / 2_000 / 1000)
    rows.append(("consume", "export worker per fetched batch (poll span, metrics, checkpoint)", (best, best)))
    c.close()
    small_batches(rows, [("traceparent", TRACEPARENT), *header])

    carriers_rows(rows)
    batch_contexts_rows(rows)

    table = Table(title=f"kafkahooks micro-benchmarks (Python {platform.python_version()}, {sys.platform})")
    table.add_column("")
    table.add_column("operation")
    table.add_column("µs, min of 9", justify="right")
    table.add_column("median", justify="right")
    for group, name, (low, mid) in rows:
        table.add_row(group, name, f"{low:.2f}", f"{mid:.2f}")
    console.print(table)
    produce_total = sum(low for group, name, (low, _) in rows if group == "produce")
    console.print(
        f'tracing="hooks" per Produce request of {RECORDS} records, all threads: {produce_total:.1f} µs '
        f"({produce_total / RECORDS:.2f} µs per record)"
    )


TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SMALL = 100
"""One-record batches per Fetch response in :func:`small_batches`."""


def small_batches(rows: list[tuple[str, str, tuple[float, float]]], header: list[tuple[str, bytes]]) -> None:
    """Per one-record batch, a hundred to a Fetch response, each carrying a producer's trace
    context and pathway (what a consumer of a low-rate or ``linger_ms=0`` producer reads): the
    consumer's thread (tap and walk, then each batch's entry and exit in one ``getmany``) and the
    export worker's pass over what that left."""
    c = Telemetry("consumer")
    tap = ConnectionTap(c.dispatch, META, None, _aiokafka.first_headers)
    assert c.dispatch.handouts is not None
    tracker = c.dispatch.handouts
    one = batch_bytes(header, records=1)
    responses = 40  # 4 000 batches a loop: within the request log's byte budget until its pass

    def response(base: int) -> bytes:
        out = bytearray()
        for i in range(SMALL):
            raw = bytearray(one)
            raw[0:8] = (base + i).to_bytes(8, "big")
            out += raw
        return bytes(out)

    raws = [response(j * SMALL) for j in range(responses)]

    def loop() -> None:
        for j, raw in enumerate(raws):
            base = j * SMALL
            fetch_response(tap, raw)
            scope = tracker.begin_scope()
            cursor = tracker.cursor("orders", 0, base)
            for b in range(base, base + SMALL):
                cursor.entered(b, b + 1, 0)
            cursor.finished()
            tracker.end_scope(scope)

    thread, worker_pass = [], []
    for _ in range(9):
        start = time.perf_counter_ns()
        loop()
        thread.append((time.perf_counter_ns() - start) / responses / SMALL / 1000)
        start = time.perf_counter_ns()
        c.log.process()
        c.streams.process()
        worker_pass.append((time.perf_counter_ns() - start) / responses / SMALL / 1000)
    assert 0 == c.log.dropped, "the loop outgrew the request log: the figures would time refusals"
    label = f"one-record batches, {SMALL} to a response"
    rows.append(("consume", f"{label}: consumer's thread per batch", (min(thread), statistics.median(thread))))
    rows.append(("consume", f"{label}: export worker per batch", (min(worker_pass), statistics.median(worker_pass))))
    c.close()


def batch_contexts_rows(rows: list[tuple[str, str, tuple[float, float]]]) -> None:
    """Per fetched batch of several records, on the consumer's thread: ``record_context``'s table
    remembering its first record's headers (each batch from its own trace, or a run of batches
    from one, which share a range), and one lookup of a record among 10 000 remembered batches."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from kafkahooks.tracing import BatchContexts, Carriers

    reader = Carriers(TraceContextTextMapPropagator())
    n = 10_000
    own = [(("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-%016x-01" % (i + 1)),) for i in range(n)]
    one = [(("traceparent", bytes(bytearray(TRACEPARENT))),) for _ in range(n)]  # equal, not the same
    for label, headers in (("each batch its own trace", own), ("a run from one trace", one)):
        samples = []
        for _ in range(9):
            table = BatchContexts()
            add = table.add_headers
            start = time.perf_counter_ns()
            for i, h in enumerate(headers):
                add("orders", 0, 2 * i, 2 * i + 1, h, reader)
            samples.append((time.perf_counter_ns() - start) / n / 1000)
        rows.append(
            ("consume", f"batch remembered for record_context, {label}", (min(samples), statistics.median(samples)))
        )
    table = BatchContexts()
    for i, h in enumerate(own):
        table.add_headers("orders", 0, 2 * i, 2 * i + 1, h, reader)
    rows.append(
        (
            "consume",
            "record_context lookup, newest of 10 000 batches (context cached)",
            timed(lambda: table.lookup("orders", 0, 2 * n - 1), 20_000),
        )
    )
    from collections import namedtuple

    from kafkahooks.tracing._context import batch_contexts as shared
    from kafkahooks.tracing._process import batch_contexts

    record = namedtuple("record", "topic partition offset headers")
    got: list[Any] = []
    for b in range(100):  # a getmany of 100 batches of 100 records, each batch from its own trace
        shared.add_headers("micro-process", 0, 100 * b, 100 * b + 99, own[b], reader)
        got += [record("micro-process", 0, 100 * b + i, list(own[b]) if i == 0 else []) for i in range(100)]
    low, mid = timed(lambda: batch_contexts(got), 20)
    rows.append(("consume", "process_span's contexts, per record of 100 batches of 100", (low / 10_000, mid / 10_000)))
    from kafkahooks.tracing import record_context

    def each() -> None:
        for r in got:
            record_context(r)

    low, mid = timed(each, 20)
    rows.append(("consume", "record_context, per record of 100 batches of 100", (low / 10_000, mid / 10_000)))


def carriers_rows(rows: list[tuple[str, str, tuple[float, float]]]) -> None:
    """Per batch, for each trace-context carrier: writing the application's context (the same
    context as the last batch: one comparison; a new context every batch: the propagator runs),
    and reading it back from a consumed batch's first record on the export worker."""
    from opentelemetry import baggage, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from kafkahooks.bench._modes import _propagator
    from kafkahooks.tracing import Carriers

    def context(i: int) -> Any:
        span = NonRecordingSpan(
            SpanContext(0x0AF7651916CD43DD8448EB211C80319C + i, 0xB7AD6B7169203331, False, TraceFlags(1))
        )
        return baggage.set_baggage("tenant", "acme", context=trace.set_span_in_context(span))

    two = [context(0), context(1)]
    for name in ("tracecontext", "tracecontext,baggage", "b3multi", "jaeger"):
        try:
            carriers = Carriers(_propagator(name))
        except ImportError:  # the B3 and Jaeger propagators come with kafkahooks[test]
            continue
        turn = [0]

        def alternate(carriers: Carriers = carriers, turn: list[int] = turn) -> None:
            turn[0] ^= 1
            carriers.inject(two[turn[0]])

        written = carriers.inject(two[0]) or ()
        rows.append(
            (
                f"carrier {name}",
                "write, same context as the last batch",
                timed(functools.partial(carriers.inject, two[0]), 50_000),
            )
        )
        rows.append((f"carrier {name}", "write, a new context every batch", timed(alternate, 10_000)))
        rows.append(
            (
                f"carrier {name}",
                "read, per consumed batch (a context seen before)",
                timed(functools.partial(carriers.extract, written), 10_000),
            )
        )


if __name__ == "__main__":
    main()
