"""The export path: exporters that fail or hang never slow the client; drops are counted exactly."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from kafkahooks import export
from kafkahooks.datastreams import DataStreams, JsonLinesExporter
from kafkahooks.kafka import KafkaProducer
from kafkahooks.testing import RecordingHook
from kafkahooks.tracing import BrokerSpans
from tests._drivers import consume, produce


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector unreachable")


class HangingExporter(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def provider_with(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_raising_exporter_changes_nothing_for_the_client(bootstrap: str, topic: str) -> None:
    """Every record is delivered while the span exporter raises on every export."""
    exporter = RaisingExporter()
    provider = provider_with(exporter)
    produce(
        "aiokafka",
        bootstrap,
        topic,
        [(b"%d" % i, None) for i in range(500)],
        tracing="hooks",
        tracer_provider=provider,
        data_streams=False,
    )
    export.flush()
    got = consume("aiokafka", bootstrap, topic, 500, tracing="hooks", tracer_provider=provider, data_streams=False)
    assert [b"%d" % i for i in range(500)] == [r.value for r in got]
    assert exporter.calls > 0


def test_hanging_exporter_bounds_memory_and_counts_every_drop(bootstrap: str, topic: str) -> None:
    """With the worker stuck in an exporter, the buffer stays at its cap and every request is
    either queued, exported or counted as dropped."""
    exporter = HangingExporter()
    spans = BrokerSpans("producer", tracer_provider=provider_with(exporter), capacity=16)
    recorder = RecordingHook()
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, hooks=[spans, recorder])
        log = producer.hook_dispatcher.request_log
        assert log is not None
        buffer = log.buffer
        for _ in range(200):  # one Produce request each
            producer.send(topic, b"v").get(timeout=10)
        producer.close()
        assert len(buffer) <= buffer.capacity == 16
        assert spans.dropped > 0
        started = time.monotonic()
        assert export.flush(timeout_s=0.5) is False, "a flush must give up on a stuck worker"
        assert time.monotonic() - started < 5
    finally:
        exporter.release.set()
    export.flush()
    # Every request reaches the log once (RecordingHook's on_requests_finished asks for every key).
    offered = len(recorder.of("broker_e2e"))
    assert offered >= 200
    assert offered == buffer.accepted + buffer.dropped + len(buffer)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_gets_a_working_export_worker(tmp_path: Path) -> None:
    """After fork the child starts its own worker: its checkpoints are exported, nothing deadlocks."""
    streams = DataStreams("forked", "test", exporters=[JsonLinesExporter(tmp_path / "parent.jsonl")])
    streams.checkpoint(["direction:out", "topic:t", "type:kafka"])
    export.flush()
    pid = os.fork()
    if pid == 0:  # the child: exit code says whether its own export worked
        try:
            child = DataStreams("child", "test", exporters=[JsonLinesExporter(tmp_path / "child.jsonl")])
            child.checkpoint(["direction:out", "topic:t", "type:kafka"], weight=3)
            ok = export.flush(timeout_s=5)
            child.flush(final=True)
            os._exit(0 if ok else 3)
        except BaseException:
            os._exit(4)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the forked child hung"
        time.sleep(0.05)
    assert 0 == os.waitstatus_to_exitcode(status)
    (line,) = (tmp_path / "child.jsonl").read_text().splitlines()
    assert ("child", 3) == (json.loads(line)["service"], json.loads(line)["messages"])


class BlockingSink:
    """A sink whose exporter hangs until released; remembers which threads ran it."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []

    def process(self) -> None:
        self.threads.append(threading.current_thread().name)
        self.release.wait(30)

    def forget(self) -> None:
        pass


