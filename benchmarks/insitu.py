"""What kafkahooks' own frames cost *where they run*, on aiokafka's event loop, against what the
event loop pays in all: so the extra CPU of a mode splits into kafkahooks' frames and the rest (the
client's own code running slower beside them).

Run: ``.venv/bin/python benchmarks/insitu.py --mode dsm --mode hooks --rounds 8`` (about 10 s a
round per mode). On the embedded broker (its own CPU when the machine has two), every round runs,
each in a fresh process pinned to one CPU with the bench's steady heap, an aiokafka producer
sending 100-byte records with linger 5 ms: the bare client, then per mode one process with timers
and one without. Each process measures its main thread's CPU time (the event loop) over
``--messages`` records, after a warm-up of a tenth as many. The timed process also wraps every
entry point of kafkahooks' work on the event loop (per Produce request: the request's walk as it
is sent, the write, the response's read and decoding; per batch: the first record's append, which
opens the batch's headers and checkpoint) in a ``perf_counter_ns`` pair and sums their time per
request. The untimed process gives the mode's cost without the timers' own; the timed one, what
the frames took in place. Reported per Produce request, medians over the rounds: the event loop's
extra CPU over bare, kafkahooks' timed frames, and the rest (the extra that is in none of them).

kafkahooks' wrappers around the client's own calls (the connection's ``send`` and
``_handle_frame``, the transport's ``write``) are timed with the client's calls inside them, and
count for their own time only. Not timed (their time falls in "the rest"): the client's ``send``
wrapper (a coroutine, which the timers cannot follow across its awaits; a context variable set and
reset per request) and the accumulator's ``_append_batch`` hook (one frame lookup per batch, which
a timer would defeat). The first-append figure includes the client's own append of that record
(about 0.2 µs in a warm loop). A warm loop of the same work: ``benchmarks/micro.py``. Results go to
``benchmarks/results/insitu-produce.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
VALUE = b"x" * 100

FRAMES = {
    "request_sent": "request walked as it is sent",
    "tap.written": "write timed",
    "tap.frame_read": "response frame read",
    "response_decoded": "response decoded, request ended",
    "first_append": "batch opened: headers, checkpoint, refusal watch",
}
"""kafkahooks' entry points timed, each disjoint from the others (none calls another)."""

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


def install_timers(acc: dict[str, list[int]]) -> None:
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
    _headers._FirstAppend.append = _timer(acc, "first_append", _headers._FirstAppend.append)  # type: ignore[method-assign]
    # The wrappers and the client's calls inside them (the hooks call the client's class functions).
    hooked, timed = _connections._HookedConnection, _connections._TimedTransport
    hooked.send = _timer(acc, "hooked.send", hooked.send)  # type: ignore[method-assign]
    hooked.handle_frame = _timer(acc, "hooked.handle_frame", hooked.handle_frame)  # type: ignore[method-assign]
    timed.write = _timer(acc, "timed.write", timed.write)  # type: ignore[method-assign]
    AIOKafkaConnection.send = _timer(acc, "client.send", AIOKafkaConnection.send)
    AIOKafkaConnection._handle_frame = _timer(acc, "client.handle_frame", AIOKafkaConnection._handle_frame)
    _SelectorSocketTransport.write = _timer(acc, "transport.write", _SelectorSocketTransport.write)


