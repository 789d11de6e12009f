"""``kafkahooks demo``: both wrapped clients against a real broker, and what their hooks saw."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from rich.console import Console
from rich.table import Table

from kafkahooks.cli._stats import RequestStats, percentile

console = Console(width=None if Console().is_terminal else 120)


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.2f}"


def _table(title: str, stats: RequestStats) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        caption="ms: write wait, write, read wait and read times, kgo's definitions (p50 unless marked)",
        caption_justify="left",
    )
    table.add_column("request")
    for column in ("n", "err", "bytes out", "bytes in", "wwait", "write", "rwait", "read", "read p99"):
        table.add_column(column, justify="right")
    for name, s in sorted(stats.keys.items(), key=lambda kv: -kv[1].requests):
        table.add_row(
            name,
            str(s.requests),
            str(s.errors),
            f"{s.bytes_written:,}",
            f"{s.bytes_read:,}",
            _ms(percentile(s.write_wait_ns, 0.5)),
            _ms(percentile(s.time_to_write_ns, 0.5)),
            _ms(percentile(s.read_wait_ns, 0.5)),
            _ms(percentile(s.time_to_read_ns, 0.5)),
            _ms(percentile(s.time_to_read_ns, 0.99)),
        )
    return table


async def _produce(bootstrap: str, topic: str, records: int, value: bytes, stats: RequestStats) -> float:
    from kafkahooks.aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[stats], linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    try:
        for i in range(records):
            await producer.send(topic, value, key=b"%d" % (i % 64))
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


def _consume(bootstrap: str, topic: str, records: int, stats: RequestStats) -> tuple[int, float]:
    from kafkahooks.kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        hooks=[stats],
        group_id=f"demo-{topic}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    got = 0
    started = time.perf_counter()
    deadline = time.monotonic() + 60
    try:
        while got < records and time.monotonic() < deadline:
            got += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
    finally:
        consumer.close()
    return got, time.perf_counter() - started


def run_demo(bootstrap: str | None, records: int, value_size: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    from kafkahooks.broker import EmbeddedBroker

    with contextlib.ExitStack() as stack:
        if bootstrap is None:
            with console.status("starting the embedded broker (Tansu, memory storage)"):
                bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        console.print(f"broker: [bold]{bootstrap}[/bold]")
        topic = f"kafkahooks-demo-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, 3, 1)])
        admin.close()

        produced, consumed = RequestStats(), RequestStats()
        with console.status(f"aiokafka producer: {records:,} records of {value_size} bytes"):
            produce_s = asyncio.run(_produce(bootstrap, topic, records, b"x" * value_size, produced))
        with console.status("kafka-python consumer: reading them back"):
            got, consume_s = _consume(bootstrap, topic, records, consumed)

        console.print(_table(f"aiokafka producer: {records:,} records in {produce_s:.2f} s", produced))
        console.print(
            f"  {produced.produced.batches:,} partition batches acknowledged, "
            f"{produced.produced.records:,} records, "
            f"{produced.produced.records / max(produced.produced.batches, 1):.0f} records per batch"
        )
        console.print(_table(f"kafka-python consumer: {got:,} records in {consume_s:.2f} s", consumed))
        console.print(f"  {consumed.fetched.batches:,} record batches fetched, {consumed.fetched.records:,} records")
        console.print("Every number above came from broker-level hooks: one call per request, none per record.")