def test_flush_never_runs_a_hung_exporter_on_the_callers_thread() -> None:
    """A flush (a client's close()) while the worker is idle used to run the sinks itself and hang
    with the exporter; now the worker runs them and the flush gives up after its timeout."""
    worker = export.ExportWorker(interval_s=3600)  # idle between passes, as after a quiet spell
    sink = BlockingSink()
    worker.register(sink)
    outcome: list[bool] = []
    caller = threading.Thread(target=lambda: outcome.append(worker.flush(timeout_s=0.5)))
    caller.start()
    caller.join(10)
    assert not caller.is_alive(), "flush hung with the exporter"
    assert [False] == outcome
    assert ["kafkahooks-export"] == sink.threads
    sink.release.set()
    assert worker.flush(timeout_s=10)
    assert worker.shutdown(timeout_s=10)
    assert {"kafkahooks-export"} == set(sink.threads)


def test_a_flush_waits_for_a_pass_that_started_after_it() -> None:
    """What was queued before flush() returned True has been processed."""
    worker = export.ExportWorker(interval_s=3600)
    seen: list[int] = []
    queued: list[int] = []

    class Sink:
        name = "list"

        def process(self) -> None:
            seen.extend(queued)
            queued.clear()

        def forget(self) -> None:
            pass

    sink = Sink()
    worker.register(sink)
    for i in range(5):
        queued.append(i)
        assert worker.flush(timeout_s=10)
        assert list(range(i + 1)) == seen
    worker.shutdown(timeout_s=5)


def test_an_exporter_that_flushes_from_inside_a_pass_does_not_deadlock() -> None:
    """flush() from the worker thread (an exporter calling it) answers False at once instead of
    starting a nested pass."""
    worker = export.ExportWorker(interval_s=3600)
    answers: list[bool] = []

    class Sink:
        name = "reentrant"

        def process(self) -> None:
            if not answers:
                answers.append(worker.flush(timeout_s=5))

        def forget(self) -> None:
            pass

    sink = Sink()
    worker.register(sink)
    assert worker.flush(timeout_s=10)
    assert [False] == answers
    worker.shutdown(timeout_s=5)