async def _produce(mode: str, bootstrap: str, topic: str, messages: int, acc: dict[str, list[int]]) -> dict[str, Any]:
    import aiokafka

    from kafkahooks.aiokafka import AIOKafkaProducer
    from kafkahooks.bench._modes import MODES, install_service_sdk

    install_service_sdk()
    telemetry = MODES[mode].setup("aiokafka", "producer")
    cls: Any = AIOKafkaProducer if telemetry.wrapped else aiokafka.AIOKafkaProducer
    extra = telemetry.client_kwargs if telemetry.wrapped else {}
    producer = cls(bootstrap_servers=bootstrap, linger_ms=5, acks=1, **extra)
    await producer.start()
    try:
        send = producer.send
        for _ in range(max(messages // 10, 1000)):  # connections, metadata, specialization
            await send(topic, VALUE)
        await producer.flush()
        for slot in acc.values():
            slot[:] = [0, 0]
        start = time.thread_time_ns()
        for _ in range(messages):
            await send(topic, VALUE)
        await producer.flush()
        main_ns = time.thread_time_ns() - start
    finally:
        await producer.stop()
        telemetry.close()
    requests = acc["hooked.send"][1] if "hooked.send" in acc else None
    return {
        "mode": mode,
        "timed": bool(acc),
        "main_us_per_message": main_ns / 1000 / messages,
        "requests": requests,
        "timed_us_per_request": {k: v[0] / 1000 / requests for k, v in acc.items()} if requests else {},
        "calls": {k: v[1] for k, v in acc.items()},
    }


def child(mode: str, bootstrap: str, topic: str, messages: int, timed: bool) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    acc: dict[str, list[int]] = {}
    if timed:
        install_timers(acc)
    print(json.dumps(asyncio.run(_produce(mode, bootstrap, topic, messages, acc))))


def _side(bootstrap: str, admin: Any, mode: str, messages: int, timed: bool) -> dict[str, Any]:
    from kafka.admin import NewTopic

    from kafkahooks.bench._runner import worker_env

    topic = f"insitu-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1, 1)])
    argv = [sys.executable, __file__, "--child", mode, bootstrap, topic, str(messages), "1" if timed else "0"]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT, env=worker_env(True)
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} side failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def summarize(runs: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """Medians over rounds, per Produce request: the event loop's extra CPU over bare (untimed
    processes), kafkahooks' timed frames, the rest, and what the timers themselves cost."""
    bare = [r["main_us_per_message"] for r in runs if r["mode"] == "bare"]
    plain = [r["main_us_per_message"] for r in runs if r["mode"] == mode and not r["timed"]]
    timed = [r for r in runs if r["mode"] == mode and r["timed"]]
    messages_per_request = statistics.median(r["messages"] / r["requests"] for r in timed)
    frames = {name: statistics.median(r["timed_us_per_request"].get(name, 0.0) for r in timed) for name in FRAMES}
    wrappers = {
        name: statistics.median(
            r["timed_us_per_request"].get(outer, 0.0) - sum(r["timed_us_per_request"].get(i, 0.0) for i in inner)
            for r in timed
        )
        for name, (outer, inner) in WRAPPERS.items()
    }
    extra = statistics.median(p - b for p, b in zip(plain, bare, strict=True)) * messages_per_request
    timers = (
        statistics.median(t["main_us_per_message"] - p for t, p in zip(timed, plain, strict=True))
        * messages_per_request
    )
    ours = sum(frames.values()) + sum(wrappers.values())
    return {
        "mode": mode,
        "rounds": len(timed),
        "records_per_request": messages_per_request,
        "bare_main_us_per_message": statistics.median(bare),
        "mode_main_us_per_message": statistics.median(plain),
        "main_cpu_ratio": statistics.median(p / b for p, b in zip(plain, bare, strict=True)),
        "extra_us_per_request": extra,
        "frames_us_per_request": frames,
        "wrappers_us_per_request": wrappers,
        "frames_total_us_per_request": ours,
        "rest_us_per_request": extra - ours,
        "timers_us_per_request": timers,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, bootstrap, topic, messages, flag = sys.argv[2:7]
        child(mode, bootstrap, topic, int(messages), flag == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", action="append", help="modes to measure (default: dsm, hooks)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "insitu-produce.json")
    args = parser.parse_args()
    modes = args.mode or ["dsm", "hooks"]

    from kafka.admin import KafkaAdminClient

    from kafkahooks.broker import EmbeddedBroker

    console = Console()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    broker_cpus = set(cpus[1:]) if len(cpus) > 1 else None
    runs: list[dict[str, Any]] = []
    with EmbeddedBroker(cpus=broker_cpus) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            for round_no in range(args.rounds):
                for mode in modes:
                    # bare, timed, untimed: each mode's pair of processes right after its own bare.
                    for side, timed in (("bare", False), (mode, True), (mode, False)):
                        run = _side(broker.bootstrap_servers, admin, side, args.messages, timed)
                        run["messages"] = args.messages
                        run["round"] = round_no
                        run["pair"] = mode
                        runs.append(run)
                console.print(f"round {round_no + 1}/{args.rounds} done")
        finally:
            admin.close()
    summaries = [summarize([r for r in runs if r["pair"] == mode], mode) for mode in modes]
    table = Table(title="aiokafka produce, event loop, µs per Produce request (medians)")
    table.add_column("")
    for mode in modes:
        table.add_column(mode, justify="right")
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("records per request", lambda s: f"{s['records_per_request']:.0f}"),
        ("event loop CPU, ratio to bare", lambda s: f"{s['main_cpu_ratio']:.3f}"),
        ("extra over bare, untimed", lambda s: f"{s['extra_us_per_request']:.1f}"),
        *[(f"  {FRAMES[name]}", lambda s, n=name: f"{s['frames_us_per_request'][n]:.1f}") for name in FRAMES],
        *[(f"  {n} wrapper, its own", lambda s, n=n: f"{s['wrappers_us_per_request'][n]:.1f}") for n in WRAPPERS],
        ("  kafkahooks' frames, in all", lambda s: f"{s['frames_total_us_per_request']:.1f}"),
        ("  the rest", lambda s: f"{s['rest_us_per_request']:.1f}"),
        ("(the timers' own cost)", lambda s: f"{s['timers_us_per_request']:.1f}"),
    ]
    for title, cell in rows:
        table.add_row(title, *[cell(s) for s in summaries])
    console.print(table)
    args.output.write_text(
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
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
