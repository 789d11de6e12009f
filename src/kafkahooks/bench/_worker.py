"""One benchmark process: ``python -m kafkahooks.bench._worker '<json>'``. Prints one JSON object.

Two methods (``cfg["method"]``):

**separate** (the benchmark of record): this process is one side only, the bare client or the
mode's, as in a service: a global OpenTelemetry SDK is set up first (a ``BatchSpanProcessor`` and a
periodic metric reader, exporters that discard) whatever the side, then the client is built and
warmed (connections, metadata, a first chunk) and the garbage collector run once. The runner keeps
the two sides' processes side by side and has them run their chunks in turns (bare, mode, mode,
bare...; each waits, idle, while the other runs), so a noisy machine's slow seconds hit both
alike. CPU is the whole process's (every thread: the client's, the SDK's, kafkahooks' export
worker) from the first chunk until the mode's telemetry has been flushed, gaps included;
throughput is messages over the wall time of the chunks. Nothing one side does (its heap, its
garbage, what CPython specialized in the client's code) reaches the other: in one process, both
would share the client library's code objects, collector and allocator, and part of the mode's
cost would land on the bare side.

**interleaved** (a diagnostic): the bare client and the mode's client side by side in one
process, in alternating chunks, CPU accounted per thread (see :class:`Ledger`). For the reason
above it understates what a mode costs a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafkahooks.bench._modes import MODES, Telemetry, install_service_sdk


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


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)
"""Linux only: the calling thread's own usage (the kernel's part of its CPU, its page faults)."""


class _MainThreadUsage:
    """The application's thread, during the chunks only: CPU in the kernel (syscalls, page
    faults), minor page faults and involuntary context switches. Says whether a mode's extra CPU
    on that thread is the interpreter's own (user time) or the memory and scheduling around it."""

    def __init__(self) -> None:
        self.sys_s = 0.0
        self.minor_faults = 0
        self.preempted = 0
        self._start: Any = None

    def start(self) -> None:
        if _RUSAGE_THREAD is not None:
            self._start = resource.getrusage(_RUSAGE_THREAD)

    def stop(self) -> None:
        if self._start is None or _RUSAGE_THREAD is None:
            return
        now, start = resource.getrusage(_RUSAGE_THREAD), self._start
        self.sys_s += now.ru_stime - start.ru_stime
        self.minor_faults += now.ru_minflt - start.ru_minflt
        self.preempted += now.ru_nivcsw - start.ru_nivcsw
        self._start = None

    def figures(self, messages: int) -> dict[str, float]:
        if _RUSAGE_THREAD is None:
            return {}
        per_msg = max(messages, 1)
        return {
            "main_sys_us_per_msg": self.sys_s / per_msg * 1e6,
            "main_minor_faults_per_kmsg": self.minor_faults / per_msg * 1e3,
            "main_preemptions": self.preempted,
        }


class Ledger:
    """Interleaved method: messages, wall seconds and CPU seconds per side, from chunk and thread
    measurements. Each chunk's main-thread CPU goes to the side that ran it; every other thread's
    CPU to the side that owns it (a client library's own threads to their client, every thread the
    bare client did not start to the mode); background work that ran during the other side's chunk
    also moves its wall time to its owner."""

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
        return {side: _figures(self.messages[side], self.seconds[side], self.cpu[side]) for side in ("bare", "mode")}


def _figures(messages: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "messages": messages,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "msgs_per_s": messages / seconds if seconds else 0.0,
        "cpu_us_per_msg": cpu / max(messages, 1) * 1e6,
    }


def _schedule(chunks: int) -> list[str]:
    """ABBA: each side goes first as often as the other, so neither always follows a flush."""
    order: list[str] = []
    for i in range(chunks):
        order += ["bare", "mode"] if i % 2 == 0 else ["mode", "bare"]
    return order


def _producer_kwargs(cfg: dict[str, Any], client: str) -> dict[str, Any]:
    acks = cfg["acks"]
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg["bootstrap"],
        "linger_ms": cfg["linger_ms"],
        "acks": acks if acks in ("all", -1) else int(acks),
    }
    if cfg.get("compression"):
        kwargs["compression_type"] = cfg["compression"]
    if cfg.get("batch_bytes"):
        kwargs["max_batch_size" if client == "aiokafka" else "batch_size"] = cfg["batch_bytes"]
    return kwargs


def _consumer_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """What both clients' consumers take from the configuration beyond the defaults."""
    return {"fetch_max_bytes": cfg["fetch_max_bytes"]} if cfg.get("fetch_max_bytes") else {}


