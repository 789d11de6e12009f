"""A user hook that stalls must not stall the client: heartbeats go on, records keep flowing.

The contrast case (``hook_budget_ms=None``: every hook inline, as franz-go calls them) shows the
stall is real and that these tests can fail.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from typing import Any

import pytest

from kafkahooks.hooks import ApiKey
from tests._drivers import CLIENTS
from tests.conftest import GROUP_TIMEOUTS

STALL_S = 5.0
"""How long the stalling hook blocks: five heartbeat intervals."""


class Stall:
    """Blocks in its first broker read after :meth:`arm` (for ``STALL_S``, or until released)."""

    def __init__(self) -> None:
        self.armed = False
        self.release = threading.Event()
        self.stalled_on: int | None = None
        self.reads = 0

    def arm(self) -> None:
        self.armed = True

    def on_broker_read(self, *args: Any) -> None:
        self.reads += 1
        if self.armed:
            self.armed = False
            self.stalled_on = threading.get_ident()
            self.release.wait(STALL_S)


class HeartbeatClock:
    """When each heartbeat response was read (inline: it sees what the client's I/O sees)."""

    kafkahooks_inline = True

    def __init__(self) -> None:
        self.at: list[float] = []

    def on_broker_read(self, meta: Any, key: int, *rest: Any) -> None:
        if key == ApiKey.HEARTBEAT:
            self.at.append(time.monotonic())


def longest_gap(times: list[float], since: float, until: float) -> float:
    points = [since, *(t for t in times if since <= t <= until), until]
    return max(b - a for a, b in itertools.pairwise(points))


def run_kafka_python(bootstrap: str, topic: str, hooks: list[Any], options: dict[str, Any], stall: Stall) -> float:
    """Consume as a group member, arm the stall once assigned, poll through it; return when armed."""
    import kafka

    from kafkahooks.kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"slow-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        hooks=hooks,
        **GROUP_TIMEOUTS,
        **options,
    )
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    consumer.subscribe([topic])
    armed_at = 0.0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            producer.send(topic, b"tick")
            if consumer.poll(timeout_ms=200) and not armed_at:
                stall.arm()
                armed_at = time.monotonic()
                deadline = armed_at + STALL_S + 0.5  # the window the assertions read, and a margin
    finally:
        stall.release.set()
        consumer.close()
        producer.close()
    return armed_at


def run_aiokafka(bootstrap: str, topic: str, hooks: list[Any], options: dict[str, Any], stall: Stall) -> float:
    from aiokafka import AIOKafkaProducer as BareProducer

    from kafkahooks.aiokafka import AIOKafkaConsumer

    async def run() -> float:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"slow-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            hooks=hooks,
            **GROUP_TIMEOUTS,
            **options,
        )
        producer = BareProducer(bootstrap_servers=bootstrap)
        await consumer.start()
        await producer.start()
        armed_at = 0.0
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                await producer.send(topic, b"tick")
                if await consumer.getmany(timeout_ms=200) and not armed_at:
                    stall.arm()
                    armed_at = time.monotonic()
                    deadline = armed_at + STALL_S + 0.5  # the window the assertions read, and a margin
        finally:
            stall.release.set()
            await consumer.stop()
            await producer.stop()
        return armed_at

    return asyncio.run(run())


@pytest.mark.slow
@pytest.mark.parametrize("offload", [True, False], ids=["offload_hooks", "inline-contrast"])
@pytest.mark.parametrize("client", CLIENTS)
def test_heartbeats_go_on_while_a_hook_stalls(bootstrap: str, topic: str, client: str, offload: bool) -> None:
    """A hook blocked for five heartbeat intervals: with ``offload_hooks=True`` heartbeat responses
    keep arriving about every second; inline (``hook_budget_ms=None``) they stop for the stall."""
    stall, clock = Stall(), HeartbeatClock()
    options: dict[str, Any] = {"offload_hooks": True} if offload else {"hook_budget_ms": None}
    run = run_kafka_python if client == "kafka-python" else run_aiokafka
    armed_at = run(bootstrap, topic, [stall, clock], options, stall)
    assert armed_at, "the consumer never got a record"
    assert stall.stalled_on is not None, "the hook never stalled"
    gap = longest_gap(clock.at, armed_at, armed_at + STALL_S)
    if offload:
        assert stall.stalled_on != threading.main_thread().ident
        assert gap < 2.5, f"no heartbeat for {gap:.1f} s while the offloaded hook stalled"
    else:
        assert gap > STALL_S * 0.8, f"inline stall did not stop heartbeats (longest gap {gap:.1f} s)"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_hook_slow_on_every_call_stalls_the_client_once(bootstrap: str, topic: str, client: str) -> None:
    """Default budget: a hook sleeping 100 ms on every write runs inline once, then on its own
    thread; every record is delivered and the hook still sees every write (none dropped)."""
    from kafkahooks.testing import RecordingHook
    from tests._drivers import produce

    class SlowWrites:
        def __init__(self) -> None:
            self.threads: list[str] = []

        def on_broker_write(self, *args: Any) -> None:
            self.threads.append(threading.current_thread().name)
            time.sleep(0.1)

    hook, recorder = SlowWrites(), RecordingHook()
    results: list[Any] = []

    def go() -> None:
        for i in range(5):  # one request each
            results.extend(produce(client, bootstrap, topic, [(b"%d" % i, None)], hooks=[hook, recorder]))

    worker = threading.Thread(target=go)
    worker.start()
    worker.join(60)
    assert 5 == len(results)
    writes = len(recorder.of("broker_write"))
    assert writes >= 5
    assert writes == len(hook.threads)
    # Each of the five clients ran the hook inline once, then offloaded it.
    assert 5 == sum(1 for name in hook.threads if not name.startswith("kafkahooks-hook-"))


def test_aiokafka_stop_waits_for_a_stuck_hook_off_the_event_loop(bootstrap: str, topic: str) -> None:
    """``stop()`` gives a stuck offloaded hook its 2 s, but not on the loop: another task keeps
    running while it waits. Then a second ``stop()``, cancelled while it waits, raises
    CancelledError at once."""
    from kafkahooks.aiokafka import AIOKafkaProducer
    from kafkahooks.testing import RecordingHook

    stuck = threading.Event()
    release = threading.Event()

    class Stuck:
        def on_broker_write(self, *args: Any) -> None:
            stuck.set()
            release.wait(10)

    async def run() -> tuple[float, float]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[Stuck(), RecordingHook()], offload_hooks=True)
        await producer.start()
        for i in range(20):
            await producer.send_and_wait(topic, b"%d" % i)
        assert stuck.wait(5)
        gaps = [0.0]
        running = True

        async def tick() -> None:
            last = time.monotonic()
            while running:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        await producer.stop()
        took = time.monotonic() - started
        running = False
        await ticker

        again = AIOKafkaProducer(bootstrap_servers=bootstrap, hooks=[Stuck()], offload_hooks=True)
        await again.start()
        await again.send_and_wait(topic, b"again")
        stopping = asyncio.create_task(again.stop())
        await asyncio.sleep(0.5)
        cancelled_at = time.monotonic()
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert time.monotonic() - cancelled_at < 0.5
        return took, max(gaps)

    try:
        took, longest_gap = asyncio.run(run())
    finally:
        release.set()
    assert took >= 1.5  # the stuck hook had its time to finish...
    assert longest_gap < 0.5  # ...while the loop went on (inline it would be ~2 s)
