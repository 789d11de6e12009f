"""Slow user hooks leave the I/O path: the guard, the lanes, their bounds and their counts."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

from kafkahooks._selfstats import snapshot
from kafkahooks.hooks import BrokerMeta, HookDispatcher
from kafkahooks.hooks._lanes import LANE_CAPACITY, HookLane

META = BrokerMeta(1, "127.0.0.1", 9092)


class SlowFirst:
    """Sleeps on its first write only; records (key, thread) for every call."""

    def __init__(self, sleep_s: float = 0.1) -> None:
        self.sleep_s = sleep_s
        self.calls: list[tuple[int, int]] = []

    def on_broker_write(self, meta: BrokerMeta, key: int, *rest: Any) -> None:
        if not self.calls:
            time.sleep(self.sleep_s)
        self.calls.append((key, threading.get_ident()))


class Gate:
    """Blocks every write until released; counts what it saw."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.seen = 0

    def on_broker_write(self, *args: Any) -> None:
        self.open.wait(10)
        self.seen += 1


def writes(dispatcher: HookDispatcher, n: int) -> None:
    for key in range(n):
        dispatcher.broker_write(META, key % 60, 10, 0, 0, None)


def lane_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("kafkahooks-hook-"))


def test_a_call_over_budget_moves_the_hook_to_its_own_thread_in_order() -> None:
    """The slow call runs inline; every later call runs on the hook's lane, in submission order."""
    hook = SlowFirst(0.1)
    before = snapshot().get("hooks_offloaded", 0)
    dispatcher = HookDispatcher([hook], budget_ms=20)
    writes(dispatcher, 50)
    assert dispatcher.flush(5)
    keys = [k for k, _ in hook.calls]
    threads = [t for _, t in hook.calls]
    assert [k % 60 for k in range(50)] == keys
    assert threading.get_ident() == threads[0]
    assert {threading.get_ident()} != set(threads[1:])
    assert 1 == len(set(threads[1:]))
    event, took_ns = dispatcher.offloaded["SlowFirst"]
    assert "on_broker_write" == event
    assert took_ns >= 100_000_000
    assert before + 1 == snapshot()["hooks_offloaded"]


def test_calls_within_budget_stay_inline() -> None:
    """A hook that never exceeds the budget is always called on the caller's thread."""
    hook = SlowFirst(0.0)
    dispatcher = HookDispatcher([hook], budget_ms=10_000)
    writes(dispatcher, 200)
    assert {threading.get_ident()} == {t for _, t in hook.calls}
    assert 200 == len(hook.calls)
    assert {} == dispatcher.offloaded


@pytest.mark.parametrize("how", ["inline-class", "strict", "no-budget"])
def test_trusted_strict_or_unbudgeted_hooks_are_never_moved(how: str) -> None:
    """``kafkahooks_inline`` hooks, ``strict=True`` and ``budget_ms=None`` keep franz-go's inline calls."""
    trusted = type("Trusted", (SlowFirst,), {"kafkahooks_inline": True})
    hook = (trusted if how == "inline-class" else SlowFirst)(0.05)
    dispatcher = HookDispatcher([hook], budget_ms=None if how == "no-budget" else 1, strict=how == "strict")
    writes(dispatcher, 5)
    assert {threading.get_ident()} == {t for _, t in hook.calls}
    assert {} == dispatcher.offloaded


def test_offload_hooks_starts_off_the_io_path() -> None:
    """``offload=True``: not even the first call runs on the caller's thread."""
    hook = SlowFirst(0.0)
    dispatcher = HookDispatcher([hook], offload=True)
    writes(dispatcher, 10)
    assert dispatcher.flush(5)
    assert threading.get_ident() not in {t for _, t in hook.calls}
    assert {"SlowFirst": ("offload_hooks", 0)} == dispatcher.offloaded