async def _nothing() -> None:
    return None


@dataclass
class Side:
    """One client ready to run: ``run(n)`` moves ``n`` messages and returns how many it moved;
    ``finish`` waits until what was sent is acknowledged (a producer's ``flush``); ``close`` stops
    the client (coroutine functions for aiokafka); ``threads`` are the threads the client library
    started for it (kafka-python's network thread)."""

    run: Callable[[int], Any]
    close: Callable[[], Any]
    finish: Callable[[], Any] = _nothing
    threads: set[int] = field(default_factory=set)


def _thread_idents() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.ident is not None}


# -- kafka-python -----------------------------------------------------------------------------------


def _kafka_python_side(cfg: dict[str, Any], telemetry: Telemetry, side: str) -> Side:
    import kafka

    from kafkahooks.kafka import KafkaConsumer, KafkaProducer

    wrapped = side == "mode" and telemetry.wrapped
    extra = telemetry.client_kwargs if side == "mode" else {}
    topic = cfg["topic"]
    before = _thread_idents()
    if cfg["workload"] == "produce":
        value = b"x" * cfg["value_size"]
        producer = (KafkaProducer if wrapped else kafka.KafkaProducer)(**_producer_kwargs(cfg, "kafka-python"), **extra)
        producer.send(topic, value).get(timeout=30)  # metadata and connections
        headers = telemetry.record_headers if side == "mode" else None

        def produce(n: int) -> int:
            send = producer.send
            if headers:
                for _ in range(n):
                    send(topic, value, headers=headers)
            else:
                for _ in range(n):
                    send(topic, value)
            return n

        return Side(produce, producer.close, producer.flush, _thread_idents() - before)
    consumer = (KafkaConsumer if wrapped else kafka.KafkaConsumer)(
        bootstrap_servers=cfg["bootstrap"],
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **_consumer_kwargs(cfg),
        **extra,
    )
    consumer.assign([kafka.TopicPartition(topic, p) for p in range(cfg["partitions"])])

    def poll(n: int) -> int:
        got = 0
        while got < n:
            batch = consumer.poll(timeout_ms=1000, max_records=n - got)
            if not batch:
                break
            got += sum(len(records) for records in batch.values())
        return got

    def iterate(n: int) -> int:
        got = 0
        for _ in consumer:
            got += 1
            if got >= n:
                break
        return got

    return Side(
        iterate if cfg["workload"] == "consume-record" else poll,
        consumer.close,
        lambda: None,
        _thread_idents() - before,
    )


# -- aiokafka ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _peer_on(telemetry: Telemetry, side: str, interleaved: bool) -> Iterator[None]:
    """Interleaved: a class-patching peer switched on while the mode's client starts, as in a
    service that patches at import (ddtrace resolves the cluster id in ``start()``, with a Metadata
    request), and off again for the bare client's start."""
    if side == "mode" and interleaved:
        telemetry.activate()
    try:
        yield
    finally:
        if side == "mode" and interleaved:
            telemetry.deactivate()


async def _aiokafka_side(cfg: dict[str, Any], telemetry: Telemetry, side: str, interleaved: bool) -> Side:
    import aiokafka
    from aiokafka.structs import TopicPartition

    from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    wrapped = side == "mode" and telemetry.wrapped
    extra = telemetry.client_kwargs if side == "mode" else {}
    topic = cfg["topic"]
    if cfg["workload"] == "produce":
        value = b"x" * cfg["value_size"]
        with _peer_on(telemetry, side, interleaved):
            producer = (AIOKafkaProducer if wrapped else aiokafka.AIOKafkaProducer)(
                **_producer_kwargs(cfg, "aiokafka"), **extra
            )
            await producer.start()
            await producer.send_and_wait(topic, value)  # metadata and connections
        headers = telemetry.record_headers if side == "mode" else None

        async def produce(n: int) -> int:
            send = producer.send
            if headers:
                for _ in range(n):
                    await send(topic, value, headers=headers)
            else:
                for _ in range(n):
                    await send(topic, value)
            return n

        return Side(produce, producer.stop, producer.flush)
    consumer = (AIOKafkaConsumer if wrapped else aiokafka.AIOKafkaConsumer)(
        bootstrap_servers=cfg["bootstrap"], auto_offset_reset="earliest", **_consumer_kwargs(cfg), **extra
    )
    with _peer_on(telemetry, side, interleaved):
        await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(cfg["partitions"])])

    async def getmany(n: int) -> int:
        got = 0
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=n - got)
            if not batch:
                break
            got += sum(len(records) for records in batch.values())
        return got

    async def iterate(n: int) -> int:
        got = 0
        async for _ in consumer:
            got += 1
            if got >= n:
                break
        return got

    return Side(iterate if cfg["workload"] == "consume-record" else getmany, consumer.stop)


