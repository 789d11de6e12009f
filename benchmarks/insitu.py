"""What kafkahooks' own frames cost *where they run*, on aiokafka's event loop, against what the
event loop pays in all: so the extra CPU of a mode splits into kafkahooks' frames and the rest (the
client's own code running slower beside them).

Run: ``.venv/bin/python benchmarks/insitu.py --mode dsm --mode hooks --rounds 8`` (about 10 s a
round per mode). On the embedded broker (its own CPU when the machine has two), every round runs,
each in a fresh process pinned to one CPU with the bench's steady heap, an aiokafka producer
sending 100-byte records with linger 5 ms: the bare client, then per mode one process with timers
and one without. Each process measures its main thread's CPU time (the event loop) and the wall
time (its throughput) over ``--messages`` records, after a warm-up of a tenth as many. The timed
process also wraps every entry point of kafkahooks' work on the event loop (per Produce request:
the request's walk as it is sent, the write, the response's read and decoding; per batch: the
first record's append, which opens the batch's headers and checkpoint) in a ``perf_counter_ns``
pair and sums their time per request. The untimed process gives the mode's cost without the
timers' own; the timed one, what the frames took in place. Reported, medians over the rounds:
throughput and the event loop's CPU per message as ratios to bare (untimed processes), and per
Produce request the event loop's extra CPU over bare, kafkahooks' timed frames, and the rest
(the extra that is in none of them).

kafkahooks' wrappers around the client's own calls (the connection's ``send`` and
``_handle_frame``, the transport's ``write``) are timed with the client's calls inside them, and
count for their own time only. Not timed (their time falls in "the rest"): the client's ``send``
wrapper (a coroutine, which the timers cannot follow across its awaits; a context variable set and
reset per request) and the accumulator's ``_append_batch`` hook (one frame lookup per batch, which
a timer would defeat). The first-append figure includes the client's own append of that record
(about 0.2 µs in a warm loop). A warm loop of the same work: ``benchmarks/micro.py``.

``--workload getmany`` runs a consumer reading with ``getmany`` instead, from a topic the tool fills
once (every process reads it from the start, after warming up on another topic, so its Fetch
requests fall inside the measurement). The embedded broker answers a Fetch with all it holds, so a
request is no unit there: figures are per 1 000 records. Its frames are the same request and
response entry points and wrappers, and the hand-outs: new fetch results given batch cursors, the
records wrappers' next-batch calls, and ``getmany``'s hand-out scope (where data streams and spans
take the batches handed out). Results go to ``benchmarks/results/insitu-WORKLOAD.json``
(``--output``).

The timed process also prices an empty Python call where kafkahooks' batch code runs (the probe:
a call to a function that does nothing, timed right before each batch's opening, or each batch's
entry on ``getmany``, outside the frames' timers), and the same call in a warm loop after the
measurement: the exchange rate from a micro-benchmark to the event loop. Its time counts with the
timers' own.

Every process, bare included, also meters the garbage collector on its main thread inside the
measurement (``gc.callbacks``: time and passes per generation, and the tracked objects left at the
end), so the rest splits once more: the collector's extra over bare, and what is left beyond it.
The collector is not kafkahooks' frame, but what it pays for objects of ours is our cost: a full
pass visits every long-lived tracked object. ``--ballast N`` gives the mode's processes (not bare's)
N more long-lived objects, nothing else: ``--mode bare --ballast N`` measures what N objects cost a
consumer, bare against bare. ``--mode bare`` alone measures bare against itself, third in the round
as every mode is: the order of the processes alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from kafkahooks.bench._worker import CollectorClock

ROOT = Path(__file__).resolve().parent.parent
VALUE = b"x" * 100

FRAMES = {
    "request_sent": "request walked as it is sent",
    "tap.written": "write timed",
    "tap.frame_read": "response frame read",
    "response_decoded": "response decoded, request ended",
    "first_append": "batch opened: headers, checkpoint, refusal watch",
}
"""kafkahooks' entry points timed on a producer, each disjoint from the others (none calls another)."""

