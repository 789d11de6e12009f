"""Micro-benchmarks (no broker): what kafkahooks costs per request on the I/O path.

Run: ``.venv/bin/python benchmarks/micro.py``. Each figure is the median of 7 repeats of a timed
loop, in microseconds per operation, next to a plain OpenTelemetry SDK span as the baseline.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from rich.table import Table

from kafkahooks.hooks import ApiKey, BrokerE2E, BrokerMeta, HookDispatcher, ProduceBatchMetrics
from kafkahooks.hooks._types import Compression
from kafkahooks.tracing import BrokerSpans

META = BrokerMeta(1, "127.0.0.1", 9092)
E2E = BrokerE2E(16_000, 80, 50_000, 30_000, 0, 500_000)
BATCH = ProduceBatchMetrics(150, 16_000, 16_000, Compression.NONE, 0, 1_700_000_000_000, ())


def per_op_us(fn: Callable[[], None], number: int, repeats: int = 7) -> float:
    """Median microseconds per call of ``fn`` over ``repeats`` timed loops of ``number`` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter_ns() - start) / number / 1000)
    return statistics.median(samples)


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


def bench_sdk_span() -> float:
    """A plain SDK span with seven attributes, started and ended (the baseline)."""
    tp, exporter = provider()
    tracer = tp.get_tracer("bench")
    attrs = {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "server.address": "127.0.0.1",
        "server.port": 9092,
        "messaging.destination.name": "t",
        "messaging.batch.message_count": 150,
    }

    def op() -> None:
        tracer.start_span("send t", attributes=attrs).end()
        exporter.clear()

    return per_op_us(op, 5_000)


def bench_io_path() -> float:
    """The hook calls BrokerSpans receives on the I/O path for one Produce request (read, batch, e2e)."""
    tp, _ = provider()
    dispatch = HookDispatcher([BrokerSpans("producer", tracer_provider=tp, capacity=10**7)])
    produce = int(ApiKey.PRODUCE)
    sink = dispatch.hooks[0].sink

    def op() -> None:
        dispatch.broker_write(META, produce, 16_000, 50_000, 30_000, None)
        dispatch.broker_read(META, produce, 80, 0, 500_000, None)
        dispatch.produce_batch_written(META, "t", 0, BATCH)
        dispatch.broker_e2e(META, produce, E2E)

    us = per_op_us(op, 20_000)
    sink.forget()
    return us


def bench_worker_span() -> float:
    """What the export worker spends turning one queued request into an exported SDK span."""
    tp, exporter = provider()
    plugin = BrokerSpans("producer", tracer_provider=tp, capacity=10**7)
    produce = int(ApiKey.PRODUCE)
    item = (produce, META, time.time_ns() - 1000, time.time_ns(), E2E, (("t", 0, 150, ()),), None)

    def op() -> None:
        plugin._emit(item)
        exporter.clear()

    return per_op_us(op, 5_000)


def bench_produce_checkpoint() -> float:
    """Data streams, producer: a batch opens (checkpoint + header) and is acknowledged (recorded)."""
    from kafkahooks.datastreams import DataStreams, data_stream_hooks

    streams = DataStreams("bench", "prod", exporters=[], capacity=10**7)
    hooks = data_stream_hooks(streams)
    batch = {}

    def op() -> None:
        header = hooks.inject_batch_headers("orders", 0, ())
        batch["m"] = ProduceBatchMetrics(150, 16_000, 16_000, Compression.NONE, 0, 0, tuple(header or ()))
        hooks.on_produce_batch_written(META, "orders", 0, batch["m"])

    us = per_op_us(op, 20_000)
    streams.forget()
    return us


def bench_consume_checkpoint() -> float:
    """Data streams, consumer: one fetched batch remembered, then handed out in one poll list."""
    from kafkahooks.datastreams import DataStreams, PathwayContext, data_stream_hooks
    from kafkahooks.hooks import FetchBatchMetrics

    streams = DataStreams("bench", "prod", exporters=[], capacity=10**7)
    hooks = data_stream_hooks(streams)
    header = (("dd-pathway-ctx-base64", PathwayContext(12345, 1_700_000_000_000, 1_700_000_000_000).encode_b64()),)

    class Record:
        __slots__ = ("offset", "timestamp")

        def __init__(self, offset: int) -> None:
            self.offset, self.timestamp = offset, 1_700_000_000_000

    state = {"base": 0}

    def op() -> None:
        base = state["base"]
        records = [Record(base), Record(base + 149)]  # a poll list's ends are all the grouping reads
        hooks.on_fetch_batch_read(
            META, "orders", 0, FetchBatchMetrics(150, 16_000, 16_000, Compression.NONE, base, base + 149, 0, header)
        )
        hooks.on_records_polled("orders", 0, records)
        state["base"] = base + 150

    us = per_op_us(op, 20_000)
    streams.forget()
    return us


def bench_empty_dispatch() -> float:
    """A write event with no hook listening for its key (the filtered-out path)."""
    dispatch = HookDispatcher([BrokerSpans("producer")])
    metadata = int(ApiKey.METADATA)
    return per_op_us(lambda: dispatch.broker_write(META, metadata, 100, 1, 1, None), 200_000)


def main() -> None:
    console = Console()
    rows = [
        ("plain OTel SDK span (start + end, 7 attributes)", bench_sdk_span()),
        ("tracing=hooks, I/O path per Produce request (4 hook calls)", bench_io_path()),
        ("tracing=hooks, export worker per span", bench_worker_span()),
        ("data streams, producer checkpoint per batch (open + ack)", bench_produce_checkpoint()),
        ("data streams, consumer checkpoint per batch (fetch + hand-out)", bench_consume_checkpoint()),
        ("dispatch of a key no hook listens to", bench_empty_dispatch()),
    ]
    table = Table(title=f"kafkahooks micro-benchmarks (Python {platform.python_version()}, {sys.platform})")
    table.add_column("operation")
    table.add_column("µs per op (median of 7)", justify="right")
    for name, us in rows:
        table.add_row(name, f"{us:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