def _role(cfg: dict[str, Any]) -> str:
    return "producer" if cfg["workload"] == "produce" else "consumer"


def _sizes(cfg: dict[str, Any]) -> tuple[int, int]:
    chunk = max(1, min(cfg["chunk"], cfg["messages"]))
    return chunk, max(1, cfg["messages"] // chunk)


class _Clients:
    """Builds the sides of one process and drives them, whichever the client library: aiokafka's
    coroutines run to completion on this process's event loop, kafka-python's calls as they are."""

    def __init__(self, cfg: dict[str, Any], telemetry: Telemetry, interleaved: bool) -> None:
        self.cfg = cfg
        self.telemetry = telemetry
        self.interleaved = interleaved
        self.loop = asyncio.new_event_loop() if cfg["client"] == "aiokafka" else None
        self.sides: list[Side] = []

    def side(self, side: str) -> Side:
        if self.loop is None:
            built = _kafka_python_side(self.cfg, self.telemetry, side)
        else:
            loop = self.loop
            made = loop.run_until_complete(_aiokafka_side(self.cfg, self.telemetry, side, self.interleaved))
            built = Side(
                lambda n: loop.run_until_complete(made.run(n)),
                lambda: loop.run_until_complete(made.close()),
                lambda: loop.run_until_complete(made.finish()),
                made.threads,
            )
        self.sides.append(built)
        return built

    def close(self) -> None:
        for built in self.sides:
            with contextlib.suppress(Exception):
                built.close()
        if self.loop is not None:
            self.loop.close()


class CollectorClock:
    """A ``gc.callbacks`` entry: seconds spent in the garbage collector and passes made, per
    generation (it holds the GIL meanwhile, so its wall time is CPU time). Whichever thread ran it,
    or, with ``thread``, that thread's passes only (``threading.get_ident()``)."""

    def __init__(self, thread: int | None = None) -> None:
        self.thread = thread
        self._started = 0.0
        self.reset()

    def reset(self) -> None:
        """Count from now on."""
        self.generation_seconds: list[float] = [0.0, 0.0, 0.0]
        self.passes: list[int] = [0, 0, 0]

    @property
    def seconds(self) -> float:
        return sum(self.generation_seconds)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if self.thread is not None and threading.get_ident() != self.thread:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.generation_seconds[generation] += time.perf_counter() - self._started
            self.passes[generation] += 1


def _export_passes(side: str) -> int:
    """Passes kafkahooks' export worker has started in this process (none on the bare side)."""
    if side != "mode":
        return 0
    from kafkahooks.export import worker

    return worker().passes


PROFILE_CONTROL_ENV = "KAFKAHOOKS_BENCH_PROFILE_CONTROL"
"""A FIFO that a profiler wrapping this process reads commands from (``perf record --control
fifo:PATH``): ``enable`` is written where the measured window starts, ``disable`` where it ends, so
that a profile holds what the figures count and not the start-up and warm-up around it."""


def _profile(command: str) -> None:
    path = os.environ.get(PROFILE_CONTROL_ENV)
    if not path:
        return
    try:  # without a reader on the FIFO the open fails at once instead of blocking the run
        fifo = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fifo, (command + "\n").encode())
    finally:
        os.close(fifo)


