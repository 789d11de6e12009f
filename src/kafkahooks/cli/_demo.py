"""``kafkahooks demo``: a three-service pipeline with ``tracing="hooks"``, and what kafkahooks saw.

checkout (aiokafka producer) -> ``orders`` -> enricher (aiokafka consumer + producer) ->
``enriched`` -> ledger (kafka-python consumer). Each service runs in its own thread with its own
:class:`~kafkahooks.datastreams.DataStreams`; nothing in the services' code mentions pathways.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
import kafka
from aiokafka.structs import TopicPartition
from rich.table import Table

# The services' clients are imported here, on the main thread, not in the service threads: two
# threads importing aiokafka at once can meet its circular imports half-done and fail with
# importlib's _DeadlockError.
from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafkahooks.cli._latency import render as render_latency
from kafkahooks.cli._output import console as make_console
from kafkahooks.cli._output import write_png
from kafkahooks.kafka import KafkaConsumer
from kafkahooks.latency import FlightRecorder
from kafkahooks.latency._analysis import breakdown
from kafkahooks.tracing import process_span

console = make_console()


def _checkout(
    bootstrap: str, topic: str, stop: threading.Event, rate: int, ds: Any, tracer_provider: Any, recorder: Any
) -> int:
    tracer = tracer_provider.get_tracer("checkout")

    async def run() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="checkout",
            linger_ms=5,
            tracing="hooks",
            tracer_provider=tracer_provider,
            data_streams=ds,
            hooks=[recorder()],
        )
        await producer.start()
        sent, started = 0, time.monotonic()
        try:
            while not stop.is_set():
                # Paced by the clock: every 10 ms, what the rate says should have been sent by now
                # (a fixed burst per sleep falls behind by the time the sends themselves take).
                due = int(rate * (time.monotonic() - started)) - sent
                if due > 0:
                    with tracer.start_as_current_span("place orders"):
                        for _ in range(due):
                            await producer.send(topic, b'{"order": %d, "amount": 42}' % sent, key=b"%d" % (sent % 97))
                            sent += 1
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()
        return sent

    return asyncio.run(run())


def _enricher(
    bootstrap: str, source: str, target: str, stop: threading.Event, ds: Any, tracer_provider: Any, recorder: Any
) -> int:
    async def run() -> int:
        common = {
            "bootstrap_servers": bootstrap,
            "tracing": "hooks",
            "tracer_provider": tracer_provider,
            "data_streams": ds,
        }
        consumer = AIOKafkaConsumer(
            group_id="enricher", client_id="enricher", auto_offset_reset="earliest", hooks=[recorder()], **common
        )
        producer = AIOKafkaProducer(client_id="enricher", linger_ms=5, hooks=[recorder()], **common)
        await asyncio.gather(consumer.start(), producer.start())
        consumer.assign([TopicPartition(source, p) for p in range(3)])
        moved = 0
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                if not batch:
                    continue
                with process_span(batch, group="enricher", tracer_provider=tracer_provider):
                    for records in batch.values():
                        for record in records:
                            await producer.send(target, record.value[:-1] + b', "region": "eu"}', key=record.key)
                            moved += 1
        finally:
            await producer.stop()
            await consumer.stop()
        return moved

    return asyncio.run(run())


def _ledger(bootstrap: str, topic: str, stop: threading.Event, ds: Any, tracer_provider: Any, recorder: Any) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="ledger",
        hooks=[recorder()],
        group_id="ledger",
        auto_offset_reset="earliest",
        tracing="hooks",
        tracer_provider=tracer_provider,
        data_streams=ds,
        enable_auto_commit=False,
    )
    consumer.assign([kafka.TopicPartition(topic, p) for p in range(3)])
    seen = 0
    try:
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=200)
            if batch:
                with process_span(batch, group="ledger", tracer_provider=tracer_provider):
                    seen += sum(len(records) for records in batch.values())
    finally:
        consumer.close()
    return seen


def _span_table(spans: list[Any]) -> Table:
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for span in spans:
        groups[(span.name, span.kind.name)].append(span)
    table = Table(title="spans kafkahooks synthesized (one per request or processed batch, none per record)")
    table.add_column("span", overflow="fold")
    table.add_column("kind")
    for column in ("spans", "records", "p50 ms", "p99 ms", "with links"):
        table.add_column(column, justify="right", no_wrap=True)
    for (name, kind), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        durations = sorted((s.end_time - s.start_time) / 1e6 for s in items)
        records = sum(int(s.attributes.get("messaging.batch.message_count", 1)) for s in items)
        table.add_row(
            name,
            kind,
            f"{len(items):,}",
            f"{records:,}",
            f"{statistics.median(durations):.2f}",
            f"{durations[min(len(durations) - 1, int(0.99 * len(durations)))]:.2f}",
            f"{sum(1 for s in items if s.links):,}",
        )
    return table


def run_demo(bootstrap: str | None, seconds: float, rate: int, output: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kafkahooks.broker import EmbeddedBroker
    from kafkahooks.datastreams import DataStreams, JsonLinesExporter
    from kafkahooks.datastreams._map import StreamMap
    from kafkahooks.datastreams._render import render_html

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    dump = out / "datastreams.jsonl"
    dump.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        if bootstrap is None:
            with console.status("starting the embedded broker (Tansu, memory storage)"):
                bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        console.print(f"broker: [bold]{bootstrap}[/bold]")
        suffix = uuid.uuid4().hex[:6]
        orders, enriched = f"orders-{suffix}", f"enriched-{suffix}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(orders, 3, 1), NewTopic(enriched, 3, 1)])
        admin.close()

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        streams = {
            name: DataStreams(name, "demo", exporters=[JsonLinesExporter(dump)])
            for name in ("checkout", "enricher", "ledger")
        }
        recorders: list[FlightRecorder] = []

        def recorder() -> FlightRecorder:  # one per client: its last requests, for `kafkahooks latency`
            made = FlightRecorder()
            recorders.append(made)
            return made

        stop_producing, stop_consuming = threading.Event(), threading.Event()
        results: dict[str, int] = {}
        failed: dict[str, BaseException] = {}

        def service(name: str, fn: Any, *args: Any) -> threading.Thread:
            def run() -> None:
                try:
                    results[name] = fn(*args)
                except BaseException as exc:  # reported below, in one line per service
                    failed[name] = exc

            thread = threading.Thread(target=run, name=name, daemon=True)
            thread.start()
            return thread

        threads = [
            service("ledger", _ledger, bootstrap, enriched, stop_consuming, streams["ledger"], provider, recorder),
            service(
                "enricher",
                _enricher,
                *(bootstrap, orders, enriched, stop_consuming, streams["enricher"], provider, recorder),
            ),
            service(
                "checkout", _checkout, bootstrap, orders, stop_producing, rate, streams["checkout"], provider, recorder
            ),
        ]
        with console.status(f"checkout -> {orders} -> enricher -> {enriched} -> ledger, for {seconds:.0f} s"):
            time.sleep(seconds)
            stop_producing.set()
            time.sleep(2.0)  # let the last records through the pipeline
            stop_consuming.set()
            for thread in threads:
                thread.join(30)
        for ds in streams.values():
            ds.flush(final=True)
        provider.force_flush()
        spans = list(exporter.get_finished_spans())
        provider.shutdown()

        console.print(
            f"checkout sent {results.get('checkout', 0):,} records, enricher forwarded {results.get('enricher', 0):,},"
            f" ledger received {results.get('ledger', 0):,}"
        )
        console.print(_span_table(spans))
        stream_map = StreamMap.from_file(dump)
        if stream_map.edges:
            console.print(stream_map.render_terminal())
            html_path, png_path = out / "map.html", out / "map.png"
            html_path.write_text(render_html(stream_map), encoding="utf-8")
            drawn = write_png(stream_map, png_path)
            maps = f"[bold]{html_path}[/bold]" + (f" and [bold]{png_path}[/bold]" if drawn else "")
            console.print(f"data-stream map: {maps}; checkpoints: {dump}")
            console.print(f"render it again with: kafkahooks map {dump}")
        if recorders:
            dumps = [r.dump(out / f"requests-{r.identity.client_id}-{r.identity.role}.jsonl") for r in recorders]
            rows = [row for r in recorders for row in r.records(flush=False)]
            render_latency(breakdown(rows, slowest=5), console)
            console.print(f"request dumps: {', '.join(str(d) for d in dumps)}")
            console.print(f"read them again with: kafkahooks latency {out / 'requests-*.jsonl'}")
        if failed:
            raise click.ClickException(
                "; ".join(f"{name} failed: {type(exc).__name__}: {exc}" for name, exc in sorted(failed.items()))
            )
        if not stream_map.edges:
            raise click.ClickException(f"no data-stream checkpoints were recorded in {dump}")
