"""One benchmark round in a fresh process: ``python -m kafkahooks.bench._worker '<json>'``.

The bare client and the mode's client run side by side in this one process, in alternating
chunks (bare, mode, mode, bare, bare, mode...). A shared 2-CPU machine's speed swings by a factor
of two within a second (noisy neighbours), so two runs a few seconds apart cannot resolve a few
percent; two clients interleaved every ~100 ms see the same machine.

CPU is accounted per thread (POSIX per-thread CPU clocks): each chunk's main-thread CPU goes to
the side that ran it; every other thread's CPU to the side that owns it: a client library's own
threads to their client, and every thread the bare client did not start (kafkahooks' export
worker, the SDK's span processor) to the mode. Background work that ran during the other side's
chunk also moves its wall time to its owner, so throughput is charged where the work came from.
The mode's telemetry is flushed once, at the end, as its own (timed) work. Peers that patch
client classes (OpenTelemetry's instrumentations) are switched on for their chunks only.

Prints one JSON object: per side (``bare``, ``mode``) the messages, seconds, CPU seconds, rate
and CPU per message; and the process's peak RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from kafkahooks.bench._modes import MODES, Telemetry


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of every other live Python thread, by ident."""
    main = threading.main_thread().ident
    out: dict[int, float] = {}
    for thread in threading.enumerate():
        ident = thread.ident
        if ident is None or ident == main:
            continue
        try:
            out[ident] = time.clock_gettime(time.pthread_getcpuclockid(ident))
        except (OSError, AttributeError, ProcessLookupError):  # exited meanwhile, or not POSIX
            continue
    return out


class Ledger:
    """Messages, wall seconds and CPU seconds per side, from chunk and thread measurements."""

    def __init__(self) -> None:
        self.messages = {"bare": 0, "mode": 0}
        self.seconds = {"bare": 0.0, "mode": 0.0}
        self.cpu = {"bare": 0.0, "mode": 0.0}
        self.chunks = {"bare": 0, "mode": 0}
        self.bare_threads: set[int] = set()
        self._last = _thread_cpu()

    def owner(self, ident: int) -> str:
        return "bare" if ident in self.bare_threads else "mode"

    def chunk(self, side: str, run: Callable[[], int]) -> int:
        """Run one chunk for ``side`` and charge everything it and the background threads cost."""
        main0, wall0 = time.thread_time(), time.perf_counter()
        count = run()
        wall, main = time.perf_counter() - wall0, time.thread_time() - main0
        self.settle(side, count, wall, main)
        return count

    async def achunk(self, side: str, run: Callable[[], Awaitable[int]]) -> int:
        main0, wall0 = time.thread_time(), time.perf_counter()
        count = await run()
        wall, main = time.perf_counter() - wall0, time.thread_time() - main0
        self.settle(side, count, wall, main)
        return count

    def settle(self, side: str, count: int, wall: float, main: float) -> None:
        other = "mode" if side == "bare" else "bare"
        self.messages[side] += count
        self.chunks[side] += 1
        self.cpu[side] += main
        stolen = 0.0  # the other side's background work that ran inside this chunk
        now = _thread_cpu()
        for ident, cpu in now.items():
            spent = cpu - self._last.get(ident, 0.0)
            if spent <= 0:
                continue
            owner = self.owner(ident)
            self.cpu[owner] += spent
            if owner == other:
                stolen += spent
        self._last = now
        self.seconds[side] += wall - stolen
        self.seconds[other] += stolen

    def result(self) -> dict[str, Any]:
        return {
            side: {
                "messages": self.messages[side],
                "seconds": self.seconds[side],
                "cpu_seconds": self.cpu[side],
                "chunks": self.chunks[side],
                "msgs_per_s": self.messages[side] / self.seconds[side] if self.seconds[side] else 0.0,
                "cpu_us_per_msg": self.cpu[side] / max(self.messages[side], 1) * 1e6,
            }
            for side in ("bare", "mode")
        }