def _separate(cfg: dict[str, Any], commands: Iterator[str], say: Callable[[str], None]) -> dict[str, Any]:
    """One side in this process, its chunks run when the runner says so (``run N``) until it says
    ``end``; answers ``ready`` once warm and ``done`` after each chunk. The runner drives the two
    sides' processes in turns, so both see the same seconds of a noisy machine."""
    side = cfg["side"]
    install_service_sdk()
    if side == "mode" and cfg.get("export_interval_s"):
        # --export-interval; and under a simulator, where the client runs 40 to 170 times slower,
        # the export worker on its timer would pass that many more times per message.
        from kafkahooks.export import worker

        worker().interval_s = float(cfg["export_interval_s"])
    telemetry = MODES[cfg["mode"]].setup(cfg["client"], _role(cfg)) if side == "mode" else Telemetry(wrapped=False)
    if side == "mode":
        telemetry.activate()  # a class-patching peer stays on: this process is the mode's alone
    chunk, _ = _sizes(cfg)
    clients = _Clients(cfg, telemetry, interleaved=False)
    try:
        client = clients.side(side)
        client.run(chunk)  # warm: the first batches and fetches, and what they allocate once
        client.finish()
        gc.collect()
        before = gc.get_stats()
        collector = CollectorClock()
        gc.callbacks.append(collector)
        say("ready")
        _profile("enable")
        moved, wall, main, cpu0, passes0 = 0, 0.0, 0.0, _process_cpu(), _export_passes(side)
        usage = _MainThreadUsage()
        for command in commands:
            verb, _, arg = command.partition(" ")
            if verb != "run":
                break
            wall0, main0 = time.perf_counter(), time.thread_time()
            usage.start()
            moved += client.run(int(arg))
            usage.stop()
            wall += time.perf_counter() - wall0
            main += time.thread_time() - main0
            say("done")
        # Chunks leave a producer's last batch to its linger: the run ends when all is acknowledged
        # (its CPU counted; its wall time, mostly that linger, not).
        main0 = time.thread_time()
        client.finish()
        main += time.thread_time() - main0
        telemetry.flush()  # the mode's deferred work is the mode's cost
        _profile("disable")
        # Every thread's CPU from the first chunk on, gaps included: background work a side did
        # while the other side ran is still its own.
        cpu = _process_cpu() - cpu0
        export_passes = _export_passes(side) - passes0
        collections = [b["collections"] - a["collections"] for a, b in zip(before, gc.get_stats(), strict=True)]
        gc.callbacks.remove(collector)
    finally:
        clients.close()
        telemetry.close()
    figures = _figures(moved, wall, cpu)
    figures["gc_us_per_msg"] = collector.seconds / max(moved, 1) * 1e6
    # Per generation (young, middle, full): what the collector's passes cost, and how many ran.
    figures["gc_generation_us_per_msg"] = [s / max(moved, 1) * 1e6 for s in collector.generation_seconds]
    figures["gc_passes"] = list(collector.passes)
    # The application's own thread alone, during the chunks (aiokafka's event loop runs there).
    figures["main_cpu_us_per_msg"] = main / max(moved, 1) * 1e6
    figures.update(usage.figures(moved))
    if side == "mode":
        figures["export_passes"] = export_passes
    return {
        "method": "separate",
        "side": side,
        side: figures,
        "gc_collections": collections,
        "peak_rss_mb": _peak_rss_mb(),
        "telemetry_dropped": telemetry.dropped(),
    }


def _chunk(side: Side, n: int) -> int:
    """One interleaved chunk: its work ends when it is acknowledged (CPU is charged per chunk)."""
    moved = int(side.run(n))
    side.finish()
    return moved


def _interleaved(cfg: dict[str, Any]) -> dict[str, Any]:
    telemetry = MODES[cfg["mode"]].setup(cfg["client"], _role(cfg))
    chunk, chunks = _sizes(cfg)
    clients = _Clients(cfg, telemetry, interleaved=True)
    try:
        sides = {side: clients.side(side) for side in ("bare", "mode")}
        for client in sides.values():
            client.run(chunk)  # warm
            client.finish()
        ledger = Ledger()
        ledger.bare_threads = sides["bare"].threads
        for side in _schedule(chunks):
            if side == "mode":
                telemetry.activate()
            ledger.chunk(side, lambda side=side: _chunk(sides[side], chunk))  # type: ignore[misc]
            if side == "mode":
                telemetry.deactivate()
        ledger.chunk("mode", telemetry.flushed)  # what the mode still had queued
        result = ledger.result()
    finally:
        clients.close()
        telemetry.close()
    result["method"] = "interleaved"
    result["peak_rss_mb"] = _peak_rss_mb()
    result["telemetry_dropped"] = telemetry.dropped()
    return result


def main() -> None:
    cfg = json.loads(sys.argv[1])
    cpus = cfg.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    # Standard output is the runner's channel alone: whatever else writes there (a logger that
    # prints, a library's warning) goes to standard error instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def say(line: str) -> None:
        channel.write(line + "\n")
        channel.flush()

    if cfg.get("method", "separate") == "separate":
        result = _separate(cfg, (line.strip() for line in sys.stdin), say)
    else:
        result = _interleaved(cfg)
    say(json.dumps(result))


if __name__ == "__main__":
    main()