@pytest.mark.parametrize("client", ["aiokafka", "kafka-python"])
def test_a_stuck_exporter_holds_at_most_the_byte_budget_of_heavy_fetches(
    client: str, bootstrap: str, topic: str
) -> None:
    """Behind a span exporter that never returns, a consumer with tracing="hooks" reads 5 000
    one-record batches whose first record carries a 4 KB tracestate (under the 8 KB a value may
    have: kept, not refused). A Fetch response of hundreds of such batches is one entry of the
    request log, so a bound in entries alone let it keep all ~20 MB (and a few thousand such
    responses, gigabytes); the byte budget stops it at MAX_BYTES, traced in kafkahooks' code,
    with every later item dropped and counted."""
    import asyncio
    import tracemalloc
    from pathlib import Path as _Path

    import aiokafka

    import kafkahooks
    from kafkahooks.hooks._requests import MAX_BYTES

    headers = [
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tracestate", b"k=" + b"v" * 4_000),
    ]
    count = 5_000

    async def fill() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await producer.start()
        sent = []
        for _ in range(count):
            batch = producer.create_batch()
            batch.append(key=None, value=b"v", timestamp=None, headers=headers)
            sent.append(await producer.send_batch(batch, topic, partition=0))
        await asyncio.gather(*sent)
        await producer.stop()

    asyncio.run(fill())
    ours = str(_Path(kafkahooks.__file__).parent)
    exporter = HangingExporter()
    provider = provider_with(exporter)
    got = 0

    def measure(consume_some: Any, log: Any) -> tuple[int, int, int]:
        nonlocal got
        while got == 0:  # the first batch's span gets the worker stuck in the exporter
            got += consume_some(1)
        export.worker().wake()
        time.sleep(0.5)
        deadline = time.monotonic() + 60
        while got < count and time.monotonic() < deadline:
            got += consume_some(500)
        after = tracemalloc.take_snapshot()
        kept = sum(
            stat.size_diff
            for stat in after.compare_to(before, "filename")
            if stat.traceback[0].filename.startswith(ours)
        )
        return kept, log.budget.used, log.dropped

    tracemalloc.start()  # before the consumer: its first fetches take most of the budget
    before = tracemalloc.take_snapshot()
    try:
        if client == "aiokafka":
            from kafkahooks.aiokafka import AIOKafkaConsumer

            async def run() -> tuple[int, int, int]:
                consumer = AIOKafkaConsumer(
                    topic,
                    bootstrap_servers=bootstrap,
                    auto_offset_reset="earliest",
                    tracing="hooks",
                    tracer_provider=provider,
                )
                await consumer.start()
                loop = asyncio.get_running_loop()

                def consume_some(n: int) -> int:  # called from a thread: the loop keeps running
                    batches = asyncio.run_coroutine_threadsafe(
                        consumer.getmany(timeout_ms=1_000, max_records=n), loop
                    ).result()
                    return sum(len(records) for records in batches.values())

                try:
                    return await asyncio.to_thread(measure, consume_some, consumer.hook_dispatcher.request_log)
                finally:
                    exporter.release.set()
                    await consumer.stop()

            kept, used, dropped = asyncio.run(run())
        else:
            from kafkahooks.kafka import KafkaConsumer

            consumer = KafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                auto_offset_reset="earliest",
                tracing="hooks",
                tracer_provider=provider,
                check_crcs=False,  # its pure-Python CRC-32C reads ~1 MB/s under tracemalloc
                # The broker answers with several MB whatever the fetch limits say; kafka-python
                # 3.0.0 refuses frames over 1 MB by default (later releases: 100 MB).
                receive_message_max_bytes=100_000_000,
            )

            def poll(n: int) -> int:
                return sum(len(records) for records in consumer.poll(timeout_ms=1_000, max_records=n).values())

            try:
                kept, used, dropped = measure(poll, consumer.hook_dispatcher.request_log)
            finally:
                exporter.release.set()
                consumer.close()
    finally:
        exporter.release.set()
        tracemalloc.stop()
    export.flush()
    assert count == got
    assert dropped > 0, "the budget never filled: nothing shows the bound"
    assert used <= MAX_BYTES  # each item weighed before it is let in
    assert kept < MAX_BYTES, kept


def test_a_stuck_exporter_holds_a_few_megabytes_then_drops(bootstrap: str, topic: str) -> None:
    """Behind a span exporter that never returns, an aiokafka producer with tracing="hooks" and
    default capacities at full speed: what kafkahooks keeps waiting (traced allocations made in
    kafkahooks' own code) stops growing at the request log's capacity, under 10 MB, and every
    request past it is counted as dropped."""
    import asyncio
    import tracemalloc
    from pathlib import Path as _Path

    import kafkahooks

    ours = str(_Path(kafkahooks.__file__).parent)
    exporter = HangingExporter()
    provider = provider_with(exporter)

    async def run() -> tuple[int, int, int, int]:
        from kafkahooks.aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, tracing="hooks", tracer_provider=provider, linger_ms=0)
        await producer.start()
        log = producer.hook_dispatcher.request_log
        assert log is not None
        buffer = log.buffer
        await producer.send_and_wait(topic, b"v")
        export.worker().wake()
        await asyncio.sleep(0.3)  # the worker is now stuck in the exporter
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            deadline = time.monotonic() + 60
            while buffer.dropped < 1_000 and time.monotonic() < deadline:
                await asyncio.gather(*[await producer.send(topic, b"x" * 100) for _ in range(20)])
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        kept = sum(
            stat.size_diff
            for stat in after.compare_to(before, "filename")
            if stat.traceback[0].filename.startswith(ours)
        )
        waiting, capacity, dropped = len(buffer), buffer.capacity, buffer.dropped
        exporter.release.set()
        await producer.stop()
        return kept, waiting, capacity, dropped

    try:
        kept, waiting, capacity, dropped = asyncio.run(run())
    finally:
        exporter.release.set()
    export.flush()
    assert waiting <= capacity == 2_048
    assert dropped >= 1_000, "the buffer never filled: nothing shows the bound"
    assert kept < 10_000_000, kept