def _schedule(chunks: int) -> list[str]:
    """ABBA: each side goes first as often as the other, so neither always follows a flush."""
    order: list[str] = []
    for i in range(chunks):
        order += ["bare", "mode"] if i % 2 == 0 else ["mode", "bare"]
    return order


def _producer_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    acks = cfg["acks"]
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg["bootstrap"],
        "linger_ms": cfg["linger_ms"],
        "acks": acks if acks in ("all", -1) else int(acks),
    }
    if cfg.get("compression"):
        kwargs["compression_type"] = cfg["compression"]
    return kwargs


def _sizes(cfg: dict[str, Any]) -> tuple[int, int]:
    chunk = max(1, min(cfg["chunk"], cfg["messages"]))
    return chunk, max(1, cfg["messages"] // chunk)


# -- kafka-python -----------------------------------------------------------------------------------


def _kafka_python(cfg: dict[str, Any], telemetry: Telemetry) -> dict[str, Any]:
    import kafka

    from kafkahooks.kafka import KafkaConsumer, KafkaProducer

    chunk, chunks = _sizes(cfg)
    value = b"x" * cfg["value_size"]
    topic = cfg["topic"]
    wrapped_kwargs = telemetry.client_kwargs
    run: dict[str, Callable[[], int]] = {}
    closers: list[Callable[[], None]] = []
    bare_threads: set[int] = set()
    if cfg["workload"] == "produce":
        for side in ("bare", "mode"):
            cls = KafkaProducer if side == "mode" and telemetry.wrapped else kafka.KafkaProducer
            before = {t.ident for t in threading.enumerate() if t.ident is not None}
            producer = cls(**_producer_kwargs(cfg), **(wrapped_kwargs if side == "mode" else {}))
            producer.send(topic, value).get(timeout=30)  # warm: metadata and connections
            if side == "bare":
                bare_threads |= {t.ident for t in threading.enumerate() if t.ident is not None} - before
            closers.append(producer.close)

            headers = telemetry.record_headers if side == "mode" else None

            def produce(producer: Any = producer, headers: Any = headers) -> int:
                send = producer.send
                if headers:
                    for _ in range(chunk):
                        send(topic, value, headers=headers)
                else:
                    for _ in range(chunk):
                        send(topic, value)
                producer.flush()
                return chunk

            run[side] = produce
    else:
        record_api = cfg["workload"] == "consume-record"
        for side in ("bare", "mode"):
            cls = KafkaConsumer if side == "mode" and telemetry.wrapped else kafka.KafkaConsumer
            before = {t.ident for t in threading.enumerate() if t.ident is not None}
            consumer = cls(
                bootstrap_servers=cfg["bootstrap"],
                auto_offset_reset="earliest",
                consumer_timeout_ms=10_000,
                **(wrapped_kwargs if side == "mode" else {}),
            )
            consumer.assign([kafka.TopicPartition(topic, p) for p in range(cfg["partitions"])])
            closers.append(consumer.close)

            def poll(consumer: Any = consumer, n: int = chunk) -> int:
                got = 0
                while got < n:
                    batch = consumer.poll(timeout_ms=1000, max_records=n - got)
                    if not batch:
                        break
                    got += sum(len(records) for records in batch.values())
                return got

            def iterate(consumer: Any = consumer, n: int = chunk) -> int:
                got = 0
                for _ in consumer:
                    got += 1
                    if got >= n:
                        break
                return got

            run[side] = iterate if record_api else poll
            if record_api:
                iterate(consumer, chunk)  # warm: connections, the first fetches
            else:
                poll(consumer, chunk)
            if side == "bare":
                bare_threads |= {t.ident for t in threading.enumerate() if t.ident is not None} - before
    try:
        ledger = Ledger()
        ledger.bare_threads = bare_threads
        for side in _schedule(chunks):
            if side == "mode":
                telemetry.activate()
            ledger.chunk(side, run[side])
            if side == "mode":
                telemetry.deactivate()
        ledger.chunk("mode", telemetry.flushed)  # what the mode still had queued
        return ledger.result()
    finally:
        for close in closers:
            close()


# -- aiokafka ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _peer_on(telemetry: Telemetry, side: str) -> Iterator[None]:
    """A class-patching peer switched on while the mode's client starts, as in a service that
    patches at import (ddtrace resolves the cluster id in ``start()``, with a Metadata request)."""
    if side == "mode":
        telemetry.activate()
    try:
        yield
    finally:
        if side == "mode":
            telemetry.deactivate()


async def _aiokafka(cfg: dict[str, Any], telemetry: Telemetry) -> dict[str, Any]:
    import aiokafka
    from aiokafka.structs import TopicPartition

    from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    chunk, chunks = _sizes(cfg)
    value = b"x" * cfg["value_size"]
    topic = cfg["topic"]
    wrapped_kwargs = telemetry.client_kwargs
    run: dict[str, Callable[[], Awaitable[int]]] = {}
    clients: list[Any] = []
    if cfg["workload"] == "produce":
        for side in ("bare", "mode"):
            cls = AIOKafkaProducer if side == "mode" and telemetry.wrapped else aiokafka.AIOKafkaProducer
            with _peer_on(telemetry, side):
                producer = cls(**_producer_kwargs(cfg), **(wrapped_kwargs if side == "mode" else {}))
                await producer.start()
                clients.append(producer)
                await producer.send_and_wait(topic, value)

            headers = telemetry.record_headers if side == "mode" else None

            async def produce(producer: Any = producer, headers: Any = headers) -> int:
                send = producer.send
                if headers:
                    for _ in range(chunk):
                        await send(topic, value, headers=headers)
                else:
                    for _ in range(chunk):
                        await send(topic, value)
                await producer.flush()
                return chunk

            run[side] = produce
    else:
        record_api = cfg["workload"] == "consume-record"
        for side in ("bare", "mode"):
            cls = AIOKafkaConsumer if side == "mode" and telemetry.wrapped else aiokafka.AIOKafkaConsumer
            consumer = cls(
                bootstrap_servers=cfg["bootstrap"],
                auto_offset_reset="earliest",
                **(wrapped_kwargs if side == "mode" else {}),
            )
            with _peer_on(telemetry, side):
                await consumer.start()
            clients.append(consumer)
            consumer.assign([TopicPartition(topic, p) for p in range(cfg["partitions"])])

            async def getmany(consumer: Any = consumer, n: int = chunk) -> int:
                got = 0
                while got < n:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=n - got)
                    if not batch:
                        break
                    got += sum(len(records) for records in batch.values())
                return got

            async def iterate(consumer: Any = consumer, n: int = chunk) -> int:
                got = 0
                async for _ in consumer:
                    got += 1
                    if got >= n:
                        break
                return got

            run[side] = iterate if record_api else getmany
            await (iterate(consumer, chunk) if record_api else getmany(consumer, chunk))  # warm: the first fetches
    try:
        ledger = Ledger()  # aiokafka runs in this thread: the bare side starts no thread of its own
        for side in _schedule(chunks):
            if side == "mode":
                telemetry.activate()
            await ledger.achunk(side, run[side])
            if side == "mode":
                telemetry.deactivate()
        ledger.chunk("mode", telemetry.flushed)  # what the mode still had queued
        return ledger.result()
    finally:
        for client in clients:
            await client.stop()


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one interleaved round of (client, workload, mode) against bare; returns both sides."""
    telemetry = MODES[cfg["mode"]].setup(cfg["client"])
    try:
        if cfg["client"] == "kafka-python":
            result = _kafka_python(cfg, telemetry)
        else:
            result = asyncio.run(_aiokafka(cfg, telemetry))
    finally:
        telemetry.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["telemetry_dropped"] = telemetry.dropped()
    return result


def main() -> None:
    cfg = json.loads(sys.argv[1])
    cpus = cfg.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    print(json.dumps(run(cfg)), flush=True)


if __name__ == "__main__":
    main()