GETMANY_FRAMES = {
    "request_sent": "Fetch request walked as it is sent",
    "tap.written": "write timed",
    "tap.frame_read": "response frame read",
    "response_decoded": "response decoded: batches walked, request ended",
    "handouts.sync": "new fetch results given batch cursors",
    "batch_entered": "records: a batch entered",
    "batch_finished": "records: a batch used up",
    "scope": "getmany's hand-out scope, begun and ended",
}
"""kafkahooks' entry points timed on a consumer that reads with ``getmany``."""

Unsplit = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
"""Shown apart: name -> (the wrappers' timers, kafkahooks' frames inside them)."""

UNSPLIT: Unsplit = {
    "records wrappers, their own with the client's calls": (
        ("handout.has_next", "handout.next_batch"),
        ("batch_finished", "batch_entered"),
    )
}
"""Wrappers whose client call cannot be timed apart (aiokafka's compiled records ``has_next`` and
``next_batch``): their time less kafkahooks' frames inside, shown but not counted as kafkahooks'."""

WORKLOADS: dict[str, tuple[dict[str, str], Unsplit]] = {
    "produce": (FRAMES, {}),
    "getmany": (GETMANY_FRAMES, UNSPLIT),
}
"""Per workload: the frames counted as kafkahooks', and the wrappers shown but not counted."""

GETMANY_RECORDS = 5000
"""Records a ``getmany`` call asks for at most: what ``kafkahooks bench`` asks per aiokafka chunk.
(One call for all 200 000 would measure mostly the collector, walking the records it made.)"""

WRAPPERS = {
    "connection send": ("hooked.send", ("client.send", "request_sent")),
    "frame handler": ("hooked.handle_frame", ("client.handle_frame", "tap.frame_read", "response_decoded")),
    "transport write": ("timed.write", ("transport.write", "tap.written")),
}
"""kafkahooks' wrappers around the client's own calls: (the wrapper's timer, the timers inside it).
A wrapper's own time is its time less what ran inside it (the client's call and our frames), so
it carries the inner timers' own calls (a fraction of a microsecond each)."""


