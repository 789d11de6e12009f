"""Memory per topic (no broker): what ``tracing="hooks"`` keeps as an application writes to ever
more topics, through the same plugins and export path a wrapped producer uses.

Run: ``.venv/bin/python benchmarks/topics.py [topics]`` (default 17 000). One Produce request per
topic, each acknowledged; the export worker's pass, the data-stream exporter and a metric
collection run every 500 topics, as they would over time. Prints the memory traced by Python
(``tracemalloc``) after every 3 000 topics: every per-topic table is capped (label caps, then
caches that start over at 4 096 entries), so the figure rises and falls within a bound instead of
growing with the topic count.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from kafkahooks import _clock
from kafkahooks._instrument import Instrumentation
from kafkahooks.hooks import ApiKey, BrokerMeta, Compression
from kafkahooks.hooks._records import BatchInfo, Request

META = BrokerMeta(1, "127.0.0.1", 9092)
STEP = 3_000


class _Discard(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    topics = int(sys.argv[1]) if len(sys.argv) > 1 else 17_000
    reader = InMemoryMetricReader()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(_Discard()))
    meter = MeterProvider(metric_readers=[reader])
    kwargs: dict[str, Any] = {"tracing": "hooks", "tracer_provider": tracer, "meter_provider": meter}
    dispatch = Instrumentation.from_kwargs("producer", kwargs).dispatch
    log = dispatch.request_log
    assert log is not None

    def produce(first: int, count: int) -> None:
        for i in range(first, first + count):
            topic = f"topic-{i}"
            headers = tuple(dispatch.inject_batch_headers(topic, 0, ()) or ())
            r = Request(META, int(ApiKey.PRODUCE), _clock.monotonic_ns(), 200, True)
            r.write_end_ns, r.time_to_write_ns, r.bytes_written, r.bytes_read = _clock.monotonic_ns(), 1000, 200, 50
            r.batches = {(topic, 0): BatchInfo(1, 100, 100, Compression.NONE, 0, 0, 1_700_000_000_000, headers)}
            r.acks = [(topic, 0, 0, 0)]
            log.offer(r)
            if i % 500 == 0:
                log.process()
                reader.get_metrics_data()
        log.process()
        gc.collect()

    produce(0, 2_000)  # imports, first series, caches warm
    tracemalloc.start()
    done = 2_000
    print(f"{'topics':>8} {'traced MB':>10}")
    while done < topics:
        step = min(STEP, topics - done)
        produce(done, step)
        done += step
        print(f"{done:>8} {tracemalloc.get_traced_memory()[0] / 1e6:>10.1f}")
    print(f"peak {tracemalloc.get_traced_memory()[1] / 1e6:.1f} MB over {topics} topics")


if __name__ == "__main__":
    main()