def test_a_packed_buffer_keeps_rows_exactly_bounded_and_refuses_what_does_not_fit() -> None:
    """Rows come back in order with their references; past ``capacity`` a row is refused and
    counted, and so is one whose numbers the format cannot hold (a bad value never raises into
    the caller); from several threads, every row is either drained once or counted."""
    from kafkahooks.export._buffer import PackedBuffer

    woke: list[int] = []
    buf = PackedBuffer("packed:test", 4, "=qQd", lambda: woke.append(len(buf)))
    tags = ("a", "b")
    assert buf.offer_row(tags, -5, 2**64 - 1, 0.5)
    assert buf.offer((tags, 1, 2, 3.0))
    assert not buf.offer_row(tags, 2**63, 0, 0.0)  # too large for "q"
    assert not buf.offer_row(tags, 1, -1, 0.0)  # negative for "Q"
    assert not buf.offer_row(tags, "1", 0, 0.0)  # not a number
    assert buf.offer_row(None, 3, 4, 5.0)
    assert buf.offer_row(tags, 6, 7, 8.0)
    assert not buf.offer_row(tags, 9, 9, 9.0)  # full
    assert 4 == len(buf)
    assert 4 == buf.dropped
    assert woke == [3]
    out = buf.drain()
    assert [(tags, -5, 2**64 - 1, 0.5), (tags, 1, 2, 3.0), (None, 3, 4, 5.0), (tags, 6, 7, 8.0)] == out
    assert out[0][0] is tags
    assert 0 == len(buf)
    assert 4 == buf.accepted
    assert [] == buf.drain()

    many = PackedBuffer("packed:threads", 50_000, "=qq")
    drained: list[tuple[Any, ...]] = []
    stop = threading.Event()

    def drainer() -> None:
        while not stop.is_set():
            drained.extend(many.drain())
        drained.extend(many.drain())

    def offerer(n: int) -> None:
        for i in range(20_000):
            many.offer_row(n, i, -i)

    thread = threading.Thread(target=drainer)
    thread.start()
    offerers = [threading.Thread(target=offerer, args=(n,)) for n in range(4)]
    for t in offerers:
        t.start()
    for t in offerers:
        t.join()
    stop.set()
    thread.join()
    assert 80_000 == len(drained) + many.dropped
    assert all(b == -a for _, a, b in drained)  # no row torn between two drains
    for n in range(4):  # each thread's rows in the order it offered them
        mine = [a for ref, a, _ in drained if ref == n]
        assert mine == sorted(mine)


def test_a_folding_hook_that_raises_on_the_pass_is_counted_and_the_others_still_fold() -> None:
    """A hook that folds hand-outs as they are made and raises in ``kafkahooks_folded`` on the
    worker's pass is reported once per pass, as any hook's failure is, and the folding hooks after
    it still get their pass."""
    from kafkahooks.hooks._requests import RequestLog

    class Folding:
        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.passes = 0

        def on_batches_handed_out(self, handouts: Sequence[Any]) -> None:
            pass

        def kafkahooks_fold_handout(self, *args: Any) -> None:
            pass

        def kafkahooks_folded(self) -> None:
            self.passes += 1
            if self.fails:
                raise RuntimeError("boom")

    failing, working = Folding(True), Folding(False)
    failures: list[tuple[Any, str, BaseException]] = []
    log = RequestLog("requests:folding", [failing, working], on_failure=lambda *f: failures.append(f))
    try:
        log.process()
        log.process()
    finally:
        export.worker().unregister(log)
    assert (2, 2) == (failing.passes, working.passes)
    assert [("on_batches_handed_out", "boom")] * 2 == [(event, str(exc)) for _, event, exc in failures]
    assert all(fn == failing.kafkahooks_folded for fn, _, _ in failures)