def _timer(acc: dict[str, list[int]], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    slot = acc.setdefault(name, [0, 0])
    clock = time.perf_counter_ns

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            slot[0] += clock() - start
            slot[1] += 1

    return timed


def _empty() -> None:
    """The probe's call: nothing, what any Python call costs beyond its body."""


def _probed(acc: dict[str, list[int]], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` preceded by the probe: an empty call timed where kafkahooks' frames run (``probe.call``,
    with one clock read inside) and a clock read alone (``probe.clock``), to subtract."""
    call = acc.setdefault("probe.call", [0, 0])
    alone = acc.setdefault("probe.clock", [0, 0])
    clock = time.perf_counter_ns
    empty = _empty

    def probed(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        t1 = clock()
        empty()
        t2 = clock()
        alone[0] += t1 - t0
        call[0] += t2 - t1
        call[1] += 1
        return fn(*args, **kwargs)

    return probed


def warm_probe(calls: int = 20_000, repeats: int = 5) -> tuple[float, float]:
    """The probe in a warm loop, (empty call with a clock read, clock read alone) in µs: the
    fastest of ``repeats`` loops, as a micro-benchmark reports it."""
    clock = time.perf_counter_ns
    empty = _empty
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        alone = call = 0
        for _ in range(calls):
            t0 = clock()
            t1 = clock()
            empty()
            t2 = clock()
            alone += t1 - t0
            call += t2 - t1
        best = min(best, (call / calls / 1000, alone / calls / 1000))
    return best


def install_timers(acc: dict[str, list[int]], workload: str = "produce") -> None:
    """Wrap kafkahooks' event-loop entry points (module and class attributes, before any client
    exists: the hooks read them at call time)."""
    from asyncio.selector_events import _SelectorSocketTransport  # type: ignore[attr-defined]

    from aiokafka.conn import AIOKafkaConnection

    from kafkahooks._wire._tap import ConnectionTap
    from kafkahooks._wire.aiokafka import _connections, _headers

    _connections.request_sent = _timer(acc, "request_sent", _connections.request_sent)  # type: ignore[attr-defined]
    _connections.response_decoded = _timer(acc, "response_decoded", _connections.response_decoded)  # type: ignore[attr-defined]
    for name in ("written", "frame_read"):
        try:
            setattr(ConnectionTap, name, _timer(acc, f"tap.{name}", getattr(ConnectionTap, name)))
        except (AttributeError, TypeError):  # a compiled tap (mypyc): its time stays in the wrapper's
            del acc[f"tap.{name}"]
    if workload == "produce":
        first_append = _timer(acc, "first_append", _headers._FirstAppend.append)
        # The probe runs as each batch opens, right before kafkahooks' batch code, outside its timer.
        _headers._FirstAppend.append = _probed(acc, first_append)  # type: ignore[method-assign]
    else:
        from kafkahooks._instrument import Instrumentation
        from kafkahooks._wire.aiokafka import _handouts

        _handouts._HandOuts.sync = _timer(acc, "handouts.sync", _handouts._HandOuts.sync)  # type: ignore[method-assign]
        records = _handouts._HandOutRecords
        records.has_next = _timer(acc, "handout.has_next", records.has_next)  # type: ignore[method-assign]
        records.next_batch = _timer(acc, "handout.next_batch", records.next_batch)  # type: ignore[method-assign]
        entered = _timer(acc, "batch_entered", _handouts.batch_entered)  # type: ignore[attr-defined]
        _handouts.batch_entered = _probed(acc, entered)  # type: ignore[attr-defined]
        _handouts.batch_finished = _timer(acc, "batch_finished", _handouts.batch_finished)  # type: ignore[attr-defined]
        for name in ("begin_handout_scope", "end_handout_scope"):
            setattr(Instrumentation, name, _timer(acc, "scope", getattr(Instrumentation, name)))
    # The wrappers and the client's calls inside them (the hooks call the client's class functions).
    hooked, timed = _connections._HookedConnection, _connections._TimedTransport
    hooked.send = _timer(acc, "hooked.send", hooked.send)  # type: ignore[method-assign]
    hooked.handle_frame = _timer(acc, "hooked.handle_frame", hooked.handle_frame)  # type: ignore[method-assign]
    timed.write = _timer(acc, "timed.write", timed.write)  # type: ignore[method-assign]
    AIOKafkaConnection.send = _timer(acc, "client.send", AIOKafkaConnection.send)
    AIOKafkaConnection._handle_frame = _timer(acc, "client.handle_frame", AIOKafkaConnection._handle_frame)
    _SelectorSocketTransport.write = _timer(acc, "transport.write", _SelectorSocketTransport.write)


def _client(mode: str, role: str, **kwargs: Any) -> tuple[Any, Any]:
    """(the mode's telemetry, its aiokafka client for ``role``): the service SDK set up as
    ``kafkahooks bench`` sets it up, the wrapped class with the mode's arguments or the bare one."""
    import aiokafka

    from kafkahooks import aiokafka as wrapped
    from kafkahooks.bench._modes import MODES, install_service_sdk

    install_service_sdk()
    telemetry = MODES[mode].setup("aiokafka", role)
    name = "AIOKafkaProducer" if role == "producer" else "AIOKafkaConsumer"
    cls = getattr(wrapped if telemetry.wrapped else aiokafka, name)
    extra = telemetry.client_kwargs if telemetry.wrapped else {}
    return telemetry, cls(**kwargs, **extra)


def _window() -> tuple[int, int]:
    """(the main thread's CPU clock, the wall clock), in nanoseconds."""
    return time.thread_time_ns(), time.perf_counter_ns()


async def _produce(
    mode: str, bootstrap: str, topic: str, messages: int, acc: dict[str, list[int]], collector: CollectorClock
) -> dict[str, Any]:
    telemetry, producer = _client(mode, "producer", bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    try:
        send = producer.send
        for _ in range(max(messages // 10, 1000)):  # connections, metadata, specialization
            await send(topic, VALUE)
        await producer.flush()
        for slot in acc.values():
            slot[:] = [0, 0]
        collector.reset()
        start = _window()
        for _ in range(messages):
            await send(topic, VALUE)
        await producer.flush()
        end = _window()
    finally:
        await producer.stop()
        telemetry.close()
    return _result(mode, acc, collector, start, end, messages)


async def _getmany(
    mode: str, bootstrap: str, topic: str, messages: int, acc: dict[str, list[int]], collector: CollectorClock
) -> dict[str, Any]:
    from aiokafka.structs import TopicPartition

    telemetry, consumer = _client(mode, "consumer", bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()

    async def read(n: int) -> None:
        got = 0
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=min(n - got, GETMANY_RECORDS))
            if not batch:
                raise RuntimeError(f"the topic ran out after {got} of {n} records")
            got += sum(len(records) for records in batch.values())

    warm, measured = topic.split(",")
    try:
        consumer.assign([TopicPartition(warm, 0)])
        await read(max(messages // 10, 1000))  # connections, metadata, specialization
        for slot in acc.values():
            slot[:] = [0, 0]
        collector.reset()
        start = _window()
        # A topic not fetched yet: its Fetch requests and responses fall inside the measurement.
        consumer.assign([TopicPartition(measured, 0)])
        await read(messages)
        end = _window()
    finally:
        await consumer.stop()
        telemetry.close()
    return _result(mode, acc, collector, start, end, messages)


def _result(
    mode: str,
    acc: dict[str, list[int]],
    collector: CollectorClock,
    start: tuple[int, int],
    end: tuple[int, int],
    messages: int,
) -> dict[str, Any]:
    probe = None
    if acc.get("probe.call", [0, 0])[1]:
        calls = acc["probe.call"][1]
        warm_call, warm_clock = warm_probe()
        probe = {
            "calls": calls,
            "in_place_us": acc["probe.call"][0] / calls / 1000,
            "in_place_clock_us": acc["probe.clock"][0] / calls / 1000,
            "warm_us": warm_call,
            "warm_clock_us": warm_clock,
        }
    return {
        "mode": mode,
        "timed": bool(acc),
        "probe": probe,
        "main_us_per_message": (end[0] - start[0]) / 1000 / messages,
        "messages_per_second": messages / ((end[1] - start[1]) / 1e9),
        "requests": acc["hooked.send"][1] if "hooked.send" in acc else None,
        "timed_us": {k: v[0] / 1000 for k, v in acc.items()},
        "calls": {k: v[1] for k, v in acc.items()},
        "gc_us": collector.seconds * 1e6,
        "gc_collections": list(collector.passes),
        "gc_generation_us": [seconds * 1e6 for seconds in collector.generation_seconds],
        "gc_tracked": len(gc.get_objects()),
    }


BALLAST: list[list[int]] = []
"""``--ballast``: long-lived objects the collector visits on each full pass, and nothing else does."""


def child(workload: str, mode: str, bootstrap: str, topic: str, messages: int, timed: bool, ballast: int = 0) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from kafkahooks.bench._worker import CollectorClock

    acc: dict[str, list[int]] = {}
    # The main thread's collections, in every process (bare included: each pays the same two calls
    # per collection), counted from the start of the measurement (reset there).
    collector = CollectorClock(threading.get_ident())
    gc.callbacks.append(collector)
    BALLAST[:] = [[i] for i in range(ballast)]
    if timed:
        install_timers(acc, workload)
    run = _produce if workload == "produce" else _getmany
    print(json.dumps(asyncio.run(run(mode, bootstrap, topic, messages, acc, collector))))


def fill(bootstrap: str, admin: Any, records: int) -> str:
    """Two topics for the consumers, ``warm-up,measured``: a tenth of ``records`` to warm up on,
    then ``records`` to measure (every side reads both from the start), written once by a bare
    producer in 64 KiB batches, as ``kafkahooks bench`` fills its own."""
    import kafka
    from kafka.admin import NewTopic

    topics = []
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=65536)
    try:
        for count in (max(records // 10, 1000), records):
            topic = f"insitu-{uuid.uuid4().hex[:8]}"
            admin.create_topics([NewTopic(topic, 1, 1)])
            for _ in range(count):
                producer.send(topic, VALUE)
            topics.append(topic)
        producer.flush()
    finally:
        producer.close()
    return ",".join(topics)


def _side(
    bootstrap: str,
    admin: Any,
    workload: str,
    topic: str | None,
    mode: str,
    messages: int,
    timed: bool,
    ballast: int = 0,
) -> dict[str, Any]:
    from kafka.admin import NewTopic

    from kafkahooks.bench._runner import worker_env

    if topic is None:  # a producer writes to a topic of its own
        topic = f"insitu-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, 1, 1)])
    flag = "1" if timed else "0"
    argv = [sys.executable, __file__, "--child", workload, mode, bootstrap, topic, str(messages), flag, str(ballast)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT, env=worker_env(True)
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} side failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def summarize(
    runs: list[dict[str, Any]],
    mode: str,
    frame_names: dict[str, str] = FRAMES,
    per_request: bool = True,
    unsplit_names: Unsplit | None = None,
) -> dict[str, Any]:
    """Medians over rounds, per unit of work (a Produce request; or, ``per_request=False``, 1 000
    records, for a consumer whose requests carry as much as the broker sends): the event loop's
    extra CPU over bare (untimed processes), kafkahooks' timed frames, the rest, and what the
    timers themselves cost."""
    # By place in the round (bare, timed, untimed), not by mode: ``--mode bare`` measures bare
    # against itself (what the order of the processes alone makes of it).
    bare_runs = [r for r in runs if r["side"] == "bare"]
    plain_runs = [r for r in runs if r["side"] == "untimed"]
    bare = [r["main_us_per_message"] for r in bare_runs]
    plain = [r["main_us_per_message"] for r in plain_runs]
    timed = [r for r in runs if r["side"] == "timed"]
    unit = statistics.median(r["messages"] / r["requests"] for r in timed) if per_request else 1000.0

    def per_unit(run: dict[str, Any], name: str) -> float:
        return float(run["timed_us"].get(name, 0.0) / (run["messages"] / unit))

    frames = {n: statistics.median(per_unit(r, n) for r in timed) for n in frame_names}

    def own(run: dict[str, Any], outer: str, inner: tuple[str, ...]) -> float:
        # A wrapper that never ran (bare, or a mode without the taps) has no time of its own.
        return per_unit(run, outer) - sum(per_unit(run, i) for i in inner) if per_unit(run, outer) else 0.0

    wrappers = {
        name: statistics.median(own(r, outer, inner) for r in timed) for name, (outer, inner) in WRAPPERS.items()
    }
    unsplit = {
        name: statistics.median(sum(per_unit(r, o) for o in outer) - sum(per_unit(r, i) for i in inner) for r in timed)
        for name, (outer, inner) in (unsplit_names or {}).items()
    }
    extra = statistics.median(p - b for p, b in zip(plain, bare, strict=True)) * unit
    timers = statistics.median(t["main_us_per_message"] - p for t, p in zip(timed, plain, strict=True)) * unit
    ours = sum(frames.values()) + sum(wrappers.values())

    def collector(run: dict[str, Any]) -> float:
        return float(run.get("gc_us", 0.0) / run["messages"] * unit)

    gc_extra = statistics.median(collector(p) - collector(b) for p, b in zip(plain_runs, bare_runs, strict=True))
    probed = [r for r in timed if r.get("probe")]  # a mode without kafkahooks' batch code has no probe
    return {
        "mode": mode,
        "rounds": len(timed),
        "unit": "Produce request" if per_request else "1 000 records",
        "records_per_unit": unit,
        "bare_main_us_per_message": statistics.median(bare),
        "mode_main_us_per_message": statistics.median(plain),
        "main_cpu_ratio": statistics.median(p / b for p, b in zip(plain, bare, strict=True)),
        "throughput_ratio": statistics.median(
            p["messages_per_second"] / b["messages_per_second"] for p, b in zip(plain_runs, bare_runs, strict=True)
        ),
        "extra_us_per_unit": extra,
        "frames_us_per_unit": frames,
        "wrappers_us_per_unit": wrappers,
        "unsplit_us_per_unit": unsplit,
        "frames_total_us_per_unit": ours,
        "rest_us_per_unit": extra - ours,
        "bare_gc_us_per_unit": statistics.median(collector(b) for b in bare_runs),
        "gc_extra_us_per_unit": gc_extra,
        "rest_beyond_gc_us_per_unit": extra - ours - gc_extra,
        "timers_us_per_unit": timers,
        "empty_call_in_place_us": _median_or_none(
            [r["probe"]["in_place_us"] - r["probe"]["in_place_clock_us"] for r in probed]
        ),
        "empty_call_warm_us": _median_or_none([r["probe"]["warm_us"] - r["probe"]["warm_clock_us"] for r in probed]),
    }


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        workload, mode, bootstrap, topic, messages, flag, ballast = sys.argv[2:9]
        child(workload, mode, bootstrap, topic, int(messages), flag == "1", int(ballast))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", action="append", help="modes to measure (default: dsm, hooks)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="produce")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/insitu-WORKLOAD.json")
    parser.add_argument(
        "--ballast",
        type=int,
        default=0,
        help="N long-lived one-item lists in the mode's processes, not bare's (what the collector's full "
        "passes pay per object: with --mode bare, bare against bare with N more)",
    )
    args = parser.parse_args()
    modes = args.mode or ["dsm", "hooks"]
    frame_names, unsplit = WORKLOADS[args.workload]
    output = args.output or ROOT / "benchmarks" / "results" / f"insitu-{args.workload}.json"

    from kafka.admin import KafkaAdminClient

    from kafkahooks.broker import EmbeddedBroker

    console = Console()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    broker_cpus = set(cpus[1:]) if len(cpus) > 1 else None
    runs: list[dict[str, Any]] = []
    with EmbeddedBroker(cpus=broker_cpus) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            filled: str | None = None
            if args.workload != "produce":  # every round's warm-up and measured records, once
                filled = fill(broker.bootstrap_servers, admin, args.messages)
            for round_no in range(args.rounds):
                for mode in modes:
                    # bare, timed, untimed: each mode's pair of processes right after its own bare.
                    for side, process, timed in (
                        ("bare", "bare", False),
                        ("timed", mode, True),
                        ("untimed", mode, False),
                    ):
                        extra = args.ballast if side != "bare" else 0
                        run = _side(
                            broker.bootstrap_servers, admin, args.workload, filled, process, args.messages, timed, extra
                        )
                        run["side"] = side
                        run["ballast"] = extra
                        run["messages"] = args.messages
                        run["round"] = round_no
                        run["pair"] = mode
                        runs.append(run)
                console.print(f"round {round_no + 1}/{args.rounds} done")
        finally:
            admin.close()
    per_request = args.workload == "produce"
    summaries = [summarize([r for r in runs if r["pair"] == m], m, frame_names, per_request, unsplit) for m in modes]
    table = Table(title=f"aiokafka {args.workload}, event loop, µs per {summaries[0]['unit']} (medians)")
    table.add_column("")
    for mode in modes:
        table.add_column(mode, justify="right")
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("records per unit", lambda s: f"{s['records_per_unit']:.0f}"),
        ("throughput, ratio to bare (untimed)", lambda s: f"{s['throughput_ratio']:.3f}"),
        ("event loop CPU per message, ratio to bare", lambda s: f"{s['main_cpu_ratio']:.3f}"),
        ("extra over bare, untimed", lambda s: f"{s['extra_us_per_unit']:.1f}"),
        *[(f"  {frame_names[n]}", lambda s, n=n: f"{s['frames_us_per_unit'][n]:.1f}") for n in frame_names],
        *[(f"  {n} wrapper, its own", lambda s, n=n: f"{s['wrappers_us_per_unit'][n]:.1f}") for n in WRAPPERS],
        ("  kafkahooks' frames, in all", lambda s: f"{s['frames_total_us_per_unit']:.1f}"),
        *[(f"  ({n}: not counted)", lambda s, n=n: f"{s['unsplit_us_per_unit'][n]:.1f}") for n in unsplit],
        ("  the rest", lambda s: f"{s['rest_us_per_unit']:.1f}"),
        (
            "    the collector's extra (bare's own)",
            lambda s: f"{s['gc_extra_us_per_unit']:.1f} ({s['bare_gc_us_per_unit']:.0f})",
        ),
        ("    the rest beyond the collector", lambda s: f"{s['rest_beyond_gc_us_per_unit']:.1f}"),
        ("(the timers' own cost)", lambda s: f"{s['timers_us_per_unit']:.1f}"),
        (
            "an empty Python call here, µs (in a warm loop)",
            lambda s: (
                "—"
                if s["empty_call_in_place_us"] is None
                else f"{s['empty_call_in_place_us']:.3f} ({s['empty_call_warm_us']:.3f})"
            ),
        ),
    ]
    for title, cell in rows:
        table.add_row(title, *[cell(s) for s in summaries])
    console.print(table)
    output.write_text(
        json.dumps(
            {
                "command": "python benchmarks/insitu.py " + " ".join(sys.argv[1:]),
                "date": time.strftime("%Y-%m-%d"),
                "python": sys.version.split()[0],
                "summaries": summaries,
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    console.print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