def test_a_full_lane_drops_and_counts_every_event_it_refuses() -> None:
    """With the hook stuck, the queue stops at its capacity; every event is run or counted."""
    hook = Gate()
    dispatcher = HookDispatcher([hook], offload=True)
    sent = LANE_CAPACITY + 500
    writes(dispatcher, sent)
    dropped = dispatcher.offload_dropped
    assert 499 <= dropped <= 500  # the lane's thread may already have taken the first event
    hook.open.set()
    assert dispatcher.flush(10)
    assert sent == hook.seen + dispatcher.offload_dropped


class RaisesOffloaded:
    def on_broker_write(self, *args: Any) -> None:
        raise ValueError("boom")

    def on_broker_read(self, *args: Any) -> None:
        raise asyncio.CancelledError()


def test_offloaded_exceptions_are_counted_never_raised() -> None:
    """On the lane there is no caller to propagate to: every exception is counted per event."""
    dispatcher = HookDispatcher([RaisesOffloaded()], offload=True)
    for _ in range(3):
        dispatcher.broker_write(META, 0, 10, 0, 0, None)
        dispatcher.broker_read(META, 0, 10, 0, 0, None)
    assert dispatcher.flush(5)
    assert {("RaisesOffloaded", "on_broker_write"): 3, ("RaisesOffloaded", "on_broker_read"): 3} == dispatcher.failures


class SlowInjector:
    def __init__(self) -> None:
        self.calls = 0

    def inject_batch_headers(self, topic: str, partition: int, headers: Any) -> list[tuple[str, bytes]]:
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.05)
        return [("x-batch", b"1")]


def test_a_slow_injector_is_skipped_and_counted_once_offloaded() -> None:
    """A hook the client waits for cannot run later: after its slow call it is skipped, counted."""
    hook = SlowInjector()
    dispatcher = HookDispatcher([hook], budget_ms=10)
    before = snapshot().get("hook_calls_skipped", 0)
    assert [("x-batch", b"1")] == dispatcher.inject_batch_headers("t", 0, ())
    assert dispatcher.inject_batch_headers("t", 0, ()) is None
    assert dispatcher.inject_batch_headers("t", 0, ()) is None
    assert 1 == hook.calls
    assert before + 2 == snapshot()["hook_calls_skipped"]


def test_close_runs_what_was_queued_then_drops_and_counts() -> None:
    """Close waits (bounded) for queued events; a hung hook's leftovers are dropped and counted."""
    hook = Gate()
    dispatcher = HookDispatcher([hook], offload=True)
    writes(dispatcher, 100)
    started = time.monotonic()
    dispatcher.close(timeout_s=0.3)
    assert time.monotonic() - started < 5
    writes(dispatcher, 10)  # after close: dropped by the dispatcher itself, never queued
    hook.open.set()
    lane = dispatcher._slots[0].lane
    assert lane is not None
    deadline = time.monotonic() + 5
    while hook.seen + lane.dropped < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 100 == hook.seen + lane.dropped
    assert 1 == hook.seen  # the event the hook was stuck in; the other 99 were dropped


def test_a_lane_thread_exits_when_idle_and_restarts_on_demand() -> None:
    """No work, no thread: an unclosed client leaves nothing running."""
    seen: list[int] = []
    lane = HookLane("Idle", lambda fn, event, exc: None, idle_s=0.05)
    lane.submit(seen.append, "on_broker_write", (1,))
    assert lane.flush(5)
    deadline = time.monotonic() + 5
    while lane._running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lane._running
    lane.submit(seen.append, "on_broker_write", (2,))
    assert lane.flush(5)
    assert [1, 2] == seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_an_offloaded_hook_works_in_a_forked_child() -> None:
    """After fork the child gets a fresh lane thread (never a deadlock) and the hook runs there."""
    hook = SlowFirst(0.0)
    dispatcher = HookDispatcher([hook], offload=True)
    writes(dispatcher, 5)
    assert dispatcher.flush(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            writes(dispatcher, 7)
            ok = dispatcher.flush(5) and len(hook.calls) == 12
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    got = os.read(read, 2)
    os.waitpid(pid, 0)
    os.close(read)
    assert b"ok" == got
