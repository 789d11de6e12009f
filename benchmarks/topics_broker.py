"""Memory per topic against the broker: one producer writing to ever more new topics, bare and
wrapped (``tracing="hooks"``, a global OpenTelemetry SDK), each in its own fresh process.

Run: ``.venv/bin/python benchmarks/topics_broker.py --client aiokafka --topics 3000``
(``--client kafka`` for kafka-python; ``--bootstrap host:port`` for an external broker, else the
embedded one). Each process writes one 100-byte record to each new topic, in rounds of ``--chunk``
topics at once (as a service fanning out does; one topic at a time, aiokafka refreshes metadata
for every known topic per new one and the run takes hours), and after every ``--step`` topics
collects garbage, lets the export worker pass, collects the metrics, gives freed memory back to
the system (``malloc_trim``) and reads its resident set (RSS) and Python's allocated blocks.

Prints both curves and the wrapped process's memory over bare, as a total and per topic over
each step: past the caps (labels after 1 000 topics), what is left per topic is kafkahooks'
bounded caches, which start over at 4 096 entries. ``--json PATH`` keeps the readings.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PAYLOAD = b"x" * 100


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _telemetry() -> Any:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class _Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer = TracerProvider()
    tracer.add_span_processor(BatchSpanProcessor(_Discard()))
    trace.set_tracer_provider(tracer)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def worker(args: argparse.Namespace) -> None:
    if args.traced:
        import tracemalloc

        tracemalloc.start()  # before the client and kafkahooks are imported: every byte they keep
    reader = _telemetry()  # in both processes: the SDK's own memory is not kafkahooks'
    kwargs: dict[str, Any] = {"tracing": "hooks"} if args.mode == "hooks" else {}
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        libc = None

    def read(done: int) -> None:
        time.sleep(0.3)  # the export worker's pass (the bare process waits as long)
        reader.get_metrics_data()
        gc.collect()
        if libc is not None:
            libc.malloc_trim(0)
        reading = {"topics": done, "rss_kb": _rss_kb(), "blocks": sys.getallocatedblocks()}
        if args.traced:
            import tracemalloc

            reading["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
        print(json.dumps(reading), flush=True)

    names = [f"{args.prefix}-{i}" for i in range(args.topics)]
    if args.client == "aiokafka":
        if args.mode == "bare":
            from aiokafka import AIOKafkaProducer
        else:
            from kafkahooks.aiokafka import AIOKafkaProducer

        async def run() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, **kwargs)
            await producer.start()
            try:
                for first in range(0, args.topics, args.chunk):
                    round_ = names[first : first + args.chunk]
                    await asyncio.gather(*(producer.send_and_wait(t, PAYLOAD) for t in round_))
                    done = first + args.chunk
                    if done % args.step == 0:
                        read(done)
            finally:
                await producer.stop()

        asyncio.run(run())
    else:
        if args.mode == "bare":
            from kafka import KafkaProducer
        else:
            from kafkahooks.kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, **kwargs)
        # send() waits for the new topic's metadata: the round's topics wait together, from threads
        pool = ThreadPoolExecutor(args.chunk)
        try:
            for first in range(0, args.topics, args.chunk):
                list(pool.map(lambda t: producer.send(t, PAYLOAD).get(30), names[first : first + args.chunk]))
                done = first + args.chunk
                if done % args.step == 0:
                    read(done)
        finally:
            pool.shutdown()
            producer.close()


def drive(args: argparse.Namespace) -> None:
    from contextlib import ExitStack

    with ExitStack() as stack:
        bootstrap = args.bootstrap
        if bootstrap is None:
            from kafkahooks.broker import EmbeddedBroker

            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        curves: dict[str, list[dict[str, int]]] = {}
        for mode in ("bare", "hooks"):
            started = time.monotonic()
            cmd = [sys.executable, __file__, "--worker", "--mode", mode, "--prefix", f"{mode}-{uuid.uuid4().hex[:8]}"]
            cmd += ["--client", args.client, "--topics", str(args.topics), "--step", str(args.step)]
            cmd += ["--chunk", str(args.chunk), "--bootstrap", bootstrap] + (["--traced"] if args.traced else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            curves[mode] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            print(f"{mode}: {args.topics} topics in {time.monotonic() - started:.0f} s", file=sys.stderr)
    unit = "traced_kb" if args.traced else "rss_kb"
    what = "memory traced by tracemalloc" if args.traced else "RSS after gc and malloc_trim"
    print(f"{args.client}, one producer, {args.topics} new topics ({what})")
    header = ("topics", "bare MB", "hooks MB", "over bare MB", "per topic KB", "blocks/topic")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (7, 8, 9, 13, 13, 13), strict=True)))
    prev = None
    for bare, hooks in zip(curves["bare"], curves["hooks"], strict=True):
        over = hooks[unit] - bare[unit]
        blocks = hooks["blocks"] - bare["blocks"]
        slope = slope_blocks = ""
        if prev is not None:
            span = bare["topics"] - prev[0]
            slope = f"{(over - prev[1]) / span:+.2f}"
            slope_blocks = f"{(blocks - prev[2]) / span:+.1f}"
        print(
            f"{bare['topics']:>7} {bare[unit] / 1024:>8.1f} {hooks[unit] / 1024:>9.1f} "
            f"{over / 1024:>+13.1f} {slope:>13} {slope_blocks:>13}"
        )
        prev = (bare["topics"], over, blocks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"client": args.client, "topics": args.topics, "curves": curves}, f, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("aiokafka", "kafka"), default="aiokafka")
    parser.add_argument("--topics", type=int, default=3000)
    parser.add_argument("--step", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--bootstrap")
    parser.add_argument("--json")
    parser.add_argument(
        "--traced", action="store_true", help="also trace Python's allocations (tracemalloc): exact bytes, slower"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("bare", "hooks"), help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step % args.chunk:
        parser.error("--step must be a multiple of --chunk")
    worker(args) if args.worker else drive(args)


if __name__ == "__main__":
    main()
